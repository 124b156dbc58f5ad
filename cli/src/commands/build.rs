//! `dp build`: run the selected models and publish them.

use std::process::ExitCode;

use dp_engine::BuildSettings;

use crate::args::{BuildArgs, GlobalArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &BuildArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let (prepared, plan) = super::prepare_checked(&runtime, global, &args.select)?;
    let settings = BuildSettings {
        threads: args.threads,
        memory_limit: args.memory_limit,
        ..Default::default()
    };
    let printer = Printer::new(global.log_format, global.quiet);
    let summary = runtime.block_on(prepared.build(&plan, settings, &printer))?;
    Ok(super::exit_code(summary.success()))
}
