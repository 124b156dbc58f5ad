//! `dp lineage`: one model's (or one column's) lineage as trees, upstream to the sources and
//! downstream to the last model that reads it.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::ProjectLineage;
use super::lineage::{Clause, How, UpstreamColumn};
use crate::graph::{ModelGraph, NodeId};
use crate::source::did_you_mean;

/// Which way `dp lineage` follows a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// To the columns it is derived from, down to the sources.
    Upstream,
    /// To the columns derived from it.
    Downstream,
    /// Both ways.
    Both,
}

/// What kind of node a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Model,
    /// A model with no table, inlined into its readers.
    Ephemeral,
    Source,
}

/// One column and the columns it is derived from (upstream) or that derive from it
/// (downstream), each as a tree of its own.
#[derive(Debug, Clone, Serialize)]
pub struct LineageTree {
    /// A model's name, or `source.table`.
    pub node: String,
    pub kind: NodeKind,
    pub column: String,
    /// How this column is derived from its parent in the tree (how the parent is derived from
    /// it, downstream); none at the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<How>,
    /// This column's own tree is shown once, where it first appears: here it is cut short.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub upstream: Vec<LineageTree>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub downstream: Vec<LineageTree>,
}

/// The lineage `dp lineage` shows: each asked-for column's trees, and the upstream columns that
/// decide which rows the model holds.
#[derive(Debug, Clone, Serialize)]
pub struct LineageReport {
    /// The model or source asked about.
    pub node: String,
    /// The tree of each column asked about.
    pub columns: Vec<LineageTree>,
    /// The upstream columns that decide which rows the model holds.
    pub row_filters: Vec<RowFilter>,
}

/// An upstream column that decides which rows a model holds.
#[derive(Debug, Clone, Serialize)]
pub struct RowFilter {
    /// A model's name, or `source.table`.
    pub node: String,
    pub column: String,
    /// Through which clause.
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

/// The lineage of `target`: `model`, `model.column`, `source.table` or `source.table.column`
/// (a column name may hold dots: the longest prefix that names a node is the node).
pub fn lineage_report(
    planned: &ProjectLineage,
    graph: &ModelGraph,
    target: &str,
    direction: Direction,
) -> Result<LineageReport, LineageError> {
    let named = |name: &str| {
        if graph.models.contains_key(name) {
            Some(NodeId::Model(name.to_string()))
        } else {
            graph
                .sources
                .contains_key(name)
                .then(|| NodeId::Source(name.to_string()))
        }
    };
    let split = std::iter::once((target, None)).chain(
        target
            .match_indices('.')
            .rev()
            .map(|(at, _)| (&target[..at], Some(&target[at + 1..]))),
    );
    let Some((node, column)) = split
        .into_iter()
        .find_map(|(name, column)| Some((named(name)?, column)))
    else {
        let names: Vec<&str> = graph
            .models
            .keys()
            .chain(graph.sources.keys())
            .map(String::as_str)
            .collect();
        // The closest node to the whole argument, or to it without its column.
        let near = did_you_mean(target, names.iter().copied()).or_else(|| {
            let head = target.rsplit_once('.').map_or(target, |(head, _)| head);
            did_you_mean(head, names.iter().copied())
        });
        return Err(LineageError::UnknownNode {
            name: target.to_string(),
            help: near.unwrap_or_else(|| "`dp ls` lists the models and sources".into()),
        });
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
                tree.upstream = walker.follow(&root, true, &mut BTreeSet::new());
            }
            if direction != Direction::Upstream {
                tree.downstream = walker.follow(&root, false, &mut BTreeSet::new());
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

/// Follows columns through the project's lineage, both ways. A column met again in one tree (a
/// diamond in the graph) is shown once, then marked `repeated`: trees stay as large as the graph.
struct Walker<'a> {
    graph: &'a ModelGraph,
    /// Each column's origins: the columns it is derived from, and how.
    origins: Edges,
    /// Each column's readers: the columns derived from it, and how.
    readers: Edges,
}

type Edges = BTreeMap<UpstreamColumn, Vec<(UpstreamColumn, How)>>;

impl<'a> Walker<'a> {
    fn new(planned: &ProjectLineage, graph: &'a ModelGraph) -> Self {
        let (mut origins, mut readers) = (Edges::new(), Edges::new());
        for (node, lineage) in &planned.lineage {
            for (column, derived) in &lineage.columns {
                let reader = UpstreamColumn {
                    node: node.clone(),
                    column: column.clone(),
                };
                for (from, how) in derived {
                    readers
                        .entry(from.clone())
                        .or_default()
                        .push((reader.clone(), *how));
                    origins
                        .entry(reader.clone())
                        .or_default()
                        .push((from.clone(), *how));
                }
            }
        }
        Walker {
            graph,
            origins,
            readers,
        }
    }

    fn leaf(&self, column: &UpstreamColumn, how: Option<How>) -> LineageTree {
        let kind = match &column.node {
            NodeId::Source(_) => NodeKind::Source,
            NodeId::Model(name) if self.graph.models[name].config.is_ephemeral() => {
                NodeKind::Ephemeral
            }
            NodeId::Model(_) => NodeKind::Model,
        };
        LineageTree {
            node: display(&column.node),
            kind,
            column: column.column.clone(),
            how,
            repeated: false,
            upstream: Vec::new(),
            downstream: Vec::new(),
        }
    }

    /// The trees of the columns `column` is derived from (`upstream`) or that derive from it.
    fn follow(
        &self,
        column: &UpstreamColumn,
        upstream: bool,
        seen: &mut BTreeSet<UpstreamColumn>,
    ) -> Vec<LineageTree> {
        let edges = if upstream {
            &self.origins
        } else {
            &self.readers
        };
        edges
            .get(column)
            .into_iter()
            .flatten()
            .map(|(next, how)| {
                let mut tree = self.leaf(next, Some(*how));
                if !seen.insert(next.clone()) {
                    tree.repeated = true;
                } else if upstream {
                    tree.upstream = self.follow(next, true, seen);
                } else {
                    tree.downstream = self.follow(next, false, seen);
                }
                tree
            })
            .collect()
    }
}
