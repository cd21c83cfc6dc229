//! Duplicate detection, conflict resolution and stable ids.
//!
//! Owns: deciding which of several rows about the same question survives. Rows are grouped
//! by [`match_key`] of their question (case, width, whitespace, quote style and trailing
//! ?/!/。 ignored). Within a group a row whose raw question and answer equal an earlier row's is
//! an exact duplicate; one whose answer has the same match key as an earlier answer is a near
//! duplicate; a different answer is a conflict. Conflicts keep the newest row when the input
//! has timestamps (rows without one count as oldest), else the first row, and are listed for
//! review either way.
//!
//! Also owns entry ids: `faq-` + 12 hex digits of SHA-256 of the question's match key. They
//! depend on the question text only, so the same FAQ gives the same ids from JSON, CSV or
//! SQLite, in any row order.
//!
//! Invariant: the match key never drops letters, digits or inner punctuation, so "12.5 元"
//! and "125 元" stay different answers.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::read::SourceRef;

/// A cleaned and redacted row that passed the quality checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub source: SourceRef,
    /// Question and answer as read, before cleaning (for exact-duplicate detection).
    pub raw_question: String,
    pub raw_answer: String,
    pub question: String,
    pub answer: String,
    pub similar: Vec<String>,
    pub tags: Vec<String>,
    pub updated_at: Option<String>,
}

/// Why a candidate was dropped as a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateKind {
    Exact,
    Near,
    Conflicting,
}

/// A dropped candidate and the row it duplicates.
#[derive(Debug, Clone)]
pub struct Duplicate {
    pub candidate: Candidate,
    pub kind: DuplicateKind,
    pub of: SourceRef,
}

/// How a conflict was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The row with the newest timestamp was kept.
    Newest,
    /// No row had a timestamp: the first was kept; a person should check.
    FirstNoTimestamp,
}

/// One answer among conflicting ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictVariant {
    pub source: SourceRef,
    pub answer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    pub kept: bool,
}

/// Rows with the same question and different answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    pub id: String,
    pub question: String,
    pub resolution: Resolution,
    pub variants: Vec<ConflictVariant>,
}

/// Result of [`dedup`]: kept candidates and duplicates, both in source order.
#[derive(Debug, Clone, Default)]
pub struct Deduped {
    pub kept: Vec<Candidate>,
    pub duplicates: Vec<Duplicate>,
    pub conflicts: Vec<Conflict>,
}

/// Comparison form of a text: NFKC, lower case, no whitespace, one quote style, trailing
/// sentence marks removed.
pub fn match_key(text: &str) -> String {
    let folded: String = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '“' | '”' | '„' | '「' | '」' | '『' | '』' => '"',
            '‘' | '’' => '\'',
            '。' => '.',
            '、' => ',',
            c => c,
        })
        .collect();
    folded.trim_end_matches(['.', '?', '!']).to_string()
}

/// Stable id of the entry whose question is `question`.
pub fn entry_id(question: &str) -> String {
    let digest = Sha256::digest(match_key(question).as_bytes());
    format!("faq-{}", &hex::encode(digest)[..12])
}

static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})日?(?:[ T]+([0-9]{1,2})[:时]([0-9]{1,2})(?:[:分]([0-9]{1,2}))?)?",
    )
    .expect("valid regex")
});

/// Parses a timestamp cell into a sortable `YYYY-MM-DDTHH:MM:SS` (time zones ignored).
/// Accepts `2024-09-01`, `2024/9/1 10:30`, RFC 3339, `2024年9月1日`, and Unix seconds or
/// milliseconds. Anything else gives `None`.
pub fn parse_timestamp(text: &str) -> Option<String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = text.parse().ok()?;
        let secs = match text.len() {
            9 | 10 => n,
            12 | 13 => n / 1000,
            _ => return None,
        };
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        return Some(format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        ));
    }
    let c = TIMESTAMP.captures(text)?;
    let num = |i: usize| c.get(i).map_or(Some(0), |m| m.as_str().parse::<u32>().ok());
    let (y, mo, d, h, mi, s) = (num(1)?, num(2)?, num(3)?, num(4)?, num(5)?, num(6)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}"))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The similar questions of all rows of a group whose question has match key `qkey`, first
/// occurrence first, without repeats, empty ones or copies of the question itself.
fn merged_similar(qkey: &str, variants: &[Variant]) -> Vec<String> {
    let mut seen = std::collections::HashSet::from([String::new(), qkey.to_string()]);
    let mut out = Vec::new();
    for q in variants
        .iter()
        .flat_map(|v| &v.rows)
        .flat_map(|r| &r.similar)
    {
        if seen.insert(match_key(q)) {
            out.push(q.clone());
        }
    }
    out
}

struct Variant {
    answer_key: String,
    rows: Vec<Candidate>,
    newest: Option<String>,
}

/// Drops duplicates and settles conflicts; see the module docs for the rules.
pub fn dedup(candidates: Vec<Candidate>) -> Deduped {
    let mut order: Vec<String> = Vec::new();
    let mut groups: HashMap<String, Vec<Variant>> = HashMap::new();
    let mut out = Deduped::default();
    for cand in candidates {
        let qkey = match_key(&cand.question);
        let akey = match_key(&cand.answer);
        let ts = cand.updated_at.as_deref().and_then(parse_timestamp);
        let variants = groups.entry(qkey.clone()).or_insert_with(|| {
            order.push(qkey);
            Vec::new()
        });
        match variants.iter_mut().find(|v| v.answer_key == akey) {
            Some(v) => {
                let exact = v.rows.iter().find(|r| {
                    r.raw_question == cand.raw_question && r.raw_answer == cand.raw_answer
                });
                let (kind, of) = match exact {
                    Some(r) => (DuplicateKind::Exact, r.source),
                    None => (DuplicateKind::Near, v.rows[0].source),
                };
                if ts > v.newest {
                    v.newest = ts;
                }
                v.rows.push(cand.clone());
                out.duplicates.push(Duplicate {
                    candidate: cand,
                    kind,
                    of,
                });
            }
            None => variants.push(Variant {
                answer_key: akey,
                rows: vec![cand],
                newest: ts,
            }),
        }
    }
    for qkey in order {
        let variants = groups.remove(&qkey).expect("grouped");
        // Every row of the group asks the same question: the kept entry gets all their
        // similar questions.
        let similar = merged_similar(&qkey, &variants);
        if variants.len() == 1 {
            let mut rows = variants.into_iter().next().expect("one").rows;
            let mut kept = rows.swap_remove(0);
            kept.similar = similar;
            out.kept.push(kept);
            continue;
        }
        let has_time = variants.iter().any(|v| v.newest.is_some());
        let winner = if has_time {
            // Newest wins; on a tie the earlier row.
            let mut best = 0;
            for (i, v) in variants.iter().enumerate() {
                if v.newest > variants[best].newest {
                    best = i;
                }
            }
            best
        } else {
            0
        };
        let mut kept = variants[winner].rows[0].clone();
        kept.similar = similar;
        out.conflicts.push(Conflict {
            id: entry_id(&kept.question),
            question: kept.question.clone(),
            resolution: if has_time {
                Resolution::Newest
            } else {
                Resolution::FirstNoTimestamp
            },
            variants: variants
                .iter()
                .enumerate()
                .map(|(i, v)| ConflictVariant {
                    source: v.rows[0].source,
                    answer: v.rows[0].answer.clone(),
                    updated_at: v.rows[0].updated_at.clone(),
                    kept: i == winner,
                })
                .collect(),
        });
        for (i, v) in variants.into_iter().enumerate() {
            if i != winner {
                let candidate = v.rows.into_iter().next().expect("non-empty");
                out.duplicates.push(Duplicate {
                    candidate,
                    kind: DuplicateKind::Conflicting,
                    of: kept.source,
                });
            }
        }
        out.kept.push(kept);
    }
    out.kept.sort_by_key(|c| c.source);
    out.duplicates.sort_by_key(|d| d.candidate.source);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(row: usize, q: &str, a: &str, ts: Option<&str>) -> Candidate {
        Candidate {
            source: SourceRef { row, line: None },
            raw_question: q.to_string(),
            raw_answer: a.to_string(),
            question: crate::clean::clean_text(q),
            answer: crate::clean::clean_text(a),
            similar: Vec::new(),
            tags: Vec::new(),
            updated_at: ts.map(str::to_string),
        }
    }

    fn rows(d: &Deduped) -> (Vec<usize>, Vec<(usize, DuplicateKind, usize)>) {
        (
            d.kept.iter().map(|c| c.source.row).collect(),
            d.duplicates
                .iter()
                .map(|x| (x.candidate.source.row, x.kind, x.of.row))
                .collect(),
        )
    }

    #[test]
    fn exact_and_near_duplicates() {
        let d = dedup(vec![
            cand(1, "如何修改密码？", "1. 打开设置\n2. 修改密码", None),
            cand(2, "如何修改密码？", "1. 打开设置\n2. 修改密码", None),
            cand(3, "如何  修改密码", "1. 打开设置  \r\n2.  修改密码。", None),
            cand(4, "How do I contact support?", "E-mail us.", None),
            cand(5, "how do i contact  SUPPORT", "E-mail  us", None),
            cand(6, "如何修改密码？", "1. 打开设置\n2. 修改密码", None),
        ]);
        let (kept, dups) = rows(&d);
        assert_eq!(kept, vec![1, 4]);
        use DuplicateKind::*;
        assert_eq!(
            dups,
            vec![(2, Exact, 1), (3, Near, 1), (5, Near, 4), (6, Exact, 1)]
        );
        assert!(d.conflicts.is_empty());
    }

    #[test]
    fn meaningful_differences_are_not_near_duplicates() {
        let d = dedup(vec![
            cand(1, "扩容包多少钱？", "¥12.5/月", None),
            cand(2, "扩容包多少钱？", "¥125/月", None),
            cand(3, "AES-256?", "yes", None),
            cand(4, "AES256?", "yes", None),
        ]);
        assert_eq!(rows(&d).0, vec![1, 3, 4]);
        assert_eq!(d.conflicts.len(), 1);
    }

    #[test]
    fn duplicates_pool_their_similar_questions() {
        let mut old = cand(1, "专业版有多少空间？", "1TB", Some("2023-05-10"));
        old.similar = vec![
            "pro 多大".into(),
            "专业版容量".into(),
            "专业版有多少空间".into(),
        ];
        let mut new = cand(2, "专业版有多少空间?", "2TB", Some("2024-09-01"));
        new.similar = vec!["专业版容量".into(), " ".into(), "pro 能存多少".into()];
        let d = dedup(vec![old, new]);
        assert_eq!(d.kept.len(), 1);
        assert_eq!(d.kept[0].answer, "2TB");
        assert_eq!(
            d.kept[0].similar,
            ["pro 多大", "专业版容量", "pro 能存多少"]
        );
    }

    #[test]
    fn conflicts_keep_the_newest() {
        let d = dedup(vec![
            cand(1, "专业版有多少空间？", "1TB", Some("2023-05-10")),
            cand(2, "其他问题", "答案", None),
            cand(3, "专业版有多少空间?", "2TB", Some("2024-09-01 10:30:00")),
            cand(4, "专业版有多少空间？", "1.5TB", None),
        ]);
        let (kept, dups) = rows(&d);
        assert_eq!(kept, vec![2, 3]);
        use DuplicateKind::*;
        assert_eq!(dups, vec![(1, Conflicting, 3), (4, Conflicting, 3)]);
        let c = &d.conflicts[0];
        assert_eq!(c.resolution, Resolution::Newest);
        assert_eq!(c.id, entry_id("专业版有多少空间？"));
        let kept: Vec<bool> = c.variants.iter().map(|v| v.kept).collect();
        assert_eq!(kept, vec![false, true, false]);
    }

    #[test]
    fn conflicts_without_timestamps_keep_the_first_and_are_flagged() {
        let d = dedup(vec![
            cand(1, "Q", "old answer", None),
            cand(2, "Q", "new answer", None),
        ]);
        assert_eq!(rows(&d).0, vec![1]);
        assert_eq!(d.conflicts[0].resolution, Resolution::FirstNoTimestamp);
        assert_eq!(d.conflicts[0].variants.len(), 2);
    }

    #[test]
    fn ids_are_stable_and_ignore_surface_differences() {
        assert_eq!(entry_id("如何退款？"), entry_id("如何退款"));
        assert_eq!(
            entry_id("How do I contact support?"),
            entry_id("how do i contact  support")
        );
        assert_ne!(entry_id("如何退款？"), entry_id("如何开票？"));
        let id = entry_id("如何退款？");
        assert!(id.starts_with("faq-") && id.len() == 16, "{id}");
        assert_eq!(id, entry_id("如何退款？"));
    }

    #[test]
    fn timestamps_parse_to_sortable_text() {
        for (text, want) in [
            ("2024-09-01", "2024-09-01T00:00:00"),
            ("2024/9/1 10:30", "2024-09-01T10:30:00"),
            ("2024-09-01T10:30:15+08:00", "2024-09-01T10:30:15"),
            ("2024年9月1日", "2024-09-01T00:00:00"),
            ("1700000000", "2023-11-14T22:13:20"),
            ("1700000000123", "2023-11-14T22:13:20"),
        ] {
            assert_eq!(parse_timestamp(text).as_deref(), Some(want), "{text}");
        }
        for bad in ["", "yesterday", "2024-13-01", "12345"] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
    }
}
