//! The knowledge base: FAQ entries parsed from JSON Lines bytes, plus what is derived from
//! them once (the retrieval index, each entry's language, normalised text for "does the KB
//! mention X" checks). Owns entry validation; owns no I/O: the caller reads the file.
//!
//! Format, one JSON object a line: `{"id": "...", "question": "...", "answer": "...",
//! "similar": ["..."], "tags": ["..."]}`; `similar` (other ways customers ask the question,
//! a list or one string with `|` or newlines between questions) and `tags` (a list or one
//! comma-separated string) are optional, unknown fields are ignored, blank lines are skipped.
//! Ids must be unique and non-empty.

use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::retrieve::{Hit, Index};
use crate::snapshot;
use crate::text::{self, Lang};

/// One FAQ entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Stable id, cited in responses.
    pub id: String,
    /// The question as the FAQ states it.
    pub question: String,
    /// Other ways customers ask it (相似问法): indexed with the question, never shown.
    pub similar: Vec<String>,
    /// The approved answer: the only source of facts.
    pub answer: String,
    /// Free-form tags (topic, `human`/`contact` for the hand-off channel, ...).
    pub tags: Vec<String>,
}

impl Entry {
    /// Language of the entry, judged from its question and answer.
    pub fn lang(&self) -> Lang {
        text::detect_lang_parts(&[&self.question, &self.answer])
    }
}

/// Why a knowledge base was rejected. `line` is 1-based; 0 means the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KbError {
    /// 1-based line of the offending entry, or 0.
    pub line: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for KbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "knowledge base: {}", self.message)
        } else {
            write!(f, "knowledge base line {}: {}", self.line, self.message)
        }
    }
}

impl std::error::Error for KbError {}

#[derive(Deserialize)]
#[serde(untagged)]
enum Tags {
    List(Vec<String>),
    One(String),
}

#[derive(Deserialize)]
struct RawEntry {
    id: serde_json::Value,
    question: String,
    answer: String,
    #[serde(default)]
    similar: Option<Similar>,
    #[serde(default)]
    tags: Option<Tags>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Similar {
    List(Vec<String>),
    One(String),
}

impl Similar {
    fn into_questions(self) -> Vec<String> {
        let list = match self {
            Similar::List(v) => v,
            Similar::One(s) => s.split(['|', '\n']).map(str::to_string).collect(),
        };
        list.into_iter()
            .map(|q| q.trim().to_string())
            .filter(|q| !q.is_empty())
            .collect()
    }
}

/// Parsed, indexed FAQ entries. Cheap to build per request (see the crate docs for timings).
#[derive(Clone, Debug)]
pub struct Knowledge {
    entries: Vec<Entry>,
    langs: Vec<Lang>,
    /// Normalised question + answer per entry, made on first use (only cue checks need it).
    norm: OnceLock<Vec<String>>,
    index: Index,
    /// Hash of the JSON Lines bytes the entries were parsed from (0: built in memory); an
    /// index file records it so a stale one can be told apart.
    pub(crate) source: u64,
}

impl Knowledge {
    /// Parses JSON Lines bytes (UTF-8, optional BOM) and builds the index.
    pub fn from_jsonl(bytes: &[u8]) -> Result<Self, KbError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let mut entries = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = n + 1;
            let err = |message: String| KbError {
                line: line_no,
                message,
            };
            let line = std::str::from_utf8(line)
                .map_err(|e| err(format!("not UTF-8 ({e})")))?
                .trim();
            if line.is_empty() {
                continue;
            }
            let raw: RawEntry =
                serde_json::from_str(line).map_err(|e| err(format!("invalid entry: {e}")))?;
            let id = match raw.id {
                serde_json::Value::String(s) => s.trim().to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                other => return Err(err(format!("id must be a string, got {other}"))),
            };
            if id.is_empty() {
                return Err(err("empty id".into()));
            }
            if raw.question.trim().is_empty() || raw.answer.trim().is_empty() {
                return Err(err(format!("entry {id:?} has an empty question or answer")));
            }
            let tags = match raw.tags {
                None => Vec::new(),
                Some(Tags::List(v)) => v,
                Some(Tags::One(s)) => s.split(',').map(str::to_string).collect(),
            };
            let tags = tags
                .into_iter()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            if let Some(first) = seen.insert(id.clone(), line_no) {
                return Err(err(format!("duplicate id {id:?} (first on line {first})")));
            }
            entries.push(Entry {
                id,
                question: raw.question.trim().to_string(),
                similar: raw.similar.map(Similar::into_questions).unwrap_or_default(),
                answer: raw.answer.trim().to_string(),
                tags,
            });
        }
        let mut kb = Self::from_entries(entries)?;
        kb.source = snapshot::source_hash(bytes);
        Ok(kb)
    }

    /// True when `index` is an index file made from exactly these JSON Lines bytes: a gateway
    /// that has both serves the index only then, never a stale one.
    pub fn index_matches(index: &[u8], jsonl: &[u8]) -> bool {
        snapshot::source_of(index) == Some(snapshot::source_hash(jsonl))
    }

    /// True when `index` was written by this version of the guard with this lexicon: loading
    /// it re-indexes nothing. (An older file still loads correctly, only slower.)
    pub fn index_is_current(index: &[u8]) -> bool {
        snapshot::is_current(index)
    }

    /// Loads either format: a precomputed index file (see [`Knowledge::to_index_bytes`]) or
    /// JSON Lines. The gateway can mount whichever `kefu data prepare` wrote.
    pub fn load(bytes: &[u8]) -> Result<Self, KbError> {
        if snapshot::is_snapshot(bytes) {
            snapshot::decode(bytes)
        } else {
            Self::from_jsonl(bytes)
        }
    }

    /// The precomputed index file: entries and index in a compact binary form that
    /// [`Knowledge::load`] reads several times faster than it parses and indexes JSON Lines.
    pub fn to_index_bytes(&self) -> Vec<u8> {
        snapshot::encode(self)
    }

    pub(crate) fn from_parts(
        entries: Vec<Entry>,
        langs: Vec<Lang>,
        index: Index,
        source: u64,
    ) -> Result<Self, KbError> {
        let kb = Self::check(entries)?;
        Ok(Knowledge {
            entries: kb,
            langs,
            norm: OnceLock::new(),
            index,
            source,
        })
    }

    fn check(entries: Vec<Entry>) -> Result<Vec<Entry>, KbError> {
        if entries.is_empty() {
            return Err(KbError {
                line: 0,
                message: "no entries".into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for e in &entries {
            if e.id.is_empty() || !seen.insert(e.id.as_str()) {
                return Err(KbError {
                    line: 0,
                    message: format!("empty or duplicate id {:?}", e.id),
                });
            }
        }
        Ok(entries)
    }

    /// Indexes entries that are already in memory. Ids must be unique and non-empty.
    pub fn from_entries(entries: Vec<Entry>) -> Result<Self, KbError> {
        let entries = Self::check(entries)?;
        let langs = entries.iter().map(Entry::lang).collect();
        let index = Index::build(&entries);
        Ok(Knowledge {
            entries,
            langs,
            norm: OnceLock::new(),
            index,
            source: 0,
        })
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Language of entry `i`.
    pub(crate) fn lang_of(&self, i: usize) -> Lang {
        self.langs[i]
    }

    /// True when any entry's normalised question or answer contains the normalised `cue`.
    pub fn mentions(&self, cue: &str) -> bool {
        let cue = text::normalize(cue);
        let norm = self.norm.get_or_init(|| {
            self.entries
                .iter()
                .map(|e| text::normalize(&format!("{}\n{}", e.question, e.answer)))
                .collect()
        });
        norm.iter().any(|t| t.contains(&cue))
    }

    /// The best entries for `query`, best first (at most `k`); see [`Index::search`].
    pub fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        self.index
            .search(query, k, text::detect_lang(query), &self.langs)
    }

    /// Term-by-term account of how `query` matches the entry with id `id` (see
    /// [`Index::explain`]); `None` for an unknown id.
    pub fn explain(&self, query: &str, id: &str) -> Option<String> {
        let i = self.entries.iter().position(|e| e.id == id)?;
        Some(self.index.explain(query, i))
    }

    /// The retrieval index.
    pub fn index(&self) -> &Index {
        &self.index
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small bilingual FAQ used by the unit tests of every module.
    pub(crate) const FIXTURE: &str = r#"{"id":"refund-1","question":"如何申请退款？","answer":"购买后 7 天内可在“设置 > 订单”中申请全额退款，退款将在 3 个工作日内原路退回。","tags":["退款"]}
{"id":"price-1","question":"套餐价格是多少？","answer":"个人版每月 ¥15，专业版每月 ¥30，年付享 8 折。","tags":["价格"]}
{"id":"space-1","question":"免费用户有多少存储空间？","answer":"免费用户有 5GB 存储空间，专业版为 2TB。","tags":["空间"]}
{"id":"pwd-1","question":"忘记密码怎么办？","answer":"在登录页点击“忘记密码”，通过绑定的手机号接收验证码后即可重置密码。","tags":["账户"]}
{"id":"human-1","question":"如何联系人工客服？","answer":"人工客服电话 400-820-1234（每天 9:00-21:00），也可以在 App 内点击“联系客服”。","tags":["人工","contact"]}
{"id":"en-refund","question":"How do I get a refund?","answer":"You can request a full refund within 7 days of purchase under Settings > Orders. Refunds arrive within 3 business days.","tags":["billing"]}
{"id":"en-cancel","question":"How do I cancel my subscription?","answer":"Open Settings > Subscription and tap Cancel auto-renewal. Your plan stays active until the end of the paid period.","tags":["billing"]}
{"id":"en-share","question":"How do I share a folder?","answer":"Right-click the folder, choose Share, and copy the link. Links can expire after 1, 7 or 30 days.","tags":["sharing"]}
{"id":"en-human","question":"How can I talk to a human agent?","answer":"Call 400-820-1234 (9:00-21:00 daily) or use Contact Support in the app.","tags":["human","contact"]}
"#;

    pub(crate) fn fixture() -> Knowledge {
        Knowledge::from_jsonl(FIXTURE.as_bytes()).unwrap()
    }

    #[test]
    fn parses_entries_and_tags() {
        let kb = fixture();
        assert_eq!(kb.entries().len(), 9);
        assert_eq!(kb.get("human-1").unwrap().tags, ["人工", "contact"]);
        assert_eq!(kb.lang_of(0), Lang::Zh);
        assert_eq!(kb.lang_of(5), Lang::En);
        assert!(kb.mentions("400-820-1234"));
        assert!(!kb.mentions("天气"));
    }

    #[test]
    fn accepts_bom_blank_lines_string_tags_and_numeric_ids() {
        let kb = Knowledge::from_jsonl(
            b"\xEF\xBB\xBF{\"id\":7,\"question\":\"q\",\"answer\":\"a\",\"tags\":\"x, y\",\"extra\":1}\n\n",
        )
        .unwrap();
        assert_eq!(kb.entries()[0].id, "7");
        assert_eq!(kb.entries()[0].tags, ["x", "y"]);
    }

    #[test]
    fn similar_questions_are_indexed_but_not_answers() {
        let jsonl = "{\"id\":\"a\",\"question\":\"如何注销账号？\",\"answer\":\"设置 > 账户 > 注销账号，7 天冷静期。\",\"similar\":[\"不想用了，想把号销掉\"]}\n\
                     {\"id\":\"b\",\"question\":\"如何退款？\",\"answer\":\"7 天内可退款。\",\"similar\":\"想退钱|钱能退回来吗\"}\n";
        let kb = Knowledge::from_jsonl(jsonl.as_bytes()).unwrap();
        assert_eq!(kb.get("b").unwrap().similar, ["想退钱", "钱能退回来吗"]);
        let hit = kb.search("号销掉", 1)[0];
        assert_eq!(kb.entries()[hit.entry].id, "a");
        assert!(hit.coverage > 0.9, "{hit:?}");
        let back = Knowledge::load(&kb.to_index_bytes()).unwrap();
        assert_eq!(back.entries(), kb.entries());
    }

    #[test]
    fn reports_bad_lines_with_line_numbers() {
        let e =
            Knowledge::from_jsonl(b"{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"}\n{oops\n")
                .unwrap_err();
        assert_eq!(e.line, 2);
        let e = Knowledge::from_jsonl(
            b"{\"id\":\"a\",\"question\":\"q\",\"answer\":\"a\"}\n{\"id\":\"a\",\"question\":\"q\",\"answer\":\"b\"}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("duplicate id"), "{e}");
        let e = Knowledge::from_jsonl(b"{\"id\":\"a\",\"question\":\" \",\"answer\":\"a\"}")
            .unwrap_err();
        assert!(e.message.contains("empty"));
        assert_eq!(Knowledge::from_jsonl(b"\n").unwrap_err().line, 0);
        assert!(Knowledge::from_jsonl(b"\xff\n").is_err());
    }
}
