//! `dp lineage`: a model's or a column's lineage in the terminal, as trees.

use std::process::ExitCode;

use dp_engine::{Direction, LineageReport, LineageTree, NodeKind};

use crate::args::{GlobalArgs, LineageArgs, OutputFormat, SelectArgs};

pub fn run(global: &GlobalArgs, args: &LineageArgs) -> miette::Result<ExitCode> {
    let select = SelectArgs {
        select: Vec::new(),
        exclude: Vec::new(),
        vars: args.vars.clone(),
    };
    let prepared = super::prepare(global, &select)?;
    let direction = match (args.upstream, args.downstream) {
        (true, _) => Direction::Upstream,
        (_, true) => Direction::Downstream,
        _ => Direction::Both,
    };
    let report = super::runtime()?.block_on(prepared.lineage(&args.node, direction))?;
    let text = match args.format {
        OutputFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&report).expect("a report serializes")
        ),
        OutputFormat::Human => human(&report),
    };
    super::out(&text);
    Ok(ExitCode::SUCCESS)
}

/// Each column as a tree of what it comes from and of what reads it; `(*)` marks a column whose
/// own tree is shown above.
fn human(report: &LineageReport) -> String {
    let mut text = String::new();
    for column in &report.columns {
        text.push_str(&format!("{}.{}\n", column.node, column.column));
        if !column.upstream.is_empty() {
            text.push_str("  upstream\n");
            branches(&column.upstream, |t| &t.upstream, "    ", &mut text);
        }
        if !column.downstream.is_empty() {
            text.push_str("  downstream\n");
            branches(&column.downstream, |t| &t.downstream, "    ", &mut text);
        }
    }
    if !report.row_filters.is_empty() {
        text.push_str(&format!("rows of {} decided by\n", report.node));
        for filter in &report.row_filters {
            text.push_str(&format!(
                "  {}.{} ({})\n",
                filter.node,
                filter.column,
                json_name(filter.clause)
            ));
        }
    }
    text
}

fn branches(
    trees: &[LineageTree],
    next: fn(&LineageTree) -> &Vec<LineageTree>,
    indent: &str,
    text: &mut String,
) {
    for (i, tree) in trees.iter().enumerate() {
        let last = i + 1 == trees.len();
        let how = tree.how.map(json_name).unwrap_or_default();
        let kind = match tree.kind {
            NodeKind::Model => "",
            NodeKind::Ephemeral => ", ephemeral",
            NodeKind::Source => ", source",
        };
        // A column whose tree was shown above is not shown again.
        let repeated = if tree.repeated { " (*)" } else { "" };
        text.push_str(&format!(
            "{indent}{} {}.{} ({how}{kind}){repeated}\n",
            if last { "└─" } else { "├─" },
            tree.node,
            tree.column
        ));
        let deeper = format!("{indent}{}", if last { "   " } else { "│  " });
        branches(next(tree), next, &deeper, text);
    }
}

/// A name as the JSON output writes it (`group_by`, `aggregated`).
fn json_name(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}
