//! What a run leaves beside its output: `NAME.metrics.jsonl` (one JSON object per optimizer
//! step and per evaluation), `NAME.loss.png` (train and eval loss), and the peak memory figure.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One line of metrics.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    Train {
        step: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        tokens: usize,
        tok_per_s: f64,
        elapsed_s: f64,
    },
    Eval {
        step: usize,
        /// Epochs completed (0 = the base model).
        epoch: usize,
        eval_loss: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        fact_accuracy: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        questions_all_facts: Option<usize>,
        best: bool,
    },
}

/// Paths of the files beside `out` (`dir/NAME.gguf` gives `dir/NAME.metrics.jsonl`, …).
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    out.with_file_name(format!("{stem}.{suffix}"))
}

/// Appends metrics to a JSONL file.
pub struct MetricsLog {
    path: PathBuf,
    w: BufWriter<File>,
    pub rows: Vec<Metric>,
}

impl MetricsLog {
    /// Opens `path`; `resume` keeps (and reads back) earlier rows, else the file starts empty.
    pub fn open(path: &Path, resume: bool) -> Result<Self> {
        let mut rows = Vec::new();
        if resume && path.is_file() {
            let text = std::fs::read_to_string(path)?;
            rows = text
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(MetricsLog {
            path: path.to_path_buf(),
            w: BufWriter::new(file),
            rows,
        })
    }

    pub fn push(&mut self, m: Metric) -> Result<()> {
        serde_json::to_writer(&mut self.w, &m)?;
        self.w.write_all(b"\n")?;
        self.w
            .flush()
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.rows.push(m);
        Ok(())
    }
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`; `None` elsewhere).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Registers a system TrueType font for plot labels; plotters' `ab_glyph` backend needs one.
fn register_font() -> bool {
    use std::sync::OnceLock;
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        const CANDIDATES: [&str; 4] = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/System/Library/Fonts/Supplemental/Arial.ttf",
        ];
        CANDIDATES.iter().any(|p| {
            std::fs::read(p).ok().is_some_and(|bytes| {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
            })
        })
    })
}

/// Draws train loss per step and eval loss per epoch into a PNG. Without a usable system font
/// the curves are drawn without labels.
pub fn plot_losses(rows: &[Metric], path: &Path) -> Result<()> {
    let train: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|m| match m {
            Metric::Train { step, loss, .. } => Some((*step as f64, *loss)),
            _ => None,
        })
        .collect();
    let eval: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|m| match m {
            Metric::Eval {
                step, eval_loss, ..
            } => Some((*step as f64, *eval_loss)),
            _ => None,
        })
        .collect();
    let all = train.iter().chain(&eval);
    let x_max = all.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all.map(|p| p.1).fold(0.1, f64::max) * 1.05;
    let labels = register_font();
    let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(16);
        if labels {
            builder
                .caption("kefu train: loss", ("sans-serif", 22))
                .x_label_area_size(40)
                .y_label_area_size(56);
        }
        let mut chart = builder.build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        if labels {
            chart
                .configure_mesh()
                .x_desc("optimizer step")
                .y_desc("loss (nats/token)")
                .draw()?;
        } else {
            chart.configure_mesh().draw()?;
        }
        let train_series = chart.draw_series(LineSeries::new(train.clone(), &BLUE))?;
        if labels {
            train_series
                .label("train")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
        }
        let eval_line = chart.draw_series(LineSeries::new(eval.clone(), RED.stroke_width(2)))?;
        if labels {
            eval_line
                .label("eval")
                .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
        }
        chart.draw_series(eval.iter().map(|&p| Circle::new(p, 4, RED.filled())))?;
        if labels {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_round_trip_and_plot() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.gguf");
        assert_eq!(sibling(&out, "loss.png"), dir.path().join("m.loss.png"));
        let path = sibling(&out, "metrics.jsonl");
        let mut log = MetricsLog::open(&path, false).unwrap();
        for step in 1..=5 {
            log.push(Metric::Train {
                step,
                epoch: 0,
                loss: 3.0 / step as f64,
                lr: 1e-3,
                grad_norm: 1.0,
                tokens: 100,
                tok_per_s: 10.0,
                elapsed_s: step as f64,
            })
            .unwrap();
        }
        log.push(Metric::Eval {
            step: 5,
            epoch: 1,
            eval_loss: 1.0,
            fact_accuracy: Some(0.5),
            questions_all_facts: Some(1),
            best: true,
        })
        .unwrap();
        drop(log);
        let log = MetricsLog::open(&path, true).unwrap();
        assert_eq!(log.rows.len(), 6);
        let png = sibling(&out, "loss.png");
        plot_losses(&log.rows, &png).unwrap();
        assert!(std::fs::metadata(&png).unwrap().len() > 1000);
        assert!(peak_rss_bytes().is_none_or(|b| b > 0));
    }
}
