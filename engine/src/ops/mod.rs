//! OPERATIONS: what an operator runs on published tables, beside builds. In: a prepared project
//! and its target. Out: what was done, per model.

use crate::session::Warehouse;
use crate::storage::{VacuumOptions, Vacuumed};

/// One model's vacuum.
#[derive(Debug)]
pub struct VacuumResult {
    pub model: String,
    pub vacuumed: Vacuumed,
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
        let vacuumed = match warehouse.table_url(name) {
            Ok(url) => crate::storage::vacuum(&warehouse.stores, name, &url, options).await,
            Err(error) => Vacuumed {
                files: Vec::new(),
                error: Some(error.into()),
            },
        };
        results.push(VacuumResult {
            model: name.clone(),
            vacuumed,
        });
    }
    results
}
