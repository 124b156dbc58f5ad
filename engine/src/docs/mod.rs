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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use miette::SourceSpan;
use serde_json::{Value, json};

pub use lineage::{Clause, How, ModelLineage, UpstreamColumn};
pub use trees::{Direction, LineageError, LineageReport, LineageTree, RowFilter, report};

use crate::compile::Plan;
use crate::graph::{ModelGraph, NodeId};
use crate::project::{Project, Target};
use crate::session::{SourceScans, Stores, Warehouse, new_session, register_relation};

/// What the docs are generated from.
pub struct DocsInputs<'a> {
    pub project: &'a Project,
    pub graph: &'a ModelGraph,
    /// The nodes whose columns and lineage are documented (the manifest has every node).
    pub selected: &'a BTreeSet<NodeId>,
    /// Every model's compiled SQL.
    pub compiled: &'a Plan,
    pub target: &'a Target,
    pub stores: &'a Stores,
    pub vars: &'a BTreeMap<String, serde_yaml::Value>,
}

/// The files `dp docs generate` wrote, and what they hold.
#[derive(Debug)]
pub struct Generated {
    pub files: Vec<PathBuf>,
    pub models: usize,
    pub sources: usize,
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
    Description {
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("in this description")]
        at: SourceSpan,
    },

    #[error("cannot write {}", path.display())]
    #[diagnostic(code(dp::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Every node's planned columns and lineage, from one planning pass over the project.
#[derive(Debug, Default)]
pub struct Planned {
    /// Each model's and source's output columns.
    pub schemas: BTreeMap<NodeId, SchemaRef>,
    /// Each model's lineage (ephemeral models included, as nodes of their own).
    pub lineage: BTreeMap<NodeId, ModelLineage>,
    /// What could not be planned.
    pub errors: Vec<String>,
}

/// Plan every model of `graph` from its own rendered SQL, each against empty tables of the
/// models and sources it reads: the models' output schemas and their one-hop lineage.
pub async fn plan(project: &Project, graph: &ModelGraph) -> Planned {
    let runtime = Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default());
    let session = new_session(&runtime);
    let warehouse = Warehouse::at(url::Url::parse("memory:///").expect("a valid URL"));
    let scans = SourceScans::default();
    let mut planned = Planned::default();
    let read: BTreeSet<&str> = graph
        .models
        .values()
        .flat_map(|model| model.sources.iter().map(|call| call.target.as_str()))
        .collect();
    for id in read {
        let relation = NodeId::Source(id.to_string());
        match register_relation(&session, &relation, &warehouse, &project.sources, &scans).await {
            Ok(()) => {
                let (source, table) = id.split_once('.').unwrap_or(("", id));
                if let Ok(provider) = session
                    .table_provider(TableReference::partial(source, table))
                    .await
                {
                    planned.schemas.insert(relation, provider.schema());
                }
            }
            Err(error) => planned.errors.push(format!("source `{id}`: {error}")),
        }
    }
    let relation = |table: &TableReference| match table {
        TableReference::Bare { table } if graph.models.contains_key(table.as_ref()) => {
            Some(NodeId::Model(table.to_string()))
        }
        TableReference::Partial { schema, table } => {
            let id = format!("{schema}.{table}");
            project
                .sources
                .contains_key(&id)
                .then_some(NodeId::Source(id))
        }
        _ => None,
    };
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
        let logical = match state.create_logical_plan(&model.sql).await {
            Ok(logical) => logical,
            Err(error) => {
                planned
                    .errors
                    .push(format!("model `{name}`: {}", error.strip_backtrace()));
                continue;
            }
        };
        let schema: SchemaRef = Arc::new(logical.schema().as_arrow().clone());
        // Readers see a stored model as Delta stores it, as in a build.
        let stored = if model.config.is_ephemeral() {
            Ok(schema.clone())
        } else {
            crate::storage::stored_schema(&schema)
        };
        let registered = stored
            .map_err(|message| message.to_string())
            .and_then(|stored| MemTable::try_new(stored, vec![vec![]]).map_err(|e| e.to_string()))
            .and_then(|table| {
                session
                    .register_table(TableReference::bare(name.as_str()), Arc::new(table))
                    .map_err(|e| e.to_string())
            });
        if let Err(message) = registered {
            planned.errors.push(format!("model `{name}`: {message}"));
            continue;
        }
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
    let planned = plan(inputs.project, inputs.graph).await;
    let metadata = metadata(inputs);
    let manifest = manifest::manifest(inputs, &metadata)?;
    let tables = catalog::tables(inputs).await;
    let catalog = catalog::catalog(inputs, &planned, &tables, &metadata);
    let lineage = lineage_json(inputs, &planned, &metadata);
    let target = inputs.project.root.join("target");
    let run_results: Value = std::fs::read(target.join("run_results.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null);
    let page = site::page(
        &inputs.project.config.name,
        &json!({
            "manifest": manifest,
            "catalog": catalog,
            "lineage": lineage,
            "run_results": run_results,
        }),
    );
    let mut files = Vec::new();
    for (name, text) in [
        ("manifest.json", json_text(&manifest)),
        ("catalog.json", json_text(&catalog)),
        ("lineage.json", json_text(&lineage)),
        ("docs/index.html", page),
    ] {
        let path = target.join(name);
        write_file(&path, &text)?;
        files.push(path);
    }
    Ok(Generated {
        files,
        models: catalog["nodes"].as_object().map_or(0, |nodes| nodes.len()),
        sources: catalog["sources"]
            .as_object()
            .map_or(0, |nodes| nodes.len()),
        columns: planned
            .schemas
            .iter()
            .filter(|(node, _)| inputs.selected.contains(node))
            .map(|(_, schema)| schema.fields().len())
            .sum(),
        tables: tables.len(),
    })
}

fn json_text(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialize")
}

/// The `metadata` object at the top of every file.
fn metadata(inputs: &DocsInputs<'_>) -> Value {
    json!({
        "dp_version": env!("CARGO_PKG_VERSION"),
        "generated_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "project_name": inputs.project.config.name,
        "target": inputs.target.name,
        "invocation_id": uuid::Uuid::new_v4().to_string(),
        "vars": inputs.vars,
    })
}

/// A node's unique id, as dbt's: `model.<project>.<name>`, `source.<project>.<source>.<table>`.
pub fn unique_id(project: &Project, node: &NodeId) -> String {
    match node {
        NodeId::Model(name) => format!("model.{}.{name}", project.config.name),
        NodeId::Source(id) => format!("source.{}.{id}", project.config.name),
    }
}

/// `lineage.json`: every selected model's (and every source's) columns with what each is
/// derived from, and the columns that decide its rows.
fn lineage_json(inputs: &DocsInputs<'_>, planned: &Planned, metadata: &Value) -> Value {
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
            unique_id(project, node),
            json!({"resource_type": "source", "name": id, "materialized": null,
                   "columns": columns, "row_filters": []}),
        );
    }
    let upstream =
        |column: &UpstreamColumn| (unique_id(project, &column.node), column.column.clone());
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
            unique_id(project, node),
            json!({
                "resource_type": "model",
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
    crate::report::write_atomically(path, text.as_bytes()).map_err(|source| DocsError::Io {
        path: path.to_path_buf(),
        source,
    })
}
