//! `dp ls`: the selected nodes, in execution order.

use std::process::ExitCode;

use crate::args::{GlobalArgs, SelectArgs};

pub fn run(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<ExitCode> {
    let prepared = super::prepare(global, args)?;
    let mut out = String::new();
    for node in prepared.selected_nodes() {
        out.push_str(&format!("{node}\n"));
    }
    super::out(&out);
    Ok(ExitCode::SUCCESS)
}
