//! Retrieval: a BM25F index over FAQ questions, answers and tags (question weighted
//! higher), with a coverage score that makes thresholds mean the same thing across
//! knowledge-base sizes.
//!
//! The question field holds the question and its similar questions (相似问法), the answer
//! field the answer and tags.
//!
//! Tokens come from [`crate::text::tokenize`] (synonym concepts, CJK unigrams and bigrams,
//! stemmed Latin words, numbers). For a query, CJK bigrams the knowledge base never uses are
//! dropped (most are word-boundary artefacts of unsegmented text), and so is a known bigram
//! that overlaps one far more entries use (`版如` beside `础版` in `基础版如果`); characters
//! they leave uncovered stand alone as unigrams. A Latin word neither the knowledge base nor
//! the lexicon uses is first corrected to a known word one edit away ([`crate::typo`]).
//!
//! **Coverage** is the share of the query's IDF-weighted terms that an entry contains; a
//! term the knowledge base never uses counts at the highest IDF (scaled by
//! `UNKNOWN_TERM_WEIGHT`). It is 1.0 when every query term is in the entry, near 0 for a
//! question about something the FAQ never mentions, and, unlike raw BM25, does not grow with
//! the number of entries, so the decision thresholds carry over between knowledge bases.
//! Entries are ranked by coverage plus a quarter of their relative BM25F score, with a
//! penalty for entries in the other language than the question.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::kb::Entry;
use crate::text::{self, Kind, Lang, Token};
use crate::typo;

/// BM25 saturation.
const K1: f32 = 1.2;
/// BM25 length normalisation.
const B: f32 = 0.75;
/// Weight of the question field against the answer field.
const QUESTION_WEIGHT: f32 = 2.0;
/// Ranking factor for an entry in the other language than the query.
const OTHER_LANG_FACTOR: f32 = 0.7;
/// Share of its (maximal) IDF weight that a query term the knowledge base never uses
/// counts against coverage. Calibrated on the dev split with the thresholds.
const UNKNOWN_TERM_WEIGHT: f32 = 0.75;
/// Weight of the terms of a sentence that asks nothing, in a message where another sentence
/// asks: the story around a question (`I'm a wedding photographer. What does Pro cost?`)
/// should not drown it. Calibrated on the dev split.
const CONTEXT_WEIGHT: f32 = 0.4;
/// Fewest terms the asking sentences need for the others to count as context.
const MIN_ASKED_TERMS: usize = 3;
/// A known query bigram overlapping a bigram that this many times more entries use is taken
/// for a word boundary and dropped: in `基础版如果` the rare `版如` (one entry's `专业版如果…`)
/// straddles `基础版` and `如果`. Unsegmented text makes such artefacts; without a Chinese
/// dictionary the knowledge base's own counts say where words are.
const BOUNDARY_DF_RATIO: usize = 4;
/// Weight of the relative BM25F score against coverage when ranking.
const RANK_SCORE_WEIGHT: f32 = 0.25;
/// Ranking penalty for an entry in the other language than the query: an entry in the
/// user's language wins unless the other one covers the question clearly better.
const OTHER_LANG_PENALTY: f32 = 0.25;

/// Keys are already FNV hashes: pass them through.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type KeyMap<V> = HashMap<u64, V, BuildHasherDefault<KeyHasher>>;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Posting {
    pub(crate) doc: u32,
    pub(crate) tf_q: f32,
    pub(crate) tf_a: f32,
}

/// One retrieved entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// Position of the entry in [`crate::Knowledge::entries`].
    pub entry: usize,
    /// BM25F score (ranking only; not comparable across knowledge bases).
    pub score: f32,
    /// IDF-weighted share of query terms found in the entry, 0.0..=1.0.
    pub coverage: f32,
}

/// The inverted index of a knowledge base.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub(crate) n_docs: usize,
    pub(crate) terms: KeyMap<u32>,
    pub(crate) postings: Vec<Vec<Posting>>,
    pub(crate) len_q: Vec<f32>,
    pub(crate) len_a: Vec<f32>,
    pub(crate) avg_q: f32,
    pub(crate) avg_a: f32,
}

fn field_counts(s: &str, buf: &mut Vec<Token>, counts: &mut KeyMap<f32>) -> f32 {
    buf.clear();
    text::tokenize(s, buf);
    let mut len = 0.0;
    for t in buf.iter() {
        let w = t.weight;
        *counts.entry(t.key).or_default() += 1.0;
        len += w;
    }
    len
}

impl Index {
    /// Indexes entries (question and answer fields).
    pub fn build(entries: &[Entry]) -> Index {
        let mut ix = Index {
            n_docs: entries.len(),
            ..Index::default()
        };
        let mut buf = Vec::with_capacity(256);
        let mut q = KeyMap::default();
        let mut a = KeyMap::default();
        for (doc, e) in entries.iter().enumerate() {
            q.clear();
            a.clear();
            // Similar questions join the question field: together they are the ways
            // customers ask for this entry. (Scoring each way of asking on its own was tried:
            // it lost colloquial questions that borrow words from two of them.)
            let mut len_q = field_counts(&e.question, &mut buf, &mut q);
            for similar in &e.similar {
                len_q += field_counts(similar, &mut buf, &mut q);
            }
            ix.len_q.push(len_q);
            let mut len_a = field_counts(&e.answer, &mut buf, &mut a);
            for tag in &e.tags {
                len_a += field_counts(tag, &mut buf, &mut a);
            }
            ix.len_a.push(len_a);
            let mut add = |key: u64, tf_q: f32, tf_a: f32| {
                let next = ix.postings.len() as u32;
                let id = *ix.terms.entry(key).or_insert(next);
                if id == next {
                    ix.postings.push(Vec::new());
                }
                ix.postings[id as usize].push(Posting {
                    doc: doc as u32,
                    tf_q,
                    tf_a,
                });
            };
            for (&key, &tf_q) in &q {
                add(key, tf_q, a.get(&key).copied().unwrap_or(0.0));
            }
            for (&key, &tf_a) in &a {
                if !q.contains_key(&key) {
                    add(key, 0.0, tf_a);
                }
            }
        }
        let n = entries.len().max(1) as f32;
        ix.avg_q = (ix.len_q.iter().sum::<f32>() / n).max(1.0);
        ix.avg_a = (ix.len_a.iter().sum::<f32>() / n).max(1.0);
        ix
    }

    /// Number of distinct terms.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.n_docs as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The query's terms with weights. CJK bigrams the knowledge base never uses are dropped
    /// (without segmentation most are word-boundary artefacts like `版一` in `专业版一个月`);
    /// a character not covered by any kept bigram stands alone as a unigram, so unknown
    /// content still counts against coverage.
    fn query_terms(&self, query: &str) -> Vec<(u64, f32)> {
        self.query_terms_labelled(query)
            .into_iter()
            .map(|(k, w, _)| (k, w))
            .collect()
    }

    /// Each sentence's terms; when some sentences ask (with [`MIN_ASKED_TERMS`] terms or more)
    /// and others do not, the terms only the others hold weigh [`CONTEXT_WEIGHT`].
    fn query_terms_labelled(&self, query: &str) -> Vec<(u64, f32, String)> {
        let norm = text::normalize(query);
        let sentences = text::sentences(&norm);
        let asks: Vec<bool> = sentences
            .iter()
            .map(|s| text::is_question(s, &text::stemmed_words(s)))
            .collect();
        let terms: Vec<_> = sentences.iter().map(|s| self.sentence_terms(s)).collect();
        // A bare `这是怎么回事？` after the story leaves the story to say what it is about.
        let asked_terms: usize = terms
            .iter()
            .zip(&asks)
            .filter(|(_, asks)| **asks)
            .map(|(t, _)| t.len())
            .sum();
        let focused = asks.contains(&false) && asked_terms >= MIN_ASKED_TERMS;
        let mut uniq: Vec<(u64, f32, String)> = Vec::new();
        for (terms, asks) in terms.into_iter().zip(asks) {
            let scale = if focused && !asks {
                CONTEXT_WEIGHT
            } else {
                1.0
            };
            for (key, w, label) in terms {
                match uniq.iter_mut().find(|t| t.0 == key) {
                    Some(t) => t.1 = t.1.max(w * scale),
                    None => uniq.push((key, w * scale, label)),
                }
            }
        }
        uniq
    }

    fn sentence_terms(&self, norm: &str) -> Vec<(u64, f32, String)> {
        let df = |stemmed: &str| {
            let id = *self.terms.get(&text::word_key(stemmed))?;
            Some(self.postings[id as usize].len())
        };
        let corrected = typo::correct(norm, df);
        let (toks, labels) = text::tokenize_labelled(corrected.as_deref().unwrap_or(norm));
        let bigram_df: Vec<(u32, usize)> = toks
            .iter()
            .filter(|t| t.kind == Kind::Bi)
            .filter_map(|t| {
                let id = *self.terms.get(&t.key)?;
                Some((t.pos, self.postings[id as usize].len()))
            })
            .collect();
        let kept_bigram = |t: &Token| {
            let Some(&(_, df)) = bigram_df.iter().find(|(pos, _)| *pos == t.pos) else {
                return false;
            };
            !bigram_df.iter().any(|&(pos, other)| {
                (pos + 1 == t.pos || pos == t.pos + 1) && other >= BOUNDARY_DF_RATIO * df
            })
        };
        let mut covered: Vec<u32> = Vec::new();
        for t in &toks {
            if t.kind == Kind::Bi && kept_bigram(t) {
                covered.extend([t.pos, t.pos + 1]);
            }
        }
        let mut uniq: Vec<(u64, f32, String)> = Vec::with_capacity(toks.len());
        for (t, label) in toks.into_iter().zip(labels) {
            let keep = match t.kind {
                Kind::Bi => kept_bigram(&t),
                Kind::Uni => !covered.contains(&t.pos),
                Kind::Word | Kind::Concept => true,
            };
            if keep && !uniq.iter().any(|(key, _, _)| *key == t.key) {
                uniq.push((t.key, t.weight, label));
            }
        }
        uniq
    }

    /// Why `query` matches entry `entry` as well as it does: one line per query term with its
    /// weight, IDF and whether the entry contains it. For tuning synonyms and thresholds.
    pub fn explain(&self, query: &str, entry: usize) -> String {
        let mut out = String::new();
        for (key, w, label) in self.query_terms_labelled(query) {
            let postings = self.terms.get(&key).map(|&id| &self.postings[id as usize]);
            let df = postings.map_or(0, Vec::len);
            let hit = postings.is_some_and(|p| p.iter().any(|p| p.doc as usize == entry));
            out.push_str(&format!(
                "{label} w={w} idf={:.2} df={df} {}\n",
                self.idf(df),
                if hit { "HIT" } else { "-" }
            ));
        }
        out
    }

    /// Share of the query's weighted terms that the knowledge base uses anywhere (unknown
    /// terms weighted as in coverage): how much of the question is about the product at all.
    pub fn known_share(&self, query: &str) -> f32 {
        let (mut known, mut total) = (0.0f32, 0.0f32);
        for (key, w) in self.query_terms(query) {
            let df = self
                .terms
                .get(&key)
                .map_or(0, |&id| self.postings[id as usize].len());
            let weight = self.coverage_weight(w, df);
            total += weight;
            if df > 0 {
                known += weight;
            }
        }
        if total > 0.0 { known / total } else { 0.0 }
    }

    /// What a query term of weight `w` used by `df` entries counts for in coverage: its IDF
    /// weight, scaled by [`UNKNOWN_TERM_WEIGHT`] when no entry uses it.
    fn coverage_weight(&self, w: f32, df: usize) -> f32 {
        w * self.idf(df) * if df == 0 { UNKNOWN_TERM_WEIGHT } else { 1.0 }
    }

    /// The `k` best entries for `query`, best first, with their coverage. Entries in the
    /// other language than `query_lang` rank lower (`langs` gives each entry's language).
    pub fn search(&self, query: &str, k: usize, query_lang: Lang, langs: &[Lang]) -> Vec<Hit> {
        let uniq = self.query_terms(query);
        let mut scores = vec![0.0f32; self.n_docs];
        let mut found = vec![0.0f32; self.n_docs];
        let mut total = 0.0f32;
        for &(key, w) in &uniq {
            let postings = self.terms.get(&key).map(|&id| &self.postings[id as usize]);
            let df = postings.map_or(0, Vec::len);
            let idf = self.idf(df);
            total += self.coverage_weight(w, df);
            for p in postings.into_iter().flatten() {
                let d = p.doc as usize;
                let tq = p.tf_q / (1.0 - B + B * self.len_q[d] / self.avg_q);
                let ta = p.tf_a / (1.0 - B + B * self.len_a[d] / self.avg_a);
                let tf = QUESTION_WEIGHT * tq + ta;
                scores[d] += w * idf * tf * (K1 + 1.0) / (tf + K1);
                found[d] += w * idf;
            }
        }
        let mut hits: Vec<Hit> = (0..self.n_docs)
            .filter(|&d| scores[d] > 0.0)
            .map(|d| {
                let factor = if langs.get(d) == Some(&query_lang) {
                    1.0
                } else {
                    OTHER_LANG_FACTOR
                };
                Hit {
                    entry: d,
                    score: scores[d] * factor,
                    coverage: if total > 0.0 { found[d] / total } else { 0.0 },
                }
            })
            .collect();
        // Rank by coverage first (the entry that explains most of the question), with the
        // BM25F score (question field weighted, language-aware) breaking near ties.
        let top = hits
            .iter()
            .map(|h| h.score)
            .fold(0.0f32, f32::max)
            .max(f32::MIN_POSITIVE);
        let rank = |h: &Hit| {
            let lang = if langs.get(h.entry) == Some(&query_lang) {
                0.0
            } else {
                -OTHER_LANG_PENALTY
            };
            h.coverage + RANK_SCORE_WEIGHT * h.score / top + lang
        };
        hits.sort_by(|a, b| rank(b).total_cmp(&rank(a)).then(a.entry.cmp(&b.entry)));
        hits.truncate(k);
        hits
    }
}

#[cfg(test)]
mod tests {
    use crate::kb::tests::fixture;

    fn top(q: &str) -> (String, f32) {
        let kb = fixture();
        let hits = kb.search(q, 3);
        let h = hits.first().expect("a hit");
        (kb.entries()[h.entry].id.clone(), h.coverage)
    }

    #[test]
    fn finds_paraphrases_in_both_languages() {
        assert_eq!(top("我想退钱，怎么操作").0, "refund-1");
        assert_eq!(top("专业版一个月多少钱").0, "price-1");
        assert_eq!(top("密码想不起来了").0, "pwd-1");
        assert_eq!(top("can I get my money back?").0, "en-refund");
        assert_eq!(top("how to unsubscribe").0, "en-cancel");
        assert_eq!(top("share a folder link").0, "en-share");
    }

    #[test]
    fn coverage_separates_covered_from_unrelated() {
        let (_, covered) = top("怎么申请退款");
        assert!(covered > 0.6, "{covered}");
        let kb = fixture();
        let weather = kb.search("明天北京天气怎么样", 3);
        assert!(
            weather.first().is_none_or(|h| h.coverage < 0.2),
            "{weather:?}"
        );
        let code = kb.search("write a python function to sort a list", 3);
        assert!(code.first().is_none_or(|h| h.coverage < 0.2), "{code:?}");
    }

    #[test]
    fn a_rare_bigram_across_a_word_boundary_is_not_a_term() {
        let kb = crate::Knowledge::from_jsonl(
            r#"{"id":"basic","question":"基础版每月多少钱？","answer":"基础版 ¥12/月。"}
{"id":"pro","question":"专业版每月多少钱？","similar":["专业版如果按年买多少钱"],"answer":"专业版 ¥30/月，年付 ¥300。"}
{"id":"team","question":"团队版怎么收费？","answer":"团队版 ¥25/人/月。"}
{"id":"yearly","question":"年付有折扣吗？","answer":"基础版、专业版、团队版年付都有折扣。"}
{"id":"devices","question":"基础版能登录几台设备？","answer":"基础版最多 5 台设备。"}
{"id":"space","question":"基础版有多大空间？","answer":"基础版 1TB。"}"#
                .as_bytes(),
        )
        .unwrap();
        // `版如` is a term of `pro` only; next to `础版` (five entries) it is an artefact of
        // `基础版如果`.
        let terms = kb.explain("基础版如果每月多少钱", "basic").unwrap();
        assert!(!terms.contains("版如"), "{terms}");
        assert_eq!(
            kb.entries()[kb.search("基础版如果每月多少钱", 1)[0].entry].id,
            "basic"
        );
    }

    #[test]
    fn empty_query_has_no_hits() {
        assert!(fixture().search("？？", 3).is_empty());
    }
}
