//! `dp build`: run the selected models and seeds and publish them; `dp seed`: only the seeds.

use std::process::ExitCode;

use dp_engine::BuildSettings;

use crate::args::{BuildArgs, GlobalArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &BuildArgs, only_seeds: bool) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let (prepared, mut plan) = super::prepare_checked(&runtime, global, &args.select)?;
    if only_seeds {
        plan.models.retain(|model| {
            prepared
                .project
                .models
                .get(&model.name)
                .is_some_and(|m| m.is_seed)
        });
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
    let summary = runtime.block_on(prepared.build(&plan, settings, &printer))?;
    Ok(super::exit_code(summary.success()))
}
