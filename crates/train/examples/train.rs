//! `kefu train` without the rest of the binary: the same arguments and library call, for
//! working on this crate alone (`cargo run --release -p kefu-train --example train -- ...`).

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: kefu_train::TrainArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let summary = kefu_train::train(&cli.args)?;
    println!("{summary}");
    Ok(())
}
