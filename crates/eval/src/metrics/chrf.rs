//! chrF (Popović, 2015): F-score over character n-grams, n = 1..=6, recall weighted by
//! beta = 2. Whitespace is removed first (as sacrebleu does by default); text is NFKC and lower
//! case. Precision and recall are averaged over the orders both texts are long enough for.

use std::collections::HashMap;

use super::text::normalize;

/// Highest n-gram order.
pub const ORDER: usize = 6;
/// Recall weight.
pub const BETA: f64 = 2.0;

/// chrF in [0, 100]. Two empty texts score 100; one empty text scores 0.
pub fn chrf(reference: &str, answer: &str) -> f64 {
    let r: Vec<char> = normalize(reference)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let a: Vec<char> = normalize(answer)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if r.is_empty() && a.is_empty() {
        return 100.0;
    }
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0usize);
    for n in 1..=ORDER {
        if r.len() < n || a.len() < n {
            break;
        }
        let rc = ngrams(&r, n);
        let ac = ngrams(&a, n);
        let matched: usize = ac
            .iter()
            .map(|(g, &c)| c.min(rc.get(g).copied().unwrap_or(0)))
            .sum();
        precision += matched as f64 / (a.len() - n + 1) as f64;
        recall += matched as f64 / (r.len() - n + 1) as f64;
        orders += 1;
    }
    if orders == 0 {
        return 0.0;
    }
    let (p, r) = (precision / orders as f64, recall / orders as f64);
    if p + r == 0.0 {
        return 0.0;
    }
    let b2 = BETA * BETA;
    100.0 * (1.0 + b2) * p * r / (b2 * p + r)
}

fn ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut counts = HashMap::new();
    for w in chars.windows(n) {
        *counts.entry(w).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_disjoint() {
        assert!((chrf("十个工作日", "十个工作日") - 100.0).abs() < 1e-9);
        assert_eq!(chrf("abc", "xyz"), 0.0);
        assert_eq!(chrf("", ""), 100.0);
        assert_eq!(chrf("abc", ""), 0.0);
    }

    #[test]
    fn by_hand() {
        // "abc" vs "abd": 1-grams 2/3 match both ways, 2-grams 1/2, 3-grams 0/1.
        // P = R = (2/3 + 1/2 + 0) / 3 = 7/18, and F_beta of equal P and R is that value.
        let f = chrf("abc", "abd");
        assert!((f - 100.0 * 7.0 / 18.0).abs() < 1e-9, "{f}");
    }

    #[test]
    fn recall_weighs_more_than_precision() {
        // Answer "价格" inside reference "价格是30元": P = 1 on every order it reaches, R < 1.
        // A longer answer with the same recall but lower precision scores lower.
        let short = chrf("价格是30元", "价格");
        let padded = chrf("价格是30元", "价格啊啊啊啊");
        assert!(short > padded);
        // 1-gram: P = 1, R = 2/6; 2-gram: P = 1, R = 1/5. P = 1, R = (1/3 + 1/5) / 2 = 4/15.
        let (p, r) = (1.0, 4.0 / 15.0);
        let expected = 100.0 * 5.0 * p * r / (4.0 * p + r);
        assert!((short - expected).abs() < 1e-9, "{short} vs {expected}");
    }

    #[test]
    fn whitespace_and_width_do_not_matter() {
        assert!((chrf("10 TB", "１０tb") - 100.0).abs() < 1e-9);
    }
}
