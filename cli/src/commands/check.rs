//! `dp check`: every problem the project's files hold, found without running anything.

use std::process::ExitCode;

use miette::Diagnostic;
use serde_json::{Value, json};

use crate::args::{CheckArgs, GlobalArgs, OutputFormat};

pub fn run(global: &GlobalArgs, args: &CheckArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let (checked, warnings) = check(&runtime, global, args);
    let checked = match checked {
        // Not a finding about the project: dp could not look at it (exit 2).
        Err(error) if error.cannot_run() => return Err((*error).into()),
        checked => checked,
    };
    match args.format {
        OutputFormat::Human => {
            if !global.quiet {
                for warning in &warnings {
                    super::warn(warning);
                }
            }
            match checked {
                Ok(models) => {
                    if !global.quiet {
                        super::out(&format!("No problems found ({models} models)\n"));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    super::warn(&miette::Report::new(*error));
                    Ok(super::pipeline_failed())
                }
            }
        }
        OutputFormat::Json => {
            let mut records = Vec::new();
            for warning in &warnings {
                flatten(warning.as_ref(), &mut records);
            }
            let failed = checked.as_ref().is_err();
            if let Err(error) = &checked {
                flatten(error.as_ref(), &mut records);
            }
            let json = serde_json::to_string_pretty(&records).unwrap_or_default();
            super::out(&format!("{json}\n"));
            Ok(if failed {
                super::pipeline_failed()
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}

/// Load, render, resolve, select and plan: the number of models, or every problem found; and
/// the warnings: the project's, and the check's when it found no problem (with problems, they
/// are among them).
fn check(
    runtime: &tokio::runtime::Runtime,
    global: &GlobalArgs,
    args: &CheckArgs,
) -> (Result<usize, Box<dp_engine::Error>>, Vec<miette::Report>) {
    let prepared = match dp_engine::prepare(&super::prepare_options(global, &args.select)) {
        Ok(prepared) => prepared,
        Err(error) => return (Err(Box::new(error)), Vec::new()),
    };
    let mut warnings: Vec<miette::Report> = prepared
        .project
        .warnings
        .iter()
        .cloned()
        .map(miette::Report::new)
        .collect();
    let checked = match runtime.block_on(dp_engine::check(&prepared)) {
        Ok(checked) => {
            warnings.extend(checked.warnings.into_iter().map(miette::Report::new));
            Ok(prepared.model_count())
        }
        Err(error) => Err(Box::new(error)),
    };
    (checked, warnings)
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
        "severity": match diagnostic.severity() {
            Some(miette::Severity::Warning) => "warning",
            Some(miette::Severity::Advice) => "advice",
            _ => "error",
        },
        "code": diagnostic.code().map(|c| c.to_string()),
        "message": diagnostic.to_string(),
        "help": diagnostic.help().map(|h| h.to_string()),
    }));
}
