//! `dp-executor`: an executor of a Ballista cluster that runs dp's queries. It is Ballista's
//! own executor, built on dp's DataFusion and given dp's plan codec and object stores
//! (`s3://` from the `AWS_*` environment: start it with the settings dp's target uses).

mod common;

use std::process::ExitCode;
use std::sync::Arc;

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use clap::Parser;

/// Start a Ballista executor for dp, registered with the scheduler at
/// `--scheduler-host:--scheduler-port`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// The host name the scheduler and clients reach this executor by.
    #[arg(long, default_value = "127.0.0.1")]
    external_host: String,
    /// The port of its Arrow Flight service (results and shuffles are fetched from it).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// The port of its gRPC service (the scheduler sends tasks to it).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    #[arg(long, default_value = "127.0.0.1")]
    scheduler_host: String,
    #[arg(long, default_value_t = 50050)]
    scheduler_port: u16,
    /// How many tasks run at once (default: the machine's cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Where shuffle files are written (default: a temporary folder).
    #[arg(long)]
    work_dir: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let defaults = ExecutorProcessConfig::default();
    let work_dir = args.work_dir.clone();
    let config = ExecutorProcessConfig {
        bind_host: args.bind_host,
        external_host: Some(args.external_host),
        port: args.port,
        grpc_port: args.grpc_port,
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        vcores: args.concurrent_tasks.unwrap_or(defaults.vcores),
        work_dir: args.work_dir,
        override_logical_codec: Some(Arc::new(dp_engine::DpCodec::default())),
        override_runtime_producer: Some(Arc::new(move |_| {
            dp_engine::cluster_runtime(work_dir.as_deref().map(std::path::Path::new))
        })),
        ..defaults
    };
    match start_executor_process(Arc::new(config)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dp-executor: {error}");
            ExitCode::FAILURE
        }
    }
}
