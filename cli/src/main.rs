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
    // Planning a deeply nested model recurses deep, on the runtime's threads and on the one
    // that awaits them: every one has the stack the deepest model dp accepts needs.
    let command = std::thread::Builder::new()
        .name("dp".into())
        .stack_size(dp_engine::STACK_SIZE)
        .spawn(move || commands::run(cli))
        .map_err(|e| miette::miette!("cannot start a thread: {e}"))
        .and_then(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
    match command {
        Ok(code) => code,
        Err(report) => {
            eprintln!("{}", masked::render(&*report));
            commands::cannot_run()
        }
    }
}
