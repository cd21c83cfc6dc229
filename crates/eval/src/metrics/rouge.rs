//! ROUGE-L: the longest common subsequence of reference and answer units (see
//! [`super::text::units`]: characters for Chinese, words for Latin script), as an F1 score.

use super::text::units;

/// ROUGE-L F1 in [0, 1]: precision = LCS / answer units, recall = LCS / reference units.
/// Two empty texts score 1; one empty text scores 0.
pub fn rouge_l(reference: &str, answer: &str) -> f64 {
    let r = units(reference);
    let a = units(answer);
    if r.is_empty() && a.is_empty() {
        return 1.0;
    }
    let lcs = lcs_len(&r, &a);
    if lcs == 0 {
        return 0.0;
    }
    let precision = lcs as f64 / a.len() as f64;
    let recall = lcs as f64 / r.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// Length of the longest common subsequence (one row of the usual table at a time).
pub fn lcs_len<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                cur[j].max(prev[j + 1])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcs_of_known_strings() {
        let a: Vec<char> = "ABCBDAB".chars().collect();
        let b: Vec<char> = "BDCABA".chars().collect();
        assert_eq!(lcs_len(&a, &b), 4);
    }

    #[test]
    fn chinese_by_hand() {
        // Reference units 专 业 版 每 月 30 元 (7; "30" is one word), answer units
        // 专 业 版 30 元 (5). LCS = 5, so P = 1, R = 5/7 and F1 = 2 * (5/7) / (12/7) = 10/12.
        let f = rouge_l("专业版每月30元", "专业版30元");
        assert!((f - 10.0 / 12.0).abs() < 1e-12, "{f}");
    }

    #[test]
    fn chinese_partial_overlap() {
        // 退款到原支付方式 (8) vs 退回原账户 (5): LCS 退 原 = 2; P = 2/5, R = 2/8.
        let f = rouge_l("退款到原支付方式", "退回原账户");
        let (p, r) = (2.0 / 5.0, 2.0 / 8.0);
        assert!((f - 2.0 * p * r / (p + r)).abs() < 1e-12, "{f}");
    }

    #[test]
    fn edge_cases() {
        assert_eq!(rouge_l("", ""), 1.0);
        assert_eq!(rouge_l("有内容", ""), 0.0);
        assert_eq!(rouge_l("完全相同", "完全相同。"), 1.0);
        assert_eq!(rouge_l("abc", "xyz"), 0.0);
    }
}
