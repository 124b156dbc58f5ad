//! `dp rollback`: a model's table restored to an earlier version as a new commit (Delta's
//! restore), refused while a downstream model's published data was built from a version it
//! undoes.

use std::collections::{BTreeMap, BTreeSet};

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
    /// Every model whose table was built from `model`, directly or not: what to rebuild after
    /// the rollback.
    pub downstream: Vec<String>,
}

impl RollbackPlan {
    /// The command that rebuilds the model's downstream models after the rollback.
    pub fn rebuild_command(&self) -> String {
        format!("dp build --select {}+ --exclude {}", self.model, self.model)
    }
}

/// Plan restoring `model`'s table to `version`. Its downstream models are found from what
/// the tables of `models` were last built from (their run records), whatever vars their
/// templates need today.
pub async fn plan(
    warehouse: &Warehouse,
    models: &[String],
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
    // What the last build of each other table read (a restore's commit records no build).
    let mut reads: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for other in models.iter().filter(|other| *other != model) {
        let url = warehouse.table_url(other)?;
        let inputs = storage::last_build(&warehouse.stores, &url)
            .await?
            .map(|record| record.inputs)
            .unwrap_or_default();
        reads.insert(other.clone(), inputs);
    }
    let built_from_undone = reads
        .iter()
        .filter_map(|(other, inputs)| {
            let read = *inputs.get(model)?;
            (read > version).then(|| (other.clone(), read))
        })
        .collect();
    Ok(RollbackPlan {
        model: model.to_string(),
        from_version: latest,
        to_version: version,
        change,
        built_from_undone,
        downstream: downstream(&reads, model),
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
    Ok(storage::restore(
        &warehouse.stores,
        &url,
        plan.from_version,
        plan.to_version,
        record,
    )
    .await?)
}

/// Every model built from `model`, directly or through others, by what their last builds read.
fn downstream(reads: &BTreeMap<String, BTreeMap<String, u64>>, model: &str) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut queue = vec![model.to_string()];
    while let Some(upstream) = queue.pop() {
        for (other, inputs) in reads {
            if inputs.contains_key(&upstream) && found.insert(other.clone()) {
                queue.push(other.clone());
            }
        }
    }
    found.into_iter().collect()
}
