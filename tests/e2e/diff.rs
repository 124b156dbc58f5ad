//! Issue 20: every build diffs its staged rows against the published rows they replace, before
//! the commit; thresholds block like a data test; `--dry-run` shows the whole chain's diffs and
//! commits nothing.

use crate::support::{TestProject, both, walk};

/// The diff of `model` in the last run's results.
fn diff_of(project: &TestProject, model: &str) -> serde_json::Value {
    project.run_results()["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == model)
        .unwrap_or_else(|| panic!("no result for {model}"))["diff"]
        .clone()
}

/// Every file under the warehouse, with its bytes.
fn warehouse_files(project: &TestProject) -> Vec<(String, Vec<u8>)> {
    walk(&project.root.join("warehouse"))
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            (path.display().to_string(), bytes)
        })
        .collect()
}

#[test]
fn a_build_shows_what_it_changes_by_key_and_by_column() {
    let project = TestProject::fixture("diff");
    project.dp_ok(&["build", "--select", "customers", "keyed_in_sql", "daily"]);
    let first = diff_of(&project, "customers");
    assert_eq!(first["rows_before"], 0);
    assert_eq!(first["rows_after"], 4);
    assert_eq!(first["added"], 4);

    let out = project.dp_ok(&[
        "build",
        "--select",
        "customers",
        "keyed_in_sql",
        "daily",
        "--vars",
        "version=2",
    ]);
    assert!(out.contains("DIFF  rows 4 → 5 (+1)"), "{out}");
    assert!(
        out.contains("by (id): 2 added, 1 removed, 1 changed"),
        "{out}"
    );
    assert!(out.contains("removed: id=3"), "{out}");
    for model in ["customers", "keyed_in_sql"] {
        let diff = diff_of(&project, model);
        assert_eq!(diff["mode"], "full");
        assert_eq!(
            (diff["rows_before"].as_u64(), diff["rows_after"].as_u64()),
            (Some(4), Some(5))
        );
        assert_eq!(diff["key"], serde_json::json!(["id"]), "{model}: its key");
        assert_eq!(diff["added"], 2);
        assert_eq!(diff["removed"], 1);
        assert_eq!(diff["changed"], 1);
        assert_eq!(
            diff["samples"],
            serde_json::json!({
                "added": [{"id": "5"}, {"id": "6"}],
                "changed": [{"id": "2"}],
                "removed": [{"id": "3"}],
            })
        );
        let amount = &diff["columns"]["amount"];
        assert_eq!(amount["nulls_before"], 1);
        assert_eq!(amount["nulls_after"], 2);
        assert_eq!(amount["sum_before"], 60.0);
        assert_eq!(amount["sum_after"], 85.0);
        assert_eq!(amount["max_after"], 50.0);
        assert_eq!(diff["columns"]["name"]["distinct_after"], 5);
        // A key's sum says nothing: not computed.
        assert!(diff["columns"]["id"].get("sum_after").is_none());
    }
    // Per replaced partition: the partition's rows before and after.
    let daily = diff_of(&project, "daily");
    assert_eq!(
        daily["partitions"],
        serde_json::json!({"date=2024-01-01": {"before": 3, "after": 3}})
    );
    assert_eq!(daily["columns"]["amount"]["sum_before"], 6.0);
    assert_eq!(daily["columns"]["amount"]["sum_after"], 12.0);
    // Two partitions replaced at once: rows per partition.
    project.dp_ok(&["build", "--select", "spread"]);
    project.dp_ok(&["build", "--select", "spread", "--vars", "version=2"]);
    let spread = diff_of(&project, "spread");
    assert_eq!(
        spread["partitions"],
        serde_json::json!({
            "date=2024-01-01": {"before": 2, "after": 2},
            "date=2024-01-02": {"before": 1, "after": 2},
        })
    );
    assert_eq!(spread["columns"]["amount"]["sum_before"], 6.0);
    assert_eq!(spread["columns"]["amount"]["sum_after"], 20.0);
    // Past its max_rows, a diff counts rows only, and says so.
    project.dp_ok(&["build", "--select", "big"]);
    let out = project.dp_ok(&["build", "--select", "big", "--vars", "version=2"]);
    assert!(out.contains("row counts only"), "{out}");
    let big = diff_of(&project, "big");
    assert_eq!(big["mode"], "counts");
    assert_eq!(
        (big["rows_before"].as_u64(), big["rows_after"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(big.get("columns").is_none(), "{big}");

    // The diff is in the commit's run record (without its sample keys) and the JSON events.
    let log = project
        .table_dir("customers")
        .join("_delta_log/00000000000000000001.json");
    let commit: serde_json::Value = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find_map(|action| action.get("commitInfo").cloned())
        .unwrap();
    assert_eq!(commit["dp"]["diff"]["removed"], 1);
    assert!(commit["dp"]["diff"].get("samples").is_none());
    let json = project.dp_ok(&[
        "build",
        "--select",
        "customers",
        "--vars",
        "version=1",
        "--log-format",
        "json",
    ]);
    let event: serde_json::Value = json
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|e| e["event"] == "model_finished")
        .unwrap();
    assert_eq!(event["diff"]["added"], 1, "{event}");
    assert_eq!(event["diff"]["removed"], 2, "{event}");

    // --no-diff: none.
    project.dp_ok(&["build", "--select", "customers", "--no-diff"]);
    assert!(diff_of(&project, "customers").is_null());
}

#[test]
fn a_threshold_breach_publishes_nothing_and_writes_the_offending_keys() {
    let project = TestProject::fixture("diff");
    project.dp_ok(&["build", "--select", "guarded", "lenient"]);
    let before = warehouse_files(&project);
    let versions = (project.version("guarded"), project.version("lenient"));

    let failed = project.dp(&[
        "build",
        "--select",
        "guarded",
        "lenient",
        "--vars",
        "version=2",
    ]);
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let text = both(&failed);
    assert!(text.contains("FAIL  diff test guarded__diff"), "{text}");
    assert!(
        text.contains("1 rows removed, more than max_removed: 0"),
        "{text}"
    );
    assert!(
        text.contains("`amount` has 1 more NULLs (1 → 2), more than max_null_increase: 0"),
        "{text}"
    );
    // guarded: unchanged, file for file. lenient (severity: warn): published, with a warning.
    assert_eq!(project.version("guarded"), versions.0);
    assert_eq!(project.version("lenient"), versions.1.map(|v| v + 1));
    let after = warehouse_files(&project);
    let guarded = |files: &[(String, Vec<u8>)]| -> Vec<(String, Vec<u8>)> {
        files
            .iter()
            .filter(|(path, _)| path.contains("/guarded/"))
            .cloned()
            .collect()
    };
    assert_eq!(guarded(&after), guarded(&before));
    assert!(text.contains("WARN  diff test lenient__diff"), "{text}");
    assert_eq!(project.query("lenient", "select count(*) from t"), [["5"]]);
    let keys = std::fs::read_to_string(project.root.join("target/test_failures/guarded__diff.csv"))
        .unwrap();
    let mut lines: Vec<&str> = keys.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["added,5", "added,6", "change,id", "changed,2", "removed,3"]
    );
    let results = project.run_results();
    let guarded = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "guarded")
        .unwrap();
    assert_eq!(guarded["failure_class"], "assertion");
    assert_eq!(guarded["diff"]["removed"], 1, "the figures are reported");
}

#[test]
fn a_dry_run_diffs_the_whole_chain_and_leaves_nothing_behind() {
    let project = TestProject::fixture("diff");
    // Before anything is published: nothing is left either.
    let out = project.dp_ok(&["build", "--dry-run", "--select", "customers+"]);
    assert!(out.contains("dry run, not committed"), "{out}");
    assert!(
        walk(&project.root.join("warehouse")).is_empty(),
        "{:?}",
        walk(&project.root.join("warehouse"))
    );

    project.dp_ok(&["build", "--select", "customers+"]);
    let before = warehouse_files(&project);
    let out = project.dp_ok(&[
        "build",
        "--dry-run",
        "--select",
        "customers+",
        "--vars",
        "version=2",
    ]);
    assert!(
        out.contains("by (id): 2 added, 1 removed, 1 changed"),
        "{out}"
    );
    // totals read customers as staged: the chain's diff.
    let totals = diff_of(&project, "totals");
    assert_eq!(totals["columns"]["amount"]["sum_before"], 60.0);
    assert_eq!(totals["columns"]["amount"]["sum_after"], 85.0);
    assert_eq!(totals["columns"]["n"]["sum_after"], 5.0);
    let results = project.run_results();
    for result in results["results"].as_array().unwrap() {
        assert_eq!(result["dry_run"], true, "{result}");
        assert!(result["delta_version"].is_null(), "{result}");
    }
    assert_eq!(
        warehouse_files(&project),
        before,
        "a dry run changes no file"
    );
    // Nothing of a dry run is for dp retry to finish.
    assert!(project.dp_ok(&["retry"]).contains("Nothing to retry"));
    assert_eq!(project.version("customers"), Some(0));
    assert_eq!(project.query("totals", "select n from t"), [["4"]]);
}

#[test]
fn a_sum_that_becomes_nan_is_a_change_past_any_threshold() {
    let project = TestProject::fixture("diff");
    // One amount becomes NaN (version 2), then a number again (version 3); a threshold no
    // finite change could pass.
    project.write(
        "models/nan_sum.sql",
        "{{ config(materialized='table', diff={'key': 'id', 'columns': {'amount': {'max_sum_change_pct': 1000000}}}) }}\n\
         select id, case when id = 2 and '{{ var('version') }}' = '2' then cast('NaN' as double) else amount end as amount\n\
         from (values (1, 10.0), (2, 20.0), (3, 30.0)) as t(id, amount)\n",
    );
    project.dp_ok(&["build", "--select", "nan_sum"]);
    let published = || project.query("nan_sum", "select id, amount from t order by id");
    let numbers = published();
    assert_eq!(numbers, [["1", "10.0"], ["2", "20.0"], ["3", "30.0"]]);

    let failed = project.dp(&["build", "--select", "nan_sum", "--vars", "version=2"]);
    let text = both(&failed);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL  diff test nan_sum__diff"), "{text}");
    assert!(
        text.contains("the sum of `amount` changed from 60 to NaN"),
        "{text}"
    );
    assert_eq!(published(), numbers, "the NaN was not published");
    assert_eq!(project.version("nan_sum"), Some(0));

    // Published anyway (no threshold), the NaN becoming a number again is blocked the same way.
    project.write(
        "models/nan_sum.sql",
        &std::fs::read_to_string(project.root.join("models/nan_sum.sql"))
            .unwrap()
            .replace("'2' then", "'2' or '{{ var('version') }}' = 'nan' then"),
    );
    project.dp_ok(&[
        "build",
        "--select",
        "nan_sum",
        "--vars",
        "version=nan",
        "--no-diff",
    ]);
    assert_eq!(
        project.query("nan_sum", "select amount from t where id = 2"),
        [["NaN"]]
    );
    let failed = project.dp(&["build", "--select", "nan_sum", "--vars", "version=3"]);
    let text = both(&failed);
    assert_eq!(failed.status.code(), Some(1), "{text}");
    assert!(
        text.contains("the sum of `amount` changed from NaN to 60"),
        "{text}"
    );
    assert_eq!(project.version("nan_sum"), Some(1));
}
