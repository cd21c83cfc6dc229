//! Teacher-forced likelihood of the reference answers: the prompt and the reference answer go
//! through the model in one batch, and the negative log-likelihood is summed over the answer's
//! tokens only (through its end-of-turn marker), each predicted from everything before it.
//!
//! Deterministic: one sequence per batch, the same batch shape for the same example, a fresh
//! KV cache per example, log-softmax computed in f64. Running it twice on the same file gives
//! identical numbers.

use std::num::NonZeroU32;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use serde::{Deserialize, Serialize};

use crate::dataset::EvalItem;

/// Likelihood of one reference answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerNll {
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
    /// Sum of -ln p(token | everything before) over the answer tokens.
    pub sum_nll: f64,
}

impl AnswerNll {
    /// Mean NLL per answer token (nats).
    pub fn mean(&self) -> f64 {
        self.sum_nll / self.answer_tokens.max(1) as f64
    }
}

/// Scores of all items and the time the forward passes took.
#[derive(Debug, Clone)]
pub struct NllRun {
    pub answers: Vec<AnswerNll>,
    /// Tokens (prompt + answer) processed per second of `decode`.
    pub tokens_per_second: f64,
}

/// Token-weighted mean NLL over all answers, and its perplexity `exp(mean)`.
pub fn corpus_nll(answers: &[AnswerNll]) -> (f64, f64) {
    let tokens: usize = answers.iter().map(|a| a.answer_tokens).sum();
    let sum: f64 = answers.iter().map(|a| a.sum_nll).sum();
    let mean = sum / tokens.max(1) as f64;
    (mean, mean.exp())
}

/// Scores every item with the model at `model_path`. `progress` is called after each item.
pub fn score(
    model_path: &Path,
    items: &[EvalItem],
    threads: i32,
    progress: &mut dyn FnMut(),
) -> Result<NllRun> {
    let backend = kefu_engine::backend();
    let model = LlamaModel::load_from_file(backend, model_path, &LlamaModelParams::default())
        .with_context(|| format!("loading model {}", model_path.display()))?;
    let sequences = items
        .iter()
        .map(|item| tokenize(&model, item))
        .collect::<Vec<_>>();
    let longest = sequences
        .iter()
        .map(|(p, a)| p.len() + a.len())
        .max()
        .unwrap_or(1);
    let n_ctx = longest.next_multiple_of(256) as u32;
    anyhow::ensure!(
        n_ctx <= model.n_ctx_train().max(256),
        "an example has {longest} tokens, more than the model's context ({})",
        model.n_ctx_train()
    );
    // One ubatch holds a whole example, so its logits never depend on how it was split.
    // Attention as the engine computes it when serving (flash attention).
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(n_ctx))
        .with_n_batch(n_ctx)
        .with_n_ubatch(n_ctx)
        .with_flash_attention_policy(llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model
        .new_context(backend, params)
        .context("creating a llama.cpp context for scoring")?;
    let mut answers = Vec::with_capacity(items.len());
    let mut tokens_seen = 0usize;
    let mut seconds = 0.0;
    for (item, (prompt, answer)) in items.iter().zip(&sequences) {
        if prompt.is_empty() || answer.is_empty() {
            bail!(
                "example {}: empty prompt or answer after tokenization",
                item.id
            );
        }
        let all: Vec<LlamaToken> = prompt.iter().chain(answer).copied().collect();
        let mut batch = LlamaBatch::new(all.len(), 1);
        let first_scored = prompt.len() - 1;
        for (i, &tok) in all.iter().enumerate() {
            let wants_logits = i >= first_scored && i + 1 < all.len();
            batch
                .add(tok, i as i32, &[0], wants_logits)
                .context("filling the batch")?;
        }
        ctx.clear_kv_cache();
        let started = Instant::now();
        ctx.decode(&mut batch)
            .with_context(|| format!("example {}: llama_decode failed", item.id))?;
        seconds += started.elapsed().as_secs_f64();
        tokens_seen += all.len();
        let mut sum_nll = 0.0f64;
        for i in first_scored..all.len() - 1 {
            let logits = ctx.get_logits_ith(i as i32);
            let target = all[i + 1].0 as usize;
            sum_nll += neg_log_softmax(logits, target);
        }
        answers.push(AnswerNll {
            prompt_tokens: prompt.len(),
            answer_tokens: answer.len(),
            sum_nll,
        });
        progress();
    }
    Ok(NllRun {
        answers,
        tokens_per_second: tokens_seen as f64 / seconds.max(1e-9),
    })
}

/// Prompt tokens (with BOS when the vocabulary wants it, as the engine does) and answer tokens
/// (no BOS; special tokens such as `<|im_end|>` parsed).
fn tokenize(model: &LlamaModel, item: &EvalItem) -> (Vec<LlamaToken>, Vec<LlamaToken>) {
    let vocab = model.vocab();
    (
        vocab.tokenize(item.prompt.as_bytes(), true, true),
        vocab.tokenize(item.answer_text.as_bytes(), false, true),
    )
}

/// `-ln softmax(logits)[target]`, computed stably in f64.
pub fn neg_log_softmax(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    max + sum.ln() - logits[target] as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_by_hand() {
        // Uniform over 4: -ln(1/4).
        assert!((neg_log_softmax(&[1.0; 4], 2) - 4f64.ln()).abs() < 1e-12);
        // logits [0, ln 3]: p(1) = 3/4.
        let l = [0.0, 3f32.ln()];
        assert!((neg_log_softmax(&l, 1) + (0.75f64).ln()).abs() < 1e-6);
    }

    #[test]
    fn corpus_mean_weighs_tokens() {
        let a = AnswerNll {
            prompt_tokens: 5,
            answer_tokens: 1,
            sum_nll: 1.0,
        };
        let b = AnswerNll {
            prompt_tokens: 5,
            answer_tokens: 3,
            sum_nll: 3.0 * 2.0,
        };
        let (mean, ppl) = corpus_nll(&[a, b]);
        assert!((mean - 7.0 / 4.0).abs() < 1e-12);
        assert!((ppl - (7.0f64 / 4.0).exp()).abs() < 1e-9);
    }
}
