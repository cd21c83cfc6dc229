//! llama.cpp's own tokenizer and chat templates over a loaded model. Using the model's vocabulary
//! through llama.cpp means token counts here are exactly what the engine decodes.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::token::LlamaToken;

/// A chat message for [`Tokenizer::apply_chat_template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// Tokenizer of one model. Cheap to clone; safe to use from many threads.
#[derive(Clone)]
pub struct Tokenizer {
    model: Arc<LlamaModel>,
}

impl Tokenizer {
    /// Loads only the vocabulary of a GGUF file (no weights), for offline tools.
    pub fn load(path: &Path) -> Result<Self> {
        anyhow::ensure!(
            path.is_file(),
            "model file {} does not exist",
            path.display()
        );
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(crate::backend(), path, &params)
            .with_context(|| format!("loading the vocabulary of {}", path.display()))?;
        Ok(Self::from_model(Arc::new(model)))
    }

    pub(crate) fn from_model(model: Arc<LlamaModel>) -> Self {
        Self { model }
    }

    /// Token ids of `text` as the engine will decode it: special tokens written in the text
    /// (`<|im_start|>`) are parsed, and BOS is added when the vocabulary asks for it.
    pub fn encode(&self, text: &str) -> Vec<LlamaToken> {
        self.model.vocab().tokenize(text.as_bytes(), true, true)
    }

    /// Number of tokens [`Self::encode`] gives.
    pub fn count(&self, text: &str) -> usize {
        self.encode(text).len()
    }

    /// Renders messages with the model's built-in chat template (llama.cpp's template families,
    /// not a Jinja engine). `add_assistant` leaves the assistant turn open for generation.
    pub fn apply_chat_template(
        &self,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String> {
        let template = self
            .model
            .chat_template(None)
            .context("the model has no chat template")?;
        let messages = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.clone(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .context("a chat message contains a NUL byte")?;
        self.model
            .apply_chat_template(&template, &messages, add_assistant)
            .context("applying the chat template")
    }
}
