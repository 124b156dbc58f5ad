//! dbt packages: `dp deps` installs what packages.yml lists (a local folder, a git repository
//! at a revision, a dbt Hub package) and pins it in package-lock.yml; a package's macros are
//! called by its name, its generic tests run on the staged rows, `adapter.dispatch` searches the
//! project before the package, and a project's own macros override.

use std::path::Path;
use std::process::Command;

use crate::support::{TestProject, both};

/// The project of the fixture with its packages installed.
fn installed() -> TestProject {
    let project = TestProject::fixture("dbt_packages");
    project.dp_ok(&["deps"]);
    project
}

#[test]
fn a_project_whose_packages_are_missing_says_to_run_deps_and_builds_nothing() {
    let project = TestProject::fixture("dbt_packages");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("dp::packages_missing"), "{text}");
    assert!(text.contains("run `dp deps`"), "{text}");
    assert!(text.contains("packages.yml:2"), "{text}");
    assert!(!project.root.join("warehouse").exists());

    // As many packages installed as declared, but not the one the lock file pins: by name.
    project.dp_ok(&["deps"]);
    let installed = project.root.join("dbt_packages");
    std::fs::remove_file(installed.join("helpers")).unwrap();
    std::os::unix::fs::symlink(
        project.root.join("packages/git_helpers"),
        installed.join("git_helpers"),
    )
    .unwrap();
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(text.contains("dp::packages_missing"), "{text}");
    assert!(
        text.contains("package `packages/helpers` is declared"),
        "{text}"
    );
    assert!(!project.root.join("warehouse").exists());
}

#[test]
fn deps_links_a_local_package_and_pins_it_in_the_lock_file() {
    let project = TestProject::fixture("dbt_packages");
    let out = project.dp_ok(&["deps"]);
    assert!(out.contains("helpers"), "{out}");
    let link = project.root.join("dbt_packages/helpers");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(link.join("macros/money.sql").is_file());
    let lock = std::fs::read_to_string(project.root.join("package-lock.yml")).unwrap();
    assert_eq!(
        lock,
        "packages:\n- local: packages/helpers\n  name: helpers\n"
    );
    // Again: the same result, a package no longer declared gone, nothing left beside it.
    project.write("dbt_packages/stale/dbt_project.yml", "name: stale\n");
    project.dp_ok(&["deps"]);
    let beside: Vec<String> = std::fs::read_dir(&project.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("dp-deps"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
    let entries: Vec<String> = std::fs::read_dir(project.root.join("dbt_packages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["helpers"]);
}

#[test]
fn package_macros_dispatch_vars_and_overrides_render_as_dbt_resolves_them() {
    let project = installed();
    let out = project.dp_ok(&["build"]);
    let rows = project.query(
        "order_facts",
        "select id, amount, currency, label, cast(due_at as date), days_in, code, unparsed, greeting, \
         id_doubled from t order by id",
    );
    assert_eq!(
        rows,
        [
            [
                "1",
                "12.5",
                "EUR",
                "PLACED",
                "2024-01-08",
                "0",
                "#1",
                "",
                "hello from shop",
                "2"
            ],
            [
                "2",
                "3.0",
                "EUR",
                "SHIPPED",
                "2024-01-22",
                "14",
                "#2",
                "",
                "hello from shop",
                "4"
            ],
            [
                "3",
                "40.0",
                "EUR",
                "SHIPPED",
                "2024-02-10",
                "33",
                "#3",
                "",
                "hello from shop",
                "6"
            ],
        ],
        "{out}"
    );
}

#[test]
fn generic_tests_of_packages_and_of_the_project_run_on_the_staged_rows() {
    let project = installed();
    let out = project.dp_ok(&["build"]);
    for passed in [
        "PASS  data test helpers_is_positive_order_facts_amount",
        "PASS  data test at_most_order_facts_amount_40",
        "PASS  data test helpers_is_positive_order_facts_id",
    ] {
        assert!(out.contains(passed), "{passed}: {out}");
    }
    // A bare name found in one package runs that package's test; severity: warn warns.
    assert!(
        out.contains(
            "WARN  data test is_positive_order_facts_days_in on order_facts: 1 failing row"
        ),
        "{out}"
    );
    // A failing package test stops publication, as any test does.
    project.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: order_facts\n    columns:\n      - name: amount\n        \
         data_tests:\n          - at_most:\n              arguments:\n                limit: 10\n",
    );
    let before = project.version("order_facts");
    let output = project.dp(&["build"]);
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("at_most_order_facts_amount_10"), "{text}");
    assert!(text.contains("2 failing rows"), "{text}");
    assert_eq!(project.version("order_facts"), before);
    // `dp test` runs them on the published table.
    project.write(
        "models/schema.yml",
        "version: 2\nmodels:\n  - name: order_facts\n    columns:\n      - name: amount\n        \
         data_tests:\n          - helpers.is_positive\n",
    );
    let tested = project.dp_ok(&["test"]);
    assert!(
        tested.contains("helpers_is_positive_order_facts_amount"),
        "{tested}"
    );
}

#[test]
fn a_problem_inside_a_package_macro_is_located_there_with_every_other_problem() {
    let project = installed();
    let money = project.root.join("packages/helpers/macros/money.sql");
    let text = std::fs::read_to_string(&money).unwrap();
    std::fs::write(
        &money,
        text.replace(
            "'{{ var(\"currency\") }}'",
            "'{{ var(\"currency\") | nosuchfilter }}'",
        ),
    )
    .unwrap();
    project.write(
        "models/broken.sql",
        "select {{ helpers.nosuchmacro() }} as x",
    );
    let output = project.dp(&["check"]);
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("dbt_packages/helpers/macros/money.sql:6"),
        "the package macro's line: {text}"
    );
    assert!(text.contains("models/broken.sql"), "{text}");
}

/// A bare git repository holding `packages/git_helpers` at tag `v1`, then a second commit.
fn git_repository(project: &TestProject, at: &Path) -> String {
    let work = at.join("work");
    let copy = |from: &Path, to: &Path| {
        std::fs::create_dir_all(to.join("macros")).unwrap();
        for file in ["dbt_project.yml", "macros/twice.sql"] {
            std::fs::copy(from.join(file), to.join(file)).unwrap();
        }
    };
    copy(
        &project.root.join("packages/git_helpers"),
        &work.join("pkg"),
    );
    let git = |args: &[&str], dir: &Path| {
        let status = Command::new("git")
            .args(["-c", "user.name=dp", "-c", "user.email=dp@example.com"])
            .args(args)
            .current_dir(dir)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    git(&["init", "--quiet", "--initial-branch=main"], &work);
    git(&["add", "."], &work);
    git(&["commit", "--quiet", "-m", "v1"], &work);
    git(&["tag", "v1"], &work);
    let twice = work.join("pkg/macros/twice.sql");
    std::fs::write(
        &twice,
        "{% macro twice(column) %}({{ column }} * 3){% endmacro %}",
    )
    .unwrap();
    git(&["commit", "--quiet", "-am", "v2"], &work);
    let bare = at.join("git_helpers.git");
    git(
        &[
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ],
        at,
    );
    format!("file://{}", bare.display())
}

#[test]
fn a_git_package_installs_at_its_revision_from_its_subdirectory() {
    let project = TestProject::fixture("dbt_packages");
    let repositories = tempfile::tempdir().unwrap();
    let url = git_repository(&project, repositories.path());
    project.write(
        "packages.yml",
        &format!(
            "packages:\n  - local: packages/helpers\n  - git: \"{url}\"\n    revision: v1\n    subdirectory: pkg\n"
        ),
    );
    project.write(
        "models/doubled.sql",
        "select id, {{ git_helpers.twice('amount_cents') }} as doubled from {{ ref('orders') }}",
    );
    let out = project.dp_ok(&["deps"]);
    assert!(out.contains("git_helpers @ "), "{out}");
    let lock = std::fs::read_to_string(project.root.join("package-lock.yml")).unwrap();
    let v1 = String::from_utf8(
        Command::new("git")
            .args(["rev-parse", "v1"])
            .current_dir(repositories.path().join("git_helpers.git"))
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        lock.contains(&format!("revision: {}", v1.trim())),
        "pinned at v1's commit: {lock}"
    );
    assert!(lock.contains("subdirectory: pkg"), "{lock}");
    let installed = project.root.join("dbt_packages/git_helpers");
    assert!(installed.join("dbt_project.yml").is_file());
    assert!(!installed.join(".git").exists());
    project.dp_ok(&["build"]);
    let rows = project.query("doubled", "select id, doubled from t order by id");
    assert_eq!(rows[0], ["1", "2500"], "v1 doubles (v2 would triple)");
}

#[test]
fn a_hub_package_that_cannot_be_fetched_is_refused_by_name_and_changes_nothing() {
    let project = installed();
    project.write(
        "packages.yml",
        "packages:\n  - local: packages/helpers\n  - package: dbt-labs/dbt_utils\n    version: [\">=1.0.0\", \"<2.0.0\"]\n",
    );
    let lock_before = std::fs::read_to_string(project.root.join("package-lock.yml")).unwrap();
    let output = project
        .command(&["deps"])
        // Nothing listens there: as offline.
        .env("DP_HUB_URL", "http://127.0.0.1:9/api/v1")
        .output()
        .unwrap();
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("dp::deps"), "{text}");
    assert!(text.contains("dbt-labs/dbt_utils"), "{text}");
    assert!(text.contains("packages.yml:3"), "{text}");
    assert_eq!(
        std::fs::read_to_string(project.root.join("package-lock.yml")).unwrap(),
        lock_before
    );
    assert!(project.root.join("dbt_packages/helpers").exists());
}

#[test]
fn a_package_models_and_seeds_build_into_the_same_warehouse_with_their_tests() {
    let project = installed();
    let out = project.dp_ok(&["build"]);
    assert!(
        out.contains("PASS  data test is_positive_currency_rates_per_usd"),
        "{out}"
    );
    let rates = project.query(
        "currency_rates",
        "select currency, per_usd, label from t order by 1",
    );
    // The project's override of the package's dispatched label applies to the package's model.
    assert_eq!(rates, [["EUR", "0.9", "EUR"], ["USD", "1.0", "USD"]]);
    let usd = project.query(
        "orders_in_usd",
        "select id, round(amount_usd, 4) from t order by id",
    );
    assert_eq!(usd, [["1", "13.8889"], ["2", "3.3333"], ["3", "44.4444"]]);
    // `models: {helpers: ...}` and `seeds: {helpers: ...}` of the project configure them.
    let vendored = project.dp_ok(&["ls", "--select", "tag:vendored"]);
    assert_eq!(
        vendored.lines().collect::<Vec<_>>(),
        ["rates", "currency_rates"],
        "{vendored}"
    );
}

#[test]
fn a_package_whose_name_is_no_folder_name_is_refused_and_deletes_nothing() {
    let project = TestProject::fixture("dbt_packages");
    project.write("packages/evil/dbt_project.yml", "name: ../models\n");
    project.write("packages.yml", "packages:\n  - local: packages/evil\n");
    let output = project.dp(&["deps"]);
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("cannot name a package"), "{text}");
    assert!(project.root.join("models/order_facts.sql").is_file());
    project.write(
        "packages.yml",
        "packages:\n  - git: \"--upload-pack=touch pwned\"\n",
    );
    let output = project.dp(&["deps"]);
    assert!(!output.status.success());
    assert!(both(&output).contains("cannot start"), "{}", both(&output));
    assert!(!project.root.join("pwned").exists());
}

#[test]
fn show_previews_a_model_or_an_inline_query_from_the_published_tables_and_writes_nothing() {
    let project = installed();
    // Nothing built yet: the query cannot read what it needs, and says so.
    let output = project.dp(&["show", "--select", "order_facts"]);
    let text = both(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("dp::show_query"), "{text}");
    assert!(text.contains("`orders` has never"), "{text}");

    project.dp_ok(&["build"]);
    let warehouse = project.files("warehouse");
    let shown = project.dp_ok(&["show", "--select", "orders_in_usd", "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{shown}");
    assert_eq!(rows[0]["id"], 1, "{shown}");
    // An inline query calls ref() and a package's dispatched macro; --limit bounds the rows.
    let inline = "select id, {{ helpers.status_label(\"'Paid'\") }} as label \
                  from {{ ref('order_facts') }} order by id desc";
    let shown = project.dp_ok(&["show", "--inline", inline, "--limit", "2"]);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 6, "{shown}");
    assert!(lines[3].contains("| 3  | PAID"), "{shown}");
    assert!(lines[4].contains("| 2  | PAID"), "{shown}");
    // The table and its log are as the build left them.
    assert_eq!(project.files("warehouse"), warehouse);

    let output = project.dp(&["show", "--inline", "select * from {{ ref('order_fact') }}"]);
    let text = both(&output);
    assert!(text.contains("dp::unknown_ref"), "{text}");
    assert!(text.contains("<inline_query>:1:"), "{text}");
}

#[test]
fn run_operation_calls_a_macro_with_its_args_against_the_published_tables() {
    let project = installed();
    project.dp_ok(&["build"]);
    let warehouse = project.files("warehouse");
    let out = project.dp_ok(&[
        "run-operation",
        "report_rows",
        "--args",
        "{model_name: order_facts, label: \"it's facts\"}",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "it's facts: 3 rows, ids 6",
            "model.shop.currency_rates table dbt_packages/helpers/models/currency_rates.sql",
            "model.shop.order_columns table models/order_columns.sql",
            "model.shop.order_facts table models/order_facts.sql",
            "model.shop.orders_in_usd table models/orders_in_usd.sql",
            "missing is none: True, found: order_facts",
        ],
        "{out}"
    );
    assert_eq!(project.files("warehouse"), warehouse);

    // A package's macro by its namespace; an unknown one is named with what comes close.
    project.dp_ok(&["run-operation", "helpers.hello"]);
    let output = project.dp(&["run-operation", "shop.report_row"]);
    let text = both(&output);
    assert!(text.contains("dp::unknown_macro"), "{text}");
    assert!(text.contains("did you mean `shop.report_rows`?"), "{text}");
    let output = project.dp(&["run-operation", "report_rows", "--args", "[1]"]);
    assert!(
        both(&output).contains("dp::invalid_args"),
        "{}",
        both(&output)
    );
}

#[test]
fn an_introspective_model_checks_builds_and_is_documented_with_the_columns_it_reads() {
    let project = installed();
    project.dp_ok(&["check"]);
    project.dp_ok(&["docs", "generate"]);
    let lineage: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(project.root.join("target/lineage.json")).unwrap(),
    )
    .unwrap();
    let columns: Vec<&String> = lineage["nodes"]["model.shop.order_columns"]["columns"]
        .as_object()
        .unwrap_or_else(|| panic!("{lineage}"))
        .keys()
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "amount",
            "currency",
            "label",
            "due_at",
            "days_in",
            "code",
            "id_doubled"
        ],
        "{lineage}"
    );
    project.dp_ok(&["build"]);
    let rows = project.query("order_columns", "select id, label from t order by id");
    assert_eq!(rows[0], ["1", "PLACED"]);
}

#[test]
fn deps_removes_what_a_killed_run_left_and_never_what_a_running_one_holds() {
    let project = TestProject::fixture("dbt_packages");
    // A run killed two hours ago, and one at work now (its folder just written).
    let killed = project.root.join(".dbt_packages.dp-deps-999998");
    let running = project.root.join(".dbt_packages.dp-deps-999999");
    std::fs::create_dir_all(killed.join("fetched/0")).unwrap();
    std::fs::create_dir_all(running.join("fetched/0")).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::open(&killed)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    project.dp_ok(&["deps"]);
    assert!(!killed.exists());
    assert!(running.join("fetched/0").is_dir());
    assert!(
        project
            .root
            .join("dbt_packages/helpers/macros/money.sql")
            .is_file()
    );
}

#[test]
fn two_deps_at_once_leave_one_whole_packages_folder() {
    let project = TestProject::fixture("dbt_packages");
    project.dp_ok(&["deps"]);
    for _ in 0..10 {
        let runs: Vec<_> = (0..2)
            .map(|_| project.command(&["deps"]).spawn().unwrap())
            .collect();
        let codes: Vec<bool> = runs
            .into_iter()
            .map(|run| run.wait_with_output().unwrap().status.success())
            .collect();
        assert!(codes.contains(&true), "neither run installed: {codes:?}");
        let installed: Vec<String> = std::fs::read_dir(project.root.join("dbt_packages"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(installed, ["helpers"]);
        assert!(
            project
                .root
                .join("dbt_packages/helpers/macros/money.sql")
                .is_file()
        );
    }
    project.dp_ok(&["build"]);
}
