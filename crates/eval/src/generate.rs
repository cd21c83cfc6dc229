//! Greedy answers through the serving engine (`kefu-engine`): same tokenizer, same chat
//! template, same decoding loop as `kefu up`. One sequence at a time and no prefix cache, so
//! every prompt is prefilled in full and the timings are per request.

use std::path::Path;

use anyhow::{Context, Result, bail};
use kefu_engine::{Engine, EngineConfig, Event, FinishReason, GenerateRequest, SamplingOptions};
use serde::{Deserialize, Serialize};

use crate::dataset::EvalItem;

/// One generated answer with its token counts and timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generated {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Seconds from submission to the first generated text (prefill plus one token).
    pub time_to_first_token: f64,
    /// Seconds from submission to the end.
    pub total_time: f64,
    /// `stop` or `length`.
    pub finish_reason: String,
}

/// Throughput over a set of generations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Speed {
    /// Prompt tokens per second of time-to-first-token.
    pub prefill_tokens_per_second: f64,
    /// Generated tokens after the first per second of the time after the first.
    pub decode_tokens_per_second: f64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Wall time of all generations.
    pub seconds: f64,
}

/// Aggregates per-request timings into throughput.
pub fn speed(generated: &[Generated]) -> Speed {
    let prompt: u64 = generated.iter().map(|g| u64::from(g.prompt_tokens)).sum();
    let completion: u64 = generated
        .iter()
        .map(|g| u64::from(g.completion_tokens))
        .sum();
    let prefill_time: f64 = generated.iter().map(|g| g.time_to_first_token).sum();
    let decode_tokens: u64 = generated
        .iter()
        .map(|g| u64::from(g.completion_tokens.saturating_sub(1)))
        .sum();
    let decode_time: f64 = generated
        .iter()
        .map(|g| (g.total_time - g.time_to_first_token).max(0.0))
        .sum();
    Speed {
        prefill_tokens_per_second: prompt as f64 / prefill_time.max(1e-9),
        decode_tokens_per_second: decode_tokens as f64 / decode_time.max(1e-9),
        prompt_tokens: prompt,
        completion_tokens: completion,
        seconds: generated.iter().map(|g| g.total_time).sum(),
    }
}

/// Generates a greedy answer to every item with the model at `model_path`.
pub fn generate_all(
    model_path: &Path,
    items: &[EvalItem],
    max_tokens: u32,
    threads: i32,
    progress: &mut dyn FnMut(),
) -> Result<Vec<Generated>> {
    let mut config = EngineConfig::new(model_path);
    config.parallel = 1;
    config.prefix_cache_slots = 0;
    config.threads = threads;
    config.queue_capacity = 1;
    let longest = items.iter().map(|i| i.prompt.len()).max().unwrap_or(0) as u32;
    // Bytes bound tokens from above, so this context always fits prompt plus answer.
    config.ctx_per_seq = (longest + max_tokens + 16).next_multiple_of(256).max(512);
    let engine = Engine::start(config)?;
    let handle = engine.handle();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let options = SamplingOptions {
            max_tokens,
            temperature: 0.0,
            ..SamplingOptions::default()
        };
        let mut generation = handle
            .submit(GenerateRequest {
                prompt: item.prompt.clone(),
                options,
            })
            .with_context(|| format!("example {}", item.id))?;
        let mut text = String::new();
        let done = loop {
            match generation.blocking_next() {
                Some(Event::Text(t)) => text.push_str(&t),
                Some(Event::Done {
                    finish_reason,
                    usage,
                }) => break (finish_reason, usage),
                Some(Event::Error(e)) => bail!("example {}: {e}", item.id),
                None => bail!("example {}: the engine stopped mid-answer", item.id),
            }
        };
        let (finish_reason, usage) = done;
        out.push(Generated {
            text: text.trim().to_string(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            time_to_first_token: usage.time_to_first_token.unwrap_or(usage.total_time),
            total_time: usage.total_time,
            finish_reason: match finish_reason {
                FinishReason::Stop => "stop",
                FinishReason::Length => "length",
            }
            .to_string(),
        });
        progress();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_by_hand() {
        let g = |p, c, ttft, total| Generated {
            text: String::new(),
            prompt_tokens: p,
            completion_tokens: c,
            time_to_first_token: ttft,
            total_time: total,
            finish_reason: "stop".into(),
        };
        let s = speed(&[g(100, 11, 0.5, 1.5), g(300, 21, 1.5, 3.5)]);
        assert!((s.prefill_tokens_per_second - 400.0 / 2.0).abs() < 1e-9);
        assert!((s.decode_tokens_per_second - 30.0 / 3.0).abs() < 1e-9);
        assert_eq!((s.prompt_tokens, s.completion_tokens), (400, 32));
    }
}
