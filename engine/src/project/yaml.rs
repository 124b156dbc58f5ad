//! LOAD: the property files under `models/` (`models:` and `sources:` entries, dbt's keys).
//! The doc comments are the descriptions of the JSON Schema in `schemas/`.

use schemars::JsonSchema;
use std::collections::BTreeMap;

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
    /// Tests of a model's logic on rows written in the test itself.
    #[serde(default)]
    pub unit_tests: Vec<UnitTestProperties>,
    /// Properties of seeds (CSV files under seeds/), with the keys of `models:`.
    #[serde(default)]
    pub seeds: Vec<ModelProperties>,
    /// dbt's macro properties: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub macros: Option<serde_yaml::Value>,
    /// dbt's exposures: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub exposures: Option<serde_yaml::Value>,
    /// dbt's analyses: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub analyses: Option<serde_yaml::Value>,
    /// Snapshots: with `relation:`, a snapshot defined in YAML (dbt 1.9); without, the
    /// properties of a `{% snapshot %}` block of that name. The keys of `models:`.
    #[serde(default)]
    pub snapshots: Vec<ModelProperties>,
    /// dbt's metrics: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub metrics: Option<serde_yaml::Value>,
    /// dbt's semantic models: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub semantic_models: Option<serde_yaml::Value>,
    /// dbt's groups: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub groups: Option<serde_yaml::Value>,
    /// dbt's saved queries: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub saved_queries: Option<serde_yaml::Value>,
    /// dbt's properties of singular tests (`data_tests:` at the top): documentation only.
    #[serde(default, alias = "tests")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub data_tests: Option<serde_yaml::Value>,
}

impl PropertiesFile {
    /// The dbt keys given that dp accepts and ignores, with why.
    pub fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
        set_keys([
            (
                "exposures",
                self.exposures.is_some(),
                "dp builds no exposures",
            ),
            (
                "analyses",
                self.analyses.is_some(),
                "dp compiles no analyses",
            ),
            ("metrics", self.metrics.is_some(), SEMANTIC_LAYER),
            (
                "semantic_models",
                self.semantic_models.is_some(),
                SEMANTIC_LAYER,
            ),
            (
                "saved_queries",
                self.saved_queries.is_some(),
                SEMANTIC_LAYER,
            ),
            ("groups", self.groups.is_some(), "dp has no model groups"),
        ])
    }
}

const SEMANTIC_LAYER: &str = "dp has no semantic layer";

/// Properties of one model, declared in YAML beside its SQL.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelProperties {
    /// The model's name: the stem of its SQL file.
    pub name: String,
    /// A snapshot defined in YAML: what it snapshots, `ref('x')` or `source('s', 't')`.
    #[serde(default)]
    pub relation: Option<String>,
    /// What the model holds, for people and documentation.
    #[serde(default)]
    pub description: Option<String>,
    /// How the model is built; `config()` in the SQL file overrides each key it sets.
    #[serde(default)]
    pub config: ModelConfigProperties,
    /// The model's columns.
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
    /// Assertions on the model's rows, run on every build before it is published.
    #[serde(default, alias = "tests")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub data_tests: Vec<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub docs: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub meta: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tags: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub group: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub access: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub deprecation_date: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub time_spine: Option<serde_yaml::Value>,
    /// dbt's warehouse constraints: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub constraints: Option<serde_yaml::Value>,
    /// dbt's model versions: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub versions: Option<serde_yaml::Value>,
    /// dbt's model versions: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub latest_version: Option<serde_yaml::Value>,
}

impl ModelProperties {
    /// The keys set that dp ignores, with why.
    pub fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
        set_keys([
            ("constraints", self.constraints.is_some(), CONSTRAINTS),
            ("versions", self.versions.is_some(), VERSIONS),
            ("latest_version", self.latest_version.is_some(), VERSIONS),
        ])
    }
}

const CONSTRAINTS: &str =
    "dp enforces no warehouse constraints; a `contract: {enforced: true}` checks columns and types";
const VERSIONS: &str = "dp has no model versions: it builds the model's SQL file";
const FRESHNESS: &str = "dp checks no source freshness";
const QUOTING: &str = "dp quotes every name it writes";
const PLACE: &str =
    "a source's data is at its `location` (or `meta.external_location`), not in a warehouse schema";
const SOURCE_CONFIG: &str = "dp reads no source config";

/// The names of the keys that are set, with why each is ignored.
fn set_keys<const N: usize>(
    keys: [(&'static str, bool, &'static str); N],
) -> Vec<(&'static str, &'static str)> {
    keys.into_iter()
        .filter_map(|(key, set, why)| set.then_some((key, why)))
        .collect()
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
    /// `{enforced: true}`: the model's output must have exactly the declared columns and types,
    /// checked before anything is written.
    #[serde(default)]
    pub contract: Option<ContractProperties>,
    /// `false` leaves the model (or seed) out of the project, as if its file did not exist.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// An incremental model's key: one column or several. A run's rows replace the published
    /// rows with the same key and add the others, in one commit.
    #[serde(default)]
    pub unique_key: Option<OneOrMany>,
    /// How an incremental run changes the table: `merge` (the default with a `unique_key`),
    /// `delete+insert` (the same on Delta), `append` (the default without), or
    /// `insert_overwrite` (the partitions the run produced are replaced).
    #[serde(default)]
    pub incremental_strategy: Option<String>,
    /// What an incremental run does when the model's columns differ from the table's:
    /// `ignore` (the default: new columns are dropped), `fail`, `append_new_columns` or
    /// `sync_all_columns`; the table's schema changes in the run's own commit.
    #[serde(default)]
    pub on_schema_change: Option<String>,
    /// SQL conditions on the published rows (`DBT_INTERNAL_DEST.date >= '2024-01-01'`) that a
    /// merge looks in for matching keys; files whose partition fails them are not rewritten.
    #[serde(default)]
    pub incremental_predicates: Option<OneOrMany>,
    /// `false`: `--full-refresh` does not rebuild this incremental model.
    #[serde(default)]
    pub full_refresh: Option<bool>,
    /// Free-form metadata, shown in the docs.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub meta: Option<serde_yaml::Value>,
    /// dbt's docs settings (`show`, `node_color`): accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub docs: Option<serde_yaml::Value>,
    /// dbt's: dp writes a failing test's rows to target/test_failures/ always; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub store_failures: Option<serde_yaml::Value>,
    /// Column types of a seed, overriding the types read from its values: `{id: bigint}`.
    #[serde(default)]
    pub column_types: Option<std::collections::BTreeMap<String, String>>,
    /// A seed's field separator (default `,`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// dbt's; dp quotes every column name: accepted and ignored.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub quote_columns: Option<serde_yaml::Value>,
    /// dbt's table name: dp stores a model at `<warehouse>/<model name>`; ignored, with a warning.
    #[serde(default)]
    pub alias: Option<String>,
    /// dbt's schema: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    pub schema: Option<String>,
    /// dbt's database: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    pub database: Option<String>,
    /// dbt's warehouse comments: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub persist_docs: Option<serde_yaml::Value>,
    /// dbt's grants: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub grants: Option<serde_yaml::Value>,
    /// dbt's identifier quoting: dp always quotes; ignored, with a warning.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub quoting: Option<serde_yaml::Value>,
    /// A singular test's severity: `error` (the default) or `warn`.
    #[serde(default)]
    pub severity: Option<String>,
    /// A singular test's warning threshold on its failing rows, such as `>0`.
    #[serde(default)]
    pub warn_if: Option<String>,
    /// A singular test's error threshold on its failing rows, such as `>10`.
    #[serde(default)]
    pub error_if: Option<String>,
    /// How many failing rows of a singular test are kept under target/test_failures/.
    #[serde(default)]
    pub limit: Option<u64>,
    /// In the `data_tests:` tree of the project file: the filter of a folder's tests' rows.
    #[serde(default, rename = "where")]
    pub filter: Option<String>,
    /// A generic test's: the SQL aggregate over its failing rows that counts the failures
    /// (dbt's `fail_calc`, default `count(*)`), set by `config()` in the test's macro.
    #[serde(default)]
    pub fail_calc: Option<String>,
    /// What each build's diff (its staged rows against the published ones they replace)
    /// matches rows by, and the thresholds that block publication.
    #[serde(default)]
    pub diff: Option<DiffProperties>,
    /// dbt's SQL run before the model: dp runs no hooks; ignored, with a warning.
    #[serde(default, alias = "pre-hook")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub pre_hook: Option<serde_yaml::Value>,
    /// dbt's SQL run after the model: dp runs no hooks; ignored, with a warning.
    #[serde(default, alias = "post-hook")]
    #[schemars(with = "Option<serde_json::Value>")]
    pub post_hook: Option<serde_yaml::Value>,
    /// How a snapshot sees that a row changed: `timestamp` (its `updated_at` is later) or
    /// `check` (one of its `check_cols` differs).
    #[serde(default)]
    pub strategy: Option<String>,
    /// A `timestamp` snapshot's column saying when a row last changed.
    #[serde(default)]
    pub updated_at: Option<String>,
    /// A `check` snapshot's columns whose change makes a new version: a list, or `all`.
    #[serde(default)]
    pub check_cols: Option<OneOrMany>,
    /// What a snapshot does with a row gone from what it snapshots: `ignore` (the default),
    /// `invalidate` (its current version ends) or `new_record` (also a version with
    /// `dbt_is_deleted` 'True').
    #[serde(default)]
    pub hard_deletes: Option<String>,
    /// dbt's older spelling of `hard_deletes: invalidate`.
    #[serde(default)]
    pub invalidate_hard_deletes: Option<bool>,
    /// The SQL value of `dbt_valid_to` in a snapshot's current versions (default NULL), such as
    /// `to_date('9999-12-31')`.
    #[serde(default)]
    pub dbt_valid_to_current: Option<String>,
    /// Other names for a snapshot's columns (`dbt_valid_from`, `dbt_valid_to`, `dbt_scd_id`,
    /// `dbt_updated_at`, `dbt_is_deleted`).
    #[serde(default)]
    pub snapshot_meta_column_names: Option<BTreeMap<String, String>>,
    /// dbt's schema of a snapshot: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    pub target_schema: Option<String>,
    /// dbt's database of a snapshot: no meaning for a Delta table; ignored, with a warning.
    #[serde(default)]
    pub target_database: Option<String>,
    /// An `external` model's export (dbt-duckdb's): the file, or with `partition_by` the folder,
    /// its committed rows are written to after each build; relative to the project, or a
    /// `file://` or `s3://` URL (default: `<model>.<format>` in the project folder).
    #[serde(default)]
    pub location: Option<String>,
    /// An `external` model's export format: `parquet` (the default, or the location's
    /// extension), `csv` or `json` (one object a line).
    #[serde(default)]
    pub format: Option<String>,
    /// An `external` model's write options, as dbt-duckdb's (`partition_by`, `format`,
    /// `delimiter`, `header`, `compression`); other options are ignored, with a warning.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub options: Option<serde_yaml::Value>,
}

/// A model's contract.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractProperties {
    /// Whether the declared columns are enforced.
    #[serde(default)]
    pub enforced: bool,
}

/// `diff:` of a model's config: how a build's staged rows are compared with the published rows
/// they replace, and how much change blocks the commit.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffProperties {
    /// `false`: no diff for this model's builds.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// The column(s) rows are matched by (default: the model's `unique_key`, else the columns
    /// of its `unique` or `unique_combination_of_columns` test).
    #[serde(default)]
    pub key: Option<OneOrMany>,
    /// At most this many rows added (by key).
    #[serde(default)]
    pub max_added: Option<u64>,
    /// At most this many rows removed (by key).
    #[serde(default)]
    pub max_removed: Option<u64>,
    /// At most this many rows changed (by key: some column's value differs).
    #[serde(default)]
    pub max_changed: Option<u64>,
    /// The row count may change by at most this percentage (of the rows before).
    #[serde(default)]
    pub max_row_change_pct: Option<f64>,
    /// At most this percentage of the rows before may change (by key).
    #[serde(default)]
    pub max_changed_pct: Option<f64>,
    /// Per column: `max_sum_change_pct` (of the sum before) and `max_null_increase` (rows).
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnDiffProperties>,
    /// `error` (default): a breach stops the commit; `warn`: it is published with a warning.
    #[serde(default)]
    pub severity: Option<String>,
    /// Above this many rows (before and after together) only the row counts are compared
    /// (default: 10,000,000).
    #[serde(default)]
    pub max_rows: Option<u64>,
}

impl DiffProperties {
    /// These settings, each overridden by `specific`'s where it sets it (columns one by one).
    pub fn overridden_by(self, specific: DiffProperties) -> DiffProperties {
        let mut columns = self.columns;
        columns.extend(specific.columns);
        DiffProperties {
            enabled: specific.enabled.or(self.enabled),
            key: specific.key.or(self.key),
            max_added: specific.max_added.or(self.max_added),
            max_removed: specific.max_removed.or(self.max_removed),
            max_changed: specific.max_changed.or(self.max_changed),
            max_row_change_pct: specific.max_row_change_pct.or(self.max_row_change_pct),
            max_changed_pct: specific.max_changed_pct.or(self.max_changed_pct),
            columns,
            severity: specific.severity.or(self.severity),
            max_rows: specific.max_rows.or(self.max_rows),
        }
    }
}

/// The thresholds of one column in a model's `diff:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnDiffProperties {
    /// The column's sum may change by at most this percentage.
    #[serde(default)]
    pub max_sum_change_pct: Option<f64>,
    /// At most this many more NULLs than before.
    #[serde(default)]
    pub max_null_increase: Option<u64>,
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
    /// checked against a source's data, and a model's output when its contract is enforced).
    #[serde(default)]
    pub data_type: Option<String>,
    /// Assertions on this column: `not_null`, `unique`, `accepted_values`, `relationships`,
    /// `expression_is_true`.
    #[serde(default, alias = "tests")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub data_tests: Vec<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub meta: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tags: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub quote: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub granularity: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub policy_tags: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub constraints: Option<serde_yaml::Value>,
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
    /// dbt's metadata; dbt-duckdb's `external_location` (a path or URL with `{name}` or
    /// `{identifier}`, or a `read_parquet('...')` / `read_csv('...')` call) is the tables'
    /// location when `location` is not given.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub meta: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub loader: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tags: Option<serde_yaml::Value>,
    /// dbt's warehouse schema: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub schema: Option<serde_yaml::Value>,
    /// dbt's warehouse database: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub database: Option<serde_yaml::Value>,
    /// dbt's source freshness: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub loaded_at_field: Option<serde_yaml::Value>,
    /// dbt's source freshness: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub freshness: Option<serde_yaml::Value>,
    /// dbt's identifier quoting: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub quoting: Option<serde_yaml::Value>,
    /// dbt's source config: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config: Option<serde_yaml::Value>,
    /// dbt's package source overrides: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub overrides: Option<serde_yaml::Value>,
}

impl SourceProperties {
    /// The keys set that dp ignores, with why.
    pub fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
        set_keys([
            ("schema", self.schema.is_some(), PLACE),
            ("database", self.database.is_some(), PLACE),
            ("loaded_at_field", self.loaded_at_field.is_some(), FRESHNESS),
            ("freshness", self.freshness.is_some(), FRESHNESS),
            ("quoting", self.quoting.is_some(), QUOTING),
            ("config", self.config.is_some(), SOURCE_CONFIG),
            (
                "overrides",
                self.overrides.is_some(),
                "dp has no packages to override",
            ),
        ])
    }
}

/// The storage format of a source's tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// Parquet files, optionally in hive partition folders (`date=2024-01-15/`).
    #[default]
    Parquet,
    /// A Delta Lake table.
    Delta,
    /// CSV files with a header line (dbt-duckdb's `read_csv('...')` external locations).
    Csv,
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
    /// The table's columns. When any declares a `data_type`, they are the table's contract:
    /// a missing, extra or retyped column stops every model that reads it before it writes.
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
    /// What a build does when a partitioned read of this table finds no files: `fail` (the
    /// default) or `skip` (the model publishes nothing and the run goes on).
    #[serde(default)]
    pub on_missing_partition: MissingPartition,
    /// Assertions on the table's rows, run by `dp test`.
    #[serde(default, alias = "tests")]
    #[schemars(with = "Vec<serde_json::Value>")]
    pub data_tests: Vec<serde_yaml::Value>,
    /// The table's name where it is stored (its folder, or the seed or model of the project it
    /// is), when that differs from `name`.
    #[serde(default)]
    pub identifier: Option<String>,
    /// dbt's metadata; dbt-duckdb's `external_location` is this table's location when
    /// `location` is not given.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub meta: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub tags: Option<serde_yaml::Value>,
    /// dbt's: documentation only; accepted.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub loader: Option<serde_yaml::Value>,
    /// dbt's source freshness: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub loaded_at_field: Option<serde_yaml::Value>,
    /// dbt's source freshness: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub freshness: Option<serde_yaml::Value>,
    /// dbt's identifier quoting: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub quoting: Option<serde_yaml::Value>,
    /// dbt's source table config: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub config: Option<serde_yaml::Value>,
    /// dbt's dbt-external-tables settings: accepted and ignored, with a warning at its line.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub external: Option<serde_yaml::Value>,
}

impl SourceTableProperties {
    /// The keys set that dp ignores, with why.
    pub fn ignored_keys(&self) -> Vec<(&'static str, &'static str)> {
        set_keys([
            ("loaded_at_field", self.loaded_at_field.is_some(), FRESHNESS),
            ("freshness", self.freshness.is_some(), FRESHNESS),
            ("quoting", self.quoting.is_some(), QUOTING),
            ("config", self.config.is_some(), SOURCE_CONFIG),
            (
                "external",
                self.external.is_some(),
                "dp reads a source from its `location` (or `meta.external_location`)",
            ),
        ])
    }
}

/// What to do when a partitioned source has no files for the partition a build reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissingPartition {
    /// Stop the model with an error naming where dp looked.
    #[default]
    Fail,
    /// Publish nothing for the model, warn, and mark it "skipped (no data)".
    Skip,
}

/// A unit test: the model's SQL run on rows given in the test, compared with the rows expected.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestProperties {
    /// The test's name.
    pub name: String,
    /// The model under test.
    pub model: String,
    /// What the test checks, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The rows each input of the model holds in the test.
    #[serde(default)]
    pub given: Vec<UnitTestInput>,
    /// Variables and environment variables seen by the model's template in the test.
    #[serde(default)]
    pub overrides: UnitTestOverrides,
    /// The rows the model must produce (only the columns named are compared; order is ignored).
    pub expect: UnitTestRows,
}

/// One input of a unit test.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestInput {
    /// `ref('model')` or `source('source', 'table')`.
    pub input: String,
    #[serde(flatten)]
    pub rows: UnitTestRows,
}

/// Rows written in a test: a list of mappings (`format: dict`, the default) or CSV text with a
/// header line (`format: csv`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestRows {
    /// `dict` (default) or `csv`.
    #[serde(default)]
    pub format: RowsFormat,
    /// The rows.
    #[serde(default)]
    #[schemars(with = "serde_json::Value")]
    pub rows: serde_yaml::Value,
}

/// How a unit test writes its rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RowsFormat {
    #[default]
    Dict,
    Csv,
}

/// Values a unit test gives the model's template.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestOverrides {
    /// Values of `var()`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    pub vars: std::collections::BTreeMap<String, serde_yaml::Value>,
    /// Values of `env_var()`.
    #[serde(default)]
    pub env_vars: std::collections::BTreeMap<String, String>,
}
