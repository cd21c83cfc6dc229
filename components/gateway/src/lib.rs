//! kefu's gateway component: the OpenAI-compatible chat API of a kefu application.
//!
//! A `wasi:http/incoming-handler@0.2.0` component (spin-sdk 5.2) that authenticates the
//! caller, validates the request, renders the chat template and generates through the host's
//! `wasi:nn` with kefu's chunk-streaming convention, answering as JSON or Server-Sent Events.
//!
//! It owns request policy only. It does not own the model, batching or sampling (the host's
//! engine does), and its configuration comes from Spin variables (see [`config`]).
//!
//! Layout: [`api`] (wire format and validation), [`auth`], [`config`], [`template`], [`nn`]
//! (the wasi-nn convention), [`sse`], [`errors`], and the wasm-only `handler` that wires them
//! to HTTP. Everything but `handler` and `nn::client` is plain Rust and tests natively.

pub mod api;
pub mod auth;
pub mod config;
pub mod errors;
pub mod nn;
pub mod sse;
pub mod template;

#[cfg(target_arch = "wasm32")]
mod handler;
