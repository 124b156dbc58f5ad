//! OPERATIONS: what an operator runs on published tables, beside builds. In: a prepared project
//! and its target. Out: what was done, per model.

use std::collections::BTreeSet;

use crate::graph::{ModelGraph, NodeId};
use crate::session::Warehouse;
use crate::storage::{StorageError, VacuumOptions};

/// One model's vacuum: the files deleted (or that a dry run would delete), or why it failed.
#[derive(Debug)]
pub struct VacuumResult {
    pub model: String,
    pub outcome: Result<Vec<String>, StorageError>,
}

/// Vacuum the tables of the selected stored models, one after the other, in execution order.
pub async fn vacuum(
    graph: &ModelGraph,
    selected: &BTreeSet<NodeId>,
    warehouse: &Warehouse,
    options: &VacuumOptions,
) -> Vec<VacuumResult> {
    let mut results = Vec::new();
    for node in graph.order() {
        let NodeId::Model(name) = node else {
            continue;
        };
        let stored = !graph.models[name].config.is_ephemeral();
        if !stored || !selected.contains(node) {
            continue;
        }
        let outcome = match warehouse.table_url(name) {
            Ok(url) => crate::storage::vacuum(&warehouse.stores, name, &url, options).await,
            Err(error) => Err(error.into()),
        };
        results.push(VacuumResult {
            model: name.clone(),
            outcome,
        });
    }
    results
}
