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
    // Every process the hook starts inherits this mark, whichever group or session it moves to.
    let mark = hook_mark();
    shell.env(MARK, &mark);
    // While the hook runs, its orphans (a child that moved to a session of its own and whose
    // parent ended) become dp's children rather than init's, where its stop finds them.
    #[cfg(target_os = "linux")]
    let reaper = processes::Subreaper::start();
    #[cfg(not(target_os = "linux"))]
    let reaper = ();
    let mut child = shell.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    let started = Instant::now();
    let outcome = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) if status.success() => break Ok(()),
            Some(status) => {
                break Err(format!("{status} (its output is in {})", log.display()));
            }
            None if started.elapsed() > timeout => {
                stop(&mut child, &mark, &reaper);
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

/// The variable that marks the processes of one hook.
const MARK: &str = "DP_HOOK_MARK";

/// A mark no other hook, of this dp or another, carries.
fn hook_mark() -> String {
    static HOOKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = HOOKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{nanos}-{count}", std::process::id())
}

/// Kill the hook and every process it started: its process group and, on Linux, every process
/// descending from its shell, from dp's children since the hook started (its orphans, dp being
/// their subreaper) or carrying its mark, which finds the children that left the group with
/// `setsid`. Killed in rounds until none is left, as a process may fork while it is killed.
#[cfg(target_os = "linux")]
type Reaper = processes::Subreaper;
#[cfg(not(target_os = "linux"))]
type Reaper = ();

fn stop(child: &mut std::process::Child, mark: &str, reaper: &Reaper) {
    #[cfg(not(target_os = "linux"))]
    let _ = reaper;
    #[cfg(unix)]
    if let Ok(group) = libc::pid_t::try_from(child.id()) {
        #[cfg(target_os = "linux")]
        processes::kill_hook(group, &format!("{MARK}={mark}"), reaper);
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The processes of a hook, read from /proc.
#[cfg(target_os = "linux")]
mod processes {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    /// dp as the subreaper of the processes it starts, until dropped.
    pub struct Subreaper {
        before: libc::c_int,
        /// dp's children before the hook started: none of the hook's.
        children: BTreeSet<libc::pid_t>,
    }

    impl Subreaper {
        pub fn start() -> Self {
            let own = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
            let children = table().into_iter().filter(|(_, parent)| *parent == own);
            let children = children.map(|(pid, _)| pid).collect();
            let mut before: libc::c_int = 0;
            // SAFETY: prctl(2) reads the flag into `before`, then sets it; no other memory.
            unsafe {
                libc::prctl(
                    libc::PR_GET_CHILD_SUBREAPER,
                    &mut before as *mut libc::c_int,
                );
                libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong);
            }
            Self { before, children }
        }
    }

    impl Drop for Subreaper {
        fn drop(&mut self) {
            // SAFETY: prctl(2) sets a flag of this process.
            unsafe {
                libc::prctl(libc::PR_SET_CHILD_SUBREAPER, self.before as libc::c_ulong);
            }
        }
    }

    /// Kill, in rounds until none is left, the live processes of the hook whose shell is
    /// `shell`: see [`of_hook`]. Those that were handed to dp are reaped.
    pub fn kill_hook(shell: libc::pid_t, mark: &str, reaper: &Subreaper) {
        let own = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
        let mut killed = BTreeSet::new();
        for _ in 0..100 {
            // Found before anything is killed: a killed parent's children are handed on at
            // once.
            let found = of_hook(own, shell, mark, &reaper.children);
            if found.is_empty() {
                break;
            }
            for (pid, parent) in found {
                // SAFETY: kill(2) sends a signal; no memory is shared.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                if parent == own && pid != shell {
                    killed.insert(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for pid in killed {
            // SAFETY: waitpid(2) on a child of dp that was killed; no memory is shared.
            unsafe {
                libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
            }
        }
    }

    /// The live processes (with their parent) of the hook whose shell is `shell`: the shell,
    /// dp's (`own`) children but those it had before (the hook's orphans), the processes whose
    /// environment holds `mark` (`NAME=value`), and every descendant of these.
    fn of_hook(
        own: libc::pid_t,
        shell: libc::pid_t,
        mark: &str,
        before: &BTreeSet<libc::pid_t>,
    ) -> BTreeMap<libc::pid_t, libc::pid_t> {
        let parents = table();
        let mut children: BTreeMap<libc::pid_t, Vec<libc::pid_t>> = BTreeMap::new();
        let mut found = BTreeSet::new();
        for (&pid, &parent) in parents.iter().filter(|(pid, _)| **pid != own) {
            children.entry(parent).or_default().push(pid);
            let orphan = parent == own && !before.contains(&pid);
            if pid == shell || orphan || carries(pid, mark) {
                found.insert(pid);
            }
        }
        let mut pending: Vec<libc::pid_t> = found.iter().copied().collect();
        while let Some(pid) = pending.pop() {
            for &child in children.get(&pid).into_iter().flatten() {
                if found.insert(child) {
                    pending.push(child);
                }
            }
        }
        found
            .into_iter()
            .filter_map(|pid| Some((pid, *parents.get(&pid)?)))
            .collect()
    }

    /// Every live process, with its parent.
    fn table() -> BTreeMap<libc::pid_t, libc::pid_t> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return BTreeMap::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter_map(|pid| Some((pid, live_parent(pid)?)))
            .collect()
    }

    /// The parent of `pid`, unless it is dead (a zombie waiting to be reaped) or gone.
    fn live_parent(pid: libc::pid_t) -> Option<libc::pid_t> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (command) state ppid ...`: the command may hold spaces and parentheses.
        let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
        let state = fields.next()?;
        let parent = fields.next()?.parse().ok()?;
        (state != "Z" && state != "X").then_some(parent)
    }

    /// Whether the environment of `pid` holds `mark`.
    fn carries(pid: libc::pid_t, mark: &str) -> bool {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|environ| environ.split(|b| *b == 0).any(|v| v == mark.as_bytes()))
    }
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
