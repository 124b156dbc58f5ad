//! OPERATIONS: what an operator runs on published tables, beside builds. In: a prepared project
//! and its target. Out: what was done, per model.

use crate::session::Warehouse;
use crate::storage::{StorageError, VacuumOptions};

/// One model's vacuum: the files deleted (or that a dry run would delete), or why it failed.
#[derive(Debug)]
pub struct VacuumResult {
    pub model: String,
    pub outcome: Result<Vec<String>, StorageError>,
}

/// Vacuum the tables of `models`, one after the other. A model without a table (never built, or
/// ephemeral) has nothing to vacuum.
pub async fn vacuum(
    models: &[String],
    warehouse: &Warehouse,
    options: &VacuumOptions,
) -> Vec<VacuumResult> {
    let mut results = Vec::new();
    for name in models {
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
