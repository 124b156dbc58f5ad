//! Write modes: what a build's commit replaces in its table. A model's materialization becomes
//! a write mode here, in one place.

use crate::project::{Materialization, ModelConfig};

/// What a commit does with the table's existing files.
#[derive(Debug, Clone, PartialEq, Eq)]
// Append and Merge are the write modes of incremental models, which no materialization asks
// for yet: the commit already handles them, `open_for_build` refuses them until then.
#[allow(dead_code)]
pub enum WriteMode {
    /// Every file is replaced: the table holds exactly this build's rows.
    ReplaceTable,
    /// The files of the partitions the build wrote are replaced; others stay.
    ReplacePartitions { partition_by: Vec<String> },
    /// Nothing is replaced: the build's rows are added.
    Append,
    /// Rows whose key matches a new row are replaced, the others added.
    Merge { unique_key: Vec<String> },
}

impl WriteMode {
    /// How a model of `config` is written, or `None` for a model that is not stored.
    pub fn of(config: &ModelConfig) -> Option<WriteMode> {
        match config.materialized {
            Materialization::Table => Some(WriteMode::ReplaceTable),
            Materialization::Partitioned => Some(WriteMode::ReplacePartitions {
                partition_by: config.partition_by.clone(),
            }),
            Materialization::Ephemeral => None,
        }
    }

    /// The table's partition columns.
    pub fn partition_by(&self) -> &[String] {
        match self {
            WriteMode::ReplacePartitions { partition_by } => partition_by,
            _ => &[],
        }
    }
}
