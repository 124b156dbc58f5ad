//! `dp deps`: install the project's packages.

use std::process::ExitCode;

use crate::args::GlobalArgs;

pub fn run(global: &GlobalArgs) -> miette::Result<ExitCode> {
    let installed = dp_engine::install_packages(&global.project_dir)?;
    if !global.quiet {
        let mut text = match installed.is_empty() {
            true => "No packages to install: the project has no packages.yml\n".to_string(),
            false => format!("Installed {} packages:\n", installed.len()),
        };
        for package in &installed {
            let pinned = package
                .pinned
                .as_deref()
                .map(|p| format!(" @ {p}"))
                .unwrap_or_default();
            text.push_str(&format!("  {}{pinned}\n", package.name));
        }
        if !installed.is_empty() {
            text.push_str(&format!("Pinned in {}\n", dp_engine::LOCK_FILE));
        }
        super::out(&text);
    }
    Ok(ExitCode::SUCCESS)
}
