//! STORAGE: each model is a Delta Lake table under the warehouse. A build writes its files into
//! the table folder without committing ([`ModelTable::stage`]), then publishes them in one Delta
//! commit that also removes the files they replace ([`ModelTable::commit`]), or deletes them
//! ([`ModelTable::discard`]). In: a record batch stream. Out: a committed Delta version.

mod partition;
mod schema;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col, lit};
use deltalake::datafile::writer::{DeltaWriter, WriterConfig};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

/// Data files roll over to a new file past this size.
const TARGET_FILE_SIZE: u64 = 128 * 1024 * 1024;

/// Something went wrong reading or writing a table.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum StorageError {
    #[error("the output of `{model}` no longer matches its published table at {location}")]
    #[diagnostic(
        code(dp::storage::schema_changed),
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
        code(dp::storage::missing_partition_column),
        help("the model outputs: {columns}")
    )]
    MissingPartitionColumn {
        model: String,
        column: String,
        columns: String,
    },

    #[error("`{model}` produced an invalid value for partition column `{column}`: {value:?}")]
    #[diagnostic(
        code(dp::storage::invalid_partition_value),
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

    #[error("another build of `{model}` committed to the same data first")]
    #[diagnostic(
        code(dp::storage::conflict),
        help(
            "nothing of this build was published; run it again to build on the other build's result"
        )
    )]
    Conflict {
        model: String,
        #[source]
        source: TransactionError,
    },

    #[error("the table folder of `{model}` holds files but no Delta table: {location}")]
    #[diagnostic(
        code(dp::storage::not_a_table),
        help(
            "dp creates a model's table only in an empty folder and never deletes what it did not write; move those files, or point the target's warehouse elsewhere"
        )
    )]
    NotATable { model: String, location: String },

    #[error("upstream model `{model}` has never been built (no table at {location})")]
    #[diagnostic(
        code(dp::storage::not_built),
        help("build it first, or select it too: --select +{model}")
    )]
    NotBuilt { model: String, location: String },

    #[error("Delta table at {location}: {source}")]
    #[diagnostic(code(dp::storage::delta))]
    Delta {
        location: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("object store at {location}: {source}")]
    #[diagnostic(code(dp::storage::object_store))]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    #[error("reading the output of `{model}`: {source}")]
    #[diagnostic(code(dp::storage::execution))]
    Execution {
        model: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
}

/// The URL of the Delta table of `model` under `warehouse`.
pub fn model_table_url(warehouse: &Url, model: &str) -> Url {
    warehouse
        .join(&format!("{model}/"))
        .expect("a model name is a valid URL segment")
}

/// The table at `url`, loaded at its latest version when it exists.
async fn open(url: &Url) -> Result<DeltaTable, StorageError> {
    let mut table = deltalake::DeltaTableBuilder::from_url(url.clone())
        .and_then(|builder| builder.build())
        .map_err(|source| delta_error(url, source))?;
    let exists = table
        .log_store()
        .is_delta_table_location()
        .await
        .map_err(|source| delta_error(url, source))?;
    if exists {
        table
            .load()
            .await
            .map_err(|source| delta_error(url, source))?;
    }
    Ok(table)
}

/// Open the published table of an upstream model, for reading. dp creates a model's table in a
/// commit of its own (version 0) before the first build writes to it, so a table still at
/// version 0 holds no build: reading it would be reading nothing, silently.
pub async fn open_published(url: &Url, model: &str) -> Result<DeltaTable, StorageError> {
    let table = open(url).await?;
    if table.version().unwrap_or(0) == 0 {
        return Err(StorageError::NotBuilt {
            model: model.to_string(),
            location: url.to_string(),
        });
    }
    Ok(table)
}

/// The Delta table a model is published to, opened for one build.
pub struct ModelTable {
    model: String,
    url: Url,
    table: DeltaTable,
    partition_by: Vec<String>,
    schema: SchemaRef,
}

/// Files written for one build and not yet committed.
#[must_use = "staged files must be committed or discarded"]
pub struct StagedWrite {
    adds: Vec<Add>,
    /// Rows written.
    pub rows: u64,
}

impl StagedWrite {
    /// The partitions written, as `col=value/...` keys, in order.
    pub fn partitions(&self) -> BTreeSet<String> {
        self.adds
            .iter()
            .filter(|add| !add.partition_values.is_empty())
            .map(|add| partition::key(&add.partition_values))
            .collect()
    }
}

impl ModelTable {
    /// Open the table of `model` at `url` for a build whose output has `output` as schema,
    /// creating it when it does not exist yet. A published table whose columns differ from
    /// the output is a schema change: an error, nothing is written.
    pub async fn open_for_build(
        model: &str,
        url: &Url,
        output: &SchemaRef,
        partition_by: &[String],
    ) -> Result<Self, StorageError> {
        for column in partition_by {
            if output.field_with_name(column).is_err() {
                return Err(StorageError::MissingPartitionColumn {
                    model: model.to_string(),
                    column: column.clone(),
                    columns: schema::column_list(output),
                });
            }
        }
        let wanted = schema::table_schema(output);
        if let Some(path) = local_folder(url) {
            std::fs::create_dir_all(&path).map_err(|source| StorageError::ObjectStore {
                location: url.to_string(),
                source: object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(source),
                },
            })?;
        }
        let mut table = open(url).await?;
        if table.version().is_none() {
            let store = table.log_store().object_store(None);
            if store.list(None).next().await.is_some() {
                return Err(StorageError::NotATable {
                    model: model.to_string(),
                    location: url.to_string(),
                });
            }
            let columns =
                schema::delta_columns(&wanted).map_err(|source| delta_error(url, source))?;
            let created = table
                .create()
                .with_columns(columns)
                .with_partition_columns(partition_by.to_vec())
                .await;
            table = match created {
                Ok(table) => table,
                // Another build of the model created it first: use theirs.
                Err(error) => match open(url).await {
                    Ok(table) if table.version().is_some() => table,
                    _ => return Err(delta_error(url, error)),
                },
            };
        }
        let state = table
            .snapshot()
            .map_err(|source| delta_error(url, source))?;
        let published = state.snapshot().arrow_schema();
        let published_partitions = state.metadata().partition_columns().to_vec();
        if let Some(difference) =
            schema::difference(&published, &wanted, &published_partitions, partition_by)
        {
            return Err(StorageError::SchemaChanged {
                model: model.to_string(),
                location: url.to_string(),
                difference,
            });
        }
        Ok(Self {
            model: model.to_string(),
            url: url.clone(),
            table,
            partition_by: partition_by.to_vec(),
            schema: published,
        })
    }

    fn store(&self) -> Arc<dyn ObjectStore> {
        self.table.log_store().object_store(None)
    }

    /// Delete data files that no version of the table refers to and that are at least
    /// `min_age` old: the leftovers of builds that crashed before they committed. Returns how
    /// many were deleted.
    pub async fn remove_orphans(&self, min_age: Duration) -> Result<usize, StorageError> {
        let referenced = self.referenced_file_names().await?;
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(min_age).unwrap_or(chrono::TimeDelta::MAX);
        let orphans: Vec<DataFile> = self
            .data_files()
            .await?
            .into_iter()
            .filter(|file| !referenced.contains(&file.name) && file.modified <= cutoff)
            .collect();
        let store = self.store();
        for file in &orphans {
            tracing::info!(model = %self.model, file = %file.name, "removing orphaned file");
            match &file.location {
                FileLocation::Store(path) => store
                    .delete(path)
                    .await
                    .map_err(|source| self.store_error(source))?,
                FileLocation::Local(path) => std::fs::remove_file(path).map_err(|source| {
                    self.store_error(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(source),
                    })
                })?,
            }
        }
        Ok(orphans.len())
    }

    /// Every data file the Delta writer made (or began) in the table folder. On local disk
    /// the folder is walked directly: the object store's listing hides the `file.parquet#N`
    /// staging files that a killed upload leaves behind.
    async fn data_files(&self) -> Result<Vec<DataFile>, StorageError> {
        // Only names of the form the Delta writer gives its files; anything else is not dp's.
        let is_data = |name: &str| name.starts_with("part-") && name.contains(".parquet");
        if let Some(root) = local_folder(&self.url) {
            let mut files = Vec::new();
            for entry in walkdir::WalkDir::new(&root)
                .into_iter()
                .filter_entry(|e| e.file_name() != "_delta_log")
            {
                let entry = entry.map_err(|error| {
                    self.store_error(object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(error),
                    })
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !entry.file_type().is_file() || !is_data(&name) {
                    continue;
                }
                let modified = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .map_or_else(chrono::Utc::now, chrono::DateTime::from);
                files.push(DataFile {
                    name,
                    modified,
                    location: FileLocation::Local(entry.into_path()),
                });
            }
            return Ok(files);
        }
        let metas: Vec<object_store::ObjectMeta> = self
            .store()
            .list(None)
            .try_collect()
            .await
            .map_err(|source| self.store_error(source))?;
        Ok(metas
            .into_iter()
            .filter(|meta| !meta.location.as_ref().starts_with("_delta_log"))
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                is_data(&name).then_some(DataFile {
                    name,
                    modified: meta.last_modified,
                    location: FileLocation::Store(meta.location),
                })
            })
            .collect())
    }

    /// The names of the files the table's versions refer to: the current version's, and those
    /// every commit in the log added or removed. A line of the log that cannot be read is an
    /// error: a file must never be taken for an orphan because its commit was not understood.
    async fn referenced_file_names(&self) -> Result<HashSet<String>, StorageError> {
        let mut names: HashSet<String> = self
            .table
            .get_active_add_actions_by_partitions(&[])
            .map_ok(|file| file_name(&file.path()).to_string())
            .try_collect()
            .await
            .map_err(|source| self.delta_error(source))?;
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
                for kind in ["add", "remove"] {
                    if let Some(path) = action[kind]["path"].as_str() {
                        names.insert(file_name(path).to_string());
                    }
                }
            }
        }
        Ok(names)
    }

    /// Write `output` into the table folder without committing it. Partition values are checked
    /// batch by batch before the batch is written. On an error the upload in progress is aborted;
    /// files already completed (past the target file size) stay as orphans for a later build to
    /// remove.
    pub async fn stage(
        &self,
        mut output: SendableRecordBatchStream,
    ) -> Result<StagedWrite, StorageError> {
        let state = self
            .table
            .snapshot()
            .map_err(|source| self.delta_error(source))?;
        let config = WriterConfig::new(
            self.schema.clone(),
            self.partition_by.clone(),
            None,
            NonZeroU64::new(TARGET_FILE_SIZE),
            None,
            state.table_config().num_indexed_cols(),
            None,
        );
        let mut writer = DeltaWriter::new(self.store(), config);
        let mut rows = 0;
        let mut failure = None;
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
        }
        if let Some(error) = failure {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(model = %self.model, error = %abort, "could not abort the upload of a staged file");
            }
            return Err(error);
        }
        let adds = writer
            .close()
            .await
            .map_err(|source| self.delta_error(source))?;
        Ok(StagedWrite { adds, rows })
    }

    /// Publish `staged` in one Delta commit that also removes the files it replaces: all of the
    /// table's files, or for a partitioned model, those of the partitions it wrote. A
    /// partitioned build that wrote no rows commits nothing.
    pub async fn commit(self, staged: StagedWrite) -> Result<Option<u64>, StorageError> {
        let partitions = staged.partitions();
        let partitioned = !self.partition_by.is_empty();
        if partitioned && staged.adds.is_empty() {
            return Ok(None);
        }
        let state = self
            .table
            .snapshot()
            .map_err(|source| self.delta_error(source))?;
        let replaced: Vec<Action> = self
            .table
            .get_active_add_actions_by_partitions(&[])
            .try_filter(|file| {
                let values: HashMap<String, Option<String>> = file.partition_values_map();
                futures::future::ready(
                    !partitioned || partitions.contains(&partition::key(&values)),
                )
            })
            .map_ok(|file| Action::Remove(file.remove_action(true)))
            .try_collect()
            .await
            .map_err(|source| self.delta_error(source))?;
        let predicate = if partitioned {
            partition::predicate(&staged.adds)
        } else {
            "true".to_string()
        };
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: partitioned.then(|| self.partition_by.clone()),
            predicate: Some(predicate),
        };
        let mut actions: Vec<Action> = staged.adds.iter().cloned().map(Action::Add).collect();
        actions.extend(replaced);
        // The log is never trimmed by dp: orphan removal reads every commit's files from it.
        let properties = CommitProperties::default().with_cleanup_expired_logs(Some(false));
        let committed = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(state), self.table.log_store(), operation)
            .await;
        let error = match committed {
            Ok(finalized) => return Ok(Some(finalized.version())),
            Err(DeltaTableError::Transaction {
                source: source @ TransactionError::CommitConflict(_),
            }) => StorageError::Conflict {
                model: self.model.clone(),
                source,
            },
            Err(other) => self.delta_error(other),
        };
        // The commit may have landed all the same (a post-commit step failed, a retried put had
        // gone through): delete the staged files only when the log surely does not name them.
        match self.in_log(&staged).await {
            Ok(true) => match open(&self.url).await.map(|table| table.version()) {
                Ok(Some(version)) => {
                    tracing::warn!(model = %self.model, %error, "the commit reported an error but is in the log");
                    Ok(Some(version))
                }
                _ => Err(error),
            },
            Ok(false) => {
                self.discard(staged).await;
                Err(error)
            }
            Err(_) => Err(error),
        }
    }

    /// Whether any commit of the table names one of the staged files.
    async fn in_log(&self, staged: &StagedWrite) -> Result<bool, StorageError> {
        let referenced = self.referenced_file_names().await?;
        Ok(staged
            .adds
            .iter()
            .any(|add| referenced.contains(file_name(&add.path))))
    }

    /// The staged rows as a DataFrame in `session`: exactly the files `staged` wrote (a Delta
    /// reader would not see them yet), with the partition values of each file as columns.
    pub async fn staged_frame(
        &self,
        session: &SessionContext,
        staged: &StagedWrite,
    ) -> Result<DataFrame, StorageError> {
        self.table
            .update_datafusion_session(&session.state())
            .map_err(|source| self.delta_error(source))?;
        let execution = |source| StorageError::Execution {
            model: self.model.clone(),
            source,
        };
        if staged.adds.is_empty() {
            let empty = RecordBatch::new_empty(self.schema.clone());
            return session.read_batch(empty).map_err(execution);
        }
        let file_schema: SchemaRef = Arc::new(Schema::new(
            self.schema
                .fields()
                .iter()
                .filter(|f| !self.partition_by.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ));
        // One scan per partition: its files, and its values as literal columns.
        let mut partitions: BTreeMap<String, Vec<&Add>> = BTreeMap::new();
        for add in &staged.adds {
            partitions
                .entry(partition::key(&add.partition_values))
                .or_default()
                .push(add);
        }
        let mut frames = Vec::new();
        for adds in partitions.values() {
            let urls = adds
                .iter()
                .map(|add| {
                    // `Add.path` is decoded; the URL must decode back to it exactly.
                    let escaped = add
                        .path
                        .replace('%', "%25")
                        .replace('#', "%23")
                        .replace('?', "%3F");
                    let url = self
                        .url
                        .join(&escaped)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                    ListingTableUrl::parse(url.as_str())
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(execution)?;
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet");
            let config = ListingTableConfig::new_with_multi_paths(urls)
                .with_listing_options(options)
                .with_schema(file_schema.clone());
            let scan = ListingTable::try_new(config).map_err(execution)?;
            let values = &adds[0].partition_values;
            let columns: Vec<Expr> = self
                .schema
                .fields()
                .iter()
                .map(|field| match values.get(field.name()) {
                    Some(value) if self.partition_by.contains(field.name()) => cast(
                        lit(ScalarValue::Utf8(value.clone())),
                        field.data_type().clone(),
                    )
                    .alias(field.name()),
                    _ => col(Column::new_unqualified(field.name())),
                })
                .collect();
            let frame = session
                .read_table(Arc::new(scan))
                .and_then(|frame| frame.select(columns))
                .map_err(execution)?;
            frames.push(frame);
        }
        let mut frames = frames.into_iter();
        let first = frames
            .next()
            .expect("staged files make at least one partition");
        frames
            .try_fold(first, |all, frame| all.union(frame))
            .map_err(execution)
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
        StorageError::ObjectStore {
            location: self.url.to_string(),
            source,
        }
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

/// A data file found in a table folder.
struct DataFile {
    name: String,
    modified: chrono::DateTime<chrono::Utc>,
    location: FileLocation,
}

enum FileLocation {
    /// A path in the table's object store.
    Store(Path),
    /// A path on local disk.
    Local(std::path::PathBuf),
}

/// The folder of a `file://` URL.
fn local_folder(url: &Url) -> Option<std::path::PathBuf> {
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

fn delta_error(url: &Url, source: DeltaTableError) -> StorageError {
    StorageError::Delta {
        location: url.to_string(),
        source,
    }
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

    async fn open(dir: &tempfile::TempDir, partition_by: &[&str]) -> ModelTable {
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let (schema, _) = output(&[], 0);
        let partition_by: Vec<String> = partition_by.iter().map(|c| c.to_string()).collect();
        ModelTable::open_for_build("model", &url, &schema, &partition_by)
            .await
            .unwrap()
    }

    async fn stage(table: &ModelTable, dates: &[&str], value: i64) -> StagedWrite {
        table.stage(output(dates, value).1).await.unwrap()
    }

    fn parquet_files(dir: &tempfile::TempDir) -> usize {
        walkdir::WalkDir::new(dir.path())
            .into_iter()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".parquet")
            })
            .count()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn two_builds_of_the_same_partition_never_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir, &["date"]).await;
        let second = open(&dir, &["date"]).await;
        let first_files = stage(&first, &["2024-01-15"], 1).await;
        let second_files = stage(&second, &["2024-01-15"], 2).await;
        assert!(first.commit(first_files).await.unwrap().is_some());
        let lost = second.commit(second_files).await;
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
    async fn two_first_builds_of_a_table_model_never_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir, &[]).await;
        let second = open(&dir, &[]).await;
        let first_files = stage(&first, &["a", "b"], 1).await;
        let second_files = stage(&second, &["a", "b"], 2).await;
        first.commit(first_files).await.unwrap();
        let lost = second.commit(second_files).await;
        assert!(
            matches!(lost, Err(StorageError::Conflict { .. })),
            "{lost:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn builds_of_different_partitions_both_commit() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(&dir, &["date"]).await;
        let second = open(&dir, &["date"]).await;
        let first_files = stage(&first, &["2024-01-15"], 1).await;
        let second_files = stage(&second, &["2024-01-16"], 2).await;
        let v1 = first.commit(first_files).await.unwrap();
        let v2 = second.commit(second_files).await.unwrap();
        assert_eq!((v1, v2), (Some(1), Some(2)));
        let url = Url::from_directory_path(dir.path().join("model")).unwrap();
        let published = open_published(&url, "model").await.unwrap();
        assert_eq!(published.get_file_uris().unwrap().count(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_table_is_never_created_in_a_folder_that_holds_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("model");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("raw.parquet"), b"someone else's data").unwrap();
        let url = Url::from_directory_path(&folder).unwrap();
        let (schema, _) = output(&[], 0);
        let opened = ModelTable::open_for_build("model", &url, &schema, &[]).await;
        assert!(matches!(opened, Err(StorageError::NotATable { .. })));
        assert!(folder.join("raw.parquet").exists());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn orphan_removal_deletes_only_files_named_as_the_writer_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let table = open(&dir, &["date"]).await;
        let folder = dir.path().join("model");
        let mine = folder.join("part-00000-0b6c1f0e-crashed-c000.snappy.parquet");
        let theirs = folder.join("notes.parquet.bak");
        std::fs::write(&mine, b"x").unwrap();
        std::fs::write(&theirs, b"y").unwrap();
        assert_eq!(table.remove_orphans(Duration::ZERO).await.unwrap(), 1);
        assert!(!mine.exists());
        assert!(theirs.exists());
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
    }
}
