//! What callers hand the engine (a prompt and its sampling options) and what comes back
//! (a stream of [`Event`]s). Plain data: no llama.cpp types cross this seam.

use serde::{Deserialize, Serialize};

/// Sampling and stopping options of one generation. Deserialises from the JSON `options` tensor
/// that components send through wasi-nn, so every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingOptions {
    /// Upper bound on generated tokens.
    pub max_tokens: u32,
    /// 0 means greedy decoding.
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: i32,
    pub min_p: f32,
    /// 1.0 disables the repeat penalty.
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    pub repeat_last_n: i32,
    pub seed: Option<u32>,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: None,
            stop: Vec::new(),
        }
    }
}

impl SamplingOptions {
    /// Rejects values llama.cpp's samplers would misbehave on.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_tokens == 0 {
            return Err("max_tokens must be at least 1".into());
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err("temperature must be a finite number >= 0".into());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err("top_p must be in (0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return Err("min_p must be in [0, 1]".into());
        }
        if self.top_k < 0 {
            return Err("top_k must be >= 0".into());
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err("repeat_penalty must be > 0".into());
        }
        if self.stop.iter().any(String::is_empty) {
            return Err("stop strings must not be empty".into());
        }
        Ok(())
    }
}

/// One generation request: the fully templated prompt (special tokens such as `<|im_start|>`
/// are parsed) and its options.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: String,
    pub options: SamplingOptions,
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-generation token or a stop string matched.
    Stop,
    /// `max_tokens` was reached.
    Length,
}

impl FinishReason {
    /// The OpenAI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Token counts and timings of a finished generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV was copied from a shared prefix instead of being computed.
    pub cached_prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Seconds from submission to the first generated text.
    pub time_to_first_token: Option<f64>,
    /// Seconds from submission to the end.
    pub total_time: f64,
}

/// What a generation stream yields, in order: any number of `Text`, then exactly one `Done`
/// or `Error`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The next piece of generated text; always whole UTF-8 characters.
    Text(String),
    Done {
        finish_reason: FinishReason,
        usage: Usage,
    },
    Error(crate::EngineError),
}
