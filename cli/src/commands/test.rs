//! `dp test`: the tests of the selected nodes, against the published data.

use std::process::ExitCode;

use crate::args::{GlobalArgs, SelectArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let printer = Printer::new(global.log_format, global.quiet);
    // The engine splits `test_type:` off the selectors and runs the same static check as build
    // and compile first.
    let summary = runtime.block_on(dp_engine::test(
        &super::prepare_options(global, args),
        &printer,
        |prepared| super::show_warnings(global, &prepared.project),
    ))?;
    Ok(super::exit_code(summary.success()))
}
