//! Per-key request quotas: a fixed one-minute window per API key, counted in the key-value
//! store under `quota:<sha256 of the key>` as `{"minute": <unix minute>, "count": n}`.
//!
//! One row per key (the window lives in the value), so counters do not pile up. The Spin
//! key-value interface has no atomic increment: concurrent requests of one key may read the
//! same count, so a burst can exceed the limit by up to the number of requests in flight at
//! once. The quota bounds sustained use; the host's queue bounds bursts.

use serde::{Deserialize, Serialize};

/// Key prefix of quota counters.
pub const QUOTA_PREFIX: &str = "quota:";

/// The counter key of a caller, by the hex digest of its API key.
pub fn quota_key(key_digest_hex: &str) -> String {
    format!("{QUOTA_PREFIX}{key_digest_hex}")
}

/// A stored counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Unix time in minutes.
    pub minute: u64,
    /// Requests counted in that minute.
    pub count: u32,
}

/// The verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store this counter.
    Allow(Window),
    /// Over the limit; retry after this many seconds (the start of the next window).
    Reject { retry_after: u32 },
}

/// Counts one request at `now` (Unix seconds) against `limit` requests a minute, given the
/// stored counter (absent or unreadable: a fresh window).
pub fn check(stored: Option<&[u8]>, limit: u32, now: u64) -> Decision {
    let minute = now / 60;
    let count = stored
        .and_then(|bytes| serde_json::from_slice::<Window>(bytes).ok())
        .filter(|w| w.minute == minute)
        .map_or(0, |w| w.count);
    if count >= limit {
        Decision::Reject {
            retry_after: (60 - now % 60) as u32,
        }
    } else {
        Decision::Allow(Window {
            minute,
            count: count + 1,
        })
    }
}

impl Window {
    pub fn to_bytes(self) -> Vec<u8> {
        serde_json::to_vec(&self).expect("a window serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stored: &mut Option<Vec<u8>>, limit: u32, now: u64) -> Decision {
        let decision = check(stored.as_deref(), limit, now);
        if let Decision::Allow(w) = decision {
            *stored = Some(w.to_bytes());
        }
        decision
    }

    #[test]
    fn fixed_window() {
        let mut stored = None;
        let t0 = 60 * 28_333_334 + 40; // 40 s into a minute
        assert!(matches!(run(&mut stored, 2, t0), Decision::Allow(_)));
        assert!(matches!(run(&mut stored, 2, t0 + 5), Decision::Allow(_)));
        assert_eq!(
            run(&mut stored, 2, t0 + 10),
            Decision::Reject { retry_after: 10 }
        );
        // The next minute starts a new window.
        assert_eq!(
            run(&mut stored, 2, t0 + 20),
            Decision::Allow(Window {
                minute: (t0 + 20) / 60,
                count: 1
            })
        );
    }

    #[test]
    fn retry_after_is_at_least_one_second_and_garbage_resets() {
        let full = Window {
            minute: 100,
            count: 5,
        }
        .to_bytes();
        assert_eq!(
            check(Some(&full), 5, 100 * 60 + 59),
            Decision::Reject { retry_after: 1 }
        );
        assert_eq!(
            check(Some(&full), 5, 100 * 60),
            Decision::Reject { retry_after: 60 }
        );
        assert!(matches!(
            check(Some(b"not json"), 5, 100 * 60),
            Decision::Allow(Window { count: 1, .. })
        ));
        assert_eq!(quota_key("ab"), "quota:ab");
    }
}
