//! STORAGE: each model is a Delta Lake table under the warehouse. A build writes its files into
//! the table folder without committing ([`ModelTable::stage`]), then publishes them in one Delta
//! commit that also removes the files they replace ([`ModelTable::commit`]), or deletes them
//! ([`ModelTable::discard`]). In: a record batch stream. Out: a committed Delta version.

mod export;
mod history;
mod layout;
mod partition;
mod schema;
mod vacuum;
mod write_mode;

pub use export::{export, export_location};
pub use history::{
    Commit, RECORD_KEY, RecordedTest, RunRecord, TableStates, VersionChange, history, last_build,
    restore, restore_change,
};
pub use vacuum::{VacuumOptions, Vacuumed, vacuum};
pub use write_mode::WriteMode;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Column;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, Expr, SessionContext, col};
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::transaction::{
    CommitBuilder, CommitConflictError, CommitProperties, TransactionError,
};
use deltalake::kernel::{Action, Add, LogicalFileView, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::project::OnSchemaChange;
use crate::session::files::{FileTable, TableFile, TableFiles};
use crate::session::{SessionError, Stores, open_table};

/// Data files roll over to a new file past this size.
const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// The most rows (as Arrow data) a partitioned write holds in its open files before it closes
/// them: delta-rs keeps a file open for each partition, each holding its row group in progress
/// (up to a million rows), so a write over many partitions would otherwise hold nearly all its
/// rows at once.
const PARTITIONED_BYTES_IN_PROGRESS: usize = 256 << 20;

/// The bytes of `batch`'s rows (not of the buffers it may be a slice of).
fn rows_size(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}

/// Something went wrong reading or writing a table.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum StorageError {
    #[error("the output of `{model}` no longer matches its published table at {location}")]
    #[diagnostic(
        code(dp::schema_changed),
        help(
            "{difference}\ndp never changes a published table's columns silently: change the model back, or delete the table folder to rebuild it from scratch"
        )
    )]
    SchemaChanged {
        model: String,
        location: String,
        difference: String,
    },

    #[error("`{model}` has no column `{column}` to partition by")]
    #[diagnostic(
        code(dp::missing_partition_column),
        help("the model outputs: {columns}")
    )]
    MissingPartitionColumn {
        model: String,
        column: String,
        columns: String,
    },

    #[error("`{model}` produced an invalid value for partition column `{column}`: {value:?}")]
    #[diagnostic(
        code(dp::invalid_partition_value),
        help(
            "{reason}; a partition value is data and can never form a path (nothing was published)"
        )
    )]
    InvalidPartitionValue {
        model: String,
        column: String,
        value: String,
        reason: String,
    },

    #[error("another build of `{model}` committed to the same data first: {reason}")]
    #[diagnostic(
        code(dp::conflict),
        help(
            "nothing of this build was published; run it again to build on the other build's result"
        )
    )]
    Conflict { model: String, reason: String },

    #[error(
        "the table folder of `{model}` holds files dp did not write, and no Delta table: {location}"
    )]
    #[diagnostic(
        code(dp::not_a_table),
        help(
            "found {found}; dp creates a model's table only in a folder holding nothing but files a dp build writes, and never deletes what it did not write: point the target's warehouse elsewhere"
        )
    )]
    NotATable {
        model: String,
        location: String,
        found: String,
    },

    #[error("the output of `{model}` no longer matches its published table at {location}")]
    #[diagnostic(
        code(dp::schema_changed),
        help(
            "{difference}\nthe model's on_schema_change is `{policy}`: set on_schema_change='append_new_columns' or 'sync_all_columns', or rebuild it with --full-refresh"
        )
    )]
    IncrementalSchemaChanged {
        model: String,
        location: String,
        difference: String,
        policy: String,
    },

    #[error("whether the commit of `{model}` landed is unknown: {error}")]
    #[diagnostic(
        code(dp::commit_unknown),
        help(
            "the store failed while committing, and then: {check}; the table's log decides (any Delta reader shows whether this build's version is there); its files are kept either way"
        )
    )]
    CommitUnknown {
        model: String,
        error: String,
        check: String,
    },

    #[error("a staged file of `{model}` vanished before the commit: {file}")]
    #[diagnostic(
        code(dp::staged_file_missing),
        help(
            "nothing was published; something deleted a file this build wrote and had not committed yet (a cleanup with a too short retention?); run the build again"
        )
    )]
    StagedFileMissing { model: String, file: String },

    #[error(
        "vacuum of `{model}` refused: a retention of {retain} is shorter than the table's minimum of {minimum}"
    )]
    #[diagnostic(
        code(dp::vacuum_retention),
        help(
            "a build still running may own files younger than that; pass a longer --retain, or --force when no build of this model can be running"
        )
    )]
    RetentionTooShort {
        model: String,
        retain: String,
        minimum: String,
    },

    #[error("reading the output of `{model}`: {source}")]
    #[diagnostic(code(dp::execution))]
    Execution {
        model: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },

    #[error("the export of `{model}` to {location} failed: {message}")]
    #[diagnostic(
        code(dp::export),
        help(
            "an `external` model's rows are exported after its commit: its table is published, its export is not (the previous one, if any, is still in place); fix the location and build it again"
        )
    )]
    Export {
        model: String,
        location: String,
        message: String,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    Session(#[from] SessionError),
}

/// The schema a model of output `output` is published with: what its readers see; or why
/// Delta cannot store it.
pub fn stored_schema(output: &SchemaRef) -> Result<SchemaRef, String> {
    schema::as_stored(&schema::table_schema(output)).map_err(|source| source.to_string())
}

/// The Delta table a model is published to, opened for one build. It may not exist yet: then
/// the build's commit creates it.
pub struct ModelTable {
    model: String,
    url: Url,
    stores: Stores,
    table: DeltaTable,
    mode: WriteMode,
    /// The table's partition columns (those of its write mode).
    partition_by: Vec<String>,
    /// The table's arrow schema: the published one, or the one the first commit creates.
    schema: SchemaRef,
    /// An incremental run: its tests see the table as it will be after the commit.
    incremental: bool,
    /// The commit changes the table's columns (an incremental run's schema evolution).
    evolved: bool,
    /// The commit rewrites every published file (columns dropped or retyped).
    rewrite_all: bool,
    /// The published version's data files, once read.
    published: tokio::sync::OnceCell<Vec<LogicalFileView>>,
    /// The build's query read the table (`{{ this }}`) at the opened version: its commit lands
    /// on that version or not at all (any commit since is a conflict).
    read_by_query: bool,
    /// This build's Delta application transaction id, carried by its commit: a retried commit
    /// that finds its own earlier attempt in the log conflicts with it instead of landing twice,
    /// and the log tells whether a commit whose response was lost landed.
    app_id: String,
}

/// What a rewrite stages: the new files, and the published files they replace by path, with
/// their partition values.
type Rewrites = (Vec<Add>, BTreeMap<String, HashMap<String, Option<String>>>);

/// The two sides of a build's diff (see [`ModelTable::diff_sides`]).
pub struct DiffSides {
    pub before: DataFrame,
    pub before_rows: Option<u64>,
    pub after: DataFrame,
    pub after_rows: Option<u64>,
}

/// Data files, and their rows (when every file's statistics give them).
struct Side {
    files: Vec<DataFile>,
    rows: Option<u64>,
}

impl Default for Side {
    fn default() -> Self {
        Side {
            files: Vec::new(),
            rows: Some(0),
        }
    }
}

impl Side {
    fn add(&mut self, file: DataFile, rows: Option<u64>) {
        self.files.push(file);
        self.rows = self.rows.zip(rows).map(|(total, rows)| total + rows);
    }
}

/// The rows of a staged file, from its statistics.
fn records(add: &Add) -> Option<u64> {
    let stats: serde_json::Value = serde_json::from_str(add.stats.as_deref()?).ok()?;
    stats["numRecords"].as_u64()
}

/// A data file of the table, published or staged: where it is and its partition values.
struct DataFile {
    path: String,
    size: i64,
    partition_values: HashMap<String, Option<String>>,
}

impl From<&LogicalFileView> for DataFile {
    fn from(file: &LogicalFileView) -> Self {
        DataFile {
            path: file.path().to_string(),
            size: file.size(),
            partition_values: file.partition_values_map(),
        }
    }
}

impl From<&Add> for DataFile {
    fn from(add: &Add) -> Self {
        DataFile {
            path: add.path.clone(),
            size: add.size,
            partition_values: add.partition_values.clone(),
        }
    }
}

/// A dp commit's properties: `record` in its commit info, and the log never trimmed (it is the
/// table's history).
pub fn commit_properties(record: &RunRecord) -> CommitProperties {
    let record = serde_json::to_value(record).unwrap_or_default();
    CommitProperties::default()
        .with_cleanup_expired_logs(Some(false))
        .with_metadata([(RECORD_KEY.to_string(), record)])
}

/// A commit that did not go through.
enum Unpublished {
    /// Nothing of it can be in the log: it failed before its commit was written, or lost to
    /// another build's.
    Surely(StorageError),
    /// The commit call itself failed: it may have landed all the same.
    Maybe(StorageError),
}

/// Files written for one build and not yet committed.
#[must_use = "staged files must be committed or discarded"]
pub struct StagedWrite {
    adds: Vec<Add>,
    /// Published files the commit replaces besides what the write mode replaces (those a merge
    /// or a schema change rewrote into `adds`), by path.
    rewritten: BTreeMap<String, HashMap<String, Option<String>>>,
    /// Rows written.
    pub rows: u64,
}

impl StagedWrite {
    /// The files `adds` as a write of their own (to discard them).
    fn of(adds: Vec<Add>) -> Self {
        StagedWrite {
            adds,
            rewritten: BTreeMap::new(),
            rows: 0,
        }
    }

    /// The partitions written, as `col=value/...` keys, in order.
    pub fn partitions(&self) -> BTreeSet<String> {
        self.adds
            .iter()
            .filter(|add| !add.partition_values.is_empty())
            .map(|add| partition::key(&add.partition_values))
            .collect()
    }

    /// How many files were staged (new rows and rewritten ones).
    pub fn files_written(&self) -> usize {
        self.adds.len()
    }

    /// The bytes of the staged files.
    pub fn bytes(&self) -> u64 {
        self.adds.iter().map(|add| add.size.max(0) as u64).sum()
    }

    /// How many published files the commit rewrites.
    pub fn files_rewritten(&self) -> usize {
        self.rewritten.len()
    }
}

impl ModelTable {
    /// Open the table of `model` at `url` for a build whose output has `output` as schema. A
    /// published table whose columns differ from the output is a schema change: an error,
    /// nothing is written, unless `evolution` (an incremental run's policy, or a seed's full
    /// refresh) lets the build's commit change the table's columns. A folder without a table must hold nothing but files a dp
    /// build writes (those of a build running now, or left by a killed one). `read_by_query`:
    /// the version of the table the build's query read (`{{ this }}`); the table is opened at
    /// that version and the commit conflicts with any commit since.
    pub async fn open_for_build(
        stores: &Stores,
        model: &str,
        url: &Url,
        output: &SchemaRef,
        mode: &WriteMode,
        evolution: Option<OnSchemaChange>,
        read_by_query: Option<u64>,
    ) -> Result<Self, StorageError> {
        let partition_by = mode.partition_by();
        let mut evolved = false;
        let mut rewrite_all = false;
        for column in partition_by {
            if output.field_with_name(column).is_err() {
                return Err(StorageError::MissingPartitionColumn {
                    model: model.to_string(),
                    column: column.clone(),
                    columns: schema::column_list(output),
                });
            }
        }
        let wanted = schema::as_stored(&schema::table_schema(output))
            .map_err(|source| delta_error(url, source))?;
        let mut table = open_table(stores, url).await?;
        if let Some(version) = read_by_query
            && table.version() != Some(version)
        {
            table
                .load_version(version)
                .await
                .map_err(|source| delta_error(url, source))?;
        }
        let schema = match table.version() {
            None => {
                let store = table.log_store().object_store(None);
                let foreign: Vec<String> = store
                    .list(None)
                    .try_filter(|meta| {
                        futures::future::ready(!layout::holds(&meta.location, partition_by))
                    })
                    .map_ok(|meta| meta.location.to_string())
                    .take(3)
                    .try_collect()
                    .await
                    .map_err(|source| store_error(url, source))?;
                if !foreign.is_empty() {
                    return Err(StorageError::NotATable {
                        model: model.to_string(),
                        location: url.to_string(),
                        found: foreign.join(", "),
                    });
                }
                wanted
            }
            Some(_) => {
                let state = table
                    .snapshot()
                    .map_err(|source| delta_error(url, source))?;
                let published = state.snapshot().arrow_schema();
                let published_partitions = state.metadata().partition_columns().to_vec();
                match schema::difference(&published, &wanted, &published_partitions, partition_by) {
                    None => published,
                    Some(difference) => {
                        let changed = |policy: &str| StorageError::IncrementalSchemaChanged {
                            model: model.to_string(),
                            location: url.to_string(),
                            difference: difference.clone(),
                            policy: policy.to_string(),
                        };
                        let gone = published
                            .fields()
                            .iter()
                            .any(|f| wanted.field_with_name(f.name()).is_err());
                        let retyped = published.fields().iter().any(|f| {
                            wanted
                                .field_with_name(f.name())
                                .is_ok_and(|w| w.data_type() != f.data_type())
                        });
                        match evolution {
                            None => {
                                return Err(StorageError::SchemaChanged {
                                    model: model.to_string(),
                                    location: url.to_string(),
                                    difference,
                                });
                            }
                            // Partition columns are the table's layout: only a rebuild changes them.
                            Some(_) if published_partitions != partition_by => {
                                return Err(changed(
                                    "any: partition columns never change in place",
                                ));
                            }
                            Some(OnSchemaChange::Fail) => return Err(changed("fail")),
                            // The table's columns, the model's new ones dropped; one it lacks
                            // cannot be written (as in dbt).
                            Some(OnSchemaChange::Ignore) if gone => return Err(changed("ignore")),
                            Some(OnSchemaChange::Ignore) => published,
                            Some(OnSchemaChange::AppendNewColumns) => {
                                let mut fields: Vec<_> =
                                    published.fields().iter().cloned().collect();
                                fields.extend(
                                    wanted
                                        .fields()
                                        .iter()
                                        .filter(|f| published.field_with_name(f.name()).is_err())
                                        .cloned(),
                                );
                                let appended = Arc::new(Schema::new(fields));
                                evolved = appended.fields().len() != published.fields().len();
                                appended
                            }
                            Some(OnSchemaChange::SyncAllColumns) => {
                                evolved = true;
                                rewrite_all = gone || retyped;
                                wanted
                            }
                        }
                    }
                }
            }
        };
        Ok(Self {
            model: model.to_string(),
            url: url.clone(),
            stores: stores.clone(),
            table,
            mode: mode.clone(),
            partition_by: partition_by.to_vec(),
            schema,
            incremental: evolution.is_some() && !matches!(mode, WriteMode::ReplaceTable { .. }),
            evolved,
            rewrite_all,
            published: Default::default(),
            read_by_query: read_by_query.is_some(),
            app_id: format!("dp-{}", uuid::Uuid::new_v4()),
        })
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.table.log_store().object_store(None)
    }

    /// The version of this build's commit, if it landed: the commit carrying its application
    /// transaction, or adding one of the staged files. A line of the log that cannot be read is
    /// an error: staged files must never be deleted because their commit was not understood.
    async fn committed_version(&self, staged: &StagedWrite) -> Result<Option<u64>, StorageError> {
        let names: HashSet<&str> = staged.adds.iter().map(|add| file_name(&add.path)).collect();
        let store = self.store();
        let log = Path::from("_delta_log");
        let commits: Vec<_> = store
            .list(Some(&log))
            .try_filter(|meta| {
                futures::future::ready(is_commit(meta.location.filename().unwrap_or_default()))
            })
            .try_collect()
            .await
            .map_err(|source| self.store_error(source))?;
        for commit in commits {
            let bytes = match store.get(&commit.location).await {
                Ok(get) => get.bytes().await,
                Err(error) => Err(error),
            }
            .map_err(|source| self.store_error(source))?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let action: serde_json::Value = serde_json::from_slice(line).map_err(|error| {
                    self.store_error(object_store::Error::Generic {
                        store: "delta log",
                        source: format!("{}: {error}", commit.location).into(),
                    })
                })?;
                let ours = action["txn"]["appId"].as_str() == Some(self.app_id.as_str())
                    || action["add"]["path"]
                        .as_str()
                        .is_some_and(|path| names.contains(file_name(path)));
                if ours {
                    let version = commit.location.filename().unwrap_or_default();
                    return Ok(version.trim_end_matches(".json").parse().ok());
                }
            }
        }
        Ok(None)
    }

    /// Write `output` into the table folder without committing it. Partition values are checked
    /// batch by batch before the batch is written. On an error the upload in progress is aborted;
    /// files already completed (past the target file size) stay as orphans for a later build to
    /// remove.
    pub async fn stage(
        &self,
        output: SendableRecordBatchStream,
    ) -> Result<StagedWrite, StorageError> {
        self.stage_within(output, PARTITIONED_BYTES_IN_PROGRESS)
            .await
    }

    /// [`ModelTable::stage`], a partitioned write closing its open files whenever they hold
    /// `bound` bytes of rows.
    async fn stage_within(
        &self,
        mut output: SendableRecordBatchStream,
        bound: usize,
    ) -> Result<StagedWrite, StorageError> {
        // A table not created yet indexes Delta's default number of columns.
        let indexed_columns = self
            .table
            .snapshot()
            .ok()
            .map(|state| state.table_config().num_indexed_cols())
            .unwrap_or_default();
        let config = WriterConfig::new(
            self.schema.clone(),
            self.partition_by.clone(),
            None,
            NonZeroU64::new(TARGET_FILE_SIZE),
            None,
            indexed_columns,
            None,
        );
        let mut writer = DeltaWriter::new(self.store(), config.clone());
        let mut rows = 0;
        let mut failure = None;
        // Files closed early by a partitioned write, and the bytes its open files hold.
        let mut closed = Vec::new();
        let mut in_progress = 0;
        while let Some(batch) = output.next().await {
            let written = match batch {
                Err(source) => Err(StorageError::Execution {
                    model: self.model.clone(),
                    source,
                }),
                Ok(batch) => match schema::conform(&batch, &self.schema)
                    .map_err(|source| StorageError::Execution {
                        model: self.model.clone(),
                        source,
                    })
                    .and_then(|batch| {
                        partition::check_batch(&self.model, &batch, &self.partition_by)?;
                        Ok(batch)
                    }) {
                    Ok(batch) => {
                        rows += batch.num_rows() as u64;
                        if !self.partition_by.is_empty() {
                            in_progress += rows_size(&batch);
                        }
                        writer
                            .write(&batch)
                            .await
                            .map_err(|source| self.delta_error(source))
                    }
                    Err(error) => Err(error),
                },
            };
            if let Err(error) = written {
                failure = Some(error);
                break;
            }
            // Every partition's file holds its row group in progress until the writer closes:
            // past the bound, they are closed, and the next rows go to new files.
            if in_progress >= bound {
                let full =
                    std::mem::replace(&mut writer, DeltaWriter::new(self.store(), config.clone()));
                match full.close().await {
                    Ok(adds) => closed.extend(adds),
                    Err(source) => {
                        failure = Some(self.delta_error(source));
                        break;
                    }
                }
                in_progress = 0;
            }
        }
        if let Some(error) = failure {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(model = %self.model, error = %abort, "could not abort the upload of a staged file");
            }
            self.discard(StagedWrite::of(closed)).await;
            return Err(error);
        }
        let adds = match writer.close().await {
            Ok(adds) => closed.into_iter().chain(adds).collect(),
            Err(source) => {
                self.discard(StagedWrite::of(closed)).await;
                return Err(self.delta_error(source));
            }
        };
        Ok(StagedWrite {
            adds,
            rewritten: BTreeMap::new(),
            rows,
        })
    }

    /// Whether the commit of `staged` replaces a published file: as the write mode says (the
    /// whole table, or the partitions written), or because it was rewritten into `staged`.
    fn replaces<'a>(&'a self, staged: &'a StagedWrite) -> impl Fn(&LogicalFileView) -> bool + 'a {
        let partitions = staged.partitions();
        move |file| {
            staged.rewritten.contains_key(file.path().as_ref())
                || match &self.mode {
                    WriteMode::ReplaceTable { .. } => true,
                    WriteMode::ReplacePartitions { .. } => {
                        partitions.contains(&partition::key(&file.partition_values_map()))
                    }
                    WriteMode::Append { .. } | WriteMode::Merge { .. } => false,
                }
        }
    }

    /// The data files of the published version (none before the table exists), read from the
    /// log once per opened version.
    async fn published_files(&self) -> Result<Vec<LogicalFileView>, StorageError> {
        if self.table.version().is_none() {
            return Ok(Vec::new());
        }
        self.published
            .get_or_try_init(|| async {
                self.table
                    .get_active_add_actions_by_partitions(&[])
                    .try_collect()
                    .await
                    .map_err(|source| self.delta_error(source))
            })
            .await
            .cloned()
    }

    /// For an incremental run, stage the published rows the commit must rewrite, next to the
    /// run's new rows in `staged`: a merge's files holding a key of the new rows (only in the
    /// partitions the new rows touch when the partition columns are part of the key, and whose
    /// partition passes the `predicates`), without the rows of those keys; every file, when
    /// the table's columns are dropped or retyped. Their files are replaced in the same commit.
    /// On an error, every staged file is deleted.
    pub async fn stage_rewrites(
        &self,
        session: &SessionContext,
        mut staged: StagedWrite,
        predicates: &[String],
    ) -> Result<StagedWrite, StorageError> {
        match self.rewrites(session, &staged, predicates).await {
            Ok(Some((adds, rewritten))) => {
                staged.adds.extend(adds);
                staged.rewritten = rewritten;
                Ok(staged)
            }
            Ok(None) => Ok(staged),
            Err(error) => {
                self.discard(staged).await;
                Err(error)
            }
        }
    }

    /// The files [`Self::stage_rewrites`] writes, and the published files they replace (by
    /// path, with their partition values); `None` when nothing is to be rewritten.
    async fn rewrites(
        &self,
        session: &SessionContext,
        staged: &StagedWrite,
        predicates: &[String],
    ) -> Result<Option<Rewrites>, StorageError> {
        if self.table.version().is_none() || staged.adds.is_empty() {
            return Ok(None);
        }
        let unique_key = match &self.mode {
            WriteMode::Merge { unique_key, .. } => Some(unique_key.as_slice()),
            _ if self.rewrite_all => None,
            _ => return Ok(None),
        };
        let touched = staged.partitions();
        let by_partition = unique_key.is_some_and(|key| {
            !self.partition_by.is_empty() && self.partition_by.iter().all(|c| key.contains(c))
        });
        let replaced_anyway = self.replaces(staged);
        // The predicates are asked once per partition, not once per file.
        let mut passing: BTreeMap<String, bool> = BTreeMap::new();
        let mut candidates: Vec<DataFile> = Vec::new();
        for file in self.published_files().await? {
            let file_partition = partition::key(&file.partition_values_map());
            let in_scope = self.rewrite_all || !by_partition || touched.contains(&file_partition);
            if !in_scope || replaced_anyway(&file) {
                continue;
            }
            let passes = self.rewrite_all
                || match passing.get(&file_partition) {
                    Some(passes) => *passes,
                    None => {
                        let values = file.partition_values_map();
                        let passes =
                            partition::passes(session, &values, &self.schema, predicates).await?;
                        *passing.entry(file_partition).or_insert(passes)
                    }
                };
            if passes {
                candidates.push(DataFile::from(&file));
            }
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        let execution = |source| StorageError::Execution {
            model: self.model.clone(),
            source,
        };
        let mut kept = self.frame_of(session, &candidates)?;
        if let Some(key) = unique_key {
            let new_files: Vec<DataFile> = staged.adds.iter().map(DataFile::from).collect();
            let key_columns: Vec<Expr> = key
                .iter()
                .map(|c| col(Column::new_unqualified(c)))
                .collect();
            let new_keys = self
                .frame_of(session, &new_files)?
                .select(key_columns)
                .map_err(execution)?;
            let key: Vec<&str> = key.iter().map(String::as_str).collect();
            kept = kept
                .join(
                    new_keys,
                    datafusion::common::JoinType::LeftAnti,
                    &key,
                    &key,
                    None,
                )
                .map_err(execution)?;
        }
        let stream = kept.execute_stream().await.map_err(execution)?;
        let written = self.stage(stream).await?;
        let replaced = candidates
            .into_iter()
            .map(|file| (file.path, file.partition_values))
            .collect();
        Ok(Some((written.adds, replaced)))
    }

    /// Publish `staged` in one Delta commit that also removes the files it replaces: all of the
    /// table's files, or for a partitioned model, those of the partitions it wrote. The first
    /// build's commit creates the table, even with no rows. A later partitioned build that wrote
    /// no rows commits nothing. Every staged file is checked to exist first: a version never
    /// points at a missing file. The commit info carries `record`, with the partitions and rows
    /// written.
    pub async fn commit(
        mut self,
        staged: StagedWrite,
        mut record: RunRecord,
    ) -> Result<Option<u64>, StorageError> {
        record.partitions = staged.partitions().into_iter().collect();
        record.rows = staged.rows;
        if let Err(error) = self.check_staged_files(&staged).await {
            self.discard(staged).await;
            return Err(error);
        }
        let error = match self.publish(&staged, &record).await {
            Ok(version) => return Ok(version),
            Err(Unpublished::Surely(error)) => {
                // A conditional put whose response was lost and that the client retried reads
                // as a lost race (the retry finds the version taken, by this very commit): the
                // log tells. Its files must then stay.
                if matches!(error, StorageError::Conflict { .. })
                    && let Ok(Some(version)) = self.committed_version(&staged).await
                {
                    tracing::warn!(model = %self.model, %error, version, "the commit reported a conflict with itself: it is in the log");
                    return Ok(Some(version));
                }
                self.discard(staged).await;
                return Err(error);
            }
            Err(Unpublished::Maybe(error)) => error,
        };
        // The commit call failed, yet it may have landed (a post-commit step failed, a retried
        // put had gone through): the log tells. The store's own errors are transient: ask a few
        // times before giving up.
        let mut committed = self.committed_version(&staged).await;
        for attempt in 1..=5 {
            if committed.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            committed = self.committed_version(&staged).await;
        }
        match committed {
            Ok(Some(version)) => {
                tracing::warn!(model = %self.model, %error, version, "the commit reported an error but is in the log");
                Ok(Some(version))
            }
            // Not in the log: the build failed. On a table that exists its files stay for
            // `dp vacuum` (past the retention), since a store may still land a put it reported
            // as failed; where no table was created, no vacuum could reach them.
            Ok(None) => {
                if matches!(
                    open_table(&self.stores, &self.url)
                        .await
                        .map(|t| t.version()),
                    Ok(None)
                ) {
                    self.discard(staged).await;
                } else {
                    tracing::warn!(model = %self.model, %error, "the commit failed; its staged files are left to dp vacuum");
                }
                // A build that adds rows to what is there must not run again while its put
                // may still land: its rows would be there twice. A replace may.
                match self.mode {
                    WriteMode::Append { .. } | WriteMode::Merge { .. } => {
                        Err(StorageError::CommitUnknown {
                            model: self.model.clone(),
                            error: error.to_string(),
                            check: "it is not in the log, yet a store may land a put it reported as failed, and an incremental run is not repeated blindly".into(),
                        })
                    }
                    _ => Err(error),
                }
            }
            Err(unknown) => Err(StorageError::CommitUnknown {
                model: self.model.clone(),
                error: error.to_string(),
                check: unknown.to_string(),
            }),
        }
    }

    /// Create the table with the staged files, or commit them to the table as it is. When
    /// another build created the table meanwhile, commit on top of its version if it wrote other
    /// partitions with the same columns (two first builds of a backfill), else it is a conflict.
    async fn publish(
        &mut self,
        staged: &StagedWrite,
        record: &RunRecord,
    ) -> Result<Option<u64>, Unpublished> {
        let surely = Unpublished::Surely;
        let mut rebased = false;
        if self.table.version().is_none() {
            match self.create(staged, record).await? {
                Some(version) => return Ok(Some(version)),
                None => {
                    // Version 0 may be this very commit, its response lost and the put retried.
                    if let Some(version) = self.committed_version(staged).await.map_err(surely)? {
                        return Ok(Some(version));
                    }
                    // On the version that won, not a later one: the commits since are checked
                    // for conflicts with this one (a vacuum's among them).
                    self.published = Default::default();
                    self.table = open_table(&self.stores, &self.url)
                        .await
                        .map_err(|e| surely(e.into()))?;
                    if self.table.version() != Some(0) {
                        self.table
                            .load_version(0)
                            .await
                            .map_err(|e| surely(self.delta_error(e)))?;
                    }
                    let state = self
                        .table
                        .snapshot()
                        .map_err(|e| surely(self.delta_error(e)))?;
                    let published = state.snapshot().arrow_schema();
                    let partitions = state.metadata().partition_columns().to_vec();
                    if schema::difference(&published, &self.schema, &partitions, &self.partition_by)
                        .is_some()
                    {
                        return Err(surely(
                            self.conflict("it created the table with other columns"),
                        ));
                    }
                    rebased = true;
                }
            }
        }
        if staged.adds.is_empty() && !matches!(self.mode, WriteMode::ReplaceTable { .. }) {
            return Ok(None);
        }
        let replaces = self.replaces(staged);
        let replaced: Vec<Action> = self
            .published_files()
            .await
            .map_err(surely)?
            .iter()
            .filter(|file| replaces(file))
            .map(|file| Action::Remove(file.remove_action(true)))
            .collect();
        if rebased && !replaced.is_empty() {
            return Err(surely(
                self.conflict("it created the table with data this build also wrote"),
            ));
        }
        let snapshot = self
            .table
            .snapshot()
            .map_err(|e| surely(self.delta_error(e)))?;
        let mut actions = Vec::new();
        if self.evolved && !rebased {
            // The table's new columns, in the commit that writes them.
            let metadata = self
                .evolved_metadata(snapshot.metadata())
                .map_err(|e| surely(self.delta_error(e)))?;
            actions.push(Action::Metadata(metadata));
        }
        actions.extend(replaced);
        actions.extend(staged.adds.iter().cloned().map(Action::Add));
        self.commit_builder(actions, record)
            .build(
                Some(snapshot),
                self.table.log_store(),
                self.operation(staged),
            )
            .await
            .map(|finalized| Some(finalized.version()))
            .map_err(|e| self.commit_error(e))
    }

    /// Write version 0 with the table's definition and the staged files, only if no other build
    /// wrote it first: `None` when one did. (delta-rs, finding version 0 taken, would retry the
    /// commit on top of it as version 1 without a conflict check: a second table definition,
    /// both builds' rows.)
    async fn create(
        &self,
        staged: &StagedWrite,
        record: &RunRecord,
    ) -> Result<Option<u64>, Unpublished> {
        let surely = |e| Unpublished::Surely(self.delta_error(e));
        let mut actions: Vec<Action> = self.create_actions().map_err(surely)?.into();
        actions.extend(staged.adds.iter().cloned().map(Action::Add));
        let log_store = self.table.log_store();
        let prepared = self
            .commit_builder(actions, record)
            .build(None, log_store.clone(), self.operation(staged))
            .into_prepared_commit_future()
            .await
            .map_err(surely)?;
        let entry = prepared.commit_or_bytes().clone();
        let operation_id = uuid::Uuid::new_v4();
        let written = log_store
            .write_commit_entry(0, entry.clone(), operation_id)
            .await;
        if written.is_err()
            && let Err(abort) = log_store.abort_commit_entry(0, entry, operation_id).await
        {
            tracing::warn!(model = %self.model, error = %abort, "could not remove a temporary commit file");
        }
        match written {
            Ok(()) => Ok(Some(0)),
            Err(TransactionError::VersionAlreadyExists(0)) => Ok(None),
            Err(error) => Err(Unpublished::Maybe(
                self.delta_error(DeltaTableError::Transaction { source: error }),
            )),
        }
    }

    fn commit_builder(&self, actions: Vec<Action>, record: &RunRecord) -> CommitBuilder {
        let mut properties = commit_properties(record).with_application_transaction(Transaction {
            app_id: self.app_id.clone(),
            version: 1,
            last_updated: Some(chrono::Utc::now().timestamp_millis()),
        });
        if self.read_by_query {
            // No rebase onto a version the query did not read.
            properties = properties.with_max_retries(0);
        }
        CommitBuilder::from(properties).with_actions(actions)
    }

    /// The commit's operation: an overwrite of exactly the partitions written (for a partitioned
    /// model), which Delta's conflict check compares with what concurrent commits wrote.
    fn operation(&self, staged: &StagedWrite) -> DeltaOperation {
        let partition_by = (!self.partition_by.is_empty()).then(|| self.partition_by.clone());
        match &self.mode {
            // A rewrite conflicts with any commit to the partitions it reads and rewrites.
            _ if !staged.rewritten.is_empty() => DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                predicate: Some(match partition_by.is_some() {
                    true => partition::predicate(
                        staged
                            .adds
                            .iter()
                            .map(|add| &add.partition_values)
                            .chain(staged.rewritten.values()),
                    ),
                    false => "true".into(),
                }),
                partition_by,
            },
            WriteMode::ReplacePartitions { .. } if !staged.adds.is_empty() => {
                DeltaOperation::Write {
                    mode: SaveMode::Overwrite,
                    partition_by,
                    predicate: Some(partition::predicate(
                        staged.adds.iter().map(|add| &add.partition_values),
                    )),
                }
            }
            // A merge reads the partitions it writes to (whether a key is there): any commit to
            // them since its snapshot is a conflict, even when it rewrote no file.
            WriteMode::Merge { .. } => DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                predicate: Some(match partition_by.is_some() {
                    true => {
                        partition::predicate(staged.adds.iter().map(|add| &add.partition_values))
                    }
                    false => "true".into(),
                }),
                partition_by,
            },
            WriteMode::Append { .. } => DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by,
                predicate: None,
            },
            _ => DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by,
                predicate: Some("true".into()),
            },
        }
    }

    /// A failed commit call: a conflict left no trace, anything else may have landed.
    fn commit_error(&self, error: DeltaTableError) -> Unpublished {
        match error {
            DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(CommitConflictError::MetadataChanged),
            } => Unpublished::Surely(self.conflict(
                "the table's metadata changed since this build read it (its columns, or a `dp vacuum` that started meanwhile)",
            )),
            DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(_),
            } => Unpublished::Surely(self.conflict(match self.read_by_query {
                true => "its query read the table (`{{ this }}`), and another commit landed since the version it read",
                false => "other commits kept landing first",
            })),
            DeltaTableError::Transaction {
                source:
                    source @ (TransactionError::CommitConflict(_)
                    | TransactionError::VersionAlreadyExists(_)),
            } => Unpublished::Surely(self.conflict(&source.to_string())),
            other => Unpublished::Maybe(self.delta_error(other)),
        }
    }

    fn conflict(&self, reason: &str) -> StorageError {
        StorageError::Conflict {
            model: self.model.clone(),
            reason: reason.to_string(),
        }
    }

    /// The table's metadata with this build's columns.
    fn evolved_metadata(
        &self,
        published: &deltalake::kernel::Metadata,
    ) -> Result<deltalake::kernel::Metadata, DeltaTableError> {
        use deltalake::kernel::MetadataExt;
        let structure =
            deltalake::kernel::StructType::try_new(schema::delta_columns(&self.schema)?)?;
        Ok(published.clone().with_schema(&structure)?)
    }

    /// The protocol and metadata actions that create the table in the first build's commit.
    fn create_actions(&self) -> Result<[Action; 2], DeltaTableError> {
        let structure =
            deltalake::kernel::StructType::try_new(schema::delta_columns(&self.schema)?)?;
        let metadata = deltalake::kernel::new_metadata(
            &structure,
            &self.partition_by,
            std::iter::empty::<(String, String)>(),
        )?;
        // As `DeltaTable::create` writes it: reader 1, writer 2; a timestamp without a time
        // zone needs the timestampNtz table feature (reader 3, writer 7).
        let protocol = if structure
            .fields()
            .any(|f| schema::has_timestamp_ntz(f.data_type()))
        {
            serde_json::json!({
                "minReaderVersion": 3,
                "minWriterVersion": 7,
                "readerFeatures": ["timestampNtz"],
                "writerFeatures": ["timestampNtz"],
            })
        } else {
            serde_json::json!({"minReaderVersion": 1, "minWriterVersion": 2})
        };
        let protocol: deltalake::kernel::Protocol = serde_json::from_value(protocol)?;
        Ok([Action::Protocol(protocol), Action::Metadata(metadata)])
    }

    /// Every staged file must still be there: something may have deleted it since it was
    /// written (a cleanup with a too short retention), and a version naming it would be corrupt.
    async fn check_staged_files(&self, staged: &StagedWrite) -> Result<(), StorageError> {
        let store = self.store();
        for add in &staged.adds {
            let path = Path::parse(&add.path).map_err(|source| self.store_error(source.into()))?;
            match store.head(&path).await {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(StorageError::StagedFileMissing {
                        model: self.model.clone(),
                        file: add.path.clone(),
                    });
                }
                Err(other) => return Err(self.store_error(other)),
            }
        }
        Ok(())
    }

    /// The rows a build's tests see, as a DataFrame in `session`: exactly the files `staged`
    /// wrote (a Delta reader would not see them yet); for an incremental run, the table as it
    /// will be after the commit (the published files it keeps, and the staged ones).
    pub async fn audited_frame(
        &self,
        session: &SessionContext,
        staged: &StagedWrite,
    ) -> Result<DataFrame, StorageError> {
        let (_, after) = self.sides(staged).await?;
        self.frame_of(session, &after.files)
    }

    /// The two sides of `staged`'s diff, as DataFrames in `session`: the published rows its
    /// commit replaces (for an incremental run, the whole table) and the rows its tests see
    /// after it, each with its row count from the files' statistics when every file has them.
    pub async fn diff_sides(
        &self,
        session: &SessionContext,
        staged: &StagedWrite,
    ) -> Result<DiffSides, StorageError> {
        let (before, after) = self.sides(staged).await?;
        Ok(DiffSides {
            before: self.frame_of(session, &before.files)?,
            before_rows: before.rows,
            after: self.frame_of(session, &after.files)?,
            after_rows: after.rows,
        })
    }

    /// The files `staged`'s commit replaces, and those the table holds after it (for an
    /// incremental run: the whole table before, and the files it keeps with the staged ones).
    async fn sides(&self, staged: &StagedWrite) -> Result<(Side, Side), StorageError> {
        let replaces = self.replaces(staged);
        let (mut before, mut after) = (Side::default(), Side::default());
        for add in &staged.adds {
            after.add(DataFile::from(add), records(add));
        }
        for file in self.published_files().await?.iter() {
            let rows = file.num_records().map(|n| n as u64);
            if self.incremental || replaces(file) {
                before.add(DataFile::from(file), rows);
            }
            if self.incremental && !replaces(file) {
                after.add(DataFile::from(file), rows);
            }
        }
        Ok((before, after))
    }

    /// The table's partition columns.
    pub fn partition_by(&self) -> &[String] {
        &self.partition_by
    }

    /// Whether the commit replaces exactly the partitions the build wrote (and nothing else).
    pub fn replaces_written_partitions(&self) -> bool {
        !self.incremental && matches!(self.mode, WriteMode::ReplacePartitions { .. })
    }

    /// The rows of `files` of this table as a DataFrame in `session`, with the partition values
    /// of each file as columns; a file without a column of the table reads it as NULL.
    fn frame_of(
        &self,
        session: &SessionContext,
        files: &[DataFile],
    ) -> Result<DataFrame, StorageError> {
        // The table's store, for the scans planned in this process.
        self.table
            .update_datafusion_session(&session.state())
            .map_err(|source| self.delta_error(source))?;
        let files = files
            .iter()
            .map(|file| {
                TableFile::new(
                    file.path.clone(),
                    file.size,
                    &file.partition_values,
                    &self.partition_by,
                )
            })
            .collect();
        let files = TableFiles::new(&self.url, self.partition_by.clone(), files);
        session
            .read_table(Arc::new(FileTable::new(self.schema.clone(), files)))
            .map_err(|source| StorageError::Execution {
                model: self.model.clone(),
                source,
            })
    }

    /// Delete the files of a build that will not be committed.
    pub async fn discard(&self, staged: StagedWrite) {
        let store = self.store();
        for add in &staged.adds {
            let deleted = match Path::parse(&add.path) {
                Ok(path) => store.delete(&path).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = deleted {
                tracing::warn!(model = %self.model, file = %add.path, %error, "could not delete a staged file; the next build removes it");
            }
        }
    }

    fn delta_error(&self, source: DeltaTableError) -> StorageError {
        delta_error(&self.url, source)
    }

    fn store_error(&self, source: object_store::Error) -> StorageError {
        store_error(&self.url, source)
    }
}

/// Whether a file of `_delta_log/` is a commit (`00000000000000000042.json`), not a temporary
/// file a killed writer left or a checkpoint.
fn is_commit(name: &str) -> bool {
    name.strip_suffix(".json")
        .is_some_and(|version| version.len() == 20 && version.bytes().all(|b| b.is_ascii_digit()))
}

/// The last segment of a file path: data files are named uniquely by their writer, so the name
/// alone identifies a file whatever encoding the partition folders got.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn store_error(url: &Url, source: object_store::Error) -> StorageError {
    StorageError::Session(SessionError::ObjectStore {
        location: url.to_string(),
        source,
    })
}

fn delta_error(url: &Url, source: DeltaTableError) -> StorageError {
    StorageError::Session(SessionError::Delta {
        location: url.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::physical_plan::memory::MemoryStream;

    use super::*;

    fn output(dates: &[&str], value: i64) -> (SchemaRef, SendableRecordBatchStream) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("date", DataType::Utf8, false),
            Field::new("value", DataType::Int64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(dates.to_vec())),
                Arc::new(Int64Array::from(vec![value; dates.len()])),
            ],
        )
        .unwrap();
        let stream = MemoryStream::try_new(vec![batch], schema.clone(), None).unwrap();
        (schema, Box::pin(stream))
    }

    /// The table at `url` opened for a build that replaces it whole.
    async fn open_whole(url: &Url, schema: &SchemaRef) -> Result<ModelTable, StorageError> {
        let mode = WriteMode::ReplaceTable {
            partition_by: vec![],
        };
        ModelTable::open_for_build(&Stores::default(), "model", url, schema, &mode, None, None)
            .await
    }

    async fn open(dir: &tempfile::TempDir, partition_by: &[&str]) -> ModelTable {
        open_read(dir, partition_by, None).await
    }

    /// The table opened for a build whose query read it at version `read`, if any.
    async fn open_read(
        dir: &tempfile::TempDir,
        partition_by: &[&str],
        read: Option<u64>,
    ) -> ModelTable {
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let (schema, _) = output(&[], 0);
        let mode = match partition_by {
            [] => WriteMode::ReplaceTable {
                partition_by: vec![],
            },
            columns => WriteMode::ReplacePartitions {
                partition_by: columns.iter().map(|c| c.to_string()).collect(),
            },
        };
        ModelTable::open_for_build(
            &Stores::default(),
            "model",
            &url,
            &schema,
            &mode,
            None,
            read,
        )
        .await
        .unwrap()
    }

    async fn stage(table: &ModelTable, dates: &[&str], value: i64) -> StagedWrite {
        table.stage(output(dates, value).1).await.unwrap()
    }

    fn parquet_file_paths(dir: &tempfile::TempDir) -> Vec<std::path::PathBuf> {
        walkdir::WalkDir::new(dir.path())
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .filter(|p| p.to_string_lossy().ends_with(".parquet"))
            .collect()
    }

    fn parquet_files(dir: &tempfile::TempDir) -> usize {
        parquet_file_paths(dir).len()
    }

    /// Commit `staged` to `table` with an empty run record.
    async fn commit(table: ModelTable, staged: StagedWrite) -> Result<Option<u64>, StorageError> {
        table.commit(staged, RunRecord::default()).await
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_builds_of_the_same_partition_never_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir, &["date"]).await;
        let second = open(&dir, &["date"]).await;
        let first_files = stage(&first, &["2024-01-15"], 1).await;
        let second_files = stage(&second, &["2024-01-15"], 2).await;
        assert!(commit(first, first_files).await.unwrap().is_some());
        let lost = commit(second, second_files).await;
        assert!(
            matches!(lost, Err(StorageError::Conflict { .. })),
            "{lost:?}"
        );
        assert_eq!(
            parquet_files(&dir),
            1,
            "the losing build's files are deleted"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_merges_into_the_same_new_partition_never_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let created = open(&dir, &["date"]).await;
        let files = stage(&created, &["2024-01-15"], 1).await;
        commit(created, files).await.unwrap();
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let (schema, _) = output(&[], 0);
        let mode = WriteMode::Merge {
            partition_by: vec!["date".into()],
            unique_key: vec!["date".into()],
        };
        let stores = Stores::default();
        let merge =
            || ModelTable::open_for_build(&stores, "model", &url, &schema, &mode, None, None);
        let (first, second) = (merge().await.unwrap(), merge().await.unwrap());
        // Neither finds a file to rewrite (the partition is new): both would add the key.
        let session = SessionContext::new();
        let first_files = first
            .stage_rewrites(&session, stage(&first, &["2024-01-16"], 1).await, &[])
            .await
            .unwrap();
        let second_files = second
            .stage_rewrites(&session, stage(&second, &["2024-01-16"], 2).await, &[])
            .await
            .unwrap();
        assert_eq!(first_files.files_rewritten(), 0);
        assert!(commit(first, first_files).await.unwrap().is_some());
        let lost = commit(second, second_files).await;
        assert!(
            matches!(lost, Err(StorageError::Conflict { .. })),
            "{lost:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_first_builds_of_the_same_data_never_both_commit() {
        for partition_by in [&["date"][..], &[]] {
            let dir = tempfile::tempdir().unwrap();
            let first = open(&dir, partition_by).await;
            let second = open(&dir, partition_by).await;
            let first_files = stage(&first, &["2024-01-15"], 1).await;
            let second_files = stage(&second, &["2024-01-15"], 2).await;
            assert_eq!(commit(first, first_files).await.unwrap(), Some(0));
            let lost = commit(second, second_files).await;
            assert!(
                matches!(lost, Err(StorageError::Conflict { .. })),
                "{lost:?}"
            );
            assert_eq!(parquet_files(&dir), 1, "the loser's files are deleted");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_first_builds_of_different_partitions_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir, &["date"]).await;
        let second = open(&dir, &["date"]).await;
        let first_files = stage(&first, &["2024-01-15"], 1).await;
        let second_files = stage(&second, &["2024-01-16"], 2).await;
        assert_eq!(commit(first, first_files).await.unwrap(), Some(0));
        assert_eq!(commit(second, second_files).await.unwrap(), Some(1));
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        assert_eq!(published.get_file_uris().unwrap().count(), 2);
        assert_eq!(
            published.snapshot().unwrap().metadata().partition_columns(),
            &["date"]
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_first_build_creates_the_table_in_its_own_commit_even_without_rows() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &[], 1).await;
        assert_eq!(commit(table, staged).await.unwrap(), Some(0));
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        assert_eq!(published.version(), Some(0));
        assert_eq!(published.get_file_uris().unwrap().count(), 0);
        let log = std::fs::read_dir(dir.path().join("model/_delta_log")).unwrap();
        assert_eq!(log.count(), 1, "one commit, no separate create");
        // A later partitioned build without rows commits nothing.
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &[], 1).await;
        assert_eq!(commit(table, staged).await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn builds_of_different_partitions_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let creator = open(&dir, &["date"]).await;
        let created = stage(&creator, &["2024-01-14"], 0).await;
        commit(creator, created).await.unwrap();
        let first = open(&dir, &["date"]).await;
        let second = open(&dir, &["date"]).await;
        let first_files = stage(&first, &["2024-01-15"], 1).await;
        let second_files = stage(&second, &["2024-01-16"], 2).await;
        let v1 = commit(first, first_files).await.unwrap();
        let v2 = commit(second, second_files).await.unwrap();
        assert_eq!((v1, v2), (Some(1), Some(2)));
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        assert_eq!(published.get_file_uris().unwrap().count(), 3);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_build_whose_query_read_the_table_conflicts_with_any_commit_since() {
        let dir = tempfile::tempdir().unwrap();
        let creator = open(&dir, &["date"]).await;
        let created = stage(&creator, &["2024-01-14"], 0).await;
        commit(creator, created).await.unwrap();
        // Its query read version 0 (`{{ this }}`); another build then commits another date.
        let reader = open_read(&dir, &["date"], Some(0)).await;
        let read_files = stage(&reader, &["2024-01-16"], 1).await;
        let other = open(&dir, &["date"]).await;
        let other_files = stage(&other, &["2024-01-15"], 2).await;
        assert_eq!(commit(other, other_files).await.unwrap(), Some(1));
        let error = commit(reader, read_files).await.unwrap_err();
        assert!(matches!(error, StorageError::Conflict { .. }), "{error}");
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        assert_eq!(published.version(), Some(1));
        assert_eq!(published.get_file_uris().unwrap().count(), 2);
        // The loser's staged file is gone, the two committed ones stay.
        assert_eq!(parquet_files(&dir), 2);
    }

    /// Partition values the Delta writer percent-encodes into their folder's name, and some it
    /// does not.
    const AWKWARD_VALUES: [&str; 14] = [
        "São Paulo",
        "Zürich",
        "a:b",
        "50%",
        "50%25",
        "it's",
        "a b",
        "x=y",
        "2024-01-15 10:00:00",
        "#hash?q&r+s",
        "日本",
        "emoji 😀",
        "tab\u{a0}nbsp",
        "plain",
    ];

    /// `(date, value)` rows of `frame`, sorted.
    async fn date_values(frame: DataFrame) -> Vec<(String, i64)> {
        let batches = frame.collect().await.unwrap();
        let mut rows = Vec::new();
        for batch in batches {
            let batch = schema::conform(&batch, &output(&[], 0).0).unwrap();
            let dates = batch
                .column(0)
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap();
            let values = batch
                .column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            for i in 0..batch.num_rows() {
                rows.push((dates.value(i).to_string(), values.value(i)));
            }
        }
        rows.sort();
        rows
    }

    fn expected(value: i64) -> Vec<(String, i64)> {
        let mut rows: Vec<_> = AWKWARD_VALUES
            .iter()
            .map(|date| (date.to_string(), value))
            .collect();
        rows.sort();
        rows
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn every_partition_value_round_trips_through_staging_audit_diff_and_commit() {
        let dir = tempfile::tempdir().unwrap();
        let session = SessionContext::new();
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &AWKWARD_VALUES, 1).await;
        let audited = table.audited_frame(&session, &staged).await.unwrap();
        assert_eq!(
            date_values(audited).await,
            expected(1),
            "the tests read the staged rows"
        );
        assert_eq!(commit(table, staged).await.unwrap(), Some(0));

        // A rebuild of every partition: its diff reads the published rows it replaces.
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &AWKWARD_VALUES, 2).await;
        let sides = table.diff_sides(&session, &staged).await.unwrap();
        assert_eq!(date_values(sides.before).await, expected(1));
        assert_eq!(date_values(sides.after).await, expected(2));
        assert_eq!(commit(table, staged).await.unwrap(), Some(1));

        // delta-rs reads every value back, from the files of the rebuild only.
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        published
            .update_datafusion_session(&session.state())
            .unwrap();
        session
            .register_table("published", published.table_provider().await.unwrap())
            .unwrap();
        let frame = session.table("published").await.unwrap();
        assert_eq!(date_values(frame).await, expected(2));
        assert_eq!(
            published.get_file_uris().unwrap().count(),
            AWKWARD_VALUES.len()
        );
        // The first build's files are removed from the table, kept on disk for a vacuum.
        assert_eq!(parquet_files(&dir), 2 * AWKWARD_VALUES.len());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_partitioned_write_past_its_bound_closes_its_files_and_loses_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let (schema, _) = output(&[], 0);
        let batches: Vec<RecordBatch> = (0..3)
            .map(|value| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![
                        Arc::new(StringArray::from(vec!["a", "b"])),
                        Arc::new(Int64Array::from(vec![value; 2])),
                    ],
                )
                .unwrap()
            })
            .collect();
        let stream = MemoryStream::try_new(batches, schema, None).unwrap();
        // A bound of one byte: every batch closes the files it wrote to.
        let staged = table.stage_within(Box::pin(stream), 1).await.unwrap();
        assert_eq!(parquet_files(&dir), 6);
        assert_eq!(staged.rows, 6);
        assert_eq!(
            staged.partitions().into_iter().collect::<Vec<_>>(),
            ["date=a", "date=b"]
        );
        let session = SessionContext::new();
        let audited = table.audited_frame(&session, &staged).await.unwrap();
        let rows = date_values(audited).await;
        let expected: Vec<(String, i64)> = ["a", "b"]
            .iter()
            .flat_map(|date| (0..3).map(|value| (date.to_string(), value)))
            .collect();
        assert_eq!(rows, expected);
        assert_eq!(commit(table, staged).await.unwrap(), Some(0));
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_first_build_with_a_timestamp_without_zone_creates_a_readable_table() {
        use datafusion::arrow::array::TimestampMicrosecondArray;
        use datafusion::arrow::datatypes::TimeUnit;
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(TimestampMicrosecondArray::from(vec![
                1_700_000_000_000_000,
            ]))],
        )
        .unwrap();
        let stream = MemoryStream::try_new(vec![batch], schema.clone(), None).unwrap();
        let table = open_whole(&url, &schema).await.unwrap();
        let staged = table.stage(Box::pin(stream)).await.unwrap();
        assert_eq!(commit(table, staged).await.unwrap(), Some(0));
        let published = crate::session::open_published(&Stores::default(), &url, "model")
            .await
            .unwrap();
        assert_eq!(published.get_file_uris().unwrap().count(), 1);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_model_with_a_list_column_builds_twice() {
        use datafusion::arrow::array::{ListArray, types::Int64Type};
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        // DataFusion names a list's items `item`; Delta reads them back as `element`.
        let list = DataType::List(Arc::new(Field::new("item", DataType::Int64, true)));
        let schema = Arc::new(Schema::new(vec![Field::new("xs", list, true)]));
        for build in 0..2 {
            let values = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![Some(vec![
                Some(build),
                Some(2),
            ])]);
            let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap();
            let stream = MemoryStream::try_new(vec![batch], schema.clone(), None).unwrap();
            let table = open_whole(&url, &schema)
                .await
                .unwrap_or_else(|e| panic!("build {build}: {e}"));
            let staged = table.stage(Box::pin(stream)).await.unwrap();
            assert_eq!(commit(table, staged).await.unwrap(), Some(build as u64));
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_column_delta_cannot_store_fails_before_any_file_is_written() {
        use datafusion::arrow::datatypes::TimeUnit;
        let dir = tempfile::tempdir().unwrap();
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Time64(TimeUnit::Microsecond),
            true,
        )]));
        let opened = open_whole(&url, &schema).await;
        assert!(opened.is_err());
        assert_eq!(parquet_files(&dir), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_staged_file_that_vanished_fails_the_commit_and_nothing_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &["2024-01-15", "2024-01-16"], 1).await;
        let victim = parquet_file_paths(&dir)[0].clone();
        std::fs::remove_file(&victim).unwrap();
        let committed = commit(table, staged).await;
        assert!(
            matches!(committed, Err(StorageError::StagedFileMissing { .. })),
            "{committed:?}"
        );
        assert!(!dir.path().join("model/_delta_log").exists());
        assert_eq!(parquet_files(&dir), 0, "the other staged file is deleted");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_table_is_never_created_in_a_folder_that_holds_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("model");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("raw.parquet"), b"someone else's data").unwrap();
        let url = Url::from_directory_path(&folder).unwrap();
        let (schema, _) = output(&[], 0);
        let opened = open_whole(&url, &schema).await;
        assert!(matches!(opened, Err(StorageError::NotATable { .. })));
        assert!(folder.join("raw.parquet").exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn vacuum_deletes_only_unreferenced_writer_files_in_the_tables_layout() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let staged = stage(&table, &["2024-01-15"], 1).await;
        commit(table, staged).await.unwrap();
        let folder = dir.path().join("model");
        let crashed = folder.join(
            "date=2024-01-15/part-00000-0b6c1f0e-1624-3b1d-8409-44eff7708208-c000.snappy.parquet",
        );
        let upload = folder.join(
            "date=2024-01-15/part-00001-0b6c1f0e-1624-3b1d-8409-44eff7708208-c000.snappy.parquet#1",
        );
        let theirs = folder.join("date=2024-01-15/notes.parquet.bak");
        let nested = folder.join(
            "other_target/t/part-00000-0b6c1f0e-1624-3b1d-8409-44eff7708209-c000.snappy.parquet",
        );
        std::fs::create_dir_all(nested.parent().unwrap()).unwrap();
        for file in [&crashed, &upload, &theirs, &nested] {
            std::fs::write(file, b"x").unwrap();
        }
        let url = Url::from_directory_path(&folder).unwrap();
        let options = |retain: u64, force: bool| VacuumOptions {
            retain: std::time::Duration::from_secs(retain),
            dry_run: false,
            force,
        };
        let refused = vacuum(&Stores::default(), "model", &url, &options(0, false)).await;
        assert!(
            matches!(refused.error, Some(StorageError::RetentionTooShort { .. })),
            "{refused:?}"
        );
        let young = vacuum(&Stores::default(), "model", &url, &options(3600, true)).await;
        assert!(young.error.is_none() && young.files.is_empty(), "{young:?}");
        let deleted = vacuum(&Stores::default(), "model", &url, &options(0, true)).await;
        assert!(deleted.error.is_none(), "{deleted:?}");
        assert_eq!(deleted.files.len(), 2, "{deleted:?}");
        assert!(!crashed.exists() && !upload.exists());
        assert!(theirs.exists() && nested.exists());
        assert_eq!(
            crate::session::open_published(&Stores::default(), &url, "model")
                .await
                .unwrap()
                .get_file_uris()
                .unwrap()
                .count(),
            1
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_partition_value_that_could_form_a_path_is_rejected_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let staged = table.stage(output(&["2024-01-15", "../../x"], 1).1).await;
        assert!(matches!(
            staged,
            Err(StorageError::InvalidPartitionValue { .. })
        ));
        assert_eq!(parquet_files(&dir), 0);
        assert!(!dir.path().join("x").exists());
        // Nor one too long for a folder's name, once the writer encoded it.
        let long = "y".repeat(300);
        let staged = table.stage(output(&["2024-01-15", &long], 1).1).await;
        match staged {
            Err(StorageError::InvalidPartitionValue { reason, .. }) => {
                assert!(reason.contains("255"), "{reason}")
            }
            _ => panic!("a 300-character partition value was accepted"),
        }
        assert_eq!(parquet_files(&dir), 0);
    }
}
