//! Write modes: what a build's commit replaces in its table. A model's materialization becomes
//! a write mode here, in one place.

use crate::project::{IncrementalStrategy, Materialization, ModelConfig};

/// What a commit does with the table's existing files. Each mode knows the table's partition
/// columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Every file is replaced: the table holds exactly this build's rows.
    ReplaceTable { partition_by: Vec<String> },
    /// The files of the partitions the build wrote are replaced; others stay.
    ReplacePartitions { partition_by: Vec<String> },
    /// Nothing is replaced: the build's rows are added.
    Append { partition_by: Vec<String> },
    /// Published rows whose key matches a new row are replaced, the new rows added: the files
    /// holding such rows are rewritten without them.
    Merge {
        partition_by: Vec<String>,
        unique_key: Vec<String>,
    },
}

impl WriteMode {
    /// How a model of `config` is written, or `None` for a model that is not stored. An
    /// incremental model is built whole unless `incremental_run` (its table exists and no full
    /// refresh was asked for).
    pub fn of(config: &ModelConfig, incremental_run: bool) -> Option<WriteMode> {
        let partition_by = config.partition_by.clone();
        match (config.materialized, &config.incremental) {
            (Materialization::Ephemeral, _) => None,
            // Stored as a table: its `partition_by` partitions the export, not the table.
            (Materialization::External, _) => Some(WriteMode::ReplaceTable {
                partition_by: Vec::new(),
            }),
            (Materialization::Partitioned, _) => {
                Some(WriteMode::ReplacePartitions { partition_by })
            }
            (Materialization::Incremental | Materialization::Snapshot, Some(incremental))
                if incremental_run =>
            {
                Some(match &incremental.strategy {
                    IncrementalStrategy::Append => WriteMode::Append { partition_by },
                    IncrementalStrategy::Merge { unique_key } => WriteMode::Merge {
                        partition_by,
                        unique_key: unique_key.clone(),
                    },
                    IncrementalStrategy::InsertOverwrite => {
                        WriteMode::ReplacePartitions { partition_by }
                    }
                })
            }
            // A table, a seed, or an incremental model's (or a snapshot's) first build.
            _ => Some(WriteMode::ReplaceTable { partition_by }),
        }
    }

    /// The table's partition columns.
    pub fn partition_by(&self) -> &[String] {
        match self {
            WriteMode::ReplaceTable { partition_by }
            | WriteMode::ReplacePartitions { partition_by }
            | WriteMode::Append { partition_by }
            | WriteMode::Merge { partition_by, .. } => partition_by,
        }
    }
}
