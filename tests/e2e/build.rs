//! `dp build` on example_project: the published rows, idempotent re-runs, partition isolation,
//! and tables that Delta readers understand on their own.

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{TestProject, block_on, both, rows};

/// daily_summary for one date, computed straight from the raw files with DataFusion: duplicates
/// removed with DISTINCT over whole rows (dp's model uses row_number per event_id).
fn expected_daily_summary(project: &TestProject, date: &str) -> Vec<Vec<String>> {
    let folder = project.root.join(format!("data/raw/events/date={date}/"));
    block_on(async move {
        let ctx = SessionContext::new();
        ctx.register_parquet(
            "raw",
            folder.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
        let sql = "select cohort, round(sum(revenue), 2), count(distinct user_id), count(*) \
                   from (select distinct * from raw) group by cohort order by cohort";
        rows(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
    })
}

fn published_daily_summary(project: &TestProject, date: &str) -> Vec<Vec<String>> {
    project.query(
        "daily_summary",
        &format!(
            "select cohort, round(revenue, 2), user_count, total_events from t \
             where date = '{date}' order by cohort"
        ),
    )
}

#[test]
fn daily_summary_partition_holds_the_values_computed_from_the_raw_files() {
    let project = TestProject::example();
    let out = project.dp_ok(&[
        "build",
        "--select",
        "+daily_summary",
        "--vars",
        "date=2024-01-15",
    ]);
    assert!(out.contains("daily_summary"), "{out}");

    let expected = expected_daily_summary(&project, "2024-01-15");
    assert_eq!(expected.len(), 4, "four cohorts in the raw data");
    assert_eq!(published_daily_summary(&project, "2024-01-15"), expected);
    // Only the requested date was built.
    assert_eq!(
        project.query("daily_summary", "select distinct date from t"),
        vec![vec!["2024-01-15".to_string()]]
    );
    // Deduplication mattered: the raw partition holds repeated deliveries.
    let raw_rows: u64 = expected.iter().map(|r| r[3].parse::<u64>().unwrap()).sum();
    assert!(
        raw_rows < 3000,
        "the raw partition has 3000 rows with duplicates"
    );
}

#[test]
fn building_twice_publishes_the_same_rows() {
    let project = TestProject::example();
    project.dp_ok(&["build"]);
    let all = "select * from t order by date, cohort";
    let first = project.query("daily_summary", all);
    let first_version = project.version("daily_summary").unwrap();
    project.dp_ok(&["build"]);
    assert_eq!(project.query("daily_summary", all), first);
    assert_eq!(project.version("daily_summary"), Some(first_version + 1));
    assert_eq!(first.len(), 7 * 4, "seven dates, four cohorts");
    for date in ["2024-01-12", "2024-01-18"] {
        assert_eq!(
            published_daily_summary(&project, date),
            expected_daily_summary(&project, date)
        );
    }
}

#[test]
fn building_another_date_leaves_the_first_dates_files_untouched() {
    let project = TestProject::example();
    let vars = |date: &str| format!("date={date}");
    project.dp_ok(&["build", "--vars", &vars("2024-01-15")]);
    let before = project.files("warehouse/daily_summary/date=2024-01-15");
    assert!(!before.is_empty());

    project.dp_ok(&["build", "--vars", &vars("2024-01-16")]);
    assert_eq!(
        project.files("warehouse/daily_summary/date=2024-01-15"),
        before
    );
    assert_eq!(
        project.query("daily_summary", "select distinct date from t order by date"),
        vec![
            vec!["2024-01-15".to_string()],
            vec!["2024-01-16".to_string()]
        ]
    );

    // Rebuilding 2024-01-15 replaces exactly that partition's files and no others.
    let other = project.files("warehouse/daily_summary/date=2024-01-16");
    project.dp_ok(&["build", "--vars", &vars("2024-01-15")]);
    assert_eq!(
        project.files("warehouse/daily_summary/date=2024-01-16"),
        other
    );
    assert_eq!(
        project.query(
            "daily_summary",
            "select count(*) from t where date = '2024-01-15'"
        ),
        vec![vec!["4".to_string()]]
    );
}

#[test]
fn published_tables_are_delta_tables_that_deltalake_reads_on_its_own() {
    let project = TestProject::example();
    project.dp_ok(&["build"]);
    block_on(async {
        let url = url::Url::from_directory_path(project.table_dir("daily_summary")).unwrap();
        let table = deltalake::open_table(url).await.unwrap();
        let state = table.snapshot().unwrap();
        assert_eq!(
            state.metadata().partition_columns(),
            &vec!["date".to_string()]
        );
        let columns: Vec<String> = state
            .schema()
            .fields()
            .map(|f| f.name().to_string())
            .collect();
        assert_eq!(
            columns,
            ["date", "cohort", "revenue", "user_count", "total_events"]
        );
        assert_eq!(
            table.get_file_uris().unwrap().count(),
            7,
            "one file per date"
        );
    });
    // The table materialization and the ephemeral model it reads.
    let cohorts = project.query(
        "cohort_revenue",
        "select cohort, purchases from t order by cohort",
    );
    assert_eq!(cohorts.len(), 4);
    let purchases = project.query(
        "stg_events",
        "select cohort, count(*) from t where event = 'purchase' group by cohort order by cohort",
    );
    assert_eq!(cohorts, purchases);
    assert!(
        !project.table_dir("int_purchases").exists(),
        "ephemeral models are not stored"
    );
}

#[test]
fn compile_writes_sql_with_ephemeral_models_inlined_and_runs_nothing() {
    let project = TestProject::example();
    project.dp_ok(&["compile"]);
    let compiled = std::fs::read_to_string(
        project
            .root
            .join("target/compiled/models/marts/cohort_revenue.sql"),
    )
    .unwrap();
    assert!(
        compiled.contains("with \"int_purchases\" as ("),
        "{compiled}"
    );
    assert!(compiled.contains("from \"stg_events\""), "{compiled}");
    assert!(
        !project.root.join("warehouse").exists(),
        "compile wrote data"
    );
}

#[test]
fn run_results_record_every_model() {
    let project = TestProject::example();
    project.dp_ok(&["build", "--vars", "{date: 2024-01-15}"]);
    let results = project.run_results();
    assert_eq!(results["success"], true);
    let entries = results["results"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let result_of = |model: &str| entries.iter().find(|r| r["model"] == model).unwrap();
    let daily = result_of("daily_summary");
    assert_eq!(daily["partitions"], serde_json::json!(["date=2024-01-15"]));
    assert_eq!(daily["rows"], 4);
    // The first build creates the table in its own commit: version 0.
    assert_eq!(daily["delta_version"], 0);
    // The date filter reached the scan: of the seven days' files, only that date's was read.
    assert_eq!(
        result_of("stg_events")["source_files"],
        serde_json::json!({"raw.events": 1})
    );

    project.dp_ok(&["build", "--select", "stg_events"]);
    let results = project.run_results();
    assert_eq!(
        results["results"][0]["source_files"],
        serde_json::json!({"raw.events": 7})
    );
}

#[test]
fn a_memory_limit_bounds_what_a_build_holds() {
    let project = TestProject::example();
    // Far too little memory for the aggregations: the build fails cleanly, publishing nothing.
    let output = project.dp(&["build", "--memory-limit", "1KB"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Resources exhausted"), "{stdout}");
    for model in ["daily_summary", "cohort_revenue", "int_purchases"] {
        assert_eq!(project.version(model), None, "{model}");
    }
    // With room to work in, the same build publishes every model.
    project.dp_ok(&["build", "--memory-limit", "256MB"]);
    assert_eq!(project.version("daily_summary"), Some(0));

    // The target's setting applies when the flag is not given.
    let config = std::fs::read_to_string(project.root.join("dp_project.yml")).unwrap();
    project.write(
        "dp_project.yml",
        &format!("{config}    memory_limit: 1KB\n"),
    );
    let output = project.dp(&["build", "--select", "daily_summary"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(project.version("daily_summary"), Some(0));
    // And to `dp test`'s queries.
    let output = project.dp(&["test", "--select", "daily_summary"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Resources exhausted"), "{stdout}");

    // A size dp cannot read is refused before anything runs.
    let output = project.dp(&["build", "--memory-limit", "lots"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a memory size"));
    project.write(
        "dp_project.yml",
        &format!("{config}    memory_limit: 12 parsecs\n"),
    );
    let output = project.dp(&["build"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`12 parsecs` is not a memory size"),
        "{stderr}"
    );
    assert!(stderr.contains("dp_project.yml:"), "{stderr}");
}

#[test]
fn a_failed_model_skips_its_descendants_and_its_siblings_still_build() {
    let project = TestProject::fixture("failing_branch");
    let output = project.dp(&["build"]);
    let text = crate::support::both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("Divide by zero"), "{text}");

    assert_eq!(project.model_status("stg"), "success");
    assert_eq!(project.model_status("broken"), "error");
    assert_eq!(project.model_status("after_broken"), "skipped");
    assert_eq!(project.model_status("sibling"), "success");
    assert_eq!(
        project.query("sibling", "select sum(events) from t"),
        vec![vec!["21000".to_string()]]
    );
    assert!(
        project.version("after_broken").is_none(),
        "a skipped model was written"
    );
    let broken_data = crate::support::parquet_files(&project.table_dir("broken"));
    assert!(
        broken_data.is_empty(),
        "the failed model left files: {broken_data:?}"
    );

    // Its table holds no build, so a model reading it alone is told so.
    let output = project.dp(&["build", "--select", "after_broken"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(crate::support::both(&output).contains("upstream model `broken` has never been built"));
}

#[test]
fn a_delta_table_can_be_a_source() {
    let upstream = TestProject::example();
    upstream.dp_ok(&["build", "--select", "stg_events"]);
    let project = TestProject::fixture("delta_source");
    let location = url::Url::from_directory_path(upstream.table_dir("stg_events")).unwrap();
    project.read_delta_source(&location);
    project.dp_ok(&["build"]);
    project.assert_purchases_per_day_of(&upstream);
}

#[test]
fn a_model_table_never_lands_on_a_sources_files() {
    let project = TestProject::example();
    project.write(
        "dp_project.yml",
        "name: shop_events\ntargets:\n  dev:\n    warehouse: data\n",
    );
    project.write("models/raw.sql", "select 1 as one");
    let raw_before = project.files("data/raw");
    // Refused when the project loads, before any model runs.
    let output = project.dp(&["build", "--select", "raw"]);
    let text = crate::support::both(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("dp::nested_location"), "{text}");
    assert!(
        text.contains("source `raw.events`") && text.contains("lies inside the model table"),
        "{text}"
    );
    assert_eq!(project.files("data/raw"), raw_before);
}

#[test]
fn models_built_at_once_share_the_cores_and_a_model_alone_gets_them_all() {
    let project = TestProject::fixture("wide_then_one");
    let output = project.dp(&["build", "--threads", "3", "-vv", "--log-format", "json"]);
    assert!(output.status.success(), "{}", both(&output));
    let mut partitions = std::collections::BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["fields"]["message"] == "model session" {
            let model = event["fields"]["model"].as_str().unwrap().to_string();
            partitions.insert(model, event["fields"]["partitions"].as_u64().unwrap());
        }
    }
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    let shared = (cores / 3).max(1);
    assert_eq!(
        partitions,
        [("a", shared), ("b", shared), ("c", shared), ("d", cores)]
            .map(|(m, p)| (m.to_string(), p))
            .into(),
        "{}",
        both(&output)
    );
    let rows = project.query("d", "select count(*) from t");
    assert_eq!(rows, [["3"]]);
}
