//! REPORT: what a run tells the outside world. The engine never prints: it sends [`RunEvent`]s to
//! a [`Reporter`] chosen by the caller, and writes `target/run_results.json` at the end of a run.

use std::path::Path;

use serde::Serialize;

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
    /// The run is over.
    RunFinished { summary: &'a RunSummary },
}

/// Receives the events of a run; the CLI decides how they look.
pub trait Reporter: Send + Sync {
    fn report(&self, event: RunEvent<'_>);
}

#[derive(Serialize)]
struct RunResultsFile<'a> {
    run_id: &'a str,
    success: bool,
    elapsed_ms: u128,
    results: Vec<RunResultEntry<'a>>,
}

#[derive(Serialize)]
struct RunResultEntry<'a> {
    model: &'a str,
    materialized: crate::render::Materialization,
    status: &'static str,
    rows: u64,
    partitions: &'a [String],
    delta_version: Option<u64>,
    orphans_removed: usize,
    elapsed_ms: u128,
    message: Option<String>,
}

/// Write `summary` as JSON to `path`, creating its folder.
pub fn write_run_results(path: &Path, summary: &RunSummary) -> std::io::Result<()> {
    let file = RunResultsFile {
        run_id: &summary.run_id,
        success: summary.success(),
        elapsed_ms: summary.elapsed.as_millis(),
        results: summary
            .results
            .iter()
            .map(|r| RunResultEntry {
                model: &r.model,
                materialized: r.materialized,
                status: r.status.name(),
                rows: r.rows,
                partitions: &r.partitions,
                delta_version: r.version,
                orphans_removed: r.orphans_removed,
                elapsed_ms: r.elapsed.as_millis(),
                message: r.status.message(),
            })
            .collect(),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let json = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}
