//! The selector grammar, through `dp ls` on a fixture DAG:
//! raw.events -> stg_a, stg_b -> int_ab -> mart_x -> mart_z; raw.users -> stg_users;
//! int_ab + stg_users -> mart_y; lonely stands alone.

use std::collections::BTreeSet;

use crate::support::{TestProject, both};

fn ls(project: &TestProject, args: &[&str]) -> Vec<String> {
    let mut all = vec!["ls"];
    all.extend(args);
    project.dp_ok(&all).lines().map(str::to_string).collect()
}

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.to_string()).collect()
}

#[test]
fn each_form_of_the_grammar_picks_exactly_its_nodes() {
    let project = TestProject::fixture("selection");
    let cases: &[(&[&str], &[&str])] = &[
        (&["-s", "stg_a"], &["stg_a"]),
        (
            &["-s", "+int_ab"],
            &["source:raw.events", "stg_a", "stg_b", "int_ab"],
        ),
        (
            &["-s", "int_ab+"],
            &["int_ab", "mart_x", "mart_y", "mart_z"],
        ),
        (&["-s", "int_ab+1"], &["int_ab", "mart_x", "mart_y"]),
        (&["-s", "1+int_ab"], &["stg_a", "stg_b", "int_ab"]),
        (&["-s", "2+mart_x"], &["stg_a", "stg_b", "int_ab", "mart_x"]),
        (
            &["-s", "@stg_users"],
            &[
                "source:raw.events",
                "source:raw.users",
                "stg_a",
                "stg_b",
                "stg_users",
                "int_ab",
                "mart_y",
            ],
        ),
        (
            &["-s", "@mart_z"],
            &[
                "source:raw.events",
                "stg_a",
                "stg_b",
                "int_ab",
                "mart_x",
                "mart_z",
            ],
        ),
        (&["-s", "tag:daily"], &["mart_x"]),
        (
            &["-s", "path:models/marts"],
            &["mart_x", "mart_y", "mart_z"],
        ),
        (&["-s", "path:models/marts/mart_y.sql"], &["mart_y"]),
        (
            &["-s", "source:raw.users+"],
            &["source:raw.users", "stg_users", "mart_y"],
        ),
        (
            &["-s", "source:raw+"],
            &[
                "source:raw.events",
                "source:raw.users",
                "stg_a",
                "stg_b",
                "stg_users",
                "int_ab",
                "mart_x",
                "mart_y",
                "mart_z",
            ],
        ),
        (&["-s", "stg_a mart_z"], &["stg_a", "mart_z"]),
        (&["-s", "stg_a", "mart_z"], &["stg_a", "mart_z"]),
        (
            &["-s", "+mart_y,tag:staging"],
            &["stg_a", "stg_b", "stg_users"],
        ),
        (&["-s", "stg_*"], &["stg_a", "stg_b", "stg_users"]),
        (
            &["-s", "int_ab+", "--exclude", "mart_x+"],
            &["int_ab", "mart_y"],
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(
            set(&ls(&project, args)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()),
            set(expected),
            "dp ls {args:?}"
        );
    }
}

#[test]
fn ls_lists_every_node_after_the_nodes_it_reads() {
    let project = TestProject::fixture("selection");
    let order = ls(&project, &[]);
    assert_eq!(order.len(), 10, "two sources, eight models");
    let position = |name: &str| order.iter().position(|n| n == name).unwrap();
    for (upstream, downstream) in [
        ("source:raw.events", "stg_a"),
        ("stg_a", "int_ab"),
        ("stg_b", "int_ab"),
        ("int_ab", "mart_x"),
        ("mart_x", "mart_z"),
        ("stg_users", "mart_y"),
        ("int_ab", "mart_y"),
    ] {
        assert!(
            position(upstream) < position(downstream),
            "{upstream} after {downstream}: {order:?}"
        );
    }
}

#[test]
fn a_selector_that_selects_nothing_or_cannot_be_read_is_an_error() {
    let project = TestProject::fixture("selection");
    for selector in [
        "stg_a,",
        "tag:nope",
        "path:",
        "99999999999999999999999+int_ab",
        "@+int_ab",
        "kind:x",
    ] {
        let output = project.dp(&["ls", "--select", selector]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{selector}: {}",
            both(&output)
        );
        assert!(
            both(&output).contains("--select"),
            "{selector}: {}",
            both(&output)
        );
    }
}

#[test]
fn an_unknown_model_in_select_is_a_diagnostic_with_a_suggestion() {
    let project = TestProject::fixture("selection");
    let output = project.dp(&["ls", "--select", "int_abc+"]);
    assert_eq!(output.status.code(), Some(2));
    let text = both(&output);
    assert!(text.contains("nothing matches `int_abc`"), "{text}");
    assert!(text.contains("did you mean `int_ab`?"), "{text}");
}

#[test]
fn a_selected_model_that_does_not_render_reports_its_render_error_not_no_match() {
    let project = TestProject::fixture("selection");
    // int_ab's template cannot render; mart_x reads it.
    project.write(
        "models/int/int_ab.sql",
        "select a.event_id\nfrom {{ ref('stg_a') ) }} a\n",
    );
    for args in [
        &["ls", "--select", "+int_ab"][..],
        &["ls", "--select", "int_ab"],
        &["ls", "--select", "path:models/int"],
        &["build", "--select", "+mart_x"],
        &["compile", "--select", "mart_z"],
    ] {
        let output = project.dp(args);
        let text = both(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert!(!text.contains("dp::no_match"), "{args:?}: {text}");
        assert!(text.contains("dp::template"), "{args:?}: {text}");
        assert!(
            text.contains("[models/int/int_ab.sql:2:"),
            "{args:?}: {text}"
        );
    }
    assert!(!project.root.join("warehouse").exists());
    // A selector that names no model of the project is still said to match nothing.
    let typo = project.dp(&["ls", "--select", "mart_q"]);
    assert!(both(&typo).contains("dp::no_match"), "{}", both(&typo));
}
