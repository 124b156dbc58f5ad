//! dbt projects run unmodified: dbt_project.yml without dp_project.yml, its config tree, seeds,
//! incremental models and the YAML dbt projects contain. Rows are checked with deltalake's own
//! reader, and incremental runs by their Delta versions.

use std::collections::BTreeSet;

use crate::support::{TestProject, both, parquet_files};

fn table(project: &TestProject, model: &str) -> Vec<Vec<String>> {
    project.query(
        model,
        "select cast(id as varchar) as i, cast(day as varchar) as d, cast(amount as varchar) as a, \
         status from t order by id, amount",
    )
}

fn row(values: [&str; 4]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

/// The data files the current version of a model's table references, by path.
fn live_files(project: &TestProject, model: &str) -> BTreeSet<String> {
    crate::support::block_on(async {
        let url = url::Url::from_directory_path(project.table_dir(model)).unwrap();
        let table = deltalake::open_table(url).await.unwrap();
        table
            .get_file_uris()
            .unwrap()
            .map(|uri| uri.trim_start_matches("file://").to_string())
            .collect()
    })
}

#[test]
fn incremental_models_merge_append_and_overwrite_in_one_commit_each() {
    let project = TestProject::fixture("dbt_incremental");
    assert!(!project.root.join("dp_project.yml").exists());
    project.dp_ok(&["build", "--vars", "batch=1"]);
    for model in [
        "orders_merge",
        "orders_append",
        "orders_overwrite",
        "orders_by_day",
    ] {
        assert_eq!(project.version(model), Some(0), "{model}");
    }
    let by_day_before = live_files(&project, "orders_by_day");

    project.dp_ok(&["build", "--vars", "batch=2"]);
    // merge on id: 2 updated, 4 inserted, 1 and 3 kept.
    assert_eq!(
        table(&project, "orders_merge"),
        [
            row(["1", "2024-01-01", "10", "new"]),
            row(["2", "2024-01-01", "25", "shipped"]),
            row(["3", "2024-01-02", "30", "new"]),
            row(["4", "2024-01-03", "40", "new"]),
        ]
    );
    // append: both batches' rows.
    assert_eq!(table(&project, "orders_append").len(), 5);
    // insert_overwrite: the days batch 2 produced are replaced, 2024-01-02 stays.
    assert_eq!(
        table(&project, "orders_overwrite"),
        [
            row(["2", "2024-01-01", "25", "shipped"]),
            row(["3", "2024-01-02", "30", "new"]),
            row(["4", "2024-01-03", "40", "new"]),
        ]
    );
    assert_eq!(
        table(&project, "orders_by_day"),
        table(&project, "orders_merge")
    );
    for model in [
        "orders_merge",
        "orders_append",
        "orders_overwrite",
        "orders_by_day",
    ] {
        assert_eq!(
            project.version(model),
            Some(1),
            "{model}: one commit per run"
        );
    }
    // The merge keyed by (day, id) on a table partitioned by day rewrote only the day it
    // touched: 2024-01-02's file is the very same file.
    let by_day_after = live_files(&project, "orders_by_day");
    // The run results say what each commit wrote and rewrote: the by-day merge rewrote the one
    // file of 2024-01-01; append and insert_overwrite rewrite nothing.
    let results = project.run_results();
    let result = |model: &str| {
        results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == model)
            .cloned()
            .unwrap()
    };
    assert_eq!(result("orders_by_day")["files_rewritten"], 1);
    assert_eq!(
        result("orders_by_day")["files_written"],
        3,
        "2 new rows' days, 1 rewrite"
    );
    assert_eq!(result("orders_append")["files_rewritten"], 0);
    assert_eq!(result("orders_overwrite")["files_rewritten"], 0);
    let untouched: Vec<&String> = by_day_before
        .iter()
        .filter(|f| f.contains("day=2024-01-02"))
        .collect();
    assert_eq!(untouched.len(), 1);
    assert!(by_day_after.contains(untouched[0]));
    assert!(
        by_day_before
            .iter()
            .filter(|f| f.contains("day=2024-01-01"))
            .all(|f| !by_day_after.contains(f)),
        "the touched day was rewritten"
    );
}

#[test]
fn a_merge_that_would_publish_a_duplicate_key_is_refused_by_its_test() {
    let project = TestProject::fixture("dbt_incremental");
    project.dp_ok(&["build", "--vars", "batch=1", "-s", "+orders_merge"]);
    project.dp_ok(&["build", "--vars", "batch=2", "-s", "+orders_merge"]);
    let published = table(&project, "orders_merge");
    // Batch 3 holds id 5 twice: the table after the merge would too.
    let output = project.dp(&["build", "--vars", "batch=3", "-s", "orders_merge"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert!(
        both(&output).contains("unique_orders_merge_id"),
        "{}",
        both(&output)
    );
    assert_eq!(project.version("orders_merge"), Some(1));
    assert_eq!(table(&project, "orders_merge"), published);
    // Nothing of the refused run is left among the table's files but what a vacuum removes:
    // the live files are those of version 1.
    assert_eq!(
        parquet_files(&project.table_dir("orders_merge")).len(),
        live_files(&project, "orders_merge").len() + 1,
        "the first version's replaced file stays for history; the refused run's files are gone"
    );
}

#[test]
fn full_refresh_rebuilds_an_incremental_model_whole() {
    let project = TestProject::fixture("dbt_incremental");
    project.dp_ok(&["build", "--vars", "batch=1", "-s", "+orders_append"]);
    project.dp_ok(&["build", "--vars", "batch=2", "-s", "orders_append"]);
    assert_eq!(table(&project, "orders_append").len(), 5);
    project.dp_ok(&[
        "build",
        "--vars",
        "batch=2",
        "-s",
        "orders_append",
        "--full-refresh",
    ]);
    assert_eq!(
        table(&project, "orders_append"),
        [
            row(["2", "2024-01-01", "25", "shipped"]),
            row(["4", "2024-01-03", "40", "new"]),
        ]
    );
    assert_eq!(project.version("orders_append"), Some(2));
    // The versions before it are history: version 1 holds both batches.
    assert_eq!(
        project
            .query_version("orders_append", 1, "select count(*) from t")
            .concat(),
        ["5"]
    );
}

/// The columns of a model's published table, as its Delta log declares them.
fn columns(project: &TestProject, model: &str) -> Vec<String> {
    crate::support::block_on(async {
        let url = url::Url::from_directory_path(project.table_dir(model)).unwrap();
        let table = deltalake::open_table(url).await.unwrap();
        let schema = table.snapshot().unwrap().snapshot().arrow_schema();
        schema.fields().iter().map(|f| f.name().clone()).collect()
    })
}

#[test]
fn on_schema_change_evolves_the_table_in_the_runs_own_commit_or_stops_it() {
    let project = TestProject::fixture("dbt_schema_change");
    project.dp_ok(&["build", "--vars", "v=1"]);
    // v2 adds `extra`: fail stops (and only it), the others publish.
    let output = project.dp(&["build", "--vars", "v=2"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        both(&output).contains("on_schema_change is `fail`"),
        "{}",
        both(&output)
    );
    assert_eq!(project.version("evolve_fail"), Some(0));
    assert_eq!(columns(&project, "evolve_fail"), ["id", "amount"]);
    // ignore: the table's columns, the new one dropped.
    assert_eq!(columns(&project, "evolve_ignore"), ["id", "amount"]);
    assert_eq!(
        project.query("evolve_ignore", "select id, amount from t order by id"),
        [["1", "10"], ["2", "20"]]
    );
    // append_new_columns and sync_all_columns: the new column, NULL in the older rows, in
    // version 1 (one commit); appended after the table's columns, or in the model's order.
    for (model, order) in [
        ("evolve_append_new_columns", ["id", "amount", "extra"]),
        ("evolve_sync_all_columns", ["id", "extra", "amount"]),
    ] {
        assert_eq!(project.version(model), Some(1));
        assert_eq!(columns(&project, model), order, "{model}");
        assert_eq!(
            project.query(model, "select id, amount, extra from t order by id"),
            [["1", "10", ""], ["2", "20", "x2"]],
            "{model}"
        );
    }

    // v3 drops `amount`: ignore cannot write a column it lacks; append_new_columns keeps it
    // (NULL in the new row); sync_all_columns drops it, every old file rewritten without it.
    let output = project.dp(&["build", "--vars", "v=3"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        both(&output).contains("on_schema_change is `ignore`"),
        "{}",
        both(&output)
    );
    assert_eq!(project.version("evolve_ignore"), Some(1));
    assert_eq!(
        project.query(
            "evolve_append_new_columns",
            "select id, amount, extra from t order by id"
        ),
        [["1", "10", ""], ["2", "20", "x2"], ["3", "", "x3"]]
    );
    assert_eq!(
        columns(&project, "evolve_sync_all_columns"),
        ["id", "extra"]
    );
    assert_eq!(project.version("evolve_sync_all_columns"), Some(2));
    assert_eq!(
        project.query(
            "evolve_sync_all_columns",
            "select id, extra from t order by id"
        ),
        [["1", ""], ["2", "x2"], ["3", "x3"]]
    );
    // The files version 2 reads hold no `amount` column: were it added again, no old value
    // could come back.
    for file in live_files(&project, "evolve_sync_all_columns") {
        use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
        let path = std::path::PathBuf::from(file);
        let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
        let schema = reader
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>();
        assert!(
            !schema.contains(&"amount".to_string()),
            "{path:?}: {schema:?}"
        );
    }
}

#[test]
fn a_dbt_project_with_its_own_folders_and_config_tree_builds_as_dbt_would() {
    let project = TestProject::fixture("dbt_jaffle");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    // What dp accepts and ignores is said once; the profile and the paths are used silently.
    for key in ["on-run-start", "grants", "schema", "exposures"] {
        let warning = format!("`{key}` is ignored");
        assert_eq!(text.matches(&warning).count(), 1, "{text}");
    }
    // The relationships test gives `to:` and `field:` beside its name: deprecated, not wrong.
    assert!(
        text.contains("data tests giving their arguments beside the test's name: 1"),
        "{text}"
    );
    // At the first of them, in its file.
    assert!(text.contains("the first"), "{text}");
    assert!(!text.contains("profile"), "{text}");
    // A documented column the model does not output (no contract): a warning, not an error.
    assert!(
        text.contains("column `lifetime_value` of `customer_revenue` is documented"),
        "{text}"
    );
    // `where:` and the expression of a test are rendered (unrendered, `{{` would not plan).
    assert!(
        text.contains(
            "PASS  data test expression_is_true_customer_revenue_revenue__var__min_amount"
        ),
        "{text}"
    );
    // target-path: run results go to out/, nothing to target/.
    let built: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.root.join("out/run_results.json")).unwrap())
            .unwrap();
    // `data_tests:` of dbt_project.yml makes the staging folder's tests warnings: the failing
    // test warns and stg_payments is published.
    let stg_payments = built["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "stg_payments")
        .unwrap();
    assert_eq!(stg_payments["status"], "success", "{stg_payments}");
    let test_status = |column: &str| {
        stg_payments["tests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"].as_str().unwrap().contains(column))
            .map(|t| t["status"].clone())
    };
    assert_eq!(test_status("amount"), Some("warn".into()), "{stg_payments}");
    // The folder's `where:` leaves customer 3 out of its tests.
    assert_eq!(
        test_status("customer_id"),
        Some("pass".into()),
        "{stg_payments}"
    );
    assert!(!project.root.join("target").exists());

    // The tree: staging is `view` (inlined, no table) except stg_payments, named as the leaf;
    // the disabled folder's model is neither built nor planned.
    let tables: BTreeSet<String> = std::fs::read_dir(project.root.join("warehouse"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        tables,
        BTreeSet::from(
            [
                "customer_revenue",
                "customers",
                "payments",
                "revenue_pivot",
                "stg_payments"
            ]
            .map(String::from)
        )
    );
    // vars: the global `currency`, the project's own `min_amount` (5, not the other
    // package's 1000), the seed's decimal(10,2) override.
    assert_eq!(
        project.query(
            "customer_revenue",
            "select customer_id, name, cast(revenue as varchar) as r, currency from t order by customer_id"
        ),
        [
            ["1", "Doe, Jane", "10.50", "EUR"],
            ["2", "Smith \"Jo\"", "20.00", "EUR"],
            ["3", "Lee", "7.25", "EUR"],
        ]
    );
    // Tags from the tree add up: `all` at the top (of models:, so no seed), `mart` on marts.
    assert_eq!(
        project.dp_ok(&["ls", "-s", "tag:mart"]),
        "customer_revenue\nrevenue_pivot\n"
    );
    assert_eq!(
        project.dp_ok(&["ls", "-s", "tag:all"]),
        "stg_customers\nstg_payments\ncustomer_revenue\nrevenue_pivot\n"
    );
    // run_query answered while the model runs (`execute`): one column per customer id read
    // from the seed, as dbt_utils' pivot builds them.
    assert_eq!(
        columns(&project, "revenue_pivot"),
        ["revenue_1", "revenue_2", "revenue_3", "customers"]
    );
    assert_eq!(
        project.query(
            "revenue_pivot",
            "select cast(revenue_1 as varchar) as a, cast(revenue_2 as varchar) as b, \
             cast(revenue_3 as varchar) as c, customers from t"
        ),
        [["10.50", "20.00", "7.25", "3"]]
    );
    // The singular tests under test-paths run; `config()` in one makes its failures a warning.
    let tested = project.dp_ok(&["test"]);
    assert!(tested.contains("assert_revenue_positive"), "{tested}");
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.root.join("out/run_results.json")).unwrap())
            .unwrap();
    let singular = results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "assert_single_customer")
        .unwrap_or_else(|| panic!("{results}"));
    assert_eq!(singular["status"], "warn", "{singular}");
    assert_eq!(singular["failures"], 2, "{singular}");
}

#[test]
fn seeds_are_typed_as_dbt_types_them_and_replaced_in_one_commit() {
    let project = TestProject::fixture("dbt_jaffle");
    project.dp_ok(&["seed"]);
    // Only seeds: no model table.
    assert_eq!(project.version("customers"), Some(0));
    assert_eq!(project.version("payments"), Some(0));
    assert_eq!(project.version("stg_payments"), None);
    // CRLF line ends, quoted fields with a comma and a doubled quote, NULLs from empty fields
    // and `null`; integers, text, dates, booleans, decimals and timestamps inferred; `zip` kept
    // as text by column_types (its leading zeros stay).
    assert_eq!(
        columns(&project, "customers"),
        [
            "id",
            "name",
            "signup_date",
            "is_active",
            "score",
            "last_seen",
            "zip"
        ]
    );
    let types = crate::support::block_on(async {
        let url = url::Url::from_directory_path(project.table_dir("customers")).unwrap();
        let table = deltalake::open_table(url).await.unwrap();
        let schema = table.snapshot().unwrap().snapshot().arrow_schema();
        schema
            .fields()
            .iter()
            .map(|f| f.data_type().to_string())
            .collect::<Vec<_>>()
    });
    assert_eq!(
        types,
        [
            "Int64",
            "Utf8",
            "Date32",
            "Boolean",
            "Float64",
            "Timestamp(µs)",
            "Utf8"
        ]
    );
    assert_eq!(
        project.query(
            "customers",
            "select id, name, cast(signup_date as varchar) as d, is_active, score, \
             cast(last_seen as varchar) as s, zip from t order by id"
        ),
        [
            [
                "1",
                "Doe, Jane",
                "2024-01-15",
                "true",
                "4.5",
                "2024-01-15T10:30:00",
                "01234"
            ],
            [
                "2",
                "Smith \"Jo\"",
                "2024-02-01",
                "false",
                "3.0",
                "2024-02-01T08:00:00",
                "98765"
            ],
            ["3", "Lee", "", "true", "", "", "00501"],
        ]
    );
    let all_text = project.query("customers", "select concat_ws('|', name, zip) as x from t");
    assert!(all_text.concat().iter().all(|v| !v.contains('\r')));

    // A changed CSV replaces the seed in one commit; `dp seed -s` loads only what it selects.
    project.write(
        "data_seeds/customers.csv",
        "id,name,signup_date,is_active,score,last_seen,zip\n7,New,2024-03-01,true,1.5,2024-03-01 00:00:00,02134\n",
    );
    project.dp_ok(&["seed", "-s", "customers"]);
    assert_eq!(project.version("customers"), Some(1));
    assert_eq!(project.version("payments"), Some(0));
    assert_eq!(
        project.query("customers", "select id, name, zip from t"),
        [["7", "New", "02134"]]
    );
    // A CSV whose columns changed is a schema change, refused with the table unchanged;
    // `--full-refresh` replaces the seed with its new columns in one commit, as in dbt.
    project.write("data_seeds/customers.csv", "id,nickname\n8,Eight\n");
    let refused = project.dp(&["seed", "-s", "customers"]);
    assert_eq!(refused.status.code(), Some(1), "{}", both(&refused));
    assert!(
        both(&refused).contains("dp::schema_changed"),
        "{}",
        both(&refused)
    );
    assert_eq!(project.version("customers"), Some(1));
    project.dp_ok(&["seed", "-s", "customers", "--full-refresh"]);
    assert_eq!(project.version("customers"), Some(2));
    assert_eq!(columns(&project, "customers"), ["id", "nickname"]);
    assert_eq!(
        project.query("customers", "select id, nickname from t"),
        [["8", "Eight"]]
    );
}

#[test]
fn docs_of_a_dbt_project_show_its_seeds_and_docs_blocks() {
    use crate::docs::{assert_valid, read_json};
    let project = TestProject::fixture("dbt_jaffle");
    project.dp_ok(&["build", "-q"]);
    project.dp_ok(&["docs", "generate"]);
    let out = project.root.join("out");
    let manifest = read_json(&out.join("manifest.json"));
    for (file, schema) in [
        ("manifest.json", "manifest.schema.json"),
        ("catalog.json", "catalog.schema.json"),
        ("lineage.json", "lineage.schema.json"),
    ] {
        assert_valid(schema, &read_json(&out.join(file)));
    }
    // Seeds are seeds, as dbt names them; the models that read them depend on them.
    let seed = &manifest["nodes"]["seed.jaffle.customers"];
    assert_eq!(seed["resource_type"], "seed", "{seed}");
    assert_eq!(seed["original_file_path"], "data_seeds/customers.csv");
    assert!(
        manifest["parent_map"]["model.jaffle.stg_payments"]
            .as_array()
            .unwrap()
            .contains(&"seed.jaffle.payments".into())
    );
    let catalog = read_json(&out.join("catalog.json"));
    assert_eq!(
        catalog["nodes"]["seed.jaffle.customers"]["table"]["num_rows"], 3,
        "{}",
        catalog["nodes"]["seed.jaffle.customers"]
    );
    // `{% docs %}` blocks from the model folders and from docs-paths; `doc()` in a description;
    // the .md files are never taken for models.
    assert_eq!(
        manifest["nodes"]["model.jaffle.customer_revenue"]["description"],
        "Revenue per customer, in the project's `currency`."
    );
    assert!(
        manifest["docs"]["doc.jaffle.__overview__"]["block_contents"]
            .as_str()
            .unwrap()
            .contains("A dbt project dp runs as it is.")
    );
    // dbt's selector for a kind of node.
    assert_eq!(
        project.dp_ok(&["ls", "-s", "resource_type:seed"]),
        "customers\npayments\n"
    );
}

/// The models of the dbt_keep_going fixture that cannot run: one whose SQL does not plan, one
/// whose template does not render, and the model reading each.
const NOT_RUN: [&str; 4] = ["broken", "reads_broken", "unrendered", "reads_unrendered"];

#[test]
fn a_model_that_does_not_plan_fails_alone_and_everything_else_builds() {
    let project = TestProject::fixture("dbt_keep_going");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    // The seed and every model that reads neither failure are published, with their rows.
    assert_eq!(
        project.query("totals", "select n, cast(total as varchar) from t"),
        [["2", "30"]]
    );
    assert_eq!(project.query("clean", "select count(*) from t"), [["2"]]);
    assert_eq!(project.version("orders"), Some(0));
    for model in NOT_RUN {
        assert_eq!(project.version(model), None, "{model}");
    }
    // Each failure at its place, and each model skipped for it by name.
    assert!(text.contains("models/broken.sql:1:12"), "{text}");
    assert!(text.contains("models/unrendered.sql:1:11"), "{text}");
    assert!(text.contains("upstream `broken` did not build"), "{text}");
    assert!(
        text.contains("upstream `unrendered` did not build"),
        "{text}"
    );
    for (model, status) in [
        ("broken", "error"),
        ("unrendered", "error"),
        ("reads_broken", "skipped"),
        ("reads_unrendered", "skipped"),
        ("totals", "success"),
        ("orders", "success"),
    ] {
        assert_eq!(project.model_status(model), status, "{model}");
    }
    // dp seed builds the seed whatever the models.
    let seeded = project.dp(&["seed"]);
    assert!(seeded.status.success(), "{}", both(&seeded));
    assert_eq!(project.version("orders"), Some(1));
}

#[test]
fn fail_fast_stops_before_anything_is_built() {
    let project = TestProject::fixture("dbt_keep_going");
    let output = project.dp(&["build", "--fail-fast"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(!project.root.join("warehouse").exists());
    assert!(both(&output).contains("no_such_column"));
    // The same from the target's setting.
    project.write(
        "dbt_project.yml",
        "name: keep_going\ntargets:\n  default: {fail_fast: true}\n",
    );
    let output = project.dp(&["build"]);
    assert_eq!(output.status.code(), Some(2), "{}", both(&output));
    assert!(!project.root.join("warehouse").exists());
}

#[test]
fn dp_test_and_docs_cover_every_model_that_checks_and_name_the_others() {
    let project = TestProject::fixture("dbt_keep_going");
    project.dp(&["build"]);
    let output = project.dp(&["test"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    // totals' test ran against its published rows; the broken model's problem and what it
    // keeps from running are named.
    assert!(
        text.contains("PASS") && text.contains("not_null_totals_n"),
        "{text}"
    );
    assert!(text.contains("`broken` failed"), "{text}");
    assert!(text.contains("SKIP reads_broken"), "{text}");
    assert!(!text.contains("unique_broken_id"), "{text}");

    let output = project.dp(&["docs", "generate"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("`unrendered` failed"), "{text}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(project.root.join("target/manifest.json")).unwrap())
            .unwrap();
    let nodes = manifest["nodes"].as_object().unwrap();
    assert!(nodes.keys().any(|k| k.ends_with(".totals")), "{nodes:?}");
}

#[test]
fn sources_as_dbt_duckdb_declares_them_read_the_seed_the_files_and_the_identifier() {
    let project = TestProject::fixture("dbt_sources");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    // source('main', 'raw_orders') is the seed, built first.
    assert_eq!(
        project.query("orders", "select id, amount from t order by id"),
        [["1", "10"], ["2", "20"], ["3", "30"]]
    );
    assert!(text.contains("source `main.raw_orders` is the project's seed `raw_orders`"));
    // meta.external_location: a read_csv() call, and a glob with {name}; and an identifier.
    assert_eq!(
        project.query("labels", "select code, label from t order by code"),
        [["a", "Alpha"], ["b", "Beta"]]
    );
    assert_eq!(
        project.query("event_counts", "select events, renamed from t"),
        [["4", "4"]]
    );
}

#[test]
fn every_key_dbt_accepts_is_accepted_and_each_ignored_one_is_said_once_at_its_line() {
    let project = TestProject::fixture("dbt_sources");
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    for (key, place) in [
        ("schema", "models/sources.yml:4:5"),
        ("database", "models/sources.yml:5:5"),
        ("freshness", "models/sources.yml:7:5"),
        ("loaded_at_field", "models/sources.yml:9:5"),
        ("quoting", "models/sources.yml:22:9"),
        ("constraints", "models/sources.yml:29:5"),
        ("exposures", "models/sources.yml:35:1"),
        ("persist_docs", "dbt_project.yml:8:5"),
    ] {
        let warning = format!("`{key}` is ignored");
        assert_eq!(text.matches(&warning).count(), 1, "{key}: {text}");
        let after = &text[text.find(&warning).unwrap()..];
        assert!(after.contains(place), "{key} at {place}: {text}");
    }
    // Keys that only document (loader, tags, meta, access) pass without a word.
    for quiet in ["`loader`", "`tags`", "`meta`", "`access`"] {
        assert!(!text.contains(quiet), "{quiet}: {text}");
    }
}

#[test]
fn an_unknown_materialization_points_at_the_line_that_sets_it() {
    let project = TestProject::fixture("dbt_keep_going");
    let invalid_config = |project: &TestProject| -> Vec<(String, u64, u64)> {
        let check = project.dp(&["check", "--format", "json"]);
        assert_eq!(check.status.code(), Some(1), "{}", both(&check));
        let found: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
        let mut places: Vec<(String, u64, u64)> = found
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "dp::invalid_config")
            .map(|f| {
                let at = |key: &str| f[key].as_u64().unwrap();
                (
                    f["file"].as_str().unwrap().to_string(),
                    at("line"),
                    at("column"),
                )
            })
            .collect();
        places.dedup();
        places
    };
    // In the project file, for a folder.
    project.write(
        "dbt_project.yml",
        "name: keep_going\nprofile: keep_going\nmodels:\n  keep_going:\n    +materialized: tabel\n",
    );
    assert_eq!(
        invalid_config(&project),
        vec![("dbt_project.yml".to_string(), 5, 5)]
    );
    // In a model's YAML config, over the project file's.
    project.write(
        "models/properties.yml",
        "version: 2\nmodels:\n  - name: totals\n    config:\n      materialized: viw\n",
    );
    project.write("dbt_project.yml", "name: keep_going\nprofile: keep_going\n");
    assert_eq!(
        invalid_config(&project),
        vec![("models/properties.yml".to_string(), 5, 7)]
    );
    // In the model's config() call, spaces around `=` and all.
    project.write("models/properties.yml", "version: 2\n");
    project.write(
        "models/totals.sql",
        "{{ config(\n    materialized = 'tabel'\n) }}\nselect count(*) as n from {{ ref('clean') }}\n",
    );
    assert_eq!(
        invalid_config(&project),
        vec![("models/totals.sql".to_string(), 2, 5)]
    );
}

#[test]
fn a_subquery_datafusion_cannot_run_is_named_at_its_place_with_the_rewrite() {
    let project = TestProject::fixture("dbt_keep_going");
    project.write(
        "models/seen_again.sql",
        "select\n    o.id,\n    o.id in (select c.id from {{ ref('clean') }} c where c.amount = o.amount) as seen\nfrom {{ ref('orders') }} o\n",
    );
    let check = project.dp(&["check", "--format", "json"]);
    let found: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let problem = found
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == "models/seen_again.sql")
        .unwrap_or_else(|| panic!("{found}"));
    assert_eq!(problem["code"], "dp::sql");
    assert_eq!(
        (&problem["line"], &problem["column"]),
        (&3.into(), &10.into())
    );
    let text = problem.to_string();
    assert!(
        text.contains("`IN (subquery)` that reads the outer query is not supported"),
        "{text}"
    );
    assert!(text.contains("EXISTS"), "{text}");
    assert!(
        !text.contains("LogicalPlan") && !text.contains("Subquery {"),
        "{text}"
    );
    // The build fails it alone, at the same place, and builds the rest.
    let build = project.dp(&["build"]);
    let text = both(&build);
    assert_eq!(build.status.code(), Some(1), "{text}");
    assert!(text.contains("models/seen_again.sql:3:10"), "{text}");
    assert_eq!(
        project.query("totals", "select n from t"),
        vec![vec!["2".to_string()]]
    );
}

#[test]
fn a_source_only_an_unused_cte_reads_is_never_read() {
    let project = TestProject::fixture("dbt_sources");
    let sources = std::fs::read_to_string(project.root.join("models/sources.yml")).unwrap();
    // `lake.gone` would be raw/gone/*.parquet: there are no such files.
    project.write(
        "models/sources.yml",
        &sources.replace(
            "      - name: renamed\n",
            "      - name: gone\n      - name: renamed\n",
        ),
    );
    project.write(
        "models/recent_events.sql",
        "with gone as (\n    select * from {{ source('lake', 'gone') }}\n),\nevents as (select * from {{ source('lake', 'events') }})\nselect count(*) as n from events\n",
    );
    let check = project.dp(&["check", "--select", "recent_events"]);
    assert_eq!(check.status.code(), Some(0), "{}", both(&check));
    project.dp_ok(&["build", "--select", "recent_events"]);
    assert_eq!(
        project.query("recent_events", "select n from t"),
        vec![vec!["4".to_string()]]
    );
    // A scan the plan keeps still needs the files.
    project.write(
        "models/recent_events.sql",
        "select count(*) as n from {{ source('lake', 'gone') }}\n",
    );
    let build = project.dp(&["build", "--select", "recent_events"]);
    assert_eq!(build.status.code(), Some(1), "{}", both(&build));
    assert!(both(&build).contains("lake.gone"), "{}", both(&build));
}
