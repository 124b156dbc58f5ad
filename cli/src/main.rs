//! `dp`: parse the command line, run the command, map the outcome to an exit code.

mod args;
mod commands;
mod logging;
mod printer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    logging::init(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{report:?}");
            commands::cannot_run()
        }
    }
}
