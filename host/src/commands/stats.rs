//! `kefu stats`: request lengths from live traffic (the gateway's stored completions) and a
//! `max_seq_length` recommendation.
//!
//! Percentiles and the recommendation are `kefu_data::tokens`' (the same rule `kefu data
//! prepare` applies to the training set); lengths are the engine's own token counts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use kefu_data::tokens::{percentile, token_stats};
use kefu_feedback::{COMPLETION_PREFIX, CompletionRecord, lengths::Lengths};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// The state directory `kefu up` ran with.
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Percentiles of one length.
#[derive(Debug, Serialize)]
struct Percentiles {
    p50: usize,
    p90: usize,
    p95: usize,
    p99: usize,
    max: usize,
}

impl Percentiles {
    fn of(values: &[usize]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        Self {
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted.last().copied().unwrap_or(0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Stats {
    completions: usize,
    /// Completions per guard action.
    actions: BTreeMap<String, usize>,
    /// Completions that called the model (the rest read no prompt).
    model_calls: usize,
    prompt_tokens: Percentiles,
    completion_tokens: Percentiles,
    total_tokens: Percentiles,
    /// Smallest friendly length covering p99 of prompt + completion with headroom.
    recommended_max_seq_length: usize,
    /// Share of model calls longer than the recommendation.
    truncated_fraction: f64,
}

pub fn run(args: StatsArgs) -> Result<()> {
    let kv = super::feedback::open(&args.state_dir)?;
    let records: Vec<CompletionRecord> = super::feedback::read_records(&kv, COMPLETION_PREFIX)?;
    let lengths = Lengths::collect(&records);
    let total = token_stats(&lengths.total, "engine");
    let mut actions = BTreeMap::new();
    for r in &records {
        *actions.entry(r.action.clone()).or_default() += 1;
    }
    let stats = Stats {
        completions: records.len(),
        actions,
        model_calls: lengths.total.len(),
        prompt_tokens: Percentiles::of(&lengths.prompt),
        completion_tokens: Percentiles::of(&lengths.completion),
        total_tokens: Percentiles::of(&lengths.total),
        recommended_max_seq_length: total.recommended_max_seq_length,
        truncated_fraction: total.truncated_fraction,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        print!("{}", summary(&stats));
    }
    Ok(())
}

fn summary(s: &Stats) -> String {
    let actions: Vec<String> = s.actions.iter().map(|(a, n)| format!("{a} {n}")).collect();
    let mut out = format!(
        "{} completions ({}), {} model calls\n",
        s.completions,
        if actions.is_empty() {
            "none".to_owned()
        } else {
            actions.join(", ")
        },
        s.model_calls
    );
    if s.model_calls == 0 {
        out.push_str("no model calls recorded yet: no length statistics\n");
        return out;
    }
    out.push_str("tokens        p50    p90    p95    p99    max\n");
    for (name, p) in [
        ("prompt", &s.prompt_tokens),
        ("completion", &s.completion_tokens),
        ("total", &s.total_tokens),
    ] {
        out.push_str(&format!(
            "{name:<10} {:>6} {:>6} {:>6} {:>6} {:>6}\n",
            p.p50, p.p90, p.p95, p.p99, p.max
        ));
    }
    out.push_str(&format!(
        "max_seq_length {} (p99 of prompt + completion plus 10% headroom) truncates {:.1}%\n",
        s.recommended_max_seq_length,
        s.truncated_fraction * 100.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_summary() {
        let values: Vec<usize> = (1..=100).collect();
        let p = Percentiles::of(&values);
        assert_eq!((p.p50, p.p90, p.p95, p.p99, p.max), (50, 90, 95, 99, 100));
        let empty = Stats {
            completions: 2,
            actions: [("refuse".to_owned(), 2)].into(),
            model_calls: 0,
            prompt_tokens: Percentiles::of(&[]),
            completion_tokens: Percentiles::of(&[]),
            total_tokens: Percentiles::of(&[]),
            recommended_max_seq_length: 64,
            truncated_fraction: 0.0,
        };
        assert!(summary(&empty).contains("no model calls"));
    }
}
