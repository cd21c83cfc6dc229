//! Deterministic train/test split.
//!
//! Owns: choosing which entries go to the held-out test set. Entries are ranked by SHA-256 of
//! the seed and their id; the lowest `round(n × ratio)` ranks form the test set (at least one
//! entry when `ratio > 0` and there are two or more entries, never all of them). The choice
//! depends on the seed and the ids only, not on input order or format; both sets keep the
//! input order.

use sha2::{Digest, Sha256};

/// Number of test entries for `n` entries at `ratio` (0 ≤ ratio < 1).
pub fn test_count(n: usize, ratio: f64) -> usize {
    if n < 2 || ratio <= 0.0 {
        return 0;
    }
    ((n as f64 * ratio).round() as usize).clamp(1, n - 1)
}

/// Splits `ids` into (train, test) index lists, each in ascending order.
pub fn split(ids: &[&str], ratio: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut ranked: Vec<([u8; 32], usize)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let mut h = Sha256::new();
            h.update(seed.to_le_bytes());
            h.update(id.as_bytes());
            (h.finalize().into(), i)
        })
        .collect();
    ranked.sort();
    let k = test_count(ids.len(), ratio);
    let mut test: Vec<usize> = ranked[..k].iter().map(|&(_, i)| i).collect();
    test.sort_unstable();
    let mut is_test = vec![false; ids.len()];
    for &i in &test {
        is_test[i] = true;
    }
    let train = (0..ids.len()).filter(|&i| !is_test[i]).collect();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("faq-{i:04}")).collect()
    }

    #[test]
    fn same_seed_same_split_any_order() {
        let owned = ids(50);
        let a: Vec<&str> = owned.iter().map(String::as_str).collect();
        let (train, test) = split(&a, 0.2, 7);
        assert_eq!(test.len(), 10);
        assert_eq!(train.len() + test.len(), 50);
        assert_eq!(split(&a, 0.2, 7), (train.clone(), test.clone()));

        let test_ids: Vec<&str> = test.iter().map(|&i| a[i]).collect();
        let mut reversed = a.clone();
        reversed.reverse();
        let (_, test_rev) = split(&reversed, 0.2, 7);
        let mut test_rev_ids: Vec<&str> = test_rev.iter().map(|&i| reversed[i]).collect();
        test_rev_ids.sort();
        assert_eq!(test_rev_ids, test_ids);

        let (_, other) = split(&a, 0.2, 8);
        assert_ne!(other, test);
    }

    #[test]
    fn counts_at_the_edges() {
        assert_eq!(test_count(0, 0.1), 0);
        assert_eq!(test_count(1, 0.5), 0);
        assert_eq!(test_count(2, 0.01), 1);
        assert_eq!(test_count(10, 0.99), 9);
        assert_eq!(test_count(10, 0.0), 0);
        assert_eq!(test_count(57, 0.1), 6);
    }
}
