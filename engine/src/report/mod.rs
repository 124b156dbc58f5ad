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
        run_id: &'a str,
        model: &'a str,
        index: usize,
        total: usize,
    },
    /// A model finished, failed or was skipped.
    ModelFinished {
        run_id: &'a str,
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
    /// A backfill of `values` values begins, `threads` values at a time.
    BackfillStarted {
        run_id: &'a str,
        values: usize,
        threads: usize,
    },
    /// One value of a backfill is done; the counts are of the values finished so far.
    ValueFinished {
        result: &'a ValueResult,
        counts: ValueCounts,
        total: usize,
    },
    /// The backfill is over.
    BackfillFinished { summary: &'a BackfillSummary },
    /// A hook of the project (`on_run_end`, `on_failure`) ran; `error` says why it failed.
    HookFinished {
        hook: &'a str,
        command: &'a str,
        error: Option<&'a str>,
    },
}

/// How many values of a backfill were built, found up to date, and failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ValueCounts {
    pub built: usize,
    pub up_to_date: usize,
    pub failed: usize,
}

impl ValueCounts {
    /// Count one more value of `status`.
    pub fn add(&mut self, status: ValueStatus) {
        match status {
            ValueStatus::Built => self.built += 1,
            ValueStatus::UpToDate => self.up_to_date += 1,
            ValueStatus::Failed => self.failed += 1,
        }
    }
}

/// One value of a backfill.
#[derive(Debug, Clone)]
pub struct ValueResult {
    pub value: String,
    /// The build of its models; `None` when the value could not be prepared.
    pub summary: Option<RunSummary>,
    /// Why it could not be built at all (its vars do not render, the project does not check).
    pub error: Option<Arc<dyn miette::Diagnostic + Send + Sync>>,
}

impl ValueResult {
    /// What became of the value.
    pub fn status(&self) -> ValueStatus {
        match &self.summary {
            Some(summary) if summary.success() => {
                if summary
                    .results
                    .iter()
                    .all(|r| matches!(r.status, ModelStatus::UpToDate { .. }))
                {
                    ValueStatus::UpToDate
                } else {
                    ValueStatus::Built
                }
            }
            _ => ValueStatus::Failed,
        }
    }
}

/// What became of one value of a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueStatus {
    /// Its models were built (some were up to date, perhaps).
    Built,
    /// No model ran: all were published from the same SQL and vars.
    UpToDate,
    /// A model failed, or the value could not be prepared.
    Failed,
}

/// Every value of a backfill.
#[derive(Debug, Clone)]
pub struct BackfillSummary {
    pub run_id: String,
    pub target: String,
    /// The vars every value was built with, besides its own.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The var each value is given, and the selection built for each.
    pub var: String,
    pub select: Vec<String>,
    pub exclude: Vec<String>,
    pub values: Vec<ValueResult>,
    pub elapsed: Duration,
}

impl BackfillSummary {
    /// Whether every value was built (or was up to date).
    pub fn success(&self) -> bool {
        self.values
            .iter()
            .all(|v| v.status() != ValueStatus::Failed)
    }

    /// How many values were built, up to date and failed.
    pub fn counts(&self) -> ValueCounts {
        let mut counts = ValueCounts::default();
        for value in &self.values {
            counts.add(value.status());
        }
        counts
    }

    /// The values that failed, in order.
    pub fn failed(&self) -> Vec<&str> {
        let mut failed: Vec<&str> = self
            .values
            .iter()
            .filter(|v| v.status() == ValueStatus::Failed)
            .map(|v| v.value.as_str())
            .collect();
        failed.sort();
        failed
    }
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
    /// The run's target and vars: `dp retry` runs again with exactly these.
    #[serde(skip_serializing_if = "str::is_empty")]
    target: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    vars: &'a BTreeMap<String, serde_json::Value>,
    /// `--full-refresh` was given.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    full_refresh: bool,
    /// `--dry-run`: nothing was committed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    dry_run: bool,
    duration_ms: u128,
    results: Vec<RunResultEntry<'a>>,
    /// `dp test`'s tests (a build's tests are under each model).
    tests: &'a [TestResult],
}

/// A model's entry in run_results.json; the JSON events use the same field names.
#[derive(Serialize)]
pub struct RunResultEntry<'a> {
    pub model: &'a str,
    pub materialized: &'a str,
    pub status: &'static str,
    pub rows: u64,
    pub bytes: u64,
    pub partitions: &'a [String],
    pub delta_version: Option<u64>,
    pub source_files: &'a std::collections::BTreeMap<String, usize>,
    pub files_written: usize,
    pub files_rewritten: usize,
    pub duration_ms: u128,
    pub attempts: u32,
    pub failure_class: Option<FailureClass>,
    pub message: Option<String>,
    pub tests: &'a [TestResult],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<&'a ModelDiff>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Write a build's `summary` as JSON to `path`, creating its folder.
pub fn write_run_results(path: &Path, summary: &RunSummary) -> std::io::Result<()> {
    write_json(
        path,
        &RunResultsFile {
            command: "build",
            run_id: &summary.run_id,
            success: summary.success(),
            target: &summary.target,
            vars: &summary.vars,
            full_refresh: summary.full_refresh,
            dry_run: summary.dry_run,
            duration_ms: summary.elapsed.as_millis(),
            results: summary.results.iter().map(entry).collect(),
            tests: &[],
        },
    )
}

#[derive(Serialize)]
struct BackfillResultsFile<'a> {
    command: &'static str,
    run_id: &'a str,
    success: bool,
    duration_ms: u128,
    target: &'a str,
    vars: &'a BTreeMap<String, serde_json::Value>,
    var: &'a str,
    select: &'a [String],
    exclude: &'a [String],
    values: Vec<ValueEntry<'a>>,
}

#[derive(Serialize)]
struct ValueEntry<'a> {
    value: &'a str,
    status: ValueStatus,
    message: Option<String>,
    results: Vec<RunResultEntry<'a>>,
}

/// Write a backfill's `summary` as JSON to `path`, creating its folder.
pub fn write_backfill_results(path: &Path, summary: &BackfillSummary) -> std::io::Result<()> {
    let file = BackfillResultsFile {
        command: "backfill",
        run_id: &summary.run_id,
        success: summary.success(),
        duration_ms: summary.elapsed.as_millis(),
        target: &summary.target,
        vars: &summary.vars,
        var: &summary.var,
        select: &summary.select,
        exclude: &summary.exclude,
        values: summary
            .values
            .iter()
            .map(|value| ValueEntry {
                value: &value.value,
                status: value.status(),
                message: value.error.as_ref().map(|e| e.to_string()),
                results: value
                    .summary
                    .iter()
                    .flat_map(|s| s.results.iter().map(entry))
                    .collect(),
            })
            .collect(),
    };
    let json = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    write_atomically(path, mask(&json).as_bytes())
}

/// The last run, as `target/run_results.json` records it: what `dp retry` runs again.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedRun {
    pub command: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub full_refresh: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub results: Vec<RecordedResult>,
    /// A backfill's var, selection and values.
    #[serde(default)]
    pub var: Option<String>,
    #[serde(default)]
    pub select: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub values: Vec<RecordedValue>,
}

/// A model of a recorded run.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedResult {
    pub model: String,
    pub status: String,
}

/// A value of a recorded backfill.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct RecordedValue {
    pub value: String,
    pub status: String,
}

/// Read the run recorded at `path`.
pub fn read_run_results(path: &Path) -> std::io::Result<RecordedRun> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

/// Write `dp test`'s `summary` as JSON to `path`, creating its folder.
pub fn write_test_results(path: &Path, summary: &TestSummary) -> std::io::Result<()> {
    write_json(
        path,
        &RunResultsFile {
            command: "test",
            run_id: &summary.run_id,
            success: summary.success(),
            target: "",
            vars: &BTreeMap::new(),
            full_refresh: false,
            dry_run: false,
            duration_ms: summary.elapsed.as_millis(),
            results: Vec::new(),
            tests: &summary.results,
        },
    )
}

/// A model's result as run_results.json and the JSON events write it.
pub fn entry(result: &ModelResult) -> RunResultEntry<'_> {
    RunResultEntry {
        model: &result.model,
        materialized: &result.materialized,
        status: result.status.name(),
        rows: result.rows,
        bytes: result.bytes,
        partitions: &result.partitions,
        delta_version: result.version,
        source_files: &result.source_files,
        files_written: result.files_written,
        files_rewritten: result.files_rewritten,
        duration_ms: result.elapsed.as_millis(),
        attempts: result.attempts,
        failure_class: result.failure_class,
        message: result.status.message(),
        tests: &result.tests,
        diff: result.diff.as_ref(),
        dry_run: result.dry_run,
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
    write_atomically(path, mask(&json).as_bytes())
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
    /// Bytes of the data files the commit added.
    pub bytes: u64,
    /// The model's unit tests and data tests, in the order they ran.
    pub tests: Vec<TestResult>,
    pub elapsed: Duration,
    /// How many times it ran: more than once when a transient failure was retried.
    pub attempts: u32,
    /// Why it failed, as an operator acts on it.
    pub failure_class: Option<FailureClass>,
    /// What the build changes in its table, computed before the commit.
    pub diff: Option<ModelDiff>,
    /// `--dry-run`: staged, audited and diffed, then not committed.
    pub dry_run: bool,
}

impl ModelResult {
    /// The result of `model`, stored as `materialized`, with `status` and nothing done yet.
    pub fn new(model: String, materialized: String, status: ModelStatus) -> ModelResult {
        ModelResult {
            model,
            materialized,
            status,
            rows: 0,
            partitions: Vec::new(),
            version: None,
            source_files: BTreeMap::new(),
            files_written: 0,
            files_rewritten: 0,
            bytes: 0,
            tests: Vec::new(),
            elapsed: Duration::ZERO,
            attempts: 0,
            failure_class: None,
            diff: None,
            dry_run: false,
        }
    }
}

/// What a build changes in its table: the rows it replaces (the published version) against
/// the rows it stages, computed before the commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ModelDiff {
    pub mode: DiffMode,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Rows before and after, per replaced partition (`col=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub partitions: BTreeMap<String, RowCounts>,
    /// The columns rows are matched by; empty when the model has no key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Rows by key: new, gone, and present in both with another value in some column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    /// The first keys of each change (`added`, `removed`, `changed`), column → value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    /// Per column: nulls, distinct values, and min / max / sum of numbers, before and after.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub columns: BTreeMap<String, ColumnDiff>,
}

/// How much of a diff was computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiffMode {
    /// Every figure.
    #[default]
    Full,
    /// The row counts only: the rows compared exceed the diff's `max_rows`.
    Counts,
}

/// Rows before and after.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct RowCounts {
    pub before: u64,
    pub after: u64,
}

/// One column before and after a build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct ColumnDiff {
    pub nulls_before: u64,
    pub nulls_after: u64,
    pub distinct_before: u64,
    pub distinct_after: u64,
    /// The distinct counts are approximate (HyperLogLog, above a size).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distinct_approximate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_after: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_after: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum_after: Option<f64>,
}

impl ColumnDiff {
    /// Whether anything measured changed.
    pub fn changed(&self) -> bool {
        self.nulls_before != self.nulls_after
            || self.distinct_before != self.distinct_after
            || self.min_before != self.min_after
            || self.max_before != self.max_after
            || self.sum_before != self.sum_after
    }
}

/// Why a model failed, as an operator acts on it: only a transient failure is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The object store timed out, throttled or failed: retried with backoff.
    Transient,
    /// Another build committed to the same partitions first (Delta itself re-commits when the
    /// partitions are disjoint).
    Conflict,
    /// A source has no data for the build.
    MissingData,
    /// The output no longer matches the published table or a declared contract.
    SchemaChange,
    /// A test blocked the publication.
    Assertion,
    /// The SQL or the model's definition is wrong.
    Sql,
    /// The store failed during the commit and the log cannot tell whether it landed.
    CommitUnknown,
    /// A bug in dp.
    Internal,
}

impl FailureClass {
    /// The class's name, as run_results.json and the JSON events write it.
    pub fn name(self) -> &'static str {
        match self {
            FailureClass::Transient => "transient",
            FailureClass::Conflict => "conflict",
            FailureClass::MissingData => "missing_data",
            FailureClass::SchemaChange => "schema_change",
            FailureClass::Assertion => "assertion",
            FailureClass::Sql => "sql",
            FailureClass::CommitUnknown => "commit_unknown",
            FailureClass::Internal => "internal",
        }
    }

    /// Whether a failure of this class is worth running again at once.
    pub fn is_transient(self) -> bool {
        self == FailureClass::Transient
    }
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
    /// Not run: a resumed run (a backfill) found it published by a commit of the same SQL and
    /// vars, at `version`, and nothing upstream of it was rebuilt.
    UpToDate {
        version: u64,
    },
}

impl ModelStatus {
    /// Whether the run counts the model as done (built, or nothing to build by policy).
    pub fn succeeded(&self) -> bool {
        matches!(
            self,
            ModelStatus::Success | ModelStatus::NoData { .. } | ModelStatus::UpToDate { .. }
        )
    }

    /// Why the model was not built, in one line; `None` when it was.
    pub fn message(&self) -> Option<String> {
        match self {
            ModelStatus::Success => None,
            ModelStatus::Failed(error) => Some(error.to_string()),
            ModelStatus::Skipped { because } => Some(format!("upstream `{because}` did not build")),
            ModelStatus::NoData { reason } => Some(format!("skipped (no data): {reason}")),
            ModelStatus::UpToDate { version } => Some(format!(
                "up to date: v{version} was built from the same SQL and vars"
            )),
        }
    }

    /// A one-word name for the status.
    pub fn name(&self) -> &'static str {
        match self {
            ModelStatus::Success => "success",
            ModelStatus::Failed(_) => "error",
            ModelStatus::Skipped { .. } => "skipped",
            ModelStatus::NoData { .. } => "no_data",
            ModelStatus::UpToDate { .. } => "up_to_date",
        }
    }
}

/// Every model's outcome.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_id: String,
    /// The target the run built, and its vars (secrets masked).
    pub target: String,
    pub vars: BTreeMap<String, serde_json::Value>,
    /// `--full-refresh` was given.
    pub full_refresh: bool,
    /// `--dry-run`: nothing was committed.
    pub dry_run: bool,
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
    /// It could not run because the object store failed (a timeout, a 5xx): running it again
    /// may pass.
    #[serde(skip)]
    pub store_failed: bool,
}

/// The three kinds of test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    Data,
    Singular,
    Unit,
    /// A build's diff judged by the model's `diff:` thresholds.
    Diff,
}

impl TestKind {
    /// The name used by `test_type:` selectors.
    pub fn name(self) -> &'static str {
        match self {
            TestKind::Data => "data",
            TestKind::Singular => "singular",
            TestKind::Unit => "unit",
            TestKind::Diff => "diff",
        }
    }
}

impl TestResult {
    /// The result, with where its test is defined.
    pub fn defined_at(mut self, location: String) -> Self {
        self.defined_at = Some(location);
        self
    }

    /// A test that passed, as every test starts.
    pub fn passed(name: &str, kind: TestKind, subject: &str) -> Self {
        Self {
            name: name.to_string(),
            kind,
            subject: subject.to_string(),
            status: TestStatus::Pass,
            failures: 0,
            sample: None,
            failures_file: None,
            detail: None,
            defined_at: None,
            store_failed: false,
        }
    }

    /// A test that could not run, and why.
    pub fn errored(name: &str, kind: TestKind, subject: &str, detail: String) -> Self {
        Self {
            status: TestStatus::Error,
            detail: Some(detail),
            ..Self::passed(name, kind, subject)
        }
    }
}

/// Whether a test passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// The values that must never be written anywhere: those of environment variables named
/// `DP_SECRET_*` and the credentials of storage settings, registered as they are read.
static SECRETS: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// What every masked secret becomes.
pub const MASK: &str = "****";

/// The fewest characters a secret may have: a shorter value would be found, and masked, in
/// ordinary text. `DP_SECRET_*` variables with shorter values are refused when the project loads.
pub const MIN_SECRET_CHARS: usize = 4;

/// Register `value` as a secret: from now on [`mask`] hides it. Values shorter than
/// [`MIN_SECRET_CHARS`] are not registered (masking them would garble ordinary text); the loader
/// refuses such `DP_SECRET_*` values before they get here.
pub fn register_secret(value: &str) {
    if value.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    // As written in text, and as JSON escapes it (a quote, a backslash, a control character).
    let escaped = serde_json::to_string(value).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in [value, escaped] {
        if !secrets.iter().any(|s| s == form) {
            secrets.push(form.to_string());
        }
    }
    // The longest first, so that a secret holding another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by `****`.
pub fn mask(text: &str) -> std::borrow::Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut text = std::borrow::Cow::Borrowed(text);
    for secret in secrets.iter() {
        if text.contains(secret.as_str()) {
            text = std::borrow::Cow::Owned(text.replace(secret.as_str(), MASK));
        }
    }
    text
}

/// The byte ranges of `text` that hold a registered secret, in order and not overlapping (where
/// two overlap, the one that starts first wins, and of two that start together the longer):
/// what [`mask`] replaces, for a caller that must move offsets into `text` along with it.
pub fn secret_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    let mut found: Vec<std::ops::Range<usize>> = secrets
        .iter()
        .flat_map(|secret| {
            text.match_indices(secret.as_str())
                .map(|(at, _)| at..at + secret.len())
        })
        .collect();
    found.sort_by_key(|range| (range.start, std::cmp::Reverse(range.end)));
    let mut ranges: Vec<std::ops::Range<usize>> = Vec::with_capacity(found.len());
    for range in found {
        if ranges.last().is_none_or(|last| range.start >= last.end) {
            ranges.push(range);
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_masked_as_written_and_as_json_escapes_it() {
        let secret = "pa\"ss\\word-42";
        register_secret(secret);
        let json = serde_json::to_string(&serde_json::json!({"token": secret})).unwrap();
        assert_eq!(mask(&json), r#"{"token":"****"}"#);
        assert_eq!(mask(&format!("x {secret} y")), "x **** y");
        register_secret("abc");
        assert_eq!(mask("abc"), "abc", "too short to mask");
    }

    #[test]
    fn the_ranges_of_secrets_are_what_mask_replaces() {
        register_secret("ranges-secret-one");
        register_secret("secret-one");
        let text = "a ranges-secret-one b secret-one c ranges-secret-on";
        let ranges = secret_ranges(text);
        assert_eq!(ranges, [2..19, 22..32]);
        let mut masked = String::new();
        let mut at = 0;
        for range in ranges {
            masked.push_str(&text[at..range.start]);
            masked.push_str(MASK);
            at = range.end;
        }
        masked.push_str(&text[at..]);
        assert_eq!(masked, mask(text));
        assert_eq!(masked, "a **** b **** c ranges-secret-on");
    }
}
