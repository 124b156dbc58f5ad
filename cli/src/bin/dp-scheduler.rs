//! `dp-scheduler`: the scheduler of a Ballista cluster that runs dp's queries. It is Ballista's
//! own scheduler, built on dp's DataFusion and given dp's plan codec (a Delta table travels as
//! its files at the version read) and dp's object stores (`s3://` from the `AWS_*`
//! environment), with which it lists the sources' files as it plans.

mod common;

use std::process::ExitCode;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;
use datafusion::execution::SessionStateBuilder;

/// Start a Ballista scheduler for dp (`engine: ballista`, `scheduler: df://HOST:PORT`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 50050)]
    port: u16,
    /// The host name executors and clients reach this scheduler by.
    #[arg(long, default_value = "127.0.0.1")]
    external_host: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    common::init_logging();
    let args = Args::parse();
    let mut config = SchedulerConfig::default()
        .with_hostname(args.external_host)
        .with_port(args.port);
    config.bind_host = args.bind_host.clone();
    config.override_logical_codec = Some(Arc::new(dp_engine::DpCodec::default()));
    config.override_session_builder = Some(Arc::new(|config| {
        let state = ballista_core::utils::default_session_builder(config)?;
        Ok(SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(dp_engine::cluster_runtime(None)?)
            .build())
    }));
    let started = async {
        let address = format!("{}:{}", args.bind_host, args.port)
            .parse()
            .map_err(|e: std::net::AddrParseError| e.to_string())?;
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .map_err(|e| e.to_string())?;
        start_server(cluster, address, Arc::new(config))
            .await
            .map_err(|e| e.to_string())
    };
    match started.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dp-scheduler: {error}");
            ExitCode::FAILURE
        }
    }
}
