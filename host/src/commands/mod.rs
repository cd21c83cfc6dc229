//! Argument parsing and dispatch for every `kefu` subcommand.

mod bench;
mod data;
mod eval;
mod feedback;
mod generate;
mod keys;
mod models;
mod stats;
mod train;
mod up;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kefu",
    version,
    about = "Self-hosted customer-support answering service"
)]
pub struct Cli {
    /// Log output: human-readable text or one JSON object per line.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "KEFU_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve an application (spin.toml) with its models.
    Up(Box<up::UpArgs>),
    /// Fetch and list models.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Generate one answer with a model's chat template, streamed to stdout.
    Generate(generate::GenerateArgs),
    /// Prepare FAQ data.
    #[command(subcommand)]
    Data(Box<data::DataCommand>),
    /// Evaluate models on a held-out set (quality, speed, size, each against the first), or a
    /// running server's guardrails on an evaluation set (`--url URL --set FILE`).
    Eval(Box<eval::EvalCommand>),
    /// Measure throughput and latency: `kefu bench --url URL` loads an OpenAI-compatible
    /// server; `kefu bench engine` measures the engine in-process.
    Bench(bench::BenchArgs),
    /// Fine-tune a model on a prepared dataset (supervised, LoRA or full) and export a GGUF.
    Train(Box<train::TrainCommand>),
    /// Clients' feedback on answers: export the thumbs-down cases for review and training.
    #[command(subcommand)]
    Feedback(feedback::FeedbackCommand),
    /// Request-length statistics from live traffic and a `max_seq_length` recommendation.
    Stats(stats::StatsArgs),
    /// API keys: `kefu keys new` prints a fresh key and its `api_keys` digest.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

/// Where model files live (catalog models are stored here by `kefu models pull`).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelsDir {
    #[arg(long = "models-dir", env = "KEFU_MODELS_DIR", default_value = "models")]
    pub dir: PathBuf,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Up(args) => up::run(*args),
        Command::Models(cmd) => models::run(cmd),
        Command::Generate(args) => generate::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Data(cmd) => data::run(*cmd),
        Command::Eval(cmd) => eval::run(*cmd),
        Command::Train(cmd) => train::run(*cmd),
        Command::Feedback(cmd) => feedback::run(cmd),
        Command::Stats(args) => stats::run(args),
        Command::Keys(cmd) => keys::run(cmd),
    }
}

pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KEFU_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
