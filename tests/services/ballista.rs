//! A Ballista cluster on 127.0.0.1 for the tests and the benchmark: one `dp-scheduler` and two
//! `dp-executor`s, separate processes on free ports, each polled until it listens, and killed
//! by process id when the cluster is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::services::{free_port, wait_for_port};

/// A running cluster.
pub struct Cluster {
    processes: Vec<Child>,
    /// The port its scheduler listens on.
    scheduler_port: u16,
    /// Each executor's log (info level: `Finished task` for each task it ran).
    pub executor_logs: Vec<PathBuf>,
}

impl Cluster {
    /// Start a scheduler and `executors` executors of `concurrent_tasks` each, from the binaries
    /// in `bin_dir`, logging into `log_dir`, with `env` set in their environment.
    pub fn start(
        bin_dir: &Path,
        log_dir: &Path,
        executors: usize,
        concurrent_tasks: usize,
        env: &[(&str, &str)],
    ) -> Self {
        let log = |name: &str| std::fs::File::create(log_dir.join(name)).unwrap();
        let spawn = |binary: &str, args: &[String], log_name: &str| -> Child {
            Command::new(bin_dir.join(binary))
                .args(args)
                .env("RUST_LOG", "info")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(log(log_name))
                .spawn()
                .unwrap_or_else(|e| panic!("{binary} starts: {e}"))
        };
        let mut cluster = Cluster {
            processes: Vec::new(),
            scheduler_port: free_port(),
            executor_logs: Vec::new(),
        };
        let port = cluster.scheduler_port.to_string();
        let mut scheduler = spawn(
            "dp-scheduler",
            &["--port".into(), port.clone()],
            "scheduler.log",
        );
        let listening = wait_for_port(cluster.scheduler_port, "dp-scheduler", &mut scheduler);
        cluster.processes.push(scheduler);
        assert!(listening, "dp-scheduler did not start");
        for n in 0..executors {
            let (flight, grpc) = (free_port(), free_port());
            let name = format!("executor-{n}.log");
            let args = [
                "--port".to_string(),
                flight.to_string(),
                "--grpc-port".into(),
                grpc.to_string(),
                "--scheduler-port".into(),
                port.clone(),
                "--concurrent-tasks".into(),
                concurrent_tasks.to_string(),
            ];
            let mut executor = spawn("dp-executor", &args, &name);
            let listening = wait_for_port(flight, "dp-executor", &mut executor);
            cluster.processes.push(executor);
            assert!(listening, "dp-executor did not start");
            cluster.executor_logs.push(log_dir.join(name));
        }
        cluster
    }

    /// A target of `dp_project.yml` (under `targets:`) that runs on this cluster.
    pub fn target_yaml(&self, name: &str) -> String {
        format!(
            "  {name}:\n    warehouse: warehouse\n{}",
            self.engine_yaml()
        )
    }

    /// The keys of a target (under its name) that run it on this cluster.
    pub fn engine_yaml(&self) -> String {
        format!(
            "    engine: ballista\n    scheduler: df://127.0.0.1:{}\n",
            self.scheduler_port
        )
    }

    /// How many tasks each executor has finished so far.
    pub fn tasks_finished(&self) -> Vec<usize> {
        self.executor_logs
            .iter()
            .map(|log| {
                std::fs::read_to_string(log)
                    .unwrap_or_default()
                    .matches("Finished task")
                    .count()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}
