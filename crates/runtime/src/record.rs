//! What one request's generations did (tokens, time to first token), gathered while the guest
//! runs and read when the response ends, for the access log line.

use std::sync::Mutex;

use kefu_engine::Usage;

/// Shared by a request's store (written as generations end) and its response body (read at
/// the end).
#[derive(Debug, Default)]
pub(crate) struct RequestRecord {
    totals: Mutex<Totals>,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Totals {
    pub generations: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Time to first token of the request's first generation.
    pub ttft: Option<f64>,
}

impl RequestRecord {
    pub fn generation_done(&self, usage: &Usage) {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        t.generations += 1;
        t.prompt_tokens += u64::from(usage.prompt_tokens);
        t.completion_tokens += u64::from(usage.completion_tokens);
        if t.ttft.is_none() {
            t.ttft = usage.time_to_first_token;
        }
    }

    pub fn totals(&self) -> Totals {
        *self.totals.lock().unwrap_or_else(|e| e.into_inner())
    }
}
