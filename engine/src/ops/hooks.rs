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
                // The project's .env too (the process's own variables win).
                for (name, value) in &project.dotenv {
                    command.env(name, value);
                }
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

/// Run `command` with `sh -c` in `root`, in a process group of its own, its output (secrets
/// masked) appended to `log`; stopped, with every process it started, past `timeout`.
fn run_one(
    root: &Path,
    command: &str,
    log: &Path,
    timeout: Duration,
    environment: impl FnOnce(&mut Command),
) -> Result<(), String> {
    let folder = log.parent().unwrap_or(root);
    std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    // The hook writes to a file of its own, read back (masked) into the log when it ends.
    let scratch = folder.join(format!(".hook.{}.out", std::process::id()));
    let mut output = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&scratch)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    let _ = std::fs::remove_file(&scratch);
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(command)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(output.try_clone().map_err(|e| e.to_string())?)
        .stderr(errors);
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut shell, 0);
    environment(&mut shell);
    let mut child = shell.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    let started = Instant::now();
    let outcome = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => break Ok(()),
            Some(status) => {
                break Err(format!("{status} (its output is in {})", log.display()));
            }
            None if started.elapsed() > timeout => {
                stop(&mut child);
                break Err(format!(
                    "stopped after {}s (hook_timeout)",
                    timeout.as_secs()
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    append_masked(&mut output, log);
    outcome
}

/// Kill the hook and every process of its group.
fn stop(child: &mut std::process::Child) {
    #[cfg(unix)]
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Append what the hook wrote to `log`, secrets masked.
fn append_masked(output: &mut std::fs::File, log: &Path) {
    use std::io::{Read, Seek, Write};
    let mut text = Vec::new();
    let read = output
        .rewind()
        .and_then(|()| output.read_to_end(&mut text).map(|_| ()));
    let masked = crate::report::mask(&String::from_utf8_lossy(&text)).into_owned();
    let written = read.and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?
            .write_all(masked.as_bytes())
    });
    if let Err(error) = written {
        tracing::warn!(log = %log.display(), %error, "cannot keep a hook's output");
    }
}
