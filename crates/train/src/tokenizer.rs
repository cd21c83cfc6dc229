//! The model's tokenizer, built from the GGUF vocabulary with the `tokenizers` crate (through
//! candle's `TokenizerFromGguf`), so training needs no separate tokenizer file. Ids match
//! llama.cpp's for the supported pre-tokenizers (checked against llama.cpp in the tests).

use std::collections::HashMap;

use anyhow::{Context, Result, anyhow};
use candle_core::quantized::gguf_file::{Content, Value, VersionedMagic};
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;

/// Encodes text as the serving engine does: special tokens written in the text
/// (`<|im_start|>`) become their ids; BOS is prepended only when the vocabulary asks for it.
pub struct GgufTokenizer {
    inner: tokenizers::Tokenizer,
    bos: Option<u32>,
    /// The end-of-turn token the chat template closes answers with.
    pub eot: u32,
}

impl GgufTokenizer {
    /// Builds the tokenizer from a GGUF's `tokenizer.ggml.*` metadata.
    pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Self> {
        let content = Content {
            magic: VersionedMagic::GgufV3,
            metadata: metadata.clone(),
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        };
        let mut inner = tokenizers::Tokenizer::from_gguf(&content)
            .map_err(|e| anyhow!("cannot build the tokenizer from the GGUF vocabulary: {e}"))?;
        let pre = metadata
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("default");
        if pre == "smollm" {
            // llama.cpp's `smollm` pre-tokenizer splits every digit, then applies GPT-2's
            // byte-level regex (as the model's own tokenizer.json does).
            let seq = Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ]);
            inner.with_pre_tokenizer(Some(seq));
        }
        // BOS/EOS are added here explicitly, not by a post-processor.
        inner.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        let flag = |k: &str| matches!(metadata.get(k), Some(Value::Bool(true)));
        let id = |k: &str| metadata.get(k).and_then(|v| v.to_u32().ok());
        let bos = if flag("tokenizer.ggml.add_bos_token") {
            Some(id("tokenizer.ggml.bos_token_id").context("add_bos_token without bos id")?)
        } else {
            None
        };
        let eot = inner
            .token_to_id("<|im_end|>")
            .or_else(|| id("tokenizer.ggml.eot_token_id"))
            .or_else(|| id("tokenizer.ggml.eos_token_id"))
            .context("the vocabulary has no end-of-turn or end-of-sequence token")?;
        Ok(GgufTokenizer { inner, bos, eot })
    }

    /// Token ids of `text` without BOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// BOS (when the vocabulary adds one) followed by the ids of `text`: what the engine feeds.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(self.encode(text)?);
        Ok(ids)
    }

    /// Text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| anyhow!("decoding failed: {e}"))
    }
}
