//! `dp vacuum`: delete the files no version of the selected tables needs, past the retention.

use std::process::ExitCode;

use dp_engine::VacuumOptions;

use crate::args::{GlobalArgs, VacuumArgs};

pub fn run(global: &GlobalArgs, args: &VacuumArgs) -> miette::Result<ExitCode> {
    // Models whose templates need vars not given are vacuumed all the same.
    let prepared = super::prepare_partial(global, &args.select)?;
    let options = VacuumOptions {
        retain: args.retain.unwrap_or(prepared.target.vacuum_retention),
        dry_run: args.dry_run,
        force: args.force,
    };
    let runtime = super::runtime()?;
    let results = runtime.block_on(prepared.vacuum(&options));
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut failed = false;
    let mut total = 0;
    for result in results {
        let files = &result.vacuumed.files;
        total += files.len();
        if !global.quiet || args.dry_run {
            let mut text = format!("{}: {verb} {} files\n", result.model, files.len());
            for file in files {
                text.push_str(&format!("  {}/{file}\n", result.model));
            }
            super::out(&text);
        }
        if let Some(error) = result.vacuumed.error {
            failed = true;
            super::warn(&miette::Report::new(error));
        }
    }
    if !global.quiet {
        super::out(&format!("Vacuum {verb} {total} files\n"));
    }
    Ok(super::exit_code(!failed))
}
