//! Issue 15: nothing a second build, a crash or a mistake can do corrupts a table. Real `dp`
//! processes race each other on one table; every table they leave is read back by deltalake.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{TestProject, both, parquet_files};

/// Start `dp` with `args` in the background, its output kept for later.
fn spawn(project: &TestProject, args: &[&str]) -> Child {
    project
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait for a background `dp`; its exit code and output.
fn finish(child: Child) -> (Option<i32>, String) {
    let output = child.wait_with_output().unwrap();
    (output.status.code(), both(&output))
}

/// Wait until `count` data files exist under `folder`: the build writing there has staged its
/// rows and is running its (slow) tests.
fn wait_for_files(folder: &Path, count: usize) {
    let started = Instant::now();
    while parquet_files(folder).len() < count {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no file was staged under {}",
            folder.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Build `daily` for 2024-01-15 (version 0, build `zero`), then start a build of the same date
/// (build `one`) and return once it has staged its file and runs its slow test.
fn build_then_start_another(project: &TestProject) -> Child {
    project.dp_ok(&["build", "--vars", "{date: 2024-01-15, build: zero}"]);
    let running = spawn(
        project,
        &["build", "--vars", "{date: 2024-01-15, build: one}"],
    );
    // Version 0's file and the running build's staged one.
    wait_for_files(&project.table_dir("daily"), 2);
    running
}

/// Wait for two builds raced on the same data, named `one` and `two` by their `build` var:
/// exactly one committed, the other failed with `dp::conflict`. Returns the winner's name.
fn one_winner(first: Child, second: Child) -> &'static str {
    let (first_code, first_text) = finish(first);
    let (second_code, second_text) = finish(second);
    let (winner, loser_code, loser_text) = match (first_code, second_code) {
        (Some(0), _) => ("one", second_code, second_text),
        (_, Some(0)) => ("two", first_code, first_text),
        _ => panic!("neither build committed:\n{first_text}\n{second_text}"),
    };
    assert_eq!(loser_code, Some(1), "{loser_text}");
    assert!(loser_text.contains("dp::conflict"), "{loser_text}");
    winner
}

/// Every file each version of the table names exists (a reader of any version succeeds).
fn every_version_reads(project: &TestProject, model: &str) {
    let latest = project.version(model).unwrap();
    for version in 0..=latest {
        let rows = project.query_version(model, version, "select count(*) from t");
        assert_eq!(rows.len(), 1, "version {version} of {model}");
    }
}

#[test]
fn two_dates_built_at_once_both_publish_and_the_table_stays_readable() {
    let project = TestProject::fixture("race");
    let first = spawn(&project, &["build", "--vars", "date=2024-01-15"]);
    wait_for_files(&project.table_dir("daily").join("date=2024-01-15"), 1);
    // While the first build runs its slow test, a second build of another date runs whole.
    let second = project.dp(&["build", "--vars", "date=2024-01-16"]);
    assert!(second.status.success(), "{}", both(&second));
    let (code, text) = finish(first);
    assert_eq!(code, Some(0), "{text}");

    let rows = project.query(
        "daily",
        "select date, count(*) from t group by date order by date",
    );
    assert_eq!(
        rows,
        [["2024-01-15", "4"], ["2024-01-16", "4"]],
        "both dates' rows are published"
    );
    // Two commits: the table was created by whichever committed first, the other on top.
    assert_eq!(project.version("daily"), Some(1));
    every_version_reads(&project, "daily");
}

#[test]
fn two_builds_of_one_partition_at_once_leave_one_commit_and_no_duplicates() {
    let project = TestProject::fixture("race");
    // Both builds replace the same date of the table.
    let first = build_then_start_another(&project);
    let second = spawn(
        &project,
        &["build", "--vars", "{date: 2024-01-15, build: two}"],
    );
    // The second build started while the first was testing: whichever commits second lost
    // (usually the second, but the two share the machine's cores).
    let winner = one_winner(first, second);

    assert_eq!(
        project.version("daily"),
        Some(1),
        "one commit on top of version 0"
    );
    let rows = project.query("daily", "select build, count(*) from t group by build");
    assert_eq!(rows, [[winner, "4"]], "one build's rows, once");
    every_version_reads(&project, "daily");
    // The loser deleted its own staged files: only the two committed builds' files remain.
    assert_eq!(parquet_files(&project.table_dir("daily")).len(), 2);
}

#[test]
fn a_forced_vacuum_during_a_build_fails_the_build_and_publishes_nothing() {
    let project = TestProject::fixture("race");
    let first = build_then_start_another(&project);
    // The operator overrides the retention: the running build's staged file goes.
    project.dp_ok(&["vacuum", "--retain", "0s", "--force"]);
    let (code, text) = finish(first);
    assert_eq!(code, Some(1), "{text}");
    // Whether its test was still reading the file or it had passed: the build stops (its
    // commit would land after the vacuum's barrier commit, which it did not read).
    assert!(
        text.contains("dp::staged_file_missing")
            || text.contains("not found")
            || text.contains("dp::conflict"),
        "{text}"
    );
    assert_eq!(
        project.version("daily"),
        Some(1),
        "no build was committed: version 1 is the vacuum's barrier"
    );
    assert_eq!(
        project.query("daily", "select build, count(*) from t group by build"),
        [["zero", "4"]]
    );
    every_version_reads(&project, "daily");
}

#[test]
fn relationships_tests_have_a_clear_meaning_and_never_wedge_a_model() {
    let project = TestProject::fixture("relationships");
    // A relationship to an unbuilt model outside the run: the test errors, saying why.
    let output = project.dp(&["build", "--select", "users"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("relationships_users_cohort") && text.contains("has never been built"),
        "{text}"
    );
    assert_eq!(project.version("users"), None);

    // Everything at once, on the fresh warehouse: `users` waits for `cohorts`, and its
    // relationship to itself is checked on its own new rows.
    project.dp_ok(&["build"]);
    assert_eq!(project.model_status("users"), "success");
    let users = project.query("users", "select count(*), count(referred_by) from t");
    assert_eq!(users, [["2000", "1999"]]);

    // A day without data: `daily` has nothing to build, which does not spread to the model
    // whose test only reads it; that test reads the published table.
    let output = project.dp(&["build", "--vars", "date=2024-02-01"]);
    assert!(output.status.success(), "{}", both(&output));
    assert_eq!(project.model_status("daily"), "no_data");
    assert_eq!(project.model_status("daily_notes"), "success");
}

#[test]
fn relationship_cycles_are_found_by_dp_check_and_fail_their_models_alone() {
    let project = TestProject::fixture("relationships");
    // `cohorts` relates to `users`, which relates to `cohorts`; `daily_notes` relates to a
    // model that reads it; and `daily` relates to an ephemeral model, which is no problem: the
    // test runs on the view's query (issue 29).
    project.write(
        "models/notes_digest.sql",
        "select date from {{ ref('daily_notes') }}",
    );
    project.write(
        "models/eph.sql",
        "{{ config(materialized='ephemeral') }}\nselect 1 as id",
    );
    let schema = std::fs::read_to_string(project.root.join("models/schema.yml")).unwrap();
    project.write(
        "models/schema.yml",
        &schema
            .replace(
                "relationships: {to: ref('daily'), field: date}",
                "relationships: {to: ref('notes_digest'), field: date}",
            )
            .replace(
                "  - name: cohorts\n",
                "  - name: cohorts\n    columns:\n      - name: cohort\n        data_tests:\n          - relationships: {to: ref('users'), field: cohort}\n",
            )
            .replace(
                "  - name: daily\n",
                "  - name: daily\n    columns:\n      - name: events\n        data_tests:\n          - relationships: {to: ref('eph'), field: id}\n",
            ),
    );
    let output = project.dp(&["check", "--format", "json"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let problems: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let codes: Vec<&str> = problems
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["code"].as_str())
        .filter(|c| c.starts_with("dp::relationship"))
        .collect();
    assert_eq!(
        codes,
        [
            "dp::relationship_cycle",
            "dp::relationship_cycle",
            "dp::relationship_cycle"
        ],
        "{text}"
    );
    assert!(text.contains("cohorts -> users -> cohorts"), "{text}");
    assert!(
        text.contains("daily_notes -> notes_digest -> daily_notes"),
        "{text}"
    );
    // The models of the cycles fail (and what reads them is skipped); the others build.
    let build = project.dp(&["build", "--fail-fast"]);
    assert_eq!(build.status.code(), Some(2), "{}", both(&build));
    assert!(!project.root.join("warehouse").exists());
    let build = project.dp(&["build"]);
    assert_eq!(build.status.code(), Some(1), "{}", both(&build));
    for model in ["cohorts", "users", "daily_notes", "notes_digest"] {
        assert!(!project.table_dir(model).exists(), "{model} was built");
    }
    assert!(project.table_dir("daily").exists(), "{}", both(&build));
}

/// No backtrace, no panic message: a diagnostic and exit code 2.
fn assert_clean_refusal(output: &std::process::Output, code: &str) {
    let text = both(output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains(code), "{text}");
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
}

#[test]
fn settings_that_panicked_are_diagnostics() {
    let project = TestProject::example();
    // A natural "never" for the old cleanup age: accepted, ignored, warned about.
    project.write(
        "dp_project.yml",
        "name: shop_events\ntargets:\n  dev:\n    orphan_min_age_secs: 18446744073709551615\n",
    );
    let output = project.dp(&["build", "--select", "stg_events"]);
    assert!(output.status.success(), "{}", both(&output));
    assert!(both(&output).contains("dp::deprecated"));

    // A warehouse URL that cannot hold tables.
    project.write(
        "dp_project.yml",
        "name: shop_events\ntargets:\n  dev:\n    warehouse: \"x:y://z\"\n",
    );
    for command in ["build", "test", "vacuum"] {
        assert_clean_refusal(&project.dp(&[command]), "dp::bad_location");
    }
    // Nor a retention that is not a duration.
    project.write(
        "dp_project.yml",
        "name: shop_events\ntargets:\n  dev:\n    vacuum_retention: forever\n",
    );
    assert_clean_refusal(&project.dp(&["vacuum"]), "dp::bad_duration");
}

#[test]
fn a_listing_into_a_closed_pipe_ends_quietly() {
    let project = TestProject::example();
    for i in 0..4000 {
        project.write(
            &format!("models/generated/a_rather_long_generated_model_name_{i:05}.sql"),
            "select 1 as one",
        );
    }
    let mut child = project
        .command(&["ls"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    // `dp ls | head -c 16`: the reader goes away with most of the listing unread.
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_first_build_without_rows_creates_the_table_its_readers_need() {
    let project = TestProject::example();
    // No event is that large: the partitioned model's first build has no rows to write.
    project.write(
        "models/marts/whale_purchases.sql",
        "{{ config(materialized='partitioned', partition_by='date') }}\n\
         select date, event_id, revenue from {{ ref('stg_events') }} where revenue > 1000000",
    );
    project.write(
        "models/marts/whale_count.sql",
        "select count(*) as whales from {{ ref('whale_purchases') }}",
    );
    let output = project.dp(&["build", "--select", "+whale_count"]);
    let text = both(&output);
    assert!(output.status.success(), "{text}");
    assert_eq!(project.version("whale_purchases"), Some(0), "{text}");
    assert_eq!(
        project.query("whale_purchases", "select count(*) from t"),
        [["0"]]
    );
    // Its downstream model read the empty table instead of failing "never been built".
    assert_eq!(project.model_status("whale_count"), "success");
    assert_eq!(
        project.query("whale_count", "select whales from t"),
        [["0"]]
    );
}

#[test]
fn models_whose_names_differ_only_in_case_are_refused() {
    let project = TestProject::example();
    project.write("models/Daily_Summary.sql", "select 1 as one");
    let output = project.dp(&["check"]);
    assert_clean_refusal_or_problem(&output, "dp::model_name_case");
}

#[test]
fn a_template_that_never_ends_is_stopped_with_a_diagnostic() {
    let project = TestProject::example();
    project.write(
        "models/forever.sql",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}select 1 as one",
    );
    let started = Instant::now();
    let output = project.dp(&["ls"]);
    assert_clean_refusal(&output, "dp::template_limit");
    assert!(both(&output).contains("models/forever.sql"));
    assert!(started.elapsed() < Duration::from_secs(60));
}

/// A problem `dp check` reports: exit code 1, the code, no panic.
fn assert_clean_refusal_or_problem(output: &std::process::Output, code: &str) {
    let text = both(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains(code), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn dp_check_exits_2_when_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dp"))
        .args(["check", "--project-dir"])
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_clean_refusal(&output, "dp::project_not_found");
}

#[test]
fn dp_check_reports_every_stage_s_problems_at_once_and_checks_unit_tests() {
    let project = TestProject::example();
    // A ref that resolves nowhere in one model, an unknown column in another.
    project.write(
        "models/marts/broken_ref.sql",
        "select * from {{ ref('nope') }}",
    );
    project.write(
        "models/marts/broken_column.sql",
        "select revenu from {{ ref('stg_events') }}",
    );
    let schema = std::fs::read_to_string(project.root.join("models/marts/schema.yml")).unwrap();
    project.write(
        "models/marts/schema.yml",
        &schema
            // An expected column the model does not output, an input column its input lacks.
            .replace("total_events: 3}", "total_events: 3, revenue_eur: 1}")
            .replace(
                "event_id,user_id,revenue,cohort,date",
                "event_id,user_id,revenue,cohort,date,color",
            )
            .replace(
                "e1,1,10.00,organic,2024-01-15",
                "e1,1,10.00,organic,2024-01-15,red",
            )
            .replace(
                "e2,1,5.50,organic,2024-01-15",
                "e2,1,5.50,organic,2024-01-15,red",
            )
            .replace(
                "e3,2,0.00,organic,2024-01-15",
                "e3,2,0.00,organic,2024-01-15,red",
            )
            .replace(
                "e4,3,7.25,paid_search,2024-01-15",
                "e4,3,7.25,paid_search,2024-01-15,red",
            )
            .replace(
                "e5,4,99.00,paid_search,2024-01-16",
                "e5,4,99.00,paid_search,2024-01-16,red",
            ),
    );
    // A declared type DataFusion cannot read.
    let schema = std::fs::read_to_string(project.root.join("models/marts/schema.yml")).unwrap();
    project.write(
        "models/marts/schema.yml",
        &schema.replace(
            "all dates.\n    columns:\n      - name: cohort\n",
            "all dates.\n    columns:\n      - name: cohort\n        data_type: \"decimal(99999999999999999999,2)\"\n",
        ),
    );
    let output = project.dp(&["check", "--format", "json"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let problems: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let found: Vec<(String, String, u64)> = problems
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["code"].as_str().unwrap_or_default().to_string(),
                p["file"].as_str().unwrap_or_default().to_string(),
                p["line"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let has = |code: &str, file: &str| found.iter().any(|(c, f, _)| c == code && f == file);
    assert!(
        has("dp::unknown_ref", "models/marts/broken_ref.sql"),
        "{found:?}"
    );
    assert!(
        has("dp::sql", "models/marts/broken_column.sql"),
        "{found:?}"
    );
    assert!(
        has("dp::unknown_type", "models/marts/schema.yml"),
        "{found:?}"
    );
    let unit: Vec<&(String, String, u64)> = found
        .iter()
        .filter(|(c, f, _)| c == "dp::unit_test" && f == "models/marts/schema.yml")
        .collect();
    assert_eq!(unit.len(), 2, "{text}");
    assert!(text.contains("has no column `color`"), "{text}");
    assert!(
        text.contains("the output of `daily_summary` has no column `revenue_eur`"),
        "{text}"
    );
    // Each at its own line of the YAML.
    assert!(unit.iter().all(|(_, _, line)| *line > 40), "{unit:?}");
}

#[test]
fn a_failing_unit_test_points_at_its_definition() {
    let project = TestProject::example();
    let schema = std::fs::read_to_string(project.root.join("models/marts/schema.yml")).unwrap();
    project.write(
        "models/marts/schema.yml",
        &schema.replace(
            "revenue: 15.50, user_count: 2",
            "revenue: 15.51, user_count: 2",
        ),
    );
    let output = project.dp(&[
        "build",
        "--select",
        "+daily_summary",
        "--vars",
        "date=2024-01-15",
    ]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("defined at models/marts/schema.yml:40"),
        "{text}"
    );
}

#[test]
fn two_merges_into_one_new_date_at_once_never_both_commit() {
    let project = TestProject::fixture("race_merge");
    // The table exists (2024-01-15): later builds are incremental merges.
    project.dp_ok(&["build", "--vars", "{date: 2024-01-15, build: zero}"]);
    let table = project.table_dir("daily_merge");
    let first = spawn(
        &project,
        &["build", "--vars", "{date: 2024-01-16, build: one}"],
    );
    // Its rows for the new date are staged, and its slow test runs: no published file holds
    // 2024-01-16, so neither merge has a file to rewrite.
    wait_for_files(&table.join("date=2024-01-16"), 1);
    let second = spawn(
        &project,
        &["build", "--vars", "{date: 2024-01-16, build: two}"],
    );
    let winner = one_winner(first, second);
    // One row per key: the two merges' rows were never both published.
    let rows = project.query(
        "daily_merge",
        "select build, count(*), count(distinct cohort) from t where date = '2024-01-16' group by build",
    );
    assert_eq!(rows, [[winner, "4", "4"]]);
    assert_eq!(project.version("daily_merge"), Some(1));
    every_version_reads(&project, "daily_merge");

    // Run again, the loser's merge replaces the winner's rows of that date, in place.
    project.dp_ok(&["build", "--vars", "{date: 2024-01-16, build: three}"]);
    let rows = project.query(
        "daily_merge",
        "select date, build, count(*) from t group by date, build order by date",
    );
    assert_eq!(
        rows,
        [["2024-01-15", "zero", "4"], ["2024-01-16", "three", "4"]]
    );
}

/// Write `count` files named as dp's writer names data files into a partition folder of
/// `model`'s table that no version references: a forced vacuum deletes them all, which keeps
/// it busy between planning and its last delete.
fn plant_unreferenced_files(project: &TestProject, model: &str, count: usize) {
    let folder = project.table_dir(model).join("part=999999");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..count {
        let name = format!("part-{i:05}-{}-c000.snappy.parquet", uuid_like(i));
        std::fs::write(folder.join(name), b"not referenced").unwrap();
    }
}

/// A UUID-shaped name part, distinct for each `i`.
fn uuid_like(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

#[test]
fn a_forced_vacuum_racing_builds_never_leaves_a_version_pointing_at_a_deleted_file() {
    let project = TestProject::fixture("vacuum_race");
    project.dp_ok(&["build"]);
    assert_eq!(project.version("wide"), Some(0));
    let (mut raced, mut published) = (0, 0);
    for round in 0..16 {
        plant_unreferenced_files(&project, "wide", 3000);
        let part = round % 300;
        let folder = project.table_dir("wide").join(format!("part={part}"));
        let before = parquet_files(&folder).len();
        // Even rounds race: the build's test outlasts the vacuum's planning many times over, so
        // the vacuum's barrier lands while the build holds a staged file. Odd rounds give the
        // build a test that takes no time: it commits while the vacuum plans or deletes.
        let spin = if round % 2 == 0 { 100_000_000 } else { 0 };
        let build = spawn(
            &project,
            &[
                "build",
                "--vars",
                &format!("{{part: {part}, build: r{round}, spin: {spin}}}"),
            ],
        );
        wait_for_files(&folder, before + 1);
        let vacuum = project.dp(&["vacuum", "--retain", "0s", "--force"]);
        let (code, text) = finish(build);
        assert!(vacuum.status.success(), "{}", both(&vacuum));
        match code {
            Some(0) => published += 1,
            // It committed after the vacuum started (it lost to its barrier), or the vacuum
            // deleted its file first: it must not publish.
            Some(1) => {
                assert!(
                    ["dp::conflict", "dp::staged_file_missing", "not found"]
                        .iter()
                        .any(|lost| text.contains(lost)),
                    "{text}"
                );
                raced += 1;
            }
            other => panic!("the build ended with {other:?}: {text}"),
        }
        let missing = project.missing_files("wide");
        assert!(missing.is_empty(), "round {round}: {missing:?}");
        if raced >= 2 && published >= 2 {
            break;
        }
    }
    assert!(
        raced >= 2,
        "the builds and vacuums never raced ({published} published)"
    );
    assert!(
        published >= 2,
        "no build published beside a vacuum ({raced} lost)"
    );
    // Every version reads, and the table is whole: each partition holds its 10 rows once.
    let rows = project.query("wide", "select count(*), count(distinct n) from t");
    assert_eq!(rows, [["3000", "3000"]]);
    project.dp_ok(&["test"]);
}

#[test]
fn two_incremental_appends_that_read_their_table_never_both_publish() {
    let project = TestProject::fixture("race_append");
    project.dp_ok(&["build", "--vars", "{until: 2024-01-14, build: zero}"]);
    let published = project.query("events_appended", "select count(*) from t");
    let table = project.table_dir("events_appended");
    // Both read the table at version 0 (`max(date)` is 2024-01-14) and append the same days.
    let first = spawn(
        &project,
        &["build", "--vars", "{until: 2024-01-16, build: one}"],
    );
    wait_for_files(&table, 2);
    let second = spawn(
        &project,
        &["build", "--vars", "{until: 2024-01-16, build: two}"],
    );
    let winner = one_winner(first, second);
    assert_eq!(project.version("events_appended"), Some(1), "one append");
    let rows = project.query(
        "events_appended",
        "select build, count(*), count(distinct event_key) from t group by build order by build",
    );
    let appended: u64 = rows[0][1].parse::<u64>().unwrap();
    assert!(appended > 0);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0][0], winner);
    assert_eq!(rows[0][1], rows[0][2], "each event once");
    assert_eq!(
        rows[1][..2],
        [String::from("zero"), published[0][0].clone()]
    );
    // The loser run again appends nothing new: the days are there.
    project.dp_ok(&["build", "--vars", "{until: 2024-01-16, build: three}"]);
    let rows = project.query(
        "events_appended",
        "select count(*), count(distinct event_key) from t",
    );
    assert_eq!(rows[0][0], rows[0][1], "no event twice");
    project.dp_ok(&["test"]);
}

#[test]
fn partition_values_the_writer_encodes_are_tested_diffed_published_and_replaced() {
    let project = TestProject::fixture("partition_values");
    project.dp_ok(&["build"]);
    let cities = "select city, n, build from t order by n";
    let first = project.query("cities", cities);
    assert_eq!(first.len(), 12);
    assert_eq!(first[0], ["São Paulo", "1", "one"]);
    assert_eq!(first[9], ["日本", "10", "one"]);
    // dp reads them back too: the model reading `cities` copied every row.
    assert_eq!(project.query("city_copy", cities), first);
    let moments = project.query(
        "moments",
        "select cast(at as varchar), cast(day as varchar), n from t order by n",
    );
    assert_eq!(
        moments,
        [
            ["2024-01-15T10:00:00", "2024-01-15", "1"],
            ["2024-01-15T10:00:00.500", "2024-01-15", "2"],
            ["2024-02-29T23:59:59", "2024-02-29", "3"],
        ]
    );

    // A rebuild replaces every partition, its tests read its staged rows, its diff the
    // published ones it replaces.
    project.dp_ok(&["build", "--vars", "build=two"]);
    let second = project.query("cities", cities);
    assert_eq!(second.len(), 12);
    assert!(second.iter().all(|row| row[2] == "two"), "{second:?}");
    assert_eq!(project.version("cities"), Some(1));
    assert!(project.missing_files("cities").is_empty());
    let results = project.run_results();
    let built = results["results"].as_array().unwrap();
    let cities = built.iter().find(|r| r["model"] == "cities").unwrap();
    assert_eq!(cities["status"], "success", "{cities}");
    let tests = cities["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 3, "{cities}");
    assert!(tests.iter().all(|t| t["status"] == "pass"), "{cities}");
    assert!(
        cities["diff"].is_object(),
        "the diff was computed: {cities}"
    );
    project.dp_ok(&["test"]);
}

#[test]
fn run_query_runs_only_queries_that_read_and_sql_everywhere_only_reads() {
    let project = TestProject::example();
    let escaped = project.root.join("escaped.csv");
    let statements = [
        format!("copy (select 1 as x) to '{}'", escaped.display()),
        "create external table leak stored as csv location '/etc/hostname'".to_string(),
        "select 1; select 2".to_string(),
    ];
    for statement in &statements {
        // Behind `execute`, as dbt projects write it: only a build runs it.
        project.write(
            "models/sneaky.sql",
            &format!(
                "{{% if execute %}}{{% set r = run_query(\"{statement}\") %}}{{% endif %}}\nselect 1 as x"
            ),
        );
        let output = project.dp(&["build", "--select", "sneaky"]);
        let text = both(&output);
        assert_eq!(output.status.code(), Some(1), "{statement}: {text}");
        assert!(text.contains("run_query() runs one query"), "{text}");
        assert!(text.contains("models/sneaky.sql:1:"), "at the call: {text}");
        assert!(!escaped.exists(), "{statement} wrote a file");
        assert_eq!(project.version("sneaky"), None, "nothing was published");
    }
    // Called while dp plans, the call is refused by `dp check`, at its line.
    project.write(
        "models/sneaky.sql",
        &format!(
            "{{% set r = run_query(\"{}\") %}}\nselect 1 as x",
            statements[0]
        ),
    );
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("models/sneaky.sql:1:12"), "{text}");
    assert!(text.contains("run_query() runs one query"), "{text}");
    assert!(!escaped.exists());
    std::fs::remove_file(project.root.join("models/sneaky.sql")).unwrap();

    // A reading query still runs, and sees the model's relations.
    project.write(
        "models/counted.sql",
        "-- depends_on: {{ ref('stg_events') }}\n\
         {% if execute %}{% set r = run_query(\"select count(*) as n from \" ~ ref('stg_events')) %}\
         {% set n = r.columns[0].values()[0] %}{% else %}{% set n = 0 %}{% endif %}\n\
         select {{ n }} as n",
    );
    project.dp_ok(&["build", "--select", "+counted", "--vars", "date=2024-01-15"]);
    let counted = project.query("counted", "select n from t");
    let events = project.query("stg_events", "select count(*) from t");
    assert_eq!(counted, events);
}
