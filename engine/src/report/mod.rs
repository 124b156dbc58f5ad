//! REPORT (the bottom layer: it imports nothing of the engine): what a run tells the outside world,
//! the result types of builds and tests included. The engine never prints: it sends [`RunEvent`]s to
//! a [`Reporter`] chosen by the caller, and writes `target/run_results.json` at the end of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

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
    materialized: &'a str,
    status: &'static str,
    rows: u64,
    partitions: &'a [String],
    delta_version: Option<u64>,
    source_files: &'a std::collections::BTreeMap<String, usize>,
    files_written: usize,
    files_rewritten: usize,
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
        materialized: &result.materialized,
        status: result.status.name(),
        rows: result.rows,
        partitions: &result.partitions,
        delta_version: result.version,
        source_files: &result.source_files,
        files_written: result.files_written,
        files_rewritten: result.files_rewritten,
        elapsed_ms: result.elapsed.as_millis(),
        message: result.status.message(),
        tests: &result.tests,
    }
}

/// Write the file whole or not at all: into a temporary file beside it, then renamed over it, so
/// that a reader (or a killed run) never leaves a half-written file. Creates its folder.
pub fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let temporary = parent.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

fn write_json(path: &Path, file: &RunResultsFile<'_>) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(file).map_err(std::io::Error::other)?;
    write_atomically(path, json.as_bytes())
}

/// The outcome of one model in a run.
#[derive(Debug, Clone)]
pub struct ModelResult {
    pub model: String,
    /// How it is stored: table, partitioned, ephemeral.
    pub materialized: String,
    pub status: ModelStatus,
    /// Rows written.
    pub rows: u64,
    /// Partitions replaced (`col=value`), for a partitioned model.
    pub partitions: Vec<String>,
    /// The Delta version committed, if anything was.
    pub version: Option<u64>,
    /// How many files of each Parquet source (`source.table`) the model read: with a partition
    /// filter, only the files of the partitions it selects.
    pub source_files: BTreeMap<String, usize>,
    /// Data files the commit added.
    pub files_written: usize,
    /// Published files an incremental run rewrote (a merge's files holding a matched key, or
    /// every file when columns were dropped): read, and replaced without those rows.
    pub files_rewritten: usize,
    /// The model's unit tests and data tests, in the order they ran.
    pub tests: Vec<TestResult>,
    pub elapsed: Duration,
}

/// Whether a model was built.
#[derive(Debug, Clone)]
pub enum ModelStatus {
    Success,
    /// Why, as the diagnostic the stage that failed made.
    Failed(Arc<dyn miette::Diagnostic + Send + Sync>),
    /// Not run because `because`, one of its upstream models, failed or was skipped.
    Skipped {
        because: String,
    },
    /// Nothing to build: a source it reads has no data for this build, and the source's
    /// `on_missing_partition` is `skip`. Nothing was published; the run goes on.
    NoData {
        reason: String,
    },
}

impl ModelStatus {
    /// Whether the run counts the model as done (built, or nothing to build by policy).
    pub fn succeeded(&self) -> bool {
        matches!(self, ModelStatus::Success | ModelStatus::NoData { .. })
    }

    /// Why the model was not built, in one line; `None` when it was.
    pub fn message(&self) -> Option<String> {
        match self {
            ModelStatus::Success => None,
            ModelStatus::Failed(error) => Some(error.to_string()),
            ModelStatus::Skipped { because } => Some(format!("upstream `{because}` did not build")),
            ModelStatus::NoData { reason } => Some(format!("skipped (no data): {reason}")),
        }
    }

    /// A one-word name for the status.
    pub fn name(&self) -> &'static str {
        match self {
            ModelStatus::Success => "success",
            ModelStatus::Failed(_) => "error",
            ModelStatus::Skipped { .. } => "skipped",
            ModelStatus::NoData { .. } => "no_data",
        }
    }
}

/// Every model's outcome.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    pub results: Vec<ModelResult>,
    pub elapsed: Duration,
}

impl RunSummary {
    /// Whether every model was built, or had no data to build by its sources' policy.
    pub fn success(&self) -> bool {
        self.results.iter().all(|r| r.status.succeeded())
    }
}

/// Every test's outcome.
#[derive(Debug, Clone)]
pub struct TestSummary {
    pub run_id: String,
    pub results: Vec<TestResult>,
    pub elapsed: std::time::Duration,
}

impl TestSummary {
    /// Whether no test stopped the run (warnings do not).
    pub fn success(&self) -> bool {
        !self.results.iter().any(|r| r.status.blocks())
    }
}

/// The outcome of one test.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    pub name: String,
    pub kind: TestKind,
    /// The model or source it tests (for a singular test: its file).
    pub subject: String,
    pub status: TestStatus,
    /// Failing rows (a unit test: rows missing or unexpected).
    pub failures: u64,
    /// The first failing rows as a table, for the report.
    pub sample: Option<String>,
    /// Where every failing row was written.
    pub failures_file: Option<PathBuf>,
    /// Why it failed, when a count does not say it: a unit test's diff, a query that failed.
    pub detail: Option<String>,
    /// Where the test is defined: `path:line`.
    pub defined_at: Option<String>,
}

/// The three kinds of test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    Data,
    Singular,
    Unit,
}

impl TestKind {
    /// The name used by `test_type:` selectors.
    pub fn name(self) -> &'static str {
        match self {
            TestKind::Data => "data",
            TestKind::Singular => "singular",
            TestKind::Unit => "unit",
        }
    }
}

impl TestResult {
    /// The result, with where its test is defined.
    pub fn defined_at(mut self, location: String) -> Self {
        self.defined_at = Some(location);
        self
    }

    /// A test that could not run, and why.
    pub fn errored(name: &str, kind: TestKind, subject: &str, detail: String) -> Self {
        Self {
            name: name.to_string(),
            kind,
            subject: subject.to_string(),
            status: TestStatus::Error,
            failures: 0,
            sample: None,
            failures_file: None,
            detail: Some(detail),
            defined_at: None,
        }
    }
}

/// Whether a test passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestStatus {
    Pass,
    /// Failed, at warn severity (or below its error threshold): the data is published.
    Warn,
    /// Failed at error severity: the data is not published.
    Fail,
    /// The test could not run (its query failed): counts as a failure.
    Error,
}

impl TestStatus {
    /// Whether the test stops publication and fails the run.
    pub fn blocks(self) -> bool {
        matches!(self, TestStatus::Fail | TestStatus::Error)
    }
}
