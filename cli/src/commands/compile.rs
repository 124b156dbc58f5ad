//! `dp compile`: render and plan the selected models and write their SQL to target/compiled/.

use std::process::ExitCode;

use crate::args::{GlobalArgs, SelectArgs};

pub fn run(global: &GlobalArgs, args: &SelectArgs) -> miette::Result<ExitCode> {
    let (prepared, plan) = super::prepare_checked(&super::runtime()?, global, args)?;
    let written = dp_engine::write_compiled(&prepared.project.target_dir(), &plan)?;
    if !global.quiet {
        let mut text = String::new();
        for path in &written {
            let shown = path.strip_prefix(&prepared.project.root).unwrap_or(path);
            text.push_str(&format!("{}\n", shown.display()));
        }
        text.push_str(&format!("Compiled {} models\n", written.len()));
        super::out(&text);
    }
    Ok(ExitCode::SUCCESS)
}
