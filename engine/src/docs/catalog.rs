//! `catalog.json`: each model's and source's planned columns, and each existing Delta table's
//! figures, read from its log (no data file is opened).

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use super::{DocsInputs, ProjectLineage};
use crate::graph::NodeId;
use crate::session::{Warehouse, open_table};

/// The catalog of the selected models and every source.
pub fn catalog(
    inputs: &DocsInputs<'_>,
    planned: &ProjectLineage,
    tables: &Tables,
    metadata: &Value,
) -> Value {
    let project = inputs.project;
    let mut nodes = Map::new();
    let mut sources = Map::new();
    for (node, schema) in &planned.schemas {
        let id = project.unique_id(node);
        match node {
            NodeId::Model(name) if inputs.selected.contains(node) => {
                let entry = json!({
                    "unique_id": id,
                    "metadata": {
                        "type": inputs.graph.models[name].config.materialized.to_string(),
                        "name": name,
                    },
                    "columns": columns(schema),
                    "table": tables.found.get(name).cloned().unwrap_or(Value::Null),
                });
                nodes.insert(id, entry);
            }
            NodeId::Source(source_id) => {
                let format = project.sources.get(source_id).map(|source| source.format);
                let entry = json!({
                    "unique_id": id,
                    "metadata": {"type": format, "name": source_id},
                    "columns": columns(schema),
                    "table": null,
                });
                sources.insert(id, entry);
            }
            NodeId::Model(_) => {}
        }
    }
    let errors: Vec<&String> = planned.errors.iter().chain(&tables.errors).collect();
    json!({"metadata": metadata, "nodes": nodes, "sources": sources, "errors": errors})
}

fn columns(schema: &SchemaRef) -> Map<String, Value> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(index, field)| {
            let column = json!({
                "name": field.name(),
                "index": index,
                "type": crate::session::contract::sql_name(field.data_type()),
                "nullable": field.is_nullable(),
            });
            (field.name().clone(), column)
        })
        .collect()
}

/// The Delta tables of the selected stored models.
#[derive(Debug, Default)]
pub struct Tables {
    /// Each existing table's figures, by model.
    pub found: BTreeMap<String, Value>,
    /// The tables that exist but could not be read, and why.
    pub errors: Vec<String>,
}

/// Each selected stored model's Delta table figures, for the models whose table exists.
pub async fn tables(inputs: &DocsInputs<'_>) -> Tables {
    let warehouse = Warehouse {
        url: inputs.target.warehouse.clone(),
        stores: inputs.stores.clone(),
    };
    let stored: Vec<&String> = inputs
        .graph
        .models
        .iter()
        .filter(|(name, model)| {
            !model.config.is_ephemeral()
                && inputs.selected.contains(&NodeId::Model((*name).clone()))
        })
        .map(|(name, _)| name)
        .collect();
    futures::stream::iter(stored)
        .map(|name| {
            let warehouse = &warehouse;
            async move { (name.clone(), table(warehouse, name).await) }
        })
        .buffer_unordered(16)
        .fold(Tables::default(), |mut tables, (name, table)| async move {
            match table {
                Ok(Some(table)) => {
                    tables.found.insert(name, table);
                }
                Ok(None) => {}
                Err(error) => tables.errors.push(format!("table of `{name}`: {error}")),
            }
            tables
        })
        .await
}

/// One model's table figures; `None` when it has no table.
async fn table(warehouse: &Warehouse, model: &str) -> Result<Option<Value>, String> {
    let url = warehouse.table_url(model).map_err(|e| e.to_string())?;
    let table = open_table(&warehouse.stores, &url)
        .await
        .map_err(|e| e.to_string())?;
    let Some(version) = table.version() else {
        return Ok(None);
    };
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let (mut rows, mut bytes, mut files) = (Some(0_u64), 0_u64, 0_u64);
    for file in snapshot.log_data().iter() {
        files += 1;
        bytes += u64::try_from(file.size()).unwrap_or(0);
        rows = rows.zip(file.num_records()).map(|(sum, n)| sum + n as u64);
    }
    let last_commit = table
        .history(Some(1))
        .next()
        .await
        .and_then(Result::ok)
        .map(|commit| {
            let at = commit
                .timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let record = commit.info.get(crate::storage::RECORD_KEY);
            let run_id = record
                .and_then(|record| record["run_id"].as_str())
                .map(str::to_string);
            let mut last =
                json!({"timestamp": at, "operation": commit.operation, "run_id": run_id});
            if let Some(diff) = record.and_then(|record| record.get("diff")) {
                last["diff"] = diff.clone();
            }
            last
        });
    Ok(Some(json!({
        "location": url.as_str(),
        "version": version,
        "num_rows": rows,
        "num_bytes": bytes,
        "num_files": files,
        "partition_columns": snapshot.metadata().partition_columns(),
        "last_commit": last_commit,
    })))
}
