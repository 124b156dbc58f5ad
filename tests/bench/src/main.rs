//! `dp-bench`: dp's benchmarks and the generators they run on.
//!
//! ```text
//! cargo build --release -p dp-cli -p dp-bench && target/release/dp-bench all
//! dp-bench project --models 1000 --out /tmp/p1000     # a synthetic project
//! dp-bench events --days 30 --rows 1000000 --out DIR  # hive-partitioned Parquet events
//! dp-bench daily-summary --events DIR --out DIR       # the same SQL in plain DataFusion
//! ```

mod events;
mod measure;
mod project;
mod raw;
// The benchmark starts a Ballista cluster as the tests do (it has no use for their S3 server).
#[path = "../../services/ballista.rs"]
mod cluster;
#[path = "../../services/mod.rs"]
#[allow(dead_code)]
mod services;
mod suite;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// The same allocator as dp's, so that the comparison with plain DataFusion is like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "dp-bench",
    about = "dp's benchmarks and the generators they run on"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every benchmark and print the figures as Markdown tables.
    All(suite::SuiteOptions),
    /// Write a synthetic project of N models in layers, with data tests.
    Project(project::ProjectOptions),
    /// Write deterministic hive-partitioned Parquet events (example_project's by default).
    Events(events::EventOptions),
    /// Run daily_summary in plain DataFusion, without dp.
    DailySummary(raw::RawOptions),
}

fn main() -> ExitCode {
    let outcome: Result<(), Box<dyn std::error::Error>> = match Cli::parse().command {
        Command::All(options) => suite::run(&options),
        Command::Project(options) => std::path::absolute(&options.data)
            .and_then(|data| {
                project::generate(
                    &options.out,
                    &data,
                    options.models as usize,
                    options.seed,
                    options.flavor,
                    options.dbt_utils.as_deref(),
                )
            })
            .map_err(Into::into),
        Command::Events(options) => events::generate(&options),
        Command::DailySummary(options) => tokio::runtime::Runtime::new()
            .map_err(Into::into)
            .and_then(|runtime| Ok(runtime.block_on(raw::daily_summary(&options))?)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dp-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
