//! `kefu eval`: the evaluation of `kefu-eval` over models named by path or catalog name.

use anyhow::Result;
use kefu_eval::EvalArgs;

use super::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct EvalCommand {
    #[command(flatten)]
    args: EvalArgs,
    #[command(flatten)]
    models_dir: ModelsDir,
}

pub fn run(cmd: EvalCommand) -> Result<()> {
    let mut args = cmd.args;
    args.models = args
        .models
        .iter()
        .map(|m| crate::models::resolve(&m.to_string_lossy(), &cmd.models_dir.dir))
        .collect::<Result<_>>()?;
    let report = kefu_eval::evaluate(&args)?;
    print!("{}", kefu_eval::markdown::summary(&report));
    println!("report: {}", args.out.join("report.md").display());
    Ok(())
}
