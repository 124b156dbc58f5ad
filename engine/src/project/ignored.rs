//! LOAD: the keys a project sets that dp accepts and ignores (dbt's `schema:` of a source, a
//! model's `grants`...). Each is said once, at the first place that sets it, with how many other
//! places do.

use std::collections::BTreeMap;

use miette::SourceSpan;

use super::LoadWarning;
use crate::source::SourceFile;

/// The ignored keys found so far, each at its first place.
#[derive(Debug, Default)]
pub struct IgnoredKeys {
    found: BTreeMap<String, Place>,
}

#[derive(Debug)]
struct Place {
    why: &'static str,
    file: SourceFile,
    at: SourceSpan,
    /// The other places (file, offset) that set it.
    others: std::collections::BTreeSet<(std::path::PathBuf, usize)>,
}

impl IgnoredKeys {
    /// `key`, set in `file` at `at`, is ignored because `why`.
    pub fn add(&mut self, key: &str, why: &'static str, file: &SourceFile, at: SourceSpan) {
        let place = self.found.entry(key.to_string()).or_insert_with(|| Place {
            why,
            file: file.clone(),
            at,
            others: Default::default(),
        });
        if (place.file.path(), place.at.offset()) != (file.path(), at.offset()) {
            place
                .others
                .insert((file.path().to_path_buf(), at.offset()));
        }
    }

    /// `key:` set in a YAML `file` in the entry that starts at byte `entry`.
    pub fn add_yaml(&mut self, key: &str, why: &'static str, file: &SourceFile, entry: usize) {
        self.add(key, why, file, yaml_key(file, key, entry));
    }

    /// One warning for each key, at its first place.
    pub fn into_warnings(self) -> impl Iterator<Item = LoadWarning> {
        self.found.into_iter().map(|(key, place)| {
            let elsewhere = match place.others.len() {
                0 => String::new(),
                1 => " (and at 1 other place)".to_string(),
                n => format!(" (and at {n} other places)"),
            };
            LoadWarning::IgnoredKey {
                key,
                src: place.file.named(),
                at: place.at,
                help: format!("{}{elsewhere}", place.why),
            }
        })
    }
}

/// Where `key:` is written in a YAML `file`, from byte `from` on (the whole file, else).
pub fn yaml_key(file: &SourceFile, key: &str, from: usize) -> SourceSpan {
    let needles = [format!("+{key}:"), format!("{key}:")];
    for needle in &needles {
        let at = file.find(needle, from);
        if !at.is_empty() {
            return at;
        }
    }
    for needle in &needles {
        let at = file.find(needle, 0);
        if !at.is_empty() {
            return at;
        }
    }
    (0, 0).into()
}
