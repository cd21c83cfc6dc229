//! Engine counters, written by the engine thread and submitters, read by the metrics layer.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) queued: AtomicUsize,
    pub(crate) live_sequences: AtomicUsize,
    pub(crate) kv_positions: AtomicUsize,
    pub(crate) kv_capacity: AtomicUsize,
    pub(crate) requests: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) cached_prompt_tokens: AtomicU64,
    pub(crate) generated_tokens: AtomicU64,
    pub(crate) prefix_cache_hits: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) rejected_overloaded: AtomicU64,
    pub(crate) decode_steps: AtomicU64,
}

impl Stats {
    /// Takes a queue place unless `capacity` are taken.
    pub(crate) fn try_enqueue(&self, capacity: usize) -> bool {
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                (q < capacity).then_some(q + 1)
            })
            .is_ok()
    }

    pub(crate) fn dequeue(&self) {
        self.queued.fetch_sub(1, Ordering::SeqCst);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        StatsSnapshot {
            queued: self.queued.load(Ordering::Relaxed),
            live_sequences: self.live_sequences.load(Ordering::Relaxed),
            kv_positions: self.kv_positions.load(Ordering::Relaxed),
            kv_capacity: self.kv_capacity.load(Ordering::Relaxed),
            requests: r(&self.requests),
            prompt_tokens: r(&self.prompt_tokens),
            cached_prompt_tokens: r(&self.cached_prompt_tokens),
            generated_tokens: r(&self.generated_tokens),
            prefix_cache_hits: r(&self.prefix_cache_hits),
            cancelled: r(&self.cancelled),
            rejected_overloaded: r(&self.rejected_overloaded),
            decode_steps: r(&self.decode_steps),
        }
    }
}

/// A point-in-time copy of the engine's counters. Totals count since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Requests accepted but not yet given a sequence.
    pub queued: usize,
    pub live_sequences: usize,
    /// KV positions held by live sequences and the prefix cache. Shared prefixes are counted
    /// once per holder, so this is an upper bound on cells used.
    pub kv_positions: usize,
    /// Cells in the KV pool.
    pub kv_capacity: usize,
    /// Requests that got a sequence.
    pub requests: u64,
    pub prompt_tokens: u64,
    /// Prompt tokens copied from a shared prefix instead of computed.
    pub cached_prompt_tokens: u64,
    pub generated_tokens: u64,
    /// Requests that reused a shared prefix.
    pub prefix_cache_hits: u64,
    /// Generations whose receiver went away before the end.
    pub cancelled: u64,
    pub rejected_overloaded: u64,
    pub decode_steps: u64,
}
