//! REPORT: what a run tells the outside world. The engine never prints: it sends [`RunEvent`]s to
//! a [`Reporter`] chosen by the caller, and writes `target/run_results.json` at the end of a run.

use std::path::Path;

use serde::Serialize;

use crate::audit::{TestResult, TestSummary};
use crate::execute::{ModelResult, RunSummary};

/// Something that happened during a run.
#[derive(Debug, Clone, Copy)]
pub enum RunEvent<'a> {
    /// A build of `models` models begins, `threads` at a time.
    RunStarted {
        run_id: &'a str,
        models: usize,
        threads: usize,
    },
    /// A model starts building; `index` counts from 1 up to `total`.
    ModelStarted {
        model: &'a str,
        index: usize,
        total: usize,
    },
    /// A model finished, failed or was skipped.
    ModelFinished {
        result: &'a ModelResult,
        index: usize,
        total: usize,
    },
    /// The build is over.
    RunFinished { summary: &'a RunSummary },
    /// A test of `dp test` finished; `index` counts from 1.
    TestFinished {
        result: &'a TestResult,
        index: usize,
    },
    /// `dp test` is over.
    TestsFinished { summary: &'a TestSummary },
}

/// Receives the events of a run; the CLI decides how they look.
pub trait Reporter: Send + Sync {
    fn report(&self, event: RunEvent<'_>);
}

#[derive(Serialize)]
struct RunResultsFile<'a> {
    command: &'static str,
    run_id: &'a str,
    success: bool,
    elapsed_ms: u128,
    results: Vec<RunResultEntry<'a>>,
    /// `dp test`'s tests (a build's tests are under each model).
    tests: &'a [TestResult],
}

#[derive(Serialize)]
struct RunResultEntry<'a> {
    model: &'a str,
    materialized: crate::render::Materialization,
    status: &'static str,
    rows: u64,
    partitions: &'a [String],
    delta_version: Option<u64>,
    source_files: &'a std::collections::BTreeMap<String, usize>,
    elapsed_ms: u128,
    message: Option<String>,
    tests: &'a [TestResult],
}

/// Write a build's `summary` as JSON to `path`, creating its folder.
pub fn write_run_results(path: &Path, summary: &RunSummary) -> std::io::Result<()> {
    write_json(
        path,
        &RunResultsFile {
            command: "build",
            run_id: &summary.run_id,
            success: summary.success(),
            elapsed_ms: summary.elapsed.as_millis(),
            results: summary.results.iter().map(entry).collect(),
            tests: &[],
        },
    )
}

/// Write `dp test`'s `summary` as JSON to `path`, creating its folder.
pub fn write_test_results(path: &Path, summary: &TestSummary) -> std::io::Result<()> {
    write_json(
        path,
        &RunResultsFile {
            command: "test",
            run_id: &summary.run_id,
            success: summary.success(),
            elapsed_ms: summary.elapsed.as_millis(),
            results: Vec::new(),
            tests: &summary.results,
        },
    )
}

fn entry(result: &ModelResult) -> RunResultEntry<'_> {
    RunResultEntry {
        model: &result.model,
        materialized: result.materialized,
        status: result.status.name(),
        rows: result.rows,
        partitions: &result.partitions,
        delta_version: result.version,
        source_files: &result.source_files,
        elapsed_ms: result.elapsed.as_millis(),
        message: result.status.message(),
        tests: &result.tests,
    }
}

/// Write the file whole or not at all: into a temporary file beside it, then renamed over it, so
/// that a reader (or a killed run) never leaves a half-written file.
fn write_json(path: &Path, file: &RunResultsFile<'_>) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let json = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    let temporary = parent.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temporary, json)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
