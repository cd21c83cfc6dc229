//! The `kefu` command: a thin shell over the library crates. Each subcommand lives in
//! `commands/` and only parses arguments, calls a library, and prints.

mod commands;
mod models;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // OpenMP threads spin while idle; on a machine whose cores are shared with the HTTP side
    // (or anything else) that collapses decode speed (NOTES.md). The user's choice wins.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("OMP_WAIT_POLICY", "PASSIVE") };
    }
    let cli = commands::Cli::parse();
    commands::init_logging(cli.log_format);
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
