//! dbt's `graph` variable: the project's models, seeds and snapshots (`graph.nodes`) and its
//! source tables (`graph.sources`), keyed by unique id, with the fields macros read from them
//! (`resource_type`, `name`, `config.materialized`, `tags`, `columns`, `original_file_path`...).

use minijinja::Value;

use crate::project::{ColumnProperties, NodeId, Project};

/// `graph` for `project`.
pub(super) fn graph(project: &Project) -> Value {
    let package = project.config.name.as_str();
    let nodes: serde_json::Map<String, serde_json::Value> = project
        .models
        .iter()
        .map(|(name, model)| {
            let id = project.unique_id(&NodeId::Model(name.clone()));
            let resource_type = id.split('.').next().unwrap_or("model").to_string();
            let declared = model.declared_config();
            let materialized = declared
                .materialized
                .clone()
                .unwrap_or_else(|| match resource_type.as_str() {
                    "model" => "table".into(),
                    other => other.into(),
                });
            let tags = declared.tags.map(|t| t.into_vec()).unwrap_or_default();
            let properties = model.properties.as_ref();
            let path = model.file.path().display().to_string();
            let node = serde_json::json!({
                "unique_id": id,
                "resource_type": resource_type,
                "name": name,
                "alias": name,
                "identifier": name,
                "package_name": package,
                "database": "datafusion",
                "schema": package,
                "fqn": [package, name],
                "path": path,
                "original_file_path": path,
                "description": properties.and_then(|p| p.description.clone()).unwrap_or_default(),
                "columns": columns(properties.map(|p| p.columns.as_slice()).unwrap_or_default()),
                "tags": tags,
                "config": {
                    "materialized": materialized,
                    "tags": tags,
                    "enabled": declared.enabled.unwrap_or(true),
                },
                "meta": {},
            });
            (id, node)
        })
        .collect();
    let sources: serde_json::Map<String, serde_json::Value> = project
        .sources
        .iter()
        .map(|(source_id, table)| {
            let id = project.unique_id(&NodeId::Source(source_id.clone()));
            let path = table.file.path().display().to_string();
            let source = serde_json::json!({
                "unique_id": id,
                "resource_type": "source",
                "name": table.table,
                "identifier": table.table,
                "source_name": table.source,
                "package_name": package,
                "database": "datafusion",
                "schema": table.source,
                "fqn": [package, table.source, table.table],
                "path": path,
                "original_file_path": path,
                "description": table.description.clone().unwrap_or_default(),
                "source_description": table.source_description.clone().unwrap_or_default(),
                "columns": columns(&table.columns),
                "tags": [],
                "config": {"enabled": true},
                "meta": {},
            });
            (id, source)
        })
        .collect();
    Value::from(minijinja::value::Serde(serde_json::json!({
        "nodes": nodes,
        "sources": sources,
        "exposures": {},
        "metrics": {},
        "groups": {},
    })))
}

/// Declared columns by name, each with its `name`, `description` and `data_type`.
fn columns(declared: &[ColumnProperties]) -> serde_json::Value {
    declared
        .iter()
        .map(|column| {
            let entry = serde_json::json!({
                "name": column.name,
                "description": column.description.clone().unwrap_or_default(),
                "data_type": column.data_type,
                "meta": {},
                "tags": [],
            });
            (column.name.clone(), entry)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}
