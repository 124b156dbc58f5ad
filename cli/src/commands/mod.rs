//! One module per command; each returns the exit code of a run that could start.

mod backfill;
mod build;
mod check;
mod compile;
mod deps;
mod docs;
mod history;
mod init;
mod lineage;
mod ls;
mod retry;
mod rollback;
mod run_operation;
mod show;
mod test;
mod vacuum;

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
        Command::Build(args) => build::run(&cli.global, args, None),
        Command::Seed(args) => build::run(&cli.global, args, Some(build::Only::Seeds)),
        Command::Snapshot(args) => build::run(&cli.global, args, Some(build::Only::Snapshots)),
        Command::Compile(args) => compile::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Ls(args) => ls::run(&cli.global, args),
        Command::Test(args) => test::run(&cli.global, args),
        Command::Vacuum(args) => vacuum::run(&cli.global, args),
        Command::Docs { command } => docs::run(&cli.global, command),
        Command::Lineage(args) => lineage::run(&cli.global, args),
        Command::Backfill(args) => backfill::run(&cli.global, args),
        Command::Retry(args) => retry::run(&cli.global, args),
        Command::History(args) => history::run(&cli.global, args),
        Command::Rollback(args) => rollback::run(&cli.global, args),
        Command::Init(args) => init::run(&cli.global, args),
        Command::Show(args) => show::run(&cli.global, args),
        Command::RunOperation(args) => run_operation::run(&cli.global, args),
        Command::Deps => deps::run(&cli.global),
    }
}

/// The exit code of a run that `succeeded` or not.
fn exit_code(succeeded: bool) -> ExitCode {
    if succeeded {
        ExitCode::SUCCESS
    } else {
        pipeline_failed()
    }
}

/// The async runtime a command runs the engine on.
fn runtime() -> miette::Result<tokio::runtime::Runtime> {
    dp_engine::runtime().map_err(|e| miette::miette!("cannot start the runtime: {e}"))
}

/// `prepare`, then the static checks of every selected model; returns their plan.
fn prepare_checked(
    runtime: &tokio::runtime::Runtime,
    global: &GlobalArgs,
    args: &SelectArgs,
) -> miette::Result<(dp_engine::Prepared, dp_engine::Plan)> {
    let prepared = prepare_partial(global, args)?;
    let checked = runtime.block_on(dp_engine::check(&prepared))?;
    show_check_warnings(global, checked.warnings);
    Ok((prepared, checked.plan))
}

/// Show on stderr what kept models from being covered: each problem (a failed model's, with
/// its name), then the models skipped for reading one. Returns whether there was none.
fn show_failures(failures: dp_engine::Failures) -> bool {
    let clean = failures.is_empty();
    for (model, problem) in failures.failed {
        warn(&miette::Report::new(problem).wrap_err(format!("`{model}` failed")));
    }
    for error in failures.errors {
        warn(&miette::Report::new(error));
    }
    for (model, because) in failures.skipped {
        eprintln!("SKIP {model}: upstream `{because}` did not check");
    }
    clean
}

/// Show the check's warnings on stderr.
fn show_check_warnings(global: &GlobalArgs, warnings: Vec<dp_engine::Error>) {
    if !global.quiet {
        for warning in warnings {
            warn(&miette::Report::new(warning));
        }
    }
}

/// Load, render and select, for a command that needs every model rendered.
fn prepare(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<dp_engine::Prepared> {
    Ok(prepare_partial(global, args)?.complete()?)
}

/// Load, render and select; models that did not render are left for the check to report.
fn prepare_partial(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<dp_engine::Prepared> {
    let prepared = dp_engine::prepare(&prepare_options(global, args))?;
    show_warnings(global, &prepared.project);
    Ok(prepared)
}

fn prepare_options(global: &GlobalArgs, args: &SelectArgs) -> PrepareOptions {
    PrepareOptions {
        project_dir: global.project_dir.clone(),
        target: global.target.clone(),
        vars: args.vars.clone(),
        select: args.select.clone(),
        exclude: args.exclude.clone(),
    }
}

/// Show what the project's files do that works but should change, as diagnostics on stderr.
fn show_warnings(global: &GlobalArgs, project: &dp_engine::project::Project) {
    if !global.quiet {
        for warning in &project.warnings {
            warn(&miette::Report::new(warning.clone()));
        }
    }
}

/// Write a diagnostic to stderr, secrets masked.
fn warn(diagnostic: &miette::Report) {
    eprintln!("{}", crate::masked::render(&**diagnostic));
}

/// Write `text` to stdout; a closed stdout (a pipe to `head`) ends the output, not dp.
fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(dp_engine::report::mask(text).as_bytes())
        .and_then(|()| stdout.flush())
        && error.kind() != std::io::ErrorKind::BrokenPipe
    {
        tracing::warn!(%error, "cannot write to stdout");
    }
}
