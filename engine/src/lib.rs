//! dp's engine: load a SQL-first data project, render its templates, resolve the DAG, select,
//! compile, check, execute in DataFusion and publish each model as a Delta Lake table.
//!
//! One module per stage; each imports only the modules before it in this list, bottom first
//! (`tests/layers.rs` fails on a back edge):
//!
//! 1. `report`: result and event types, run results: imports nothing of the engine
//! 2. `source`: the user's files, spans, SQL quoting
//! 3. [`project`]: load a project, one layered model config, targets
//! 4. `render`: a renderer built once, one render per model with its context
//! 5. `graph`: the DAG, selection, the scheduler
//! 6. `compile`: ephemeral inlining, source maps
//! 7. `session`: DataFusion sessions and runtime, object stores, registering relations,
//!    contracts, SQL-error mapping
//! 8. `storage`: Delta tables, write modes, staging and commits, vacuum
//! 9. `audit`: data tests, unit tests
//! 10. `check`: every model planned from schemas alone, every problem at once
//! 11. `execute`: build orchestration
//! 12. `ops`: operations on published tables (vacuum)
//! 13. `docs`: manifest, catalog, column lineage and the docs page, from the plans
//!
//! This file is the facade over them: [`prepare`] (load, render, resolve, select), [`check`],
//! and [`Prepared`]'s build, test and vacuum.

// Diagnostics carry their source text and spans; they are built only on the error path, so their
// size costs nothing where it matters and boxing them would only add noise.
#![allow(clippy::result_large_err)]

mod audit;
mod check;
mod compile;
mod docs;
mod error;
mod execute;
mod graph;
mod ops;
pub mod project;
mod render;
pub mod report;
mod session;
mod source;
mod storage;

pub use compile::depth::{MAX_DEPTH, MAX_QUERY_DEPTH, QUERY_LEVEL, STACK_SIZE};
pub use compile::{ModelPlan, Plan};
pub use docs::{
    Clause, Direction, Generated, How, LineageReport, LineageTree, NodeKind, RowFilter,
};
pub use ops::{
    InitError, Installed, LOCK_FILE, Operation, RollbackPlan, ShowQuery, VacuumResult,
    backfill_values, init,
};
pub use session::engine::cluster_runtime;
pub use session::{DpCodec, StoreWrapper, Stores};
pub use storage::{Commit, RunRecord, VacuumOptions, VersionChange};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use futures::StreamExt;
use rayon::prelude::*;

pub use error::Error;
use graph::{ModelGraph, NodeId};
use project::Project;
use render::{RenderContext, RenderOptions, Renderer, TargetContext};

/// The runtime to run the engine on: its threads (and those it starts for blocking work) have
/// [`STACK_SIZE`] of stack, what planning and running the deepest model dp accepts needs. Run
/// the code that awaits the engine on such a thread too.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(STACK_SIZE)
        .build()
}

/// What to load and select.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// A folder inside the project (the project is the nearest folder holding `dp_project.yml`).
    pub project_dir: PathBuf,
    /// `--target` (default: the project's `target:`).
    pub target: Option<String>,
    /// `--vars` arguments.
    pub vars: Vec<String>,
    /// `--select` arguments (empty: everything).
    pub select: Vec<String>,
    /// `--exclude` arguments.
    pub exclude: Vec<String>,
}

/// A loaded, rendered and resolved project with the nodes selected.
pub struct Prepared {
    pub project: Project,
    /// The target the run is for.
    pub target: project::Target,
    /// How the run reaches the target's object stores.
    stores: Stores,
    /// Renders the project's templates again (a unit test renders its model with its own vars).
    renderer: Arc<Renderer>,
    /// The run's vars and target, as templates see them.
    context: RenderContext,
    /// Every model that rendered, with the models that read only such models.
    graph: ModelGraph,
    selected: BTreeSet<NodeId>,
    /// No `--select` or `--exclude` was given.
    selects_everything: bool,
    /// The models (and singular tests) that did not render, by name: `dp check` reports them,
    /// a build fails them and builds the rest.
    render_problems: Vec<(String, render::RenderError)>,
    /// The models that rendered but read one that did not (directly or through another such
    /// model), each with the model it reads: left out of the graph, skipped by a build.
    left_out: BTreeMap<String, String>,
}

/// What `dp build` may set over the target's settings.
#[derive(Clone, Default)]
pub struct BuildSettings {
    /// Models built at once.
    pub threads: Option<usize>,
    /// The cores the build's queries share (default: the machine's).
    pub cores: Option<usize>,
    /// The most memory the build's queries may hold, in bytes.
    pub memory_limit: Option<usize>,
    /// Stands between the build and each of its object stores (the fault tests' flaky store).
    pub store_wrapper: Option<StoreWrapper>,
    /// `--full-refresh`: incremental models are rebuilt whole.
    pub full_refresh: bool,
    /// The run's id (default: a new one).
    pub run_id: Option<String>,
    /// `--no-diff`: no diff of the staged rows against the published ones.
    pub no_diff: bool,
    /// `--dry-run`: stage, audit and diff every model, commit none, and delete what was staged.
    pub dry_run: bool,
}

impl Prepared {
    /// Where this run's model tables live.
    fn warehouse(&self) -> session::Warehouse {
        session::Warehouse {
            url: self.target.warehouse.clone(),
            stores: self.stores.clone(),
        }
    }

    /// Where the target's queries run.
    fn query_engine(&self) -> std::sync::Arc<dyn session::QueryEngine> {
        match &self.target.engine {
            project::Engine::Embedded => std::sync::Arc::new(session::Embedded),
            project::Engine::Ballista { host, port } => {
                std::sync::Arc::new(session::Ballista::new(host, *port))
            }
        }
    }

    /// The selected nodes, in execution order, as `dp ls` shows them.
    pub fn selected_nodes(&self) -> Vec<String> {
        self.graph
            .order()
            .iter()
            .filter(|node| self.selected.contains(node))
            .map(ToString::to_string)
            .collect()
    }

    /// How many models rendered.
    pub fn model_count(&self) -> usize {
        self.graph.models.len()
    }

    /// Build the models the check planned, fail those it found wrong and skip what reads them,
    /// then write the run's results.
    pub async fn build(
        &self,
        checked: Checked,
        settings: BuildSettings,
        reporter: &dyn report::Reporter,
    ) -> Result<report::RunSummary, Error> {
        let not_run = checked
            .failed
            .into_iter()
            .map(|not_run| self.not_run_result(not_run))
            .collect();
        let summary = self
            .run(&checked.plan, not_run, settings, None, reporter)
            .await;
        let path = self.run_results_path();
        report::write_run_results(&path, &summary).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        // A dry run published nothing: nobody needs to hear of it.
        if !summary.dry_run {
            run_hooks(
                &self.project,
                &path,
                &summary.run_id,
                summary.success(),
                reporter,
            );
        }
        Ok(summary)
    }

    /// The result of a model the check kept from running.
    fn not_run_result(&self, not_run: NotRun) -> report::ModelResult {
        let materialized = match self.graph.models.get(not_run.model()) {
            Some(model) => model.config.materialized.to_string(),
            None => "unknown".to_string(),
        };
        match not_run {
            NotRun::Failed { model, problem } => {
                let status = report::ModelStatus::Failed(Arc::new(problem));
                let mut result = report::ModelResult::new(model, materialized, status);
                result.failure_class = Some(report::FailureClass::Sql);
                result
            }
            NotRun::Skipped { model, because } => {
                let status = report::ModelStatus::Skipped { because };
                report::ModelResult::new(model, materialized, status)
            }
        }
    }

    /// Build the models of `plan` (`not_run` are the results of those the check kept from
    /// running); with `resume`, skip those already published from the same SQL and vars (a
    /// backfill).
    async fn run(
        &self,
        plan: &compile::Plan,
        not_run: Vec<report::ModelResult>,
        settings: BuildSettings,
        resume: Option<storage::TableStates>,
        reporter: &dyn report::Reporter,
    ) -> report::RunSummary {
        let cores = settings.cores.unwrap_or_else(machine_cores);
        let threads = settings
            .threads
            .or(self.target.threads)
            // A model's build also waits on storage (creating files, committing): two per core
            // keep the cores busy; each model's queries get its share of the cores.
            .unwrap_or(2 * cores);
        let options = execute::BuildOptions {
            warehouse: match settings.store_wrapper {
                Some(wrapper) => session::Warehouse {
                    url: self.target.warehouse.clone(),
                    stores: self.stores.clone().wrapped(wrapper),
                },
                None => self.warehouse(),
            },
            threads,
            cores,
            run_id: settings.run_id.unwrap_or_else(execute::new_run_id),
            failures_dir: audit::failures_dir(&self.project.target_dir()),
            memory_limit: settings.memory_limit.or(self.target.memory_limit),
            full_refresh: settings.full_refresh,
            target: self.target.name.clone(),
            vars: self.recorded_vars(),
            retries: self.target.retries,
            retry_backoff: self.target.retry_backoff,
            resume,
            diff: !settings.no_diff,
            dry_run: settings.dry_run,
            engine: self.query_engine(),
        };
        execute::build(plan, not_run, self.unit_test_inputs(), &options, reporter).await
    }

    /// The versions of `model`'s table, newest first, at most `limit`, with dp's run records.
    pub async fn history(
        &self,
        model: &str,
        limit: Option<usize>,
    ) -> Result<Vec<storage::Commit>, Error> {
        self.known_model(model)?;
        let warehouse = self.warehouse();
        let url = warehouse.table_url(model).map_err(ops::OpsError::from)?;
        // At least one version is read, to tell a table from none (`--limit 0` shows nothing
        // of a table that exists).
        let mut history = storage::history(&warehouse.stores, &url, limit.map(|l| l.max(1)))
            .await
            .map_err(ops::OpsError::from)?;
        if history.is_empty() {
            return Err(ops::OpsError::NoTable {
                model: model.to_string(),
            }
            .into());
        }
        history.truncate(limit.unwrap_or(usize::MAX));
        Ok(history)
    }

    /// What rolling `model` back to `version` would change, and which downstream models were
    /// built from a version it undoes.
    pub async fn plan_rollback(&self, model: &str, version: u64) -> Result<RollbackPlan, Error> {
        self.known_model(model)?;
        let models: Vec<String> = self.project.models.keys().cloned().collect();
        Ok(ops::plan_rollback(&self.warehouse(), &models, model, version).await?)
    }

    /// Carry out `plan` (refused while downstream models were built from an undone version,
    /// unless `force`); returns the new version.
    pub async fn rollback(&self, plan: &RollbackPlan, force: bool) -> Result<u64, Error> {
        let record = storage::RunRecord {
            run_id: execute::new_run_id(),
            dp_version: env!("CARGO_PKG_VERSION").to_string(),
            target: self.target.name.clone(),
            ..Default::default()
        };
        Ok(ops::rollback(&self.warehouse(), plan, &record, force).await?)
    }

    /// An error unless `model` is a model of the project.
    fn known_model(&self, model: &str) -> Result<(), Error> {
        if self.project.models.contains_key(model) {
            return Ok(());
        }
        Err(ops::OpsError::UnknownModel {
            name: model.to_string(),
            did_you_mean: source::did_you_mean(
                model,
                self.project.models.keys().map(String::as_str),
            ),
        }
        .into())
    }

    /// Run the selected nodes' tests of `kinds` against the published data, then write the
    /// run's results.
    async fn test(
        &self,
        kinds: BTreeSet<report::TestKind>,
        not_running: &BTreeSet<String>,
        reporter: &dyn report::Reporter,
    ) -> Result<report::TestSummary, Error> {
        let options = audit::TestOptions {
            warehouse: self.warehouse(),
            failures_dir: audit::failures_dir(&self.project.target_dir()),
            kinds,
            run_id: execute::new_run_id(),
            memory_limit: self.target.memory_limit,
            engine: self.query_engine(),
        };
        // Said once, before any test runs, rather than as each test's transport error.
        options.engine.ready().await?;
        let selected: BTreeSet<NodeId> = self
            .selected
            .iter()
            .filter(|node| !matches!(node, NodeId::Model(name) if not_running.contains(name)))
            .cloned()
            .collect();
        let summary =
            audit::run_tests(self.unit_test_inputs(), &selected, &options, reporter).await;
        let path = self.run_results_path();
        report::write_test_results(&path, &summary).map_err(|source| Error::Io { path, source })?;
        Ok(summary)
    }

    /// Vacuum the selected models' tables. Selecting everything takes every model of the
    /// project, also those that did not render (a vacuum needs no vars).
    pub async fn vacuum(&self, options: &storage::VacuumOptions) -> Vec<ops::VacuumResult> {
        let models: Vec<String> = if self.selects_everything {
            self.project.models.keys().cloned().collect()
        } else {
            let stored = |name: &String| !self.graph.models[name].config.is_ephemeral();
            self.graph
                .order()
                .iter()
                .filter(|node| self.selected.contains(node))
                .filter_map(|node| match node {
                    NodeId::Model(name) if stored(name) => Some(name.clone()),
                    _ => None,
                })
                .collect()
        };
        ops::vacuum(&models, &self.warehouse(), options).await
    }

    /// `dp docs generate`: check the project, then write `target/manifest.json`,
    /// `catalog.json`, `lineage.json` and `docs/index.html`. The catalog and lineage cover the
    /// selected models; a model that does not check (and what reads it) is documented without
    /// its columns and returned among the failures (with `fail_fast`, nothing is written).
    pub async fn generate_docs(
        &self,
        fail_fast: bool,
    ) -> Result<(docs::Generated, Failures), Error> {
        let mut checked = check_every_model(self).await;
        if fail_fast || self.target.fail_fast {
            checked = checked.strict()?;
        }
        let failures = checked.take_failures();
        let compiled = checked.plan;
        let inputs = docs::DocsInputs {
            project: &self.project,
            graph: &self.graph,
            selected: &self.selected,
            compiled: &compiled,
            target: &self.target,
            stores: &self.stores,
            renders: self.renders(),
        };
        Ok((docs::generate(&inputs).await?, failures))
    }

    /// `dp lineage`: the lineage of `target` (`model`, `model.column`, `source.table` or
    /// `source.table.column`), planned from schemas alone.
    pub async fn lineage(
        &self,
        target: &str,
        direction: Direction,
    ) -> Result<LineageReport, Error> {
        let planned =
            docs::plan_lineage(&self.project, &self.graph, &self.stores, self.renders()).await;
        Ok(docs::lineage_report(
            &planned,
            &self.graph,
            target,
            direction,
        )?)
    }

    /// The run's vars as its records keep them: JSON, secrets masked.
    fn recorded_vars(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.context
            .options
            .vars
            .iter()
            .map(|(name, value)| {
                let value = serde_json::to_value(value).unwrap_or_default();
                let masked = report::mask(&value.to_string()).into_owned();
                let masked = serde_json::from_str(&masked)
                    .unwrap_or_else(|_| serde_json::Value::from(report::MASK));
                (name.clone(), masked)
            })
            .collect()
    }

    /// `target/run_results.json`.
    fn run_results_path(&self) -> PathBuf {
        self.project.target_dir().join("run_results.json")
    }

    /// The first `limit` rows of `query` (`dp show`), read from the published tables it names;
    /// nothing is written.
    pub async fn show(
        &self,
        query: &ops::ShowQuery,
        limit: usize,
    ) -> Result<Vec<datafusion::arrow::record_batch::RecordBatch>, Error> {
        Ok(self.reader().show(query, limit).await?)
    }

    /// `dp run-operation`: call the macro `name` with `args` (a YAML mapping of its keyword
    /// arguments), its queries answered from the published tables.
    pub async fn run_operation(&self, name: &str, args: &str) -> Result<ops::Operation, Error> {
        Ok(self.reader().run_operation(name, args).await?)
    }

    /// What reads the published warehouse for this run.
    fn reader(&self) -> ops::Reader<'_> {
        ops::Reader {
            project: &self.project,
            renderer: &self.renderer,
            graph: &self.graph,
            context: &self.context,
            engine: self.query_engine(),
            warehouse: self.warehouse(),
            memory_limit: self.target.memory_limit,
            render_problems: &self.render_problems,
            left_out: &self.left_out,
        }
    }

    /// What renders the project's models again, as docs and lineage do.
    fn renders(&self) -> docs::Renders<'_> {
        docs::Renders {
            renderer: &self.renderer,
            context: &self.context,
        }
    }

    /// What a unit test (and the check of one) renders and plans its model with.
    fn unit_test_inputs(&self) -> audit::UnitTestInputs<'_> {
        audit::UnitTestInputs {
            project: &self.project,
            renderer: &self.renderer,
            graph: &self.graph,
            context: &self.context,
        }
    }

    /// The project, when every model rendered; else every render problem.
    pub fn complete(mut self) -> Result<Self, Error> {
        let found = std::mem::take(&mut self.render_problems);
        source::problems(
            found.into_iter().map(|(_, problem)| problem).collect(),
            |problems| render::RenderError::Many { problems },
        )?;
        Ok(self)
    }
}

/// `dp test`: split `test_type:` off the selectors, prepare and check the project, then run the
/// selected nodes' tests of those kinds against the published data.
pub async fn test(
    options: &PrepareOptions,
    fail_fast: bool,
    reporter: &dyn report::Reporter,
    on_prepared: impl FnOnce(&Prepared),
) -> Result<(report::TestSummary, Failures), Error> {
    let (select, kinds) = graph::split_test_types(&options.select)?;
    let prepared = prepare(&PrepareOptions {
        select,
        ..options.clone()
    })?;
    on_prepared(&prepared);
    let mut checked = check_each(&prepared).await;
    if fail_fast || prepared.target.fail_fast {
        checked = checked.strict()?;
    }
    let failures = checked.take_failures();
    let summary = prepared.test(kinds, &failures.models(), reporter).await?;
    Ok((summary, failures))
}

/// What `dp backfill` builds: the selection of `prepare` once for each value of `var`.
#[derive(Clone, Default)]
pub struct BackfillOptions {
    /// The project, target, selection and the vars every value shares.
    pub prepare: PrepareOptions,
    /// The var each value is given (`date`).
    pub var: String,
    pub values: Vec<String>,
    /// Values built at once (each builds its models one after the other, in dependency order);
    /// 0: the target's `threads`, else the number of cores.
    pub threads: usize,
    /// Build again the values already published from the same SQL and vars.
    pub force: bool,
    pub settings: BuildSettings,
}

/// `dp backfill`: build the selected models for each value, `threads` values at once, each
/// value's models in dependency order, each with its tests and its own commit. A model whose
/// table's last build with the same vars ran the same SQL is not run again (unless `force`):
/// a backfill run again does only what is left. Writes the run's results.
pub async fn backfill(
    options: &BackfillOptions,
    reporter: &dyn report::Reporter,
) -> Result<report::BackfillSummary, Error> {
    let started = std::time::Instant::now();
    // The project and its target, once (with the first value, which its templates may
    // need): a project that does not load stops the backfill.
    let mut first = options.prepare.clone();
    if let Some(value) = options.values.first() {
        first.vars.push(format!("{}={value}", options.var));
    }
    let loaded = load(&options.prepare)?;
    let base = prepare_backfill(options, loaded.clone(), &first)?;
    let run_id = execute::new_run_id();
    let total = options.values.len();
    let threads = match options.threads {
        0 => base.target.threads.unwrap_or_else(machine_cores),
        threads => threads,
    }
    .max(1);
    // Each table's history and files, read once for every date.
    let states = (!options.force).then(storage::TableStates::default);
    reporter.report(report::RunEvent::BackfillStarted {
        run_id: &run_id,
        values: total,
        threads,
    });
    let mut builds = futures::stream::iter(options.values.iter().cloned())
        .map(|value| {
            let (run_id, states, loaded) = (run_id.clone(), states.clone(), &loaded);
            async move {
                let built =
                    build_value(options, loaded, &value, run_id, states, threads, reporter).await;
                (value, built)
            }
        })
        .buffer_unordered(threads);
    let mut counts = report::ValueCounts::default();
    let mut values = Vec::new();
    while let Some((value, built)) = builds.next().await {
        let result = match built {
            Ok(summary) => report::ValueResult {
                value,
                summary: Some(summary),
                error: None,
            },
            Err(error) => report::ValueResult {
                value,
                summary: None,
                error: Some(Arc::new(error)),
            },
        };
        counts.add(result.status());
        reporter.report(report::RunEvent::ValueFinished {
            result: &result,
            counts,
            total,
        });
        values.push(result);
    }
    drop(builds);
    values.sort_by(|a, b| a.value.cmp(&b.value));
    let mut vars = base.recorded_vars();
    vars.remove(&options.var);
    let summary = report::BackfillSummary {
        run_id,
        target: base.target.name.clone(),
        vars,
        var: options.var.clone(),
        select: options.prepare.select.clone(),
        exclude: options.prepare.exclude.clone(),
        values,
        elapsed: started.elapsed(),
    };
    reporter.report(report::RunEvent::BackfillFinished { summary: &summary });
    let path = base.run_results_path();
    report::write_backfill_results(&path, &summary).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    run_hooks(
        &base.project,
        &path,
        &summary.run_id,
        summary.success(),
        reporter,
    );
    Ok(summary)
}

/// The backfill's project, prepared with its first value (`first`); refused when its models do
/// not read the var it gives each value (they need another, or read none).
fn prepare_backfill(
    options: &BackfillOptions,
    loaded: Project,
    first: &PrepareOptions,
) -> Result<Prepared, Error> {
    let base = prepare_loaded(loaded, first).map_err(|error| {
        match ops::check_missing_vars(&options.var, render_problems(&error)) {
            Ok(()) => error,
            Err(wrong_var) => wrong_var.into(),
        }
    })?;
    ops::check_missing_vars(
        &options.var,
        base.render_problems.iter().map(|(_, problem)| problem),
    )?;
    // The selected models, and the ephemeral ones they inline.
    let mut models = BTreeSet::new();
    let mut pending: Vec<&str> = base
        .selected
        .iter()
        .filter_map(|node| match node {
            NodeId::Model(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    while let Some(name) = pending.pop() {
        if let Some(model) = base.graph.models.get(name)
            && models.insert(name)
        {
            pending.extend(
                model
                    .refs
                    .iter()
                    .map(|call| call.target.as_str())
                    .filter(|up| {
                        base.graph
                            .models
                            .get(*up)
                            .is_some_and(|m| m.config.is_ephemeral())
                    }),
            );
        }
    }
    let files: Vec<&project::ModelFile> = models
        .iter()
        .filter_map(|name| base.project.models.get(*name))
        .collect();
    ops::check_var_read(
        &base.renderer,
        &base.project,
        &files,
        &base.context,
        &options.var,
        &options.values,
    )?;
    Ok(base)
}

/// The render problems `error` reports.
fn render_problems(error: &Error) -> Vec<&render::RenderError> {
    match error {
        Error::Render(render::RenderError::Many { problems }) => problems.iter().collect(),
        Error::Render(problem) => vec![problem],
        Error::Check { problems } => problems.iter().flat_map(render_problems).collect(),
        _ => Vec::new(),
    }
}

/// Run the project's hooks for a run that ended, and report each.
fn run_hooks(
    project: &Project,
    run_results: &Path,
    run_id: &str,
    succeeded: bool,
    reporter: &dyn report::Reporter,
) {
    for hook in ops::run_hooks(project, run_results, run_id, succeeded) {
        reporter.report(report::RunEvent::HookFinished {
            hook: hook.hook,
            command: &hook.command,
            error: hook.error.as_deref(),
        });
    }
}

/// Prepare `project` (loaded once for the backfill), check and build the backfill's selection
/// with `value` given to its var, one of `dates_at_once` built at the same time.
async fn build_value(
    options: &BackfillOptions,
    project: &Project,
    value: &str,
    run_id: String,
    resume: Option<storage::TableStates>,
    dates_at_once: usize,
    reporter: &dyn report::Reporter,
) -> Result<report::RunSummary, Error> {
    let mut prepare_options = options.prepare.clone();
    prepare_options
        .vars
        .push(format!("{}={value}", options.var));
    let prepared = prepare_loaded(project.clone(), &prepare_options)?.complete()?;
    let plan = check(&prepared).await?.plan;
    // The dates built at once share the cores.
    let settings = BuildSettings {
        threads: Some(1),
        cores: Some((machine_cores() / dates_at_once).max(1)),
        run_id: Some(run_id),
        ..options.settings.clone()
    };
    Ok(prepared
        .run(&plan, Vec::new(), settings, resume, reporter)
        .await)
}

/// The machine's cores (what this process may be scheduled on).
fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What `dp retry` runs again.
pub enum Retry {
    /// The last run left nothing to run again.
    Nothing { command: String },
    /// The models of the last build that failed or were skipped, with its vars and target
    /// (and `--full-refresh`, when it had it).
    Build {
        options: PrepareOptions,
        full_refresh: bool,
    },
    /// The values of the last backfill that failed, with its selection, vars and target.
    Backfill(BackfillOptions),
}

/// What `dp retry` runs again: read from the last run's `run_results.json` of the project at
/// `project_dir` (never recomputed: the vars are those the run had).
pub fn retry(project_dir: &Path) -> Result<Retry, Error> {
    let root = project::find_root(project_dir)?;
    let project = project::load(&root)?;
    let path = project.target_dir().join("run_results.json");
    let run = report::read_run_results(&path).map_err(|error| {
        let unparsed = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<serde_json::Error>());
        let reason = match (error.kind(), unparsed) {
            (std::io::ErrorKind::NotFound, _) => "no run has been recorded there".to_string(),
            // The file is there, cut short or not what dp writes.
            (_, Some(json)) => format!("it is not a complete run record ({json})"),
            _ => error.to_string(),
        };
        ops::OpsError::RunResults {
            path: path.clone(),
            reason,
        }
    })?;
    // A var that held a secret was recorded masked: it cannot be given again.
    let masked: Vec<String> = run
        .vars
        .iter()
        .filter(|(_, value)| value.to_string().contains(report::MASK))
        .map(|(name, _)| name.clone())
        .collect();
    if !masked.is_empty() {
        return Err(ops::OpsError::MaskedVars {
            names: masked.join(", "),
        }
        .into());
    }
    let vars = match run.vars.is_empty() {
        true => Vec::new(),
        false => vec![serde_json::to_string(&run.vars).unwrap_or_default()],
    };
    let prepare = |select: Vec<String>, exclude: Vec<String>| PrepareOptions {
        project_dir: root.clone(),
        target: run.target.clone().filter(|t| !t.is_empty()),
        vars: vars.clone(),
        select,
        exclude,
    };
    Ok(match run.command.as_str() {
        // A dry run committed nothing: there is nothing to finish.
        "build" if run.dry_run => Retry::Nothing {
            command: "build --dry-run".into(),
        },
        "build" => {
            let again: Vec<String> = run
                .results
                .iter()
                .filter(|r| matches!(r.status.as_str(), "error" | "skipped"))
                .map(|r| r.model.clone())
                .collect();
            match again.is_empty() {
                true => Retry::Nothing {
                    command: run.command,
                },
                false => Retry::Build {
                    options: prepare(again, Vec::new()),
                    full_refresh: run.full_refresh,
                },
            }
        }
        "backfill" => {
            let values: Vec<String> = run
                .values
                .iter()
                .filter(|v| v.status == "failed")
                .map(|v| v.value.clone())
                .collect();
            match values.is_empty() {
                true => Retry::Nothing {
                    command: run.command,
                },
                false => Retry::Backfill(BackfillOptions {
                    prepare: prepare(run.select.clone(), run.exclude.clone()),
                    var: run.var.clone().unwrap_or_default(),
                    values,
                    ..Default::default()
                }),
            }
        }
        _ => Retry::Nothing {
            command: run.command,
        },
    })
}

/// Load, resolve the target, render, resolve and select: everything that needs no data. Models
/// that do not render are left out of the graph and listed in `render_problems`.
pub fn prepare(options: &PrepareOptions) -> Result<Prepared, Error> {
    prepare_loaded(load(options)?, options)
}

/// `dp deps`: install the packages the project in (or above) `project_dir` declares; none
/// when it has no `packages.yml`.
pub fn install_packages(project_dir: &std::path::Path) -> Result<Vec<Installed>, Error> {
    let root = project::find_root(project_dir)?;
    let paths = project::project_paths(&root)?;
    match project::read_packages_file(&root)? {
        Some(declared) => Ok(ops::deps(&root, &paths.packages, &declared)?),
        None => Ok(Vec::new()),
    }
}

/// Find and load the project of `options`.
fn load(options: &PrepareOptions) -> Result<Project, Error> {
    let root = project::find_root(&options.project_dir)?;
    Ok(stage("load", || project::load(&root))?)
}

/// [`prepare`] of a project already loaded.
fn prepare_loaded(mut project: Project, options: &PrepareOptions) -> Result<Prepared, Error> {
    let target = project.target(options.target.as_deref())?;
    let mut render_options = RenderOptions::from_var_args(&options.vars)?;
    // env_var() reads the process's variables, then the project's .env.
    render_options.env_vars.extend(project.dotenv.clone());
    let context = RenderContext {
        options: render_options,
        target: Some(TargetContext {
            name: target.name.clone(),
            schema: target.name.clone(),
            warehouse: target.warehouse.to_string(),
            kind: "dp",
            database: "datafusion",
        }),
        is_incremental: false,
        queries: None,
    };
    let renderer = Arc::new(Renderer::new(&project, &context)?);
    render::render_tests(&renderer, &mut project.data_tests, &context)?;
    let rendered = stage("render", || render::render(&renderer, &project, &context));
    tracing::debug!(templates = renderer.renders(), "rendered");
    // Config keys that mean nothing for a Delta table: each said once, at its first place.
    let mut ignored = project::IgnoredKeys::default();
    for model in rendered.project.models.values() {
        for key in &model.config.ignored {
            let (file, at) = project.config_key_place(&model.name, key);
            let why = "a dp model is a Delta table at <warehouse>/<model name>: warehouse schemas, aliases, grants, comments and hooks have no meaning there";
            ignored.add(key, why, file, at);
        }
    }
    project.warnings.extend(ignored.into_warnings());
    let graph = stage("resolve", || graph::resolve(&project, &rendered.project))?;
    let selected = graph::select(&graph, &options.select, &options.exclude)
        .map_err(|error| unrendered_selection(error, &project, &rendered, &graph))?;
    let left_out = left_out(&rendered.project, &graph);
    Ok(Prepared {
        project,
        stores: Stores::new(target.storage_options.clone()),
        target,
        renderer,
        context,
        graph,
        selected,
        selects_everything: options.select.is_empty() && options.exclude.is_empty(),
        render_problems: rendered.problems,
        left_out,
    })
}

/// The rendered models the graph left out because they read a model that did not render (or
/// another left out), each with the model it reads.
fn left_out(rendered: &render::RenderedProject, graph: &ModelGraph) -> BTreeMap<String, String> {
    rendered
        .models
        .values()
        .filter(|model| !graph.models.contains_key(&model.name))
        .filter_map(|model| {
            let missing = model
                .refs
                .iter()
                .find(|call| !graph.models.contains_key(&call.target))?;
            Some((model.name.clone(), missing.target.clone()))
        })
        .collect()
}

/// A selector that matched nothing because the models it names did not render, or read one
/// that did not: the render problems of those, in its place (else the selector's error).
fn unrendered_selection(
    error: graph::SelectError,
    project: &Project,
    rendered: &render::Rendered,
    graph: &graph::ModelGraph,
) -> Error {
    let graph::SelectError::NoMatch { pattern, .. } = &error else {
        return error.into();
    };
    let left_out = |name: &str| !graph.models.contains_key(name);
    let mut pending: Vec<&str> = project
        .models
        .values()
        .filter(|model| left_out(&model.name))
        .filter(|model| graph::names_model(pattern, &model.name, model.file.path()))
        .map(|model| model.name.as_str())
        .collect();
    // From each named model, up its references to the models that did not render.
    let (mut seen, mut unrendered) = (BTreeSet::new(), BTreeSet::new());
    while let Some(name) = pending.pop() {
        if !seen.insert(name) {
            continue;
        }
        match rendered.project.models.get(name) {
            Some(model) => pending.extend(
                model
                    .refs
                    .iter()
                    .map(|call| call.target.as_str())
                    .filter(|target| left_out(target)),
            ),
            None => {
                unrendered.insert(name);
            }
        }
    }
    let mut problems: Vec<Error> = rendered
        .problems
        .iter()
        .filter(|(model, _)| unrendered.contains(model.as_str()))
        .map(|(_, problem)| Error::Render(problem.clone()))
        .collect();
    match problems.len() {
        0 => error.into(),
        1 => problems.remove(0),
        _ => Error::Check { problems },
    }
}

/// A project that checks: a plan ready to run, and what the check found that works yet may not
/// be what was meant (a documented column the model does not output).
pub struct Checked {
    pub plan: compile::Plan,
    /// Diagnostics of warning severity.
    pub warnings: Vec<Error>,
    /// Selected models that cannot run (their template, SQL or declarations are wrong), each
    /// with its problem; and the models left out because they read one. None of them is in
    /// `plan`: a build fails the first, skips the others and builds the rest.
    pub failed: Vec<NotRun>,
    /// Problems of no one model (a source column's declared type): a build reports them and
    /// fails, after building what it can.
    pub errors: Vec<Error>,
}

/// A selected model the check keeps from running.
pub enum NotRun {
    /// Its template, SQL or declarations are wrong: `problem` says how.
    Failed { model: String, problem: Error },
    /// It reads `because`, a model that does not run.
    Skipped { model: String, because: String },
}

impl NotRun {
    /// The model kept from running.
    pub fn model(&self) -> &str {
        match self {
            NotRun::Failed { model, .. } | NotRun::Skipped { model, .. } => model,
        }
    }
}

impl Checked {
    /// Every problem at once (the warnings with them), or the plan when there is none.
    pub fn strict(mut self) -> Result<Checked, Error> {
        let mut problems: Vec<Error> = std::mem::take(&mut self.failed)
            .into_iter()
            .filter_map(|not_run| match not_run {
                NotRun::Failed { problem, .. } => Some(problem),
                NotRun::Skipped { .. } => None,
            })
            .flat_map(|problem| match problem {
                Error::Check { problems } => problems,
                problem => vec![problem],
            })
            .collect();
        problems.append(&mut self.errors);
        if problems.is_empty() {
            return Ok(self);
        }
        // With the errors, the warnings show too.
        problems.append(&mut self.warnings);
        Err(match problems.len() {
            1 => problems.remove(0),
            _ => Error::Check { problems },
        })
    }

    /// Keep only the nodes `keep` names (`dp seed`'s seeds, `dp snapshot`'s snapshots): the
    /// others are neither run nor reported, nor is what is no one node's.
    pub fn keep_only(&mut self, keep: impl Fn(&str) -> bool) {
        self.plan.models.retain(|model| keep(&model.name));
        self.failed.retain(|not_run| match not_run {
            NotRun::Failed { model, .. } => keep(model),
            NotRun::Skipped { .. } => false,
        });
        self.errors.clear();
    }

    /// Take out what keeps models from running, leaving the plan and the warnings.
    pub fn take_failures(&mut self) -> Failures {
        let mut failures = Failures {
            errors: std::mem::take(&mut self.errors),
            ..Default::default()
        };
        for not_run in std::mem::take(&mut self.failed) {
            match not_run {
                NotRun::Failed { model, problem } => failures.failed.push((model, problem)),
                NotRun::Skipped { model, because } => failures.skipped.push((model, because)),
            }
        }
        failures
    }
}

/// What keeps a command from covering every model it was asked for.
#[derive(Default)]
pub struct Failures {
    /// Each model whose template, SQL or declarations are wrong, with its problem.
    pub failed: Vec<(String, Error)>,
    /// Each model skipped because it reads one that does not run, with that model.
    pub skipped: Vec<(String, String)>,
    /// Problems of no one model (a source column's declared type).
    pub errors: Vec<Error>,
}

impl Failures {
    /// Whether the command covered everything.
    pub fn is_empty(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.errors.is_empty()
    }

    /// The models failed or skipped.
    fn models(&self) -> BTreeSet<String> {
        let failed = self.failed.iter().map(|(model, _)| model.clone());
        failed
            .chain(self.skipped.iter().map(|(model, _)| model.clone()))
            .collect()
    }
}

/// Plan every model from schemas alone, without reading data, and report every problem of the
/// selected models at once (with the warnings, when there are problems). Returns the plan of
/// the selected models, ready to run.
pub async fn check(prepared: &Prepared) -> Result<Checked, Error> {
    check_each(prepared).await.strict()
}

/// [`check`], each model on its own: the selected models that have problems (and those that
/// read them) are listed as not to run, and the others planned.
pub async fn check_each(prepared: &Prepared) -> Checked {
    let mut checked = check_every_model(prepared).await;
    let selected = |name: &str| prepared.selected.contains(&NodeId::Model(name.to_string()));
    checked.plan.models.retain(|model| selected(&model.name));
    // A model that did not render cannot be selected: it is one of a run of everything.
    checked
        .failed
        .retain(|not_run| selected(not_run.model()) || prepared.selects_everything);
    checked
}

/// [`check`] of every model: the plan of those that check, the problems of the others.
async fn check_every_model(prepared: &Prepared) -> Checked {
    let every_node: BTreeSet<NodeId> = prepared.graph.order().iter().cloned().collect();
    let (mut plan, plan_problems) = stage("plan", || compile::plan(&prepared.graph, &every_node));
    let selected = |name: &str| prepared.selected.contains(&NodeId::Model(name.to_string()));
    let started = std::time::Instant::now();
    let findings = check::check(
        prepared.unit_test_inputs(),
        &plan,
        &prepared.stores,
        selected,
    )
    .await;
    stage_finished("check", started);
    // Every stage's problems at once: a model that did not render or plan is left out of the
    // later stages, which still look at every other model.
    let mut problems: BTreeMap<String, Vec<Error>> = BTreeMap::new();
    let (mut warnings, mut errors) = (Vec::new(), Vec::new());
    for (name, problem) in &prepared.render_problems {
        let problem = Error::Render(problem.clone());
        match prepared.project.models.contains_key(name) {
            true => problems.entry(name.clone()).or_default().push(problem),
            // A singular test's.
            false => errors.push(problem),
        }
    }
    for problem in plan_problems {
        problems
            .entry(problem.model().to_string())
            .or_default()
            .push(problem.into());
    }
    for finding in findings {
        let problem = Error::Checked(finding.problem);
        if miette::Diagnostic::severity(&problem) == Some(miette::Severity::Warning) {
            warnings.push(problem);
        } else if let Some(model) = finding.model {
            problems.entry(model).or_default().push(problem);
        } else {
            errors.push(problem);
        }
    }
    let mut failed: Vec<NotRun> = problems
        .into_iter()
        .map(|(model, mut problems)| NotRun::Failed {
            model,
            problem: match problems.len() {
                1 => problems.remove(0),
                _ => Error::Check { problems },
            },
        })
        .collect();
    // What reads a model that does not run does not run either: in the plan's order, each
    // after what it reads.
    let mut not_running: BTreeSet<String> = failed.iter().map(|f| f.model().to_string()).collect();
    not_running.extend(prepared.left_out.keys().cloned());
    failed.extend(
        prepared
            .left_out
            .iter()
            .map(|(model, because)| NotRun::Skipped {
                model: model.clone(),
                because: because.clone(),
            }),
    );
    plan.models.retain(|model| {
        if not_running.contains(&model.name) {
            return false;
        }
        let Some(because) = model.upstream.iter().find(|u| not_running.contains(*u)) else {
            return true;
        };
        failed.push(NotRun::Skipped {
            model: model.name.clone(),
            because: because.clone(),
        });
        not_running.insert(model.name.clone());
        false
    });
    Checked {
        plan,
        warnings,
        failed,
        errors,
    }
}

/// Run one stage and log how long it took (at debug level: `-vv`).
fn stage<T>(name: &'static str, run: impl FnOnce() -> T) -> T {
    let started = std::time::Instant::now();
    let result = run();
    stage_finished(name, started);
    result
}

fn stage_finished(name: &'static str, started: std::time::Instant) {
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(stage = name, elapsed_ms, "stage finished");
}

/// Write each planned model's compiled SQL to `<target dir>/compiled/<path of the model>` (a
/// snapshot's to `<its file's folder>/<its name>.sql`: a file may define several), leaving a
/// file that already holds it untouched; returns the files, in the plan's order.
pub fn write_compiled(target_dir: &Path, plan: &compile::Plan) -> Result<Vec<PathBuf>, Error> {
    plan.models
        .par_iter()
        .map(|model| {
            let relative = match model.config.snapshot {
                Some(_) => model
                    .file
                    .path()
                    .with_file_name(format!("{}.sql", model.name)),
                None => model.file.path().to_path_buf(),
            };
            let path = target_dir.join("compiled").join(relative);
            let text = format!("{}\n", report::mask(model.sql.trim_end()));
            let write = || -> std::io::Result<()> {
                if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
                    return Ok(());
                }
                std::fs::create_dir_all(path.parent().expect("a compiled file has a folder"))?;
                std::fs::write(&path, &text)
            };
            write().map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project of `files` (path, text) in a temporary folder.
    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn prepare_in(dir: &Path, target: Option<&str>) -> Prepared {
        prepare(&PrepareOptions {
            project_dir: dir.to_path_buf(),
            target: target.map(str::to_string),
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn target_name_and_warehouse_render_per_target() {
        let dir = project(&[
            (
                "dp_project.yml",
                "name: t\ntargets:\n  dev: {warehouse: wh_dev}\n  prod: {warehouse: wh_prod}\n",
            ),
            (
                "models/m.sql",
                "select '{{ target.name }}' as target, '{{ target.warehouse }}' as warehouse",
            ),
        ]);
        for name in ["dev", "prod"] {
            let prepared = prepare_in(dir.path(), Some(name));
            let sql = &prepared.graph.models["m"].sql;
            assert!(
                sql.starts_with(&format!("select '{name}' as target")),
                "{sql}"
            );
            assert!(sql.contains(&format!("/wh_{name}/' as warehouse")), "{sql}");
        }
    }

    #[test]
    fn the_jinja_dbt_projects_use_renders() {
        let dir = project(&[
            (
                "dbt_project.yml",
                "name: shop\nprofile: shop\nvars: {shop: {n: 3}, other: {n: 9}}\n",
            ),
            (
                "macros/cents.sql",
                "{% macro cents_to_dollars(column) %}{{ return('(' ~ column ~ ' / 100.0)') }}{% endmacro %}\n\
                 {% macro column_list() %}ignored {{ return(['a', 'b']) }}{% endmacro %}\n\
                 {% macro columns_of(kind) %}{% set found = column_list() %}{{ return({'kind': kind, 'columns': found}) }}{% endmacro %}",
            ),
            (
                "models/m.sql",
                "{{ config(materialized='incremental', unique_key='id') }}\n\
                 {%- set columns = columns_of('x')['columns'] -%}\n\
                 {{ log('rendering ' ~ this.identifier, info=True) }}\n\
                 select {% for c in columns %}{{ adapter.quote(c) }}, {% endfor %}\n\
                 '{{ target.schema }}' as s, {{ var('n') }} as n, {{ cents_to_dollars('x') }} as d from {{ this }}\n\
                 {% if is_incremental() %}where true{% endif %}",
            ),
        ]);
        let prepared = prepare_in(dir.path(), None);
        assert!(
            prepared.render_problems.is_empty(),
            "{:?}",
            prepared.render_problems
        );
        let sql = &prepared.graph.models["m"].sql;
        assert_eq!(
            sql.trim(),
            "select \"a\", \"b\", \n'default' as s, 3 as n, (x / 100.0) as d from \"m\""
        );
        let incremental = RenderContext {
            is_incremental: true,
            ..prepared.context.clone()
        };
        let model = &prepared.project.models["m"];
        let again = prepared
            .renderer
            .render_model(&prepared.project, model, &incremental)
            .unwrap();
        assert!(
            again.sql.trim_end().ends_with("where true"),
            "{}",
            again.sql
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dp_check_warns_where_integers_are_divided_or_fractions_truncated_and_only_there() {
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            ("models/m.sql", "select 7 as amount, 2.5 as rate"),
            (
                "models/n.sql",
                "select amount / 100 as a, amount / 100.0 as b, rate / 2 as c,\n\
                 cast(amount as double) / 2 as d, cast(rate as int) as e, rate::bigint as f,\n\
                 cast(round(rate) as int) as g, cast(amount as int) as h, cast(rate as double) as i\n\
                 from {{ ref('m') }}\nwhere amount / 3 > 0",
            ),
        ]);
        let prepared = prepare_in(dir.path(), None);
        let checked = check(&prepared).await.unwrap();
        let text = prepared.project.models["n"].file.text();
        let found: Vec<(&str, String, String)> = checked
            .warnings
            .iter()
            .map(|warning| {
                let (code, at, help) = match warning {
                    Error::Checked(check::CheckError::IntegerDivision(division)) => {
                        ("division", division.at, &division.help)
                    }
                    Error::Checked(check::CheckError::TruncatingCast(cast)) => {
                        ("cast", cast.at, &cast.help)
                    }
                    _ => panic!("{warning:?}"),
                };
                let line = text[..at.offset()].lines().count();
                let place = format!("{line}:{}", &text[at.offset()..at.offset() + at.len()]);
                (code, place, help.clone())
            })
            .collect();
        let places: Vec<(&str, &str)> = found.iter().map(|(c, p, _)| (*c, p.as_str())).collect();
        assert_eq!(
            places,
            [
                ("division", "1:amount"),
                ("cast", "2:rate"),
                ("cast", "2:rate"),
                ("division", "5:amount")
            ],
            "{found:?}"
        );
        assert!(found[0].2.contains("amount / 100.0"), "{found:?}");
        assert!(found[1].2.contains("cast(round(rate) as int)"), "{found:?}");
        assert!(
            found[2].2.contains("cast(round(rate) as bigint)"),
            "{found:?}"
        );
        assert!(found[3].2.contains("amount / 3.0"), "{found:?}");
        assert_eq!(checked.plan.models.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dp_check_plans_the_incremental_branch_too() {
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            (
                "models/orders.sql",
                "{{ config(materialized='incremental', unique_key='id') }}\nselect 1 as id\n\
                 {% if is_incremental() %}where id > (select max(idd) from {{ this }}){% endif %}",
            ),
        ]);
        let prepared = prepare_in(dir.path(), None);
        let Err(problem) = check(&prepared).await else {
            panic!("the incremental branch's unknown column was not found");
        };
        let text = format!("{problem:?}");
        assert!(text.contains("column 'idd' not found"), "{text}");
        // Pointed at in the model's file.
        let label = miette::Diagnostic::labels(&problem)
            .unwrap()
            .next()
            .unwrap();
        let source = std::fs::read_to_string(dir.path().join("models/orders.sql")).unwrap();
        assert_eq!(&source[label.offset()..label.offset() + label.len()], "idd");

        // A var only the incremental runs give is no problem for a check without it.
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            (
                "models/orders.sql",
                "{{ config(materialized='incremental') }}\nselect 1 as id\n\
                 {% if is_incremental() %}where id > {{ var('after') }}{% endif %}",
            ),
        ]);
        assert!(check(&prepare_in(dir.path(), None)).await.is_ok());
    }

    #[test]
    fn a_model_disabled_in_its_sql_is_left_out_and_its_readers_say_why() {
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            (
                "models/old.sql",
                "{{ config(enabled=false) }}\nselect broken from nowhere",
            ),
            ("models/reads_old.sql", "select * from {{ ref('old') }}"),
            ("models/fine.sql", "select 1 as x"),
        ]);
        let prepared = prepare_in(dir.path(), None);
        assert_eq!(prepared.selected_nodes(), ["fine"]);
        let [(_, render::RenderError::DisabledRef { model, target, .. })] =
            &prepared.render_problems[..]
        else {
            panic!("{:?}", prepared.render_problems);
        };
        assert_eq!((model.as_str(), target.as_str()), ("reads_old", "old"));
    }

    #[test]
    fn a_macro_file_may_use_vars_and_the_target_at_its_top_level() {
        let dir = project(&[
            ("dp_project.yml", "name: t\nvars: {schema: analytics}\n"),
            (
                "macros/names.sql",
                "{% set prefix = var('schema') ~ '_' ~ target.name %}{% macro named(x) %}'{{ prefix }}_{{ x }}'{% endmacro %}",
            ),
            ("models/m.sql", "select {{ named('a') }} as name"),
        ]);
        let prepared = prepare_in(dir.path(), None);
        assert!(
            prepared.graph.models["m"]
                .sql
                .contains("'analytics_default_a'"),
            "{}",
            prepared.graph.models["m"].sql
        );
    }

    #[test]
    fn a_macro_file_needing_a_missing_var_still_exports_its_macros() {
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            (
                "macros/m.sql",
                "{% set day = var('day') %}\n{%- macro today() %}'{{ day }}'{% endmacro %}\n{% macro one() %}1{% endmacro %}",
            ),
            ("models/uses_one.sql", "select {{ one() }} as x"),
            ("models/uses_today.sql", "select {{ today() }} as d"),
        ]);
        let prepared = prepare(&PrepareOptions {
            project_dir: dir.path().to_path_buf(),
            ..Default::default()
        })
        .unwrap();
        // Loading does not fail: each model that imports the macros reports the missing var
        // at its own render (dp check lists them; dp vacuum needs none of them).
        assert_eq!(prepared.render_problems.len(), 2);
        assert!(
            prepared
                .render_problems
                .iter()
                .all(|(_, p)| matches!(p, render::RenderError::MissingVar { .. })),
            "{:?}",
            prepared.render_problems
        );
        let with_var = prepare(&PrepareOptions {
            project_dir: dir.path().to_path_buf(),
            vars: vec!["day=2024-01-15".into()],
            ..Default::default()
        })
        .unwrap();
        assert!(with_var.render_problems.is_empty());
        assert!(
            with_var.graph.models["uses_today"]
                .sql
                .contains("'2024-01-15'")
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dp_check_finds_a_column_delta_cannot_store_and_reads_tables_as_stored() {
        let dir = project(&[
            ("dp_project.yml", "name: t\n"),
            ("models/times.sql", "select cast('10:00:00' as time) as t"),
            (
                "models/zoned.sql",
                "select arrow_cast(now(), 'Timestamp(Nanosecond, Some(\"+00:00\"))') as ts",
            ),
            (
                "models/reads_zoned.sql",
                "select ts from {{ ref('zoned') }}",
            ),
        ]);
        let prepared = prepare_in(dir.path(), None);
        let Err(Error::Checked(check::CheckError::Unstorable { model, .. })) =
            check(&prepared).await
        else {
            panic!("the time column was not reported alone");
        };
        assert_eq!(model, "times");
    }

    #[test]
    fn config_layers_folder_then_properties_then_config_call() {
        let dir = project(&[
            (
                "dp_project.yml",
                "name: t\nmodels:\n  +tags: [shop]\n  staging:\n    +materialized: ephemeral\n    +tags: staged\n",
            ),
            ("models/staging/folder_only.sql", "select 1 as id"),
            ("models/staging/yaml_wins.sql", "select 1 as id"),
            (
                "models/staging/sql_wins.sql",
                "{{ config(materialized='table') }}select 1 as id",
            ),
            (
                "models/staging/props.yml",
                "models:\n  - name: yaml_wins\n    config: {materialized: table}\n  - name: sql_wins\n    config: {materialized: ephemeral}\n",
            ),
            ("models/top.sql", "select 1 as id"),
        ]);
        let prepared = prepare_in(dir.path(), None);
        let config = |name: &str| prepared.graph.models[name].config.clone();
        assert!(config("folder_only").is_ephemeral());
        assert!(!config("yaml_wins").is_ephemeral());
        assert!(!config("sql_wins").is_ephemeral());
        let tags: Vec<String> = config("folder_only").tags.into_iter().collect();
        assert_eq!(tags, ["shop", "staged"]);
        assert_eq!(config("top").tags.into_iter().collect::<Vec<_>>(), ["shop"]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_unit_test_renders_its_own_model_and_the_ephemerals_it_reads_only() {
        let mut files = vec![
            ("dp_project.yml", "name: t\n".to_string()),
            (
                "models/eph.sql",
                "{{ config(materialized='ephemeral') }}\nselect id from {{ ref('base') }}".into(),
            ),
            (
                "models/tested.sql",
                "select count(*) as n from {{ ref('eph') }} where id > {{ var('min') }}".into(),
            ),
            (
                "models/tests.yml",
                "unit_tests:\n  - name: counts\n    model: tested\n    overrides: {vars: {min: 1}}\n    given:\n      - input: ref('base')\n        rows: [{id: 1}, {id: 2}, {id: 3}]\n    expect:\n      rows: [{n: 2}]\n".into(),
            ),
        ];
        let others: Vec<(String, String)> = (0..20)
            .map(|i| {
                (
                    format!("models/other_{i}.sql"),
                    "select 1 as id".to_string(),
                )
            })
            .collect();
        files.push(("models/base.sql", "select 1 as id".into()));
        let mut all: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        all.extend(others.iter().map(|(p, t)| (p.as_str(), t.as_str())));
        let dir = project(&all);
        let prepared = prepare(&PrepareOptions {
            project_dir: dir.path().to_path_buf(),
            vars: vec!["min=0".into()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            prepared.renderer.renders(),
            23,
            "the run renders every model once"
        );

        let renderer = Arc::new(Renderer::new(&prepared.project, &prepared.context).unwrap());
        let inputs = audit::UnitTestInputs {
            renderer: &renderer,
            ..prepared.unit_test_inputs()
        };
        let result = audit::run_unit_test(inputs, &prepared.project.unit_tests[0]).await;
        assert_eq!(
            result.status,
            report::TestStatus::Pass,
            "{:?}",
            result.detail
        );
        assert_eq!(
            renderer.renders(),
            2,
            "`tested` and the ephemeral `eph`, nothing else"
        );
    }
}
