//! Issue 19: operating dp every night. Backfills that publish a commit per date and resume from
//! the tables, run records in every commit, history and rollback, `dp retry`, settings from the
//! environment, secrets masked everywhere, JSON logs, `dp init`, hooks.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{TestProject, both, walk};

const BACKFILL: &[&str] = &[
    "backfill",
    "--select",
    "daily",
    "--start",
    "2024-01-01",
    "--end",
    "2024-01-10",
];

/// The dates 2024-01-01 to 2024-01-`last`.
fn dates(last: u32) -> Vec<String> {
    (1..=last).map(|day| format!("2024-01-{day:02}")).collect()
}

/// The commit info of every version of `model`'s table, by version.
fn commit_infos(project: &TestProject, model: &str) -> Vec<serde_json::Value> {
    let log = project.table_dir(model).join("_delta_log");
    let mut infos = Vec::new();
    for path in walk(&log) {
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let info = text
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
            .find_map(|action| action.get("commitInfo").cloned())
            .unwrap_or_else(|| panic!("{} has no commitInfo", path.display()));
        infos.push(info);
    }
    infos
}

/// The rows of `daily` per date, and whether any (date, id) is there twice.
fn daily_rows(project: &TestProject) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let per_date = project.query(
        "daily",
        "select date, count(*) as n, sum(amount) as amount from t group by date order by date",
    );
    let duplicates = project.query(
        "daily",
        "select date, id from t group by date, id having count(*) > 1",
    );
    (per_date, duplicates)
}

#[test]
fn a_backfill_commits_each_date_with_its_run_record_and_does_only_what_is_left() {
    let project = TestProject::fixture("ops");
    let out = project.dp_ok(BACKFILL);
    assert!(
        out.contains("10 dates built, 0 up to date, 0 failed"),
        "{out}"
    );
    assert_eq!(project.version("daily"), Some(9));
    let (per_date, duplicates) = daily_rows(&project);
    let expected: Vec<Vec<String>> = dates(10)
        .into_iter()
        .map(|date| vec![date, "5".into(), "150".into()])
        .collect();
    assert_eq!(per_date, expected);
    assert!(duplicates.is_empty());

    // Each date its own commit, carrying its run record.
    let infos = commit_infos(&project, "daily");
    assert_eq!(infos.len(), 10);
    let run_ids: BTreeSet<&str> = infos
        .iter()
        .map(|info| info["dp"]["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(run_ids.len(), 1, "one backfill, one run id");
    let mut committed_dates = BTreeSet::new();
    for info in &infos {
        let record = &info["dp"];
        let date = record["vars"]["date"].as_str().unwrap().to_string();
        assert_eq!(
            record["partitions"],
            serde_json::json!([format!("date={date}")])
        );
        assert_eq!(record["rows"], 5);
        assert_eq!(record["target"], "dev");
        assert_eq!(record["dp_version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(record["sql_hash"].as_str().unwrap().len(), 64);
        assert_eq!(record["tests"][0]["status"], "pass", "{record}");
        committed_dates.insert(date);
    }
    assert_eq!(committed_dates, dates(10).into_iter().collect());

    // Run again: every date is published from the same SQL and vars; nothing is committed.
    let out = project.dp_ok(BACKFILL);
    assert!(out.contains("0 dates built, 10 up to date"), "{out}");
    assert_eq!(project.version("daily"), Some(9));

    // The SQL changed: every date is rebuilt.
    let model = project.root.join("models/daily.sql");
    let text = std::fs::read_to_string(&model).unwrap();
    project.write(
        "models/daily.sql",
        &text.replace("value * 10", "value * 20"),
    );
    let out = project.dp_ok(BACKFILL);
    assert!(out.contains("10 dates built, 0 up to date"), "{out}");
    assert_eq!(project.version("daily"), Some(19));
    let (per_date, duplicates) = daily_rows(&project);
    assert!(
        per_date.iter().all(|row| row[1] == "5" && row[2] == "300"),
        "{per_date:?}"
    );
    assert_eq!(per_date.len(), 10);
    assert!(duplicates.is_empty());

    // The history, from the log: newest first, with the records.
    let json = project.dp_ok(&["history", "daily", "--format", "json"]);
    let history: serde_json::Value = serde_json::from_str(&json).unwrap();
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 20);
    assert_eq!(history[0]["version"], 19);
    assert_eq!(history[0]["operation"], "WRITE");
    assert_eq!(history[0]["rows_added"], 5);
    assert_ne!(
        history[0]["record"]["sql_hash"], history[10]["record"]["sql_hash"],
        "the SQL changed"
    );
    let table = project.dp_ok(&["history", "daily", "--limit", "3"]);
    assert_eq!(
        table.lines().count(),
        4,
        "a header and 3 versions:\n{table}"
    );
    assert!(
        table.lines().nth(1).unwrap().contains("date=2024-01-"),
        "{table}"
    );
}

#[test]
fn a_backfill_killed_halfway_resumes_and_publishes_each_date_once() {
    let project = TestProject::fixture("ops");
    let mut slow: Vec<&str> = BACKFILL.to_vec();
    slow.extend(["--threads", "1", "--vars", "slow=30000000"]);
    let mut child = project.command(&slow).spawn().unwrap();
    let started = Instant::now();
    while project.version("daily").is_none_or(|v| v < 2) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the backfill never got to its third date"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the backfill ended before it was killed: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = commit_infos(&project, "daily").len();
    assert!(
        (3..10).contains(&done),
        "{done} dates were done when killed"
    );

    let out = project.dp_ok(&slow);
    assert!(
        out.contains(&format!("{} dates built, {done} up to date", 10 - done)),
        "{out}"
    );
    let (per_date, duplicates) = daily_rows(&project);
    assert_eq!(per_date.len(), 10, "{per_date:?}");
    assert!(per_date.iter().all(|row| row[1] == "5"), "{per_date:?}");
    assert!(duplicates.is_empty(), "{duplicates:?}");
    // Each date was committed once, by the killed run or by the one that resumed.
    let infos = commit_infos(&project, "daily");
    assert_eq!(infos.len(), 10);
    let committed: BTreeSet<String> = infos
        .iter()
        .map(|info| info["dp"]["vars"]["date"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(committed, dates(10).into_iter().collect());
}

#[test]
fn two_backfills_of_the_same_dates_at_once_publish_each_date_whole() {
    let project = TestProject::fixture("ops");
    let mut args: Vec<&str> = BACKFILL.to_vec();
    args.extend(["--threads", "2", "--vars", "slow=3000000"]);
    let children: Vec<_> = (0..2)
        .map(|_| {
            project
                .command(&args)
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        let text = both(output);
        // A date the other process published first is skipped or, when both built it at
        // once, lost to Delta's conflict check: never anything else.
        assert!(
            output.status.success() || text.contains("dp::conflict"),
            "{text}"
        );
        assert!(!text.contains("transient"), "{text}");
    }
    let (per_date, duplicates) = daily_rows(&project);
    assert_eq!(per_date.len(), 10, "{per_date:?}");
    assert!(per_date.iter().all(|row| row[1] == "5"), "{per_date:?}");
    assert!(duplicates.is_empty(), "{duplicates:?}");
    // What a conflict left undone, a third run does; then everything is up to date.
    project.dp_ok(&args);
    let out = project.dp_ok(&args);
    assert!(out.contains("0 dates built, 10 up to date"), "{out}");
}

#[test]
fn rollback_restores_a_version_and_refuses_while_downstream_was_built_from_it() {
    let project = TestProject::fixture("ops");
    let backfill = |start: &str, end: &str| {
        project.dp_ok(&[
            "backfill", "--select", "daily", "--start", start, "--end", end,
        ])
    };
    backfill("2024-01-01", "2024-01-02"); // daily v0, v1
    project.dp_ok(&["build", "--select", "weekly", "--vars", "date=2024-01-02"]); // reads daily v1
    backfill("2024-01-03", "2024-01-03"); // daily v2
    let at = |version: u64| {
        project.query_version(
            "daily",
            version,
            "select date, id, amount from t order by date, id",
        )
    };
    let now = || project.query("daily", "select date, id, amount from t order by date, id");

    // A dry run shows what changes and commits nothing.
    let shown = project.dp_ok(&["rollback", "daily", "--to-version", "1", "--dry-run"]);
    assert!(shown.contains("from version 2 to version 1"), "{shown}");
    assert!(shown.contains("date=2024-01-03"), "{shown}");
    assert!(shown.contains("5 rows ->          0 rows"), "{shown}");
    assert_eq!(project.version("daily"), Some(2));

    // weekly read version 1: undoing version 2 leaves it consistent.
    let out = project.dp_ok(&["rollback", "daily", "--to-version", "1"]);
    assert!(out.contains("now version 3"), "{out}");
    assert_eq!(now(), at(1));
    assert_eq!(now().len(), 10);

    // Undoing version 1 would leave weekly built from data that is gone: refused.
    let refused = project.dp(&["rollback", "daily", "--to-version", "0"]);
    assert!(!refused.status.success());
    let text = both(&refused);
    assert!(text.contains("dp::rollback_downstream"), "{text}");
    assert!(text.contains("weekly (read v1)"), "{text}");
    assert!(text.contains("dp build --select daily+"), "{text}");
    assert_eq!(project.version("daily"), Some(3));
    assert_eq!(now(), at(1));

    let out = project.dp_ok(&["rollback", "daily", "--to-version", "0", "--force"]);
    assert!(out.contains("now version 4"), "{out}");
    assert!(
        out.contains("Downstream models to rebuild: weekly"),
        "{out}"
    );
    assert_eq!(now(), at(0));
    assert_eq!(now().len(), 5);
    let history: serde_json::Value =
        serde_json::from_str(&project.dp_ok(&["history", "daily", "--format", "json"])).unwrap();
    assert_eq!(history[0]["operation"], "RESTORE");
    assert_eq!(history[0]["version"], 4);

    // Dates whose files the rollback removed are built again by a backfill; the one still
    // published is not.
    let out = backfill("2024-01-01", "2024-01-03");
    assert!(out.contains("2 dates built, 1 up to date"), "{out}");
    assert_eq!(now().len(), 15);

    // Only to an earlier version, and no table for a model never built.
    let latest = project.dp(&["rollback", "daily", "--to-version", "6"]);
    assert!(
        both(&latest).contains("dp::rollback_version"),
        "{}",
        both(&latest)
    );
    let never = project.dp(&["history", "other"]);
    assert!(both(&never).contains("dp::no_table"), "{}", both(&never));
}

#[test]
fn retry_runs_again_only_what_failed_with_the_recorded_vars() {
    let project = TestProject::fixture("ops");
    // daily fails its test for this date; weekly (its reader) is skipped; other builds.
    let failed = project
        .command(&["build", "--vars", "date=2024-01-05"])
        .env("BAD_DATE", "2024-01-05")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let results = project.run_results();
    assert_eq!(results["vars"], serde_json::json!({"date": "2024-01-05"}));
    let daily = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["model"] == "daily")
        .unwrap()
        .clone();
    assert_eq!(daily["failure_class"], "assertion", "{daily}");
    assert_eq!(daily["attempts"], 1, "an assertion is never retried");
    assert_eq!(project.model_status("weekly"), "skipped");
    assert_eq!(project.version("other"), Some(0));

    // Retried without the cause, days later: the same date, only the two models.
    let out = project.dp_ok(&["retry"]);
    assert!(
        out.contains("Retrying 2 models of the last build: daily weekly"),
        "{out}"
    );
    let results = project.run_results();
    let models: Vec<&str> = results["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert_eq!(models, ["daily", "weekly"]);
    assert_eq!(
        results["results"][0]["partitions"],
        serde_json::json!(["date=2024-01-05"])
    );
    assert_eq!(
        project.version("other"),
        Some(0),
        "other was not built again"
    );
    assert!(project.dp_ok(&["retry"]).contains("Nothing to retry"));

    // A backfill with one failing date: the summary names it, and retry builds only it.
    let failed = project
        .command(&[
            "backfill",
            "--select",
            "daily",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-03",
        ])
        .env("BAD_DATE", "2024-01-02")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let text = both(&failed);
    assert!(
        text.contains("2 dates built, 0 up to date, 1 failed"),
        "{text}"
    );
    assert!(
        text.contains("Failed: 2024-01-02\nRetry them with: dp retry"),
        "{text}"
    );
    let before = commit_infos(&project, "daily").len();
    let out = project.dp_ok(&["retry"]);
    assert!(
        out.contains("Retrying 1 date of the last backfill: 2024-01-02"),
        "{out}"
    );
    assert_eq!(commit_infos(&project, "daily").len(), before + 1);
    let values = &project.run_results()["values"];
    assert_eq!(values.as_array().unwrap().len(), 1);
    assert_eq!(values[0]["value"], "2024-01-02");
    assert_eq!(values[0]["status"], "built");
    assert_eq!(
        project.query("daily", "select count(distinct date) from t"),
        [["4"]]
    );
}

#[test]
fn target_settings_come_from_the_environment_and_the_projects_env_file() {
    let project = TestProject::fixture("ops");
    project.write(
        "dp_project.yml",
        "name: ops\nvars: {date: '2024-01-01'}\ntarget: dev\ntargets:\n  dev:\n    warehouse: \"{{ env_var('OPS_WAREHOUSE', 'warehouse') }}\"\n  prod:\n    warehouse: wh_prod\n",
    );
    let build = |env: &[(&str, &str)]| {
        let mut command = project.command(&["build", "--select", "other"]);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{}", both(&output));
    };
    build(&[]);
    assert!(project.root.join("warehouse/other/_delta_log").exists());
    build(&[("OPS_WAREHOUSE", "wh_env")]);
    assert!(project.root.join("wh_env/other/_delta_log").exists());
    // A DP_ variable overrides the target's setting.
    build(&[("OPS_WAREHOUSE", "wh_env"), ("DP_WAREHOUSE", "wh_dp")]);
    assert!(project.root.join("wh_dp/other/_delta_log").exists());
    // The project's .env is read; the process's own variables win over it.
    project.write(".env", "DP_TARGET=prod\nOPS_WAREHOUSE=wh_dotenv\n");
    build(&[]);
    assert!(project.root.join("wh_prod/other/_delta_log").exists());
    assert_eq!(project.run_results()["target"], "prod");
    build(&[("DP_TARGET", "dev")]);
    assert!(project.root.join("wh_dotenv/other/_delta_log").exists());
    let bad = project
        .command(&["build"])
        .env("DP_THREADS", "many")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        both(&bad).contains("DP_THREADS=\"many\" is not a whole number"),
        "{}",
        both(&bad)
    );
}

#[test]
fn a_secret_from_the_environment_appears_nowhere_dp_writes() {
    const FROM_DOTENV: &str = "tok-9f8e7d6c5b4a";
    const FROM_PROCESS: &str = "zz_process_secret_77";
    let project = TestProject::fixture("ops");
    project.write(".env", &format!("DP_SECRET_API_TOKEN={FROM_DOTENV}\n"));
    project.write(
        "models/secretive.sql",
        "{{ config(materialized='table') }}\n\
         -- token: {{ env_var('DP_SECRET_API_TOKEN') }}\n\
         select '{{ env_var('DP_SECRET_API_TOKEN') }}' <> '' as has_token, '{{ var('token') }}' = '' as empty_var\n",
    );
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let output = project
            .command(args)
            .env("DP_SECRET_OTHER", FROM_PROCESS)
            .output()
            .unwrap();
        outputs.push(both(&output));
        output
    };
    let vars = format!("{{date: '2024-01-01', token: {FROM_DOTENV}}}");
    let build = run(&["build", "--vars", &vars, "-vv", "--log-format", "json"]);
    assert!(build.status.success(), "{}", both(&build));
    run(&["build", "--vars", &vars]);
    run(&["compile", "--vars", &vars]);
    run(&["docs", "generate", "--vars", &vars]);
    // An error whose message holds a secret (a column named after it).
    project.write(
        "models/broken.sql",
        "select {{ env_var('DP_SECRET_OTHER') }} as x from {{ ref('other') }}",
    );
    let broken = run(&["check", "--vars", &vars]);
    assert!(!broken.status.success());
    assert!(
        outputs.last().unwrap().contains("****"),
        "{}",
        outputs.last().unwrap()
    );
    let compiled =
        std::fs::read_to_string(project.root.join("target/compiled/models/secretive.sql")).unwrap();
    assert!(compiled.contains("-- token: ****"), "{compiled}");

    let mut searched = 0;
    let files = walk(&project.root.join("target")).into_iter().chain(
        walk(&project.root.join("warehouse"))
            .into_iter()
            .filter(|p| p.components().any(|c| c.as_os_str() == "_delta_log")),
    );
    for path in files {
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        searched += 1;
        for secret in [FROM_DOTENV, FROM_PROCESS] {
            assert!(!text.contains(secret), "{} holds a secret", path.display());
        }
    }
    assert!(searched > 10, "only {searched} files searched");
    for output in &outputs {
        for secret in [FROM_DOTENV, FROM_PROCESS] {
            assert!(
                !output.contains(secret),
                "a secret in the output:\n{output}"
            );
        }
    }
    // A var that held a secret is recorded masked: dp retry cannot give it again.
    let retry = project.command(&["retry"]).output().unwrap();
    assert_eq!(retry.status.code(), Some(2));
    assert!(
        both(&retry).contains("dp::retry_masked"),
        "{}",
        both(&retry)
    );
    // The model did see the secret: its value was used, only never written.
    assert_eq!(
        project.query("secretive", "select has_token, empty_var from t"),
        [["true", "false"]]
    );
}

/// A secret as one long word (lower case: SQL folds unquoted names), which a narrow terminal
/// breaks across lines.
const LONG_SECRET: &str = "l8tvkpn2mlxpvgrncwn947k3nxq9hnwhpztb4qbcvnvftm8l63z88lrlfqdthds85mn386vks62hslzqdv9rtq7wzljffrs6jjzhllxgk5c2mzkvhk7t9q66";
/// A secret of 40 words, which any terminal wraps between them.
const PHRASE_SECRET: &str = "fg4kg sr5jg qh4zj jb8kd fr7gh vv6zk sg5bm ld6fx rh5pd cr9ph ql8vh kh6xj wr2kj cn7qf tg9vj ws8hr ks6sk kc2rr wl9gv vb9pp dk8jw fz4fm vz9dg jh3sv nv9qq qd7kv nx7vd nf8mq sg3qk cg6tj bg9bs bk3fr cc6tn nq7jc px5bn vf3pd dz5xh wl9qt vh5pq xl5qc";

/// Whether `output` shows any piece of the two secrets: a word of the phrase, or 8 characters
/// in a row of the long one.
fn secret_piece(output: &str) -> Option<&'static str> {
    let words = PHRASE_SECRET.split(' ');
    let windows = (0..=LONG_SECRET.len() - 8).map(|at| &LONG_SECRET[at..at + 8]);
    words.chain(windows).find(|piece| output.contains(piece))
}

#[test]
fn a_secret_in_a_diagnostic_is_masked_before_miette_wraps_it() {
    let project = TestProject::fixture("ops");
    let run = |args: &[&str], columns: Option<&str>| {
        let mut command = project.command(args);
        command
            .env("DP_SECRET_LONG", LONG_SECRET)
            .env("DP_SECRET_PHRASE", PHRASE_SECRET)
            .env_remove("COLUMNS");
        if let Some(columns) = columns {
            command.env("COLUMNS", columns);
        }
        command.output().unwrap()
    };
    // Found by the check: columns named after the secrets, in the error's message.
    project.write(
        "models/long_name.sql",
        "select {{ env_var('DP_SECRET_LONG') }} as x from {{ ref('other') }}\n",
    );
    project.write(
        "models/phrase_name.sql",
        "select \"{{ env_var('DP_SECRET_PHRASE') }}\" as y from {{ ref('other') }}\n",
    );
    // At miette's own width (80 off a terminal), and narrower than any secret.
    for columns in [None, Some("40"), Some("23")] {
        for args in [
            &["check", "--vars", "date=2024-01-01"][..],
            &["build", "--vars", "date=2024-01-01"],
        ] {
            let output = run(args, columns);
            let text = both(&output);
            // The check finds problems (1); the build fails those models alone (1).
            assert_eq!(output.status.code(), Some(1), "{text}");
            assert!(text.contains("dp::sql"), "{text}");
            assert!(text.contains("column '****'"), "{text}");
            assert_eq!(secret_piece(&text), None, "COLUMNS={columns:?}:\n{text}");
        }
    }
    // Found by the build: a failed cast's error and its causes, drawn by the model's line.
    std::fs::remove_file(project.root.join("models/long_name.sql")).unwrap();
    std::fs::remove_file(project.root.join("models/phrase_name.sql")).unwrap();
    project.write(
        "models/cast.sql",
        "{{ config(materialized='table') }}\n\
         select cast(concat('{{ env_var('DP_SECRET_PHRASE') }}', '{{ env_var('DP_SECRET_LONG') }}', x) as int) as y\n\
         from {{ ref('other') }}\n",
    );
    for columns in [None, Some("40")] {
        let output = run(&["build", "--vars", "date=2024-01-01"], columns);
        let text = both(&output);
        assert_eq!(output.status.code(), Some(1), "{text}");
        assert!(text.contains("'********1'"), "{text}");
        assert_eq!(secret_piece(&text), None, "COLUMNS={columns:?}:\n{text}");
    }
}

#[test]
fn a_secret_under_4_characters_is_refused_and_one_of_4_is_masked() {
    let project = TestProject::fixture("ops");
    project.write(
        "models/pin.sql",
        "{{ config(materialized='table') }}\nselect '{{ env_var('DP_SECRET_PIN') }}' as pin\n",
    );
    // From the process's environment: named, with where it was set, and its value not shown.
    let output = project
        .command(&["compile", "--vars", "date=2024-01-01"])
        .env("DP_SECRET_PIN", "q7z")
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = both(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("dp::secret_too_short"), "{text}");
    assert!(
        text.contains(
            "secret DP_SECRET_PIN (set in dp's environment) is shorter than 4 characters"
        ),
        "{text}"
    );
    assert!(!text.contains("q7z"), "{text}");
    // From .env, every one at once, each at its line.
    project.write(
        ".env",
        "# local secrets\nDP_SECRET_PIN=q7z\nDP_SECRET_OK=long-enough-77\nDP_SECRET_TWO=k2\n",
    );
    let output = project
        .command(&["compile", "--vars", "date=2024-01-01"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    let text = both(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("secret DP_SECRET_PIN (.env line 2) is shorter than 4 characters"),
        "{text}"
    );
    assert!(
        text.contains("secret DP_SECRET_TWO (.env line 4) is shorter than 4 characters"),
        "{text}"
    );
    assert!(!text.contains("q7z") && !text.contains("k2\n"), "{text}");
    // Four characters are a secret, masked everywhere.
    project.write(".env", "DP_SECRET_PIN=q7zw\n");
    let out = project.dp_ok(&["compile", "--vars", "date=2024-01-01", "--select", "pin"]);
    let compiled =
        std::fs::read_to_string(project.root.join("target/compiled/models/pin.sql")).unwrap();
    assert!(compiled.contains("select '****' as pin"), "{compiled}");
    assert!(!out.contains("q7zw") && !compiled.contains("q7zw"), "{out}");
}

#[test]
fn a_secret_holding_markup_is_masked_on_the_docs_page_before_it_is_escaped() {
    const SECRET: &str = "kq7z</script><!--w3vq";
    let project = TestProject::fixture("ops");
    project.write(
        "models/markup.sql",
        "{{ config(materialized='table') }}\nselect '{{ env_var('DP_SECRET_MARKUP') }}' as m\n",
    );
    project.write(".env", &format!("DP_SECRET_MARKUP='{SECRET}'\n"));
    project.dp_ok(&["docs", "generate", "--vars", "date=2024-01-01"]);
    let page = std::fs::read_to_string(project.root.join("target/docs/index.html")).unwrap();
    for piece in ["kq7z", "w3vq"] {
        assert!(!page.contains(piece), "the docs page holds {piece}");
    }
    assert!(
        page.contains("select '****' as m"),
        "the compiled SQL is shown masked"
    );
}

#[test]
fn every_json_line_parses_and_carries_the_run_fields() {
    let project = TestProject::example();
    let output = project
        .command(&[
            "build",
            "--log-format",
            "json",
            "-v",
            "--vars",
            "date=2024-01-15",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", both(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let finished: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "model_finished")
        .collect();
    assert_eq!(finished.len(), 3);
    let results = project.run_results();
    let run_id = results["run_id"].as_str().unwrap();
    for event in &finished {
        for field in [
            "run_id",
            "model",
            "partition",
            "status",
            "rows",
            "bytes",
            "duration_ms",
            "delta_version",
            "failure_class",
        ] {
            assert!(event.get(field).is_some(), "no {field} in {event}");
        }
        assert_eq!(event["run_id"], run_id);
        // run_results.json names its fields as the events do.
        let entry = results["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["model"] == event["model"])
            .unwrap();
        for (key, value) in entry.as_object().unwrap() {
            if key != "duration_ms" {
                assert_eq!(&event[key], value, "{key}");
            }
        }
    }
    let summary = finished
        .iter()
        .find(|e| e["model"] == "daily_summary")
        .unwrap();
    assert_eq!(summary["partition"], "date=2024-01-15");
    assert!(summary["bytes"].as_u64().unwrap() > 0);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        let log: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(log.get("level").is_some(), "{log}");
    }
    assert!(
        stderr.contains(&format!("\"run_id\":\"{run_id}\"")),
        "the logs name the run:\n{stderr}"
    );
}

#[test]
fn dp_init_makes_a_project_that_builds_and_tests() {
    let dir = tempfile::tempdir().unwrap();
    let init = std::process::Command::new(env!("CARGO_BIN_EXE_dp"))
        .args(["init", "nightly"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", both(&init));
    let root = dir.path().join("nightly");
    let dp = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dp"))
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(output.status.success(), "dp {args:?}: {}", both(&output));
        String::from_utf8(output.stdout).unwrap()
    };
    let built = dp(&["build"]);
    assert!(built.contains("2 ok, 0 error"), "{built}");
    assert!(
        built.contains("unit test daily_revenue_counts_purchases_only"),
        "{built}"
    );
    let tested = dp(&["test"]);
    assert!(
        tested.contains("0 failed") || !tested.contains("FAIL"),
        "{tested}"
    );
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for ignored in ["warehouse/", "target/", ".env"] {
        assert!(gitignore.lines().any(|l| l == ignored), "{gitignore}");
    }
    let config = std::fs::read_to_string(root.join("dp_project.yml")).unwrap();
    assert!(
        config.starts_with("# yaml-language-server: $schema=.dp/schemas/dp_project.schema.json")
    );
    assert!(root.join(".dp/schemas/dp_project.schema.json").exists());
    assert!(root.join("README.md").exists());
    // Not over an existing project.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_dp"))
        .args(["init", "nightly"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(both(&again).contains("dp::init_exists"), "{}", both(&again));
}

#[test]
fn hooks_run_when_a_run_ends_bounded_and_never_change_what_was_published() {
    let project = TestProject::fixture("ops");
    project.write(
        "dp_project.yml",
        "name: ops\n\
         on_run_end:\n  \
         - 'echo \"$DP_RUN_STATUS $DP_RUN_ID\" >> ended.log && test -f \"$DP_RUN_RESULTS\"'\n  \
         - 'exit 3'\n  \
         - 'sleep 30'\n  \
         - 'echo \"token $DP_SECRET_HOOK\"'\n  \
         - '(sleep 2; echo late > late.log) & sleep 30'\n\
         on_failure: 'echo paged >> paged.log'\n\
         hook_timeout: 1s\n",
    );
    let started = Instant::now();
    let out = project.dp_ok(&["build", "--vars", "date=2024-01-01"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the sleeping hook was not stopped"
    );
    assert!(
        out.contains("Hook on_run_end `exit 3` FAILED: exit status: 3"),
        "{out}"
    );
    assert!(
        out.contains("Hook on_run_end `sleep 30` FAILED: stopped after 1s"),
        "{out}"
    );
    let run_id = project.run_results()["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ended = std::fs::read_to_string(project.root.join("ended.log")).unwrap();
    assert_eq!(ended.trim(), format!("success {run_id}"));
    assert!(!project.root.join("paged.log").exists());
    assert_eq!(project.version("daily"), Some(0));

    let failed = project
        .command(&["build", "--vars", "date=2024-01-02"])
        .env("BAD_DATE", "2024-01-02")
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "{}", both(&failed));
    let paged = std::fs::read_to_string(project.root.join("paged.log")).unwrap();
    assert_eq!(paged.trim(), "paged");
    assert!(
        std::fs::read_to_string(project.root.join("ended.log"))
            .unwrap()
            .contains("failed ")
    );
    assert_eq!(
        project.version("daily"),
        Some(0),
        "nothing of the failed date published"
    );
}

#[test]
fn progress_is_live_on_a_terminal_and_absent_when_piped() {
    let project = TestProject::fixture("ops");
    let dp = env!("CARGO_BIN_EXE_dp");
    // `script` runs dp on a pseudo-terminal, as an operator's shell does.
    let on_terminal = |args: &str| {
        let output = std::process::Command::new("script")
            .args(["-qec", &format!("{dp} {args}"), "/dev/null"])
            .current_dir(&project.root)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", both(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let backfill = "backfill --select daily --start 2024-01-01 --end 2024-01-03 --threads 1 --vars slow=20000000";
    let live = on_terminal(backfill);
    assert!(live.contains("/3 dates ("), "{live}");
    assert!(live.contains("ETA"), "{live}");
    assert!(live.contains("built 3 · up to date 0 · failed 0"), "{live}");
    let live = on_terminal("build --vars date=2024-01-04 --vars slow=20000000");
    assert!(live.contains("/3 models"), "{live}");
    assert!(live.contains("running: daily"), "{live}");

    let args: Vec<&str> = backfill.split(' ').collect();
    let piped = project.dp_ok(&args);
    assert!(
        !piped.contains("ETA") && !piped.contains('\u{1b}'),
        "{piped}"
    );
    assert!(piped.contains("0 dates built, 3 up to date"), "{piped}");
}

#[test]
fn retry_of_a_missing_or_truncated_run_record_says_it_cannot_read_it() {
    let project = TestProject::fixture("ops");
    let path = project.root.join("target/run_results.json");
    let missing = project.dp(&["retry"]);
    let text = both(&missing);
    assert_eq!(missing.status.code(), Some(2), "{text}");
    assert!(text.contains("dp::run_results"), "{text}");
    assert!(text.contains("no run has been recorded there"), "{text}");

    project.dp_ok(&["build", "--select", "other", "--vars", "date=2024-01-01"]);
    let whole = std::fs::read(&path).unwrap();
    std::fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let truncated = project.dp(&["retry"]);
    // As one line: miette wraps the message.
    let text = both(&truncated)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert_eq!(truncated.status.code(), Some(2), "{text}");
    assert!(text.contains("dp::run_results"), "{text}");
    assert!(!text.contains("cannot write"), "{text}");
    assert!(text.contains("cannot read the last run from"), "{text}");
    assert!(text.contains("run_results.json"), "{text}");
    assert!(text.contains("not a complete run record"), "{text}");
    assert!(text.contains("EOF while parsing"), "{text}");
    assert_eq!(project.version("other"), Some(0), "nothing was run again");
}

#[test]
fn a_backfill_whose_var_its_models_do_not_read_says_which_vars_they_read() {
    let project = TestProject::fixture("ops");
    let backfill = |extra: &[&str]| {
        let mut args = vec!["backfill", "--start", "2024-01-01", "--end", "2024-01-02"];
        args.extend(extra);
        let output = project.dp(&args);
        assert_eq!(output.status.code(), Some(2), "{}", both(&output));
        both(&output)
    };
    // daily reads `date`, which --var day leaves without a value: named, with where it is read.
    for select in [&["--select", "daily"][..], &[]] {
        let mut args = select.to_vec();
        args.extend(["--var", "day"]);
        let text = backfill(&args);
        assert!(text.contains("dp::backfill_var"), "{text}");
        assert!(!text.contains("dp::no_match"), "{text}");
        assert!(text.contains("gives each date as var `day`"), "{text}");
        assert!(text.contains("models/daily.sql reads var"), "{text}");
        assert!(text.contains("`date`, which has no value"), "{text}");
        assert!(text.contains("--var date"), "{text}");
        assert!(text.contains("[models/daily.sql:3:12]"), "{text}");
    }
    // `other` reads no var at all: every date would build the same table.
    let text = backfill(&["--select", "other", "--vars", "slow=2"]);
    assert!(text.contains("dp::backfill_var"), "{text}");
    assert!(text.contains("gives each date as var `date`"), "{text}");
    assert!(text.contains("no model it builds reads"), "{text}");
    assert!(
        text.contains("`other` reads none of the vars set"),
        "{text}"
    );
    assert_eq!(project.version("daily"), None);
    assert_eq!(project.version("other"), None);
    // A selection of which one model reads the var backfills.
    let out = project.dp_ok(&[
        "backfill",
        "--select",
        "daily",
        "other",
        "--start",
        "2024-01-01",
        "--end",
        "2024-01-01",
    ]);
    assert!(
        out.contains("1 dates built") || out.contains("1 date built"),
        "{out}"
    );
    assert_eq!(project.version("daily"), Some(0));
}

#[test]
fn history_limit_0_is_a_usage_error_not_a_missing_table() {
    let project = TestProject::fixture("ops");
    project.dp_ok(&["build", "--select", "other", "--vars", "date=2024-01-01"]);
    let zero = project.dp(&["history", "other", "--limit", "0"]);
    let text = both(&zero);
    assert_eq!(zero.status.code(), Some(2), "{text}");
    assert!(!text.contains("no table"), "{text}");
    assert!(text.contains("--limit"), "{text}");
    let one = project.dp_ok(&["history", "other", "--limit", "1"]);
    assert_eq!(one.lines().count(), 2, "a header and one version:\n{one}");
}

/// The processes running `sleep <seconds>`, from /proc.
fn sleeping(seconds: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() >= 2 && args[0].ends_with(b"sleep") && args[1] == seconds.as_bytes() {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_hook_past_its_timeout_is_stopped_with_the_children_that_left_its_session() {
    let project = TestProject::fixture("ops");
    // Durations no other test sleeps, to find these processes by.
    let durations = ["2801", "2802", "2803", "2804", "2805"];
    project.write(
        "dp_project.yml",
        "name: ops\n\
         on_run_end:\n  \
         - 'setsid sleep 2801 & (setsid sleep 2802 &); (env -i setsid sleep 2803 &); env -i sleep 2804 & nohup setsid sh -c \"sleep 2805\" >/dev/null 2>&1 & sleep 30'\n\
         hook_timeout: 1s\n",
    );
    let started = Instant::now();
    let out = project.dp_ok(&["build", "--select", "other", "--vars", "date=2024-01-01"]);
    assert!(started.elapsed() < Duration::from_secs(20), "{out}");
    assert!(out.contains("FAILED: stopped after 1s"), "{out}");
    let left: Vec<(&str, Vec<u32>)> = durations
        .iter()
        .map(|d| (*d, sleeping(d)))
        .filter(|(_, pids)| !pids.is_empty())
        .collect();
    for (_, pids) in &left {
        for pid in pids {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }
    assert!(
        left.is_empty(),
        "left running after the hook's timeout: {left:?}"
    );
    assert_eq!(project.version("other"), Some(0));
}

/// The targets of the JSON log events `args` writes to stderr on the example project.
fn log_targets(project: &TestProject, args: &[&str]) -> BTreeSet<String> {
    let output = project.dp(args);
    assert!(output.status.success(), "{}", both(&output));
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|event| Some(event["target"].as_str()?.to_string()))
        .collect()
}

#[test]
fn verbose_logs_show_dps_own_detail_and_the_libraries_only_when_asked() {
    let project = TestProject::example();
    let args = ["build", "--vars", "date=2024-01-15", "--log-format", "json"];
    let dp_only = log_targets(&project, &[&args[..], &["-vv"]].concat());
    assert!(
        dp_only.iter().any(|t| t.starts_with("dp_engine")),
        "{dp_only:?}"
    );
    assert!(
        dp_only.iter().all(|t| t.starts_with("dp")),
        "libraries' events at -vv: {dp_only:?}"
    );
    let everything = log_targets(&project, &[&args[..], &["-vvv"]].concat());
    assert!(
        everything.iter().any(|t| !t.starts_with("dp")),
        "{everything:?}"
    );
}
