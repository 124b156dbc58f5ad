//! LOAD: the environment a project runs in: the process's variables, then those of the
//! project's `.env` file (which the process's win over). Secrets in it, variables named
//! `DP_SECRET_*`, are registered to be masked in every output.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::LoadError;
use super::storage_options::Env;

/// The project's file of environment variables (kept out of git).
pub const DOTENV_FILE: &str = ".env";

/// Variables whose names start with this are secrets: their values are masked everywhere.
pub const SECRET_PREFIX: &str = "DP_SECRET_";

/// The variables of the project's `.env` that the process does not set; and every secret of
/// both registered for masking.
pub fn read_dotenv(root: &Path) -> Result<BTreeMap<String, String>, LoadError> {
    let path = root.join(DOTENV_FILE);
    let mut found = BTreeMap::new();
    if path.is_file() {
        let entries = dotenvy::from_path_iter(&path).map_err(|error| bad(&path, error))?;
        for entry in entries {
            let (name, value) = entry.map_err(|error| bad(&path, error))?;
            if std::env::var_os(&name).is_none() {
                found.insert(name, value);
            }
        }
    }
    let secrets = std::env::vars()
        .chain(found.clone())
        .filter(|(name, _)| name.starts_with(SECRET_PREFIX));
    for (_, value) in secrets {
        crate::report::register_secret(&value);
    }
    Ok(found)
}

fn bad(path: &Path, error: dotenvy::Error) -> LoadError {
    LoadError::Dotenv {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}

/// Reads a variable: the process's, else the project's `.env`.
pub fn env(dotenv: &BTreeMap<String, String>) -> Env {
    let dotenv = dotenv.clone();
    Arc::new(move |name| {
        std::env::var(name)
            .ok()
            .or_else(|| dotenv.get(name).cloned())
    })
}
