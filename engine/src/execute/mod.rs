//! EXECUTE: run each planned model in DataFusion and publish its result to its Delta table.
//! Models run in dependency order, independent ones at the same time (up to `threads`); a model
//! that fails skips its descendants only. In: a [`Plan`]. Out: a [`RunSummary`].

mod parallelism;

pub use parallelism::Parallelism;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::SessionContext;
use miette::SourceSpan;
use tokio::task::JoinSet;

use crate::audit::{Partitions, UnitTestInputs, plan_in_context, run_query_test, run_unit_test};
use crate::compile::{ModelPlan, Plan};
use crate::graph::{ModelGraph, Scheduler};
use crate::project::{MissingPartition, NodeId, OnSchemaChange, Project};
use crate::render::{RenderContext, Renderer};
use crate::report::{FailureClass, ModelResult, ModelStatus, RunSummary, TestKind, TestResult};
use crate::report::{Reporter, RunEvent};
use crate::session::{
    SessionError, SourceScans, Warehouse, causes, register_relation, runtime_env, sql_error,
    store_failed,
};
use crate::storage::{ModelTable, RecordedTest, RunRecord, StorageError, WriteMode};

/// How a build runs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where the model tables live.
    pub warehouse: Warehouse,
    /// How many models build at once.
    pub threads: usize,
    /// The cores the build's queries share: a model's queries run in as many partitions as
    /// its share of them.
    pub cores: usize,
    /// Identifies this run in logs and run results.
    pub run_id: String,
    /// Where failing rows of tests are written.
    pub failures_dir: std::path::PathBuf,
    /// The most memory the build's queries may hold together, in bytes; beyond it they spill
    /// to temporary files (or fail when they cannot).
    pub memory_limit: Option<usize>,
    /// `--full-refresh`: incremental models are rebuilt whole.
    pub full_refresh: bool,
    /// The target's name, recorded in each commit.
    pub target: String,
    /// The run's vars (secrets masked), recorded in each commit.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// How many times a model that failed transiently runs again, and the wait before the
    /// first retry (doubled at each one).
    pub retries: u32,
    pub retry_backoff: Duration,
    /// A resumed run (a backfill), with the tables' states read once for the whole run: a
    /// model whose table's last build with these vars ran the same SQL, whose files are still
    /// published, and none of whose upstream models was rebuilt in this run, is not run again.
    pub resume: Option<crate::storage::TableStates>,
    /// Compute each build's diff (`--no-diff` turns it off).
    pub diff: bool,
    /// `--dry-run`: stage, audit and diff every model, commit none; a model reads its upstream
    /// models' staged rows; every staged file is deleted at the end.
    pub dry_run: bool,
    /// Where the models' queries and tests run.
    pub engine: Arc<dyn crate::session::QueryEngine>,
}

/// A result of `model` with nothing written yet.
fn new_result(model: &ModelPlan, status: ModelStatus) -> ModelResult {
    ModelResult::new(
        model.name.clone(),
        model.config.materialized.to_string(),
        status,
    )
}

/// A model that failed with `error`.
fn failed(error: ModelError) -> ModelStatus {
    ModelStatus::Failed(Arc::new(error))
}

/// Why a model failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum ModelError {
    #[error("`{model}` cannot be published as defined in {}", file.display())]
    #[diagnostic(code(dp::definition))]
    Definition {
        model: String,
        file: std::path::PathBuf,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("defined here")]
        at: SourceSpan,
        #[source]
        #[diagnostic_source]
        error: StorageError,
    },

    #[error(
        "source `{source_id}` has no data for this build: no file under {location} matches {filters}"
    )]
    #[diagnostic(
        code(dp::missing_data),
        help(
            "if a missing partition is expected, set `on_missing_partition: skip` on the source table to publish nothing instead"
        )
    )]
    MissingData {
        source_id: String,
        location: String,
        filters: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("on_missing_partition: fail")]
        at: SourceSpan,
    },

    #[error("`{model}` was not published: {} failed ({})", failed.len(), failed.join(", "))]
    #[diagnostic(
        code(dp::tests_failed),
        help("the published data is unchanged; the failures are listed above")
    )]
    TestsFailed { model: String, failed: Vec<String> },

    #[error("`{model}` (a view) failed its tests: {} failed ({})", failed.len(), failed.join(", "))]
    #[diagnostic(
        code(dp::tests_failed),
        help(
            "a view has no table: nothing was published for it and nothing else was held back, but the run fails; the failures are listed above"
        )
    )]
    ViewTestsFailed { model: String, failed: Vec<String> },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Storage(#[from] StorageError),

    #[error("`{model}` does not render or plan to run: {message}")]
    #[diagnostic(
        code(dp::render_to_run),
        help(
            "a build renders a model again to run it when it is incremental (is_incremental() true) or asks `execute` (run_query() answered); a table run_query() reads must be one the model refs while dp plans, as dbt asks: -- depends_on: {{{{ ref('name') }}}}"
        )
    )]
    RenderToRun { model: String, message: String },

    /// Its template failed in the render that runs it (a `run_query()` refused, say), at its
    /// place in the file.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Render(Box<crate::render::RenderError>),

    #[error("the object store failed while `{model}` ran: {message}")]
    #[diagnostic(
        code(dp::store_unavailable),
        help("a transient failure: dp retried it (the target's `retries`); nothing was published")
    )]
    StoreUnavailable { model: String, message: String },

    #[error("internal error: {message}")]
    #[diagnostic(code(dp::internal), help("this is a bug in dp; please report it"))]
    Internal { message: String },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Session(#[from] SessionError),
}

impl ModelError {
    /// A storage error that comes from how the model is defined (its columns, its partitioning)
    /// points at the model's file.
    fn from_storage(model: &ModelPlan, error: StorageError) -> Self {
        let needle = match &error {
            StorageError::MissingPartitionColumn { .. }
            | StorageError::InvalidPartitionValue { .. } => "partition_by",
            StorageError::SchemaChanged { .. } | StorageError::IncrementalSchemaChanged { .. } => {
                "select"
            }
            _ => return ModelError::Storage(error),
        };
        ModelError::Definition {
            model: model.name.clone(),
            file: model.file.path().to_path_buf(),
            src: model.file.named(),
            at: model.file.find(needle, 0),
            error,
        }
    }
}

/// A fresh id for a run.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A dry run's staged builds, by model: what its downstream models read, deleted at the end.
type DryRuns = std::sync::Mutex<HashMap<String, Arc<(ModelTable, crate::storage::StagedWrite)>>>;

/// What every model task shares.
struct BuildContext {
    options: BuildOptions,
    /// `--dry-run`: the models staged so far.
    dry_runs: DryRuns,
    project: Project,
    /// For unit tests: the renderer, the run's graph and its vars and target.
    renderer: Arc<Renderer>,
    graph: ModelGraph,
    render_context: RenderContext,
    runtime: Arc<RuntimeEnv>,
}

impl BuildContext {
    fn unit_test_inputs(&self) -> UnitTestInputs<'_> {
        UnitTestInputs {
            project: &self.project,
            renderer: &self.renderer,
            graph: &self.graph,
            context: &self.render_context,
        }
    }
}

/// Build every stored model of `plan` (ephemeral models are only inlined), and run the tests of
/// its views (ephemeral models) on their queries once what they read is built.
pub async fn build(
    plan: &Plan,
    not_run: Vec<ModelResult>,
    inputs: UnitTestInputs<'_>,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> RunSummary {
    let project = inputs.project;
    let started = Instant::now();
    // A view with tests is run as its tests: it has nothing to publish.
    let tested = |view: &ModelPlan| {
        !project
            .data_tests_of(&NodeId::Model(view.name.clone()))
            .is_empty()
            || project
                .unit_tests
                .iter()
                .any(|t| t.properties.model == view.name)
    };
    let to_build: Vec<&ModelPlan> = plan
        .models
        .iter()
        .filter(|m| !m.config.is_ephemeral() || tested(m))
        .collect();
    let total = to_build.len() + not_run.len();
    let threads = options.threads.max(1);
    reporter.report(RunEvent::RunStarted {
        run_id: &options.run_id,
        models: total,
        threads,
    });
    let runtime = runtime_env(options.memory_limit);
    let context = Arc::new(BuildContext {
        options: options.clone(),
        dry_runs: DryRuns::default(),
        project: project.clone(),
        renderer: inputs.renderer.clone(),
        graph: inputs.graph.clone(),
        render_context: inputs.context.clone(),
        runtime,
    });

    // Models wait until every upstream model of this build has finished.
    let in_build: BTreeMap<&str, usize> = to_build
        .iter()
        .enumerate()
        .map(|(i, m)| (m.name.as_str(), i))
        .collect();
    let mut outcome = Outcomes {
        results: vec![None; total],
        finished: 0,
        reporter,
        run_id: &options.run_id,
    };
    // What the check kept from running is over before anything starts.
    for (index, result) in not_run.into_iter().enumerate() {
        outcome.record(to_build.len() + index, result);
    }
    let mut scheduler = Scheduler::new(to_build.len());
    for (index, model) in to_build.iter().enumerate() {
        for dependency in model.waits_for(project) {
            // A view's query reads what the view reads: a test reading it waits for those.
            let stored = match crate::audit::view_plan(inputs.graph, dependency) {
                Some(view) => view.upstream.into_iter().collect(),
                None => vec![dependency.to_string()],
            };
            for dependency in stored {
                if let Some(&upstream) = in_build.get(dependency.as_str())
                    && upstream != index
                {
                    scheduler.add_wait(index, Some(upstream));
                }
            }
        }
    }
    let mut running = JoinSet::new();
    let mut task_model = HashMap::new();
    while outcome.finished < total {
        while running.len() < threads
            && let Some(index) = scheduler.next_ready()
        {
            let model = to_build[index];
            // Only what the model reads decides whether it can build: a model its tests read
            // is read as published, whatever became of it in this run.
            let upstream_results = model
                .upstream
                .iter()
                .filter_map(|u| in_build.get(u.as_str()))
                .filter_map(|&u| outcome.results[u].as_ref());
            let not_built = upstream_results.clone().find(|r| !r.status.succeeded());
            let upstream_rebuilt = upstream_results
                .clone()
                .any(|r| matches!(r.status, ModelStatus::Success));
            let no_data = upstream_results
                .clone()
                .find(|r| matches!(r.status, ModelStatus::NoData { .. }));
            let status = match (not_built, no_data) {
                (Some(broken), _) => Some(ModelStatus::Skipped {
                    because: broken.model.clone(),
                }),
                // Nothing new upstream: nothing to build from it either.
                (None, Some(empty)) => Some(ModelStatus::NoData {
                    reason: format!("upstream `{}` had no data", empty.model),
                }),
                (None, None) => None,
            };
            if let Some(status) = status {
                outcome.record(index, new_result(model, status));
                scheduler.finish(index);
                continue;
            }
            reporter.report(RunEvent::ModelStarted {
                run_id: &options.run_id,
                model: &model.name,
                index: outcome.finished + running.len() + 1,
                total,
            });
            let partitions = Parallelism {
                cores: options.cores,
                models: threads,
            }
            .partitions(running.len() + scheduler.ready());
            let context = context.clone();
            let model = model.clone();
            let resume = options.resume.is_some() && !upstream_rebuilt;
            let task = running.spawn(async move {
                if resume && let Some(result) = up_to_date(&context, &model).await {
                    return result;
                }
                run_model(&context, &model, partitions).await
            });
            task_model.insert(task.id(), index);
        }
        let Some(joined) = running.join_next_with_id().await else {
            // Nothing runs and nothing can start: models wait on each other, which the check
            // rules out (relationship tests that close a cycle are reported there).
            let stuck: Vec<usize> = scheduler.never_started().collect();
            for index in stuck {
                let model = to_build[index];
                let failure = ModelError::Internal {
                    message: format!("`{}` waits on a model that waits on it", model.name),
                };
                outcome.record(index, new_result(model, failed(failure)));
            }
            break;
        };
        let (index, result) = match joined {
            Ok((id, result)) => (task_model[&id], result),
            Err(error) => {
                let index = task_model[&error.id()];
                let failure = ModelError::Internal {
                    message: format!("building the model crashed: {error}"),
                };
                (index, new_result(to_build[index], failed(failure)))
            }
        };
        outcome.record(index, result);
        scheduler.finish(index);
    }
    // A dry run leaves nothing behind: its staged files are deleted.
    let dry_runs = std::mem::take(&mut *context.dry_runs.lock().unwrap_or_else(|e| e.into_inner()));
    for (model, staged) in dry_runs {
        match Arc::try_unwrap(staged) {
            Ok((table, staged)) => table.discard(staged).await,
            Err(_) => {
                tracing::warn!(%model, "a dry run's staged files are still in use; dp vacuum removes them")
            }
        }
    }
    let summary = RunSummary {
        run_id: options.run_id.clone(),
        target: options.target.clone(),
        vars: options.vars.clone(),
        full_refresh: options.full_refresh,
        dry_run: options.dry_run,
        results: outcome.results.into_iter().flatten().collect(),
        elapsed: started.elapsed(),
    };
    reporter.report(RunEvent::RunFinished { summary: &summary });
    summary
}

/// The results of a build's models as they finish, each reported when recorded.
struct Outcomes<'r> {
    /// By position in the build; `None` until the model finished.
    results: Vec<Option<ModelResult>>,
    finished: usize,
    reporter: &'r dyn Reporter,
    run_id: &'r str,
}

impl Outcomes<'_> {
    fn record(&mut self, index: usize, result: ModelResult) {
        self.finished += 1;
        self.reporter.report(RunEvent::ModelFinished {
            run_id: self.run_id,
            result: &result,
            index: self.finished,
            total: self.results.len(),
        });
        self.results[index] = Some(result);
    }
}

/// Build `model`, its queries in `partitions` partitions, trying again after a transient
/// failure.
#[tracing::instrument(skip_all, fields(model = %model.name, run_id = %context.options.run_id))]
async fn run_model(context: &BuildContext, model: &ModelPlan, partitions: usize) -> ModelResult {
    let started = Instant::now();
    let mut backoff = context.options.retry_backoff;
    let mut result;
    let mut attempt = 0;
    loop {
        attempt += 1;
        result = new_result(model, ModelStatus::Success);
        let Err(error) = publish_model(context, model, &mut result, partitions).await else {
            break;
        };
        let class = classify(&error);
        tracing::info!(error = %error, failure_class = ?class, attempt, "model failed");
        result.status = failed(error);
        result.failure_class = Some(class);
        // Nothing of it was published.
        result.rows = 0;
        result.bytes = 0;
        result.partitions.clear();
        result.files_written = 0;
        result.files_rewritten = 0;
        if !class.is_transient() || attempt > context.options.retries {
            break;
        }
        tracing::warn!(
            attempt,
            wait_ms = backoff.as_millis() as u64,
            "transient failure: retrying"
        );
        tokio::time::sleep(backoff).await;
        backoff *= 2;
    }
    result.attempts = attempt;
    result.elapsed = started.elapsed();
    tracing::info!(
        rows = result.rows,
        bytes = result.bytes,
        version = result.version,
        duration_ms = result.elapsed.as_millis() as u64,
        status = result.status.name(),
        "model finished"
    );
    result
}

/// `model` as already published, when its table's last build with this run's vars and target
/// ran the same SQL, and every file that build added is still published.
async fn up_to_date(context: &BuildContext, model: &ModelPlan) -> Option<ModelResult> {
    let warehouse = &context.options.warehouse;
    let url = warehouse.table_url(&model.name).ok()?;
    let states = context.options.resume.as_ref()?;
    let state = states.get(&warehouse.stores, &url).await.ok()?;
    let hash = model_sql_hash(context, model);
    let (version, record, added) = state.history.iter().find_map(|commit| {
        let record = commit.record.as_ref()?;
        (record.vars == context.options.vars
            && record.target == context.options.target
            && !record.sql_hash.is_empty())
        .then_some((commit.version, record, &commit.added_files))
    })?;
    if record.sql_hash != hash || !added.iter().all(|file| state.live_files.contains(file)) {
        return None;
    }
    let mut result = new_result(model, ModelStatus::UpToDate { version });
    result.partitions = record.partitions.clone();
    Some(result)
}

/// The class of a model's failure: whether running it again at once can succeed.
fn classify(error: &ModelError) -> FailureClass {
    match error {
        ModelError::MissingData { .. } => FailureClass::MissingData,
        ModelError::TestsFailed { .. } | ModelError::ViewTestsFailed { .. } => {
            FailureClass::Assertion
        }
        ModelError::Definition { error, .. } | ModelError::Storage(error) => match error {
            StorageError::SchemaChanged { .. } | StorageError::IncrementalSchemaChanged { .. } => {
                FailureClass::SchemaChange
            }
            StorageError::Conflict { .. } => FailureClass::Conflict,
            StorageError::CommitUnknown { .. } => FailureClass::CommitUnknown,
            // Rerun, it stages its files again.
            StorageError::StagedFileMissing { .. } => FailureClass::Transient,
            StorageError::Session(error) => classify_session(error),
            other if store_failed(other) || cluster_failed(other) => FailureClass::Transient,
            _ => FailureClass::Sql,
        },
        ModelError::Session(error) => classify_session(error),
        ModelError::StoreUnavailable { .. } => FailureClass::Transient,
        ModelError::RenderToRun { .. } | ModelError::Render(_) => FailureClass::Sql,
        ModelError::Internal { .. } => FailureClass::Internal,
    }
}

fn classify_session(error: &SessionError) -> FailureClass {
    match error {
        SessionError::Contract { .. } => FailureClass::SchemaChange,
        SessionError::NotBuilt { .. } => FailureClass::MissingData,
        SessionError::Internal { .. } => FailureClass::Internal,
        SessionError::ClusterUnavailable { .. } => FailureClass::Transient,
        other if store_failed(other) || cluster_failed(other) => FailureClass::Transient,
        _ => FailureClass::Sql,
    }
}

/// Whether a cluster's transport failed under `error` (the scheduler or an executor went away
/// mid-query): Ballista passes such failures on as text naming tonic's transport error.
fn cluster_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error).any(|error| error.to_string().contains("tonic::transport::Error"))
}

/// A query that could not be planned or run: the store's transient failure, or the SQL's error
/// at its place in the model's file.
fn query_error(model: &ModelPlan, error: &datafusion::error::DataFusionError) -> ModelError {
    if let datafusion::error::DataFusionError::External(inner) = error
        && let Some(SessionError::ClusterUnavailable { message }) = inner.downcast_ref()
    {
        let message = message.clone();
        return SessionError::ClusterUnavailable { message }.into();
    }
    if cluster_failed(error) {
        let message = error.strip_backtrace();
        return SessionError::ClusterUnavailable { message }.into();
    }
    if store_failed(error) {
        return ModelError::StoreUnavailable {
            model: model.name.clone(),
            message: error.strip_backtrace(),
        };
    }
    sql_error(model, error).into()
}

/// Run the model's unit tests, plan its SQL, write its result into its table, audit what was
/// written, and commit it. (Its contracts were checked with the whole project, before the run:
/// see `check`; its sources' are checked again as they are registered.)
async fn publish_model(
    context: &BuildContext,
    model: &ModelPlan,
    result: &mut ModelResult,
    partitions: usize,
) -> Result<(), ModelError> {
    for test in context
        .project
        .unit_tests
        .iter()
        .filter(|t| t.properties.model == model.name)
    {
        result
            .tests
            .push(run_unit_test(context.unit_test_inputs(), test).await);
    }
    blocking_failures(model, &result.tests)?;
    if model.config.is_ephemeral() {
        return test_view(context, model, result, partitions).await;
    }

    let warehouse = &context.options.warehouse;
    let url = warehouse.table_url(&model.name)?;
    // An external model's export location, refused before anything runs when it cannot be.
    let export_to = crate::storage::export_location(
        &context.project.root,
        &warehouse.url,
        &model.name,
        &model.config,
    )?;
    // An incremental model whose table exists runs its incremental branch, rendered now.
    let incremental = match &model.config.incremental {
        Some(incremental)
            if !(context.options.full_refresh && incremental.full_refresh)
                && crate::session::open_table(&warehouse.stores, &url)
                    .await?
                    .version()
                    .is_some() =>
        {
            Some(incremental)
        }
        _ => None,
    };
    let (session, source_scans, inputs) =
        model_session(context, model, incremental.is_some(), partitions).await?;
    let planned = model;
    // Rendered again to run: its incremental branch, or `run_query()` answered (`execute`).
    let incremental_branch = incremental.is_some() && model.config.has_incremental_branch();
    let rendered_to_run;
    let model = match (incremental_branch, model.runs_queries) {
        (false, false) => model,
        _ => {
            rendered_to_run = render_to_run(context, &session, model, incremental_branch)?;
            &rendered_to_run
        }
    };
    // A snapshot's later run compares its query with the table's current versions.
    let merged;
    let model = match (incremental, model.snapshot_query()) {
        (Some(_), Some(query)) => {
            let query = crate::session::read_query(&session, query)
                .await
                .map_err(|error| query_error(model, &error))?;
            let table = session
                .table(datafusion::common::TableReference::bare(
                    model.name.as_str(),
                ))
                .await
                .map_err(|error| query_error(model, &error))?;
            merged = model.snapshot_merge(query.schema().as_arrow(), table.schema().as_arrow());
            merged.as_ref().unwrap_or(model)
        }
        _ => model,
    };
    let frame = crate::session::read_query(&session, &model.sql)
        .await
        .map_err(|error| query_error(model, &error))?;
    let output = Arc::new(frame.schema().as_arrow().clone());
    // A query that reads its own table commits on the version it read, or not at all.
    let read_by_query = inputs
        .get(&model.name)
        .copied()
        .filter(|_| scans_table(frame.logical_plan(), &model.name));
    let physical = context
        .options
        .engine
        .plan(frame)
        .await
        .map_err(|error| query_error(model, &error))?;
    result.source_files = source_scans.files_read();
    if let Some(reason) = missing_data(context, &source_scans)? {
        tracing::warn!(model = %model.name, %reason, "no data: nothing published");
        result.status = ModelStatus::NoData { reason };
        return Ok(());
    }

    let definition = |error| ModelError::from_storage(model, error);
    let mode = WriteMode::of(&model.config, incremental.is_some()).ok_or_else(|| {
        ModelError::Internal {
            message: format!("`{}` is not stored, yet it was built", model.name),
        }
    })?;
    let table = ModelTable::open_for_build(
        &warehouse.stores,
        &model.name,
        &url,
        &output,
        &mode,
        // An incremental run's policy; a seed's columns follow its CSV on --full-refresh, as
        // in dbt.
        match incremental {
            Some(incremental) => Some(incremental.on_schema_change),
            None if context.options.full_refresh && model.config.is_seed() => {
                Some(OnSchemaChange::SyncAllColumns)
            }
            None => None,
        },
        read_by_query,
    )
    .await
    .map_err(definition)?;
    let stream = datafusion::physical_plan::execute_stream(physical, session.task_ctx())
        .map_err(|error| query_error(model, &error))?;
    let staged = table.stage(stream).await.map_err(definition)?;
    result.rows = staged.rows;
    result.partitions = staged.partitions().into_iter().collect();
    let staged = match incremental {
        None => staged,
        Some(incremental) => {
            // A merge rewrites the published files holding the keys it replaces, in the
            // same commit: staged here, audited with the rest, discarded with the rest.
            table
                .stage_rewrites(&session, staged, &incremental.predicates)
                .await
                .map_err(definition)?
        }
    };
    result.files_written = staged.files_written();
    result.files_rewritten = staged.files_rewritten();
    result.bytes = staged.bytes();

    // Audit exactly the staged rows; publish only what passed.
    let audited = audit_staged(context, &session, &table, &staged, model).await;
    let audited = match audited {
        Ok(tests) => tests,
        Err(error) => {
            table.discard(staged).await;
            return Err(error);
        }
    };
    result.tests.extend(audited);
    if context.options.diff && model.config.diff.enabled {
        diff_staged(context, &session, &table, &staged, model, result).await;
    }
    if let Err(error) = blocking_failures(model, &result.tests) {
        table.discard(staged).await;
        return Err(error);
    }
    if context.options.dry_run {
        // Kept for the models that read it, and deleted when the run ends.
        result.dry_run = true;
        context
            .dry_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.name.clone(), Arc::new((table, staged)));
        return Ok(());
    }
    let record = RunRecord {
        run_id: context.options.run_id.clone(),
        dp_version: env!("CARGO_PKG_VERSION").to_string(),
        sql_hash: model_sql_hash(context, planned),
        vars: context.options.vars.clone(),
        target: context.options.target.clone(),
        tests: result
            .tests
            .iter()
            .map(|test| RecordedTest {
                name: test.name.clone(),
                status: test.status,
                failures: test.failures,
            })
            .collect(),
        inputs,
        diff: result.diff.clone().map(|diff| crate::report::ModelDiff {
            samples: Default::default(),
            ..diff
        }),
        ..Default::default()
    };
    result.version = table.commit(staged, record).await?;
    if let Some(location) = export_to {
        let started = Instant::now();
        let rows = crate::storage::export(
            &warehouse.stores,
            &context.runtime,
            &url,
            result.version,
            &model.name,
            &model.config,
            &location,
            &context.options.run_id,
        )
        .await?;
        tracing::info!(
            model = %model.name,
            rows,
            location = %location,
            duration_ms = started.elapsed().as_millis() as u64,
            "exported"
        );
    }
    Ok(())
}

/// `model` rendered again and planned to run: with `is_incremental()` as given and
/// `run_query()` answered from `session` (the tables it reads).
fn render_to_run(
    context: &BuildContext,
    session: &SessionContext,
    model: &ModelPlan,
    is_incremental: bool,
) -> Result<ModelPlan, ModelError> {
    let render_context = RenderContext {
        is_incremental,
        ..crate::session::executing(&context.render_context, session)
    };
    plan_in_context(context.unit_test_inputs(), &render_context, &model.name).map_err(|error| {
        match error {
            crate::audit::InContext::Render(error) => ModelError::Render(Box::new(error)),
            other => ModelError::RenderToRun {
                model: model.name.clone(),
                message: other.to_string(),
            },
        }
    })
}

/// Run a view's data tests on its query, over the tables it reads as this run left them (or,
/// in a dry run, as staged). Nothing is published: a failing test fails the view, and the run,
/// and keeps nothing else from running.
async fn test_view(
    context: &BuildContext,
    model: &ModelPlan,
    result: &mut ModelResult,
    partitions: usize,
) -> Result<(), ModelError> {
    let (session, source_scans, _) = model_session(context, model, false, partitions).await?;
    // Rendered again to run, as a stored model is, when it asks `execute`.
    let rendered_to_run;
    let model = match model.runs_queries {
        false => model,
        true => {
            rendered_to_run = render_to_run(context, &session, model, false)?;
            &rendered_to_run
        }
    };
    crate::audit::register_view(&session, model)
        .await
        .map_err(|error| query_error(model, &error))?;
    let tested = crate::source::quote_identifier(&model.name);
    let tests = run_data_tests(context, &session, model, &tested).await;
    result.source_files = source_scans.files_read();
    if let Some(reason) = missing_data(context, &source_scans)? {
        tracing::warn!(model = %model.name, %reason, "no data: the view's tests read nothing");
        result.status = ModelStatus::NoData { reason };
        return Ok(());
    }
    result.tests.extend(tests);
    blocking_failures(model, &result.tests)
}

/// Whether `plan` (its subqueries too) scans the table registered as `name`.
fn scans_table(plan: &datafusion::logical_expr::LogicalPlan, name: &str) -> bool {
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::logical_expr::LogicalPlan;
    let mut found = false;
    let visited = plan.apply_with_subqueries(|node| {
        found |= matches!(node, LogicalPlan::TableScan(scan)
            if scan.table_name.table() == name
                && scan.table_name.schema().is_none_or(|schema| schema == "public"));
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    // A plan that cannot be walked is taken to read everything.
    found || visited.is_err()
}

/// The hash of a model's SQL that its commits record (SHA-256, in hex): of its compiled SQL;
/// for a model rendered again to run (incremental, or asking `execute`), of its template and
/// the project's macros too, since the SQL it runs is not the one planned.
fn model_sql_hash(context: &BuildContext, model: &ModelPlan) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(model.sql.as_bytes());
    if model.config.has_incremental_branch() || model.runs_queries {
        let packages = context.project.packages.iter().flat_map(|p| &p.macros);
        for text in std::iter::once(model.file.text()).chain(
            context
                .project
                .macros
                .iter()
                .chain(packages)
                .map(|m| m.text()),
        ) {
            hasher.update([0]);
            hasher.update(text.as_bytes());
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A session holding exactly the tables `model` reads (its own published table too, as
/// `{{ this }}`, in an incremental run), and the version of each model table it reads.
async fn model_session(
    context: &BuildContext,
    model: &ModelPlan,
    reads_itself: bool,
    partitions: usize,
) -> Result<(SessionContext, SourceScans, BTreeMap<String, u64>), ModelError> {
    let session = context
        .options
        .engine
        .project_session(&context.runtime, &context.project);
    session
        .state_ref()
        .write()
        .config_mut()
        .options_mut()
        .execution
        .target_partitions = partitions;
    tracing::debug!(model = %model.name, partitions, "model session");
    let source_scans = SourceScans::default();
    let relations = model
        .sources
        .iter()
        .map(|id| NodeId::Source(id.clone()))
        .chain(model.upstream.iter().map(|m| NodeId::Model(m.clone())))
        .chain(reads_itself.then(|| NodeId::Model(model.name.clone())));
    let mut inputs = BTreeMap::new();
    for relation in relations {
        let reads_itself = relation == NodeId::Model(model.name.clone());
        let version =
            read_relation(context, &session, &relation, &source_scans, !reads_itself).await?;
        if let (NodeId::Model(name), Some(version)) = (&relation, version) {
            inputs.insert(name.clone(), version);
        }
    }
    Ok((session, source_scans, inputs))
}

/// Register `relation` in `session` for a model's build, as [`register_relation`] does; in a
/// dry run, a model staged in this run (unless `staged` is false) is read as staged. A view is
/// registered as its query over what it reads.
async fn read_relation(
    context: &BuildContext,
    session: &SessionContext,
    relation: &NodeId,
    source_scans: &SourceScans,
    staged: bool,
) -> Result<Option<u64>, ModelError> {
    let NodeId::Model(name) = relation else {
        return read_stored(context, session, relation, source_scans, staged).await;
    };
    let Some(view) = crate::audit::view_plan(&context.graph, name) else {
        return read_stored(context, session, relation, source_scans, staged).await;
    };
    let reads = view
        .sources
        .iter()
        .map(|id| NodeId::Source(id.clone()))
        .chain(view.upstream.iter().map(|m| NodeId::Model(m.clone())));
    for read in reads {
        read_stored(context, session, &read, source_scans, staged).await?;
    }
    crate::audit::register_view(session, &view)
        .await
        .map_err(|error| query_error(&view, &error))?;
    Ok(None)
}

/// [`read_relation`] of a source or a stored model.
async fn read_stored(
    context: &BuildContext,
    session: &SessionContext,
    relation: &NodeId,
    source_scans: &SourceScans,
    staged: bool,
) -> Result<Option<u64>, ModelError> {
    let dry_run = match relation {
        NodeId::Model(name) if staged => context
            .dry_runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned(),
        _ => None,
    };
    let (Some(dry_run), NodeId::Model(name)) = (dry_run, relation) else {
        return Ok(register_relation(
            context.options.engine.as_ref(),
            session,
            relation,
            &context.options.warehouse,
            &context.project.sources,
            source_scans,
        )
        .await?);
    };
    let (table, staged) = &*dry_run;
    let frame = table.audited_frame(session, staged).await?;
    session
        .register_table(
            datafusion::common::TableReference::bare(name.as_str()),
            frame.into_view(),
        )
        .map_err(|error| ModelError::Internal {
            message: error.strip_backtrace(),
        })?;
    Ok(None)
}

/// The model's data tests, run on its staged rows (registered in `session` under a name no
/// model can have).
async fn audit_staged(
    context: &BuildContext,
    session: &datafusion::prelude::SessionContext,
    table: &ModelTable,
    staged: &crate::storage::StagedWrite,
    model: &ModelPlan,
) -> Result<Vec<TestResult>, ModelError> {
    let tests = context
        .project
        .data_tests_of(&NodeId::Model(model.name.clone()));
    if tests.is_empty() {
        return Ok(Vec::new());
    }
    let frame = table.audited_frame(session, staged).await?;
    session
        .register_table("staged-output", frame.into_view())
        .map_err(|error| sql_error(model, &error))?;
    Ok(run_data_tests(context, session, model, "\"staged-output\"").await)
}

/// The model's data tests, run on `tested` (a relation of `session`: its staged rows, or a
/// view's query).
async fn run_data_tests(
    context: &BuildContext,
    session: &SessionContext,
    model: &ModelPlan,
    tested: &str,
) -> Vec<TestResult> {
    let tests = context
        .project
        .data_tests_of(&NodeId::Model(model.name.clone()));
    let mut results = Vec::new();
    let macros = crate::audit::TestRenderer {
        renderer: &context.renderer,
        context: crate::session::executing(&context.render_context, session),
    };
    'tests: for test in tests {
        let defined_at = test.file.location(test.at.offset());
        let errored = |error: String| {
            TestResult::errored(&test.name, TestKind::Data, &model.name, error)
                .defined_at(defined_at.clone())
        };
        let mut parent = None;
        for read in test.reads() {
            if *read == NodeId::Model(model.name.clone()) {
                // A relationship within the model itself is checked against its new rows.
                parent = Some(tested);
            } else if let Err(error) =
                read_relation(context, session, read, &SourceScans::default(), true).await
            {
                // The test cannot run (a model it reads was never built): the test errors,
                // and says why.
                results.push(errored(error.to_string()));
                continue 'tests;
            }
        }
        let (sql, config) = match crate::audit::test_query(test, tested, parent, &macros) {
            Ok(query) => query,
            Err(error) => {
                results.push(errored(error));
                continue;
            }
        };
        results.push(
            run_query_test(
                session,
                &test.name,
                TestKind::Data,
                &model.name,
                &sql,
                &config,
                &context.options.failures_dir,
            )
            .await
            .defined_at(defined_at),
        );
    }
    results
}

/// The diff of the staged rows against the published rows they replace, into `result`; judged
/// by the model's thresholds as a test. A diff that cannot be computed is an error only where
/// thresholds depend on it.
async fn diff_staged(
    context: &BuildContext,
    session: &SessionContext,
    table: &ModelTable,
    staged: &crate::storage::StagedWrite,
    model: &ModelPlan,
    result: &mut ModelResult,
) {
    let config = &model.config.diff;
    let key = crate::audit::diff_key(&context.project, &model.name, config);
    let computed = async {
        let sides = table.diff_sides(session, staged).await?;
        let written = staged.partitions();
        let partitions = match (table.partition_by(), written.len()) {
            ([], _) => Partitions::None,
            // A replace of one partition: before and after are that partition.
            (_, 1) if table.replaces_written_partitions() => {
                Partitions::One(written.into_iter().next().unwrap_or_default())
            }
            (columns, _) => Partitions::Many(columns.to_vec()),
        };
        crate::audit::diff(
            session,
            sides,
            &model.name,
            &key,
            partitions,
            config,
            &context.options.failures_dir,
        )
        .await
        .map_err(|source| StorageError::Execution {
            model: model.name.clone(),
            source,
        })
    };
    let started = Instant::now();
    let computed = computed.await;
    tracing::debug!(
        model = %model.name,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "diff computed"
    );
    match computed {
        Ok((diff, judged)) => {
            result.diff = Some(diff);
            result.tests.extend(judged);
        }
        // Thresholds that cannot be judged stop the commit, unless a breach would only warn.
        Err(error) if config.has_thresholds() => {
            let mut errored = TestResult::errored(
                &format!("{}__diff", model.name),
                TestKind::Diff,
                &model.name,
                error.to_string(),
            );
            if config.severity == crate::project::Severity::Warn {
                errored.status = crate::report::TestStatus::Warn;
            }
            result.tests.push(errored);
        }
        Err(error) => tracing::warn!(model = %model.name, %error, "the diff could not be computed"),
    }
}

/// An error naming the tests that stop the model, if any do; a test the object store kept from
/// running makes the model's failure the store's (transient: a rerun may pass).
fn blocking_failures(model: &ModelPlan, tests: &[TestResult]) -> Result<(), ModelError> {
    if let Some(test) = tests.iter().find(|t| t.status.blocks() && t.store_failed) {
        return Err(ModelError::StoreUnavailable {
            model: model.name.clone(),
            message: format!(
                "test `{}` could not read its rows: {}",
                test.name,
                test.detail.as_deref().unwrap_or_default()
            ),
        });
    }
    let failed: Vec<String> = tests
        .iter()
        .filter(|t| t.status.blocks())
        .map(|t| match &t.defined_at {
            Some(at) => format!("{} at {at}", t.name),
            None => t.name.clone(),
        })
        .collect();
    match (failed.is_empty(), model.config.is_ephemeral()) {
        (true, _) => Ok(()),
        (false, false) => Err(ModelError::TestsFailed {
            model: model.name.clone(),
            failed,
        }),
        (false, true) => Err(ModelError::ViewTestsFailed {
            model: model.name.clone(),
            failed,
        }),
    }
}

/// Apply the missing-partition policy of each source whose scan found no file: an error for
/// `fail`, the reason to skip for `skip`.
fn missing_data(
    context: &BuildContext,
    source_scans: &SourceScans,
) -> Result<Option<String>, ModelError> {
    let mut skipped = None;
    for (source_id, filters) in source_scans.missing() {
        let source = &context.project.sources[&source_id];
        match source.on_missing_partition {
            MissingPartition::Fail => {
                return Err(ModelError::MissingData {
                    location: source.location.to_string(),
                    filters,
                    at: source.file.find(&source.table, 0),
                    src: source.file.named(),
                    source_id,
                });
            }
            MissingPartition::Skip => {
                skipped = Some(format!(
                    "source `{source_id}` has no file matching {filters}"
                ));
            }
        }
    }
    Ok(skipped)
}
