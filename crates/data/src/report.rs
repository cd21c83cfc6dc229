//! The preparation report.
//!
//! Owns: the shape of `report.json` (counts in and out, every dropped row with its location
//! and reason, conflicts, redactions by type, token-length statistics, the split) and its short
//! human-readable summary. Invariant: `counts.rows_in == counts.kept + counts.dropped` and
//! `dropped` lists exactly `counts.dropped` rows, so nothing disappears unreported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dedup::Conflict;
use crate::pii::RedactionCounts;
use crate::read::{Columns, InputFormat, SourceRef};
use crate::tokens::TokenStats;

/// Why a row is not in the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Unreadable row: broken CSV quoting, a JSON element that is not an object, …
    Malformed,
    EmptyQuestion,
    EmptyAnswer,
    /// Question or answer shorter than the configured minimum.
    TooShort,
    /// Same question and answer, byte for byte, as an earlier row.
    ExactDuplicate,
    /// Same question and answer as an earlier row once case, width and spacing are ignored.
    NearDuplicate,
    /// Same question as another row with a different answer; the other row was kept.
    ConflictingDuplicate,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::EmptyQuestion => "empty_question",
            DropReason::EmptyAnswer => "empty_answer",
            DropReason::TooShort => "too_short",
            DropReason::ExactDuplicate => "exact_duplicate",
            DropReason::NearDuplicate => "near_duplicate",
            DropReason::ConflictingDuplicate => "conflicting_duplicate",
        }
    }
}

/// One row that did not make it into the outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedRow {
    pub source: SourceRef,
    pub reason: DropReason,
    /// What exactly was wrong, in words.
    pub detail: String,
    /// The row's question after cleaning and redaction, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// For duplicates: the row this one duplicates (or lost to).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<SourceRef>,
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputInfo {
    pub path: PathBuf,
    pub format: InputFormat,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub columns: Columns,
}

/// Row counts. `rows_in = kept + dropped`; `train + test = kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub rows_in: usize,
    pub malformed: usize,
    pub dropped: usize,
    pub kept: usize,
    pub train: usize,
    pub test: usize,
}

/// How the instruction set was split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub seed: u64,
    pub test_ratio: f64,
    pub train_ids: Vec<String>,
    pub test_ids: Vec<String>,
}

/// Files written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    pub knowledge: PathBuf,
    /// The gateway's precomputed index of `knowledge` (kefu-guard's index file format).
    pub index: PathBuf,
    pub train: PathBuf,
    pub test: PathBuf,
    pub report: PathBuf,
}

/// Everything `report.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub input: InputInfo,
    pub counts: Counts,
    /// Dropped rows per reason (reasons with no rows are left out).
    pub drops_by_reason: BTreeMap<DropReason, usize>,
    pub dropped: Vec<DroppedRow>,
    pub conflicts: Vec<Conflict>,
    pub redactions: RedactionCounts,
    /// Lengths of the rendered training examples (see `tokens::render_chatml`).
    pub tokens: TokenStats,
    pub split: SplitInfo,
    pub outputs: Outputs,
}

impl Report {
    /// A few lines for a terminal.
    pub fn summary(&self) -> String {
        let c = &self.counts;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "read {} rows from {} ({}{}): kept {}, dropped {}",
            c.rows_in,
            self.input.path.display(),
            self.input.format,
            self.input
                .encoding
                .as_deref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default(),
            c.kept,
            c.dropped
        );
        if !self.drops_by_reason.is_empty() {
            let reasons: Vec<String> = self
                .drops_by_reason
                .iter()
                .map(|(r, n)| format!("{} {n}", r.as_str()))
                .collect();
            let _ = writeln!(s, "  dropped: {}", reasons.join(", "));
        }
        let unresolved = self
            .conflicts
            .iter()
            .filter(|c| c.resolution == crate::dedup::Resolution::FirstNoTimestamp)
            .count();
        if !self.conflicts.is_empty() {
            let _ = writeln!(
                s,
                "  conflicts: {} ({} settled by timestamp, {} need review)",
                self.conflicts.len(),
                self.conflicts.len() - unresolved,
                unresolved
            );
        }
        let r = &self.redactions;
        let kinds: Vec<String> = r
            .by_kind()
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "  redacted: {}{}",
            r.total(),
            if kinds.is_empty() {
                String::new()
            } else {
                format!(" ({})", kinds.join(", "))
            }
        );
        let _ = writeln!(
            s,
            "  split: {} train / {} test (seed {}, test ratio {})",
            c.train, c.test, self.split.seed, self.split.test_ratio
        );
        let t = &self.tokens;
        let _ = writeln!(
            s,
            "  tokens per example ({}): p50 {}, p90 {}, p99 {}, max {}; max_seq_length {} truncates {:.1}%",
            t.tokenizer,
            t.p50,
            t.p90,
            t.p99,
            t.max,
            t.recommended_max_seq_length,
            t.truncated_fraction * 100.0
        );
        let dir = self
            .outputs
            .knowledge
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = write!(
            s,
            "  wrote {dir}/{{knowledge.jsonl, knowledge.index, train.jsonl, test.jsonl, report.json}}"
        );
        s
    }
}
