//! LOAD: the SQL dialect a project's models are planned and run with: its `dialect:`, or, for a
//! dbt project without one, the type of its profile's target (dbt-duckdb's `type: duckdb`) in
//! the `profiles.yml` dbt would read: in `$DBT_PROFILES_DIR`, else the project folder, else
//! `~/.dbt/`.

use std::path::Path;

pub use super::config::Dialect;
use super::{DBT_PROJECT_FILE, ProjectConfig};

/// The file dbt reads its connection profiles from.
pub const PROFILES_FILE: &str = "profiles.yml";

impl Dialect {
    /// The dialect of the project at `root` with `config`: its own `dialect:`, else its dbt
    /// profile's type, else DataFusion's.
    pub fn of(config: &ProjectConfig, root: &Path) -> Dialect {
        if let Some(dialect) = config.dialect {
            return dialect;
        }
        let dbt = root.join(DBT_PROJECT_FILE).is_file();
        match &config.dbt_profile {
            Some(profile) if dbt => profiles_file(root)
                .and_then(|path| std::fs::read_to_string(path).ok())
                .and_then(|text| profile_type(&text, profile))
                .map_or(Dialect::Datafusion, |kind| Dialect::of_adapter(&kind)),
            _ => Dialect::Datafusion,
        }
    }

    /// The dialect closest to a dbt adapter's (a profile's `type:`).
    fn of_adapter(kind: &str) -> Dialect {
        match kind.trim().to_ascii_lowercase().as_str() {
            "duckdb" | "motherduck" => Dialect::Duckdb,
            _ => Dialect::Datafusion,
        }
    }
}

/// The `profiles.yml` dbt reads for the project at `root`: in `$DBT_PROFILES_DIR`, else in the
/// project folder, else in `~/.dbt/`.
fn profiles_file(root: &Path) -> Option<std::path::PathBuf> {
    let env_dir = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    [
        env_dir("DBT_PROFILES_DIR").map(std::path::PathBuf::from),
        Some(root.to_path_buf()),
        env_dir("HOME").map(|home| std::path::Path::new(&home).join(".dbt")),
    ]
    .into_iter()
    .flatten()
    .map(|dir| dir.join(PROFILES_FILE))
    .find(|path| path.is_file())
}

/// The `type:` of `profile`'s target in a `profiles.yml`: its `target:` output, else the one
/// type all its outputs share.
fn profile_type(profiles: &str, profile: &str) -> Option<String> {
    let profiles: serde_yaml::Value = serde_yaml::from_str(profiles).ok()?;
    let profile = profiles.get(profile)?;
    let outputs = profile.get("outputs")?.as_mapping()?;
    let kind = |output: &serde_yaml::Value| output.get("type")?.as_str().map(str::to_string);
    if let Some(target) = profile.get("target").and_then(|t| t.as_str())
        && let Some(output) = outputs.get(target)
    {
        return kind(output);
    }
    let mut kinds = outputs.values().filter_map(kind);
    let first = kinds.next()?;
    kinds.all(|other| other == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dbt_projects_dialect_is_its_profiles_type() {
        let profiles = "shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: x.duckdb}\n    prod: {type: snowflake}\n";
        assert_eq!(profile_type(profiles, "shop").as_deref(), Some("duckdb"));
        assert_eq!(profile_type(profiles, "other"), None);
        let untargeted = "shop:\n  outputs:\n    a: {type: duckdb}\n    b: {type: duckdb}\n";
        assert_eq!(profile_type(untargeted, "shop").as_deref(), Some("duckdb"));
        let mixed = "shop:\n  target: \"{{ env_var('T') }}\"\n  outputs:\n    a: {type: duckdb}\n    b: {type: postgres}\n";
        assert_eq!(profile_type(mixed, "shop"), None);
        assert_eq!(Dialect::of_adapter("DuckDB"), Dialect::Duckdb);
        assert_eq!(Dialect::of_adapter("postgres"), Dialect::Datafusion);
    }
}
