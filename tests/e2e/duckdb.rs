//! `dialect: duckdb`: dbt-duckdb projects give the rows dbt-duckdb gives. Each fixture holds one
//! concern; the expected rows are DuckDB's for the same SQL (checked with DuckDB 1.x), read back
//! from the published Delta tables.

use crate::support::{TestProject, both};

fn rows(values: &[&[&str]]) -> Vec<Vec<String>> {
    values
        .iter()
        .map(|row| row.iter().map(|v| v.to_string()).collect())
        .collect()
}

#[test]
fn a_dbt_duckdb_project_finds_camel_case_columns_in_any_case_and_keeps_aliases_as_written() {
    // No `dialect:`: the profile in profiles.yml is `type: duckdb`.
    let project = TestProject::fixture("duckdb_case");
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query(
            "order_totals",
            r#"select "Customer", cast("ORDERS" as varchar), cast("LastProcessed" as varchar),
                      cast("Total" as varchar) from t order by 1"#
        ),
        rows(&[
            &["Alice", "2", "2024-01-04", "15"],
            &["Bob", "1", "2024-01-03", "20"]
        ])
    );
}

#[test]
fn duckdb_averages_and_divides_decimals_and_integers_as_doubles() {
    let project = TestProject::fixture("duckdb_numbers");
    let check = both(&project.dp(&["check"]));
    assert!(!check.contains("dp::integer_division"), "{check}");
    assert!(!check.contains("dp::truncating_cast"), "{check}");
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query(
            "payment_stats",
            "select cast(avg_amount as varchar), cast(avg_rounded as varchar), \
             cast(mean_by_division as varchar), cast(quantity_per_payment as varchar), \
             cast(half_quantity as varchar), cast(avg_as_integer as varchar), \
             arrow_typeof(avg_amount) from t"
        ),
        rows(&[&[
            "33.306666666666665",
            "33.31",
            "33.306666666666665",
            "4.333333333333333",
            "6",
            "33",
            "Float64"
        ]])
    );
}

#[test]
fn duckdb_reads_a_text_literal_as_the_type_beside_it() {
    let project = TestProject::fixture("duckdb_literals");
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query(
            "event_days",
            "select cast(last_day as varchar), cast(never as varchar), cast(fallback as varchar), \
             cast(recent as varchar), arrow_typeof(last_day), arrow_typeof(fallback) from t"
        ),
        rows(&[&[
            "2024-01-03",
            "1900-01-01",
            "2000-01-01",
            "2",
            "Date32",
            "Date32"
        ]])
    );
}

#[test]
fn duckdb_names_unnamed_columns_and_dp_check_warns_where_it_cannot() {
    let project = TestProject::fixture("duckdb_names");
    let check = both(&project.dp(&["check"]));
    // The case is the one column dp cannot name as DuckDB does: a warning at it, with the
    // alias to add; the others are named as in DuckDB.
    assert_eq!(check.matches("dp::unaliased_column").count(), 1, "{check}");
    let words = check.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("as case_when_store_north_then_1_else_0_end"),
        "{check}"
    );
    let json = project.dp(&["check", "--format", "json"]);
    let found: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let warning = found
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "dp::unaliased_column")
        .unwrap();
    assert_eq!(warning["file"], "models/store_sales.sql");
    assert_eq!(
        (&warning["line"], &warning["column"]),
        (&7.into(), &5.into())
    );
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query(
            "store_sales",
            r#"select store, cast("count_star()" as varchar), cast("sum(amount)" as varchar),
                      cast("round((sum(amount) / 2), 1)" as varchar) from t order by store"#
        ),
        rows(&[&["north", "2", "15", "7.5"], &["south", "1", "7", "3.5"]])
    );
}

#[test]
fn duckdb_functions_strftime_generate_series_and_reading_files() {
    let project = TestProject::fixture("duckdb_functions");
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query("months", "select month_name, month from t order by month"),
        rows(&[
            &["January", "2024-01"],
            &["February", "2024-02"],
            &["March", "2024-03"]
        ])
    );
    assert_eq!(
        project.query(
            "orders_csv",
            "select cast(id as varchar), cast(ordered_on as varchar), cast(amount as varchar), \
             arrow_typeof(ordered_on) from t order by 1"
        ),
        rows(&[
            &["1", "2024-01-05", "10.5", "Date32"],
            &["2", "2024-02-10", "20.0", "Date32"]
        ])
    );
    assert_eq!(
        project.query(
            "customers_csv",
            "select cast(id as varchar), customer from t order by 1"
        ),
        rows(&[&["1", "Alice"], &["2", "Bob"]])
    );
    assert_eq!(
        project.query(
            "items_parquet",
            "select item, cast(price as varchar) from t order by item"
        ),
        rows(&[&["ink", "3.25"], &["pen", "1.50"]])
    );
    assert_eq!(
        project.query(
            "statuses_json",
            "select cast(id as varchar), status from t order by 1"
        ),
        rows(&[&["1", "shipped"], &["2", "returned"]])
    );
}

#[test]
fn a_read_function_outside_the_project_folder_is_refused_at_its_model() {
    let project = TestProject::fixture("duckdb_functions");
    project.write(
        "models/outside.sql",
        "select * from read_csv_auto('../secrets.csv')",
    );
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("project folder"), "{text}");
    assert!(text.contains("models/outside.sql"), "{text}");
}

#[test]
fn the_profile_is_found_where_dbt_finds_it_in_dbt_profiles_dir() {
    let project = TestProject::fixture("duckdb_case");
    let profiles = project.root.join("profiles.yml");
    let elsewhere = project.root.join("../profiles");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(&profiles, elsewhere.join("profiles.yml")).unwrap();
    // Without a profile, DataFusion's dialect: `ProcessedAt` is not found by `processedat`.
    assert_eq!(project.dp(&["check"]).status.code(), Some(1));
    let check = project
        .command(&["check"])
        .env("DBT_PROFILES_DIR", &elsewhere)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", both(&check));
}

#[test]
fn duckdb_divides_decimals_as_doubles_in_each_branch_of_a_union() {
    let project = TestProject::fixture("duckdb_numbers");
    project.dp_ok(&["build"]);
    assert_eq!(
        project.query(
            "ratio_by_channel",
            "select channel, cast(ratio as varchar), arrow_typeof(ratio) from t order by 1"
        ),
        rows(&[
            &["per_item", "7.686153846153847", "Float64"],
            &["per_payment", "4.333333333333333", "Float64"]
        ])
    );
}
