//! Typo tolerance for Latin words: a query word that neither the knowledge base nor the
//! lexicon uses is replaced by a known word one edit away (`pasword` → `password`,
//! `subscripton` → `subscription`), so a slip of the thumb does not sink coverage.
//!
//! Hand-written because the vocabulary is the index's own (hashed terms plus the lexicon's
//! words) and one edit is enough: a spelling crate would bring its own dictionary, which
//! would "correct" words towards English rather than towards the FAQ. Only the edits that
//! typing makes are tried, and never on the first letter: a dropped, doubled or swapped
//! letter, or a neighbouring key on a QWERTY keyboard, in words of [`MIN_LEN`] letters or
//! more. Otherwise an off-topic word lands on an FAQ word (`fever` → `never`,
//! `story` → `store`).

use crate::text;

/// Shortest word corrected, and shortest correction.
pub const MIN_LEN: usize = 5;

/// `query` (normalised) with each unknown Latin word of [`MIN_LEN`]+ letters replaced by the
/// known word one edit away that most entries use; `None` when nothing changed. `df` gives
/// the number of entries using a stemmed word, `None` when the word is unknown.
pub fn correct(query: &str, df: impl Fn(&str) -> Option<usize>) -> Option<String> {
    let known = |w: &str| {
        let stemmed = text::stem(w);
        df(&stemmed).or_else(|| text::lexicon_knows(&stemmed).then_some(0))
    };
    let mut out = String::with_capacity(query.len());
    let mut changed = false;
    let mut rest = query;
    while let Some(start) = rest.find(|c: char| c.is_ascii_lowercase()) {
        let len = rest[start..]
            .find(|c: char| !c.is_ascii_lowercase())
            .unwrap_or(rest.len() - start);
        let word = &rest[start..start + len];
        out.push_str(&rest[..start]);
        // A letter run glued to digits (`2tb`) is a unit, not a word.
        let glued = rest[..start].ends_with(|c: char| c.is_ascii_digit())
            || rest[start + len..].starts_with(|c: char| c.is_ascii_digit());
        let fix = (len >= MIN_LEN && !glued && !text::is_stop_word(word) && known(word).is_none())
            .then(|| best_neighbour(word, &known))
            .flatten();
        match fix {
            Some(w) => {
                out.push_str(&w);
                changed = true;
            }
            None => out.push_str(word),
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Keys next to each letter on a QWERTY keyboard.
fn neighbours(c: u8) -> &'static [u8] {
    const NEAR: [&[u8]; 26] = [
        b"qwsz", b"vghn", b"xdfv", b"serfcx", b"wsdr", b"drtgvc", b"ftyhbv", b"gyujnb", b"ujko",
        b"huikmn", b"jiolm", b"kop", b"njk", b"bhjm", b"iklp", b"ol", b"wa", b"edft", b"awedxz",
        b"rfgy", b"yhji", b"cfgb", b"qase", b"zsdc", b"tghu", b"asx",
    ];
    NEAR[(c - b'a') as usize]
}

/// The known word one typing slip away from `word` (a letter dropped, doubled or inserted,
/// two letters swapped, a neighbouring key hit; never the first letter) with the highest
/// count; the first in that order on ties.
fn best_neighbour(word: &str, known: &impl Fn(&str) -> Option<usize>) -> Option<String> {
    let b = word.as_bytes();
    let mut best: Option<(usize, String)> = None;
    let mut consider = |cand: Vec<u8>| {
        if cand.len() < MIN_LEN {
            return; // `story` is not `stor(ed)`
        }
        let cand = String::from_utf8(cand).expect("ASCII");
        if let Some(n) = known(&cand)
            && best.as_ref().is_none_or(|(m, _)| n > *m)
        {
            best = Some((n, cand));
        }
    };
    for i in 1..b.len() {
        consider([&b[..i], &b[i + 1..]].concat());
    }
    for i in 1..b.len() - 1 {
        let mut t = b.to_vec();
        t.swap(i, i + 1);
        consider(t);
    }
    for i in 1..b.len() {
        for &c in neighbours(b[i]) {
            let mut t = b.to_vec();
            t[i] = c;
            consider(t);
        }
    }
    for i in 1..=b.len() {
        for c in b'a'..=b'z' {
            consider([&b[..i], &[c], &b[i..]].concat());
        }
    }
    best.map(|(_, w)| w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab(w: &str) -> Option<usize> {
        match w {
            "subscription" => Some(3),
            "download" => Some(5),
            "encrypt" => Some(2),
            _ => None,
        }
    }

    #[test]
    fn corrects_one_edit_towards_the_vocabulary() {
        assert_eq!(
            correct("forgot my pasword", vocab).as_deref(),
            Some("forgot my password"),
            "lexicon word"
        );
        assert_eq!(
            correct("cancel my subscripton?", vocab).as_deref(),
            Some("cancel my subscription?")
        );
        assert_eq!(
            correct("downlaod speed", vocab).as_deref(),
            Some("download speed")
        );
    }

    #[test]
    fn leaves_known_short_glued_and_distant_words() {
        assert_eq!(correct("my subscription", vocab), None);
        assert_eq!(correct("dwnld", vocab), None, "two edits");
        assert_eq!(correct("2tbs plan", vocab), None, "unit glued to a number");
        assert_eq!(correct("weather tomorrow", vocab), None);
        assert_eq!(correct("fencrypt", vocab), None, "first letter");
        assert_eq!(correct("encrypp", vocab), None, "p is not next to t");
        assert_eq!(correct("encrypr", vocab).as_deref(), Some("encrypt"));
        assert_eq!(correct("退款 pasw", vocab), None, "too short");
    }
}
