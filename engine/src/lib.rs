//! dp's engine: load a SQL-first data project, render its templates, resolve the DAG, select,
//! plan, execute in DataFusion and publish each model as a Delta Lake table.
//!
//! The stages run in this order, each a module: [`project`] → [`render`] → [`graph`] → [`plan`]
//! → [`execute`] (with [`storage`]) → [`report`]. [`prepare`] chains the stages that need no data.

// Diagnostics carry their source text and spans; they are built only on the error path, so their
// size costs nothing where it matters and boxing them would only add noise.
#![allow(clippy::result_large_err)]

pub mod audit;
mod error;
pub mod execute;
pub mod graph;
pub mod ops;
pub mod plan;
pub mod project;
pub mod render;
pub mod report;
pub mod source;
pub mod storage;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use error::Error;
use graph::{ModelGraph, NodeId};
use project::Project;
use render::RenderOptions;

/// What to load and select.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// A folder inside the project (the project is the nearest folder holding `dp_project.yml`).
    pub project_dir: PathBuf,
    /// `--vars` arguments.
    pub vars: Vec<String>,
    /// `--select` arguments (empty: everything).
    pub select: Vec<String>,
    /// `--exclude` arguments.
    pub exclude: Vec<String>,
}

/// A loaded, rendered and resolved project with the nodes selected.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub project: Project,
    pub graph: ModelGraph,
    pub selected: BTreeSet<NodeId>,
    /// The run's `--vars`.
    pub render_options: RenderOptions,
}

/// Load, render, resolve and select: everything that needs no data.
pub fn prepare(options: &PrepareOptions) -> Result<Prepared, Error> {
    let root = project::find_root(&options.project_dir)?;
    let project = stage("load", || project::load(&root))?;
    let render_options = RenderOptions::from_var_args(&options.vars)?;
    let rendered = stage("render", || render::render(&project, &render_options))?;
    let graph = stage("resolve", || graph::resolve(&project, &rendered))?;
    let selected = graph::select(&graph, &options.select, &options.exclude)?;
    Ok(Prepared {
        project,
        graph,
        selected,
        render_options,
    })
}

/// Plan every model from schemas alone, without reading data, and report every problem of the
/// selected models at once. Returns the plan of the selected models, ready to run.
pub async fn check(prepared: &Prepared) -> Result<plan::Plan, Error> {
    let every_node: BTreeSet<NodeId> = prepared.graph.order().iter().cloned().collect();
    let mut plan = stage("plan", || plan::plan(&prepared.graph, &every_node))?;
    let selected = |name: &str| prepared.selected.contains(&NodeId::Model(name.to_string()));
    let started = std::time::Instant::now();
    let mut problems = plan::check(&prepared.project, &plan, selected).await;
    stage_finished("check", started);
    match problems.len() {
        0 => {
            plan.models.retain(|model| selected(&model.name));
            Ok(plan)
        }
        1 => Err(Error::Checked(problems.remove(0))),
        _ => Err(Error::Check { problems }),
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

/// Write each planned model's compiled SQL to `target/compiled/<path of the model>`, leaving a
/// file that already holds it untouched; returns the files, in the plan's order.
pub fn write_compiled(root: &Path, plan: &plan::Plan) -> Result<Vec<PathBuf>, Error> {
    plan.models
        .par_iter()
        .map(|model| {
            let path = root.join("target").join("compiled").join(model.file.path());
            let text = format!("{}\n", model.sql.trim_end());
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
