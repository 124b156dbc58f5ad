//! DOCS: the project's documentation from its plans, without building anything: `manifest.json`
//! (every node as declared), `catalog.json` (planned columns and types, and each existing Delta
//! table's figures from its log), `lineage.json` (column lineage read off each model's logical
//! plan) and `docs/index.html`, one page that opens offline. In: the rendered graph. Out: files
//! under `target/`, and the lineage for `dp lineage`.

mod catalog;
mod lineage;
mod manifest;
mod site;
mod trees;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::common::TableReference;
use datafusion::logical_expr::TableScan;
use futures::FutureExt;
use miette::SourceSpan;
use serde_json::{Value, json};

pub use lineage::{Clause, How, ModelLineage, UpstreamColumn};
pub use trees::{
    Direction, LineageError, LineageReport, LineageTree, NodeKind, RowFilter, lineage_report,
};

use crate::check::empty_table;
use crate::compile::Plan;
use crate::graph::{ModelGraph, NodeId};
use crate::project::{Project, Target};
use crate::session::{
    Embedded, QueryEngine, SourceScans, Stores, Warehouse, register_relation, source_reference,
};

/// What the docs are generated from.
pub struct DocsInputs<'a> {
    pub project: &'a Project,
    /// The rendered models.
    pub graph: &'a ModelGraph,
    /// The nodes whose columns and lineage are documented (the manifest has every node).
    pub selected: &'a BTreeSet<NodeId>,
    /// Every model's compiled SQL.
    pub compiled: &'a Plan,
    /// Where the models' tables are.
    pub target: &'a Target,
    pub stores: &'a Stores,
    /// Renders a model that asks `execute` again, with its queries answered.
    pub renders: Renders<'a>,
}

/// What renders the project's models: a model that asks `execute` is rendered again as it
/// will run, its queries answered by the planning session (each table it reads empty, of its
/// planned schema), as `dp check` does.
#[derive(Clone, Copy)]
pub struct Renders<'a> {
    pub renderer: &'a crate::render::Renderer,
    /// The run's vars and target.
    pub context: &'a crate::render::RenderContext,
}

/// The files `dp docs generate` wrote, and what they hold.
#[derive(Debug)]
pub struct Generated {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// Models in the catalog (the selected ones).
    pub models: usize,
    /// Sources in the catalog.
    pub sources: usize,
    /// Columns of the models and sources in the catalog.
    pub columns: usize,
    /// Models that exist as Delta tables.
    pub tables: usize,
}

/// Docs that cannot be generated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum DocsError {
    #[error("{message}")]
    #[diagnostic(
        code(dp::unknown_doc),
        help("define it in a Markdown file under models/: {{% docs name %}} ... {{% enddocs %}}")
    )]
    UnknownDoc {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("in this description")]
        at: SourceSpan,
    },

    #[error("{message}")]
    #[diagnostic(
        code(dp::description),
        help("a description is Markdown; it may pull in docs blocks with {{{{ doc('name') }}}}")
    )]
    Description {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("in this description")]
        at: SourceSpan,
    },

    #[error("cannot write {}", path.display())]
    #[diagnostic(code(dp::write))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every node's planned columns and lineage, from one planning pass over the project.
#[derive(Debug, Default)]
pub struct ProjectLineage {
    /// Each model's and source's output columns.
    pub schemas: BTreeMap<NodeId, SchemaRef>,
    /// Each model's lineage (ephemeral models included, as nodes of their own).
    pub lineage: BTreeMap<NodeId, ModelLineage>,
    /// What could not be planned or read.
    pub errors: Vec<String>,
}

/// Plan every model of `graph` from its own rendered SQL, each against empty tables of the
/// models and sources it reads: every node's output schema and one-hop lineage. A model whose
/// parent could not be planned is not planned.
pub async fn plan_lineage(
    project: &Project,
    graph: &ModelGraph,
    stores: &Stores,
    renders: Renders<'_>,
) -> ProjectLineage {
    let runtime = Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default());
    let session = Embedded.project_session(&runtime, project);
    let warehouse = Warehouse::for_planning(stores);
    let scans = SourceScans::default();
    let mut planned = ProjectLineage::default();
    // A scan names the node it reads by the table it scans (a CTE may shadow a model's name).
    let mut relations: HashMap<usize, NodeId> = HashMap::new();
    let address = |provider: &Arc<dyn TableProvider>| Arc::as_ptr(provider) as *const () as usize;
    for id in project.sources.keys() {
        let relation = NodeId::Source(id.clone());
        let registered = register_relation(
            &Embedded,
            &session,
            &relation,
            &warehouse,
            &project.sources,
            &scans,
        )
        .await;
        let provider = match registered {
            Ok(_) => session.table_provider(source_reference(id)).await,
            Err(error) => {
                planned.errors.push(format!("source `{id}`: {error}"));
                continue;
            }
        };
        if let Ok(provider) = provider {
            planned.schemas.insert(relation.clone(), provider.schema());
            relations.insert(address(&provider), relation);
        }
    }
    let state = session.state();
    for node in graph.order() {
        let NodeId::Model(name) = node else { continue };
        let model = &graph.models[name];
        let readable = model.refs.iter().all(|r| {
            planned
                .schemas
                .contains_key(&NodeId::Model(r.target.clone()))
        });
        if !readable {
            continue;
        }
        let sql = match model.runs_queries {
            false => model.sql.clone(),
            true => {
                let context = crate::session::executing(renders.context, &session);
                renders
                    .renderer
                    .render_model(project, &project.models[name], &context)
                    .map_or_else(|_| model.sql.clone(), |rendered| rendered.sql)
            }
        };
        if let Err(message) = crate::compile::depth::check_sql(&sql) {
            planned.errors.push(format!("model `{name}`: {message}"));
            continue;
        }
        // A panic in DataFusion's planner is this model's problem.
        let planning = std::panic::AssertUnwindSafe(crate::session::plan_read_query(&state, &sql));
        let logical = match planning.catch_unwind().await {
            Ok(Ok(logical)) => logical,
            Ok(Err(error)) => {
                let message = error.strip_backtrace();
                planned.errors.push(format!("model `{name}`: {message}"));
                continue;
            }
            Err(_) => {
                let message = "DataFusion panicked planning it";
                planned.errors.push(format!("model `{name}`: {message}"));
                continue;
            }
        };
        let schema: SchemaRef = Arc::new(logical.schema().as_arrow().clone());
        // Readers see a stored model as a build stores it, an ephemeral one as planned.
        let table = match model.config.is_ephemeral() {
            true => Ok(empty_table(schema.clone())),
            false => crate::check::stored_empty_table(&schema),
        };
        let registered = table.and_then(|table| {
            let provider: Arc<dyn TableProvider> = table;
            session
                .register_table(TableReference::bare(name.as_str()), provider.clone())
                .map_err(|e| e.strip_backtrace())?;
            Ok(provider)
        });
        match registered {
            Ok(provider) => {
                relations.insert(address(&provider), node.clone());
            }
            Err(message) => {
                planned.errors.push(format!("model `{name}`: {message}"));
                continue;
            }
        }
        let relation = |scan: &TableScan| {
            let provider = source_as_provider(&scan.source).ok()?;
            relations.get(&address(&provider)).cloned()
        };
        planned
            .lineage
            .insert(node.clone(), lineage::trace(&logical, &relation));
        planned.schemas.insert(node.clone(), schema);
    }
    planned
}

/// `dp docs generate`: plan the project, then write the manifest, the catalog, the lineage and
/// the page under `<project>/target/`.
pub async fn generate(inputs: &DocsInputs<'_>) -> Result<Generated, DocsError> {
    let planned = plan_lineage(inputs.project, inputs.graph, inputs.stores, inputs.renders).await;
    let metadata = metadata(inputs);
    let manifest = manifest::manifest(inputs, &metadata)?;
    let tables = catalog::tables(inputs).await;
    let catalog = catalog::catalog(inputs, &planned, &tables, &metadata);
    let lineage = lineage_json(inputs, &planned, &metadata);
    let target = inputs.project.target_dir();
    let run_results = std::fs::read(target.join("run_results.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .unwrap_or(Value::Null);
    // Each file is serialized once (compact, as dbt writes its artifacts), and the page embeds
    // the same text.
    let [manifest_text, catalog_text, lineage_text, run_results_text] =
        [&manifest, &catalog, &lineage, &run_results]
            .map(|value| serde_json::to_string(value).expect("JSON values serialize"));
    let data = format!(
        r#"{{"manifest":{manifest_text},"catalog":{catalog_text},"lineage":{lineage_text},"run_results":{run_results_text}}}"#
    );
    let page = site::page(&inputs.project.config.name, &data);
    let mut files = Vec::new();
    for (name, text) in [
        ("manifest.json", &manifest_text),
        ("catalog.json", &catalog_text),
        ("lineage.json", &lineage_text),
        ("docs/index.html", &page),
    ] {
        let path = target.join(name);
        write_file(&path, text)?;
        files.push(path);
    }
    Ok(Generated {
        files,
        models: catalog["nodes"].as_object().map_or(0, |nodes| nodes.len()),
        sources: catalog["sources"]
            .as_object()
            .map_or(0, |nodes| nodes.len()),
        columns: ["nodes", "sources"]
            .iter()
            .filter_map(|kind| catalog[kind].as_object())
            .flat_map(|nodes| nodes.values())
            .filter_map(|node| node["columns"].as_object())
            .map(|columns| columns.len())
            .sum(),
        tables: tables.found.len(),
    })
}

/// The `metadata` object at the top of every file.
fn metadata(inputs: &DocsInputs<'_>) -> Value {
    json!({
        "dp_version": env!("CARGO_PKG_VERSION"),
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "project_name": inputs.project.config.name,
        "target": inputs.target.name,
        "invocation_id": uuid::Uuid::new_v4().to_string(),
        // A YAML var keyed by something other than a string has no JSON form: show it as text.
        "vars": serde_json::to_value(&inputs.renders.context.options.vars)
            .unwrap_or_else(|_| json!(format!("{:?}", inputs.renders.context.options.vars))),
    })
}

/// `lineage.json`: every selected model's (and every source's) columns with what each is
/// derived from, and the columns that decide its rows.
fn lineage_json(inputs: &DocsInputs<'_>, planned: &ProjectLineage, metadata: &Value) -> Value {
    let project = inputs.project;
    let mut nodes = serde_json::Map::new();
    for (node, schema) in &planned.schemas {
        let NodeId::Source(id) = node else { continue };
        let columns: serde_json::Map<String, Value> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), json!({"derived_from": []})))
            .collect();
        nodes.insert(
            project.unique_id(node),
            json!({"resource_type": "source", "name": id, "materialized": null,
                   "columns": columns, "row_filters": []}),
        );
    }
    let upstream =
        |column: &UpstreamColumn| (project.unique_id(&column.node), column.column.clone());
    for (node, model_lineage) in &planned.lineage {
        let NodeId::Model(name) = node else { continue };
        if !inputs.selected.contains(node) {
            continue;
        }
        let columns: serde_json::Map<String, Value> = model_lineage
            .columns
            .iter()
            .map(|(column, origins)| {
                let derived: Vec<Value> = origins
                    .iter()
                    .map(|(from, how)| {
                        let (node, column) = upstream(from);
                        json!({"node": node, "column": column, "how": how})
                    })
                    .collect();
                (column.clone(), json!({"derived_from": derived}))
            })
            .collect();
        let row_filters: Vec<Value> = model_lineage
            .row_filters
            .iter()
            .map(|(from, clause)| {
                let (node, column) = upstream(from);
                json!({"node": node, "column": column, "clause": clause})
            })
            .collect();
        nodes.insert(
            project.unique_id(node),
            json!({
                "resource_type": inputs.graph.models[name].config.resource_type(),
                "name": name,
                "materialized": inputs.graph.models[name].config.materialized.to_string(),
                "columns": columns,
                "row_filters": row_filters,
            }),
        );
    }
    json!({"metadata": metadata, "nodes": nodes})
}

/// Write a file whole or not at all.
fn write_file(path: &Path, text: &str) -> Result<(), DocsError> {
    crate::report::write_atomically(path, crate::report::mask(text).as_bytes()).map_err(|source| {
        DocsError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
