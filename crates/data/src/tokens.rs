//! Training rendering and token-length statistics.
//!
//! Owns: the exact text an example is trained on ([`render_chatml`]), the [`TokenCounter`]
//! seam through which the caller supplies the model's tokenizer, and the length statistics
//! with the `max_seq_length` recommendation. The trainer must render examples with the same
//! function so the measured lengths are the trained lengths.

use serde::{Deserialize, Serialize};

/// Counts the tokens of a text with some tokenizer (the host passes the default model's).
pub trait TokenCounter {
    fn count(&self, text: &str) -> usize;

    /// Name of the tokenizer, recorded in the report.
    fn name(&self) -> String {
        "custom".to_string()
    }
}

impl<F: Fn(&str) -> usize> TokenCounter for F {
    fn count(&self, text: &str) -> usize {
        self(text)
    }
}

/// A tokenizer-free estimate: each CJK character (and any other non-ASCII, non-space
/// character) is one token, each ASCII word one token per started 4 characters, each ASCII
/// punctuation mark one token. For tests and rough reports; not the model's tokenizer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApproxTokenCounter;

impl TokenCounter for ApproxTokenCounter {
    fn count(&self, text: &str) -> usize {
        let mut tokens = 0;
        let mut word = 0usize;
        for c in text.chars() {
            if c.is_ascii_alphanumeric() {
                word += 1;
                continue;
            }
            tokens += word.div_ceil(4);
            word = 0;
            if !c.is_whitespace() {
                tokens += 1;
            }
        }
        tokens + word.div_ceil(4)
    }

    fn name(&self) -> String {
        "approximate".to_string()
    }
}

/// The training (and serving) rendering of one question/answer pair, in ChatML:
/// `<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n`.
pub fn render_chatml(question: &str, answer: &str) -> String {
    format!("<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n{answer}<|im_end|>\n")
}

/// Share of length added on top of p99 before rounding up to a recommended length.
pub const HEADROOM: f64 = 0.10;

/// Token lengths of the rendered examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenStats {
    /// Tokenizer that measured the lengths ([`TokenCounter::name`]).
    pub tokenizer: String,
    /// Number of examples measured.
    pub count: usize,
    pub min: usize,
    pub mean: f64,
    pub p50: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
    /// Smallest length from 64, 96, 128, 192, 256, 384, … (powers of two and 1.5×) covering
    /// p99 plus [`HEADROOM`].
    pub recommended_max_seq_length: usize,
    /// Share of examples longer than the recommendation (they would be truncated).
    pub truncated_fraction: f64,
}

/// Nearest-rank percentile of sorted `values` (`p` in 0..=100).
pub fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Smallest "power-of-two-friendly" length (2^k or 1.5 × 2^k, at least 64) ≥ `target`.
pub fn friendly_length(target: usize) -> usize {
    let mut base = 64usize;
    loop {
        if base >= target {
            return base;
        }
        if base + base / 2 >= target {
            return base + base / 2;
        }
        base *= 2;
    }
}

/// Statistics and recommendation for `lengths` (any order) measured by `tokenizer`.
pub fn token_stats(lengths: &[usize], tokenizer: &str) -> TokenStats {
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let p99 = percentile(&sorted, 99.0);
    let recommended = friendly_length((p99 as f64 * (1.0 + HEADROOM)).ceil() as usize);
    let truncated = sorted.iter().filter(|&&l| l > recommended).count();
    TokenStats {
        tokenizer: tokenizer.to_string(),
        count: n,
        min: sorted.first().copied().unwrap_or(0),
        mean: if n == 0 {
            0.0
        } else {
            sorted.iter().sum::<usize>() as f64 / n as f64
        },
        p50: percentile(&sorted, 50.0),
        p90: percentile(&sorted, 90.0),
        p99,
        max: sorted.last().copied().unwrap_or(0),
        recommended_max_seq_length: recommended,
        truncated_fraction: if n == 0 {
            0.0
        } else {
            truncated as f64 / n as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chatml_rendering_is_exact() {
        assert_eq!(
            render_chatml("Q?", "A."),
            "<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\nA.<|im_end|>\n"
        );
    }

    #[test]
    fn approximate_counter() {
        let c = ApproxTokenCounter;
        assert_eq!(c.count(""), 0);
        assert_eq!(c.count("退款政策"), 4);
        assert_eq!(c.count("AES-256 ok"), 4); // AES, -, 256, ok
        assert_eq!(c.count("international"), 4);
        let closure = |t: &str| t.len();
        assert_eq!(TokenCounter::count(&closure, "abc"), 3);
    }

    #[test]
    fn percentiles_and_recommendation() {
        let lengths: Vec<usize> = (1..=100).collect();
        let s = token_stats(&lengths, "t");
        assert_eq!((s.p50, s.p90, s.p99, s.max, s.min), (50, 90, 99, 100, 1));
        assert_eq!(s.recommended_max_seq_length, 128); // 99 * 1.1 = 109 -> 128
        assert_eq!(s.truncated_fraction, 0.0);

        let mut lengths = vec![100; 99];
        lengths.push(1000);
        let s = token_stats(&lengths, "t");
        assert_eq!((s.p99, s.max), (100, 1000));
        assert_eq!(s.recommended_max_seq_length, 128);
        assert!((s.truncated_fraction - 0.01).abs() < 1e-12);

        let empty = token_stats(&[], "t");
        assert_eq!(
            (empty.count, empty.max, empty.recommended_max_seq_length),
            (0, 0, 64)
        );
    }

    #[test]
    fn friendly_lengths() {
        let got: Vec<usize> = [1, 64, 65, 97, 129, 193, 257, 385, 513, 5000]
            .iter()
            .map(|&t| friendly_length(t))
            .collect();
        assert_eq!(got, vec![64, 64, 96, 128, 192, 256, 384, 512, 768, 6144]);
    }
}
