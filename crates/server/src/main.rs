//! `sivo`: the SIVO contact center in one binary. `serve` runs everything; the other
//! subcommands administer tenants, users and keys against the same database.

mod cli;
mod config;
mod database;
mod serve;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            cli::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    // The runtime's main thread lives until exit, so children bound to it (the embedded
    // PostgreSQL's parent-death signal) live exactly as long as sivo.
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            cli::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
