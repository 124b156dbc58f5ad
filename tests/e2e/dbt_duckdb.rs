//! Issue 29, real dbt(-duckdb) projects: tests declared on views run on the view's query (in
//! `dp build` and `dp test`), and dbt-duckdb's `external` materialization exports each build's
//! committed rows as files.

use std::path::Path;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{TestProject, block_on, both, rows, walk};

/// The run_results.json entry of `model` in the last build.
fn entry(project: &TestProject, model: &str) -> serde_json::Value {
    project.run_results()["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no result for {model}: {}", project.run_results()))
}

/// `(test name, status, failures)` of the tests in `tests` (a JSON array of test results).
fn statuses(tests: &serde_json::Value) -> Vec<(String, String, u64)> {
    tests
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["status"].as_str().unwrap().to_string(),
                t["failures"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The failing rows a test wrote, by the start of its name, as lines of CSV.
fn failing_rows(project: &TestProject, tests: &serde_json::Value, prefix: &str) -> Vec<String> {
    let test = tests
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no test {prefix}* in {tests}"));
    let file = test["failures_file"].as_str().expect("a failures file");
    let text = std::fs::read_to_string(project.root.join(file))
        .or_else(|_| std::fs::read_to_string(file))
        .unwrap();
    text.lines().map(str::to_string).collect()
}

const BAD_ORDERS: &str =
    "order_id,customer_id,amount\n10,1,5.0\n11,2,7.5\n12,3,1.0\n13,1,2.5\n14,4,3.0\n";

#[test]
fn tests_on_views_run_in_build_on_the_views_query() {
    let project = TestProject::fixture("views_tested");
    // A relationships test to a view is no longer refused.
    let check = project.dp(&["check"]);
    assert!(check.status.success(), "{}", both(&check));

    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    // The view's tests ran, on its query over the tables this run built.
    let totals = entry(&project, "customer_totals");
    assert_eq!(totals["status"], "success", "{totals}");
    let tests = statuses(&totals["tests"]);
    assert_eq!(tests.len(), 4, "{tests:?}");
    assert!(
        tests.iter().all(|(_, s, f)| s == "pass" && *f == 0),
        "{tests:?}"
    );
    // A view reading a view: its query inlines the other.
    let big = statuses(&entry(&project, "big_customers")["tests"]);
    assert_eq!(big.len(), 1, "{big:?}");
    assert_eq!(big[0].1, "pass");
    // A stored model's relationships test to a view read the view's query.
    let active = statuses(&entry(&project, "active_customers")["tests"]);
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].1, "pass", "{active:?}");
    // A view has no table.
    for view in ["customer_totals", "big_customers"] {
        assert!(!project.table_dir(view).exists(), "{view} has a table");
    }
    assert_eq!(
        project.query(
            "customer_report",
            "select customer_id, name, total from t order by customer_id"
        ),
        [
            ["1", "ada", "7.5"],
            ["2", "brian", "7.5"],
            ["3", "chen", "1.0"]
        ]
    );
}

#[test]
fn a_failing_view_test_fails_the_run_and_holds_nothing_back() {
    let project = TestProject::fixture("views_tested");
    project.dp_ok(&["build"]);
    let before: Vec<(&str, Option<u64>)> = ["orders", "customers", "customer_report"]
        .into_iter()
        .map(|m| (m, project.version(m)))
        .collect();
    let active_before = project.version("active_customers");
    // An order of a customer that does not exist (the view's relationships test fails), and a
    // customer without orders (active_customers' relationships test to the view fails).
    project.write("seeds/orders.csv", BAD_ORDERS);
    project.write(
        "seeds/customers.csv",
        "id,name\n1,ada\n2,brian\n3,chen\n5,dana\n",
    );

    let output = project.dp(&["build"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let totals = entry(&project, "customer_totals");
    assert_eq!(totals["status"], "error", "{totals}");
    assert_eq!(totals["failure_class"], "assertion", "{totals}");
    let failed: Vec<_> = statuses(&totals["tests"])
        .into_iter()
        .filter(|(_, s, _)| s != "pass")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].0.starts_with("relationships"), "{failed:?}");
    assert_eq!((failed[0].1.as_str(), failed[0].2), ("fail", 1));
    assert_eq!(
        failing_rows(&project, &totals["tests"], "relationships"),
        ["from_field", "4"]
    );
    assert!(text.contains("a view has no table"), "{text}");

    // Nothing else was held back: the seeds and the table reading the view were published.
    for (model, version) in before {
        assert_eq!(project.model_status(model), "success", "{model}");
        assert!(
            project.version(model) > version,
            "{model} was not published"
        );
    }
    assert_eq!(
        project.query(
            "customer_report",
            "select customer_id, name, total from t order by customer_id"
        ),
        [
            ["1", "ada", "7.5"],
            ["2", "brian", "7.5"],
            ["3", "chen", "1.0"],
            ["4", "", "3.0"]
        ]
    );
    // The stored model whose test relates to the view failed it on the view's rows of this
    // run, and kept its published version.
    let active = entry(&project, "active_customers");
    assert_eq!(active["status"], "error", "{active}");
    assert_eq!(
        failing_rows(&project, &active["tests"], "relationships"),
        ["from_field", "5"]
    );
    assert_eq!(project.version("active_customers"), active_before);
    assert!(!project.table_dir("customer_totals").exists());
}

#[test]
fn dp_test_runs_view_tests_against_the_published_tables() {
    let project = TestProject::fixture("views_tested");
    project.dp_ok(&["build"]);
    let output = project.dp(&["test"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    let results = project.run_results();
    let tests = statuses(&results["tests"]);
    let of = |subject: &str| {
        results["tests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["subject"].as_str().unwrap().contains(subject))
            .count()
    };
    // The view's four, the view-on-a-view's, the relationships test to the view, and the
    // singular test reading the view.
    assert_eq!(of("customer_totals"), 4, "{tests:?}");
    assert_eq!(of("big_customers"), 1, "{tests:?}");
    assert_eq!(of("every_total_is_positive"), 1, "{tests:?}");
    assert!(tests.iter().all(|(_, s, _)| s == "pass"), "{tests:?}");

    // Published rows that break the view's tests: only the seed is built (no view selected).
    project.write("seeds/orders.csv", &format!("{BAD_ORDERS}15,3,-5.0\n"));
    project.dp_ok(&["build", "--select", "orders"]);
    let output = project.dp(&["test"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let results = project.run_results();
    let failed: Vec<String> = statuses(&results["tests"])
        .into_iter()
        .filter(|(_, s, _)| s != "pass")
        .map(|(name, status, failures)| format!("{name} {status} {failures}"))
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("relationships_customer_totals") && f.ends_with("fail 1")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("expression_is_true") && f.ends_with("fail 1")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|f| f.starts_with("every_total_is_positive") && f.ends_with("fail 1")),
        "{failed:?}"
    );
    assert_eq!(
        failing_rows(&project, &results["tests"], "relationships_customer_totals"),
        ["from_field", "4"]
    );
    assert_eq!(
        failing_rows(&project, &results["tests"], "every_total_is_positive"),
        ["customer_id,total,orders", "3,-4.0,2"]
    );
    assert!(!text.contains("never been built"), "{text}");
}

/// The rows of a Parquet file, read by DataFusion on its own, in `order`.
fn parquet_rows(path: &Path, order: &str) -> Vec<Vec<String>> {
    let path = path.display().to_string();
    let order = order.to_string();
    block_on(async move {
        let ctx = SessionContext::new();
        ctx.register_parquet("f", &path, ParquetReadOptions::default())
            .await
            .unwrap();
        let sql = format!("select * from f order by {order}");
        rows(&ctx.sql(&sql).await.unwrap().collect().await.unwrap())
    })
}

/// Names of the files and folders under `dir` starting with a dot (temporary names).
fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with('.'))
        .collect()
}

/// The lines of the CSV files under `dir` (hive folders), each prefixed with its folder.
fn csv_lines(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for file in walk(dir) {
        let folder = file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        for line in std::fs::read_to_string(&file).unwrap().lines() {
            lines.push(format!("{folder} {line}"));
        }
    }
    lines.sort();
    lines
}

#[test]
fn an_external_model_is_a_delta_table_and_an_export_of_its_rows() {
    let project = TestProject::fixture("external_model");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    assert_eq!(entry(&project, "events_export")["materialized"], "external");

    // The Delta table, as for `table`; the export holds exactly its committed rows.
    let published = project.query("events_export", "select * from t order by id");
    assert_eq!(published.len(), 5);
    let exported = project.root.join("out/events.parquet");
    assert!(exported.is_file());
    assert_eq!(parquet_rows(&exported, "id"), published);

    // CSV in hive folders, with the delimiter of `options` (an option dp does not use is
    // ignored with a warning).
    assert!(text.contains("per_thread_output"), "{text}");
    let daily = project.root.join("out/daily");
    let folders: Vec<String> = std::fs::read_dir(&daily)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        folders,
        ["date=2024-01-01", "date=2024-01-02", "date=2024-01-03"]
    );
    let lines = csv_lines(&daily);
    assert!(
        lines.contains(&"date=2024-01-01 purchase;12.5;1".to_string()),
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("kind;amount;events"))
            .count(),
        3,
        "{lines:?}"
    );
    assert_eq!(lines.len(), 3 + 5, "{lines:?}");

    // JSON at dbt-duckdb's default location, `<model>.<format>` in the project folder; a model
    // reading the external model reads its Delta table.
    let json = std::fs::read_to_string(project.root.join("purchases.json")).unwrap();
    let objects: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objects.len(), 3, "{json}");
    assert!(
        objects.contains(&serde_json::json!({"id": 2, "amount": 12.5})),
        "{json}"
    );
    assert_eq!(
        project.query("purchase_total", "select amount, purchases from t"),
        [["23.5", "3"]]
    );

    // A rebuild replaces the export whole: a date gone is a folder gone; no temporary file
    // stays behind.
    project.write(
        "seeds/events.csv",
        "id,date,kind,amount\n5,2024-01-03,purchase,8.0\n6,2024-01-04,view,0.0\n",
    );
    project.dp_ok(&["build"]);
    assert_eq!(
        parquet_rows(&exported, "id"),
        project.query("events_export", "select * from t order by id")
    );
    assert_eq!(parquet_rows(&exported, "id").len(), 2);
    let folders: Vec<String> = csv_lines(&daily)
        .into_iter()
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(folders, ["date=2024-01-03", "date=2024-01-04"]);
    assert!(hidden(&project.root.join("out")).is_empty());
    assert!(
        hidden(&project.root).is_empty(),
        "{:?}",
        hidden(&project.root)
    );
}

#[test]
fn an_export_follows_only_a_published_build() {
    let project = TestProject::fixture("external_model");
    project.dp_ok(&["build"]);
    let exported = project.root.join("out/events.parquet");
    let before = std::fs::read(&exported).unwrap();
    let version = project.version("events_export");

    // A duplicate id fails the model's test: no commit, so no export.
    project.write(
        "seeds/events.csv",
        "id,date,kind,amount\n1,2024-01-01,view,0.0\n1,2024-01-05,purchase,1.0\n",
    );
    let output = project.dp(&["build"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert_eq!(project.model_status("events_export"), "error");
    assert_eq!(project.version("events_export"), version);
    assert_eq!(std::fs::read(&exported).unwrap(), before);

    // A location that holds the project is refused before the model runs.
    project.write(
        "models/events_export.sql",
        "{{ config(materialized='external', location='..') }}\nselect 1 as id",
    );
    let output = project.dp(&["build", "--select", "events_export"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("dp::export"), "{text}");
    assert_eq!(project.version("events_export"), version);
    assert_eq!(std::fs::read(&exported).unwrap(), before);
}
