//! Timing a command: several runs after a warm-up, the median, min and max wall-clock time, and
//! the peak resident memory of the process (from the kernel's accounting of the child).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What several runs of a command took.
#[derive(Debug, Clone)]
pub struct Stats {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
    /// The largest resident set of any run, in bytes.
    pub peak_memory: u64,
}

/// Run `command` once to warm up and then `runs` (at least one) times, calling `prepare` before each run (not
/// timed). Fails when a run exits unsuccessfully.
pub fn measure(
    runs: u64,
    mut prepare: impl FnMut(),
    command: &mut Command,
) -> Result<Stats, String> {
    let mut times = Vec::new();
    for run in 0..=runs {
        prepare();
        let timed = run_once(command)?;
        if run > 0 {
            times.push(timed);
        }
    }
    Ok(stats(times))
}

/// Run `first` and `second` in turn, once each to warm up and then `runs` times each; their
/// stats, and the median of the pair-by-pair ratio `first / second`.
pub fn paired(
    runs: u64,
    first: &mut Command,
    second: &mut Command,
) -> Result<(Stats, Stats, f64), String> {
    let (mut a, mut b, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        let one = run_once(first)?;
        let other = run_once(second)?;
        if run > 0 {
            ratios.push(one.0.as_secs_f64() / other.0.as_secs_f64());
            a.push(one);
            b.push(other);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    Ok((stats(a), stats(b), ratio))
}

fn stats(mut runs: Vec<(Duration, u64)>) -> Stats {
    runs.sort();
    let middle = runs.len() / 2;
    let median = if runs.len().is_multiple_of(2) {
        (runs[middle - 1].0 + runs[middle].0) / 2
    } else {
        runs[middle].0
    };
    Stats {
        median,
        min: runs[0].0,
        max: runs[runs.len() - 1].0,
        peak_memory: runs.iter().map(|r| r.1).max().unwrap_or(0),
    }
}

/// One run: its wall-clock time and peak resident memory in bytes.
fn run_once(command: &mut Command) -> Result<(Duration, u64), String> {
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let shown = format!("{command:?}");
    let failed = |why: String| format!("{shown}: {why}");
    let started = Instant::now();
    let child = command.spawn().map_err(|e| failed(e.to_string()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of the plain C struct that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let elapsed = loop {
        // SAFETY: waits for our own child, writing into the two locals above.
        let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if waited == pid {
            break started.elapsed();
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(failed(error.to_string()));
        }
    };
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(failed(format!(
            "failed (wait status {status}); run it by hand to see why"
        )));
    }
    // Linux counts ru_maxrss in kilobytes. It includes what this process had mapped when the
    // child started (the child execs from a copy of it): a few MiB.
    Ok((elapsed, usage.ru_maxrss as u64 * 1024))
}
