//! `kefu train`: supervised fine-tuning (`kefu-train`); `--model` may also be a catalog name.

use anyhow::Result;
use kefu_train::TrainArgs;

use super::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct TrainCommand {
    #[command(flatten)]
    args: TrainArgs,
    #[command(flatten)]
    models_dir: ModelsDir,
}

pub fn run(cmd: TrainCommand) -> Result<()> {
    let mut args = cmd.args;
    args.model = crate::models::resolve(&args.model.to_string_lossy(), &cmd.models_dir.dir)?;
    let summary = kefu_train::train(&args)?;
    println!("{summary}");
    Ok(())
}
