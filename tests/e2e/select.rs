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
