//! EXECUTE: run each planned model in DataFusion and publish its result to its Delta table.
//! Models run in dependency order, independent ones at the same time (up to `threads`); a model
//! that fails skips its descendants only. In: a [`Plan`]. Out: a [`RunSummary`].

mod session;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use miette::SourceSpan;
use tokio::task::JoinSet;
use url::Url;

use crate::plan::{ModelPlan, Plan};
use crate::project::SourceTable;
use crate::render::Materialization;
use crate::report::{Reporter, RunEvent};
use crate::storage::{ModelTable, StorageError, model_table_url};

/// How a build runs.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Folder URL holding one Delta table per model.
    pub warehouse: Url,
    /// How many models build at once.
    pub threads: usize,
    /// How old an unreferenced file in a model's table must be before it is deleted.
    pub orphan_min_age: Duration,
    /// Identifies this run in logs and run results.
    pub run_id: String,
}

/// The outcome of one model in a run.
#[derive(Debug, Clone)]
pub struct ModelResult {
    pub model: String,
    pub materialized: Materialization,
    pub status: ModelStatus,
    /// Rows written.
    pub rows: u64,
    /// Partitions replaced (`col=value`), for a partitioned model.
    pub partitions: Vec<String>,
    /// The Delta version committed, if anything was.
    pub version: Option<u64>,
    /// Leftover files of crashed builds deleted before this build.
    pub orphans_removed: usize,
    pub elapsed: Duration,
}

/// Whether a model was built.
#[derive(Debug, Clone)]
pub enum ModelStatus {
    Success,
    Failed(Arc<ModelError>),
    /// Not run because `because`, one of its upstream models, failed or was skipped.
    Skipped {
        because: String,
    },
}

impl ModelResult {
    /// A result with nothing written yet.
    fn new(model: &ModelPlan, status: ModelStatus) -> Self {
        Self {
            model: model.name.clone(),
            materialized: model.config.materialized,
            status,
            rows: 0,
            partitions: Vec::new(),
            version: None,
            orphans_removed: 0,
            elapsed: Duration::ZERO,
        }
    }
}

impl ModelStatus {
    /// Why the model was not built, in one line; `None` when it was.
    pub fn message(&self) -> Option<String> {
        match self {
            ModelStatus::Success => None,
            ModelStatus::Failed(error) => Some(error.to_string()),
            ModelStatus::Skipped { because } => Some(format!("upstream `{because}` did not build")),
        }
    }

    /// A one-word name for the status.
    pub fn name(&self) -> &'static str {
        match self {
            ModelStatus::Success => "success",
            ModelStatus::Failed(_) => "error",
            ModelStatus::Skipped { .. } => "skipped",
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
    /// Whether every model was built.
    pub fn success(&self) -> bool {
        self.results
            .iter()
            .all(|r| matches!(r.status, ModelStatus::Success))
    }
}

/// Why a model failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum ModelError {
    #[error("`{model}`: {message}")]
    #[diagnostic(code(dp::execute::sql))]
    Sql {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("source `{source_id}` cannot be read at {location}: {message}")]
    #[diagnostic(code(dp::execute::source))]
    Source {
        source_id: String,
        location: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("declared here")]
        at: SourceSpan,
    },

    #[error("`{model}` cannot be published as defined in {}", file.display())]
    #[diagnostic(code(dp::execute::definition))]
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

    #[error("the table of `{model}` would overlap source `{source_id}` at {location}")]
    #[diagnostic(
        code(dp::execute::overlaps_source),
        help(
            "a model's table and a source's files must not share a folder; point the target's warehouse elsewhere"
        )
    )]
    OverlapsSource {
        model: String,
        source_id: String,
        location: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Storage(#[from] StorageError),

    #[error("internal error: {message}")]
    #[diagnostic(code(dp::internal), help("this is a bug in dp; please report it"))]
    Internal { message: String },
}

impl ModelError {
    /// A storage error that comes from how the model is defined (its columns, its partitioning)
    /// points at the model's file.
    fn from_storage(model: &ModelPlan, error: StorageError) -> Self {
        let needle = match &error {
            StorageError::MissingPartitionColumn { .. }
            | StorageError::InvalidPartitionValue { .. } => "partition_by",
            StorageError::SchemaChanged { .. } => "select",
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

/// What every model task shares.
struct BuildContext {
    options: BuildOptions,
    sources: BTreeMap<String, SourceTable>,
    runtime: Arc<datafusion::execution::runtime_env::RuntimeEnv>,
}

/// Build every stored model of `plan` (ephemeral models are only inlined).
pub async fn build(
    plan: &Plan,
    sources: &BTreeMap<String, SourceTable>,
    options: &BuildOptions,
    reporter: &dyn Reporter,
) -> RunSummary {
    let started = Instant::now();
    let to_build: Vec<&ModelPlan> = plan
        .models
        .iter()
        .filter(|m| m.config.materialized != Materialization::Ephemeral)
        .collect();
    let total = to_build.len();
    let threads = options.threads.max(1);
    reporter.report(RunEvent::RunStarted {
        run_id: &options.run_id,
        models: total,
        threads,
    });
    let context = Arc::new(BuildContext {
        options: options.clone(),
        sources: sources.clone(),
        runtime: Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default()),
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
    };
    let mut started_models = vec![false; total];
    let mut running = JoinSet::new();
    let mut task_model = HashMap::new();
    while outcome.finished < total {
        for (index, model) in to_build.iter().enumerate() {
            if started_models[index] || running.len() >= threads {
                continue;
            }
            let upstream: Vec<usize> = model
                .upstream
                .iter()
                .filter_map(|u| in_build.get(u.as_str()).copied())
                .collect();
            if upstream.iter().any(|&u| outcome.results[u].is_none()) {
                continue;
            }
            started_models[index] = true;
            let broken = upstream
                .iter()
                .filter_map(|&u| outcome.results[u].as_ref())
                .find(|r| !matches!(r.status, ModelStatus::Success));
            if let Some(broken) = broken {
                let because = broken.model.clone();
                outcome.record(
                    index,
                    ModelResult::new(model, ModelStatus::Skipped { because }),
                );
                continue;
            }
            reporter.report(RunEvent::ModelStarted {
                model: &model.name,
                index: outcome.finished + running.len() + 1,
                total,
            });
            let context = context.clone();
            let model = (*model).clone();
            let task = running.spawn(async move { run_model(&context, &model).await });
            task_model.insert(task.id(), index);
        }
        let Some(joined) = running.join_next_with_id().await else {
            // Nothing runs: the loop above skipped every model it could start.
            continue;
        };
        let (index, result) = match joined {
            Ok((id, result)) => (task_model[&id], result),
            Err(error) => {
                let index = task_model[&error.id()];
                let failure = ModelError::Internal {
                    message: format!("building the model crashed: {error}"),
                };
                (
                    index,
                    ModelResult::new(to_build[index], ModelStatus::Failed(Arc::new(failure))),
                )
            }
        };
        outcome.record(index, result);
    }
    let summary = RunSummary {
        run_id: options.run_id.clone(),
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
}

impl Outcomes<'_> {
    fn record(&mut self, index: usize, result: ModelResult) {
        self.finished += 1;
        self.reporter.report(RunEvent::ModelFinished {
            result: &result,
            index: self.finished,
            total: self.results.len(),
        });
        self.results[index] = Some(result);
    }
}

#[tracing::instrument(skip_all, fields(model = %model.name))]
async fn run_model(context: &BuildContext, model: &ModelPlan) -> ModelResult {
    let started = Instant::now();
    let mut result = ModelResult::new(model, ModelStatus::Success);
    if let Err(error) = publish_model(context, model, &mut result).await {
        tracing::info!(error = %error, "model failed");
        result.status = ModelStatus::Failed(Arc::new(error));
    }
    result.elapsed = started.elapsed();
    tracing::info!(
        rows = result.rows,
        version = result.version,
        duration_ms = result.elapsed.as_millis() as u64,
        status = result.status.name(),
        "model finished"
    );
    result
}

/// Plan the model's SQL, write its result into its table, and commit it.
async fn publish_model(
    context: &BuildContext,
    model: &ModelPlan,
    result: &mut ModelResult,
) -> Result<(), ModelError> {
    let session = session::for_model(context, model).await?;
    let frame = session
        .sql(&model.sql)
        .await
        .map_err(|error| session::sql_error(model, &error))?;
    let output = Arc::new(frame.schema().as_arrow().clone());
    let url = model_table_url(&context.options.warehouse, &model.name);
    if let Some(source) = context.sources.values().find(|source| {
        url.as_str().starts_with(source.location.as_str())
            || source.location.as_str().starts_with(url.as_str())
    }) {
        return Err(ModelError::OverlapsSource {
            model: model.name.clone(),
            source_id: source.id(),
            location: url.to_string(),
        });
    }
    let definition = |error| ModelError::from_storage(model, error);
    let table = ModelTable::open_for_build(&model.name, &url, &output, &model.config.partition_by)
        .await
        .map_err(definition)?;
    result.orphans_removed = table.remove_orphans(context.options.orphan_min_age).await?;
    let stream = frame
        .execute_stream()
        .await
        .map_err(|error| session::sql_error(model, &error))?;
    let staged = table.stage(stream).await.map_err(definition)?;
    result.rows = staged.rows;
    result.partitions = staged.partitions().into_iter().collect();
    result.version = table.commit(staged).await?;
    Ok(())
}
