//! LOAD: `dp_project.yml`, the project's name, variable defaults and targets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The file every dp project has at its root.
pub const PROJECT_FILE: &str = "dp_project.yml";

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
}

/// One target: where the model tables live and how a build runs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// The folder (relative to the project) or URL holding one Delta table per model.
    #[serde(default)]
    pub warehouse: Option<String>,
    /// How many models are built at once (default: the number of cores).
    #[serde(default)]
    pub threads: Option<usize>,
    /// How old an unreferenced data file in a model's table must be before a build deletes it as
    /// the leftover of a crashed run (default: 3600). Younger files may belong to a build of the
    /// same model that is still running.
    #[serde(default)]
    pub orphan_min_age_secs: Option<u64>,
}

/// The warehouse folder used when a target names none.
pub const DEFAULT_WAREHOUSE: &str = "warehouse";

/// The minimum age of an orphaned file before it is deleted, when the target sets none.
pub const DEFAULT_ORPHAN_MIN_AGE_SECS: u64 = 3600;
