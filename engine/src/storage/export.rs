//! STORAGE: an `external` model's export (dbt-duckdb's `external` materialization). After its
//! Delta commit, the committed rows are written as Parquet, CSV or JSON files at the model's
//! `location`, in hive folders when it has `partition_by`. In: the committed version. Out: the
//! files, each of which a reader sees whole or not at all.
//!
//! On local disk the export is written under a temporary name beside its location and renamed
//! into place: a single file replaces the previous one atomically; a folder (a partitioned
//! export) takes two renames, the old folder out and the new one in. On an object store each
//! file is one put (atomic); the previous export's files are deleted once the new ones are all
//! written.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use datafusion::config::{CsvOptions, JsonOptions, TableParquetOptions};
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::DataFrame;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use url::Url;

use super::StorageError;
use crate::project::ModelConfig;
use crate::session::{QueryEngine, Stores};

/// Where `model`'s export goes: its `location` (relative to `project_root`, or a `file://` or
/// `s3://` URL), or by default `<project_root>/<model>.<format>`, as dbt-duckdb's default
/// `external_root` (`.`, the project folder dbt runs in). A location that holds the project or
/// lies in the warehouse is refused: an export replaces what is at its location.
pub fn export_location(
    project_root: &Path,
    warehouse: &Url,
    model: &str,
    config: &ModelConfig,
) -> Result<Option<Url>, StorageError> {
    let Some(external) = &config.external else {
        return Ok(None);
    };
    let refused = |location: &str, reason: &str| StorageError::Export {
        model: model.to_string(),
        location: location.to_string(),
        message: reason.to_string(),
    };
    let written = external
        .location
        .clone()
        .unwrap_or_else(|| format!("{model}.{}", external.format.extension()));
    let url = match Url::parse(&written) {
        Ok(url) if url.scheme() == "s3" || url.scheme() == "s3a" => {
            if url.path().trim_matches('/').is_empty() {
                return Err(refused(
                    &written,
                    "an export needs a path inside the bucket",
                ));
            }
            return Ok(Some(url));
        }
        Ok(url) if url.scheme() == "file" => url
            .to_file_path()
            .map_err(|_| refused(&written, "not a local path"))?,
        // A Windows drive letter parses as a scheme: a path.
        Ok(url) if url.scheme().len() > 1 => {
            return Err(refused(
                &written,
                "an export goes to a local path, a file:// URL or an s3:// URL",
            ));
        }
        _ => project_root.join(&written),
    };
    let path = normalize(&url);
    let root = normalize(project_root);
    if root.starts_with(&path) {
        return Err(refused(
            &written,
            "it holds the project folder, which an export would replace",
        ));
    }
    if let Ok(warehouse) = warehouse.to_file_path()
        && (path.starts_with(normalize(&warehouse)) || normalize(&warehouse).starts_with(&path))
    {
        return Err(refused(
            &written,
            "it is in (or holds) the warehouse, whose folders are the model tables",
        ));
    }
    Url::from_file_path(&path)
        .map(Some)
        .map_err(|_| refused(&written, "not an absolute path"))
}

/// `path` without `.` and `..` components (symbolic links are left as they are).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    normal
}

/// Export the rows of `model`'s table at `version` (or its latest version) to `location`, as
/// its config's `external` says. Returns how many rows were written.
#[allow(clippy::too_many_arguments)]
pub async fn export(
    stores: &Stores,
    runtime: &Arc<RuntimeEnv>,
    table_url: &Url,
    version: Option<u64>,
    model: &str,
    config: &ModelConfig,
    location: &Url,
    run_id: &str,
) -> Result<u64, StorageError> {
    let Some(external) = &config.external else {
        return Ok(0);
    };
    let failed = |message: String| StorageError::Export {
        model: model.to_string(),
        location: location.to_string(),
        message,
    };
    for option in &external.ignored_options {
        tracing::warn!(model, option, "external option not used by dp: ignored");
    }
    // The committed rows, read through the Delta log at the version this build committed.
    let mut table = stores.table(table_url)?;
    let loaded = match version {
        Some(version) => table.load_version(version).await,
        None => table.load().await,
    };
    loaded.map_err(crate::session::SessionError::delta(table_url))?;
    // Written by this process, whatever engine ran the model: the files are the export's.
    let session = crate::session::Embedded.session(runtime);
    let provider = crate::session::Embedded
        .delta_table(&session, &table, table_url)
        .await?;
    let rows = session
        .read_table(provider)
        .map_err(|e| failed(e.strip_backtrace()))?;
    let partitioned = !external.partition_by.is_empty();
    let write = |rows: DataFrame, to: String| async move {
        let options = DataFrameWriteOptions::new()
            .with_single_file_output(!partitioned)
            .with_partition_by(external.partition_by.clone());
        let written = match external.format.extension() {
            "csv" => {
                let csv = CsvOptions::default()
                    .with_delimiter(external.delimiter)
                    .with_has_header(external.header);
                rows.write_csv(&to, options, Some(csv)).await
            }
            "json" => {
                rows.write_json(&to, options, Some(JsonOptions::default()))
                    .await
            }
            _ => {
                let mut parquet = TableParquetOptions::default();
                if let Some(codec) = &external.compression {
                    parquet.global.compression = Some(codec.clone());
                }
                rows.write_parquet(&to, options, Some(parquet)).await
            }
        };
        let batches = written.map_err(|e| failed(e.strip_backtrace()))?;
        Ok::<u64, StorageError>(count(&batches))
    };
    if location.scheme() == "file" {
        let path = location
            .to_file_path()
            .map_err(|_| failed("not a local path".into()))?;
        export_local(&path, partitioned, run_id, |to| write(rows, to))
            .await
            .map_err(|error| match error {
                LocalError::Io(error) => failed(error.to_string()),
                LocalError::Write(error) => error,
            })
    } else {
        stores.register(runtime, location)?;
        let store = stores
            .root_store(location)?
            .ok_or_else(|| failed("no object store for this location".into()))?;
        let prefix = object_store::path::Path::parse(location.path().trim_matches('/'))
            .map_err(|e| failed(e.to_string()))?;
        // The previous export's files, deleted once the new ones are all written.
        let previous: Vec<object_store::path::Path> = match partitioned {
            true => store
                .list(Some(&prefix))
                .map_ok(|object| object.location)
                .try_collect()
                .await
                .map_err(|e| failed(e.to_string()))?,
            false => Vec::new(),
        };
        let to = match partitioned {
            true => format!("{}/", location.as_str().trim_end_matches('/')),
            false => location.to_string(),
        };
        let rows = write(rows, to).await?;
        for old in previous {
            match store.delete(&old).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(failed(error.to_string())),
            }
        }
        Ok(rows)
    }
}

/// The row count a DataFusion write returns.
fn count(batches: &[datafusion::arrow::array::RecordBatch]) -> u64 {
    batches
        .iter()
        .filter(|b| b.num_rows() == 1 && b.num_columns() == 1)
        .filter_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::UInt64Array>()
                .map(|c| c.value(0))
        })
        .sum()
}

enum LocalError {
    Io(std::io::Error),
    Write(StorageError),
}

/// Write an export to a temporary name beside `path` with `write`, then rename it into place;
/// the temporary files are removed when the write fails.
async fn export_local<F, Fut>(
    path: &Path,
    folder: bool,
    run_id: &str,
    write: F,
) -> Result<u64, LocalError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<u64, StorageError>>,
{
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(LocalError::Io(std::io::Error::other("no file name")));
    };
    let name = name.to_string_lossy();
    std::fs::create_dir_all(parent).map_err(LocalError::Io)?;
    let temporary = parent.join(format!(".{name}.dp-tmp-{run_id}"));
    let old = parent.join(format!(".{name}.dp-old-{run_id}"));
    let remove = |path: &Path| match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    };
    remove(&temporary).map_err(LocalError::Io)?;
    let target = match folder {
        true => format!("{}/", temporary.display()),
        false => temporary.display().to_string(),
    };
    let rows = match write(target).await {
        Ok(rows) => rows,
        Err(error) => {
            let _ = remove(&temporary);
            return Err(LocalError::Write(error));
        }
    };
    // A partitioned export without rows writes no folder: it is an empty folder.
    if folder && !temporary.exists() {
        std::fs::create_dir_all(&temporary).map_err(LocalError::Io)?;
    }
    let replaced_is_file = std::fs::symlink_metadata(path).map(|m| !m.is_dir());
    match (folder, replaced_is_file) {
        // Nothing there, or a file replaced by a file: one atomic rename.
        (_, Err(_)) | (false, Ok(true)) => std::fs::rename(&temporary, path),
        // A folder is moved out first (a folder cannot be renamed over one that has files).
        _ => std::fs::rename(path, &old)
            .and_then(|()| std::fs::rename(&temporary, path))
            .and_then(|()| remove(&old)),
    }
    .map_err(|error| {
        let _ = remove(&temporary);
        LocalError::Io(error)
    })?;
    Ok(rows)
}
