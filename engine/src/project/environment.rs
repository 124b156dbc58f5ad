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
/// both registered for masking. A secret shorter than [`crate::report::MIN_SECRET_CHARS`] (but not
/// empty: that hides nothing) is refused, every one at once: masking it would garble all output,
/// and not masking it would print it.
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
    let from_process: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .filter(|(name, _)| name.starts_with(SECRET_PREFIX))
        .collect();
    let from_dotenv = found
        .iter()
        .filter(|(name, _)| name.starts_with(SECRET_PREFIX));
    let mut too_short = Vec::new();
    for (name, value) in from_process.iter().chain(from_dotenv) {
        let length = value.chars().count();
        if length == 0 || length >= crate::report::MIN_SECRET_CHARS {
            crate::report::register_secret(value);
            continue;
        }
        // The value itself is never shown: not in the message, nor as a snippet of `.env`.
        let origin = if from_process.contains_key(name) {
            "set in dp's environment".to_string()
        } else {
            match dotenv_line(&path, name) {
                Some(line) => format!("{DOTENV_FILE} line {line}"),
                None => format!("set in {DOTENV_FILE}"),
            }
        };
        too_short.push(LoadError::SecretTooShort {
            variable: name.clone(),
            origin,
        });
    }
    crate::source::problems(too_short, |problems| LoadError::Many { problems })?;
    Ok(found)
}

/// The number (from 1) of the last line of the `.env` file at `path` that sets `name`: the one
/// that wins.
fn dotenv_line(path: &Path, name: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            line.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(index, _)| index + 1)
        .last()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_secret_in_dotenv_is_refused_at_its_line_without_its_value() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(DOTENV_FILE),
            "# secrets\nDP_SECRET_ISSUE_28_LONG='long enough'\nexport DP_SECRET_ISSUE_28_PIN='q7z'\n\
             DP_SECRET_ISSUE_28_EMPTY=\nDP_ISSUE_28_PLAIN=ab\n",
        )
        .unwrap();
        let Err(error) = read_dotenv(dir.path()) else {
            panic!("a secret of 3 characters was accepted");
        };
        assert!(
            matches!(
                &error,
                LoadError::SecretTooShort { variable, origin }
                    if variable == "DP_SECRET_ISSUE_28_PIN" && origin == ".env line 3"
            ),
            "{error:?}"
        );
        let shown = format!(
            "{error} {:?}",
            miette::Diagnostic::help(&error).map(|h| h.to_string())
        );
        assert!(!shown.contains("q7z"), "{shown}");
        assert_eq!(
            miette::Diagnostic::code(&error).unwrap().to_string(),
            "dp::secret_too_short"
        );
    }
}
