//! A table's history, read from its Delta log: every commit with the run record dp wrote in its
//! commit info. Nothing else keeps state: history, rollback and backfills read it from here.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deltalake::kernel::Add;
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use url::Url;

use super::{StorageError, partition};
use crate::session::{SessionError, Stores, open_table};

/// The commit info field that holds a dp commit's [`RunRecord`].
pub const RECORD_KEY: &str = "dp";

/// What a dp build records in its Delta commit, beside Delta's own commit info: which run made
/// it, from which SQL, vars and inputs, and what its tests found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub dp_version: String,
    /// SHA-256 of the compiled SQL the build ran (hex).
    pub sql_hash: String,
    /// The vars of the run, as the templates saw them.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    pub target: String,
    /// The partitions the commit replaced (`col=value`), for a partitioned model.
    #[serde(default)]
    pub partitions: Vec<String>,
    /// Rows written.
    #[serde(default)]
    pub rows: u64,
    /// The model's tests, as they ran before the commit.
    #[serde(default)]
    pub tests: Vec<RecordedTest>,
    /// The version of each upstream model's table the build read.
    #[serde(default)]
    pub inputs: BTreeMap<String, u64>,
    /// What the build changed (its diff, without the sample keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<crate::report::ModelDiff>,
}

/// A test of a build, as its commit records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedTest {
    pub name: String,
    pub status: crate::report::TestStatus,
    pub failures: u64,
}

/// One version of a table.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub version: u64,
    /// When it was committed, in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Delta's operation: WRITE, RESTORE, CREATE TABLE...
    pub operation: Option<String>,
    /// The files it added and removed.
    pub files_added: usize,
    pub files_removed: usize,
    /// The rows of the files it added (from their statistics).
    pub rows_added: u64,
    /// The partitions it added files to (`col=value`).
    pub partitions: Vec<String>,
    /// dp's record, for a commit dp made.
    pub record: Option<RunRecord>,
    /// The names of the data files it added.
    #[serde(skip)]
    pub added_files: Vec<String>,
}

/// The commits of the table at `url`, newest first, at most `limit` of them. A folder without a
/// table has no history.
pub async fn history(
    stores: &Stores,
    url: &Url,
    limit: Option<usize>,
) -> Result<Vec<Commit>, StorageError> {
    let table = open_table(stores, url).await?;
    commits(&table, url)
        .take(limit.unwrap_or(usize::MAX))
        .try_collect()
        .await
}

/// The run record of the last build of the table at `url` (a restore records no build), if
/// dp built it: read from the newest commit back, no further than that build.
pub async fn last_build(stores: &Stores, url: &Url) -> Result<Option<RunRecord>, StorageError> {
    let table = open_table(stores, url).await?;
    let builds = commits(&table, url).try_filter_map(|commit| {
        futures::future::ready(Ok(commit.record.filter(|r| !r.sql_hash.is_empty())))
    });
    futures::pin_mut!(builds);
    builds.try_next().await
}

/// The commits of `table` (at `url`), newest first, read several at once (each is one small
/// object) and no further ahead than that of what is taken. A version the log no longer holds
/// (trimmed after a checkpoint) ends them.
fn commits<'a>(
    table: &'a DeltaTable,
    url: &'a Url,
) -> impl futures::Stream<Item = Result<Commit, StorageError>> + 'a {
    let log_store = table.log_store();
    let versions = table
        .version()
        .into_iter()
        .flat_map(|latest| (0..=latest).rev());
    futures::stream::iter(versions)
        .map(move |version| {
            let log_store = log_store.clone();
            async move { (version, log_store.read_commit_entry(version).await) }
        })
        .buffered(16)
        .map(move |(version, entry)| match entry {
            Ok(Some(bytes)) => Some(read_commit(version, &bytes).map_err(delta_error(url))),
            Ok(None) => None,
            Err(error) => Some(Err(delta_error(url)(error))),
        })
        .take_while(|commit| futures::future::ready(commit.is_some()))
        .filter_map(futures::future::ready)
}

/// A Delta error of the table at `url`.
fn delta_error(url: &Url) -> impl Fn(DeltaTableError) -> StorageError + '_ {
    move |source| {
        StorageError::Session(SessionError::Delta {
            location: url.to_string(),
            source,
        })
    }
}

/// A table as a resumed run sees it: its history, and the names of its live data files.
#[derive(Debug, Default)]
pub struct TableState {
    pub history: Vec<Commit>,
    pub live_files: BTreeSet<String>,
}

/// The state of each table, read once per run (a backfill asks for it at each date).
#[derive(Debug, Default, Clone)]
pub struct TableStates(
    std::sync::Arc<tokio::sync::Mutex<HashMap<Url, std::sync::Arc<TableState>>>>,
);

impl TableStates {
    /// The state of the table at `url`, read on first use.
    pub async fn get(
        &self,
        stores: &Stores,
        url: &Url,
    ) -> Result<std::sync::Arc<TableState>, StorageError> {
        let mut states = self.0.lock().await;
        if let Some(state) = states.get(url) {
            return Ok(state.clone());
        }
        let table = open_table(stores, url).await?;
        let history = commits(&table, url).try_collect().await?;
        let live_files = files(&table, url)
            .await?
            .into_keys()
            .map(|path| super::file_name(&path).to_string())
            .collect();
        let state = std::sync::Arc::new(TableState {
            history,
            live_files,
        });
        states.insert(url.clone(), state.clone());
        Ok(state)
    }
}

/// A commit's actions, summed up.
fn read_commit(version: u64, bytes: &[u8]) -> Result<Commit, DeltaTableError> {
    let mut commit = Commit {
        version,
        timestamp: None,
        operation: None,
        files_added: 0,
        files_removed: 0,
        rows_added: 0,
        partitions: Vec::new(),
        record: None,
        added_files: Vec::new(),
    };
    let mut partitions = BTreeSet::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)?;
        if let Some(info) = action.get("commitInfo") {
            commit.timestamp = info["timestamp"].as_i64();
            commit.operation = info["operation"].as_str().map(str::to_string);
            commit.record = info
                .get(RECORD_KEY)
                .and_then(|record| serde_json::from_value(record.clone()).ok());
        } else if let Some(add) = action.get("add") {
            let add: Add = serde_json::from_value(add.clone())?;
            commit.files_added += 1;
            commit
                .added_files
                .push(super::file_name(&add.path).to_string());
            commit.rows_added += super::records(&add).unwrap_or(0);
            if !add.partition_values.is_empty() {
                partitions.insert(partition::key(&add.partition_values));
            }
        } else if action.get("remove").is_some() {
            commit.files_removed += 1;
        }
    }
    commit.partitions = partitions.into_iter().collect();
    Ok(commit)
}

/// How a table's data at one version differs from another, partition by partition.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VersionChange {
    /// Partition (`col=value`, or empty for an unpartitioned table) → rows now and rows after.
    pub partitions: BTreeMap<String, (u64, u64)>,
    pub files_removed: usize,
    pub files_restored: usize,
}

/// The live data files of `table` (at `url`) at its loaded version, by path: each file's
/// partition (`col=value`) and rows.
async fn files(
    table: &DeltaTable,
    url: &Url,
) -> Result<BTreeMap<String, (String, u64)>, StorageError> {
    if table.version().is_none() {
        return Ok(BTreeMap::new());
    }
    let files: Vec<_> =
        futures::TryStreamExt::try_collect(table.get_active_add_actions_by_partitions(&[]))
            .await
            .map_err(delta_error(url))?;
    Ok(files
        .iter()
        .map(|file| {
            let key = partition::key(&file.partition_values_map());
            let rows = file.num_records().unwrap_or(0) as u64;
            (file.path().to_string(), (key, rows))
        })
        .collect())
}

/// What restoring the table at `url` to `version` would change.
pub async fn restore_change(
    stores: &Stores,
    url: &Url,
    version: u64,
) -> Result<VersionChange, StorageError> {
    let mut table = open_table(stores, url).await?;
    let now = files(&table, url).await?;
    table
        .load_version(version)
        .await
        .map_err(delta_error(url))?;
    let then = files(&table, url).await?;
    let mut change = VersionChange {
        files_removed: now.keys().filter(|path| !then.contains_key(*path)).count(),
        files_restored: then.keys().filter(|path| !now.contains_key(*path)).count(),
        ..Default::default()
    };
    for (key, rows) in now.values() {
        change.partitions.entry(key.clone()).or_default().0 += rows;
    }
    for (key, rows) in then.values() {
        change.partitions.entry(key.clone()).or_default().1 += rows;
    }
    change.partitions.retain(|key, _| {
        let files = |files: &BTreeMap<String, (String, u64)>| -> BTreeSet<String> {
            files
                .iter()
                .filter(|(_, (k, _))| k == key)
                .map(|(path, _)| path.clone())
                .collect()
        };
        files(&now) != files(&then)
    });
    Ok(change)
}

/// Restore the table at `url`, now at version `from`, to `version`, as a new commit carrying
/// `record`; returns the new version. A table that moved on since `from` is not restored (what
/// was shown would not be what is done). Every file of that version must still be there (a
/// vacuum may have removed it).
pub async fn restore(
    stores: &Stores,
    url: &Url,
    from: u64,
    version: u64,
    record: &RunRecord,
) -> Result<u64, StorageError> {
    let table = open_table(stores, url).await?;
    if let Some(now) = table.version()
        && now != from
    {
        return Err(StorageError::Conflict {
            model: url.to_string(),
            reason: format!(
                "the table moved on from version {from} to {now} while the rollback was planned; run it again"
            ),
        });
    }
    let (table, _) = table
        .restore()
        .with_version_to_restore(version)
        .with_commit_properties(super::commit_properties(record))
        .await
        .map_err(delta_error(url))?;
    Ok(table.version().unwrap_or_default())
}
