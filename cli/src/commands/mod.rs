//! One module per command; each returns the exit code of a run that could start.

mod build;
mod compile;
mod ls;
mod test;

use std::process::ExitCode;

use dp_engine::PrepareOptions;

use crate::args::{Cli, Command, GlobalArgs, SelectArgs};

/// Exit code of a pipeline that ran and failed.
pub fn pipeline_failed() -> ExitCode {
    ExitCode::from(1)
}

/// Exit code when dp could not run: bad usage, a project it cannot load, an internal error.
pub fn cannot_run() -> ExitCode {
    ExitCode::from(2)
}

/// Run the command the user asked for.
pub fn run(cli: Cli) -> miette::Result<ExitCode> {
    match &cli.command {
        Command::Build(args) => build::run(&cli.global, args),
        Command::Compile(args) => compile::run(&cli.global, args),
        Command::Ls(args) => ls::run(&cli.global, args),
        Command::Test(args) => test::run(&cli.global, args),
    }
}

fn prepare(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<dp_engine::Prepared> {
    Ok(dp_engine::prepare(&PrepareOptions {
        project_dir: global.project_dir.clone(),
        vars: args.vars.clone(),
        select: args.select.clone(),
        exclude: args.exclude.clone(),
    })?)
}
