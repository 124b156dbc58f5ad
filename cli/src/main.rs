//! `dp`: parse the command line, run the command, map the outcome to an exit code.

mod args;
mod commands;
mod logging;
mod masked;
mod printer;

use std::process::ExitCode;

use clap::Parser;

// DataFusion plans and runs queries with many small allocations; mimalloc serves them faster
// than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    logging::init(&cli.global);
    match commands::run(cli) {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{}", masked::render(&*report));
            commands::cannot_run()
        }
    }
}
