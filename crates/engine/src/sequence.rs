//! One live generation on the engine thread: its tokens, KV progress, sampler and output stream.

use std::time::Instant;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc::UnboundedSender;

use crate::request::{Event, FinishReason, SamplingOptions, Usage};
use crate::text::TextStream;

/// A request accepted by `submit`, waiting for a sequence.
pub(crate) struct Admitted {
    pub(crate) tokens: Vec<LlamaToken>,
    pub(crate) options: SamplingOptions,
    pub(crate) events: UnboundedSender<Event>,
    pub(crate) submitted: Instant,
}

/// Where a sequence is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waits for sequence `serial` to compute the first `shared` prompt positions, then copies
    /// them instead of computing them itself.
    Waiting { serial: u64, shared: usize },
    /// Feeding prompt tokens `n_past..prompt_len - 1` in chunks.
    Prefill,
    /// Feeding one token per step: the last prompt token first, then each sampled token.
    Generating,
}

pub(crate) struct Sequence {
    /// llama.cpp sequence id (the slot index).
    pub(crate) id: i32,
    /// Unique per request, so a waiter never follows a reused slot.
    pub(crate) serial: u64,
    /// Prompt tokens followed by generated tokens fed so far.
    pub(crate) tokens: Vec<LlamaToken>,
    pub(crate) prompt_len: usize,
    /// Positions `0..n_past` are in this sequence's KV.
    pub(crate) n_past: usize,
    pub(crate) phase: Phase,
    /// A sampled token still to be fed to the model.
    pub(crate) next_token: Option<LlamaToken>,
    /// Index in the current batch whose logits this sequence samples from.
    pub(crate) logits_at: Option<i32>,
    /// Tokens this sequence has in the current batch.
    pub(crate) fed: usize,
    pub(crate) cached_prompt_tokens: usize,
    pub(crate) generated: u32,
    pub(crate) max_tokens: u32,
    sampler: LlamaSampler,
    text: TextStream,
    events: UnboundedSender<Event>,
    submitted: Instant,
    first_token: Option<Instant>,
}

impl Sequence {
    pub(crate) fn new(id: i32, serial: u64, admitted: Admitted, model: &LlamaModel) -> Self {
        let prompt_len = admitted.tokens.len();
        Self {
            id,
            serial,
            prompt_len,
            tokens: admitted.tokens,
            n_past: 0,
            phase: Phase::Prefill,
            next_token: None,
            logits_at: None,
            fed: 0,
            cached_prompt_tokens: 0,
            generated: 0,
            max_tokens: admitted.options.max_tokens,
            sampler: build_sampler(&admitted.options, model),
            text: TextStream::new(admitted.options.stop),
            events: admitted.events,
            submitted: admitted.submitted,
            first_token: None,
        }
    }

    /// The receiver was dropped: the client went away.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.events.is_closed()
    }

    /// Tokens whose KV exists or will exist without sampling (the prompt, and everything fed).
    pub(crate) fn known_tokens(&self) -> &[LlamaToken] {
        &self.tokens
    }

    /// Once all but the last prompt token are in KV, the last one is fed alone like a sampled
    /// token. The token whose logits start generation is then always computed the same way,
    /// whether the rest of the prompt was prefilled or copied from a shared prefix, so sharing
    /// a prefix never changes a greedy answer (llama.cpp's CPU results depend slightly on how
    /// many tokens a batch holds).
    pub(crate) fn start_generating_if_prefilled(&mut self) -> bool {
        if self.phase == Phase::Prefill && self.n_past + 1 == self.prompt_len {
            self.next_token = self.tokens.pop();
            self.phase = Phase::Generating;
            return true;
        }
        false
    }

    pub(crate) fn sample(
        &mut self,
        ctx: &llama_cpp_2::context::LlamaContext<'_>,
        idx: i32,
    ) -> LlamaToken {
        // `sample` also accepts the token into the chain (penalties' history).
        self.sampler.sample(ctx, idx)
    }

    /// Handles a freshly sampled token. Returns the finish reason when the generation is over.
    pub(crate) fn accept(&mut self, token: LlamaToken, model: &LlamaModel) -> Option<FinishReason> {
        if self.first_token.is_none() {
            self.first_token = Some(Instant::now());
        }
        if model.vocab().is_eog(token) {
            return Some(FinishReason::Stop);
        }
        self.generated += 1;
        let piece = model.vocab().token_to_piece(token, false, None);
        let emitted = self.text.push(&piece);
        self.send_text(emitted.text);
        if emitted.stopped {
            return Some(FinishReason::Stop);
        }
        if self.generated >= self.max_tokens {
            return Some(FinishReason::Length);
        }
        self.next_token = Some(token);
        None
    }

    /// Sends the rest of the text and the final `Done` event.
    pub(crate) fn finish(mut self, finish_reason: FinishReason) -> Usage {
        let rest = self.text.finish();
        self.send_text(rest);
        let usage = Usage {
            prompt_tokens: self.prompt_len as u32,
            cached_prompt_tokens: self.cached_prompt_tokens as u32,
            completion_tokens: self.generated,
            time_to_first_token: self
                .first_token
                .map(|t| t.duration_since(self.submitted).as_secs_f64()),
            total_time: self.submitted.elapsed().as_secs_f64(),
        };
        let _ = self.events.send(Event::Done {
            finish_reason,
            usage: usage.clone(),
        });
        usage
    }

    pub(crate) fn fail(self, error: crate::EngineError) {
        let _ = self.events.send(Event::Error(error));
    }

    fn send_text(&self, text: String) {
        if !text.is_empty() {
            let _ = self.events.send(Event::Text(text));
        }
    }
}

/// llama.cpp's sampler chain for one request's options: greedy when temperature is 0,
/// otherwise penalties → top-k → top-p → min-p → temperature → seeded draw.
fn build_sampler(options: &SamplingOptions, model: &LlamaModel) -> LlamaSampler {
    let mut chain = Vec::new();
    if options.repeat_penalty != 1.0 {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            options.repeat_last_n,
            options.repeat_penalty,
            0.0,
            0.0,
        ));
    }
    if options.temperature == 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        if options.top_k > 0 {
            chain.push(LlamaSampler::top_k(options.top_k));
        }
        if options.top_p < 1.0 {
            chain.push(LlamaSampler::top_p(options.top_p, 1));
        }
        if options.min_p > 0.0 {
            chain.push(LlamaSampler::min_p(options.min_p, 1));
        }
        chain.push(LlamaSampler::temp(options.temperature));
        let seed = options.seed.unwrap_or_else(random_seed);
        chain.push(LlamaSampler::dist(seed));
    }
    LlamaSampler::chain_simple(chain)
}

fn random_seed() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now()) as u32
}
