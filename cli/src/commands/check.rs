//! `dp check`: every problem the project's files hold, found without running anything.

use std::process::ExitCode;

use dp_engine::PrepareOptions;
use miette::Diagnostic;
use serde_json::{Value, json};

use crate::args::{CheckArgs, CheckFormat, GlobalArgs};

pub fn run(global: &GlobalArgs, args: &CheckArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let checked = check(&runtime, global, args);
    match (checked, args.format) {
        (Ok(models), CheckFormat::Human) => {
            if !global.quiet {
                println!("No problems found ({models} models)");
            }
            Ok(ExitCode::SUCCESS)
        }
        (Ok(_), CheckFormat::Json) => {
            println!("[]");
            Ok(ExitCode::SUCCESS)
        }
        (Err(error), CheckFormat::Human) => {
            eprintln!("{:?}", miette::Report::new(*error));
            Ok(super::pipeline_failed())
        }
        (Err(error), CheckFormat::Json) => {
            let mut records = Vec::new();
            flatten(error.as_ref(), &mut records);
            println!(
                "{}",
                serde_json::to_string_pretty(&records).unwrap_or_default()
            );
            Ok(super::pipeline_failed())
        }
    }
}

/// Load, render, resolve, select and plan: the number of models, or every problem found.
fn check(
    runtime: &tokio::runtime::Runtime,
    global: &GlobalArgs,
    args: &CheckArgs,
) -> Result<usize, Box<dp_engine::Error>> {
    let prepared = dp_engine::prepare(&PrepareOptions {
        project_dir: global.project_dir.clone(),
        vars: args.select.vars.clone(),
        select: args.select.select.clone(),
        exclude: args.select.exclude.clone(),
    })?;
    runtime.block_on(dp_engine::check(&prepared))?;
    Ok(prepared.graph.models.len())
}

/// One JSON record per problem: a diagnostic that gathers others stands for them.
fn flatten(diagnostic: &dyn Diagnostic, records: &mut Vec<Value>) {
    if let Some(related) = diagnostic.related() {
        let related: Vec<&dyn Diagnostic> = related.collect();
        if !related.is_empty() {
            for inner in related {
                flatten(inner, records);
            }
            return;
        }
    }
    let label = diagnostic.labels().and_then(|mut labels| labels.next());
    let place = match (diagnostic.source_code(), &label) {
        (Some(source), Some(label)) => source.read_span(label.inner(), 0, 0).ok().map(|contents| {
            (
                contents.name().map(str::to_string),
                contents.line() + 1,
                contents.column() + 1,
            )
        }),
        _ => None,
    };
    let (file, line, column) = match place {
        Some((file, line, column)) => (file, Some(line), Some(column)),
        None => (None, None, None),
    };
    records.push(json!({
        "file": file,
        "line": line,
        "column": column,
        "code": diagnostic.code().map(|c| c.to_string()),
        "message": diagnostic.to_string(),
        "help": diagnostic.help().map(|h| h.to_string()),
    }));
}
