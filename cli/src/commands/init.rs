//! `dp init`: a new project, ready to build.

use std::process::ExitCode;

use crate::args::{GlobalArgs, InitArgs};

pub fn run(global: &GlobalArgs, args: &InitArgs) -> miette::Result<ExitCode> {
    let base = &global.project_dir;
    let (folder, name) = match &args.name {
        Some(name) => (base.join(name), name.clone()),
        None => {
            let absolute = std::path::absolute(base)
                .map_err(|e| miette::miette!("cannot resolve {}: {e}", base.display()))?;
            let name = absolute
                .file_name()
                .map(|n| n.to_string_lossy().replace('-', "_"))
                .unwrap_or_default();
            (absolute, name)
        }
    };
    let files = dp_engine::init(&folder, &name)?;
    if !global.quiet {
        let mut text = format!("Created project `{name}` in {}:\n", folder.display());
        for file in files {
            text.push_str(&format!("  {}\n", file.display()));
        }
        text.push_str(&format!(
            "Next: cd {} && dp build && dp test\n",
            folder.display()
        ));
        super::out(&text);
    }
    Ok(ExitCode::SUCCESS)
}
