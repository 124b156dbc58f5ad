//! `dp test`: the tests of the selected nodes, against the published data.

use std::collections::BTreeSet;
use std::process::ExitCode;

use dp_engine::audit::{TestKind, TestOptions};

use crate::args::{GlobalArgs, SelectArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<ExitCode> {
    let (select, kinds) = test_types(&args.select)?;
    let args = SelectArgs {
        select,
        exclude: args.exclude.clone(),
        vars: args.vars.clone(),
    };
    // The same static check as build and compile: a test of a model that does not plan would
    // only fail later, less clearly.
    let runtime = super::runtime()?;
    let (prepared, _) = super::prepare_checked(&runtime, global, &args)?;
    let target = &prepared.target;
    let options = TestOptions {
        warehouse: dp_engine::storage::Warehouse::at(target.warehouse.clone()),
        failures_dir: dp_engine::audit::failures_dir(&prepared.project.root),
        kinds,
        run_id: dp_engine::execute::new_run_id(),
        memory_limit: target.memory_limit,
    };
    let printer = Printer::new(global.log_format, global.quiet);
    let summary = runtime.block_on(dp_engine::audit::run_tests(
        prepared.unit_test_inputs(),
        &prepared.selected,
        &options,
        &printer,
    ));
    super::finish(
        &prepared.project.root,
        |path| dp_engine::report::write_test_results(path, &summary),
        summary.success(),
    )
}

/// The `test_type:` selectors (which kinds of test to run; all when none) and the other ones.
fn test_types(select: &[String]) -> miette::Result<(Vec<String>, BTreeSet<TestKind>)> {
    let all = [TestKind::Data, TestKind::Singular, TestKind::Unit];
    let mut kinds = BTreeSet::new();
    let mut nodes = Vec::new();
    for word in select.iter().flat_map(|s| s.split_whitespace()) {
        match word.strip_prefix("test_type:") {
            Some(kind) => match all.iter().find(|k| k.name() == kind) {
                Some(kind) => {
                    kinds.insert(*kind);
                }
                None => miette::bail!(
                    code = "dp::unknown_test_type",
                    help = "use test_type:data, test_type:singular or test_type:unit",
                    "unknown test type `{kind}`"
                ),
            },
            None => nodes.push(word.to_string()),
        }
    }
    if kinds.is_empty() {
        kinds.extend(all);
    }
    Ok((nodes, kinds))
}
