//! Issue 28: models nested as deep as a template's loop writes them (2,000 terms of `or` or `+`,
//! 1,000 chained CTEs) overflowed the stack of the thread planning them, and dp aborted (exit
//! 134) without a word. They check and build now; a model nested far deeper than dp plans is a
//! diagnostic at its SQL.

use crate::support::{TestProject, both};

#[test]
fn two_thousand_terms_and_a_thousand_chained_ctes_check_and_build() {
    let project = TestProject::fixture("deep");
    let check = project.dp(&["check"]);
    assert_eq!(check.status.code(), Some(0), "{}", both(&check));
    assert!(
        both(&check).contains("No problems found (3 models)"),
        "{}",
        both(&check)
    );
    let build = project.dp(&["build"]);
    assert_eq!(build.status.code(), Some(0), "{}", both(&build));
    // `id = 0 or ... or id = 1999`: of 1, 1999, 2000 and 5000, the first two.
    assert_eq!(
        project.query("deep_or", "select id from t order by id"),
        [["1"], ["1999"]]
    );
    // 0 + 1 + ... + 1999.
    assert_eq!(
        project.query("deep_plus", "select total from t"),
        [["1999000"]]
    );
    // c0 is 1, and each of the 999 CTEs after it adds 1.
    assert_eq!(project.query("deep_ctes", "select x from t"), [["1000"]]);
}

#[test]
fn a_model_nested_far_deeper_is_a_diagnostic_at_its_sql_not_an_abort() {
    // 200,000 terms of `or`.
    let project = TestProject::fixture("errors/too_deep");
    let check = project.dp(&["check", "--format", "json"]);
    assert_eq!(check.status.code(), Some(1), "{}", both(&check));
    let problems: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["code"], "dp::too_deep");
    assert_eq!(problems[0]["file"], "models/ids.sql");
    // The first term of the chain, in the loop that writes it.
    assert_eq!(
        (&problems[0]["line"], &problems[0]["column"]),
        (&3.into(), &57.into())
    );

    // The model fails alone (exit 1); with --fail-fast, the run stops before building (exit 2).
    let build = project.dp(&["build", "--fail-fast"]);
    assert_eq!(build.status.code(), Some(2), "{}", both(&build));
    let build = project.dp(&["build"]);
    let text = both(&build);
    assert_eq!(build.status.code(), Some(1), "{text}");
    assert!(text.contains("dp::too_deep"), "{text}");
    assert!(text.contains("[models/ids.sql:3:57]"), "{text}");
    assert!(
        text.contains("this expression nests more than 10000 levels"),
        "{text}"
    );
    assert!(!project.table_dir("ids").exists(), "a table was written");

    // As deep in `+` terms, in CTEs, in unions, each past the limit its own way.
    for (model, sql, label) in [
        (
            "sum",
            "select {% for i in range(200) %}{% for j in range(1000) %}{{ j }} + {% endfor %}{% endfor %}0 as x",
            "this expression nests more than 10000 levels",
        ),
        (
            "ctes",
            "with c0 as (select 1 as x){% for i in range(1, 3000) %}, c{{ i }} as (select x from c{{ i - 1 }}){% endfor %} select x from c2999",
            "this reads a chain of CTEs more than 2500 levels deep",
        ),
        (
            "unions",
            "select 0 as x{% for i in range(1, 3000) %} union all select {{ i }}{% endfor %}",
            "queries nest more than 2500 levels here",
        ),
    ] {
        project.write(&format!("models/{model}.sql"), sql);
        let check = project.dp(&["check", "--select", model]);
        let text = both(&check);
        assert_eq!(check.status.code(), Some(1), "{model}: {text}");
        assert!(text.contains("dp::too_deep"), "{model}: {text}");
        assert!(text.contains(label), "{model}: {text}");
        assert!(text.contains(&format!("[models/{model}.sql:1:")), "{text}");
    }
}
