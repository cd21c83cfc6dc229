//! kefu's gateway component: the OpenAI-compatible chat API of a kefu application.
//!
//! A `wasi:http/incoming-handler@0.2.0` component (spin-sdk 5.2) that authenticates the
//! caller, validates the request, lets `kefu-guard` decide (answer, refuse or hand off) and
//! build the grounded prompt, generates through the host's `wasi:nn` with kefu's
//! chunk-streaming convention when an answer needs the model, has the guard check the result,
//! and answers as JSON or Server-Sent Events with the verdict in a top-level `kefu` object.
//!
//! It is a thin adapter: the business logic (knowledge base, retrieval, decisions, prompt
//! templates, output checks, PII masking) lives in `kefu-guard`. It does not own the model,
//! batching or sampling (the host's engine does); its configuration comes from Spin variables
//! (see [`config`]) and its knowledge base from the read-only `/kb` mount (see [`guardrails`]).
//!
//! Layout: [`api`] (wire format and validation), [`auth`], [`config`], [`guardrails`] (the
//! adapter to `kefu-guard`), [`nn`] (the wasi-nn convention), [`sse`], [`errors`],
//! [`records`] (completion ids and the records kept for feedback), [`feedback`] (`POST
//! /v1/feedback`), [`quota`] (per-key request quotas), and the wasm-only `handler` that wires
//! them to HTTP and the key-value store. Everything but `handler` and `nn::client` is
//! plain Rust and tests natively.

pub mod api;
pub mod auth;
pub mod config;
pub mod errors;
pub mod feedback;
pub mod guardrails;
pub mod nn;
pub mod quota;
pub mod records;
pub mod sse;

#[cfg(target_arch = "wasm32")]
mod handler;
