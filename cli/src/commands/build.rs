//! `dp build`: run the selected models and publish them.

use std::process::ExitCode;

use dp_engine::execute::BuildOptions;

use crate::args::{BuildArgs, GlobalArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &BuildArgs) -> miette::Result<ExitCode> {
    let runtime = super::runtime()?;
    let (prepared, plan) = super::prepare_checked(&runtime, global, &args.select)?;
    let target = &prepared.target;
    let threads = args
        .threads
        .or(target.threads)
        // A model's build also waits on storage (creating files, committing): two per core keep
        // the cores busy.
        .unwrap_or_else(|| 2 * std::thread::available_parallelism().map_or(1, |n| n.get()));
    let options = BuildOptions {
        warehouse: dp_engine::storage::Warehouse::at(target.warehouse.clone()),
        threads,
        run_id: dp_engine::execute::new_run_id(),
        failures_dir: dp_engine::audit::failures_dir(&prepared.project.root),
        memory_limit: args.memory_limit.or(target.memory_limit),
    };
    let printer = Printer::new(global.log_format, global.quiet);
    let summary = runtime.block_on(dp_engine::execute::build(
        &plan,
        prepared.unit_test_inputs(),
        &options,
        &printer,
    ));
    super::finish(
        &prepared.project.root,
        |path| dp_engine::report::write_run_results(path, &summary),
        summary.success(),
    )
}
