//! `dp rollback`: restore a model's table to an earlier version as a new commit, after showing
//! what changes.

use std::process::ExitCode;

use crate::args::{GlobalArgs, RollbackArgs, SelectArgs};

pub fn run(global: &GlobalArgs, args: &RollbackArgs) -> miette::Result<ExitCode> {
    let prepared = super::prepare_partial(global, &SelectArgs::default())?;
    let runtime = super::runtime()?;
    let plan = runtime.block_on(prepared.plan_rollback(&args.model, args.to_version))?;
    super::out(&describe(&plan));
    if args.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let version = runtime.block_on(prepared.rollback(&plan, args.force))?;
    let mut text = format!(
        "Rolled back `{}` to version {}: now version {version}\n",
        plan.model, plan.to_version
    );
    if !plan.downstream.is_empty() {
        text.push_str(&format!(
            "Downstream models to rebuild: {}\n  {}\n",
            plan.downstream.join(", "),
            plan.rebuild_command()
        ));
    }
    super::out(&text);
    Ok(ExitCode::SUCCESS)
}

/// What the rollback changes, partition by partition.
fn describe(plan: &dp_engine::RollbackPlan) -> String {
    let mut text = format!(
        "Rollback of `{}` from version {} to version {}: {} files removed, {} restored\n",
        plan.model,
        plan.from_version,
        plan.to_version,
        plan.change.files_removed,
        plan.change.files_restored
    );
    for (partition, (now, then)) in &plan.change.partitions {
        let name = if partition.is_empty() {
            "(table)"
        } else {
            partition
        };
        text.push_str(&format!("  {name:<30} {now:>10} rows -> {then:>10} rows\n"));
    }
    for (model, read) in &plan.built_from_undone {
        text.push_str(&format!(
            "  downstream `{model}` was built from version {read} of `{}`\n",
            plan.model
        ));
    }
    text
}
