//! `dp retry`: run again exactly what the last run did not build, with the vars it had.

use std::process::ExitCode;

use dp_engine::{BuildSettings, Retry};

use crate::args::{GlobalArgs, RetryArgs};
use crate::printer::Printer;

pub fn run(global: &GlobalArgs, args: &RetryArgs) -> miette::Result<ExitCode> {
    match dp_engine::retry(&global.project_dir)? {
        Retry::Nothing { command } => {
            if !global.quiet {
                super::out(&format!(
                    "Nothing to retry: the last run ({command}) built everything\n"
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        Retry::Build {
            mut options,
            full_refresh,
        } => {
            if global.target.is_some() {
                options.target = global.target.clone();
            }
            if !global.quiet {
                super::out(&format!(
                    "Retrying {} of the last build: {}\n",
                    plural(options.select.len(), "model"),
                    options.select.join(" ")
                ));
            }
            let runtime = super::runtime()?;
            let prepared = dp_engine::prepare(&options)?.complete()?;
            super::show_warnings(global, &prepared.project);
            let checked = runtime.block_on(dp_engine::check(&prepared))?;
            let printer = Printer::new(global.log_format, global.quiet);
            let settings = BuildSettings {
                full_refresh,
                ..Default::default()
            };
            let summary = runtime.block_on(prepared.build(checked, settings, &printer))?;
            Ok(super::exit_code(summary.success()))
        }
        Retry::Backfill(mut options) => {
            if global.target.is_some() {
                options.prepare.target = global.target.clone();
            }
            if !global.quiet {
                super::out(&format!(
                    "Retrying {} of the last backfill: {}\n",
                    plural(options.values.len(), "date"),
                    options.values.join(" ")
                ));
            }
            options.threads = args.threads.unwrap_or(0);
            super::backfill::backfill(global, options)
        }
    }
}

fn plural(count: usize, word: &str) -> String {
    match count {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}
