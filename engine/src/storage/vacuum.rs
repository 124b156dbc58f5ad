//! VACUUM: delete the files no version of a table needs any more and that are older than a
//! retention period no build can still be running in: files replaced by later builds, and files
//! of builds that were killed before they committed. delta-rs's vacuum (full mode) plans it;
//! dp deletes only what the table's own layout can hold.
//!
//! Whatever the retention, a vacuum never deletes a file a version references, even one a
//! build commits while the vacuum runs: before deleting, it commits a barrier (`VACUUM START`,
//! re-stating the table's metadata), which Delta's conflict check makes every build that read
//! an older version lose (`dp::conflict`); it then plans from a version at or past the barrier
//! and deletes only files written before the barrier. A build that commits after the barrier
//! read it, so it staged its files after it: they are kept.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt;
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use super::{StorageError, delta_error, layout, store_error};
use crate::session::{Stores, open_table};

/// How a vacuum runs.
#[derive(Debug, Clone, Copy)]
pub struct VacuumOptions {
    /// Files younger than this are kept: a build may still be writing them.
    pub retain: Duration,
    /// Only list what would be deleted.
    pub dry_run: bool,
    /// Allow a retention shorter than the table's minimum (when no build can be running).
    pub force: bool,
}

/// What a vacuum of one table did.
#[derive(Debug, Default)]
pub struct Vacuumed {
    /// The files deleted (or, in a dry run, those that would be), relative to the table folder.
    pub files: Vec<String>,
    /// Why it stopped before the end, if it did (the files listed were deleted all the same).
    pub error: Option<StorageError>,
}

/// Vacuum the table of `model` at `url`. A model without a table has nothing to vacuum.
pub async fn vacuum(stores: &Stores, model: &str, url: &Url, options: &VacuumOptions) -> Vacuumed {
    let mut vacuumed = Vacuumed::default();
    if let Err(error) = run(stores, model, url, options, &mut vacuumed.files).await {
        vacuumed.error = Some(error);
    }
    vacuumed
}

/// Vacuum, noting each file in `done` as it goes.
async fn run(
    stores: &Stores,
    model: &str,
    url: &Url,
    options: &VacuumOptions,
    done: &mut Vec<String>,
) -> Result<(), StorageError> {
    let table = open_table(stores, url).await?;
    let Ok(state) = table.snapshot() else {
        return Ok(());
    };
    let minimum = state.table_config().deleted_file_retention_duration();
    if options.retain < minimum && !options.force {
        return Err(StorageError::RetentionTooShort {
            model: model.to_string(),
            retain: show(options.retain),
            minimum: show(minimum),
        });
    }
    let partition_by = state.metadata().partition_columns().to_vec();
    // A century stands for "forever" without overflowing the arithmetic on timestamps.
    let retain = options
        .retain
        .min(Duration::from_secs(100 * 365 * 24 * 3600));
    let retention = chrono::Duration::from_std(retain).unwrap_or(chrono::TimeDelta::MAX);
    let store = table.log_store().object_store(None);
    let mut files = plan(&table, url, retention, &partition_by).await?;
    let mut unfinished = unfinished_uploads(url, &partition_by, retain, None)?;
    if !options.dry_run && (!files.is_empty() || !unfinished.is_empty()) {
        let milliseconds = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let operation = DeltaOperation::VacuumStart {
            retention_check_enabled: !options.force,
            specified_retention_millis: Some(milliseconds(retain)),
            default_retention_millis: milliseconds(minimum),
        };
        let before = barrier(stores, url, store.as_ref(), operation).await?;
        let table = open_table(stores, url).await?;
        let written = last_modified(store.as_ref(), url).await?;
        files = plan(&table, url, retention, &partition_by)
            .await?
            .into_iter()
            .filter(|path| written.get(path).is_some_and(|&at| at < before))
            .collect();
        unfinished = unfinished_uploads(url, &partition_by, retain, Some(before))?;
    }
    files.sort();
    unfinished.sort();
    for path in &files {
        if !options.dry_run {
            match store.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => return Err(store_error(url, source)),
            }
            tracing::info!(model, file = %path, "vacuum deleted a file");
        }
        done.push(path.to_string());
    }
    for (path, relative) in unfinished {
        if !options.dry_run {
            std::fs::remove_file(&path).map_err(|source| {
                store_error(
                    url,
                    object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(source),
                    },
                )
            })?;
            tracing::info!(model, file = %relative, "vacuum deleted an unfinished upload");
        }
        done.push(relative);
    }
    Ok(())
}

/// Commit the vacuum's barrier to the table at `url`: its metadata re-stated, which every
/// build that read an earlier version loses to. Returns when it was written, by the store's
/// clock. A build committing meanwhile makes it try again from the version that build made.
async fn barrier(
    stores: &Stores,
    url: &Url,
    store: &dyn ObjectStore,
    operation: DeltaOperation,
) -> Result<SystemTime, StorageError> {
    let mut attempt = 0;
    let version = loop {
        attempt += 1;
        let table = open_table(stores, url).await?;
        let state = table.snapshot().map_err(|e| delta_error(url, e))?;
        let committed = CommitBuilder::from(
            CommitProperties::default()
                .with_cleanup_expired_logs(Some(false))
                .with_max_retries(0),
        )
        .with_actions(vec![Action::Metadata(state.metadata().clone())])
        .build(Some(state), table.log_store(), operation.clone())
        .await;
        match committed {
            Ok(committed) => break committed.version(),
            Err(DeltaTableError::Transaction {
                source: TransactionError::MaxCommitAttempts(_) | TransactionError::CommitConflict(_),
            }) if attempt < 20 => continue,
            Err(error) => return Err(delta_error(url, error)),
        }
    };
    let log_file = Path::from(format!("_delta_log/{version:020}.json"));
    Ok(store
        .head(&log_file)
        .await
        .map_err(|source| store_error(url, source))?
        .last_modified
        .into())
}

/// The data files of `table` (at `url`, at its loaded version) that no version within the
/// retention references, in the table's layout.
async fn plan(
    table: &DeltaTable,
    url: &Url,
    retention: chrono::Duration,
    partition_by: &[String],
) -> Result<Vec<Path>, StorageError> {
    let (_, planned) = table
        .clone()
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_dry_run(true)
        .await
        .map_err(|source| delta_error(url, source))?;
    Ok(planned
        .files_deleted
        .iter()
        .filter_map(|file| Path::parse(file).ok())
        .filter(|path| layout::is_data_file(path, partition_by))
        .collect())
}

/// When each file of the table's folder was last written, by the store's clock.
async fn last_modified(
    store: &dyn ObjectStore,
    url: &Url,
) -> Result<HashMap<Path, SystemTime>, StorageError> {
    store
        .list(None)
        .map_ok(|meta| (meta.location, meta.last_modified.into()))
        .try_collect()
        .await
        .map_err(|source| store_error(url, source))
}

/// The temporary files (`part-….parquet#1`) an upload killed mid-way leaves on local disk, older
/// than `retain` (and written before `before`, when given), in the table's partition folders.
/// Object stores keep no such files (and the local store's own listing hides them), so only a
/// local folder is walked for them.
fn unfinished_uploads(
    url: &Url,
    partition_by: &[String],
    retain: Duration,
    before: Option<SystemTime>,
) -> Result<Vec<(std::path::PathBuf, String)>, StorageError> {
    let Some(root) = (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
    else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    let walk = walkdir::WalkDir::new(&root)
        .min_depth(partition_by.len() + 1)
        .max_depth(partition_by.len() + 1)
        .follow_links(false);
    for entry in walk {
        let entry = entry.map_err(|error| {
            store_error(
                url,
                object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(error),
                },
            )
        })?;
        let name = entry.file_name().to_string_lossy();
        let is_upload = name
            .split_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        let Ok(relative) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        let in_layout = Path::parse(relative.split('#').next().unwrap_or_default())
            .is_ok_and(|path| layout::is_data_file(&path, partition_by));
        let old_enough = entry
            .metadata()
            .ok()
            .and_then(|meta| meta.modified().ok())
            .is_some_and(|modified| {
                modified.elapsed().is_ok_and(|age| age >= retain)
                    && before.is_none_or(|before| modified < before)
            });
        if entry.file_type().is_file() && is_upload && in_layout && old_enough {
            found.push((entry.into_path(), relative));
        }
    }
    Ok(found)
}

/// A duration as a person reads it: `7d`, `36h`, `90s`.
fn show(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        s if s % 86_400 == 0 && s > 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 && s > 0 => format!("{}h", s / 3_600),
        s => format!("{s}s"),
    }
}
