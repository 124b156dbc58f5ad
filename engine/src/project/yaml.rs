//! LOAD: the property files under `models/` (`models:` and `sources:` entries, dbt's keys).

use serde::Deserialize;

/// One `models/**/*.yml` file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertiesFile {
    /// dbt's `version: 2`, accepted and ignored.
    #[serde(default)]
    pub version: Option<serde_yaml::Value>,
    #[serde(default)]
    pub models: Vec<ModelProperties>,
    #[serde(default)]
    pub sources: Vec<SourceProperties>,
}

/// Properties of one model, declared in YAML beside its SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub config: ModelConfigProperties,
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
}

/// `config:` of a model in YAML; `config()` in the SQL file overrides each key it sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfigProperties {
    #[serde(default)]
    pub materialized: Option<String>,
    #[serde(default)]
    pub partition_by: Option<OneOrMany>,
    #[serde(default)]
    pub tags: Option<OneOrMany>,
}

/// A YAML value that may be one string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// A documented column.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The declared SQL type (documentation for now).
    #[serde(default)]
    pub data_type: Option<String>,
}

/// One `sources:` entry: a set of tables stored under one location.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Folder (relative to the project) or URL holding one folder per table
    /// (default: `data/<source name>`).
    #[serde(default)]
    pub location: Option<String>,
    /// How the tables are stored (default: plain hive-partitioned Parquet).
    #[serde(default)]
    pub format: SourceFormat,
    pub tables: Vec<SourceTableProperties>,
}

/// The storage format of a source's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Parquet files, optionally in hive partition folders (`date=2024-01-15/`).
    #[default]
    Parquet,
    /// A Delta Lake table.
    Delta,
}

/// One table of a source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceTableProperties {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Folder or URL of this table (default: `<source location>/<table name>`).
    #[serde(default)]
    pub location: Option<String>,
    /// Hive partition columns, outermost first (Parquet sources).
    #[serde(default)]
    pub partitioned_by: Vec<String>,
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
}
