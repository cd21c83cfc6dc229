//! PNG plots of a report, drawn with plotters' bitmap backend. Text uses DejaVu Sans embedded
//! in the binary (the `dejavu` crate), so plots render the same with or without system fonts;
//! labels are ASCII (model names, metric names), never the questions themselves.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::compare::{Metric, values};
use crate::report::Report;

const FONT: &str = "sans-serif";

fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
    });
    ok.then_some(())
        .ok_or_else(|| anyhow!("the embedded DejaVu Sans font could not be loaded"))
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing a plot: {e}")
}

/// Writes every plot of `report` into `dir` and returns their paths:
/// `metrics.png` (answer quality per model), `size_speed.png` (size, decode speed, perplexity)
/// and `scatter_<model>.png` per compared model (per-question NLL and ROUGE-L, reference on x).
pub fn write_plots(report: &Report, dir: &Path) -> Result<Vec<PathBuf>> {
    ensure_font()?;
    let mut written = Vec::new();
    let path = dir.join("metrics.png");
    metrics_plot(report, &path)?;
    written.push(path);
    let path = dir.join("size_speed.png");
    size_speed_plot(report, &path)?;
    written.push(path);
    for (m, c) in report.comparisons.iter().enumerate() {
        let path = dir.join(format!("scatter_{}.png", file_safe(&c.model)));
        scatter_plot(report, 0, m + 1, &path)?;
        written.push(path);
    }
    Ok(written)
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Grouped bars: per metric, one bar per model; all scores on 0..1 (chrF / 100).
fn metrics_plot(report: &Report, path: &Path) -> Result<()> {
    let groups: Vec<(&str, Vec<f64>)> = vec![
        (
            "fact accuracy",
            report
                .models
                .iter()
                .map(|m| m.fact_accuracy.unwrap_or(0.0))
                .collect(),
        ),
        (
            "right",
            report
                .models
                .iter()
                .map(|m| m.right as f64 / report.examples.max(1) as f64)
                .collect(),
        ),
        ("ROUGE-L", report.models.iter().map(|m| m.rouge_l).collect()),
        (
            "chrF / 100",
            report.models.iter().map(|m| m.chrf / 100.0).collect(),
        ),
        (
            "exact match",
            report.models.iter().map(|m| m.exact_match).collect(),
        ),
    ];
    let names: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
    let root = BitMapBackend::new(path, (1100, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    bars(
        &root,
        "Answer quality per model",
        "score",
        &groups,
        &names,
        (0.0, 1.0),
    )?;
    root.present().map_err(err)
}

/// Three panels: file size, decode speed, perplexity.
fn size_speed_plot(report: &Report, path: &Path) -> Result<()> {
    let full: Vec<&str> = report.models.iter().map(|m| m.name.as_str()).collect();
    let short = short_names(&full);
    let names: Vec<&str> = short.iter().map(String::as_str).collect();
    let root = BitMapBackend::new(path, (1200, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 3));
    let series: [(&str, &str, Vec<f64>); 3] = [
        (
            "File size",
            "MB",
            report
                .models
                .iter()
                .map(|m| m.size_bytes as f64 / 1e6)
                .collect(),
        ),
        (
            "Decode speed",
            "tokens/s",
            report
                .models
                .iter()
                .map(|m| m.speed.decode_tokens_per_second)
                .collect(),
        ),
        (
            "Perplexity of references",
            "PPL",
            report.models.iter().map(|m| m.perplexity).collect(),
        ),
    ];
    for (panel, (title, unit, v)) in panels.iter().zip(series) {
        let top = v.iter().copied().fold(0.0f64, f64::max);
        bars(panel, title, unit, &[("", v)], &names, (0.0, top.max(1e-9)))?;
    }
    root.present().map_err(err)
}

/// Bars of `groups` (label, one value per model) on a value range.
fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    groups: &[(&str, Vec<f64>)],
    names: &[&str],
    (lo, hi): (f64, f64),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n_groups = groups.len();
    let n_models = names.len().max(1);
    let span = hi - lo;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(10)
        .y_label_area_size(60)
        .build_cartesian_2d(
            0f64..n_groups as f64,
            (lo - 0.12 * span)..(hi + 0.12 * span),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .draw()
        .map_err(err)?;
    let width = 0.8 / n_models as f64;
    for (j, name) in names.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let rects: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(g, (_, v))| {
                let x0 = g as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, lo), (x0 + width * 0.9, v[j])], color.filled())
            })
            .collect();
        let drawn = chart.draw_series(rects).map_err(err)?;
        if n_groups > 1 {
            drawn.label(*name).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
            });
        }
        // Value labels above the bars.
        let labels: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(g, (_, v))| {
                let x = g as f64 + 0.1 + j as f64 * width;
                Text::new(format_value(v[j]), (x, v[j] + 0.02 * span), (FONT, 12))
            })
            .collect();
        chart.draw_series(labels).map_err(err)?;
    }
    // Category labels under the axis: metric names for grouped bars, model names otherwise.
    let under = lo - 0.06 * span;
    let labels: Vec<_> = if n_groups > 1 {
        groups
            .iter()
            .enumerate()
            .map(|(g, (label, _))| {
                Text::new(label.to_string(), (g as f64 + 0.3, under), (FONT, 15))
            })
            .collect()
    } else {
        names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                Text::new(
                    name.to_string(),
                    (0.1 + j as f64 * width, under),
                    (FONT, 13),
                )
            })
            .collect()
    };
    chart.draw_series(labels).map_err(err)?;
    if n_groups > 1 {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
    }
    Ok(())
}

/// Names without the prefix they all share (up to a `.` or `-`): `model.Q8_0` and
/// `model.F16` become `Q8_0` and `F16`. Unchanged when that would leave a name empty.
fn short_names(names: &[&str]) -> Vec<String> {
    if names.len() < 2 {
        return names.iter().map(|n| n.to_string()).collect();
    }
    let first = names[0];
    let mut common = first.len();
    for n in &names[1..] {
        common = common.min(
            first
                .char_indices()
                .zip(n.chars())
                .find(|((_, a), b)| a != b)
                .map_or(first.len().min(n.len()), |((i, _), _)| i),
        );
    }
    let cut = first[..common].rfind(['.', '-']).map_or(0, |i| i + 1);
    if names.iter().any(|n| n.len() <= cut) {
        return names.iter().map(|n| n.to_string()).collect();
    }
    names.iter().map(|n| n[cut..].to_string()).collect()
}

fn format_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Per-question scatter, reference model on x, model `m` on y, with the diagonal.
fn scatter_plot(report: &Report, reference: usize, m: usize, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, 2));
    let ref_name = &report.models[reference].name;
    let name = &report.models[m].name;
    for (panel, metric, title) in [
        (
            &panels[0],
            Metric::Nll,
            "NLL of the reference answer (lower is better)",
        ),
        (
            &panels[1],
            Metric::RougeL,
            "ROUGE-L of the generated answer",
        ),
    ] {
        let xs = values(&report.questions, reference, metric);
        let ys = values(&report.questions, m, metric);
        let points: Vec<(f64, f64)> = xs
            .iter()
            .zip(&ys)
            .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
            .collect();
        let (mut lo, mut hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (x, y)| {
                (lo.min(*x).min(*y), hi.max(*x).max(*y))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(0.02);
        let (lo, hi) = (lo - pad, hi + pad);
        let mut chart = ChartBuilder::on(panel)
            .caption(title, (FONT, 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(lo..hi, lo..hi)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(ref_name.as_str())
            .y_desc(name.as_str())
            .label_style((FONT, 13))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(vec![(lo, lo), (hi, hi)], BLACK.mix(0.4)))
            .map_err(err)?;
        let color = Palette99::pick(m).to_rgba();
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 5, color.filled())),
            )
            .map_err(err)?;
    }
    root.present().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_the_shared_prefix() {
        assert_eq!(
            short_names(&["smollm2.F16", "smollm2.Q8_0", "smollm2.Q4_K_M"]),
            ["F16", "Q8_0", "Q4_K_M"]
        );
        assert_eq!(short_names(&["a", "a-2"]), ["a", "a-2"]);
        assert_eq!(short_names(&["x.Q4_0", "x.Q4_1"]), ["Q4_0", "Q4_1"]);
        assert_eq!(short_names(&["only"]), ["only"]);
    }
}
