//! RESOLVE, SELECT, SCHEDULE: the `ref()`/`source()` calls recorded while rendering become a DAG of models and
//! sources, checked for cycles. In: a [`Project`] and its [`RenderedProject`]. Out: a
//! [`ModelGraph`] whose node order is an execution order.

mod schedule;
mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use miette::SourceSpan;

pub use crate::project::NodeId;
use crate::project::{Project, SourceTable};
use crate::render::{RenderedModel, RenderedProject};
pub use schedule::Scheduler;
pub use select::{SelectError, names_model, select, split_test_types};

/// Models and sources with their dependency edges, in execution order.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    pub models: BTreeMap<String, RenderedModel>,
    /// The singular tests under `tests/`: not nodes, but they read nodes.
    pub singular_tests: Vec<RenderedModel>,
    pub sources: BTreeMap<String, SourceTable>,
    parents: BTreeMap<NodeId, BTreeSet<NodeId>>,
    children: BTreeMap<NodeId, BTreeSet<NodeId>>,
    order: Vec<NodeId>,
}

/// A graph that cannot be executed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum GraphError {
    #[error("models refer to each other in a cycle: {cycle}")]
    #[diagnostic(
        code(dp::cycle),
        help("a model cannot depend on itself, directly or through other models; break the cycle")
    )]
    Cycle {
        cycle: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("this ref closes the cycle")]
        at: SourceSpan,
    },
}

impl ModelGraph {
    /// Every node, sources first, then models so that each comes after all it depends on.
    pub fn order(&self) -> &[NodeId] {
        &self.order
    }

    /// The nodes `node` reads from directly.
    pub fn parents(&self, node: &NodeId) -> impl Iterator<Item = &NodeId> {
        self.parents.get(node).into_iter().flatten()
    }

    /// The nodes that read from `node` directly.
    pub fn children(&self, node: &NodeId) -> impl Iterator<Item = &NodeId> {
        self.children.get(node).into_iter().flatten()
    }
}

/// Build the DAG from the calls each model made while rendering. A model that could not be
/// rendered is not in it, and neither is any model that reads it (its problem is reported
/// where the render failed).
pub fn resolve(project: &Project, rendered: &RenderedProject) -> Result<ModelGraph, GraphError> {
    let mut models: BTreeMap<&str, &RenderedModel> = rendered
        .models
        .iter()
        .map(|(name, model)| (name.as_str(), model))
        .collect();
    loop {
        let unresolved: Vec<&str> = models
            .values()
            .filter(|model| {
                model
                    .refs
                    .iter()
                    .any(|call| !models.contains_key(call.target.as_str()))
            })
            .map(|model| model.name.as_str())
            .collect();
        if unresolved.is_empty() {
            break;
        }
        for name in unresolved {
            models.remove(name);
        }
    }
    let mut parents: BTreeMap<NodeId, BTreeSet<NodeId>> = BTreeMap::new();
    let mut children: BTreeMap<NodeId, BTreeSet<NodeId>> = BTreeMap::new();
    for id in project.sources.keys() {
        parents.insert(NodeId::Source(id.clone()), BTreeSet::new());
        children.insert(NodeId::Source(id.clone()), BTreeSet::new());
    }
    for model in models.values() {
        let node = NodeId::Model(model.name.clone());
        let ups: BTreeSet<NodeId> = model
            .refs
            .iter()
            .map(|call| NodeId::Model(call.target.clone()))
            .chain(
                model
                    .sources
                    .iter()
                    .map(|call| NodeId::Source(call.target.clone())),
            )
            .collect();
        for up in &ups {
            children.entry(up.clone()).or_default().insert(node.clone());
        }
        children.entry(node.clone()).or_default();
        parents.insert(node, ups);
    }

    // Kahn's algorithm; ties broken by node order, so the order is stable.
    let mut waiting: BTreeMap<&NodeId, usize> =
        parents.iter().map(|(n, ups)| (n, ups.len())).collect();
    let mut ready: BTreeSet<&NodeId> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| *id)
        .collect();
    let mut order = Vec::with_capacity(parents.len());
    while let Some(node) = ready.pop_first() {
        waiting.remove(node);
        order.push(node.clone());
        for child in &children[node] {
            let count = waiting.get_mut(child).expect("every child is a node");
            *count -= 1;
            if *count == 0 {
                ready.insert(child);
            }
        }
    }
    if !waiting.is_empty() {
        let leftover: BTreeSet<NodeId> = waiting.keys().map(|n| (*n).clone()).collect();
        return Err(cycle_error(rendered, &parents, &leftover));
    }
    Ok(ModelGraph {
        models: models
            .into_iter()
            .map(|(name, model)| (name.to_string(), model.clone()))
            .collect(),
        singular_tests: rendered.singular_tests.clone(),
        sources: project.sources.clone(),
        parents,
        children,
        order,
    })
}

/// Walk parents from a node left over by the topological sort until a node repeats.
fn cycle_error(
    rendered: &RenderedProject,
    parents: &BTreeMap<NodeId, BTreeSet<NodeId>>,
    leftover: &BTreeSet<NodeId>,
) -> GraphError {
    let mut path = vec![
        leftover
            .first()
            .expect("called with leftover nodes")
            .clone(),
    ];
    loop {
        let current = path.last().expect("path is never empty");
        // A node left over by the sort always has a parent that is left over too.
        let next = parents[current]
            .iter()
            .find(|p| leftover.contains(p))
            .expect("a leftover node has a leftover parent")
            .clone();
        if let Some(at) = path.iter().position(|n| *n == next) {
            let mut cycle: Vec<NodeId> = path[at..].to_vec();
            cycle.push(cycle[0].clone());
            let names: Vec<String> = cycle.iter().map(ToString::to_string).collect();
            // Point at the ref in the first model of the cycle to the next one.
            let (from, to) = (&cycle[0], &cycle[1]);
            let model = &rendered.models[&from.to_string()];
            let at = model
                .refs
                .iter()
                .find(|call| call.target == to.to_string())
                .map_or((0, 0).into(), |call| call.at);
            return GraphError::Cycle {
                cycle: names.join(" -> "),
                src: model.file.named(),
                at,
            };
        }
        path.push(next);
    }
}
