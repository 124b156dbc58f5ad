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

/// Run the backfill of `options`; `threads` 0 takes the target's `threads`, else the number
/// of cores.
pub fn backfill(global: &GlobalArgs, mut options: BackfillOptions) -> miette::Result<ExitCode> {
    if options.threads == 0 {
        let prepared = dp_engine::prepare(&options.prepare)?;
        super::show_warnings(global, &prepared.project);
        options.threads = prepared
            .target
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    }
    let runtime = super::runtime()?;
    let printer = Printer::for_backfill(global.log_format, global.quiet);
    let summary = runtime.block_on(dp_engine::backfill(&options, &printer))?;
    Ok(super::exit_code(summary.success()))
}
