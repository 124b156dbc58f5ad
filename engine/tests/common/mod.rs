//! What the engine's integration tests share: a copy of a project, and a reporter that says
//! nothing.

use std::path::Path;

use dp_engine::report::{Reporter, RunEvent};

/// Ignores every event.
pub struct Quiet;

impl Reporter for Quiet {
    fn report(&self, _: RunEvent<'_>) {}
}

/// Copy the folder `from` to `to`, leaving out what a run wrote (`warehouse/`, `target/`).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "warehouse" || name == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(name));
        } else {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}
