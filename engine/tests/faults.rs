//! Issue 15: an object store that fails a share of its calls (reads, writes, lists, deletes, the
//! commit itself, before or after doing the work) never leaves a table half published: every run
//! ends succeeded or failed cleanly, every version of every table reads whole, and the next run
//! without faults succeeds. `DP_FAULT_RUNS` sets how many faulty runs (default 24).

mod common;
// Shared with the end-to-end tests, which also use its Python.
#[allow(dead_code)]
#[path = "../../tests/services/mod.rs"]
mod services;

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::{Quiet, copy_dir};
use datafusion::prelude::SessionContext;
use dp_engine::report::{FailureClass, ModelStatus};
use dp_engine::{BuildSettings, StoreWrapper};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use services::Moto;

/// Fails a share of calls at random: before the call reaches the store, or (for writes) after
/// it did its work, as a lost response does.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn ObjectStore>,
    dice: Arc<Dice>,
}

#[derive(Debug)]
struct Dice {
    /// Out of 1000 calls.
    per_mille: u64,
    on: AtomicBool,
    seed: Mutex<u64>,
    injected: AtomicU64,
    /// The next put-if-absent lands, then answers "already exists", as a retried conditional
    /// put does when the first attempt's response was lost.
    lose_create_response: AtomicBool,
    /// How many of the next writes of data files fail, as a store that times out does.
    fail_data_writes: AtomicU64,
}

impl Dice {
    /// Dice failing `per_mille` of the calls once turned on, drawn from `seed`; and the wrapper
    /// that puts a [`Flaky`] store throwing them in front of every store of a build.
    fn new(per_mille: u64, seed: u64) -> (Arc<Dice>, StoreWrapper) {
        let dice = Arc::new(Dice {
            per_mille,
            on: AtomicBool::new(false),
            seed: Mutex::new(seed),
            injected: AtomicU64::new(0),
            lose_create_response: AtomicBool::new(false),
            fail_data_writes: AtomicU64::new(0),
        });
        let thrown = dice.clone();
        let wrapper: StoreWrapper = Arc::new(move |inner| {
            Arc::new(Flaky {
                inner,
                dice: thrown.clone(),
            }) as Arc<dyn ObjectStore>
        });
        (dice, wrapper)
    }

    fn roll(&self, what: &str, location: &dyn fmt::Display) -> Result<()> {
        let data_file = location.to_string().ends_with(".parquet");
        if data_file
            && self
                .fail_data_writes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(object_store::Error::Generic {
                store: "flaky",
                source: format!("injected timeout: {what} {location}").into(),
            });
        }
        if !self.on.load(Ordering::Relaxed) {
            return Ok(());
        }
        let draw = {
            let mut seed = self.seed.lock().unwrap();
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed % 1000
        };
        if draw >= self.per_mille {
            return Ok(());
        }
        self.injected.fetch_add(1, Ordering::Relaxed);
        Err(object_store::Error::Generic {
            store: "flaky",
            source: format!("injected failure: {what} {location}").into(),
        })
    }
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.dice.roll("put", location)?;
        let create = matches!(opts.mode, PutMode::Create);
        let done = self.inner.put_opts(location, payload, opts).await?;
        if create
            && self
                .dice
                .lose_create_response
                .swap(false, Ordering::Relaxed)
        {
            return Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: "injected: the retry of a put that landed".into(),
            });
        }
        self.dice.roll("put (done, response lost)", location)?;
        Ok(done)
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.dice.roll("multipart upload", location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &StorePath, options: GetOptions) -> Result<GetResult> {
        self.dice.roll("get", location)?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<StorePath>>,
    ) -> BoxStream<'static, Result<StorePath>> {
        let dice = self.dice.clone();
        let locations = locations
            .map(move |location| {
                let location = location?;
                dice.roll("delete", &location)?;
                Ok(location)
            })
            .boxed();
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&StorePath>) -> BoxStream<'static, Result<ObjectMeta>> {
        let shown = prefix.map(ToString::to_string).unwrap_or_default();
        match self.dice.roll("list", &shown) {
            Ok(()) => self.inner.list(prefix),
            Err(error) => stream::once(async { Err(error) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&StorePath>) -> Result<ListResult> {
        let shown = prefix.map(ToString::to_string).unwrap_or_default();
        self.dice.roll("list", &shown)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> Result<()> {
        self.dice.roll("copy", from)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: RenameOptions,
    ) -> Result<()> {
        self.dice.roll("rename", from)?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// Where the tables of a faulty run are: on local disk, or in a bucket of an S3 server.
enum Warehouse {
    Local(std::path::PathBuf),
    S3 {
        url: url::Url,
        store: Arc<dyn ObjectStore>,
    },
}

impl Warehouse {
    /// The Delta table of `model`, read without faults.
    async fn open(&self, model: &str) -> deltalake::DeltaTable {
        match self {
            Warehouse::Local(dir) => {
                let url = url::Url::from_directory_path(dir.join(model)).unwrap();
                deltalake::open_table(url).await.unwrap()
            }
            Warehouse::S3 { url, store } => {
                let url = url.join(&format!("{model}/")).unwrap();
                deltalake::DeltaTableBuilder::from_url(url.clone())
                    .unwrap()
                    .with_storage_backend(store.clone(), url)
                    .load()
                    .await
                    .unwrap()
            }
        }
    }
}

/// Each version of `model`'s table, read without faults: the builds its rows carry and its row
/// count. Every file every version names must exist for the read to succeed.
async fn versions(warehouse: &Warehouse, model: &str, count: &str) -> Vec<(Vec<String>, String)> {
    let latest = warehouse.open(model).await;
    let mut found = Vec::new();
    for version in 0..=latest.version().unwrap() {
        let mut table = warehouse.open(model).await;
        table.load_version(version).await.unwrap();
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        let builds = ctx
            .sql("select distinct cast(build as varchar) as b from t order by b")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_or_else(|e| panic!("version {version} of {model}: {e}"));
        let builds: Vec<String> = builds
            .iter()
            .flat_map(|batch| {
                let column = batch.column(0);
                (0..batch.num_rows())
                    .map(|i| {
                        datafusion::arrow::util::display::array_value_to_string(column, i).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let total = ctx
            .sql(&format!("select cast({count} as varchar) from t"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let total =
            datafusion::arrow::util::display::array_value_to_string(total[0].column(0), 0).unwrap();
        found.push((builds, total));
    }
    found
}

/// A copy of the crash fixture, with example_project's data.
fn crash_project(dir: &Path) -> std::path::PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = dir.join("project");
    copy_dir(&workspace.join("tests/fixtures/crash"), &root);
    copy_dir(&workspace.join("example_project/data"), &root.join("data"));
    root
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_in_any_store_call_never_publish_half_a_build() {
    let dir = tempfile::tempdir().unwrap();
    let root = crash_project(dir.path());
    let warehouse = Warehouse::Local(root.join("warehouse"));
    faulty_runs(&root, &warehouse).await;
}

/// The same faults in the calls to an S3 server (moto, on 127.0.0.1) holding the warehouse.
#[tokio::test(flavor = "multi_thread")]
async fn faults_in_any_s3_call_never_publish_half_a_build() {
    let server = tokio::task::spawn_blocking(Moto::start).await.unwrap();
    server.create_bucket("faults");
    let dir = tempfile::tempdir().unwrap();
    let root = crash_project(dir.path());
    let config = root.join("dp_project.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("target: test\n", "target: s3\n")
            + &server.target_yaml(
                "s3",
                "faults",
                "testing",
                "{{ env_var('DP_TEST_FAULTS_SECRET', 'secret') }}",
            ),
    )
    .unwrap();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_bucket_name("faults")
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id("testing")
        .with_secret_access_key("secret")
        .build()
        .unwrap();
    let warehouse = Warehouse::S3 {
        url: url::Url::parse("s3://faults/warehouse/").unwrap(),
        store: Arc::new(store),
    };
    faulty_runs(&root, &warehouse).await;
}

/// `DP_FAULT_RUNS` builds of the project at `root` through a store that fails a share of its
/// calls: each ends succeeded or failed cleanly, every version of every table reads whole, and
/// the next run without faults succeeds.
async fn faulty_runs(root: &Path, warehouse: &Warehouse) {
    let runs: u64 = std::env::var("DP_FAULT_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}");
    let (dice, wrapper) = Dice::new(20, seed);

    let build = |number: u64| {
        let root = root.to_path_buf();
        let wrapper = wrapper.clone();
        async move {
            let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
                project_dir: root.clone(),
                vars: vec![format!("build={number}")],
                ..Default::default()
            })
            .unwrap();
            let checked = dp_engine::check(&prepared).await.unwrap();
            let settings = BuildSettings {
                threads: Some(2),
                store_wrapper: Some(wrapper),
                ..Default::default()
            };
            prepared.build(checked, settings, &Quiet).await.unwrap()
        }
    };

    assert!(build(0).await.success());
    let mut published = (0, 0, 0);
    let (mut succeeded, mut failed) = (0, 0);
    dice.on.store(true, Ordering::Relaxed);
    for number in 1..=runs {
        let summary = build(number).await;
        dice.on.store(false, Ordering::Relaxed);
        let status = |model: &str| {
            summary
                .results
                .iter()
                .find(|r| r.model == model)
                .map(|r| r.status.clone())
                .unwrap()
        };
        for (model, count, last) in [
            ("tagged_events", "count(*)", &mut published.0),
            ("build_totals", "sum(events)", &mut published.1),
            // An incremental merge rewriting every row: never half of them.
            ("merged_events", "count(*)", &mut published.2),
        ] {
            let versions = versions(warehouse, model, count).await;
            // Every version holds one build's rows, whole.
            for (version, (builds, total)) in versions.iter().enumerate() {
                assert_eq!(
                    builds.len(),
                    1,
                    "{model} v{version} after run {number}: {builds:?}"
                );
                assert_eq!(total, "21000", "{model} v{version} after run {number}");
            }
            let now: u64 = versions.last().unwrap().0[0].parse().unwrap();
            match status(model) {
                ModelStatus::Success => assert_eq!(now, number, "{model} reported built"),
                // The store failed the commit and every look at the log after it: either way.
                ModelStatus::Failed(error) if error.to_string().contains("is unknown") => {
                    assert!(now == number || now == *last, "{model}: {error}")
                }
                other => {
                    assert_eq!(now, *last, "{model} not built ({other:?}) but changed")
                }
            }
            *last = now;
        }
        if summary.success() {
            succeeded += 1;
        } else {
            failed += 1;
        }
        dice.on.store(true, Ordering::Relaxed);
    }
    dice.on.store(false, Ordering::Relaxed);
    let injected = dice.injected.load(Ordering::Relaxed);
    println!(
        "{runs} runs: {succeeded} succeeded, {failed} failed cleanly; {injected} faults injected"
    );
    assert!(injected > 0, "no fault was injected");
    assert!(
        failed > 0,
        "no run failed: the faults were too rare to test anything"
    );

    // Without faults, the next run succeeds.
    let summary = build(runs + 1).await;
    assert!(summary.success(), "{:?}", summary.results);
    let last = versions(warehouse, "tagged_events", "count(*)").await;
    assert_eq!(last.last().unwrap().0, [(runs + 1).to_string()]);
}

/// A commit whose conditional put landed but answered "already exists" (the client retried it
/// after a lost response) is this build's own: it is kept, files and all, for the first build
/// (version 0) as for a later one.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_that_lands_but_reads_as_lost_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = crash_project(dir.path());
    let warehouse = Warehouse::Local(root.join("warehouse"));
    let (dice, wrapper) = Dice::new(0, 1);
    for number in 0..2_u64 {
        let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
            project_dir: root.clone(),
            vars: vec![format!("build={number}")],
            select: vec!["tagged_events".into()],
            ..Default::default()
        })
        .unwrap();
        let checked = dp_engine::check(&prepared).await.unwrap();
        dice.lose_create_response.store(true, Ordering::Relaxed);
        let settings = BuildSettings {
            threads: Some(1),
            store_wrapper: Some(wrapper.clone()),
            ..Default::default()
        };
        let summary = prepared.build(checked, settings, &Quiet).await.unwrap();
        assert!(
            !dice.lose_create_response.load(Ordering::Relaxed),
            "no put-if-absent was made"
        );
        let result = &summary.results[0];
        assert!(summary.success(), "build {number}: {:?}", result.status);
        assert_eq!(result.version, Some(number));
        let versions = versions(&warehouse, "tagged_events", "count(*)").await;
        assert_eq!(versions.len() as u64, number + 1);
        assert_eq!(versions.last().unwrap().0, [number.to_string()]);
    }
}

/// Issue 19: a build the store fails for a moment (a write of a data file times out) is run
/// again and publishes; a schema change is never retried: one attempt, and its class.
#[tokio::test(flavor = "multi_thread")]
async fn a_transient_store_failure_is_retried_and_a_schema_change_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = crash_project(dir.path());
    let warehouse = Warehouse::Local(root.join("warehouse"));
    let (dice, wrapper) = Dice::new(0, 1);
    let build = || async {
        let prepared = dp_engine::prepare(&dp_engine::PrepareOptions {
            project_dir: root.clone(),
            vars: vec!["build=1".into()],
            select: vec!["tagged_events".into()],
            ..Default::default()
        })
        .unwrap();
        let checked = dp_engine::check(&prepared).await.unwrap();
        let settings = BuildSettings {
            threads: Some(1),
            store_wrapper: Some(wrapper.clone()),
            ..Default::default()
        };
        prepared.build(checked, settings, &Quiet).await.unwrap()
    };

    dice.fail_data_writes.store(1, Ordering::Relaxed);
    let summary = build().await;
    assert_eq!(
        dice.fail_data_writes.load(Ordering::Relaxed),
        0,
        "no failure injected"
    );
    let result = &summary.results[0];
    assert!(summary.success(), "{:?}", result.status);
    assert_eq!(result.attempts, 2);
    assert_eq!(result.failure_class, None);
    assert_eq!(result.version, Some(0));
    let published = versions(&warehouse, "tagged_events", "count(*)").await;
    assert_eq!(published, [(vec!["1".to_string()], "21000".to_string())]);

    // More failures in a row than the retries allow: failed, as transient, after 3 attempts.
    dice.fail_data_writes.store(100, Ordering::Relaxed);
    let summary = build().await;
    let result = &summary.results[0];
    assert_eq!(
        result.failure_class,
        Some(FailureClass::Transient),
        "{:?}",
        result.status
    );
    assert_eq!(result.attempts, 3);
    dice.fail_data_writes.store(0, Ordering::Relaxed);

    let model = root.join("models/tagged_events.sql");
    let text = std::fs::read_to_string(&model).unwrap();
    std::fs::write(&model, text.replace("select ", "select 1 as added, ")).unwrap();
    let summary = build().await;
    let result = &summary.results[0];
    assert_eq!(
        result.failure_class,
        Some(FailureClass::SchemaChange),
        "{:?}",
        result.status
    );
    assert_eq!(result.attempts, 1);
    assert_eq!(
        versions(&warehouse, "tagged_events", "count(*)")
            .await
            .len(),
        1
    );
}
