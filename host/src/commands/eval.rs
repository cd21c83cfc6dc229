//! `kefu eval`: the evaluation of `kefu-eval`, over models named by path or catalog name
//! (`--model`), or over a running server's guardrails (`--url` with `--set`).

use anyhow::{Context, Result};
use kefu_eval::{EvalArgs, ServedEvalArgs};

use super::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct EvalCommand {
    #[command(flatten)]
    args: EvalArgs,
    #[command(flatten)]
    served: ServedEvalArgs,
    #[command(flatten)]
    models_dir: ModelsDir,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    if cmd.served.url.is_some() {
        let args = &cmd.args;
        return run_served(
            &cmd.served,
            args.out.as_deref(),
            args.max_tokens,
            args.quiet,
        );
    }
    let mut args = cmd.args;
    args.models = args
        .models
        .iter()
        .map(|m| crate::models::resolve(&m.to_string_lossy(), &cmd.models_dir.dir))
        .collect::<Result<_>>()?;
    let report = kefu_eval::evaluate(&args)?;
    print!("{}", kefu_eval::markdown::summary(&report));
    if let Some(out) = &args.out {
        println!("report: {}", out.join("report.md").display());
    }
    Ok(())
}

fn run_served(
    args: &ServedEvalArgs,
    out: Option<&std::path::Path>,
    max_tokens: u32,
    quiet: bool,
) -> Result<()> {
    let report = kefu_eval::evaluate_served(args, max_tokens, quiet)?;
    print!("{}", kefu_eval::served::summary(&report));
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let path = out.join("report.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("report: {}", path.display());
    }
    Ok(())
}
