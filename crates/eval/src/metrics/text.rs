//! Text normalisation shared by the metrics: Unicode NFKC (full-width digits and letters become
//! ASCII, `￥` becomes `¥`), lower case, and the comparison units of ROUGE-L.

use unicode_normalization::UnicodeNormalization;

/// NFKC and lower case.
pub fn normalize(text: &str) -> String {
    text.nfkc().collect::<String>().to_lowercase()
}

/// Comparison units: each CJK (or other non-Latin) letter is one unit, each run of ASCII
/// letters and digits is one unit (a word); whitespace and punctuation are dropped.
pub fn units(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in normalize(text).chars() {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// The answer says exactly the reference, ignoring case, width, whitespace and punctuation.
pub fn exact_match(reference: &str, answer: &str) -> bool {
    units(reference) == units(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_split_cjk_by_character_and_latin_by_word() {
        assert_eq!(
            units("专业版 Pro，２TB！"),
            vec!["专", "业", "版", "pro", "2tb"]
        );
    }

    #[test]
    fn exact_match_ignores_width_case_and_punctuation() {
        assert!(exact_match("退款需 7 天。", "退款需７天"));
        assert!(exact_match("Yes, 9:00.", "yes 9 00"));
        assert!(!exact_match("退款需 7 天", "退款需 3 天"));
    }
}
