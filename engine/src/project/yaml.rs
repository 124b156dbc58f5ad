//! LOAD: the property files under `models/` (`models:` and `sources:` entries, dbt's keys).
//! The doc comments are the descriptions of the JSON Schema in `schemas/`.

use schemars::JsonSchema;
use serde::Deserialize;

/// A property file under models/: models and sources, with dbt's keys.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertiesFile {
    /// dbt's `version: 2`, accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub version: Option<serde_yaml::Value>,
    /// Properties of models defined by SQL files under models/.
    #[serde(default)]
    pub models: Vec<ModelProperties>,
    /// Data the project reads but does not build.
    #[serde(default)]
    pub sources: Vec<SourceProperties>,
}

/// Properties of one model, declared in YAML beside its SQL.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelProperties {
    /// The model's name: the stem of its SQL file.
    pub name: String,
    /// What the model holds, for people and documentation.
    #[serde(default)]
    pub description: Option<String>,
    /// How the model is built; `config()` in the SQL file overrides each key it sets.
    #[serde(default)]
    pub config: ModelConfigProperties,
    /// The model's columns.
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
}

/// `config:` of a model in YAML; `config()` in the SQL file overrides each key it sets.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfigProperties {
    /// `table` (default: replaced whole by each build), `partitioned` (a build replaces only the
    /// partitions it produced) or `ephemeral` (not stored; inlined into its consumers; `view` is
    /// accepted as a name for it).
    #[serde(default)]
    pub materialized: Option<String>,
    /// Partition column(s) of a `partitioned` model, outermost first.
    #[serde(default)]
    pub partition_by: Option<OneOrMany>,
    /// Tags, for selecting with `tag:name`.
    #[serde(default)]
    pub tags: Option<OneOrMany>,
}

/// A YAML value that may be one string or a list of strings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
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

/// A column of a model or source table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnProperties {
    /// The column's name.
    pub name: String,
    /// What the column holds.
    #[serde(default)]
    pub description: Option<String>,
    /// The column's SQL type, such as `bigint`, `varchar` or `decimal(10,2)` (documentation for
    /// now; not yet checked against the data).
    #[serde(default)]
    pub data_type: Option<String>,
}

/// A set of tables stored under one location.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceProperties {
    /// The source's name, the first argument of `source()`.
    pub name: String,
    /// What the source is, for people and documentation.
    #[serde(default)]
    pub description: Option<String>,
    /// Folder (relative to the project) or URL holding one folder per table (default:
    /// `data/<source name>`).
    #[serde(default)]
    pub location: Option<String>,
    /// How the tables are stored (default: plain hive-partitioned Parquet).
    #[serde(default)]
    pub format: SourceFormat,
    /// The source's tables.
    pub tables: Vec<SourceTableProperties>,
}

/// The storage format of a source's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Parquet files, optionally in hive partition folders (`date=2024-01-15/`).
    #[default]
    Parquet,
    /// A Delta Lake table.
    Delta,
}

/// One table of a source.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceTableProperties {
    /// The table's name, the second argument of `source()`.
    pub name: String,
    /// What the table holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Folder or URL of this table (default: `<source location>/<table name>`).
    #[serde(default)]
    pub location: Option<String>,
    /// Hive partition columns of a Parquet source, outermost first: `[date]` reads
    /// `date=2024-01-15/*.parquet`; a filter on them skips whole folders.
    #[serde(default)]
    pub partitioned_by: Vec<String>,
    /// The table's columns.
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
}
