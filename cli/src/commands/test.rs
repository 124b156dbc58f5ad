//! `dp test`: the tests of the selected nodes, against the published data.

use std::process::ExitCode;

use crate::args::{GlobalArgs, SelectArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<ExitCode> {
    let (select, kinds) =
        dp_engine::graph::split_test_types(&args.select).map_err(dp_engine::Error::from)?;
    let args = SelectArgs {
        select,
        exclude: args.exclude.clone(),
        vars: args.vars.clone(),
    };
    // The same static check as build and compile: a test of a model that does not plan would
    // only fail later, less clearly.
    let runtime = super::runtime()?;
    let (prepared, _) = super::prepare_checked(&runtime, global, &args)?;
    let printer = Printer::new(global.log_format, global.quiet);
    let summary = runtime.block_on(prepared.test(kinds, &printer))?;
    Ok(super::exit_code(summary.success()))
}
