//! FAQ data preparation for kefu: `kefu data prepare`.
//!
//! Turns a raw FAQ export (.json, .jsonl, .csv or SQLite) into the files the rest of kefu
//! uses: the knowledge base the gateway answers from (`knowledge.jsonl`: every clean entry,
//! and `knowledge.index`, the same entries with their retrieval index precomputed so a fresh
//! gateway instance per request need not tokenise them), an instruction dataset split into
//! `train.jsonl` / `test.jsonl`, and `report.json` saying what was read, dropped, redacted and
//! how long the examples are in tokens.
//!
//! The pipeline is one module per step: [`read`] (formats, encodings, columns) → [`clean`]
//! (meaning-preserving text cleaning) → [`pii`] (redaction) → quality checks (here) →
//! [`dedup`] (duplicates, conflicts, ids) → [`split`] → [`report`], with [`tokens`] for the
//! training rendering and length statistics. The library never prints; the `kefu` binary
//! prints [`Report::summary`].
//!
//! Not here: tokenization itself (the caller passes a [`TokenCounter`]), training, serving.

pub mod clean;
pub mod dedup;
pub mod pii;
pub mod read;
pub mod report;
pub mod split;
pub mod tokens;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use read::InputFormat;
pub use report::{DropReason, DroppedRow, Report};
pub use tokens::{ApproxTokenCounter, TokenCounter, render_chatml};

use dedup::{Candidate, DuplicateKind};
use pii::{AllowList, RedactionCounts, Redactor};
use read::{ReadOptions, SourceRef};

/// Company e-mail domain kept by default (the demo product's).
pub const DEFAULT_COMPANY_DOMAIN: &str = "cloudsail.example";

/// Arguments of `kefu data prepare`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct PrepareArgs {
    /// FAQ export: .json (array of objects), .jsonl, .csv/.tsv, or a SQLite database.
    #[arg(long, short = 'i', value_name = "FILE")]
    pub input: PathBuf,

    /// SQL for a SQLite input [default: SELECT * FROM faq_table].
    #[arg(long, value_name = "SQL")]
    pub query: Option<String>,

    /// Input format; `auto` decides by extension, then by content.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,

    /// Output directory for knowledge.jsonl, knowledge.index, train.jsonl, test.jsonl and
    /// report.json.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,

    /// Share of entries held out in test.jsonl (0 ≤ ratio < 1).
    #[arg(long, value_name = "RATIO", default_value_t = 0.1, value_parser = parse_ratio)]
    pub test_ratio: f64,

    /// Seed of the train/test split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// Text encoding of .json/.jsonl/.csv inputs (utf-8, gbk, gb18030, …) [default: detect:
    /// BOM, else UTF-8 when valid, else GB18030].
    #[arg(long, value_name = "LABEL")]
    pub encoding: Option<String>,

    /// Column/key holding the question [default: question, instruction, q or 问题].
    #[arg(long, value_name = "NAME")]
    pub question_field: Option<String>,

    /// Column/key holding the answer [default: answer, output, a or 答案].
    #[arg(long, value_name = "NAME")]
    pub answer_field: Option<String>,

    /// Column/key holding other ways customers ask the question, one a line or separated by
    /// `|` (a list in JSON) [default: similar, aliases, 相似问法, … if present]. They make
    /// retrieval find the entry; they are never shown.
    #[arg(long, value_name = "NAME")]
    pub similar_field: Option<String>,

    /// Column/key holding tags [default: tags, tag, 标签, category if present].
    #[arg(long, value_name = "NAME")]
    pub tags_field: Option<String>,

    /// Column/key holding the last-update time used to settle conflicts [default:
    /// updated_at, update_time, 更新时间, … if present].
    #[arg(long, value_name = "NAME")]
    pub updated_at_field: Option<String>,

    /// Company e-mail domain: its addresses (and subdomains') are kept, not redacted.
    /// Repeatable.
    #[arg(long = "company-domain", value_name = "DOMAIN", default_value = DEFAULT_COMPANY_DOMAIN)]
    pub company_domains: Vec<String>,

    /// A contact to keep although it looks personal: a phone number or e-mail address, `*`
    /// matches anything ("138*", "*@partner.example"). Repeatable. 400/800 hotlines and the
    /// company domain are always kept.
    #[arg(long = "allow-contact", value_name = "PATTERN")]
    pub allow_contacts: Vec<String>,

    /// Drop entries whose answer has fewer characters (whitespace not counted).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub min_answer_chars: usize,

    /// Drop entries whose question has fewer characters (whitespace not counted).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub min_question_chars: usize,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is outside 0 ≤ ratio < 1"))
    }
}

impl PrepareArgs {
    /// Arguments with every default, for library callers and tests.
    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: PrepareArgs,
        }
        let mut args =
            <Wrapper as clap::Parser>::parse_from(["prepare", "-i", "-", "-o", "-"]).args;
        args.input = input.into();
        args.out = out.into();
        args
    }

    fn read_options(&self) -> ReadOptions {
        ReadOptions {
            format: Some(self.format),
            encoding: self.encoding.clone(),
            query: self.query.clone(),
            question_field: self.question_field.clone(),
            answer_field: self.answer_field.clone(),
            similar_field: self.similar_field.clone(),
            tags_field: self.tags_field.clone(),
            updated_at_field: self.updated_at_field.clone(),
        }
    }
}

/// One line of knowledge.jsonl.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnowledgeEntry {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// Other ways customers ask the question (for retrieval only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub similar: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// One line of train.jsonl / test.jsonl. `id` links the example to its knowledge entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstructionExample {
    pub id: String,
    pub instruction: String,
    pub input: String,
    pub output: String,
}

impl From<&KnowledgeEntry> for InstructionExample {
    fn from(e: &KnowledgeEntry) -> Self {
        InstructionExample {
            id: e.id.clone(),
            instruction: e.question.clone(),
            input: String::new(),
            output: e.answer.clone(),
        }
    }
}

fn visible_chars(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Runs the whole preparation and writes DIR/knowledge.jsonl, knowledge.index, train.jsonl,
/// test.jsonl and report.json. Token lengths are measured with `counter` over [`render_chatml`].
pub fn prepare(args: &PrepareArgs, counter: &dyn TokenCounter) -> Result<Report> {
    if !(0.0..1.0).contains(&args.test_ratio) {
        bail!(
            "--test-ratio must be at least 0 and below 1, got {}",
            args.test_ratio
        );
    }
    let input = read::read_input(&args.input, &args.read_options())?;
    let redactor = Redactor::new(AllowList::new(&args.company_domains, &args.allow_contacts));
    let mut redactions = RedactionCounts::default();
    let mut dropped: Vec<DroppedRow> = input
        .malformed
        .iter()
        .map(|m| DroppedRow {
            source: m.source,
            reason: DropReason::Malformed,
            detail: m.error.clone(),
            question: None,
            duplicate_of: None,
        })
        .collect();

    let mut candidates = Vec::new();
    for rec in &input.records {
        let question = redactor.redact(&clean::clean_text(&rec.question), &mut redactions);
        let answer = redactor.redact(&clean::clean_text(&rec.answer), &mut redactions);
        let mut reject = |reason, detail: String| {
            dropped.push(DroppedRow {
                source: rec.source,
                reason,
                detail,
                question: Some(question.clone()).filter(|q| !q.is_empty()),
                duplicate_of: None,
            })
        };
        let (q_len, a_len) = (visible_chars(&question), visible_chars(&answer));
        if q_len == 0 {
            reject(
                DropReason::EmptyQuestion,
                "the question is empty after cleaning".into(),
            );
        } else if a_len == 0 {
            reject(
                DropReason::EmptyAnswer,
                "the answer is empty after cleaning".into(),
            );
        } else if q_len < args.min_question_chars {
            reject(
                DropReason::TooShort,
                format!(
                    "question has {q_len} characters, minimum {}",
                    args.min_question_chars
                ),
            );
        } else if a_len < args.min_answer_chars {
            reject(
                DropReason::TooShort,
                format!(
                    "answer has {a_len} characters, minimum {}",
                    args.min_answer_chars
                ),
            );
        } else {
            let mut tags: Vec<String> = Vec::new();
            for tag in &rec.tags {
                let tag = clean::clean_text(tag);
                if !tag.is_empty() && !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            // Repeats and copies of the question go in dedup, with the other rows' ones.
            let similar = rec
                .similar
                .iter()
                .map(|q| redactor.redact(&clean::clean_text(q), &mut redactions))
                .collect();
            candidates.push(Candidate {
                source: rec.source,
                raw_question: rec.question.clone(),
                raw_answer: rec.answer.clone(),
                question,
                answer,
                similar,
                tags,
                updated_at: rec.updated_at.clone(),
            });
        }
    }

    let deduped = dedup::dedup(candidates);
    for d in &deduped.duplicates {
        let (reason, detail) = match d.kind {
            DuplicateKind::Exact => (DropReason::ExactDuplicate, format!("same as {}", d.of)),
            DuplicateKind::Near => (
                DropReason::NearDuplicate,
                format!("same as {} after normalisation", d.of),
            ),
            DuplicateKind::Conflicting => (
                DropReason::ConflictingDuplicate,
                format!(
                    "same question as {} with a different answer; that row was kept",
                    d.of
                ),
            ),
        };
        dropped.push(DroppedRow {
            source: d.candidate.source,
            reason,
            detail,
            question: Some(d.candidate.question.clone()),
            duplicate_of: Some(d.of),
        });
    }
    dropped.sort_by_key(|d| d.source);

    let entries: Vec<KnowledgeEntry> = deduped
        .kept
        .iter()
        .map(|c| KnowledgeEntry {
            id: dedup::entry_id(&c.question),
            question: c.question.clone(),
            answer: c.answer.clone(),
            similar: c.similar.clone(),
            tags: c.tags.clone(),
        })
        .collect();
    check_unique_ids(
        &entries,
        &deduped.kept.iter().map(|c| c.source).collect::<Vec<_>>(),
    )?;

    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    let (train_idx, test_idx) = split::split(&ids, args.test_ratio, args.seed);
    let lengths: Vec<usize> = entries
        .iter()
        .map(|e| counter.count(&render_chatml(&e.question, &e.answer)))
        .collect();

    let out = &args.out;
    fs::create_dir_all(out)
        .with_context(|| format!("cannot create output directory {}", out.display()))?;
    let outputs = report::Outputs {
        knowledge: out.join("knowledge.jsonl"),
        index: out.join("knowledge.index"),
        train: out.join("train.jsonl"),
        test: out.join("test.jsonl"),
        report: out.join("report.json"),
    };
    write_jsonl(&outputs.knowledge, entries.iter())?;
    write_index(&outputs.knowledge, &outputs.index)?;
    let examples = |idx: &[usize]| -> Vec<InstructionExample> {
        idx.iter()
            .map(|&i| InstructionExample::from(&entries[i]))
            .collect()
    };
    write_jsonl(&outputs.train, examples(&train_idx).iter())?;
    write_jsonl(&outputs.test, examples(&test_idx).iter())?;

    let mut drops_by_reason = BTreeMap::new();
    for d in &dropped {
        *drops_by_reason.entry(d.reason).or_insert(0) += 1;
    }
    let report = Report {
        input: report::InputInfo {
            path: args.input.clone(),
            format: input.format,
            encoding: input.encoding.clone(),
            query: input.query.clone(),
            columns: input.columns.clone(),
        },
        counts: report::Counts {
            rows_in: input.records.len() + input.malformed.len(),
            malformed: input.malformed.len(),
            dropped: dropped.len(),
            kept: entries.len(),
            train: train_idx.len(),
            test: test_idx.len(),
        },
        drops_by_reason,
        dropped,
        conflicts: deduped.conflicts,
        redactions,
        tokens: tokens::token_stats(&lengths, &counter.name()),
        split: report::SplitInfo {
            seed: args.seed,
            test_ratio: args.test_ratio,
            train_ids: train_idx.iter().map(|&i| entries[i].id.clone()).collect(),
            test_ids: test_idx.iter().map(|&i| entries[i].id.clone()).collect(),
        },
        outputs: outputs.clone(),
    };
    let json = serde_json::to_string_pretty(&report).context("cannot serialise the report")?;
    fs::write(&outputs.report, json + "\n")
        .with_context(|| format!("cannot write {}", outputs.report.display()))?;
    Ok(report)
}

/// Two different questions hashing to the same 48-bit id would make citations ambiguous.
fn check_unique_ids(entries: &[KnowledgeEntry], sources: &[SourceRef]) -> Result<()> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(&j) = seen.get(e.id.as_str()) {
            bail!(
                "entries at {} and {} got the same id {}; reword one of the questions",
                sources[j],
                sources[i],
                e.id
            );
        }
        seen.insert(&e.id, i);
    }
    Ok(())
}

/// Writes the gateway's precomputed index of the knowledge base just written. It records the
/// bytes it was made from: after a hand edit of knowledge.jsonl the gateway ignores it.
fn write_index(knowledge: &Path, index: &Path) -> Result<()> {
    let jsonl =
        fs::read(knowledge).with_context(|| format!("cannot read {}", knowledge.display()))?;
    let kb = kefu_guard::Knowledge::from_jsonl(&jsonl)
        .with_context(|| format!("the guard cannot load {}", knowledge.display()))?;
    fs::write(index, kb.to_index_bytes())
        .with_context(|| format!("cannot write {}", index.display()))
}

fn write_jsonl<'a, T: Serialize + 'a>(
    path: &Path,
    items: impl Iterator<Item = &'a T>,
) -> Result<()> {
    let write = || -> Result<()> {
        let mut w = std::io::BufWriter::new(fs::File::create(path)?);
        for item in items {
            serde_json::to_writer(&mut w, item)?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        Ok(())
    };
    write().with_context(|| format!("cannot write {}", path.display()))
}
