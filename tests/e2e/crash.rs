//! A build killed with SIGKILL at random instants while it writes and commits leaves every table
//! at a committed version holding wholly the old or wholly the new build's rows; the next build
//! succeeds, and `dp vacuum` removes the files the killed builds left once they are older than
//! the retention (never before: a build still running may own them).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{TestProject, walk};

/// Rows of the raw events: every build of `tagged_events` holds all of them.
const RAW_ROWS: &str = "21000";

/// The build numbers a table's rows carry and its row count (`column` counts rows).
fn builds(project: &TestProject, model: &str, count: &str) -> (Vec<String>, String) {
    let builds = project
        .query(
            model,
            "select distinct cast(build as varchar) from t order by 1",
        )
        .into_iter()
        .map(|row| row[0].clone())
        .collect();
    let total = project.query(model, &format!("select cast({count} as varchar) from t"));
    (builds, total[0][0].clone())
}

/// Names of the files every commit of a table added or removed.
fn logged_files(project: &TestProject, model: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    // Commits only: a killed writer may leave a partial temporary file beside them.
    let commits = walk(&project.table_dir(model).join("_delta_log"))
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.len() == 25
                && name.ends_with(".json")
                && name[..20].bytes().all(|b| b.is_ascii_digit())
        });
    for commit in commits {
        for line in std::fs::read_to_string(commit).unwrap().lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            for kind in ["add", "remove"] {
                if let Some(path) = action[kind]["path"].as_str() {
                    names.insert(path.rsplit('/').next().unwrap().to_string());
                }
            }
        }
    }
    names
}

fn data_files(project: &TestProject, model: &str) -> BTreeSet<String> {
    walk(&project.table_dir(model))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("_delta_log"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_killed_build_leaves_the_old_or_the_new_rows_and_a_vacuum_cleans_up() {
    let project = TestProject::fixture("crash");
    let started = Instant::now();
    project.dp_ok(&["build", "--vars", "build=0"]);
    let full_build = started.elapsed();

    // xorshift, seeded from the clock; the seed is printed to replay a failure.
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("seed {seed}, full build {full_build:?}");
    let mut random = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };

    let mut committed = "0".to_string();
    let mut merged = "0".to_string();
    let mut killed_mid_build = 0;
    let mut orphaned: BTreeSet<String> = BTreeSet::new();
    for build in 1..=24 {
        let delay = full_build.mul_f64((random() % 1000) as f64 / 800.0);
        let build_var = format!("build={build}");
        let mut child = project
            .command(&["build", "--vars", &build_var])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        child.kill().unwrap();
        child.wait().unwrap();
        if !finished {
            killed_mid_build += 1;
        }

        let (tagged, rows) = builds(&project, "tagged_events", "count(*)");
        assert_eq!(
            tagged.len(),
            1,
            "build {build} killed after {delay:?}: mixed builds {tagged:?}"
        );
        assert_eq!(rows, RAW_ROWS, "build {build} killed after {delay:?}");
        let now = tagged[0].clone();
        assert!(
            now == committed || now == build.to_string(),
            "build {build}: found build {now}, expected {committed} or {build}"
        );
        committed = now;

        let (totals, events) = builds(&project, "build_totals", "sum(events)");
        assert_eq!(
            totals.len(),
            1,
            "build {build}: build_totals mixes builds {totals:?}"
        );
        assert_eq!(events, RAW_ROWS);

        // An incremental merge killed at any instant: the old build's rows or the new one's,
        // every row once.
        let (builds_merged, rows) = builds(&project, "merged_events", "count(*)");
        assert_eq!(
            builds_merged.len(),
            1,
            "build {build}: merged_events mixes builds {builds_merged:?}"
        );
        assert_eq!(rows, RAW_ROWS, "build {build} killed after {delay:?}");
        let now = builds_merged[0].clone();
        assert!(
            now == merged || now == build.to_string(),
            "build {build}: merged_events holds build {now}, expected {merged} or {build}"
        );
        merged = now;
        orphaned.extend(orphans(&project));
    }
    assert!(
        killed_mid_build > 0,
        "every build finished before it could be killed"
    );
    println!(
        "{killed_mid_build} builds killed mid-way; {} files orphaned on the way",
        orphaned.len()
    );

    project.dp_ok(&["build", "--vars", "build=99"]);
    assert_eq!(builds(&project, "tagged_events", "count(*)").0, ["99"]);
    // No build can be running now: a zero retention is safe (and needs --force).
    project.dp_ok(&["vacuum", "--retain", "0s", "--force"]);
    assert_eq!(
        orphans(&project),
        BTreeSet::new(),
        "orphaned files survived the vacuum"
    );
    assert_eq!(builds(&project, "tagged_events", "count(*)").0, ["99"]);
    project.dp_ok(&["build", "--vars", "build=100"]);
    assert_eq!(builds(&project, "tagged_events", "count(*)").0, ["100"]);
}

/// Data files on disk that no commit of either table refers to.
fn orphans(project: &TestProject) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for model in ["tagged_events", "build_totals", "merged_events"] {
        let logged = logged_files(project, model);
        found.extend(
            data_files(project, model)
                .into_iter()
                .filter(|f| !logged.contains(f)),
        );
    }
    found
}

#[test]
fn a_vacuum_keeps_files_younger_than_the_retention_and_no_build_deletes_them() {
    let project = TestProject::fixture("crash");
    project.write(
        "dp_project.yml",
        "name: crash\ntargets:\n  test:\n    orphan_min_age_secs: 0\n",
    );
    let output = project.dp(&["build", "--vars", "build=1"]);
    assert!(output.status.success(), "{}", crate::support::both(&output));
    // The old cleanup setting is accepted and ignored, with a warning.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`orphan_min_age_secs` is deprecated and ignored"),
        "{stderr}"
    );
    // A finished file and an unfinished upload (as a build still running, or a killed one, leaves).
    let partition = project.table_dir("tagged_events").join("date=2024-01-15");
    let staged = [
        partition.join("part-00000-11111111-2222-3333-4444-555555555555-c000.snappy.parquet"),
        partition.join("part-00001-11111111-2222-3333-4444-555555555555-c000.snappy.parquet#1"),
    ];
    for file in &staged {
        std::fs::write(file, b"written by a build that has not committed yet").unwrap();
    }
    project.dp_ok(&["build", "--vars", "build=2"]);
    assert!(
        staged.iter().all(|f| f.exists()),
        "a build deleted a file it did not write"
    );

    // The default retention (7 days) keeps them.
    project.dp_ok(&["vacuum"]);
    assert!(
        staged.iter().all(|f| f.exists()),
        "a young file was vacuumed"
    );
    // A retention under the table's minimum is refused unless forced.
    let refused = project.dp(&["vacuum", "--retain", "1h"]);
    let text = crate::support::both(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("dp::vacuum_retention"), "{text}");
    assert!(staged.iter().all(|f| f.exists()));
    // A dry run lists them and deletes nothing.
    let listed = project.dp_ok(&["vacuum", "--retain", "0s", "--force", "--dry-run"]);
    assert!(
        listed.contains("part-00000-11111111-2222-3333-4444-555555555555-c000.snappy.parquet\n"),
        "{listed}"
    );
    assert!(
        listed.contains("part-00001-11111111-2222-3333-4444-555555555555-c000.snappy.parquet#1"),
        "{listed}"
    );
    assert!(staged.iter().all(|f| f.exists()));

    std::thread::sleep(Duration::from_millis(20));
    project.dp_ok(&["vacuum", "--retain", "0s", "--force"]);
    assert!(
        staged.iter().all(|f| !f.exists()),
        "an orphaned file survived"
    );
    assert_eq!(orphans(&project), BTreeSet::new());
    assert_eq!(builds(&project, "tagged_events", "count(*)").0, ["2"]);
}
