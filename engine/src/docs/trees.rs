//! `dp lineage`: one model's (or one column's) lineage as trees, upstream to the sources and
//! downstream to the last model that reads it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Planned;
use super::lineage::{Clause, How, UpstreamColumn};
use crate::graph::{ModelGraph, NodeId};
use crate::source::did_you_mean;

/// Which way `dp lineage` follows a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upstream,
    Downstream,
    Both,
}

/// One column and the columns it is derived from (upstream) or that derive from it
/// (downstream), each as a tree of its own.
#[derive(Debug, Clone, Serialize)]
pub struct LineageTree {
    /// A model's name, or `source.table`.
    pub node: String,
    /// `model`, `ephemeral` or `source`.
    pub kind: &'static str,
    pub column: String,
    /// How this column is derived from its parent in the tree (how the parent is derived from
    /// it, downstream); none at the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<LineageTree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<LineageTree>,
}

/// The lineage `dp lineage` shows: each asked-for column's trees, and the upstream columns that
/// decide which rows the model holds.
#[derive(Debug, Clone, Serialize)]
pub struct LineageReport {
    pub node: String,
    pub columns: Vec<LineageTree>,
    pub row_filters: Vec<RowFilter>,
}

/// An upstream column that decides which rows a model holds.
#[derive(Debug, Clone, Serialize)]
pub struct RowFilter {
    pub node: String,
    pub column: String,
    pub clause: Clause,
}

/// A `dp lineage` argument that names nothing.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum LineageError {
    #[error("no model or source named `{name}`")]
    #[diagnostic(code(dp::unknown_node))]
    UnknownNode {
        name: String,
        #[help]
        help: String,
    },

    #[error("`{node}` has no column `{column}`")]
    #[diagnostic(code(dp::unknown_column))]
    UnknownColumn {
        node: String,
        column: String,
        #[help]
        help: String,
    },

    #[error("`{node}` could not be planned, so its lineage is unknown")]
    #[diagnostic(code(dp::not_planned), help("run `dp check` to see why"))]
    NotPlanned { node: String },
}

/// The lineage of `target`: `model`, `model.column`, `source.table` or `source.table.column`.
pub fn report(
    planned: &Planned,
    graph: &ModelGraph,
    target: &str,
    direction: Direction,
) -> Result<LineageReport, LineageError> {
    let named = |name: &str| {
        let node = match graph.models.contains_key(name) {
            true => NodeId::Model(name.to_string()),
            false => NodeId::Source(name.to_string()),
        };
        (graph.models.contains_key(name) || graph.sources.contains_key(name)).then_some(node)
    };
    let (node, column) = match named(target) {
        Some(node) => (node, None),
        None => match target
            .rsplit_once('.')
            .and_then(|(n, c)| Some((named(n)?, c)))
        {
            Some((node, column)) => (node, Some(column)),
            None => {
                let head = target.split('.').next().unwrap_or(target);
                let names = graph.models.keys().chain(graph.sources.keys());
                return Err(LineageError::UnknownNode {
                    name: head.to_string(),
                    help: did_you_mean(head, names.map(String::as_str))
                        .unwrap_or_else(|| "`dp ls` lists the models and sources".into()),
                });
            }
        },
    };
    let name = display(&node);
    let schema = planned
        .schemas
        .get(&node)
        .ok_or_else(|| LineageError::NotPlanned { node: name.clone() })?;
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let asked: Vec<&str> = match column {
        None => columns.clone(),
        Some(column) if columns.contains(&column) => vec![column],
        Some(column) => {
            let near = did_you_mean(column, columns.iter().copied())
                .map(|near| format!("{near} "))
                .unwrap_or_default();
            return Err(LineageError::UnknownColumn {
                node: name,
                column: column.to_string(),
                help: format!("{near}its columns: {}", columns.join(", ")),
            });
        }
    };
    let walker = Walker::new(planned, graph);
    let trees = asked
        .into_iter()
        .map(|column| {
            let root = UpstreamColumn {
                node: node.clone(),
                column: column.to_string(),
            };
            let mut tree = walker.leaf(&root, None);
            if direction != Direction::Downstream {
                tree.upstream = walker.upstream(&root);
            }
            if direction != Direction::Upstream {
                tree.downstream = walker.downstream(&root);
            }
            tree
        })
        .collect();
    let row_filters = planned
        .lineage
        .get(&node)
        .map(|lineage| {
            lineage
                .row_filters
                .iter()
                .map(|(from, clause)| RowFilter {
                    node: display(&from.node),
                    column: from.column.clone(),
                    clause: *clause,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(LineageReport {
        node: name,
        columns: trees,
        row_filters,
    })
}

fn display(node: &NodeId) -> String {
    match node {
        NodeId::Model(name) | NodeId::Source(name) => name.clone(),
    }
}

/// Follows columns through the project's lineage, both ways.
struct Walker<'a> {
    planned: &'a Planned,
    graph: &'a ModelGraph,
    /// Each column's readers: the columns derived from it, and how.
    readers: BTreeMap<&'a UpstreamColumn, Vec<(UpstreamColumn, How)>>,
}

impl<'a> Walker<'a> {
    fn new(planned: &'a Planned, graph: &'a ModelGraph) -> Self {
        let mut readers: BTreeMap<&UpstreamColumn, Vec<(UpstreamColumn, How)>> = BTreeMap::new();
        for (node, lineage) in &planned.lineage {
            for (column, origins) in &lineage.columns {
                for (from, how) in origins {
                    let reader = UpstreamColumn {
                        node: node.clone(),
                        column: column.clone(),
                    };
                    readers.entry(from).or_default().push((reader, *how));
                }
            }
        }
        Walker {
            planned,
            graph,
            readers,
        }
    }

    fn leaf(&self, column: &UpstreamColumn, how: Option<How>) -> LineageTree {
        let kind = match &column.node {
            NodeId::Source(_) => "source",
            NodeId::Model(name) if self.graph.models[name].config.is_ephemeral() => "ephemeral",
            NodeId::Model(_) => "model",
        };
        LineageTree {
            node: display(&column.node),
            kind,
            column: column.column.clone(),
            how,
            upstream: Vec::new(),
            downstream: Vec::new(),
        }
    }

    fn upstream(&self, column: &UpstreamColumn) -> Vec<LineageTree> {
        let Some(lineage) = self.planned.lineage.get(&column.node) else {
            return Vec::new();
        };
        let origins = lineage
            .columns
            .iter()
            .find(|(name, _)| *name == column.column)
            .map(|(_, origins)| origins);
        origins
            .into_iter()
            .flatten()
            .map(|(from, how)| {
                let mut tree = self.leaf(from, Some(*how));
                tree.upstream = self.upstream(from);
                tree
            })
            .collect()
    }

    fn downstream(&self, column: &UpstreamColumn) -> Vec<LineageTree> {
        self.readers
            .get(column)
            .into_iter()
            .flatten()
            .map(|(reader, how)| {
                let mut tree = self.leaf(reader, Some(*how));
                tree.downstream = self.downstream(reader);
                tree
            })
            .collect()
    }
}
