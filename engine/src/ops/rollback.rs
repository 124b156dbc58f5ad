//! `dp rollback`: a model's table restored to an earlier version as a new commit (Delta's
//! restore), refused while a downstream model's published data was built from a version it
//! undoes.

use std::collections::BTreeMap;

use crate::graph::{ModelGraph, NodeId};
use crate::session::Warehouse;
use crate::storage::{self, RunRecord, VersionChange};

use super::OpsError;

/// What a rollback would do, shown before it is done.
#[derive(Debug, Clone)]
pub struct RollbackPlan {
    pub model: String,
    pub from_version: u64,
    pub to_version: u64,
    pub change: VersionChange,
    /// The downstream models whose current version read a version of `model` newer than
    /// `to_version`, with the version they read.
    pub built_from_undone: BTreeMap<String, u64>,
    /// Every stored model downstream of `model`: what to rebuild after the rollback.
    pub downstream: Vec<String>,
}

impl RollbackPlan {
    /// The command that rebuilds the model's downstream models after the rollback.
    pub fn rebuild_command(&self) -> String {
        format!("dp build --select {}+ --exclude {}", self.model, self.model)
    }
}

/// Plan restoring `model`'s table to `version`.
pub async fn plan(
    warehouse: &Warehouse,
    graph: &ModelGraph,
    model: &str,
    version: u64,
) -> Result<RollbackPlan, OpsError> {
    let url = warehouse.table_url(model)?;
    let history = storage::history(&warehouse.stores, &url, None).await?;
    let Some(latest) = history.first().map(|commit| commit.version) else {
        return Err(OpsError::NoTable {
            model: model.to_string(),
        });
    };
    if version >= latest {
        return Err(OpsError::NotEarlier {
            model: model.to_string(),
            version,
            latest,
        });
    }
    let change = storage::restore_change(&warehouse.stores, &url, version).await?;
    let mut downstream = Vec::new();
    let mut built_from_undone = BTreeMap::new();
    for node in descendants(graph, model) {
        let Some(plan) = graph.models.get(&node) else {
            continue;
        };
        if plan.config.is_ephemeral() {
            continue;
        }
        downstream.push(node.clone());
        let url = warehouse.table_url(&node)?;
        let read = storage::history(&warehouse.stores, &url, None)
            .await?
            .into_iter()
            .find_map(|commit| commit.record)
            .and_then(|record| record.inputs.get(model).copied());
        if let Some(read) = read
            && read > version
        {
            built_from_undone.insert(node, read);
        }
    }
    Ok(RollbackPlan {
        model: model.to_string(),
        from_version: latest,
        to_version: version,
        change,
        built_from_undone,
        downstream,
    })
}

/// Carry out `plan`: one new commit restoring its version, recording `record`; returns the
/// new version. Refused while downstream models were built from an undone version, unless
/// `force`.
pub async fn rollback(
    warehouse: &Warehouse,
    plan: &RollbackPlan,
    record: &RunRecord,
    force: bool,
) -> Result<u64, OpsError> {
    if !plan.built_from_undone.is_empty() && !force {
        return Err(OpsError::DownstreamBuiltFrom {
            model: plan.model.clone(),
            version: plan.to_version,
            downstream: plan
                .built_from_undone
                .iter()
                .map(|(name, read)| format!("{name} (read v{read})"))
                .collect::<Vec<_>>()
                .join(", "),
            command: plan.rebuild_command(),
        });
    }
    let url = warehouse.table_url(&plan.model)?;
    Ok(storage::restore(&warehouse.stores, &url, plan.to_version, record).await?)
}

/// Every model downstream of `model`, in the graph's order.
fn descendants(graph: &ModelGraph, model: &str) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut queue = vec![NodeId::Model(model.to_string())];
    while let Some(node) = queue.pop() {
        for child in graph.children(&node) {
            if found.insert(child.clone()) {
                queue.push(child.clone());
            }
        }
    }
    graph
        .order()
        .iter()
        .filter(|node| found.contains(*node))
        .filter_map(|node| match node {
            NodeId::Model(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}
