//! The project's hooks: commands run when a run ends (`on_run_end`) or fails (`on_failure`),
//! each bounded in time, its output kept in target/hooks.log. A hook never changes what the
//! run published, nor its outcome.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::project::{Project, parse_duration};

/// How long a hook may run when the project does not say.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One hook that ran: its command, and why it failed when it did.
#[derive(Debug, Clone)]
pub struct HookRun {
    /// `on_run_end` or `on_failure`.
    pub hook: &'static str,
    pub command: String,
    pub error: Option<String>,
}

/// Run the project's hooks for a run that `succeeded` or not, whose results are at
/// `run_results`.
pub fn run_hooks(
    project: &Project,
    run_results: &Path,
    run_id: &str,
    succeeded: bool,
) -> Vec<HookRun> {
    let config = &project.config;
    let commands = |hook: &'static str, list: &Option<crate::project::OneOrMany>| {
        list.clone()
            .map(|l| l.into_vec())
            .unwrap_or_default()
            .into_iter()
            .map(move |command| (hook, command))
    };
    let mut hooks: Vec<(&'static str, String)> =
        commands("on_run_end", &config.on_run_end).collect();
    if !succeeded {
        hooks.extend(commands("on_failure", &config.on_failure));
    }
    if hooks.is_empty() {
        return Vec::new();
    }
    let timeout = config
        .hook_timeout
        .as_deref()
        .and_then(parse_duration)
        .unwrap_or(DEFAULT_TIMEOUT);
    let log = project.target_dir().join("hooks.log");
    let status = if succeeded { "success" } else { "failed" };
    hooks
        .into_iter()
        .map(|(hook, command)| {
            let error = run_one(&project.root, &command, &log, timeout, |command| {
                command
                    .env("DP_RUN_RESULTS", run_results)
                    .env("DP_RUN_ID", run_id)
                    .env("DP_RUN_STATUS", status)
                    .env("DP_HOOK", hook);
            })
            .err();
            if let Some(error) = &error {
                tracing::warn!(hook, %command, %error, "hook failed");
            }
            HookRun {
                hook,
                command,
                error,
            }
        })
        .collect()
}

/// Run `command` with `sh -c` in `root`, its output appended to `log`; stopped past `timeout`.
fn run_one(
    root: &Path,
    command: &str,
    log: &Path,
    timeout: Duration,
    environment: impl FnOnce(&mut Command),
) -> Result<(), String> {
    if let Some(folder) = log.parent() {
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    let output = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(command)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors);
    environment(&mut shell);
    let mut child = shell.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => return Ok(()),
            Some(status) => {
                return Err(format!("{status} (its output is in {})", log.display()));
            }
            None if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "stopped after {}s (hook_timeout)",
                    timeout.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
