//! The prefix cache: prompts kept in KV under reserved sequence ids after their request moves
//! on, so the next request with the same beginning (the system prompt every support chat
//! carries) copies those cells instead of prefilling them again.

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;

/// Length of the common prefix of two token lists.
pub(crate) fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

struct Entry {
    tokens: Vec<LlamaToken>,
    last_used: u64,
}

/// Cached prompts in sequence ids `first_id..first_id + slots`.
pub(crate) struct PrefixCache {
    first_id: i32,
    entries: Vec<Option<Entry>>,
    clock: u64,
}

impl PrefixCache {
    pub(crate) fn new(first_id: i32, slots: usize) -> Self {
        Self {
            first_id,
            entries: (0..slots).map(|_| None).collect(),
            clock: 0,
        }
    }

    /// The entry sharing the longest prefix with `tokens`: (shared length, sequence id).
    pub(crate) fn best_match(&mut self, tokens: &[LlamaToken]) -> Option<(usize, i32)> {
        self.clock += 1;
        let (slot, n) = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, common_prefix(&e.tokens, tokens))))
            .max_by_key(|&(_, n)| n)?;
        if n == 0 {
            return None;
        }
        if let Some(e) = self.entries[slot].as_mut() {
            e.last_used = self.clock;
        }
        Some((n, self.first_id + slot as i32))
    }

    /// Keeps the prompt just prefilled by sequence `from`. It replaces the entry of the same
    /// family (sharing at least `min_shared` tokens) so different system prompts keep separate
    /// entries, else the least recently used one. Sharing cells makes this free until `from`
    /// ends.
    pub(crate) fn remember(
        &mut self,
        ctx: &mut LlamaContext<'_>,
        from: i32,
        tokens: Vec<LlamaToken>,
        min_shared: usize,
    ) {
        if self.entries.is_empty() {
            return;
        }
        self.clock += 1;
        let family = self.entries.iter().position(|e| {
            e.as_ref()
                .is_some_and(|e| common_prefix(&e.tokens, &tokens) >= min_shared)
        });
        let slot = family.unwrap_or_else(|| {
            self.entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.as_ref().map_or(0, |e| e.last_used))
                .map(|(i, _)| i)
                .expect("at least one slot")
        });
        let id = self.first_id + slot as i32;
        let _ = ctx.kv_cache_seq_rm(id, None, None);
        let n = tokens.len() as u32;
        if ctx.kv_cache_seq_cp(from, id, Some(0), Some(n)).is_ok() {
            self.entries[slot] = Some(Entry {
                tokens,
                last_used: self.clock,
            });
        } else {
            self.entries[slot] = None;
        }
    }

    /// KV positions held by cached prompts.
    pub(crate) fn positions(&self) -> usize {
        self.entries.iter().flatten().map(|e| e.tokens.len()).sum()
    }
}
