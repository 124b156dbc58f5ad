//! LOAD: `dp_project.yml`, the project's name, variable defaults and targets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The file every dp project has at its root.
pub const PROJECT_FILE: &str = "dp_project.yml";

/// The file at the root of a dbt project, which dp reads when there is no `dp_project.yml`.
pub const DBT_PROJECT_FILE: &str = "dbt_project.yml";

/// dp_project.yml: the project's name, variable defaults and targets.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// The project's name.
    pub name: String,
    /// The project's version, accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub version: Option<serde_yaml::Value>,
    /// Default values of `var()`; `--vars` overrides them.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    /// The target used when `--target` is not given.
    #[serde(default)]
    pub target: Option<String>,
    /// Named targets: where models are stored and how builds run.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// Config of the models under each folder of models/, as in dbt_project.yml: config keys
    /// (`+materialized: table`, or without the `+`) and folders (`staging:`) nested; the deeper
    /// folder wins, then a model's own YAML `config:`, then its `config()`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub models: serde_yaml::Value,
    /// Config of the seeds under each folder of seeds/, as `models:` (a seed's own name may be
    /// the last key): `+column_types: {id: bigint}`, `+delimiter`, `+enabled`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub seeds: serde_yaml::Value,
    /// Config of the data tests declared in each folder's property files, as `models:`:
    /// `+severity`, `+warn_if`, `+error_if`, `+limit`, `+enabled`; a test's own `config:` wins.
    #[serde(default, alias = "tests")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub data_tests: serde_yaml::Value,
    /// Config of the snapshots under each folder of snapshots/, as `models:`: `+unique_key`,
    /// `+strategy`, `+updated_at`, `+check_cols`, `+hard_deletes`, `+tags`, `+enabled`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub snapshots: serde_yaml::Value,
    /// Commands run (with `sh -c`, in the project folder) when a build, seed or backfill ends,
    /// with `DP_RUN_RESULTS` (the run results' path), `DP_RUN_ID` and `DP_RUN_STATUS`
    /// (`success` or `failed`) in their environment: the place to page someone or post to a
    /// chat. Their output goes to target/hooks.log; a hook that fails or runs past
    /// `hook_timeout` is reported and changes nothing that was published.
    #[serde(default)]
    pub on_run_end: Option<super::OneOrMany>,
    /// Commands run as `on_run_end`, only when the run failed.
    #[serde(default)]
    pub on_failure: Option<super::OneOrMany>,
    /// How long a hook may run before it is stopped, such as `30s` or `5m` (default: 60s).
    #[serde(default)]
    pub hook_timeout: Option<String>,
    /// Whose SQL semantics models are planned and run with: `datafusion` (the default, close to
    /// Postgres) or `duckdb` (as dbt-duckdb runs them: unquoted names found whatever their
    /// case, `avg()` and `/` of decimals and integers give doubles, text literals take the type
    /// of the other side, DuckDB's names for unnamed columns). A dbt project without it takes
    /// it from its profile's type (`profiles.yml` in the project folder).
    #[serde(default)]
    pub dialect: Option<Dialect>,
    /// A dbt project's `profile:` name, to find its type in `profiles.yml`.
    #[serde(skip)]
    #[schemars(skip)]
    pub dbt_profile: Option<String>,
    /// A dbt project's configuration of its packages' nodes (`models: {<package>: {...}}`,
    /// and `seeds:`), by package: it overrides the package's own.
    #[serde(skip)]
    #[schemars(skip)]
    pub package_trees: BTreeMap<String, PackageTrees>,
    /// Where `adapter.dispatch(name, macro_namespace)` looks for a namespace's macros, as in
    /// dbt: `[{macro_namespace: dbt_utils, search_order: [my_project, dbt_utils]}]`.
    #[serde(default)]
    pub dispatch: Vec<DispatchConfig>,
}

/// One `dispatch:` entry: the packages searched, in order, for a namespace's macros.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DispatchConfig {
    pub macro_namespace: String,
    pub search_order: Vec<String>,
}

/// Whose SQL semantics a project's models are planned and run with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// DataFusion's SQL, close to Postgres.
    #[default]
    #[serde(alias = "postgres")]
    Datafusion,
    /// DuckDB's, as dbt-duckdb runs a project's models.
    Duckdb,
}

/// `dbt_project.yml`: what dp reads of it, and what it accepts and ignores. Targets are dp's
/// (a dbt profile names a warehouse connection dp does not need): the defaults, or `target:`
/// and `targets:` as in dp_project.yml.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct DbtProjectConfig {
    pub name: String,
    #[serde(default)]
    pub version: Option<serde_yaml::Value>,
    #[serde(default)]
    pub model_paths: Option<Vec<String>>,
    #[serde(default)]
    pub seed_paths: Option<Vec<String>>,
    #[serde(default)]
    pub test_paths: Option<Vec<String>>,
    #[serde(default)]
    pub macro_paths: Option<Vec<String>>,
    #[serde(default)]
    pub snapshot_paths: Option<Vec<String>>,
    #[serde(default)]
    pub docs_paths: Option<Vec<String>>,
    #[serde(default)]
    pub target_path: Option<String>,
    /// Global vars, and per package: `vars: {<project name>: {x: 1}}`.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_yaml::Value>,
    /// The config tree: the project's name, then folders of the model paths.
    #[serde(default)]
    pub models: serde_yaml::Value,
    #[serde(default)]
    pub seeds: serde_yaml::Value,
    #[serde(default, rename = "data_tests", alias = "tests")]
    pub data_tests: serde_yaml::Value,
    #[serde(default)]
    pub snapshots: serde_yaml::Value,
    /// dp's targets, for a dbt project that needs other than the defaults.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
    /// dp's SQL dialect; by default, the profile's type.
    #[serde(default)]
    pub dialect: Option<Dialect>,
    #[serde(default)]
    pub dispatch: Vec<DispatchConfig>,
    /// Where `dbt deps` (and `dp deps`) install packages (default `dbt_packages`).
    #[serde(default)]
    pub packages_install_path: Option<String>,
    /// Every other key: those of [`ACCEPTED_DBT_KEYS`], and the ones shown as ignored
    /// (`on-run-start:`...).
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

/// What a dbt project's `models:` and `seeds:` give one package's nodes.
#[derive(Debug, Clone, Default)]
pub struct PackageTrees {
    pub models: serde_yaml::Value,
    pub seeds: serde_yaml::Value,
}

/// Keys of dbt_project.yml that mean nothing to dp and need no warning: the profile (dp
/// connects to no warehouse), versions, analyses (never run) and what `dbt clean` deletes.
pub const ACCEPTED_DBT_KEYS: &[&str] = &[
    "profile",
    "config-version",
    "require-dbt-version",
    "analysis-paths",
    "clean-targets",
];

/// Where a project keeps each kind of file, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPaths {
    pub models: Vec<String>,
    pub seeds: Vec<String>,
    pub tests: Vec<String>,
    pub macros: Vec<String>,
    pub snapshots: Vec<String>,
    /// Folders besides the model folders holding `{% docs %}` blocks.
    pub docs: Vec<String>,
    /// Where dp writes run results, compiled SQL, test failures and the docs.
    pub target: String,
    /// Where `dp deps` installs the project's packages, each a dbt project.
    pub packages: String,
}

impl Default for ProjectPaths {
    fn default() -> Self {
        let one = |folder: &str| vec![folder.to_string()];
        Self {
            models: one("models"),
            seeds: one("seeds"),
            tests: one("tests"),
            macros: one("macros"),
            snapshots: one("snapshots"),
            docs: Vec::new(),
            target: "target".into(),
            packages: "dbt_packages".into(),
        }
    }
}

impl DbtProjectConfig {
    /// What dp runs of it: the project's config, where its files are, and the keys it ignores.
    pub fn into_dp(self) -> (ProjectConfig, ProjectPaths, Vec<String>) {
        let defaults = ProjectPaths::default();
        let paths = ProjectPaths {
            models: self.model_paths.unwrap_or(defaults.models),
            seeds: self.seed_paths.unwrap_or(defaults.seeds),
            tests: self.test_paths.unwrap_or(defaults.tests),
            macros: self.macro_paths.unwrap_or(defaults.macros),
            snapshots: self.snapshot_paths.unwrap_or(defaults.snapshots),
            docs: self.docs_paths.unwrap_or_default(),
            target: self.target_path.unwrap_or(defaults.target),
            packages: self.packages_install_path.unwrap_or(defaults.packages),
        };
        // `vars: {<this project>: {...}}` are this project's; other packages' are not.
        let mut vars = self.vars;
        if let Some(serde_yaml::Value::Mapping(own)) = vars.remove(&self.name) {
            for (key, value) in own {
                if let Some(key) = key.as_str() {
                    vars.insert(key.to_string(), value);
                }
            }
        }
        let mut package_trees: BTreeMap<String, PackageTrees> = BTreeMap::new();
        for (tree, is_seeds) in [(&self.models, false), (&self.seeds, true)] {
            let serde_yaml::Value::Mapping(entries) = tree else {
                continue;
            };
            for (key, value) in entries {
                match key.as_str() {
                    Some(name)
                        if !name.starts_with('+') && name != self.name && value.is_mapping() =>
                    {
                        let trees = package_trees.entry(name.to_string()).or_default();
                        match is_seeds {
                            false => trees.models = value.clone(),
                            true => trees.seeds = value.clone(),
                        }
                    }
                    _ => {}
                }
            }
        }
        let config = ProjectConfig {
            package_trees,
            models: package_tree(&self.models, &self.name),
            seeds: package_tree(&self.seeds, &self.name),
            data_tests: package_tree(&self.data_tests, &self.name),
            snapshots: package_tree(&self.snapshots, &self.name),
            name: self.name,
            version: self.version,
            vars,
            target: self.target,
            targets: self.targets,
            on_run_end: None,
            on_failure: None,
            hook_timeout: None,
            dialect: self.dialect,
            dispatch: self.dispatch,
            dbt_profile: self
                .other
                .get("profile")
                .and_then(|profile| profile.as_str())
                .map(str::to_string),
        };
        let ignored = self
            .other
            .into_keys()
            .filter(|key| !ACCEPTED_DBT_KEYS.contains(&key.as_str()))
            .collect();
        (config, paths, ignored)
    }
}

/// A dbt config tree (`models:` of dbt_project.yml) as dp's: the keys at its top that are
/// config (`+materialized`), overridden by those under the project's name; other packages'
/// entries dropped.
fn package_tree(tree: &serde_yaml::Value, project: &str) -> serde_yaml::Value {
    let serde_yaml::Value::Mapping(entries) = tree else {
        return tree.clone();
    };
    let mut merged = serde_yaml::Mapping::new();
    for (key, value) in entries {
        if key.as_str().is_some_and(|k| k.starts_with('+')) || !value.is_mapping() {
            merged.insert(key.clone(), value.clone());
        }
    }
    if let Some(serde_yaml::Value::Mapping(own)) = entries.get(project) {
        for (key, value) in own {
            // The project's own level wins over the top's, with or without its `+`.
            if let Some(name) = key.as_str() {
                let bare = name.trim_start_matches('+');
                merged.remove(bare);
                merged.remove(format!("+{bare}"));
            }
            merged.insert(key.clone(), value.clone());
        }
    }
    serde_yaml::Value::Mapping(merged)
}

/// One target: where the model tables live and how a build runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The folder (relative to the project) or URL holding one Delta table per model.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// How many models are built at once (default: twice the number of cores, since a build also
    /// waits on storage). Each model's queries run on its share of the cores: one model alone
    /// gets them all.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Deprecated and ignored: a build no longer deletes files it did not write. `dp vacuum`
    /// removes the leftovers of killed builds once they are older than `vacuum_retention`.
    #[serde(default)]
    pub orphan_min_age_secs: Option<u64>,
    /// How old a file no version needs must be before `dp vacuum` deletes it, such as `7d`,
    /// `36h` or `90m` (default: 7d, Delta's own minimum). A build of the model still running
    /// owns files younger than that; a shorter retention needs `dp vacuum --force`.
    #[serde(default)]
    pub vacuum_retention: Option<String>,
    /// The most memory the queries of a build or of `dp test` may hold, such as `512MB` or `4GB`
    /// (K, M, G and T count in 1024s). Sorts, aggregations and joins spill to temporary files to stay within it; a
    /// query that still does not fit fails with "resources exhausted". Default: no limit.
    #[serde(default)]
    pub memory_limit: Option<String>,
    /// How many times a model whose build failed transiently (the object store timed out,
    /// throttled or failed) runs again before it counts as failed (default: 2). Missing data,
    /// schema changes, failed tests and SQL errors are never retried.
    #[serde(default)]
    pub retries: Option<u32>,
    /// `true`: a model that does not render or plan stops the whole run before anything is
    /// built (`--fail-fast`); by default it fails alone and skips what reads it.
    #[serde(default)]
    pub fail_fast: Option<bool>,
    /// The wait before the first retry, in milliseconds, doubled at each (default: 1000).
    #[serde(default)]
    pub retry_backoff_ms: Option<u64>,
    /// How dp reaches an S3-compatible store (`warehouse: s3://bucket/prefix`, sources on
    /// `s3://`): object_store's S3 settings, such as `endpoint`, `region`, `allow_http`,
    /// `virtual_hosted_style_request`, `access_key_id`, `secret_access_key`. Give secrets as
    /// `{{ env_var('NAME') }}`; what is not set here comes from the `AWS_*` environment and the
    /// usual credential chain. Settings that make commits unsafe are refused.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub storage_options: BTreeMap<String, serde_yaml::Value>,
    /// Where the queries of a build and of `dp test` run: `embedded` (default: DataFusion in
    /// the dp process) or `ballista` (a DataFusion Ballista cluster, at `scheduler`). Writing,
    /// auditing and committing stay in dp either way; `dp check` always plans locally.
    #[serde(default)]
    pub engine: EngineKind,
    /// The Ballista scheduler, as `df://host:port` (port 50050 when left out), for
    /// `engine: ballista`.
    #[serde(default)]
    pub scheduler: Option<String>,
}

/// Where a target's queries run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// DataFusion in the dp process.
    #[default]
    Embedded,
    /// A DataFusion Ballista cluster (`dp-scheduler` and `dp-executor`).
    Ballista,
}

/// How many times a transient failure is retried, when the target sets nothing.
pub const DEFAULT_RETRIES: u32 = 2;

/// The warehouse folder used when a target names none.
pub const DEFAULT_WAREHOUSE: &str = "warehouse";

/// How old an unneeded file must be before `dp vacuum` deletes it, when the target sets nothing.
pub const DEFAULT_VACUUM_RETENTION: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// A duration such as `7d`, `36h`, `90m`, `45s` or `2w` (a bare number counts seconds). None
/// when `text` is not such a duration or does not fit.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return None,
    };
    number.checked_mul(unit).map(std::time::Duration::from_secs)
}

/// The bytes in a size such as `512MB`, `2G` or `1.5GiB`: K, M, G and T count in 1024s, as in
/// DataFusion's own `memory_limit` setting. None when `text` is not such a size, or is zero.
pub fn parse_byte_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_uppercase();
    let prefix = unit
        .strip_suffix("IB")
        .filter(|prefix| !prefix.is_empty())
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let shift = match prefix {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = number * (1u64 << shift) as f64;
    (bytes >= 1.0 && bytes <= usize::MAX as f64).then_some(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::{parse_byte_size, parse_duration};

    #[test]
    fn durations_read_with_their_unit() {
        let secs = |s: u64| Some(std::time::Duration::from_secs(s));
        assert_eq!(parse_duration("7d"), secs(604_800));
        assert_eq!(parse_duration("36h"), secs(129_600));
        assert_eq!(parse_duration("90m"), secs(5_400));
        assert_eq!(parse_duration("0s"), secs(0));
        assert_eq!(parse_duration("42"), secs(42));
        for bad in ["", "d", "7 days", "-1d", "1.5h", "18446744073709551615w"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn byte_sizes_read_like_datafusions() {
        assert_eq!(parse_byte_size("512MB"), Some(512 << 20));
        assert_eq!(parse_byte_size("512M"), Some(512 << 20));
        assert_eq!(parse_byte_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_byte_size("1.5g"), Some(3 << 29));
        assert_eq!(parse_byte_size("4096"), Some(4096));
        assert_eq!(parse_byte_size("64kb"), Some(64 << 10));
        for bad in [
            "",
            "MB",
            "0MB",
            "12 parsecs",
            "1..5G",
            "-1G",
            "1BB",
            "1IB",
            "1KiBiB",
            "99999999999T",
        ] {
            assert_eq!(parse_byte_size(bad), None, "{bad}");
        }
    }
}
