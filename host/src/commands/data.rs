//! `kefu data prepare`: the data-preparation pipeline of `kefu-data`, counting tokens with the
//! serving model's own (llama.cpp) tokenizer.

use anyhow::Result;
use clap::Subcommand;
use kefu_data::{ApproxTokenCounter, PrepareArgs, TokenCounter};
use kefu_engine::Tokenizer;

use super::ModelsDir;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Turn a FAQ export (JSON, JSONL, CSV, SQLite) into a knowledge base and a dataset.
    Prepare(PrepareCommand),
}

#[derive(Debug, clap::Args)]
pub struct PrepareCommand {
    #[command(flatten)]
    args: PrepareArgs,
    /// Model whose tokenizer measures example lengths (a path or catalog name).
    #[arg(long, default_value = "smollm2-135m-instruct")]
    tokenizer: String,
    #[command(flatten)]
    models_dir: ModelsDir,
}

/// llama.cpp's tokenizer of a GGUF model: the counts the engine will see.
struct ModelTokens {
    tokenizer: Tokenizer,
    name: String,
}

impl TokenCounter for ModelTokens {
    fn count(&self, text: &str) -> usize {
        self.tokenizer.count(text)
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}

pub fn run(cmd: DataCommand) -> Result<()> {
    let DataCommand::Prepare(cmd) = cmd;
    let report = match crate::models::resolve(&cmd.tokenizer, &cmd.models_dir.dir) {
        Ok(path) => {
            let counter = ModelTokens {
                tokenizer: Tokenizer::load(&path)?,
                name: format!("llama.cpp:{}", cmd.tokenizer),
            };
            kefu_data::prepare(&cmd.args, &counter)?
        }
        Err(e) => {
            eprintln!("warning: {e:#}; token lengths are approximate");
            kefu_data::prepare(&cmd.args, &ApproxTokenCounter)?
        }
    };
    println!("{}", report.summary().trim_end());
    Ok(())
}
