//! Text primitives shared by every other module: width folding and lower-casing, language
//! detection (Chinese or English), phrase matching, and the retrieval tokeniser (CJK unigrams
//! and bigrams, lower-case stemmed Latin words, numbers, synonym concepts).
//!
//! Tokens are 64-bit hashes, not strings: indexing a knowledge base allocates no string per
//! token, and the index stays small. Everything here is pure; the word lists are compiled
//! into lookup tables once per process (once per Wasm instance, well under a millisecond).

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use crate::lexicon;

/// Changes whenever tokenisation changes in a way the word lists do not show; part of the
/// precomputed index fingerprint.
pub const TOKENIZER_VERSION: &str = "kefu-guard tokenizer 3";

/// Language of a user message, used to pick refusal, hand-off and placeholder texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Chinese (any script; detected by CJK ideographs).
    Zh,
    /// English, and the fallback for anything that is not Chinese.
    En,
}

impl Lang {
    /// `"zh"` or `"en"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// True for CJK unified ideographs (basic block, extension A, compatibility, extensions B+).
pub fn is_cjk(c: char) -> bool {
    matches!(
        c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F
    )
}

/// Folds a full-width ASCII form (`Ａ`, `１`, `＠`) and the ideographic space to ASCII.
pub fn fold_char(c: char) -> char {
    match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        0x3000 => ' ',
        _ => c,
    }
}

/// Width-folded, lower-cased copy of `s`: the form every matcher in this crate works on.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = fold_char(c);
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
        } else if is_cjk(c) || !c.is_alphabetic() {
            out.push(c);
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// FxHash-style hasher for the small static tables (no DoS exposure: keys are our own).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// Chinese when CJK ideographs are at least twice as many as Latin words, so a product name
/// in an English sentence (or an English term in a Chinese one) does not flip the language.
pub fn detect_lang(s: &str) -> Lang {
    detect_lang_parts(&[s])
}

/// [`detect_lang`] over several texts taken together.
pub fn detect_lang_parts(parts: &[&str]) -> Lang {
    let (mut cjk, mut words, mut in_word) = (0usize, 0usize, false);
    for c in parts.iter().flat_map(|p| p.chars().chain([' '])) {
        let c = fold_char(c);
        if is_cjk(c) {
            cjk += 1;
            in_word = false;
        } else if c.is_ascii_alphabetic() {
            if !in_word {
                words += 1;
            }
            in_word = true;
        } else {
            in_word = false;
        }
    }
    if cjk > 0 && cjk >= words * 2 {
        Lang::Zh
    } else {
        Lang::En
    }
}

/// Latin words (letters only, or digits only) of normalised text, unstemmed, in order.
pub fn latin_words(norm: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = norm.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphanumeric() {
            let digit = c.is_ascii_digit();
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() && b[i].is_ascii_digit() == digit {
                i += 1;
            }
            out.push(&norm[start..i]);
        } else {
            i += 1;
        }
    }
    out
}

/// Asked as a question: a question word, or a question mark or particle at the end.
pub fn is_question(norm: &str, words: &[String]) -> bool {
    let end = norm.trim_end_matches(|c: char| c.is_whitespace() || c == '!' || c == '。');
    first_cue(norm, words, lexicon::HOW_TO).is_some() || end.ends_with(['?', '吗', '么', '呢'])
}

/// The sentences of normalised text, each with its closing punctuation: they end at `?`, `!`,
/// `。`, a line break, or a full stop followed by a space or the end (not `1.5GB`).
pub fn sentences(norm: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = norm.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends = matches!(c, '?' | '!' | '。' | '？' | '！' | '\n')
            || (c == '.' && next.is_none_or(char::is_whitespace));
        if ends {
            let end = i + c.len_utf8();
            if !norm[start..end].trim().is_empty() {
                out.push(norm[start..end].trim());
            }
            start = end;
        }
    }
    if !norm[start..].trim().is_empty() {
        out.push(norm[start..].trim());
    }
    out
}

/// A light English stemmer (plural, -ing, -ed, final e) so `refunds`, `refunded` and
/// `refunding` meet. Applied until nothing changes, so `stem(stem(w)) == stem(w)`: queries,
/// entries and phrase lists all go through it alike.
pub fn stem(word: &str) -> String {
    let mut s = word.to_string();
    if !s.bytes().all(|b| b.is_ascii_lowercase()) {
        return s;
    }
    for _ in 0..4 {
        if !stem_once(&mut s) {
            break;
        }
    }
    s
}

/// Undoes the spelling changes of -ing/-ed: a doubled final consonant (`putting`, `logged`,
/// `planned`) and a dropped e after v (`having`, `moved`).
fn restore_verb(s: &mut String) {
    let b = s.as_bytes();
    let n = b.len();
    if n >= 4 && b[n - 1] == b[n - 2] && b"bdgmnprt".contains(&b[n - 1]) {
        s.pop();
    } else if s.ends_with('v') {
        s.push('e');
    }
}

/// One round of suffix stripping in place; false when nothing changed.
fn stem_once(s: &mut String) -> bool {
    let n = s.len();
    if n <= 3 {
        return false;
    }
    if s.ends_with("ies") && n >= 5 {
        s.truncate(n - 3);
        s.push('y');
    } else if s.ends_with("sses") {
        s.truncate(n - 2);
    } else if s.ends_with("ing") && n >= 6 {
        s.truncate(n - 3);
        restore_verb(s);
    } else if s.ends_with("ed") && n >= 5 {
        s.truncate(n - 2);
        restore_verb(s);
    } else if s.ends_with('s') && !s.ends_with("ss") && !s.ends_with("us") && !s.ends_with("is") {
        s.truncate(n - 1);
    }
    if s.len() > 4 && s.ends_with('e') {
        s.pop();
    }
    s.len() != n
}

/// True when `phrase` (normalised, words separated by single spaces) occurs in `words`
/// (stemmed) as consecutive words. Phrase words are stemmed the same way.
pub fn has_word_phrase(words: &[String], phrase: &str) -> bool {
    let owned;
    let parts: &[String] = match tables().cues.get(phrase) {
        Some(p) => p,
        None => {
            owned = latin_words(phrase)
                .into_iter()
                .map(stem)
                .collect::<Vec<_>>();
            &owned
        }
    };
    if parts.is_empty() || parts.len() > words.len() {
        return false;
    }
    words.windows(parts.len()).any(|w| w == parts)
}

/// Stemmed Latin words of normalised text (stop words kept): the form phrase matching uses.
/// Clause punctuation between two words becomes a `,` word, so a phrase never spans clauses
/// (`if I delete my account, is there…` holds no `my account is`).
pub fn stemmed_words(norm: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_end = 0;
    for w in latin_words(norm) {
        let start = w.as_ptr() as usize - norm.as_ptr() as usize;
        if !out.is_empty() && norm[last_end..start].contains(is_clause_break) {
            out.push(",".to_string());
        }
        out.push(stem(w));
        last_end = start + w.len();
    }
    out
}

/// Punctuation that ends a clause (and so a sentence).
pub(crate) fn is_clause_break(c: char) -> bool {
    ",.;:!?，。；：！？、\n".contains(c)
}

/// True when a cue matches normalised text: cues with CJK characters match as substrings,
/// Latin cues as whole-word phrases against `words` (from [`stemmed_words`]).
pub fn cue_matches(norm: &str, words: &[String], cue: &str) -> bool {
    if cue.chars().any(is_cjk) || !cue.bytes().all(|b| b.is_ascii_alphanumeric() || b == b' ') {
        norm.contains(cue)
    } else {
        has_word_phrase(words, cue)
    }
}

/// The first cue of `cues` that matches, if any.
pub fn first_cue<'a>(norm: &str, words: &[String], cues: &[&'a str]) -> Option<&'a str> {
    cues.iter()
        .copied()
        .find(|cue| cue_matches(norm, words, cue))
}

/// What a retrieval token stands for; the kind sets its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One CJK character.
    Uni,
    /// Two adjacent CJK characters.
    Bi,
    /// A stemmed Latin word or a number.
    Word,
    /// A synonym concept from the built-in word lists (both languages map to it).
    Concept,
}

impl Kind {
    /// Base weight: single characters say little on their own.
    pub fn weight(self) -> f32 {
        match self {
            Kind::Uni => 0.5,
            Kind::Bi | Kind::Word | Kind::Concept => 1.0,
        }
    }
}

/// One retrieval token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Token {
    /// FNV-1a hash of the kind tag and the token text.
    pub key: u64,
    /// What it stands for.
    pub kind: Kind,
    /// Character position of a CJK token (its first character); 0 for other kinds.
    pub pos: u32,
    /// Weight: the kind's weight, halved for a bigram with a vague character (`会被`).
    pub weight: f32,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(tag: u8, parts: &[&[u8]]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in std::iter::once(&tag).chain(parts.iter().flat_map(|p| p.iter())) {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// The index key of a stemmed Latin word.
pub(crate) fn word_key(stemmed: &str) -> u64 {
    fnv(b'w', &[stemmed.as_bytes()])
}

/// Whether a stemmed Latin word occurs in a synonym variant of the lexicon.
pub(crate) fn lexicon_knows(stemmed: &str) -> bool {
    tables().latin_vocab.contains(stemmed)
}

/// Whether a Latin word (or its stem) is an English stop word.
pub(crate) fn is_stop_word(word: &str) -> bool {
    let t = tables();
    t.en_stop.contains(word) || t.en_stop.contains(stem(word).as_str())
}

fn char_key(tag: u8, chars: &[char]) -> u64 {
    let mut buf = [0u8; 8];
    let mut n = 0;
    for c in chars {
        n += c.encode_utf8(&mut buf[n..]).len();
    }
    fnv(tag, &[&buf[..n]])
}

/// Appends the retrieval tokens of `text` (raw or normalised) to `out`.
///
/// First every synonym variant is replaced by its concept tokens (`退钱` and `refund` both
/// become the `refund` concept) and Chinese filler phrases (`我想`, `怎么办`) are dropped,
/// matching Chinese right to left, longest first; a currency sign adds the `price` concept.
/// Then CJK runs give unigrams and bigrams: particles (`的`, `吗`) give neither, vague
/// characters (`会`, `上`) give no unigram and half-weight bigrams, question-word bigrams are
/// skipped. Latin runs give stemmed words minus stop words, with digits split from letters
/// (`2tb` gives `2` and `tb`).
pub fn tokenize(text: &str, out: &mut Vec<Token>) {
    tokenize_into(text, &mut Sink { out, labels: None });
}

/// Like [`tokenize`], also returning a readable label per token (`bi:退款`, `concept:refund`).
pub fn tokenize_labelled(text: &str) -> (Vec<Token>, Vec<String>) {
    let mut out = Vec::new();
    let mut labels = Vec::new();
    tokenize_into(
        text,
        &mut Sink {
            out: &mut out,
            labels: Some(&mut labels),
        },
    );
    (out, labels)
}

struct Sink<'a> {
    out: &'a mut Vec<Token>,
    labels: Option<&'a mut Vec<String>>,
}

impl Sink<'_> {
    fn push(&mut self, token: Token, label: impl FnOnce() -> String) {
        self.out.push(token);
        if let Some(l) = self.labels.as_mut() {
            l.push(label());
        }
    }
}

/// A synonym variant or filler phrase, ready for matching.
struct Phrase<T> {
    parts: Vec<T>,
    /// `(name, token key)` of every concept listing this variant; empty for a filler that
    /// is only dropped.
    concepts: Vec<(&'static str, u64)>,
}

fn add_phrase<K: std::hash::Hash + Eq, T: PartialEq>(
    map: &mut FastMap<K, Vec<Phrase<T>>>,
    first: K,
    parts: Vec<T>,
    concept: Option<(&'static str, u64)>,
) {
    let list = map.entry(first).or_default();
    match list.iter_mut().find(|p| p.parts == parts) {
        Some(p) => p.concepts.extend(concept),
        None => list.push(Phrase {
            parts,
            concepts: concept.into_iter().collect(),
        }),
    }
}

/// The lexicon compiled for matching: synonyms and fillers indexed by their last
/// character (CJK) or first stemmed word (Latin), longest first, and the stop lists as sets.
/// Built once per process (once per Wasm instance).
struct Tables {
    /// Bit `c & 0xFFFF` set when some CJK-table phrase ends with `c`: a cheap pre-check.
    cjk_last: Vec<u64>,
    cjk: FastMap<char, Vec<Phrase<char>>>,
    latin: FastMap<String, Vec<Phrase<String>>>,
    en_stop: FastSet<&'static str>,
    particles: FastSet<char>,
    weak: FastSet<char>,
    stop_bigrams: FastSet<[char; 2]>,
    /// Stemmed words of every Latin cue in the lexicon's cue lists.
    cues: FastMap<&'static str, Vec<String>>,
    /// Stemmed words of every Latin synonym variant (for typo correction).
    latin_vocab: FastSet<String>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut p = Tables {
            cjk_last: vec![0; 1024],
            cjk: FastMap::default(),
            latin: FastMap::default(),
            en_stop: lexicon::EN_STOP.iter().copied().collect(),
            particles: lexicon::ZH_PARTICLES.chars().collect(),
            weak: lexicon::ZH_WEAK_CHARS.chars().collect(),
            stop_bigrams: lexicon::ZH_STOP_BIGRAMS
                .iter()
                .filter_map(|b| {
                    let mut c = b.chars();
                    Some([c.next()?, c.next()?])
                })
                .collect(),
            cues: lexicon::CUE_LISTS
                .iter()
                .flat_map(|l| l.iter())
                .map(|c| (*c, latin_words(c).into_iter().map(stem).collect()))
                .collect(),
            latin_vocab: FastSet::default(),
        };
        let synonyms = lexicon::SYNONYMS.iter().flat_map(|(name, variants)| {
            let key = fnv(b'c', &[name.as_bytes()]);
            variants.iter().map(move |v| (*v, Some((*name, key))))
        });
        let fillers = lexicon::ZH_FILLERS.iter().map(|f| (*f, None));
        for (v, concept) in synonyms.chain(fillers) {
            if v.chars().any(is_cjk) {
                let parts: Vec<char> = v.chars().collect();
                let last = parts[parts.len() - 1];
                add_phrase(&mut p.cjk, last, parts, concept);
            } else {
                let parts: Vec<String> = latin_words(v).into_iter().map(stem).collect();
                p.latin_vocab.extend(parts.iter().cloned());
                add_phrase(&mut p.latin, parts[0].clone(), parts, concept);
            }
        }
        for &c in p.cjk.keys() {
            let bit = c as usize & 0xFFFF;
            p.cjk_last[bit / 64] |= 1 << (bit % 64);
        }
        // Longest first; on equal length the earlier entry (synonyms before fillers) wins.
        for list in p.cjk.values_mut() {
            list.sort_by_key(|x| std::cmp::Reverse(x.parts.len()));
        }
        for list in p.latin.values_mut() {
            list.sort_by_key(|x| std::cmp::Reverse(x.parts.len()));
        }
        p
    })
}

fn tokenize_into(text: &str, out: &mut Sink<'_>) {
    let table = tables();
    let norm = normalize(text);
    let mut chars: Vec<char> = norm.chars().collect();
    let concept = |out: &mut Sink<'_>, c: &[(&'static str, u64)]| {
        for &(name, key) in c {
            out.push(
                Token {
                    key,
                    kind: Kind::Concept,
                    pos: 0,
                    weight: 1.0,
                },
                || format!("concept:{name}"),
            );
        }
    };
    // Reverse maximum matching (right to left, longest first), which segments Chinese
    // better than left to right: `加密码` is 加 + 密码, `免费用户` is 免费 + 用户.
    let mut j = chars.len();
    while j > 0 {
        let bit = chars[j - 1] as usize & 0xFFFF;
        if table.cjk_last[bit / 64] & (1 << (bit % 64)) == 0 {
            j -= 1;
            continue;
        }
        let found = table
            .cjk
            .get(&chars[j - 1])
            .and_then(|list| list.iter().find(|p| chars[..j].ends_with(&p.parts)));
        match found {
            Some(p) => {
                concept(out, &p.concepts);
                chars[j - p.parts.len()..j].fill(' ');
                j -= p.parts.len();
            }
            None => j -= 1,
        }
    }
    // A price states the topic even when no word does (`Basic (1TB, ¥12)`).
    if norm.contains(['¥', '￥', '$']) {
        concept(out, &[("price", fnv(b'c', &[b"price"]))]);
    }
    let raw = latin_words(&norm);
    let words: Vec<String> = raw.iter().map(|w| stem(w)).collect();
    let mut used = vec![false; words.len()];
    let mut i = 0;
    while i < words.len() {
        let found = table
            .latin
            .get(&words[i])
            .and_then(|list| list.iter().find(|p| words[i..].starts_with(&p.parts)));
        match found {
            Some(p) => {
                concept(out, &p.concepts);
                used[i..i + p.parts.len()].fill(true);
                i += p.parts.len();
            }
            None => i += 1,
        }
    }
    let mut i = 0;
    while i < chars.len() {
        if is_cjk(chars[i]) {
            let start = i;
            while i < chars.len() && is_cjk(chars[i]) {
                i += 1;
            }
            cjk_run(table, &chars[start..i], start, out);
        } else {
            i += 1;
        }
    }
    for ((r, w), used) in raw.iter().zip(&words).zip(used) {
        if used || (r.len() < 2 && !r.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        if table.en_stop.contains(r) || table.en_stop.contains(w.as_str()) {
            continue;
        }
        out.push(
            Token {
                key: word_key(w),
                kind: Kind::Word,
                pos: 0,
                weight: 1.0,
            },
            || format!("word:{w}"),
        );
    }
}

fn cjk_run(table: &Tables, run: &[char], offset: usize, out: &mut Sink<'_>) {
    let particle = |c: char| table.particles.contains(&c);
    let weak = |c: char| table.weak.contains(&c);
    // A character of a question-word or connective bigram (`如果`, `万一`) stands for nothing
    // alone either.
    let in_stop_bigram = |j: usize| {
        let pair = |a: usize| Some([*run.get(a)?, *run.get(a + 1)?]);
        [j.checked_sub(1).and_then(pair), pair(j)]
            .into_iter()
            .flatten()
            .any(|p| table.stop_bigrams.contains(&p))
    };
    for (j, &c) in run.iter().enumerate() {
        let pos = (offset + j) as u32;
        if !particle(c) && !weak(c) && !in_stop_bigram(j) {
            out.push(
                Token {
                    key: char_key(b'u', &[c]),
                    kind: Kind::Uni,
                    pos,
                    weight: Kind::Uni.weight(),
                },
                || format!("uni:{c}"),
            );
        }
        let Some(&d) = run.get(j + 1) else { continue };
        if particle(c) || particle(d) {
            continue;
        }
        let pair = [c, d];
        if table.stop_bigrams.contains(&pair) || (weak(c) && weak(d)) {
            continue;
        }
        out.push(
            Token {
                key: char_key(b'b', &pair),
                kind: Kind::Bi,
                pos,
                weight: if weak(c) || weak(d) { 0.5 } else { 1.0 },
            },
            || format!("bi:{c}{d}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_width_and_case() {
        assert_eq!(normalize("ＡＢＣ１２３　Hi"), "abc123 hi");
    }

    #[test]
    fn detects_language() {
        assert_eq!(detect_lang("怎么退款？"), Lang::Zh);
        assert_eq!(detect_lang("How do I use 云帆网盘 on my phone?"), Lang::En);
        assert_eq!(detect_lang("CloudSail 怎么退款"), Lang::Zh);
        assert_eq!(detect_lang("???"), Lang::En);
    }

    #[test]
    fn stems_consistently() {
        assert_eq!(stem("refunds"), stem("refund"));
        assert_eq!(stem("refunded"), stem("refunding"));
        assert_eq!(stem("deleted"), stem("delete"));
        assert_eq!(stem("changes"), stem("change"));
        assert_eq!(stem("policies"), "policy");
        assert_eq!(stem("access"), "access");
        assert_eq!(stem("logged"), stem("log"));
        assert_eq!(stem("putting"), "put");
        assert_eq!(stem("planned"), "plan");
        assert_eq!(stem("having"), "have");
        assert_eq!(stem("moving"), stem("move"));
        assert_eq!(stem("added"), stem("add"));
        for w in [
            "speeds",
            "speed",
            "logged",
            "services",
            "processes",
            "cancelling",
            "having",
            "leaving",
            "stopped",
        ] {
            assert_eq!(stem(&stem(w)), stem(w), "{w}");
        }
    }

    #[test]
    fn word_phrases_do_not_span_clauses() {
        let words = stemmed_words("if i delete my account, is there a grace period?");
        assert!(!has_word_phrase(&words, "my account is"));
        assert!(has_word_phrase(&words, "delete my account"));
        assert!(has_word_phrase(
            &stemmed_words("my account is locked"),
            "my account is"
        ));
    }

    #[test]
    fn splits_sentences_at_their_ends_only() {
        assert_eq!(
            sentences("i'm on pro. is 1.5gb ok? 好的！还有吗\nthanks"),
            ["i'm on pro.", "is 1.5gb ok?", "好的！", "还有吗", "thanks"]
        );
        assert_eq!(sentences("  "), Vec::<&str>::new());
    }

    #[test]
    fn splits_digits_from_letters() {
        assert_eq!(
            latin_words("2tb plan, 9.9yuan"),
            ["2", "tb", "plan", "9", "9", "yuan"]
        );
    }

    #[test]
    fn cjk_tokens_skip_particles() {
        let mut a = Vec::new();
        tokenize("文档的备注", &mut a);
        let mut b = Vec::new();
        tokenize("文档备注", &mut b);
        let bi = |v: &[Token]| v.iter().filter(|t| t.kind == Kind::Bi).count();
        assert_eq!(bi(&a), 2, "文档 and 备注, no bigram through 的");
        assert_eq!(bi(&b), 3);
    }

    #[test]
    fn synonyms_share_a_concept_across_languages() {
        let concepts = |s: &str| {
            let mut v = Vec::new();
            tokenize(s, &mut v);
            v.into_iter()
                .filter(|t| t.kind == Kind::Concept)
                .map(|t| t.key)
                .collect::<Vec<_>>()
        };
        assert!(!concepts("退钱").is_empty());
        assert_eq!(concepts("退钱"), concepts("how do I get a refund"));
        assert_eq!(concepts("多少钱"), concepts("how much"));
        assert_eq!(concepts("unsubscribe"), concepts("cancel"));
    }

    #[test]
    fn segments_chinese_right_to_left() {
        let labels = |s: &str| tokenize_labelled(s).1;
        let l = labels("分享时可以加密码吗");
        assert!(l.contains(&"concept:password".to_string()), "{l:?}");
        assert!(!l.contains(&"concept:encrypt".to_string()), "{l:?}");
        let l = labels("免费用户");
        assert!(l.contains(&"concept:free".to_string()), "{l:?}");
        assert!(!l.contains(&"concept:price".to_string()), "{l:?}");
        assert!(labels("误删了").contains(&"concept:delete".to_string()));
        assert!(labels("误删了").contains(&"concept:mistake".to_string()));
    }

    #[test]
    fn cue_matching_respects_word_boundaries() {
        let norm = normalize("Please cancel my subscription");
        let words = stemmed_words(&norm);
        assert!(cue_matches(&norm, &words, "cancel my"));
        assert!(!cue_matches(&norm, &words, "can"));
        assert!(cue_matches(&norm, &words, "subscriptions"));
    }
}
