//! Quality assertions: a build publishes only what passed its tests; contracts and the
//! missing-partition policy stop or skip a model before it writes; unit tests and `dp test`.

use crate::support::{TestProject, both};

#[test]
fn a_build_whose_staged_rows_fail_an_error_test_publishes_nothing() {
    let project = TestProject::fixture("audit");
    let first = project.dp_ok(&["build", "--vars", "date=2024-01-15"]);
    assert!(
        first.contains("WARN"),
        "the warn test warns and publishes:\n{first}"
    );
    let published = project.files("warehouse/revenue_by_day/date=2024-01-15");
    let version = project.version("revenue_by_day");

    // The adjustment makes every revenue negative: the error-severity test fails.
    let output = project.dp(&[
        "build",
        "--vars",
        "date=2024-01-15",
        "--vars",
        "adjust=-1000000",
    ]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  data test expression_is_true_revenue_by_day_revenue__0"),
        "{text}"
    );
    assert!(text.contains("4 failing rows"), "{text}");
    assert!(text.contains("was not published"), "{text}");
    assert_eq!(
        project.files("warehouse/revenue_by_day/date=2024-01-15"),
        published
    );
    assert_eq!(project.version("revenue_by_day"), version);
    assert!(
        crate::support::parquet_files(&project.table_dir("revenue_by_day")).len()
            == published.len(),
        "the staged files were not deleted"
    );
    let failures = std::fs::read_to_string(
        project
            .root
            .join("target/test_failures/expression_is_true_revenue_by_day_revenue__0.csv"),
    )
    .unwrap();
    assert_eq!(
        failures.lines().count(),
        5,
        "a header and the four failing rows:\n{failures}"
    );

    // Its descendant is skipped, its sibling built.
    assert_eq!(project.model_status("revenue_by_day"), "error");
    assert_eq!(project.model_status("cohort_totals"), "skipped");
    assert_eq!(project.model_status("event_counts"), "success");
}

#[test]
fn a_warn_test_publishes_and_warns() {
    let project = TestProject::fixture("audit");
    let out = project.dp_ok(&[
        "build",
        "--select",
        "revenue_by_day",
        "--vars",
        "date=2024-01-16",
    ]);
    assert!(
        out.contains("WARN  data test revenue_by_day_is_busy on revenue_by_day"),
        "{out}"
    );
    assert_eq!(
        project.query("revenue_by_day", "select count(*) from t"),
        vec![vec!["4".to_string()]]
    );
    let results = project.run_results();
    let tests = &results["results"][0]["tests"];
    let warned = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "revenue_by_day_is_busy")
        .unwrap();
    assert_eq!(warned["status"], "warn");
    assert!(warned["failures"].as_u64().unwrap() > 0);
}

#[test]
fn a_changed_source_column_type_stops_the_run_before_any_write() {
    let project = TestProject::fixture("audit");
    let sources = std::fs::read_to_string(project.root.join("models/sources.yml")).unwrap();
    project.write(
        "models/sources.yml",
        &sources.replace(
            "{name: user_id, data_type: bigint}",
            "{name: user_id, data_type: varchar}",
        ),
    );
    // Found by the checks every build starts with: every model reading the source fails
    // (exit code 1) and nothing is written; with --fail-fast nothing runs (exit code 2).
    let output = project.dp(&["build", "--fail-fast"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("source `raw.events` does not match its declared columns"),
        "{text}"
    );
    assert!(
        text.contains("`user_id`: expected varchar (Utf8View), found Int64"),
        "{text}"
    );
    assert!(text.contains("models/sources.yml"), "{text}");
    assert!(crate::support::parquet_files(&project.root.join("warehouse")).is_empty());
}

#[test]
fn a_missing_partition_fails_or_is_skipped_as_the_source_declares() {
    let project = TestProject::fixture("audit");
    let output = project.dp(&[
        "build",
        "--select",
        "revenue_by_day",
        "--vars",
        "date=2024-02-01",
    ]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("source `raw.events` has no data for this build"),
        "{text}"
    );
    assert!(
        text.contains("data/raw/events/"),
        "names where it looked: {text}"
    );
    assert!(text.contains("2024-02-01"), "{text}");

    let sources = std::fs::read_to_string(project.root.join("models/sources.yml")).unwrap();
    project.write(
        "models/sources.yml",
        &sources.replace(
            "partitioned_by: [date]",
            "partitioned_by: [date]\n        on_missing_partition: skip",
        ),
    );
    let out = project.dp_ok(&[
        "build",
        "--select",
        "revenue_by_day",
        "--vars",
        "date=2024-02-01",
    ]);
    assert!(out.contains("NODATA"), "{out}");
    assert_eq!(project.model_status("revenue_by_day"), "no_data");
    assert!(crate::support::parquet_files(&project.root.join("warehouse")).is_empty());
}

#[test]
fn a_unit_test_with_a_wrong_expectation_fails_with_a_diff_of_the_rows() {
    let project = TestProject::fixture("audit");
    let schema = std::fs::read_to_string(project.root.join("models/schema.yml")).unwrap();
    project.write(
        "models/schema.yml",
        &format!(
            "{schema}\nunit_tests:\n  - name: revenue_sums_per_cohort\n    model: revenue_by_day\n    given:\n      - input: source('raw', 'events')\n        rows:\n          - {{date: '2024-01-15', cohort: organic, revenue: 10}}\n          - {{date: '2024-01-15', cohort: organic, revenue: 5}}\n          - {{date: '2024-01-15', cohort: social, revenue: 1}}\n    expect:\n      rows:\n        - {{date: '2024-01-15', cohort: organic, revenue: 15, events: 2}}\n        - {{date: '2024-01-15', cohort: social, revenue: 2, events: 1}}\n"
        ),
    );
    let output = project.dp(&["test", "--select", "test_type:unit"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  unit test revenue_sums_per_cohort"),
        "{text}"
    );
    assert!(
        text.contains("missing (expected, not produced): 1"),
        "{text}"
    );
    assert!(
        text.contains("{date: 2024-01-15, cohort: social, revenue: 2.00, events: 1}"),
        "{text}"
    );
    assert!(
        text.contains("unexpected (produced, not expected): 1"),
        "{text}"
    );
    assert!(
        text.contains("{date: 2024-01-15, cohort: social, revenue: 1.00, events: 1}"),
        "{text}"
    );
    assert!(!text.contains("data test"), "only unit tests ran: {text}");

    // dp build runs a model's unit tests first: the model is not built.
    let output = project.dp(&["build", "--select", "revenue_by_day"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(project.version("revenue_by_day").is_none());
}

#[test]
fn dp_test_passes_on_the_example_project() {
    let project = TestProject::example();
    project.dp_ok(&["build"]);
    let out = project.dp_ok(&["test"]);
    assert!(
        out.contains("PASS  singular test daily_summary_counts_every_event"),
        "{out}"
    );
    assert!(
        out.contains("PASS  unit test stg_events_keeps_one_row_per_event"),
        "{out}"
    );
    assert!(
        out.contains("WARN  data test daily_summary_cohorts_are_busy"),
        "{out}"
    );
    let results = project.run_results();
    assert_eq!(results["command"], "test");
    assert_eq!(results["success"], true);
    assert!(results["tests"].as_array().unwrap().len() >= 15);
}

#[test]
fn dp_test_fails_on_a_broken_test_against_published_data() {
    let project = TestProject::fixture("audit");
    project.dp_ok(&["build"]);
    project.dp_ok(&["test"]);
    project.write(
        "tests/no_busy_cohort_days.sql",
        "select * from {{ ref('revenue_by_day') }} where events > 700\n",
    );
    let output = project.dp(&["test"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  singular test no_busy_cohort_days"),
        "{text}"
    );
    assert!(text.contains("failing rows"), "{text}");
}

#[test]
fn a_model_whose_output_breaks_its_contract_is_not_written() {
    let project = TestProject::example();
    project.dp_ok(&["build", "--select", "stg_events"]);
    let sql = std::fs::read_to_string(project.root.join("models/marts/daily_summary.sql")).unwrap();
    project.write(
        "models/marts/daily_summary.sql",
        &sql.replace(
            "count(*) as total_events",
            "count(*) as total_events, max(ts) as last_event_at",
        ),
    );
    let output = project.dp(&["build", "--select", "daily_summary"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the output of `daily_summary` does not match its declared columns"),
        "{text}"
    );
    assert!(text.contains("`last_event_at`: not declared"), "{text}");
    assert!(text.contains("models/marts/schema.yml"), "{text}");
    assert!(project.version("daily_summary").is_none());
}

#[test]
fn a_day_without_data_skips_its_models_and_the_run_succeeds() {
    let project = TestProject::example();
    project.dp_ok(&["build", "--vars", "date=2024-01-15"]);
    let before = project.files("warehouse");
    let out = project.dp_ok(&["build", "--vars", "date=2024-02-01"]);
    assert!(out.contains("NODATA"), "{out}");
    let results = project.run_results();
    assert_eq!(results["success"], true);
    for model in ["stg_events", "daily_summary", "cohort_revenue"] {
        assert_eq!(project.model_status(model), "no_data", "{model}");
    }
    assert_eq!(project.files("warehouse"), before, "nothing was published");
}
