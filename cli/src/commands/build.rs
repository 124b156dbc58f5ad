//! `dp build`: run the selected models, seeds and snapshots and publish them; `dp seed`: only
//! the seeds; `dp snapshot`: only the snapshots.

use std::process::ExitCode;

use dp_engine::BuildSettings;

use crate::args::{BuildArgs, GlobalArgs};
use crate::printer::Printer;

/// The kind of node a command runs alone.
#[derive(Debug, Clone, Copy)]
pub enum Only {
    Seeds,
    Snapshots,
}

pub fn run(global: &GlobalArgs, args: &BuildArgs, only: Option<Only>) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let prepared = super::prepare_partial(global, &args.select)?;
    let mut checked = runtime.block_on(dp_engine::check_each(&prepared));
    if args.fail_fast || prepared.target.fail_fast {
        checked = checked.strict()?;
    }
    super::show_check_warnings(global, std::mem::take(&mut checked.warnings));
    if let Some(only) = only {
        let models = &prepared.project.models;
        checked.keep_only(|name| {
            models.get(name).is_some_and(|node| match only {
                Only::Seeds => node.is_seed,
                Only::Snapshots => node.snapshot.is_some(),
            })
        });
    }
    // What is no one model's fails the run, after everything that can build has.
    let errors = std::mem::take(&mut checked.errors);
    let no_errors = errors.is_empty();
    for error in errors {
        super::warn(&miette::Report::new(error));
    }
    let settings = BuildSettings {
        threads: args.threads,
        memory_limit: args.memory_limit,
        full_refresh: args.full_refresh,
        dry_run: args.dry_run,
        no_diff: args.no_diff,
        ..Default::default()
    };
    let printer = Printer::new(global.log_format, global.quiet);
    let summary = runtime.block_on(prepared.build(checked, settings, &printer))?;
    Ok(super::exit_code(summary.success() && no_errors))
}
