//! `dp backfill`: the selected models built once for each date of a range.

use std::process::ExitCode;

use dp_engine::{BackfillOptions, BuildSettings};

use crate::args::{BackfillArgs, GlobalArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &BackfillArgs) -> miette::Result<ExitCode> {
    let values = dp_engine::backfill_values(&args.start, &args.end, &args.step)?;
    let options = BackfillOptions {
        prepare: super::prepare_options(global, &args.select),
        var: args.var.clone(),
        values,
        threads: args.threads.unwrap_or(0),
        force: args.force,
        settings: BuildSettings {
            memory_limit: args.memory_limit,
            ..Default::default()
        },
    };
    backfill(global, options)
}

/// Run the backfill of `options` and show it.
pub fn backfill(global: &GlobalArgs, options: BackfillOptions) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let printer = Printer::for_backfill(global.log_format, global.quiet);
    let summary = runtime.block_on(dp_engine::backfill(&options, &printer))?;
    Ok(super::exit_code(summary.success()))
}
