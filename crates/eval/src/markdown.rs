//! report.md: the report's tables for people (the same figures as report.json).

use std::fmt::Write;

use crate::bootstrap::DeltaInterval;
use crate::report::{Comparison, Report};

/// Renders the whole report as Markdown.
pub fn render(report: &Report) -> String {
    let mut md = String::new();
    let s = &report.settings;
    let _ = writeln!(md, "# Evaluation report\n");
    let load = report
        .machine
        .load_average_start
        .map(|l| format!(", load average {:.2} at the start", l[0]))
        .unwrap_or_default();
    let _ = writeln!(
        md,
        "Data: `{}`, {} questions. Greedy answers (at most {} tokens) through kefu-engine with \
         each model's chat template; {} threads on {} CPUs{load}. Deltas are `model - {}` with \
         {:.0}% paired bootstrap intervals ({} resamples); `*` marks an interval that excludes 0.\n",
        report.data.display(),
        report.examples,
        s.max_tokens,
        s.threads,
        report.machine.cpus,
        report.models.first().map_or("", |m| m.name.as_str()),
        s.bootstrap.confidence * 100.0,
        s.bootstrap.resamples,
    );

    md.push_str(&summary(report));
    for c in &report.comparisons {
        flips(&mut md, c);
    }

    let _ = writeln!(md, "## Per question\n");
    for q in &report.questions {
        let _ = writeln!(md, "### `{}` {}\n", q.id, one_line(&q.question, 200));
        let _ = writeln!(md, "Reference: {}\n", one_line(&q.reference, 400));
        let _ = writeln!(
            md,
            "Facts: {}\n",
            if q.facts.is_empty() {
                "(none)".to_string()
            } else {
                q.facts.join(", ")
            }
        );
        let _ = writeln!(
            md,
            "| model | right | facts | NLL | ROUGE-L | chrF | answer |"
        );
        let _ = writeln!(md, "|---|---|--:|--:|--:|--:|---|");
        for a in &q.answers {
            let _ = writeln!(
                md,
                "| {} | {} | {}/{} | {:.3} | {:.3} | {:.1} | {} |",
                a.model,
                if a.scores.right { "yes" } else { "no" },
                a.scores.facts.found,
                a.scores.facts.total,
                a.nll,
                a.scores.rouge_l,
                a.scores.chrf,
                one_line(&a.answer, 300),
            );
        }
        md.push('\n');
    }
    md
}

/// The models table and the comparison table (also printed by `kefu eval`).
pub fn summary(report: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Models\n");
    let _ = writeln!(
        md,
        "| model | type | size (MB) | NLL | PPL | fact acc. | right | ROUGE-L | chrF | exact | prefill tok/s | decode tok/s |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for m in &report.models {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.3} | {:.2} | {} | {}/{} | {:.3} | {:.1} | {:.2} | {:.0} | {:.1} |",
            m.name,
            m.file_type,
            m.size_bytes as f64 / 1e6,
            m.mean_nll,
            m.perplexity,
            m.fact_accuracy.map_or("n/a".into(), |f| format!("{f:.3}")),
            m.right,
            report.examples,
            m.rouge_l,
            m.chrf,
            m.exact_match,
            m.speed.prefill_tokens_per_second,
            m.speed.decode_tokens_per_second,
        );
    }
    md.push('\n');

    if !report.comparisons.is_empty() {
        let _ = writeln!(
            md,
            "## Against the reference ({})\n",
            report.comparisons[0].reference
        );
        let _ = writeln!(
            md,
            "| model | Δ NLL | Δ fact acc. | Δ right | Δ ROUGE-L | Δ chrF | Δ exact | changed answers | right→wrong | wrong→right |"
        );
        let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for c in &report.comparisons {
            let d = |k: &str| c.deltas.get(k).map_or("n/a".into(), delta);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {}/{} | {} | {} |",
                c.model,
                d("nll"),
                d("fact_accuracy"),
                d("right"),
                d("rouge_l"),
                d("chrf"),
                d("exact_match"),
                c.changed_answers,
                report.examples,
                c.right_to_wrong.len(),
                c.wrong_to_right.len(),
            );
        }
        md.push('\n');
    }

    md
}

fn flips(md: &mut String, c: &Comparison) {
    let _ = writeln!(md, "### Right → wrong: {}\n", c.model);
    if c.right_to_wrong.is_empty() {
        let _ = writeln!(md, "None.\n");
        return;
    }
    for f in &c.right_to_wrong {
        let _ = writeln!(
            md,
            "- `{}` {} (missing: {})\n  - {}: {}\n  - {}: {}",
            f.id,
            one_line(&f.question, 200),
            if f.missing_facts.is_empty() {
                "-".to_string()
            } else {
                f.missing_facts.join(", ")
            },
            c.reference,
            one_line(&f.before, 300),
            c.model,
            one_line(&f.after, 300),
        );
    }
    md.push('\n');
}

/// `+0.012 [-0.003, +0.027]`, with `*` when the interval excludes 0.
pub fn delta(d: &DeltaInterval) -> String {
    format!(
        "{:+.3} [{:+.3}, {:+.3}]{}",
        d.delta,
        d.low,
        d.high,
        if d.significant() { "*" } else { "" }
    )
}

/// Text safe for one Markdown table cell: one line, `|` escaped, at most `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out: String = flat.chars().take(max).collect();
    if flat.chars().count() > max {
        out.push('…');
    }
    out.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(one_line("a |\nb", 10), "a \\| b");
        assert_eq!(one_line("一二三四", 2), "一二…");
    }

    #[test]
    fn deltas_mark_significance() {
        let d = DeltaInterval {
            delta: 0.5,
            low: 0.1,
            high: 0.9,
            n: 7,
        };
        assert_eq!(delta(&d), "+0.500 [+0.100, +0.900]*");
    }
}
