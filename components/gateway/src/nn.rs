//! kefu's chunk-streaming convention over `wasi:nn` (see `wit/gateway.wit`).
//!
//! This module holds the pure half, testable on any target: tensor names, the `options` JSON
//! the host accepts, decoding of each `compute` result into a [`Step`], and UTF-8 reassembly.
//! The calls into the host live in `client` (wasm builds only).
//!
//! Protocol: `compute([("prompt", ..), ("options", ..)])` starts a generation and returns the
//! first chunk; each `compute([])` returns the next one as an output `text`; an output `done`
//! ends the generation. Dropping the execution context cancels it on the host.

use serde::{Deserialize, Serialize};

#[cfg(target_arch = "wasm32")]
pub mod client;

/// Input tensor with the templated prompt (u8, UTF-8).
pub const INPUT_PROMPT: &str = "prompt";
/// Input tensor with the [`Options`] JSON (u8).
pub const INPUT_OPTIONS: &str = "options";
/// Output tensor with the next piece of text (u8, UTF-8).
pub const OUTPUT_TEXT: &str = "text";
/// Output tensor that ends the generation (u8, [`Done`] JSON).
pub const OUTPUT_DONE: &str = "done";

/// Sampling options sent as the `options` tensor. The host denies unknown fields, so this
/// holds exactly the keys it accepts; `None` and empty values are left out and take the
/// host's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Options {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

impl Options {
    /// The `options` tensor's bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("options serialise")
    }
}

/// The `done` output: why the generation ended and what it cost.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Done {
    /// `stop` or `length` (passed through to the client as is).
    pub finish_reason: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Prompt tokens served from a shared prefix instead of being computed.
    pub cached_prompt_tokens: u32,
    /// Seconds from submission to the first generated text.
    pub time_to_first_token: Option<f64>,
}

/// What one `compute` call produced: text (possibly empty) and, on the last call, [`Done`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    pub text: String,
    pub done: Option<Done>,
}

/// wasi-nn's `error-code`, mirrored so the error mapping is testable off wasm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NnErrorCode {
    InvalidArgument,
    InvalidEncoding,
    Timeout,
    RuntimeError,
    UnsupportedOperation,
    TooLarge,
    NotFound,
    Security,
    Unknown,
}

impl NnErrorCode {
    /// The WIT spelling (`too-large`).
    pub fn as_str(self) -> &'static str {
        match self {
            NnErrorCode::InvalidArgument => "invalid-argument",
            NnErrorCode::InvalidEncoding => "invalid-encoding",
            NnErrorCode::Timeout => "timeout",
            NnErrorCode::RuntimeError => "runtime-error",
            NnErrorCode::UnsupportedOperation => "unsupported-operation",
            NnErrorCode::TooLarge => "too-large",
            NnErrorCode::NotFound => "not-found",
            NnErrorCode::Security => "security",
            NnErrorCode::Unknown => "unknown",
        }
    }
}

/// A wasi-nn error (code and the host's `data()` text), or a breach of the chunk convention.
#[derive(Debug, Clone, PartialEq)]
pub struct NnError {
    pub code: NnErrorCode,
    pub data: String,
}

impl NnError {
    /// The host broke the chunk convention.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self {
            code: NnErrorCode::RuntimeError,
            data: format!("wasi-nn chunk protocol: {}", message.into()),
        }
    }
}

impl std::fmt::Display for NnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wasi-nn {}: {}", self.code.as_str(), self.data)
    }
}

/// Decodes the outputs of one `compute` call. Unknown output names are ignored; a call with
/// neither `text` nor `done` is a protocol error (the generation could never end).
pub fn decode_step<I>(outputs: I, utf8: &mut Utf8Buffer) -> Result<Step, NnError>
where
    I: IntoIterator<Item = (String, Vec<u8>)>,
{
    let mut step = Step::default();
    let mut saw_text = false;
    for (name, data) in outputs {
        match name.as_str() {
            OUTPUT_TEXT => {
                saw_text = true;
                step.text.push_str(&utf8.push(&data));
            }
            OUTPUT_DONE => {
                let done: Done = serde_json::from_slice(&data)
                    .map_err(|e| NnError::protocol(format!("invalid `done` JSON: {e}")))?;
                step.done = Some(done);
            }
            _ => {}
        }
    }
    if step.done.is_some() {
        step.text.push_str(&utf8.finish());
    } else if !saw_text {
        return Err(NnError::protocol(
            "compute returned neither `text` nor `done`",
        ));
    }
    Ok(step)
}

/// Reassembles UTF-8 text whose characters may be split across chunks. Invalid bytes become
/// U+FFFD; an incomplete character at the end of a chunk waits for the next one.
#[derive(Debug, Default)]
pub struct Utf8Buffer {
    pending: Vec<u8>,
}

impl Utf8Buffer {
    /// Appends `bytes` and returns every complete character available so far.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).expect("valid"));
                    match e.error_len() {
                        // Incomplete character at the end: keep it for the next chunk.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// Flushes what is left at the end of the generation.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(name: &str, data: &[u8]) -> (String, Vec<u8>) {
        (name.to_owned(), data.to_vec())
    }

    #[test]
    fn options_json_has_only_set_keys() {
        assert_eq!(Options::default().to_json(), b"{}");
        let o = Options {
            max_tokens: Some(64),
            temperature: Some(0.5),
            seed: Some(7),
            stop: vec!["\n\n".into()],
            ..Options::default()
        };
        let v: serde_json::Value = serde_json::from_slice(&o.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"max_tokens": 64, "temperature": 0.5, "seed": 7, "stop": ["\n\n"]})
        );
    }

    #[test]
    fn decodes_text_and_done() {
        let mut buf = Utf8Buffer::default();
        let s = decode_step([out("text", b"Hello")], &mut buf).unwrap();
        assert_eq!(
            s,
            Step {
                text: "Hello".into(),
                done: None
            }
        );

        let done = br#"{"finish_reason":"length","prompt_tokens":12,"completion_tokens":3,
            "cached_prompt_tokens":4,"time_to_first_token":0.25,"total_time":1.0}"#;
        let s = decode_step([out("text", b"!"), out("done", done)], &mut buf).unwrap();
        assert_eq!(s.text, "!");
        let d = s.done.unwrap();
        assert_eq!(
            (
                d.finish_reason.as_str(),
                d.prompt_tokens,
                d.completion_tokens
            ),
            ("length", 12, 3)
        );
        assert_eq!(
            (d.cached_prompt_tokens, d.time_to_first_token),
            (4, Some(0.25))
        );
    }

    #[test]
    fn empty_text_is_a_valid_step_but_nothing_is_not() {
        let mut buf = Utf8Buffer::default();
        assert_eq!(decode_step([out("text", b"")], &mut buf).unwrap().text, "");
        let e = decode_step(Vec::new(), &mut buf).unwrap_err();
        assert_eq!(e.code, NnErrorCode::RuntimeError);
        let e = decode_step([out("done", b"not json")], &mut buf).unwrap_err();
        assert!(e.data.contains("done"), "{e}");
    }

    #[test]
    fn utf8_split_across_chunks() {
        let bytes = "客服 ok".as_bytes();
        let mut buf = Utf8Buffer::default();
        let mut text = String::new();
        for b in bytes {
            text.push_str(&buf.push(std::slice::from_ref(b)));
        }
        text.push_str(&buf.finish());
        assert_eq!(text, "客服 ok");
    }

    #[test]
    fn utf8_invalid_bytes_become_replacement() {
        let mut buf = Utf8Buffer::default();
        assert_eq!(buf.push(b"a\xffb\xe5"), "a\u{fffd}b");
        assert_eq!(buf.finish(), "\u{fffd}");
        // A truncated character at the very end flushes with the done step.
        let mut buf = Utf8Buffer::default();
        let s = decode_step(
            [
                out("text", b"x\xe5\xae"),
                out("done", br#"{"finish_reason":"length"}"#),
            ],
            &mut buf,
        )
        .unwrap();
        assert_eq!(s.text, "x\u{fffd}");
    }
}
