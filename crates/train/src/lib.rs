//! Supervised fine-tuning for kefu: `kefu train`.
//!
//! Takes a LLaMA-architecture GGUF (any quantization, dequantized to f32), kefu-data's
//! `train.jsonl` / `test.jsonl`, and trains with candle on CPU (or CUDA with the `cuda`
//! feature): full fine-tuning or LoRA on the attention and MLP projections, loss on answer
//! tokens only, gradient accumulation, warmup + cosine, clipping, per-epoch eval loss and fact
//! accuracy, best-checkpoint selection and resumable checkpoints. The result is written back
//! as a GGUF (F16 or Q8_0) with the base model's metadata, ready for `kefu generate` / `kefu up`.
//!
//! Modules, one job each: [`gguf`] (load, architecture check, export), [`tokenizer`],
//! [`model`] (the forward pass), [`lora`], [`data`] (rendering, masking, batches), [`optim`]
//! (accumulation, clipping, schedule, AdamW), [`checkpoint`], [`facts`] (fact accuracy through
//! kefu-engine), [`report`] (metrics, plot, memory) and [`trainer`] (the loop).
//!
//! Not here: argument parsing for the binary beyond [`TrainArgs`], quantization to k-quants
//! (llama.cpp's quantizer does that from the exported file).

pub mod checkpoint;
pub mod data;
pub mod facts;
pub mod gguf;
pub mod lora;
pub mod model;
pub mod optim;
pub mod report;
pub mod tokenizer;
pub mod trainer;

use std::path::PathBuf;

pub use gguf::ExportType;
pub use trainer::{Summary, train};

/// Compute device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    /// Needs a build with the `cuda` feature.
    Cuda,
}

/// Arguments of `kefu train`.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Base model: a LLaMA-architecture GGUF file (any quantization).
    #[arg(long, value_name = "GGUF")]
    pub model: PathBuf,

    /// Training examples: JSONL with id, instruction, input, output (`kefu data prepare`).
    #[arg(long, value_name = "JSONL")]
    pub data: PathBuf,

    /// Held-out examples for eval loss and fact accuracy each epoch.
    #[arg(long, value_name = "JSONL")]
    pub eval: Option<PathBuf>,

    /// Output GGUF; NAME.metrics.jsonl, NAME.loss.png and NAME.checkpoints/ go beside it.
    #[arg(long, value_name = "GGUF")]
    pub out: PathBuf,

    #[arg(long, default_value_t = 3)]
    pub epochs: usize,

    /// Peak learning rate [default: 1e-3 with LoRA, 5e-5 for a full fine-tune].
    #[arg(long)]
    pub lr: Option<f64>,

    /// Examples per micro-batch. On CPU one example at a time trains as fast as four (36
    /// answer tok/s either way, measured on the demo) with half the memory or less (3.7 GiB
    /// vs 7.2 GiB peak RSS at 320 tokens); raise it on a GPU.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,

    /// Micro-batches per optimizer step (effective batch = batch-size × grad-accum).
    #[arg(long, default_value_t = 4)]
    pub grad_accum: usize,

    /// Tokens per example; longer ones are truncated and counted [default: the
    /// recommendation in report.json beside --data, else 512].
    #[arg(long)]
    pub max_seq_length: Option<usize>,

    /// LoRA rank; 0 trains every weight (full fine-tune).
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,

    /// LoRA alpha (scale = alpha / rank) [default: 2 × rank].
    #[arg(long)]
    pub lora_alpha: Option<f64>,

    /// Share of optimizer steps spent warming the learning rate up.
    #[arg(long, default_value_t = 0.1)]
    pub warmup_ratio: f64,

    /// The cosine schedule ends at this share of the peak learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub min_lr_ratio: f64,

    /// Clip the global gradient norm to this (0 = no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,

    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,

    /// Seed of shuffling and LoRA initialisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// CPU threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,

    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,

    /// Tensor encoding of OUT (norms stay F32).
    #[arg(long, value_enum, default_value_t = ExportType::Q8_0)]
    pub export_type: ExportType,

    /// Continue from a checkpoint directory (NAME.checkpoints of an earlier run).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,

    /// Also save a checkpoint every N optimizer steps (one is always saved per epoch).
    #[arg(long, value_name = "N")]
    pub save_every: Option<usize>,

    /// Stop after this many optimizer steps in total (short runs, smoke tests).
    #[arg(long, value_name = "N")]
    pub max_steps: Option<usize>,

    /// Measure fact accuracy each epoch when the eval set has at most this many examples
    /// (0 = never): greedy answers from the exported model, checked for the reference's
    /// numbers and terms.
    #[arg(long, default_value_t = 64)]
    pub fact_eval_max: usize,

    /// Most tokens of a fact-accuracy answer.
    #[arg(long, default_value_t = 192)]
    pub fact_max_tokens: u32,

    /// No progress bars (log lines only).
    #[arg(long)]
    pub no_progress: bool,
}

impl TrainArgs {
    /// Arguments with every default, for library callers and tests.
    pub fn new(
        model: impl Into<PathBuf>,
        data: impl Into<PathBuf>,
        out: impl Into<PathBuf>,
    ) -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: TrainArgs,
        }
        let mut args = <Wrapper as clap::Parser>::parse_from([
            "train", "--model", "-", "--data", "-", "--out", "-",
        ])
        .args;
        args.model = model.into();
        args.data = data.into();
        args.out = out.into();
        args
    }
}
