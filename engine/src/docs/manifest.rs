//! `manifest.json`: every node as the project declares it, under dbt's top-level names.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde_json::{Map, Value, json};

use super::{DocsError, DocsInputs};
use crate::graph::NodeId;
use crate::project::declared_macros;
use crate::project::{ColumnProperties, DataTestKind, Project, split_source_id};
use crate::render::RenderedModel;
use crate::source::SourceFile;

/// The manifest of `inputs`, with `{{ doc('name') }}` in descriptions replaced by the blocks.
pub fn manifest(inputs: &DocsInputs<'_>, metadata: &Value) -> Result<Value, DocsError> {
    let project = inputs.project;
    let name = &project.config.name;
    let descriptions = Descriptions::new(project);
    let macros = Macros::new(project);
    let compiled: BTreeMap<&str, &str> = inputs
        .compiled
        .models
        .iter()
        .map(|model| (model.name.as_str(), model.sql.as_str()))
        .collect();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut nodes = Map::new();

    // Models are described in parallel, then listed in name order.
    let models: Vec<(String, Value, BTreeSet<String>)> = inputs
        .graph
        .models
        .par_iter()
        .map(|(model_name, model)| {
            let node = NodeId::Model(model_name.clone());
        let id = project.unique_id(&node);
        let declared = &project.models[model_name];
        let properties = declared.properties.as_ref();
        let yaml = declared.properties_file.as_ref();
        let depends = depends_on(project, model, &macros);
        let config = &model.config;
        let value = json!({
                "unique_id": id,
                "resource_type": model.config.resource_type(),
                "name": model_name,
                "package_name": name,
                "original_file_path": path(&declared.file),
                "patch_path": yaml.map(path),
                "raw_code": declared.file.text(),
                "compiled_code": compiled.get(model_name.as_str()).copied().unwrap_or(&model.sql),
                "config": {
                    "materialized": config.materialized.to_string(),
                    "partition_by": config.partition_by,
                    "tags": config.tags,
                    "contract": {"enforced": config.contract_enforced},
                },
                "tags": config.tags,
                "description": descriptions.render(properties.and_then(|p| p.description.as_deref()), yaml)?,
                "columns": columns(&descriptions, properties.map_or(&[][..], |p| &p.columns), yaml)?,
                "depends_on": depends,
                "selected": inputs.selected.contains(&node),
            });
            Ok((id, value, reads(project, model)))
        })
        .collect::<Result<_, DocsError>>()?;
    for (id, value, reads) in models {
        parents.insert(id.clone(), reads);
        nodes.insert(id, value);
    }

    for test in &project.data_tests {
        let id = format!("test.{name}.{}", test.name);
        let mut reads: BTreeSet<String> = BTreeSet::from([project.unique_id(&test.subject)]);
        if let DataTestKind::Relationships { to, .. } = &test.kind {
            reads.insert(project.unique_id(to));
        }
        parents.insert(id.clone(), reads.clone());
        let (test_name, mut kwargs) = test_metadata(&test.kind);
        if let Some(column) = &test.column {
            kwargs.insert("column_name".into(), json!(column));
        }
        nodes.insert(
            id.clone(),
            json!({
                "unique_id": id,
                "resource_type": "test",
                "name": test.name,
                "package_name": name,
                "original_file_path": path(&test.file),
                "test_metadata": {"name": test_name, "kwargs": kwargs},
                "attached_node": project.unique_id(&test.subject),
                "column_name": test.column,
                "config": {"severity": test.config.severity},
                "raw_code": null,
                "depends_on": split_depends(reads, Vec::new()),
            }),
        );
    }

    for test in &inputs.graph.singular_tests {
        let id = format!("test.{name}.{}", test.name);
        let depends = depends_on(project, test, &macros);
        parents.insert(id.clone(), reads(project, test));
        nodes.insert(
            id.clone(),
            json!({
                "unique_id": id,
                "resource_type": "test",
                "name": test.name,
                "package_name": name,
                "original_file_path": path(&test.file),
                "test_metadata": null,
                "attached_node": null,
                "column_name": null,
                "config": {"severity": "error"},
                "raw_code": test.file.text(),
                "compiled_code": test.sql,
                "depends_on": depends,
            }),
        );
    }

    let mut unit_tests = Map::new();
    for test in &project.unit_tests {
        let properties = &test.properties;
        let id = format!("unit_test.{name}.{}.{}", properties.model, properties.name);
        let model = project.unique_id(&NodeId::Model(properties.model.clone()));
        parents.insert(id.clone(), BTreeSet::from([model.clone()]));
        unit_tests.insert(
            id.clone(),
            json!({
                "unique_id": id,
                "resource_type": "unit_test",
                "name": properties.name,
                "model": properties.model,
                "package_name": name,
                "original_file_path": path(&test.file),
                "description": descriptions.render(properties.description.as_deref(), Some(&test.file))?,
                "depends_on": {"nodes": [model], "sources": [], "macros": []},
            }),
        );
    }

    let mut sources = Map::new();
    for (source_id, table) in &project.sources {
        let id = project.unique_id(&NodeId::Source(source_id.clone()));
        parents.insert(id.clone(), BTreeSet::new());
        sources.insert(
            id.clone(),
            json!({
                "unique_id": id,
                "resource_type": "source",
                "name": table.table,
                "source_name": table.source,
                "package_name": name,
                "original_file_path": path(&table.file),
                "description": descriptions.render(table.description.as_deref(), Some(&table.file))?,
                "source_description": descriptions.render(table.source_description.as_deref(), Some(&table.file))?,
                "location": table.location.as_str(),
                "format": table.format,
                "partitioned_by": table.partitioned_by,
                "columns": columns(&descriptions, &table.columns, Some(&table.file))?,
            }),
        );
    }

    let macro_nodes: Map<String, Value> = macros
        .defined
        .iter()
        .map(|(macro_name, file)| {
            let id = format!("macro.{name}.{macro_name}");
            let uses: Vec<String> = macros
                .used_in(file.text())
                .into_iter()
                .filter(|used| used != &id)
                .collect();
            let node = json!({
                "unique_id": id,
                "resource_type": "macro",
                "name": macro_name,
                "package_name": name,
                "original_file_path": path(file),
                "macro_sql": file.text(),
                "depends_on": {"macros": uses},
            });
            (id, node)
        })
        .collect();

    let docs: Map<String, Value> = project
        .doc_blocks
        .iter()
        .map(|block| {
            let id = format!("doc.{name}.{}", block.name);
            let node = json!({
                "unique_id": id,
                "resource_type": "doc",
                "name": block.name,
                "package_name": name,
                "original_file_path": path(&block.file),
                "block_contents": block.contents,
            });
            (id, node)
        })
        .collect();

    let mut children: BTreeMap<String, BTreeSet<String>> = parents
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect();
    for (child, of) in &parents {
        for parent in of {
            children
                .entry(parent.clone())
                .or_default()
                .insert(child.clone());
        }
    }
    Ok(json!({
        "metadata": metadata,
        "nodes": nodes,
        "sources": sources,
        "macros": macro_nodes,
        "docs": docs,
        "unit_tests": unit_tests,
        "parent_map": parents,
        "child_map": children,
    }))
}

/// A file's path relative to the project, with `/` between folders.
fn path(file: &SourceFile) -> String {
    file.path().to_string_lossy().replace('\\', "/")
}

/// The unique ids of the models and sources a rendered template reads.
fn reads(project: &Project, model: &RenderedModel) -> BTreeSet<String> {
    let models = model
        .refs
        .iter()
        .map(|call| project.unique_id(&NodeId::Model(call.target.clone())));
    let sources = model
        .sources
        .iter()
        .map(|call| project.unique_id(&NodeId::Source(call.target.clone())));
    models.chain(sources).collect()
}

fn depends_on(project: &Project, model: &RenderedModel, macros: &Macros) -> Value {
    split_depends(reads(project, model), macros.used_in(model.file.text()))
}

/// `depends_on` of nodes and sources read (dbt lists sources among the nodes; dp lists them
/// again on their own) and macros called.
fn split_depends(reads: BTreeSet<String>, macros: Vec<String>) -> Value {
    let sources: Vec<&String> = reads
        .iter()
        .filter(|id| id.starts_with("source."))
        .collect();
    json!({"nodes": reads, "sources": sources, "macros": macros})
}

/// A built-in test's name and arguments, as dbt's `test_metadata`.
fn test_metadata(kind: &DataTestKind) -> (String, Map<String, Value>) {
    let (name, kwargs) = match kind {
        DataTestKind::NotNull => ("not_null", json!({})),
        DataTestKind::Unique => ("unique", json!({})),
        DataTestKind::AcceptedValues { values, quote } => {
            ("accepted_values", json!({"values": values, "quote": quote}))
        }
        DataTestKind::Relationships { to, field } => (
            "relationships",
            json!({"to": match to {
                NodeId::Model(model) => format!("ref('{model}')"),
                NodeId::Source(id) => {
                    let (source, table) = split_source_id(id);
                    format!("source('{source}', '{table}')")
                }
            }, "field": field}),
        ),
        DataTestKind::ExpressionIsTrue { expression } => {
            ("expression_is_true", json!({"expression": expression}))
        }
        DataTestKind::UniqueCombinationOfColumns { columns } => (
            "unique_combination_of_columns",
            json!({"combination_of_columns": columns}),
        ),
        DataTestKind::RowCount { min, max } => ("row_count", json!({"min": min, "max": max})),
        DataTestKind::Macro {
            test, arguments, ..
        } => {
            let kwargs = serde_json::to_value(arguments).unwrap_or_default();
            return (
                test.name.clone(),
                kwargs.as_object().cloned().unwrap_or_default(),
            );
        }
    };
    let Value::Object(kwargs) = kwargs else {
        unreachable!("kwargs are objects")
    };
    (name.to_string(), kwargs)
}

fn columns(
    descriptions: &Descriptions,
    declared: &[ColumnProperties],
    file: Option<&SourceFile>,
) -> Result<Map<String, Value>, DocsError> {
    declared
        .iter()
        .map(|column| {
            let value = json!({
                "name": column.name,
                "description": descriptions.render(column.description.as_deref(), file)?,
                "data_type": column.data_type,
            });
            Ok((column.name.clone(), value))
        })
        .collect()
}

/// The project's macros: each name with its file.
struct Macros {
    defined: BTreeMap<String, SourceFile>,
    package: String,
    /// Parses templates, to find the names they use.
    parser: minijinja::Environment<'static>,
}

impl Macros {
    fn new(project: &Project) -> Self {
        let defined = project
            .macros
            .iter()
            .flat_map(|file| {
                declared_macros(file.text())
                    .into_iter()
                    .map(|name| (name, file.clone()))
            })
            .collect();
        Macros {
            defined,
            package: project.config.name.clone(),
            parser: minijinja::Environment::new(),
        }
    }

    /// The unique ids of the project's macros that `template` calls (the names it uses without
    /// defining them).
    fn used_in(&self, template: &str) -> Vec<String> {
        if self.defined.is_empty() {
            return Vec::new();
        }
        let Ok(parsed) = self.parser.template_from_str(template) else {
            return Vec::new();
        };
        parsed
            .undeclared_variables(true)
            .into_iter()
            .filter(|name| self.defined.contains_key(name))
            .map(|name| format!("macro.{}.{name}", self.package))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}

/// How the error of `doc()` with an unknown name starts.
const UNKNOWN_DOC: &str = "no docs block named";

/// Renders descriptions, replacing `{{ doc('name') }}` with the project's docs blocks.
struct Descriptions {
    env: minijinja::Environment<'static>,
}

impl Descriptions {
    fn new(project: &Project) -> Self {
        let blocks: BTreeMap<String, String> = project
            .doc_blocks
            .iter()
            .map(|block| (block.name.clone(), block.contents.clone()))
            .collect();
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        // A description is short: a loop in one is a mistake, not work to finish.
        env.set_fuel(Some(100_000));
        env.add_function(
            "doc",
            move |name: String| -> Result<String, minijinja::Error> {
                blocks.get(&name).cloned().ok_or_else(|| {
                    let known =
                        crate::source::did_you_mean(&name, blocks.keys().map(String::as_str))
                            .map(|near| format!(" ({near})"))
                            .unwrap_or_default();
                    minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("{UNKNOWN_DOC} `{name}`{known}"),
                    )
                })
            },
        );
        Descriptions { env }
    }

    /// `text` with its `doc()` calls replaced; an error points into `file`.
    fn render(&self, text: Option<&str>, file: Option<&SourceFile>) -> Result<String, DocsError> {
        let Some(text) = text else {
            return Ok(String::new());
        };
        if !text.contains("{{") && !text.contains("{%") {
            return Ok(text.to_string());
        }
        self.env.render_str(text, ()).map_err(|error| {
            let file = file.cloned().unwrap_or_else(|| SourceFile::new("", ""));
            let message = error.detail().unwrap_or("invalid description").to_string();
            let at = file.find(text.lines().next().unwrap_or(text), 0);
            if message.starts_with(UNKNOWN_DOC) {
                DocsError::UnknownDoc {
                    message,
                    at,
                    src: file.named(),
                }
            } else {
                DocsError::Description {
                    message,
                    at,
                    src: file.named(),
                }
            }
        })
    }
}
