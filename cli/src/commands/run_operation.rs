//! `dp run-operation`: call a macro with its arguments against the published tables, and show
//! what it logged.

use std::process::ExitCode;

use crate::args::{GlobalArgs, RunOperationArgs, SelectArgs};

pub fn run(global: &GlobalArgs, args: &RunOperationArgs) -> miette::Result<ExitCode> {
    let select = SelectArgs {
        vars: args.vars.clone(),
        ..SelectArgs::default()
    };
    let prepared = super::prepare_partial(global, &select)?;
    let runtime = super::runtime()?;
    let operation = runtime.block_on(prepared.run_operation(&args.name, &args.args))?;
    let mut text = String::new();
    for message in operation.messages {
        text.push_str(&message);
        text.push('\n');
    }
    super::out(&text);
    Ok(ExitCode::SUCCESS)
}
