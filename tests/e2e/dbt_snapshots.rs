//! dbt's snapshots: `{% snapshot %}` blocks and YAML snapshots record what changed in what they
//! snapshot as versions of rows, run by `dp snapshot` and in DAG order by `dp build`, each run one
//! commit, audited first. The expected rows are those dbt-duckdb 1.11 gives for the same project
//! and the same three versions of its seed.

use std::collections::BTreeMap;

use crate::support::{TestProject, both};

const FIRST: &str = "id,status,amount,updated_at\n\
    1,placed,10,2024-01-01 00:00:00\n\
    2,placed,20,2024-01-01 00:00:00\n\
    3,placed,30,2024-01-01 00:00:00\n";
/// 1 shipped (updated), 3 gone, 4 new.
const SECOND: &str = "id,status,amount,updated_at\n\
    1,shipped,10,2024-01-02 00:00:00\n\
    2,placed,20,2024-01-01 00:00:00\n\
    4,placed,40,2024-01-02 00:00:00\n";
/// 3 back, as it was.
const THIRD: &str = "id,status,amount,updated_at\n\
    1,shipped,10,2024-01-02 00:00:00\n\
    2,placed,20,2024-01-01 00:00:00\n\
    3,placed,30,2024-01-01 00:00:00\n\
    4,placed,40,2024-01-02 00:00:00\n";

/// orders_snapshot (timestamp strategy, hard_deletes: invalidate) after the second seed: 1
/// updated, 3 ended at the run's time, 4 added.
const SNAPSHOT_AFTER_SECOND: [&str; 5] = [
    "1 placed 2024-01-01 → 2024-01-02",
    "1 shipped 2024-01-02 → current",
    "2 placed 2024-01-01 → current",
    "3 placed 2024-01-01 → run 1",
    "4 placed 2024-01-02 → current",
];

/// A snapshot's versions, oldest first by key: id, status, valid from, valid to (`current` when
/// NULL), and the deleted flag when it has one. Times of a run (the check strategy's, a
/// deletion's) read `run N`, N counted from the earliest such time in the table.
fn versions(project: &TestProject, snapshot: &str) -> Vec<String> {
    let deleted = match snapshot {
        "orders_status" => "dbt_is_deleted",
        _ => "''",
    };
    let rows = project.query(
        snapshot,
        &format!(
            "select cast(id as varchar) as k, status, cast(dbt_valid_from as varchar) as valid_from, \
             coalesce(cast(dbt_valid_to as varchar), 'current') as valid_to, {deleted} as deleted \
             from t order by id, dbt_valid_from, dbt_valid_to nulls last"
        ),
    );
    // The seed's times are of 2024; a run's are today's.
    let mut run_times: Vec<&str> = rows
        .iter()
        .flat_map(|row| [row[2].as_str(), row[3].as_str()])
        .filter(|time| *time > "2025" && *time != "current")
        .collect();
    run_times.sort();
    run_times.dedup();
    let label: BTreeMap<&str, String> = run_times
        .iter()
        .enumerate()
        .map(|(i, time)| (*time, format!("run {}", i + 1)))
        .collect();
    let time = |value: &str| {
        label
            .get(value)
            .cloned()
            .unwrap_or_else(|| value.trim_end_matches(" 00:00:00").replace("T00:00:00", ""))
    };
    rows.iter()
        .map(|row| {
            let line = format!(
                "{} {} {} → {}",
                row[0],
                row[1],
                time(&row[2]),
                time(&row[3])
            );
            match row[4].as_str() {
                "" => line,
                flag => format!("{line} deleted={flag}"),
            }
        })
        .collect()
}

/// Each version's id is its own.
fn assert_ids_unique(project: &TestProject, snapshot: &str) {
    let counts = project.query(
        snapshot,
        "select count(*), count(distinct dbt_scd_id) from t",
    );
    assert_eq!(counts[0][0], counts[0][1], "{snapshot}: {counts:?}");
}

#[test]
fn snapshots_record_changes_deletions_and_returns_as_dbt_duckdb_does() {
    let project = TestProject::fixture("dbt_snapshots");
    project.write("seeds/raw_orders.csv", FIRST);
    let check = project.dp(&["check"]);
    assert!(check.status.success(), "{}", both(&check));
    // Each snapshot's compiled SQL under its own name, two of them from one file.
    project.dp_ok(&["compile"]);
    for (snapshot, reads) in [
        ("orders_snapshot", "select * from \"raw_orders\""),
        ("orders_status", "select id, status from \"raw_orders\""),
        ("orders_history", "select * from \"raw_orders\""),
    ] {
        let compiled = std::fs::read_to_string(
            project
                .root
                .join(format!("target/compiled/snapshots/{snapshot}.sql")),
        )
        .unwrap();
        assert!(compiled.contains(reads), "{snapshot}: {compiled}");
        assert!(
            compiled.contains("as \"dbt_valid_to\""),
            "{snapshot}: {compiled}"
        );
    }
    // `dp build` runs the snapshots after the seed they read, and the model reading one after it.
    let built = project.dp_ok(&["build"]);
    let order: Vec<&str> = ["raw_orders", "orders_snapshot", "current_orders"]
        .into_iter()
        .map(|name| {
            built
                .lines()
                .find(|line| line.contains(&format!(" {name} ")))
                .unwrap_or_else(|| panic!("{name} not built:\n{built}"))
        })
        .collect();
    let position = |line: &str| built.find(line).unwrap();
    assert!(position(order[0]) < position(order[1]) && position(order[1]) < position(order[2]));
    assert_eq!(
        versions(&project, "orders_snapshot"),
        [
            "1 placed 2024-01-01 → current",
            "2 placed 2024-01-01 → current",
            "3 placed 2024-01-01 → current"
        ]
    );
    assert_eq!(
        versions(&project, "orders_status"),
        [
            "1 placed run 1 → current deleted=False",
            "2 placed run 1 → current deleted=False",
            "3 placed run 1 → current deleted=False"
        ]
    );

    // 1 updated, 3 deleted, 4 new: `dp snapshot` runs the snapshots alone.
    project.write("seeds/raw_orders.csv", SECOND);
    project.dp_ok(&["seed"]);
    let output = project.dp_ok(&["snapshot"]);
    assert!(!output.contains("current_orders"), "{output}");
    assert_eq!(project.version("current_orders"), Some(0));
    assert_eq!(versions(&project, "orders_snapshot"), SNAPSHOT_AFTER_SECOND);
    // check strategy on status, hard_deletes: new_record.
    assert_eq!(
        versions(&project, "orders_status"),
        [
            "1 placed run 1 → run 2 deleted=False",
            "1 shipped run 2 → current deleted=False",
            "2 placed run 1 → current deleted=False",
            "3 placed run 1 → run 2 deleted=False",
            "3 placed run 2 → current deleted=True",
            "4 placed run 2 → current deleted=False"
        ]
    );
    // The YAML snapshot, timestamp strategy, hard deletes ignored: 3 stays current.
    let history = [
        "1 placed 2024-01-01 → 2024-01-02",
        "1 shipped 2024-01-02 → current",
        "2 placed 2024-01-01 → current",
        "3 placed 2024-01-01 → current",
        "4 placed 2024-01-02 → current",
    ];
    assert_eq!(versions(&project, "orders_history"), history);
    // One merge commit each.
    for snapshot in ["orders_snapshot", "orders_status", "orders_history"] {
        assert_eq!(project.version(snapshot), Some(1), "{snapshot}");
    }

    // 3 back as it was.
    project.write("seeds/raw_orders.csv", THIRD);
    project.dp_ok(&["build"]);
    assert_eq!(
        versions(&project, "orders_snapshot"),
        [
            "1 placed 2024-01-01 → 2024-01-02",
            "1 shipped 2024-01-02 → current",
            "2 placed 2024-01-01 → current",
            "3 placed 2024-01-01 → run 1",
            "3 placed 2024-01-01 → current",
            "4 placed 2024-01-02 → current"
        ]
    );
    assert_eq!(
        versions(&project, "orders_status"),
        [
            "1 placed run 1 → run 2 deleted=False",
            "1 shipped run 2 → current deleted=False",
            "2 placed run 1 → current deleted=False",
            "3 placed run 1 → run 2 deleted=False",
            "3 placed run 2 → run 3 deleted=True",
            "3 placed run 3 → current deleted=False",
            "4 placed run 2 → current deleted=False"
        ]
    );
    // Nothing changed in what orders_history sees: no commit.
    assert_eq!(versions(&project, "orders_history"), history);
    assert_eq!(project.version("orders_history"), Some(1));
    for snapshot in ["orders_snapshot", "orders_status", "orders_history"] {
        assert_ids_unique(&project, snapshot);
    }
    assert_eq!(
        project.query("current_orders", "select count(*) from t"),
        [["4"]]
    );
    // The docs know them as snapshots.
    project.dp_ok(&["docs", "generate"]);
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.root.join("target/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["nodes"]["snapshot.shop.orders_history"]["resource_type"],
        "snapshot"
    );
}

#[test]
fn a_snapshot_whose_test_fails_commits_nothing() {
    let project = TestProject::fixture("dbt_snapshots");
    project.write("seeds/raw_orders.csv", FIRST);
    project.dp_ok(&["build"]);
    // A row without an id: orders_history's not_null test on id fails on the staged versions.
    project.write(
        "seeds/raw_orders.csv",
        &format!("{SECOND},cancelled,50,2024-01-03 00:00:00\n"),
    );
    project.dp_ok(&["seed"]);
    let output = project.dp(&["snapshot", "--select", "orders_history"]);
    assert_eq!(output.status.code(), Some(1), "{}", both(&output));
    assert!(
        both(&output).contains("not_null_orders_history_id"),
        "{}",
        both(&output)
    );
    assert_eq!(project.version("orders_history"), Some(0));
    assert_eq!(
        versions(&project, "orders_history"),
        [
            "1 placed 2024-01-01 → current",
            "2 placed 2024-01-01 → current",
            "3 placed 2024-01-01 → current"
        ]
    );
}

#[test]
fn two_snapshot_runs_at_once_never_record_a_change_twice() {
    let project = TestProject::fixture("dbt_snapshots");
    project.write("seeds/raw_orders.csv", FIRST);
    project.dp_ok(&["build"]);
    project.write("seeds/raw_orders.csv", SECOND);
    project.dp_ok(&["seed"]);
    let start = || {
        project
            .command(&["snapshot", "--select", "orders_snapshot"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (start(), start());
    let outputs = [
        first.wait_with_output().unwrap(),
        second.wait_with_output().unwrap(),
    ];
    assert!(
        outputs.iter().any(|o| o.status.success()),
        "{}\n{}",
        both(&outputs[0]),
        both(&outputs[1])
    );
    // The other either saw the first's commit (nothing left to record) or lost the race.
    for output in outputs.iter().filter(|o| !o.status.success()) {
        assert!(both(output).contains("dp::conflict"), "{}", both(output));
    }
    assert_eq!(versions(&project, "orders_snapshot"), SNAPSHOT_AFTER_SECOND);
    assert_eq!(project.version("orders_snapshot"), Some(1));
}

#[test]
fn a_snapshot_without_its_strategy_or_its_end_is_located() {
    let project = TestProject::fixture("dbt_snapshots");
    project.write(
        "snapshots/broken.sql",
        "{% snapshot no_strategy %}\n{{ config(updated_at='updated_at') }}\nselect * from {{ ref('raw_orders') }}\n{% endsnapshot %}\n",
    );
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("a snapshot needs a strategy"), "{text}");
    assert!(text.contains("snapshots/broken.sql:2"), "{text}");

    project.write(
        "snapshots/broken.sql",
        "{% snapshot unclosed %}\nselect 1 as id\n",
    );
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert!(text.contains("dp::snapshot_block"), "{text}");
    assert!(
        text.contains("snapshot `unclosed` has no {% endsnapshot %}"),
        "{text}"
    );
    assert!(text.contains("snapshots/broken.sql:1"), "{text}");
}
