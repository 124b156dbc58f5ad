//! `dp test`: the tests of the selected nodes, against the published data.

use std::process::ExitCode;

use crate::args::{CoverArgs, GlobalArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &CoverArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let printer = Printer::new(global.log_format, global.quiet);
    // The engine splits `test_type:` off the selectors and runs the same static check as build
    // and compile first.
    let (summary, failures) = runtime.block_on(dp_engine::test(
        &super::prepare_options(global, &args.select),
        args.fail_fast,
        &printer,
        |prepared| super::show_warnings(global, &prepared.project),
    ))?;
    let covered = super::show_failures(failures);
    Ok(super::exit_code(summary.success() && covered))
}
