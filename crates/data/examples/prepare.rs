//! `kefu data prepare` without the host, measuring tokens with the approximate counter:
//! `cargo run -p kefu-data --example prepare -- --input data/faq.json --out data/prepared`.

use clap::Parser;
use kefu_data::{ApproxTokenCounter, PrepareArgs, prepare};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: PrepareArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = prepare(&cli.args, &ApproxTokenCounter)?;
    println!("{}", report.summary());
    Ok(())
}
