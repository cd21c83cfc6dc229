//! The report's data model: what `kefu eval` writes to report.json (and reads back in tests).
//! Every figure of report.md and the plots comes from these types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::bootstrap::{BootstrapConfig, DeltaInterval};
use crate::generate::Speed;
use crate::metrics::AnswerScores;

/// Everything one `kefu eval` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the Unix epoch when the run finished.
    pub created_unix: u64,
    /// The evaluation set.
    pub data: PathBuf,
    /// Questions evaluated.
    pub examples: usize,
    pub settings: Settings,
    pub machine: Machine,
    /// One summary per model, the reference (first `--model`) first.
    pub models: Vec<ModelSummary>,
    /// Every other model against the reference.
    pub comparisons: Vec<Comparison>,
    /// Per question, every model's answer and scores.
    pub questions: Vec<QuestionResult>,
}

/// How the run was configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub max_tokens: u32,
    pub threads: i32,
    pub system: Option<String>,
    pub limit: Option<usize>,
    pub bootstrap: BootstrapConfig,
}

/// Where the speed figures were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpus: usize,
    /// 1, 5 and 15 minute load averages at the start (Linux), to judge how busy it was.
    pub load_average_start: Option<[f64; 3]>,
}

/// One model's aggregate figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    /// Short name (the file stem, made unique).
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    /// Encoding as llama.cpp names it (`Q8_0`, `F16`, `Q4_K - Medium`).
    pub file_type: String,
    /// Token-weighted mean NLL of the reference answers (nats per token).
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    pub answer_tokens: usize,
    /// Mean per-question share of reference facts stated (questions with facts only).
    pub fact_accuracy: Option<f64>,
    pub facts_found: usize,
    pub facts_total: usize,
    /// Questions answered right (see [`crate::metrics::AnswerScores::right`]).
    pub right: usize,
    /// Mean ROUGE-L F1 (0..1).
    pub rouge_l: f64,
    /// Mean chrF (0..100).
    pub chrf: f64,
    /// Share of exact matches.
    pub exact_match: f64,
    /// Generation speed through the serving engine.
    pub speed: Speed,
    /// Forward-pass throughput of likelihood scoring (prompt and answer tokens per second).
    pub scoring_tokens_per_second: f64,
}

/// A model against the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub model: String,
    pub reference: String,
    /// Per metric (see [`crate::compare::Metric`]), mean of `model - reference` with its
    /// bootstrap interval.
    pub deltas: BTreeMap<String, DeltaInterval>,
    /// Questions the reference got right and this model got wrong.
    pub right_to_wrong: Vec<Flip>,
    /// Questions the reference got wrong and this model got right.
    pub wrong_to_right: Vec<Flip>,
    /// Questions whose generated answer text differs from the reference model's.
    pub changed_answers: usize,
}

/// A question whose verdict changed between the reference model and another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    pub id: String,
    pub question: String,
    pub reference_answer: String,
    /// The reference model's answer.
    pub before: String,
    /// This model's answer.
    pub after: String,
    /// Facts this model's answer lacks.
    pub missing_facts: Vec<String>,
}

/// One question across models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionResult {
    pub id: String,
    pub question: String,
    pub reference: String,
    /// Canonical facts of the reference.
    pub facts: Vec<String>,
    /// One entry per model, in model order.
    pub answers: Vec<ModelAnswer>,
}

/// One model's answer to one question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAnswer {
    pub model: String,
    pub answer: String,
    pub scores: AnswerScores,
    /// Mean NLL of the reference answer's tokens.
    pub nll: f64,
    pub answer_tokens: usize,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish_reason: String,
}

impl Report {
    /// Writes pretty JSON to `path`.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a report written by [`Self::write_json`].
    pub fn read_json(path: &Path) -> Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}
