//! `kefu bench`: load generation against any OpenAI-compatible server (`--url`), and
//! `kefu bench engine` for the engine alone. Both print figures; nothing is asserted.

mod engine;
mod http;
mod prompts;
mod stats;

use anyhow::{Context, Result};
use clap::Subcommand;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    http: http::HttpBenchArgs,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Concurrent generations inside one process, against sequential generation.
    Engine(engine::EngineBenchArgs),
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        Some(BenchCommand::Engine(args)) => engine::run(args),
        None => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?
            .block_on(http::run(args.http)),
    }
}
