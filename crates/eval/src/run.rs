//! `kefu eval`: runs every model over the evaluation set and writes the report.
//!
//! Per model: likelihood of the reference answers ([`crate::nll`]), greedy answers through the
//! engine ([`crate::generate`]) scored by [`crate::metrics`], speed and size. Then every model
//! is compared with the first ([`crate::compare`]), and report.json, report.md and the plots
//! are written to the output directory.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kefu_engine::Tokenizer;

use crate::bootstrap::BootstrapConfig;
use crate::compare::{Metric, compare, mean, values};
use crate::dataset::{EvalItem, load_examples, render};
use crate::generate::{Generated, generate_all, speed};
use crate::gguf::inspect;
use crate::metrics::{extract_facts, score};
use crate::nll::{NllRun, corpus_nll};
use crate::report::{Machine, ModelAnswer, ModelSummary, QuestionResult, Report, Settings};

/// Arguments of `kefu eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalArgs {
    /// A GGUF model to evaluate; repeat for more. The first is the reference the others are
    /// compared with.
    #[arg(long = "model", value_name = "GGUF", required_unless_present = "url")]
    pub models: Vec<PathBuf>,
    /// Held-out instruction set (JSON Lines from `kefu data prepare`).
    #[arg(long, value_name = "FILE", default_value = "data/prepared/test.jsonl")]
    pub data: PathBuf,
    /// Directory for report.json, report.md and the PNG plots (with `--url`: report.json).
    #[arg(long, value_name = "DIR", required_unless_present = "url")]
    pub out: Option<PathBuf>,
    /// Evaluate only the first N questions.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Most tokens per generated answer.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// CPU threads for llama.cpp (default: all cores).
    #[arg(long)]
    pub threads: Option<i32>,
    /// A system message before each question (default: none, as in training).
    #[arg(long)]
    pub system: Option<String>,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 2000)]
    pub bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl EvalArgs {
    pub fn new(models: Vec<PathBuf>, data: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            models,
            data: data.into(),
            out: Some(out.into()),
            limit: None,
            max_tokens: 256,
            threads: None,
            system: None,
            bootstrap: 2000,
            seed: 42,
            quiet: true,
        }
    }
}

/// One model's raw results.
struct ModelRun {
    name: String,
    path: PathBuf,
    items: Vec<EvalItem>,
    nll: NllRun,
    generated: Vec<Generated>,
}

/// Runs the evaluation and writes report.json, report.md and the plots to `args.out`.
pub fn evaluate(args: &EvalArgs) -> Result<Report> {
    anyhow::ensure!(!args.models.is_empty(), "give at least one --model");
    let mut examples = load_examples(&args.data)?;
    if let Some(limit) = args.limit {
        examples.truncate(limit.max(1));
    }
    let out = args.out.as_deref().context("--out is required")?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let threads = args
        .threads
        .unwrap_or_else(|| kefu_engine::EngineConfig::new("").threads);
    let machine = Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_average_start: load_average(),
    };
    let names = unique_names(&args.models);
    let steps = (args.models.len() * examples.len() * 2) as u64;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    };

    let mut runs = Vec::new();
    for (path, name) in args.models.iter().zip(&names) {
        anyhow::ensure!(path.is_file(), "no model file at {}", path.display());
        let tokenizer = Tokenizer::load(path)?;
        let items = render(&examples, &tokenizer, args.system.as_deref())?;
        bar.set_message(format!("{name}: likelihood of the references"));
        let nll = crate::nll::score(path, &items, threads, &mut || bar.inc(1))?;
        bar.set_message(format!("{name}: generating answers"));
        let generated = generate_all(path, &items, args.max_tokens, threads, &mut || bar.inc(1))?;
        runs.push(ModelRun {
            name: name.clone(),
            path: path.clone(),
            items,
            nll,
            generated,
        });
    }
    bar.finish_and_clear();

    let questions = questions(&runs);
    let bootstrap = BootstrapConfig {
        resamples: args.bootstrap,
        confidence: 0.95,
        seed: args.seed,
    };
    let models = runs
        .iter()
        .enumerate()
        .map(|(m, run)| summarize(run, m, &questions))
        .collect::<Result<Vec<_>>>()?;
    let comparisons = (1..runs.len())
        .map(|m| compare(&questions, 0, m, &bootstrap))
        .collect();
    let report = Report {
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        data: args.data.clone(),
        examples: examples.len(),
        settings: Settings {
            max_tokens: args.max_tokens,
            threads,
            system: args.system.clone(),
            limit: args.limit,
            bootstrap,
        },
        machine,
        models,
        comparisons,
        questions,
    };
    write(&report, out)?;
    Ok(report)
}

/// Writes report.json, report.md and the plots into `dir`.
pub fn write(report: &Report, dir: &Path) -> Result<()> {
    report.write_json(&dir.join("report.json"))?;
    let md = dir.join("report.md");
    std::fs::write(&md, crate::markdown::render(report))
        .with_context(|| format!("writing {}", md.display()))?;
    crate::plot::write_plots(report, dir)?;
    Ok(())
}

fn questions(runs: &[ModelRun]) -> Vec<QuestionResult> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    (0..first.items.len())
        .map(|i| {
            let item = &first.items[i];
            QuestionResult {
                id: item.id.clone(),
                question: item.question.clone(),
                reference: item.reference.clone(),
                facts: extract_facts(&item.reference)
                    .into_iter()
                    .map(|f| f.text)
                    .collect(),
                answers: runs
                    .iter()
                    .map(|run| {
                        let g = &run.generated[i];
                        let n = &run.nll.answers[i];
                        ModelAnswer {
                            model: run.name.clone(),
                            answer: g.text.clone(),
                            scores: score(&item.reference, &g.text),
                            nll: n.mean(),
                            answer_tokens: n.answer_tokens,
                            prompt_tokens: g.prompt_tokens,
                            completion_tokens: g.completion_tokens,
                            finish_reason: g.finish_reason.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect()
}

fn summarize(run: &ModelRun, m: usize, questions: &[QuestionResult]) -> Result<ModelSummary> {
    let (mean_nll, perplexity) = corpus_nll(&run.nll.answers);
    let info = inspect(&run.path)?;
    let answers = questions.iter().map(|q| &q.answers[m]);
    let (facts_found, facts_total) = answers.clone().fold((0, 0), |(f, t), a| {
        (f + a.scores.facts.found, t + a.scores.facts.total)
    });
    let avg = |metric| mean(&values(questions, m, metric)).unwrap_or(0.0);
    Ok(ModelSummary {
        name: run.name.clone(),
        path: run.path.clone(),
        size_bytes: std::fs::metadata(&run.path)?.len(),
        file_type: info.label(),
        mean_nll,
        perplexity,
        answer_tokens: run.nll.answers.iter().map(|a| a.answer_tokens).sum(),
        fact_accuracy: mean(&values(questions, m, Metric::FactRecall)),
        facts_found,
        facts_total,
        right: answers.filter(|a| a.scores.right).count(),
        rouge_l: avg(Metric::RougeL),
        chrf: avg(Metric::Chrf),
        exact_match: avg(Metric::ExactMatch),
        speed: speed(&run.generated),
        scoring_tokens_per_second: run.nll.tokens_per_second,
    })
}

/// File stems, with `-2`, `-3`, ... added to repeats.
fn unique_names(paths: &[PathBuf]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for p in paths {
        let stem = p
            .file_stem()
            .map_or_else(|| "model".to_string(), |s| s.to_string_lossy().into_owned());
        let mut name = stem.clone();
        let mut k = 2;
        while names.contains(&name) {
            name = format!("{stem}-{k}");
            k += 1;
        }
        names.push(name);
    }
    names
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_models_get_distinct_names() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            unique_names(&[p("m/a.gguf"), p("n/a.gguf"), p("b.gguf")]),
            ["a", "a-2", "b"]
        );
    }
}
