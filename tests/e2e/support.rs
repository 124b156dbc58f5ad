//! Test helpers: a project copied to a temporary folder, the `dp` binary run on it, and the
//! published Delta tables read back with deltalake and DataFusion, independently of dp.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use tempfile::TempDir;

/// The workspace folder.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A project in a temporary folder.
pub struct TestProject {
    _dir: TempDir,
    pub root: PathBuf,
}

impl TestProject {
    /// A copy of example_project, without anything a local run left in it.
    pub fn example() -> Self {
        Self::copy_of(&workspace().join("example_project"))
    }

    /// A copy of `tests/fixtures/<name>`, with example_project's raw data when it has none.
    pub fn fixture(name: &str) -> Self {
        let project = Self::copy_of(&workspace().join("tests/fixtures").join(name));
        if !project.root.join("data").exists() {
            copy_dir(
                &workspace().join("example_project/data"),
                &project.root.join("data"),
            );
        }
        project
    }

    fn copy_of(from: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dp-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("project");
        copy_dir(from, &root);
        for generated in ["warehouse", "target"] {
            let _ = std::fs::remove_dir_all(root.join(generated));
        }
        Self { _dir: dir, root }
    }

    /// Run `dp` with `args` in the project folder.
    pub fn dp(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// `dp` with `args`, ready to run in the project folder.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dp"));
        command
            .args(args)
            .current_dir(&self.root)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        command
    }

    /// Run `dp` and insist that it succeeds; returns its stdout.
    pub fn dp_ok(&self, args: &[&str]) -> String {
        let output = self.dp(args);
        assert!(
            output.status.success(),
            "dp {args:?} failed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Write `text` to a file of the project.
    pub fn write(&self, relative: &str, text: &str) {
        let path = self.root.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// For the delta_source fixture: its source `upstream.stg_events` is the Delta table at
    /// `location`.
    pub fn read_delta_source(&self, location: &url::Url) {
        self.write(
            "models/sources.yml",
            &format!(
                "sources:\n  - name: upstream\n    format: delta\n    tables:\n      - name: stg_events\n        location: {location}\n"
            ),
        );
    }

    /// For the delta_source fixture: its purchases per day are those of `upstream`'s
    /// stg_events.
    pub fn assert_purchases_per_day_of(&self, upstream: &TestProject) {
        assert_eq!(
            self.query(
                "purchases_per_day",
                "select date, purchases from t order by date"
            ),
            upstream.query(
                "stg_events",
                "select date, count(*) from t where event = 'purchase' group by date order by date"
            )
        );
    }

    /// The folder of a model's table.
    pub fn table_dir(&self, model: &str) -> PathBuf {
        self.root.join("warehouse").join(model)
    }

    /// Every file under `relative`, by path, with its bytes.
    pub fn files(&self, relative: &str) -> BTreeMap<String, Vec<u8>> {
        let base = self.root.join(relative);
        let mut files = BTreeMap::new();
        for entry in walk(&base) {
            let name = entry.strip_prefix(&base).unwrap().display().to_string();
            files.insert(name, std::fs::read(&entry).unwrap());
        }
        files
    }

    /// The committed version of a model's table, read by deltalake.
    pub fn version(&self, model: &str) -> Option<u64> {
        block_on(async {
            let url = url::Url::from_directory_path(self.table_dir(model)).unwrap();
            match deltalake::open_table(url).await {
                Ok(table) => table.version(),
                Err(_) => None,
            }
        })
    }

    /// Rows of `sql` run over a model's published table, registered as `t`, read by deltalake's
    /// own DataFusion provider (not by dp).
    pub fn query(&self, model: &str, sql: &str) -> Vec<Vec<String>> {
        self.query_at(model, None, sql)
    }

    /// `query` over one version of the table.
    pub fn query_version(&self, model: &str, version: u64, sql: &str) -> Vec<Vec<String>> {
        self.query_at(model, Some(version), sql)
    }

    /// The data files the latest version of a model's table references that are not on disk
    /// (none: a reader of the table reads it whole). Older versions may lack files a vacuum
    /// removed past the retention.
    pub fn missing_files(&self, model: &str) -> Vec<String> {
        let dir = self.table_dir(model);
        block_on(async move {
            let url = url::Url::from_directory_path(dir).unwrap();
            let table = deltalake::open_table(url).await.unwrap();
            table
                .get_file_uris()
                .unwrap()
                .map(|uri| PathBuf::from(uri.trim_start_matches("file://")))
                .filter(|path| !path.exists())
                .map(|path| format!("v{}: {}", table.version().unwrap(), path.display()))
                .collect()
        })
    }

    fn query_at(&self, model: &str, version: Option<u64>, sql: &str) -> Vec<Vec<String>> {
        let dir = self.table_dir(model);
        block_on(async move {
            let url = url::Url::from_directory_path(dir).unwrap();
            let mut table = deltalake::open_table(url).await.unwrap();
            if let Some(version) = version {
                table.load_version(version).await.unwrap();
            }
            let ctx = SessionContext::new();
            table.update_datafusion_session(&ctx.state()).unwrap();
            ctx.register_table("t", table.table_provider().await.unwrap())
                .unwrap();
            rows(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
        })
    }
}

/// Rows of record batches as strings.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|column| array_value_to_string(column, row).unwrap())
                    .collect(),
            );
        }
    }
    rows
}

/// Run a future to completion on a fresh runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// Every file under `base`, recursively, in path order.
pub fn walk(base: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return files;
    };
    let mut entries: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

impl TestProject {
    /// `target/run_results.json` of the last run.
    pub fn run_results(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.root.join("target/run_results.json")).unwrap())
            .unwrap()
    }

    /// The status of `model` in the last run's results.
    pub fn model_status(&self, model: &str) -> String {
        self.run_results()["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == model)
            .map(|r| r["status"].as_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// The Parquet data files under `base`.
pub fn parquet_files(base: &Path) -> Vec<PathBuf> {
    walk(base)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// stdout and stderr of a run, for messages.
pub fn both(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A service process, killed when dropped.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub use crate::services::{free_port, wait_for_port};
