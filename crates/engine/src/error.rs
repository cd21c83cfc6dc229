//! The engine's error type: every way a request can be turned away or fail.

/// Errors a caller can see. `Overloaded`, `PromptTooLong` and `InvalidOptions` are the caller's
/// to handle (HTTP maps them to 429, 400, 400); the others mean the engine itself failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error("the engine queue is full ({capacity} requests waiting); retry later")]
    Overloaded { capacity: usize },
    #[error(
        "prompt is {prompt_tokens} tokens and max_tokens is {max_tokens}; together they exceed the \
         per-sequence context of {context} tokens"
    )]
    PromptTooLong {
        prompt_tokens: u32,
        max_tokens: u32,
        context: u32,
    },
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error("invalid sampling options: {0}")]
    InvalidOptions(String),
    #[error("the engine has stopped")]
    Stopped,
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
}

impl EngineError {
    /// True when the request itself was at fault (bad input), not the server.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            EngineError::PromptTooLong { .. }
                | EngineError::EmptyPrompt
                | EngineError::InvalidOptions(_)
        )
    }
}
