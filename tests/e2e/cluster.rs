//! Issue 21: a target with `engine: ballista` runs each model's query and its tests on a real
//! Ballista cluster (`dp-scheduler` and two `dp-executor`s, separate processes), while dp still
//! stages, audits and commits: the tables hold exactly what the embedded engine publishes.

use std::path::Path;

use crate::cluster_services::Cluster;
use crate::support::{TestProject, both};

/// A cluster for one test, with its logs in the test's own folder and `env` in its processes'
/// environment.
pub fn start_with(logs: &Path, env: &[(&str, &str)]) -> Cluster {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_dp-scheduler"))
        .parent()
        .unwrap();
    assert!(bin_dir.join("dp-executor").exists());
    Cluster::start(bin_dir, logs, 2, 2, env)
}

fn start(logs: &Path) -> Cluster {
    start_with(logs, &[])
}

/// example_project with a `cluster` target on `cluster`.
fn project_on(cluster: &Cluster) -> TestProject {
    with_target(TestProject::example(), cluster)
}

/// `project` with a `cluster` target on `cluster` (its only one, when it declares none).
fn with_target(project: TestProject, cluster: &Cluster) -> TestProject {
    let mut config = std::fs::read_to_string(project.root.join("dp_project.yml")).unwrap();
    if !config.contains("\ntargets:") {
        config.push_str("targets:\n");
    }
    project.write(
        "dp_project.yml",
        &format!("{config}{}", cluster.target_yaml("cluster")),
    );
    project
}

/// Every row of a model's table, sorted (read by deltalake, not by dp).
fn sorted_rows(project: &TestProject, model: &str) -> Vec<Vec<String>> {
    let mut rows = project.query(model, "select * from t");
    rows.sort();
    rows
}

const TABLES: [&str; 3] = ["stg_events", "daily_summary", "cohort_revenue"];

#[test]
fn a_cluster_build_publishes_the_rows_the_embedded_engine_publishes() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let embedded = TestProject::example();
    embedded.dp_ok(&["build"]);
    let distributed = project_on(&cluster);
    let output = distributed.dp_ok(&["build", "--target", "cluster"]);
    assert!(output.contains("3 ok, 0 error"), "{output}");
    for table in TABLES {
        let rows = sorted_rows(&distributed, table);
        assert!(!rows.is_empty(), "{table} is empty");
        assert_eq!(rows, sorted_rows(&embedded, table), "{table}");
        assert_eq!(distributed.version(table), Some(0));
    }
    // Both executors ran tasks: the queries ran on the cluster.
    let tasks = cluster.tasks_finished();
    assert!(
        tasks.iter().all(|n| *n > 0),
        "tasks per executor: {tasks:?}"
    );

    // The data tests run there too, against the published tables.
    let before = cluster.tasks_finished().iter().sum::<usize>();
    let tested = distributed.dp_ok(&["test", "--target", "cluster"]);
    assert!(tested.contains("PASS"), "{tested}");
    assert!(cluster.tasks_finished().iter().sum::<usize>() > before);

    // Without the cluster, nothing runs and nothing is published.
    drop(cluster);
    let published = distributed.files("warehouse");
    let output = distributed.dp(&["build", "--target", "cluster"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("dp::cluster_unavailable"), "{text}");
    assert!(text.contains("cannot be reached"), "{text}");
    assert_eq!(distributed.files("warehouse"), published);
    // `dp test` says so once, and runs nothing.
    let output = distributed.dp(&["test", "--target", "cluster"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert_eq!(text.matches("dp::cluster_unavailable").count(), 1, "{text}");
}

#[test]
fn a_failed_assertion_on_the_cluster_publishes_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let project = project_on(&cluster);
    project.dp_ok(&["build", "--target", "cluster"]);
    let published = project.files("warehouse");

    // A new date whose events have negative revenue: stg_events' error-severity `revenue >= 0`
    // test fails on the rows the cluster produced.
    let events = project.root.join("data/raw/events");
    std::fs::create_dir_all(events.join("date=2024-01-19")).unwrap();
    crate::support::block_on(async {
        // Plain Parquet types, as the other files have (no Arrow schema with view types).
        let config = datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.execution.parquet.skip_arrow_metadata", true);
        let session = datafusion::prelude::SessionContext::new_with_config(config);
        let day = events.join("date=2024-01-15/part-0.parquet");
        session
            .register_parquet("day", day.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let sql = format!(
            "copy (select event_id, user_id, event, cast(-revenue - 1 as decimal(10, 2)) as revenue, \
             cohort, ts from day) to '{}' stored as parquet",
            events.join("date=2024-01-19/part-0.parquet").display()
        );
        session.sql(&sql).await.unwrap().collect().await.unwrap();
    });
    let output = project.dp(&["build", "--target", "cluster", "--vars", "date=2024-01-19"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  data test expression_is_true_stg_events_revenue__0"),
        "{text}"
    );
    assert!(text.contains("was not published"), "{text}");
    assert_eq!(project.model_status("daily_summary"), "skipped");
    assert_eq!(project.files("warehouse"), published);
    for table in TABLES {
        assert_eq!(project.version(table), Some(0), "{table}");
    }
}

#[test]
fn one_date_reads_one_partition_on_the_executors() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let project = project_on(&cluster);
    project.dp_ok(&["build", "--target", "cluster"]);
    let before = project.query(
        "daily_summary",
        "select cohort, revenue from t where date = '2024-01-15' order by cohort",
    );

    // The source's scan reads one date's files (dp records what each scan plans).
    project.dp_ok(&[
        "build",
        "--target",
        "cluster",
        "--select",
        "stg_events",
        "--vars",
        "date=2024-01-15",
    ]);
    let results = project.run_results();
    assert_eq!(
        results["results"][0]["source_files"]["raw.events"], 1,
        "{results}"
    );

    // Every file of stg_events' other dates becomes unreadable: a build of daily_summary for
    // 2024-01-15 succeeds only if no executor opens one.
    let mut spoiled = 0;
    for file in crate::support::parquet_files(&project.table_dir("stg_events")) {
        if !file.to_string_lossy().contains("date=2024-01-15") {
            std::fs::write(&file, b"not parquet").unwrap();
            spoiled += 1;
        }
    }
    assert!(spoiled >= 6, "{spoiled}");
    let output = project.dp_ok(&[
        "build",
        "--target",
        "cluster",
        "--select",
        "daily_summary",
        "--vars",
        "date=2024-01-15",
    ]);
    assert!(output.contains("1 ok, 0 error"), "{output}");
    assert_eq!(project.version("daily_summary"), Some(1));
    assert_eq!(
        project.query(
            "daily_summary",
            "select cohort, revenue from t where date = '2024-01-15' order by cohort",
        ),
        before
    );
    // Without the date, the spoiled files are read, and the build fails.
    let output = project.dp(&["build", "--target", "cluster", "--select", "daily_summary"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
}

#[test]
fn a_query_that_fails_on_the_cluster_fails_its_model_alone() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let project = project_on(&cluster);
    // It plans, and fails only as the executors read the rows: `purchase` is no number.
    project.write(
        "models/marts/event_numbers.sql",
        "select cast(event as int) as number from {{ ref('stg_events') }}\n",
    );
    project.write(
        "models/marts/event_kinds.sql",
        "select distinct event from {{ ref('stg_events') }}\n",
    );
    let output = project.dp(&["build", "--target", "cluster"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("Cannot cast string"), "{text}");
    assert_eq!(project.model_status("event_numbers"), "error");
    assert_eq!(project.version("event_numbers"), None);
    assert!(
        !project.table_dir("event_numbers").exists()
            || crate::support::parquet_files(&project.table_dir("event_numbers")).is_empty()
    );
    for sibling in ["event_kinds", "daily_summary", "cohort_revenue"] {
        assert_eq!(project.model_status(sibling), "success", "{sibling}");
    }
    let kinds = project.query("stg_events", "select count(distinct event) from t");
    assert_eq!(
        sorted_rows(&project, "event_kinds").len().to_string(),
        kinds[0][0]
    );
}

#[test]
fn an_incremental_merge_on_the_cluster_publishes_what_the_embedded_engine_publishes() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let embedded = TestProject::fixture("crash");
    let distributed = with_target(TestProject::fixture("crash"), &cluster);
    // The second build merges into the table the first one made (it reads `{{ this }}`).
    for build in ["build=1", "build=2"] {
        embedded.dp_ok(&["build", "--vars", build]);
        distributed.dp_ok(&["build", "--target", "cluster", "--vars", build]);
    }
    for table in ["tagged_events", "merged_events", "build_totals"] {
        let rows = sorted_rows(&distributed, table);
        assert!(!rows.is_empty(), "{table}");
        assert_eq!(rows, sorted_rows(&embedded, table), "{table}");
        assert_eq!(
            distributed.version(table),
            embedded.version(table),
            "{table}"
        );
    }
    let builds = distributed.query("merged_events", "select distinct build from t");
    assert_eq!(builds, [["2"]]);
}

#[test]
fn a_delta_source_is_read_on_the_cluster_and_one_it_cannot_read_is_refused() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let upstream = TestProject::example();
    upstream.dp_ok(&["build", "--select", "stg_events"]);
    let project = with_target(TestProject::fixture("delta_source"), &cluster);
    let location = url::Url::from_directory_path(upstream.table_dir("stg_events")).unwrap();
    project.read_delta_source(&location);
    project.dp_ok(&["build", "--target", "cluster"]);
    project.assert_purchases_per_day_of(&upstream);

    // A table whose columns are mapped to other names in its files: a Parquet scan cannot read
    // it, so the cluster refuses it; the embedded engine reads it through delta-rs.
    let mapped = tempfile::tempdir().unwrap();
    let url = url::Url::from_directory_path(mapped.path()).unwrap();
    crate::support::block_on(async {
        use deltalake::kernel::{DataType, StructField};
        deltalake::DeltaTable::try_from_url(url.clone())
            .await
            .unwrap()
            .create()
            .with_columns(vec![
                StructField::new("date", DataType::STRING, true),
                StructField::new("event", DataType::STRING, true),
            ])
            .with_configuration_property(deltalake::TableProperty::ColumnMappingMode, Some("name"))
            .await
            .unwrap();
    });
    project.read_delta_source(&url);
    let published = project.files("warehouse");
    let output = project.dp(&["build", "--target", "cluster"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("dp::unsupported_on_cluster"), "{text}");
    assert!(text.contains("column mapping"), "{text}");
    assert_eq!(project.files("warehouse"), published);
}

#[test]
fn two_cluster_builds_of_one_date_at_once_publish_one_build() {
    let logs = tempfile::tempdir().unwrap();
    let cluster = start(logs.path());
    let project = project_on(&cluster);
    let args = [
        "build",
        "--target",
        "cluster",
        "--select",
        "stg_events",
        "--vars",
        "date=2024-01-15",
    ];
    project.dp_ok(&args);
    let one_build = project.query(
        "stg_events",
        "select count(*), count(distinct event_id) from t where date = '2024-01-15'",
    );
    // Two dp processes rebuild the same partition through the cluster at the same time.
    let builds: Vec<_> = (0..2)
        .map(|_| {
            let mut build = project.command(&args);
            build.stdout(std::process::Stdio::piped());
            build.stderr(std::process::Stdio::piped());
            build.spawn().unwrap()
        })
        .collect();
    let succeeded = builds
        .into_iter()
        .map(|build| build.wait_with_output().unwrap())
        .filter(|output| output.status.success())
        .count();
    assert!(succeeded >= 1);
    assert_eq!(
        project.version("stg_events"),
        Some(succeeded as u64),
        "one commit per successful build"
    );
    assert_eq!(
        project.query(
            "stg_events",
            "select count(*), count(distinct event_id) from t where date = '2024-01-15'",
        ),
        one_build
    );
}

#[test]
fn a_cluster_target_without_a_scheduler_address_is_refused_where_it_is_written() {
    let project = TestProject::example();
    let config = std::fs::read_to_string(project.root.join("dp_project.yml")).unwrap();
    for (target, problem) in [
        (
            "    engine: ballista\n    scheduler: http://127.0.0.1:50050\n",
            "is not a scheduler address",
        ),
        ("    engine: ballista\n", "needs a `scheduler`"),
    ] {
        project.write(
            "dp_project.yml",
            &format!("{config}  cluster:\n    warehouse: warehouse\n{target}"),
        );
        let output = project.dp(&["build", "--target", "cluster"]);
        let text = both(&output);
        assert_eq!(output.status.code(), Some(2), "{text}");
        assert!(text.contains("dp::bad_scheduler"), "{text}");
        assert!(text.contains(problem), "{text}");
        assert!(text.contains("dp_project.yml:"), "{text}");
        assert!(!project.table_dir("stg_events").exists());
    }
}
