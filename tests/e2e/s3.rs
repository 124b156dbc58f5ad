//! Issue 17: example_project on a real S3-compatible server (moto, started on 127.0.0.1 by the
//! test and stopped when it ends): conditional writes, builds, rebuilds, tests, a failed
//! assertion, an outside reader, and a secret that never shows.

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use crate::support::{TestProject, both};

use crate::services::Moto;
use crate::services::proxy::FaultyProxy;

/// Planted secrets: the S3 secret key and access key of every run here.
const SECRET: &str = "dp-planted-secret-7f3a9c";
const KEY: &str = "AKIAPLANTEDKEY7F3A9C";

/// The S3 server of one test, with Python helpers (boto3, deltalake) to look at it.
struct S3Server {
    moto: Moto,
    endpoint: String,
}

impl S3Server {
    fn start() -> Self {
        let moto = Moto::start();
        let endpoint = moto.endpoint.clone();
        Self { moto, endpoint }
    }

    /// Run Python `script` (boto3 and deltalake available) with `args`; its stdout.
    fn python(&self, script: &str, args: &[&str]) -> String {
        let output = Command::new(self.moto.bin.join("python"))
            .arg("-c")
            .arg(format!(
                "import sys, json, boto3\n\
                 s3 = boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1',\n\
                     aws_access_key_id='testing', aws_secret_access_key='{SECRET}')\n\
                 options = {{'AWS_ENDPOINT_URL': '{endpoint}', 'AWS_REGION': 'us-east-1',\n\
                     'AWS_ACCESS_KEY_ID': 'testing', 'AWS_SECRET_ACCESS_KEY': '{SECRET}',\n\
                     'AWS_ALLOW_HTTP': 'true'}}\n{script}\n\
                 # deltalake's runtime can abort the interpreter's shutdown: leave at once.\n\
                 import os\nsys.stdout.flush()\nos._exit(0)",
                endpoint = self.endpoint
            ))
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "python: {}", both(&output));
        String::from_utf8(output.stdout).unwrap()
    }

    fn create_bucket(&self, bucket: &str) {
        self.moto.create_bucket(bucket);
    }

    /// Upload every file under `folder` to `s3://bucket/prefix/...`.
    fn upload(&self, folder: &std::path::Path, bucket: &str, prefix: &str) {
        self.python(
            "import os\n\
             root, bucket, prefix = sys.argv[1:4]\n\
             for folder, _, files in os.walk(root):\n\
             \x20   for name in files:\n\
             \x20       path = os.path.join(folder, name)\n\
             \x20       s3.upload_file(path, bucket, prefix + '/' + os.path.relpath(path, root))",
            &[folder.to_str().unwrap(), bucket, prefix],
        );
    }

    /// Every object under `s3://bucket/prefix/`, with its ETag.
    fn objects(&self, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
        let listed = self.python(
            "pages = s3.get_paginator('list_objects_v2').paginate(Bucket=sys.argv[1], Prefix=sys.argv[2])\n\
             print(json.dumps({o['Key']: o['ETag'] for p in pages for o in p.get('Contents', [])}))",
            &[bucket, &format!("{prefix}/")],
        );
        serde_json::from_str(&listed).unwrap()
    }

    /// The text of every object under `s3://bucket/prefix/`, joined.
    fn text_of(&self, bucket: &str, prefix: &str) -> String {
        self.objects(bucket, prefix)
            .keys()
            .map(|key| {
                self.python(
                    "sys.stdout.write(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])['Body'].read().decode('utf-8', 'replace'))",
                    &[bucket, key],
                )
            })
            .collect()
    }

    /// The rows of the Delta table at `uri`, as Python's deltalake reads them, sorted.
    fn rows(&self, uri: &str) -> Vec<String> {
        let rows = self.python(
            "from deltalake import DeltaTable\n\
             uri = sys.argv[1]\n\
             table = DeltaTable(uri, storage_options=options if uri.startswith('s3://') else None)\n\
             rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pyarrow_table().to_pylist())\n\
             print(json.dumps(rows))",
            &[uri],
        );
        serde_json::from_str(&rows).unwrap()
    }

    /// The version of the Delta table at `uri`, as Python's deltalake reads it.
    fn version(&self, uri: &str) -> u64 {
        self.python(
            "from deltalake import DeltaTable\n\
             print(DeltaTable(sys.argv[1], storage_options=options).version())",
            &[uri],
        )
        .trim()
        .parse()
        .unwrap()
    }
}

/// A copy of example_project whose raw data and warehouse are in `bucket` on `server`.
fn example_on(server: &S3Server, bucket: &str) -> TestProject {
    on_s3(TestProject::example(), server, bucket, &server.endpoint)
}

/// `project` with its raw data (`data/raw`, named by a source YAML under `models/`) and its
/// warehouse in `bucket` on `server`, which dp reaches at `endpoint` (the server's, or a
/// proxy's in front of it), as its default target `s3`.
fn on_s3(project: TestProject, server: &S3Server, bucket: &str, endpoint: &str) -> TestProject {
    server.create_bucket(bucket);
    server.upload(&project.root.join("data/raw"), bucket, "raw");
    for file in crate::support::walk(&project.root.join("models")) {
        let text = std::fs::read_to_string(&file).unwrap();
        if text.contains("location: data/raw") {
            let text = text.replace(
                "location: data/raw",
                &format!("location: s3://{bucket}/raw"),
            );
            std::fs::write(&file, text).unwrap();
        }
    }
    std::fs::remove_dir_all(project.root.join("data")).unwrap();
    let config = project.root.join("dp_project.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = match text.contains("target: dev\n") {
        true => text.replace("target: dev\n", "target: s3\n"),
        false => format!("{text}target: s3\ntargets:\n"),
    } + &server
        .moto
        .target_yaml(
            "s3",
            bucket,
            "{{ env_var('DP_TEST_S3_KEY') }}",
            "{{ env_var('DP_TEST_S3_SECRET') }}",
        )
        .replace(&server.endpoint, endpoint);
    std::fs::write(&config, text).unwrap();
    project
}

/// dp in `project`, with the planted credentials in its environment and no other `AWS_*`
/// setting of the machine's.
fn command(project: &TestProject, args: &[&str]) -> Command {
    let mut command = project.command(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("DP_TEST_S3_SECRET", SECRET)
        .env("DP_TEST_S3_KEY", KEY);
    command
}

fn dp(project: &TestProject, args: &[&str]) -> Output {
    command(project, args).output().unwrap()
}

/// Whether `text` holds a planted credential.
fn leaks(text: &str) -> bool {
    text.contains(SECRET) || text.contains(KEY)
}

fn dp_ok(project: &TestProject, args: &[&str]) -> String {
    let output = dp(project, args);
    assert!(output.status.success(), "dp {args:?}: {}", both(&output));
    assert!(!leaks(&both(&output)), "dp {args:?} printed a credential");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_s3_server_lets_exactly_one_of_concurrent_conditional_puts_win() {
    use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, path::Path};
    let server = S3Server::start();
    server.create_bucket("race");
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&server.endpoint)
        .with_bucket_name("race")
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_access_key_id(KEY)
        .with_secret_access_key(SECRET)
        .build()
        .unwrap();
    let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(store);
    let results = crate::support::block_on(async {
        let puts = (0..16).map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let options = PutOptions::from(PutMode::Create);
                let payload = format!("writer {writer}");
                let put = store
                    .put_opts(
                        &Path::from("_delta_log/00000.json"),
                        payload.into(),
                        options,
                    )
                    .await;
                (writer, put.is_ok())
            })
        });
        let mut results = Vec::new();
        for put in futures::future::join_all(puts).await {
            results.push(put.unwrap());
        }
        let stored = store
            .get(&Path::from("_delta_log/00000.json"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        (results, String::from_utf8(stored.to_vec()).unwrap())
    });
    let (results, stored) = results;
    let winners: Vec<usize> = results
        .iter()
        .filter(|(_, won)| *won)
        .map(|(w, _)| *w)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(stored, format!("writer {}", winners[0]));
}

#[test]
fn example_project_builds_on_s3_as_on_disk_and_keeps_its_secret() {
    let server = S3Server::start();
    let project = example_on(&server, "example");
    let local = TestProject::example();
    let table = |model: &str| format!("s3://example/warehouse/{model}");
    let local_table = |model: &str| local.table_dir(model).display().to_string();

    // One date, then the whole project: the rows of the local run, read by an outside reader.
    dp_ok(&project, &["build", "-vv", "--vars", "date=2024-01-15"]);
    local.dp_ok(&["build", "--vars", "date=2024-01-15"]);
    assert_eq!(
        server.rows(&table("daily_summary")),
        server.rows(&local_table("daily_summary"))
    );
    // The date filter pruned the source's folders on S3 as on disk.
    let results =
        String::from_utf8(std::fs::read(project.root.join("target/run_results.json")).unwrap())
            .unwrap();
    assert!(results.contains("\"raw.events\": 1"), "{results}");
    dp_ok(&project, &["build"]);
    local.dp_ok(&["build"]);
    for model in ["stg_events", "daily_summary", "cohort_revenue"] {
        let rows = server.rows(&table(model));
        assert!(!rows.is_empty(), "{model} is empty");
        assert_eq!(rows, server.rows(&local_table(model)), "{model}");
    }

    // Rebuilding a date publishes the same rows and leaves the other dates' files as they were.
    let before = server.objects("example", "warehouse/daily_summary");
    let rows = server.rows(&table("daily_summary"));
    dp_ok(
        &project,
        &[
            "build",
            "--select",
            "daily_summary",
            "--vars",
            "date=2024-01-15",
        ],
    );
    let after = server.objects("example", "warehouse/daily_summary");
    assert_eq!(server.rows(&table("daily_summary")), rows);
    for (key, etag) in &before {
        let data = key.ends_with(".parquet");
        if data && !key.contains("date=2024-01-15") {
            assert_eq!(after.get(key), Some(etag), "{key} changed");
        }
    }

    // Tests, the check and the docs run against the bucket too.
    dp_ok(&project, &["test"]);
    dp_ok(&project, &["check"]);
    dp_ok(&project, &["compile"]);
    dp_ok(&project, &["docs", "generate"]);
    // Logs at every level, the S3 client's included.
    let traced = command(
        &project,
        &[
            "build",
            "--select",
            "daily_summary",
            "--vars",
            "date=2024-01-16",
        ],
    )
    .env("RUST_LOG", "trace")
    .output()
    .unwrap();
    assert!(traced.status.success(), "{}", both(&traced));
    assert!(both(&traced).len() > 100_000, "trace logs were written");
    assert!(!leaks(&both(&traced)), "a credential is in the trace logs");

    // The secret is nowhere: run results, compiled SQL, the docs, the Delta logs.
    for (what, text) in [
        ("target/", target_text(&project.root.join("target"))),
        ("the Delta logs", server.text_of("example", "warehouse")),
    ] {
        assert!(!text.is_empty(), "nothing in {what}");
        assert!(!leaks(&text), "a credential is in {what}");
    }
}

#[test]
fn a_failed_assertion_on_s3_changes_nothing_and_leaves_no_file() {
    let server = S3Server::start();
    let project = example_on(&server, "audit");
    dp_ok(
        &project,
        &[
            "build",
            "--select",
            "stg_events",
            "--vars",
            "date=2024-01-15",
        ],
    );
    let uri = "s3://audit/warehouse/stg_events";
    let (version, rows) = (server.version(uri), server.rows(uri));
    let objects = server.objects("audit", "warehouse/stg_events");

    let schema = project.root.join("models/staging/schema.yml");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace(
            "values: [page_view, click, add_to_cart, purchase]",
            "values: [click]",
        ),
    )
    .unwrap();
    let output = dp(
        &project,
        &[
            "build",
            "--select",
            "stg_events",
            "--vars",
            "date=2024-01-16",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(server.version(uri), version);
    assert_eq!(server.rows(uri), rows);
    assert_eq!(server.objects("audit", "warehouse/stg_events"), objects);
}

/// The text of every file under `folder`.
fn target_text(folder: &std::path::Path) -> String {
    crate::support::walk(folder)
        .into_iter()
        .filter_map(|path| std::fs::read(path).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

/// `(date, rows)` of the daily_summary table at `uri`, as Python's deltalake reads it.
fn rows_per_date(server: &S3Server, uri: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for row in server.rows(uri) {
        let row: serde_json::Value = serde_json::from_str(&row).unwrap();
        *counts
            .entry(row["date"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    counts
}

#[test]
fn concurrent_builds_of_one_partition_on_s3_commit_once_each_and_never_duplicate() {
    let server = S3Server::start();
    // Until a round has at least one loser (the builds share two cores: some rounds run them one
    // after the other).
    let mut conflicts = 0;
    for round in 0..4 {
        let bucket = format!("race{round}");
        let project = example_on(&server, &bucket);
        let date = ["--vars", "date=2024-01-15"];
        dp_ok(
            &project,
            &[&["build", "--select", "stg_events"][..], &date].concat(),
        );
        // Four processes build the same partition of a table that does not exist yet.
        let args = [&["build", "--select", "daily_summary"][..], &date].concat();
        let builds: Vec<_> = (0..4)
            .map(|_| {
                command(&project, &args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs: Vec<Output> = builds
            .into_iter()
            .map(|b| b.wait_with_output().unwrap())
            .collect();
        let won = outputs.iter().filter(|o| o.status.success()).count();
        assert!(won >= 1, "no build committed");
        for output in outputs.iter().filter(|o| !o.status.success()) {
            assert_eq!(output.status.code(), Some(1), "{}", both(output));
            assert!(both(output).contains("dp::conflict"), "{}", both(output));
            conflicts += 1;
        }
        let uri = format!("s3://{bucket}/warehouse/daily_summary");
        // Each winner is one commit; the rows are one build's, once.
        assert_eq!(server.version(&uri) as usize, won - 1);
        assert_eq!(
            rows_per_date(&server, &uri),
            BTreeMap::from([("2024-01-15".into(), 4)])
        );
        // The losers deleted what they staged: the objects are the winners' files.
        let parquet = server
            .objects(&bucket, "warehouse/daily_summary")
            .keys()
            .filter(|k| k.ends_with(".parquet"))
            .count();
        let live = server
            .python(
                "from deltalake import DeltaTable\n\
                 print(len(DeltaTable(sys.argv[1], storage_options=options).file_uris()))",
                &[&uri],
            )
            .trim()
            .parse::<usize>()
            .unwrap();
        assert_eq!(parquet, won * live);
        if conflicts > 0 {
            break;
        }
    }
    assert!(conflicts > 0, "no round had two builds race");
}

#[test]
fn builds_killed_on_s3_leave_a_readable_table_and_vacuum_cleans_after_them() {
    let server = S3Server::start();
    let project = example_on(&server, "crash");
    dp_ok(&project, &["build", "--vars", "date=2024-01-15"]);
    let uri = "s3://crash/warehouse/daily_summary";
    for delay_ms in [200, 600, 1200, 2000] {
        let mut child = command(&project, &["build", "--vars", "date=2024-01-16"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // A reader sees a committed version: the first date whole, the second whole or absent.
        let counts = rows_per_date(&server, uri);
        assert_eq!(counts.get("2024-01-15"), Some(&4), "{counts:?}");
        assert!(
            matches!(counts.get("2024-01-16"), None | Some(4)),
            "{counts:?}"
        );
    }
    dp_ok(&project, &["build", "--vars", "date=2024-01-16"]);
    let counts = rows_per_date(&server, uri);
    assert_eq!(
        counts,
        BTreeMap::from([("2024-01-15".into(), 4), ("2024-01-16".into(), 4)])
    );
    // Whatever the killed builds left, a vacuum past the retention removes, and only that: also
    // a staged file planted as a killed writer names it, but not a file of someone else's.
    server.python(
        "import uuid\n\
         keys = [o['Key'] for o in s3.list_objects_v2(Bucket='crash', Prefix='warehouse/daily_summary/date=2024-01-15/')['Contents']]\n\
         live = [k for k in keys if k.endswith('.parquet')][0]\n\
         s3.copy_object(Bucket='crash', CopySource={'Bucket': 'crash', 'Key': live},\n\
             Key='warehouse/daily_summary/date=2024-01-15/part-00000-%s-c000.snappy.parquet' % uuid.uuid4())\n\
         s3.put_object(Bucket='crash', Key='warehouse/daily_summary/notes.txt', Body=b'mine')",
        &[],
    );
    let rows = server.rows(uri);
    dp_ok(&project, &["vacuum", "--retain", "0s", "--force"]);
    assert!(
        server
            .objects("crash", "warehouse/daily_summary")
            .contains_key("warehouse/daily_summary/notes.txt"),
        "vacuum deleted a file dp did not write"
    );
    assert_eq!(server.rows(uri), rows);
    let live = server
        .python(
            "from deltalake import DeltaTable\n\
             print(json.dumps(sorted(u.split('/warehouse/')[1] for u in DeltaTable(sys.argv[1], storage_options=options).file_uris())))",
            &[uri],
        );
    let live: Vec<String> = serde_json::from_str(&live).unwrap();
    let stored: Vec<String> = server
        .objects("crash", "warehouse/daily_summary")
        .into_keys()
        .filter(|k| k.ends_with(".parquet"))
        .map(|k| k.trim_start_matches("warehouse/").to_string())
        .collect();
    assert_eq!(stored, live);
}

#[test]
fn settings_that_make_commits_unsafe_or_show_a_secret_are_refused() {
    let project = TestProject::example();
    let config = project.root.join("dp_project.yml");
    let text = std::fs::read_to_string(&config).unwrap();
    let with_secret = |secret: &str| {
        format!(
            "{}  s3:\n    warehouse: s3://bucket/warehouse\n    storage_options:\n      \
             endpoint: http://127.0.0.1:9\n      secret_access_key: {secret}\n",
            text.replace("target: dev\n", "target: s3\n")
        )
    };
    std::fs::write(
        &config,
        with_secret("\"{{ env_var('DP_TEST_S3_SECRET') }}\""),
    )
    .unwrap();
    for (variable, value) in [
        ("AWS_CONDITIONAL_PUT", "disabled"),
        ("AWS_S3_ALLOW_UNSAFE_RENAME", "TRUE"),
    ] {
        let output = command(&project, &["check"])
            .env(variable, value)
            .output()
            .unwrap();
        let text = both(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert!(
            text.contains("dp::unsafe_environment") && text.contains(variable),
            "{text}"
        );
    }
    // A secret written in the file is refused, and not shown.
    std::fs::write(&config, with_secret(SECRET)).unwrap();
    let output = dp(&project, &["check"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("dp::literal_secret") && text.contains("secret_access_key"),
        "{text}"
    );
    assert!(!leaks(&text), "{text}");
}

#[test]
fn a_cluster_reads_sources_and_tables_on_s3_with_the_settings_in_its_environment() {
    let server = S3Server::start();
    let project = example_on(&server, "cluster");
    let logs = tempfile::tempdir().unwrap();
    // The executors (and the scheduler, which lists the sources) reach the bucket with the
    // settings dp's target gives, from their environment.
    let cluster = crate::cluster::start_with(
        logs.path(),
        &[
            ("AWS_ENDPOINT", server.endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
            ("AWS_ACCESS_KEY_ID", KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ],
    );
    let config = project.root.join("dp_project.yml");
    let text = std::fs::read_to_string(&config).unwrap()
        + &server.moto.target_yaml(
            "s3_cluster",
            "cluster",
            "{{ env_var('DP_TEST_S3_KEY') }}",
            "{{ env_var('DP_TEST_S3_SECRET') }}",
        )
        + &cluster.engine_yaml();
    std::fs::write(&config, text).unwrap();
    let output = dp_ok(&project, &["build", "--target", "s3_cluster"]);
    assert!(output.contains("3 ok, 0 error"), "{output}");
    assert!(cluster.tasks_finished().iter().all(|n| *n > 0));

    let local = TestProject::example();
    local.dp_ok(&["build"]);
    for table in ["stg_events", "daily_summary", "cohort_revenue"] {
        let on_s3 = server.rows(&format!("s3://cluster/warehouse/{table}"));
        assert!(!on_s3.is_empty(), "{table}");
        assert_eq!(
            on_s3,
            server.rows(local.table_dir(table).to_str().unwrap()),
            "{table}"
        );
    }
}

/// The race_append fixture on `bucket` of `server`, which dp reaches through a faulty proxy.
fn race_append_behind_a_proxy(server: &S3Server, bucket: &str) -> (FaultyProxy, TestProject) {
    let proxy = FaultyProxy::start(server.moto.port);
    let project = on_s3(
        TestProject::fixture("race_append"),
        server,
        bucket,
        &proxy.endpoint,
    );
    (proxy, project)
}

#[test]
fn a_lost_commit_response_on_s3_publishes_an_append_once() {
    let server = S3Server::start();
    let (proxy, project) = race_append_behind_a_proxy(&server, "lost");
    // An append that does not read its own table: each run adds its day's events.
    project.write(
        "models/daily_events.sql",
        "{{ config(materialized='incremental', incremental_strategy='append') }}\n\
         select distinct event_id, date from {{ source('raw', 'events') }} where date = '{{ var(\"day\") }}'",
    );
    let uri = "s3://lost/warehouse/daily_events";
    let mut expected = Vec::new();
    for (build, day) in ["2024-01-15", "2024-01-16"].into_iter().enumerate() {
        // The store takes the commit; its response is lost; the client puts it again.
        proxy.faults().lose_commit_responses = 1;
        dp_ok(
            &project,
            &[
                "build",
                "--select",
                "daily_events",
                "--vars",
                &format!("day={day}"),
            ],
        );
        assert_eq!(proxy.faults().lost, build + 1, "the response was lost");
        assert_eq!(server.version(uri), build as u64, "one build, one commit");
        let rows = server.rows(uri);
        let distinct: std::collections::BTreeSet<&String> = rows.iter().collect();
        assert_eq!(rows.len(), distinct.len(), "no event twice: {rows:?}");
        assert!(
            rows.iter()
                .all(|row| row.contains(day) || expected.contains(row))
        );
        expected = rows;
    }
    assert!(expected.iter().any(|row| row.contains("2024-01-15")));
}

#[test]
fn an_s3_outage_during_a_data_test_is_a_transient_failure() {
    let server = S3Server::start();
    let (proxy, project) = race_append_behind_a_proxy(&server, "outage");
    // From the staged file's upload on, every call fails: its data tests cannot read it.
    proxy.faults().outage_after_parquet_put = true;
    let output = dp(&project, &["build", "--vars", "until=2024-01-14"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(proxy.faults().outage, "the outage began");
    let results = project.run_results();
    let result = &results["results"][0];
    assert_eq!(result["status"], "error", "{result}");
    assert_eq!(result["failure_class"], "transient", "{result}");
    // The store is back: the run succeeds, and publishes its rows once.
    {
        let mut faults = proxy.faults();
        faults.outage_after_parquet_put = false;
        faults.outage = false;
    }
    dp_ok(&project, &["retry"]);
    assert_eq!(server.version("s3://outage/warehouse/events_appended"), 0);
}
