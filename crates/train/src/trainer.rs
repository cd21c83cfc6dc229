//! The training loop: loads everything, runs epochs of accumulated optimizer steps with
//! progress bars, evaluates each epoch, keeps the best weights, checkpoints, and exports.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::checkpoint::{self, Best, RunIdentity, State};
use crate::data::{self, Dataset};
use crate::facts::{self, FactScore};
use crate::gguf::{ExportType, GgufModel};
use crate::lora::LoraSpec;
use crate::model::Llama;
use crate::optim::{AdamW, GradAccum, Schedule, clip_grad_norm};
use crate::report::{self, Metric, MetricsLog};
use crate::tokenizer::GgufTokenizer;
use crate::{DeviceKind, TrainArgs};

/// What a finished run reports.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub out: PathBuf,
    pub export_type: ExportType,
    pub mode: String,
    pub trainable_params: usize,
    pub train_examples: usize,
    pub eval_examples: usize,
    pub truncated: usize,
    pub skipped: usize,
    pub max_seq_length: usize,
    pub epochs_run: usize,
    pub steps: usize,
    pub tokens_trained: usize,
    pub train_seconds: f64,
    pub total_seconds: f64,
    /// Answer tokens per second of training (forward + backward + step).
    pub tok_per_s: f64,
    pub peak_rss_bytes: Option<u64>,
    pub first_train_loss: Option<f64>,
    pub last_train_loss: Option<f64>,
    pub base_eval_loss: Option<f64>,
    pub best: Option<Best>,
    pub base_facts: Option<(usize, usize)>,
    pub final_facts: Option<(usize, usize)>,
    pub metrics: PathBuf,
    pub plot: Option<PathBuf>,
    pub checkpoints: PathBuf,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        writeln!(
            f,
            "trained {} ({} params, {} examples, max_seq_length {}, {} truncated, {} skipped)",
            self.mode,
            self.trainable_params,
            self.train_examples,
            self.max_seq_length,
            self.truncated,
            self.skipped
        )?;
        writeln!(
            f,
            "  {} epoch(s), {} steps, {} answer tokens in {:.0} s ({:.1} tok/s); total {:.0} s; peak RSS {}",
            self.epochs_run,
            self.steps,
            self.tokens_trained,
            self.train_seconds,
            self.tok_per_s,
            self.total_seconds,
            self.peak_rss_bytes.map_or("n/a".into(), |b| format!(
                "{:.2} GiB",
                b as f64 / (1u64 << 30) as f64
            ))
        )?;
        writeln!(
            f,
            "  train loss {} -> {}",
            opt(self.first_train_loss),
            opt(self.last_train_loss)
        )?;
        if self.eval_examples > 0 {
            writeln!(
                f,
                "  eval loss: base {}, best {} (epoch {})",
                opt(self.base_eval_loss),
                opt(self.best.map(|b| b.eval_loss)),
                self.best.map_or("-".into(), |b| b.epoch.to_string())
            )?;
        }
        if let (Some(b), Some(t)) = (self.base_facts, self.final_facts) {
            writeln!(
                f,
                "  fact accuracy on {} eval questions: base {}/{} facts, fine-tuned {}/{} facts",
                self.eval_examples, b.0, b.1, t.0, t.1
            )?;
        }
        write!(
            f,
            "  wrote {} ({:?}), {}, {}",
            self.out.display(),
            self.export_type,
            self.metrics.display(),
            self.plot
                .as_ref()
                .map_or("no plot".into(), |p| p.display().to_string())
        )
    }
}

fn default_max_len(data: &Path) -> Option<usize> {
    let report = data.parent()?.join("report.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).ok()?).ok()?;
    v.pointer("/tokens/recommended_max_seq_length")?
        .as_u64()
        .map(|n| n as usize)
}

fn device(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda => Device::new_cuda(0).context(
            "no CUDA device (kefu must be built with `--features cuda` and a GPU must be present)",
        ),
    }
}

/// Eval loss: mean negative log-likelihood per answer token.
pub fn eval_loss(model: &Llama, set: &Dataset, batch: usize, pad: u32) -> Result<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for b in data::plan_batches(&set.encoded, batch, None) {
        let rows: Vec<_> = b.iter().map(|&i| &set.encoded[i]).collect();
        let batch = data::make_batch(&rows, pad, model.device())?;
        let nll = model.nll_sum(&batch.ids, &batch.positions, &batch.targets)?;
        sum += nll.detach().to_scalar::<f32>()? as f64;
        n += batch.n_loss;
    }
    Ok(sum / n.max(1) as f64)
}

struct Bars {
    bar: ProgressBar,
}

impl Bars {
    fn new(total: u64, hidden: bool) -> Self {
        let bar = ProgressBar::new(total);
        if hidden {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps {msg} | {elapsed_precise} ETA {eta_precise}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(500));
        Bars { bar }
    }

    fn log(&self, line: String) {
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }
}

/// Runs `kefu train`.
pub fn train(args: &TrainArgs) -> Result<Summary> {
    let started = Instant::now();
    anyhow::ensure!(args.epochs >= 1, "--epochs must be at least 1");
    anyhow::ensure!(args.batch_size >= 1, "--batch-size must be at least 1");
    anyhow::ensure!(args.grad_accum >= 1, "--grad-accum must be at least 1");
    anyhow::ensure!(
        (0.0..1.0).contains(&args.warmup_ratio),
        "--warmup-ratio must be in [0, 1)"
    );
    if let Some(t) = args.threads {
        anyhow::ensure!(t >= 1, "--threads must be at least 1");
        // candle's CPU kernels run on rayon's global pool; it can be sized only once per process.
        if rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .is_err()
        {
            eprintln!("warning: --threads {t} ignored: the thread pool was already started");
        }
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let dev = device(args.device)?;

    // Data first: a malformed file is refused before the model is read.
    let train_examples = data::read_examples(&args.data)?;
    let eval_examples = match &args.eval {
        Some(p) => Some(data::read_examples(p)?),
        None => None,
    };
    let base = GgufModel::load(&args.model, &dev)?;
    let tok = GgufTokenizer::from_metadata(&base.metadata)?;
    let max_len = args
        .max_seq_length
        .or_else(|| default_max_len(&args.data))
        .unwrap_or(512)
        .min(base.config.n_ctx_train);
    anyhow::ensure!(max_len >= 8, "--max-seq-length must be at least 8");
    let train_set = data::encode(train_examples, &tok, max_len)?;
    if train_set.encoded.is_empty() {
        bail!(
            "{}: every example's prompt fills --max-seq-length {max_len}; nothing to train",
            args.data.display()
        );
    }
    let eval_set = match eval_examples {
        Some(ex) => Some(data::encode(ex, &tok, max_len)?),
        None => None,
    };
    let pad = tok.eot;

    let lora = (args.lora_rank > 0).then(|| LoraSpec {
        rank: args.lora_rank,
        alpha: args.lora_alpha.unwrap_or(2.0 * args.lora_rank as f64),
    });
    let model = Llama::new(&base, lora, args.seed)?;
    let mode = match lora {
        Some(l) => format!("LoRA rank {} alpha {}", l.rank, l.alpha),
        None => "full fine-tune".to_string(),
    };
    let lr = args.lr.unwrap_or(if lora.is_some() { 1e-3 } else { 5e-5 });

    let micro_per_epoch = train_set.encoded.len().div_ceil(args.batch_size);
    let steps_per_epoch = micro_per_epoch.div_ceil(args.grad_accum);
    let mut total_steps = steps_per_epoch * args.epochs;
    if let Some(m) = args.max_steps {
        total_steps = total_steps.min(m.max(1));
    }
    let schedule = Schedule {
        peak: lr,
        warmup: ((total_steps as f64 * args.warmup_ratio).ceil() as usize).min(total_steps),
        total: total_steps,
        min_ratio: args.min_lr_ratio,
    };
    let mut opt = AdamW::new(&model.trainable, args.weight_decay)?;

    let ckpt_dir = report::sibling(&args.out, "checkpoints");
    let identity = RunIdentity {
        model: args.model.clone(),
        lora_rank: args.lora_rank,
        lora_alpha: lora.map_or(0.0, |l| l.alpha),
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        max_seq_length: max_len,
        seed: args.seed,
        train_examples: train_set.encoded.len(),
    };
    let mut state = State {
        identity: identity.clone(),
        epoch: 0,
        step_in_epoch: 0,
        global_step: 0,
        best: None,
        last_eval_loss: None,
        tokens_seen: 0,
    };
    let mut best_tensors: Option<HashMap<String, Tensor>> = None;
    if let Some(dir) = &args.resume {
        let (saved, tensors) = checkpoint::load(dir, &identity)?;
        model.restore(&tensors)?;
        opt.load_state(&model.trainable, &tensors, saved.global_step)?;
        best_tensors = checkpoint::load_best(dir)?;
        state = saved;
    }
    let metrics_path = report::sibling(&args.out, "metrics.jsonl");
    let mut metrics = MetricsLog::open(&metrics_path, args.resume.is_some())?;

    let bars = Bars::new(total_steps as u64, args.no_progress);
    bars.bar.set_position(state.global_step as u64);
    bars.log(format!(
        "{mode}: {} trainable params; {} train / {} eval examples (max_seq_length {max_len}, \
         {} truncated, {} skipped); {} steps ({} per epoch, effective batch {}), lr {lr:e}",
        model.trainable_params(),
        train_set.encoded.len(),
        eval_set.as_ref().map_or(0, |e| e.encoded.len()),
        train_set.truncated + eval_set.as_ref().map_or(0, |e| e.truncated),
        train_set.skipped + eval_set.as_ref().map_or(0, |e| e.skipped),
        total_steps,
        steps_per_epoch,
        args.batch_size * args.grad_accum
    ));

    let fact_set = eval_set
        .as_ref()
        .filter(|e| args.fact_eval_max > 0 && e.examples.len() <= args.fact_eval_max);
    let eval_gguf = ckpt_dir.join("eval.gguf");
    let measure_facts = |gguf: &Path| -> Result<FactScore> {
        let set = fact_set.expect("fact set checked by the caller");
        let answers = facts::generate_answers(gguf, &set.examples, args.fact_max_tokens, threads)?;
        Ok(facts::score(&set.examples, &answers))
    };
    let mut base_eval_loss = None;
    let mut base_facts = None;
    let mut final_facts = None;
    if args.resume.is_none()
        && let Some(set) = &eval_set
    {
        bars.bar.set_message("evaluating the base model");
        let l = eval_loss(&model, set, args.batch_size, pad)?;
        base_eval_loss = Some(l);
        let fs = match fact_set {
            Some(_) => Some(measure_facts(&args.model)?),
            None => None,
        };
        if let Some(fs) = &fs {
            base_facts = Some((fs.facts_found, fs.facts_total));
            write_answers(&report::sibling(&args.out, "answers-base.json"), fs)?;
        }
        bars.log(format!(
            "epoch 0 (base model): eval loss {l:.4}{}",
            fs.as_ref().map_or(String::new(), fact_note)
        ));
        metrics.push(Metric::Eval {
            step: 0,
            epoch: 0,
            eval_loss: l,
            fact_accuracy: fs.as_ref().map(FactScore::accuracy),
            questions_all_facts: fs.as_ref().map(|f| f.questions_all_facts),
            best: false,
        })?;
    } else if let Some(Metric::Eval { eval_loss, .. }) = metrics
        .rows
        .iter()
        .find(|m| matches!(m, Metric::Eval { epoch: 0, .. }))
    {
        base_eval_loss = Some(*eval_loss);
    }

    let train_start = Instant::now();
    let tokens_at_start = state.tokens_seen;
    let mut first_loss = None;
    let mut last_loss = None;
    let mut epochs_run = 0;
    let save = |state: &State, opt: &AdamW| -> Result<()> {
        let mut tensors = model.snapshot()?;
        tensors.extend(opt.state(&model.trainable));
        checkpoint::save(&ckpt_dir, state, &tensors)
    };
    while state.epoch < args.epochs && state.global_step < total_steps {
        let epoch = state.epoch;
        bars.bar
            .set_prefix(format!("{}/{}", epoch + 1, args.epochs));
        let batches = data::plan_batches(
            &train_set.encoded,
            args.batch_size,
            Some(args.seed.wrapping_add(epoch as u64)),
        );
        for (si, group) in batches.chunks(args.grad_accum).enumerate() {
            if si < state.step_in_epoch {
                continue;
            }
            if state.global_step >= total_steps {
                break;
            }
            let step_start = Instant::now();
            let built: Vec<data::Batch> = group
                .iter()
                .map(|b| {
                    let rows: Vec<_> = b.iter().map(|&i| &train_set.encoded[i]).collect();
                    data::make_batch(&rows, pad, &dev)
                })
                .collect::<Result<_>>()?;
            let n_loss: usize = built.iter().map(|b| b.n_loss).sum();
            let mut acc = GradAccum::new(model.trainable.len());
            let mut loss_sum = 0f64;
            for b in &built {
                let nll = model.nll_sum(&b.ids, &b.positions, &b.targets)?;
                loss_sum += nll.detach().to_scalar::<f32>()? as f64;
                let grads = (nll / n_loss as f64)?.backward()?;
                acc.add(&model.trainable, &grads)?;
            }
            let mut grads = acc.take(&model.trainable)?;
            let grad_norm = clip_grad_norm(&mut grads, args.max_grad_norm)?;
            let step_lr = schedule.lr(state.global_step);
            opt.step(&model.trainable, &grads, step_lr)?;
            state.global_step += 1;
            state.step_in_epoch = si + 1;
            state.tokens_seen += n_loss;
            let loss = loss_sum / n_loss.max(1) as f64;
            if !loss.is_finite() {
                bail!(
                    "the loss became {loss} at step {}; try a lower --lr",
                    state.global_step
                );
            }
            first_loss.get_or_insert(loss);
            last_loss = Some(loss);
            let elapsed = train_start.elapsed().as_secs_f64();
            let tok_per_s = n_loss as f64 / step_start.elapsed().as_secs_f64();
            metrics.push(Metric::Train {
                step: state.global_step,
                epoch,
                loss,
                lr: step_lr,
                grad_norm,
                tokens: n_loss,
                tok_per_s,
                elapsed_s: elapsed,
            })?;
            bars.bar.set_message(format!(
                "loss {loss:.4} lr {step_lr:.2e} {tok_per_s:.0} tok/s"
            ));
            bars.bar.set_position(state.global_step as u64);
            if args.no_progress {
                bars.log(format!(
                    "step {}/{total_steps}: loss {loss:.4} lr {step_lr:.2e} grad norm {grad_norm:.2} {tok_per_s:.0} tok/s",
                    state.global_step
                ));
            }
            if args
                .save_every
                .is_some_and(|n| n > 0 && state.global_step.is_multiple_of(n))
            {
                save(&state, &opt)?;
            }
        }
        let finished_epoch = state.step_in_epoch >= steps_per_epoch;
        epochs_run += 1;
        if let Some(set) = &eval_set {
            bars.bar.set_message("evaluating");
            let l = eval_loss(&model, set, args.batch_size, pad)?;
            let is_best = state.best.is_none_or(|b| l < b.eval_loss);
            let fs = match fact_set {
                Some(_) => {
                    let tensors = model.export_tensors()?;
                    crate::gguf::export(
                        &eval_gguf,
                        &base.metadata,
                        &base.tensor_order,
                        &tensors,
                        args.export_type,
                    )?;
                    let fs = measure_facts(&eval_gguf)?;
                    let _ = std::fs::remove_file(&eval_gguf);
                    Some(fs)
                }
                None => None,
            };
            let mut note = String::new();
            if let Some(prev) = state.last_eval_loss {
                if l > prev {
                    note.push_str(" (eval loss rose: overfitting?)");
                } else if (l - prev).abs() < 1e-4 {
                    note.push_str(" (tie with the previous epoch)");
                }
            }
            if is_best {
                note.push_str(" best so far");
                state.best = Some(Best {
                    epoch: epoch + 1,
                    step: state.global_step,
                    eval_loss: l,
                });
                let snap = model.snapshot()?;
                checkpoint::save_best(&ckpt_dir, &snap)?;
                best_tensors = Some(snap);
                if let Some(fs) = &fs {
                    final_facts = Some((fs.facts_found, fs.facts_total));
                    write_answers(&report::sibling(&args.out, "answers.json"), fs)?;
                }
            }
            bars.log(format!(
                "epoch {}: train loss {} eval loss {l:.4}{}{note}",
                epoch + 1,
                last_loss.map_or("-".into(), |l| format!("{l:.4}")),
                fs.as_ref().map_or(String::new(), fact_note)
            ));
            metrics.push(Metric::Eval {
                step: state.global_step,
                epoch: epoch + 1,
                eval_loss: l,
                fact_accuracy: fs.as_ref().map(FactScore::accuracy),
                questions_all_facts: fs.as_ref().map(|f| f.questions_all_facts),
                best: is_best,
            })?;
            state.last_eval_loss = Some(l);
        }
        if finished_epoch {
            state.epoch += 1;
            state.step_in_epoch = 0;
        }
        save(&state, &opt)?;
        if !finished_epoch {
            break;
        }
    }
    let train_seconds = train_start.elapsed().as_secs_f64();
    bars.bar.finish_and_clear();

    if let (Some(best), Some(tensors)) = (state.best, &best_tensors) {
        if best.step != state.global_step {
            eprintln!(
                "restoring the best weights (epoch {}, eval loss {:.4})",
                best.epoch, best.eval_loss
            );
        }
        model.restore(tensors)?;
    }
    crate::gguf::export(
        &args.out,
        &base.metadata,
        &base.tensor_order,
        &model.export_tensors()?,
        args.export_type,
    )?;
    let plot_path = report::sibling(&args.out, "loss.png");
    let plot = match report::plot_losses(&metrics.rows, &plot_path) {
        Ok(()) => Some(plot_path),
        Err(e) => {
            eprintln!("warning: no loss plot: {e:#}");
            None
        }
    };
    let tokens_trained = state.tokens_seen - tokens_at_start;
    Ok(Summary {
        out: args.out.clone(),
        export_type: args.export_type,
        mode,
        trainable_params: model.trainable_params(),
        train_examples: train_set.encoded.len(),
        eval_examples: eval_set.as_ref().map_or(0, |e| e.encoded.len()),
        truncated: train_set.truncated,
        skipped: train_set.skipped,
        max_seq_length: max_len,
        epochs_run,
        steps: state.global_step,
        tokens_trained,
        train_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        tok_per_s: tokens_trained as f64 / train_seconds.max(1e-9),
        peak_rss_bytes: report::peak_rss_bytes(),
        first_train_loss: first_loss,
        last_train_loss: last_loss,
        base_eval_loss,
        best: state.best,
        base_facts,
        final_facts,
        metrics: metrics_path,
        plot,
        checkpoints: ckpt_dir,
    })
}

fn fact_note(fs: &FactScore) -> String {
    format!(
        ", facts {}/{} ({} of {} questions complete)",
        fs.facts_found, fs.facts_total, fs.questions_all_facts, fs.questions
    )
}

fn write_answers(path: &Path, fs: &FactScore) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(fs)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}
