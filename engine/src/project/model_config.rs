//! LOAD: one model's configuration, layered: defaults, then the folder tree of `models:` in
//! `dp_project.yml` (the deeper folder winning), then `config:` in the model's property YAML,
//! then `config()` in its SQL; the most specific layer wins, key by key (tags add up).
//! [`ModelConfigProperties`] is the one list of keys: the YAML loader, `config()` and the JSON
//! Schema all read it, so a new key is one field there and its use in [`ModelConfig`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_yaml::Value;

use super::data_tests::{Severity, TestConfig, parse_config};
use super::yaml::{ColumnDiffProperties, ModelConfigProperties, OneOrMany};

/// How a model is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Materialization {
    /// The whole table is replaced by each build, in one commit.
    Table,
    /// Only the partitions a build produced are replaced; the others stay as they are.
    Partitioned,
    /// Not stored: inlined into the SQL of every model that refers to it.
    Ephemeral,
    /// Built whole the first time (and on `--full-refresh`); later runs change the table by
    /// their strategy, with `is_incremental()` true in the template.
    Incremental,
    /// A CSV file under seeds/, replaced whole by each build (never a user's choice: a seed is
    /// one by its folder).
    Seed,
    /// dbt-duckdb's: stored as a `table` is, and after each commit its rows are exported as
    /// files (Parquet, CSV or JSON) to a location of its own.
    External,
    /// A `{% snapshot %}` block or a YAML snapshot: each run records what changed in what it
    /// snapshots as new versions of rows, in one merge commit (never a user's choice: a
    /// snapshot is one by where it is defined).
    Snapshot,
}

impl Materialization {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "table" => Some(Self::Table),
            "partitioned" => Some(Self::Partitioned),
            "ephemeral" | "view" => Some(Self::Ephemeral),
            "incremental" => Some(Self::Incremental),
            "external" => Some(Self::External),
            _ => None,
        }
    }
}

impl std::fmt::Display for Materialization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Table => "table",
            Self::Partitioned => "partitioned",
            Self::Ephemeral => "ephemeral",
            Self::Incremental => "incremental",
            Self::Seed => "seed",
            Self::External => "external",
            Self::Snapshot => "snapshot",
        })
    }
}

/// A model's configuration, resolved from its layers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub materialized: Materialization,
    pub partition_by: Vec<String>,
    pub tags: BTreeSet<String>,
    /// The output must have exactly the declared columns and types.
    pub contract_enforced: bool,
    /// `enabled: false`: the model is left out of the project.
    pub enabled: bool,
    /// How an incremental model's later runs change its table.
    pub incremental: Option<Incremental>,
    /// A seed's column types, overriding those read from its values.
    pub column_types: BTreeMap<String, String>,
    /// A seed's field separator.
    pub delimiter: u8,
    /// Keys that are set and mean nothing for a Delta table (`grants`, `schema`...).
    pub ignored: Vec<&'static str>,
    /// How a singular test's failing rows are judged (`config(severity='warn')` in its SQL).
    pub test: TestConfig,
    /// How its builds' diffs are computed and judged.
    pub diff: DiffConfig,
    /// An `external` model's export.
    pub external: Option<External>,
    /// A snapshot's strategy and columns.
    pub snapshot: Option<SnapshotConfig>,
}

/// How a snapshot records changes: what identifies a row, how a change is seen, what a row
/// gone from its query does, and the names of the columns it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// SQL expressions (usually columns) identifying a row of the snapshotted query.
    pub unique_key: Vec<String>,
    pub strategy: SnapshotStrategy,
    pub hard_deletes: HardDeletes,
    /// The SQL value of `dbt_valid_to` in current versions; `None`: NULL.
    pub valid_to_current: Option<String>,
    pub columns: SnapshotColumns,
}

/// How a snapshot sees that a row changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotStrategy {
    /// The row's `updated_at` (an SQL expression) is later than its current version's.
    Timestamp { updated_at: String },
    /// One of the columns differs from its current version's (`None`: every column); a new
    /// version is valid from `updated_at`, else from the time of the run.
    Check {
        columns: Option<Vec<String>>,
        updated_at: Option<String>,
    },
}

/// What a snapshot does with a row gone from its query (dbt's `hard_deletes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardDeletes {
    /// Nothing: its current version stays current.
    Ignore,
    /// Its current version ends (`dbt_valid_to` is the time of the run).
    Invalidate,
    /// Its current version ends, and a version marked deleted (`dbt_is_deleted` 'True') begins.
    NewRecord,
}

/// The names of the columns a snapshot adds to its query's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotColumns {
    pub scd_id: String,
    pub updated_at: String,
    pub valid_from: String,
    pub valid_to: String,
    pub is_deleted: String,
}

impl SnapshotColumns {
    /// Every name.
    pub fn all(&self) -> [&String; 5] {
        [
            &self.scd_id,
            &self.updated_at,
            &self.valid_from,
            &self.valid_to,
            &self.is_deleted,
        ]
    }

    /// The names, dbt's unless `names` (dbt's `snapshot_meta_column_names`) renames them.
    fn named(names: &BTreeMap<String, String>) -> Result<Self, String> {
        let mut columns = Self {
            scd_id: "dbt_scd_id".into(),
            updated_at: "dbt_updated_at".into(),
            valid_from: "dbt_valid_from".into(),
            valid_to: "dbt_valid_to".into(),
            is_deleted: "dbt_is_deleted".into(),
        };
        for (key, name) in names {
            let slot = match key.as_str() {
                "dbt_scd_id" => &mut columns.scd_id,
                "dbt_updated_at" => &mut columns.updated_at,
                "dbt_valid_from" => &mut columns.valid_from,
                "dbt_valid_to" => &mut columns.valid_to,
                "dbt_is_deleted" => &mut columns.is_deleted,
                other => return Err(format!("snapshot_meta_column_names has no `{other}`")),
            };
            *slot = name.clone();
        }
        Ok(columns)
    }
}

/// Where and how an `external` model's committed rows are exported after each build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// As written (`location:`): relative to the project, or a URL; `None`: the default,
    /// `<model>.<format>` in the project folder, as dbt-duckdb's default `external_root` (`.`).
    pub location: Option<String>,
    pub format: ExportFormat,
    /// Hive partition folders (`col=value/`) of the export, outermost first.
    pub partition_by: Vec<String>,
    /// A CSV export's field separator and whether it starts with a header line.
    pub delimiter: u8,
    pub header: bool,
    /// A Parquet export's compression codec, as DataFusion names it (`zstd(3)`).
    pub compression: Option<String>,
    /// Write options given that dp does not use: said once, and ignored.
    pub ignored_options: Vec<String>,
}

/// The file format of an `external` model's export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Parquet,
    Csv,
    /// Newline-delimited JSON: one object a line.
    Json,
}

impl ExportFormat {
    fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "parquet" => Some(Self::Parquet),
            "csv" => Some(Self::Csv),
            "json" | "ndjson" => Some(Self::Json),
            _ => None,
        }
    }

    /// The file extension, as dbt-duckdb's default location writes it.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Parquet => "parquet",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }
}

/// How a model's builds' diffs are computed and judged (`diff:` of its config).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffConfig {
    pub enabled: bool,
    /// The key given in `diff:`; else the model's `unique_key` or a uniqueness test's columns.
    pub key: Vec<String>,
    pub max_added: Option<u64>,
    pub max_removed: Option<u64>,
    pub max_changed: Option<u64>,
    pub max_row_change_pct: Option<f64>,
    pub max_changed_pct: Option<f64>,
    pub columns: BTreeMap<String, ColumnDiffProperties>,
    pub severity: Severity,
    pub max_rows: u64,
}

impl Default for DiffConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            key: Vec::new(),
            max_added: None,
            max_removed: None,
            max_changed: None,
            max_row_change_pct: None,
            max_changed_pct: None,
            columns: BTreeMap::new(),
            severity: Severity::Error,
            max_rows: 10_000_000,
        }
    }
}

impl DiffConfig {
    /// Whether any threshold is set.
    pub fn has_thresholds(&self) -> bool {
        self.max_added.is_some()
            || self.max_removed.is_some()
            || self.max_changed.is_some()
            || self.max_row_change_pct.is_some()
            || self.max_changed_pct.is_some()
            || !self.columns.is_empty()
    }
}

/// What an incremental model's run (one that is not its first or a full refresh) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incremental {
    pub strategy: IncrementalStrategy,
    pub on_schema_change: OnSchemaChange,
    /// SQL conditions on the published rows a merge looks in (`DBT_INTERNAL_DEST.x`).
    pub predicates: Vec<String>,
    /// Whether `--full-refresh` rebuilds it.
    pub full_refresh: bool,
}

/// How an incremental run's rows change the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncrementalStrategy {
    /// The rows are added.
    Append,
    /// Published rows with a key of the run's rows are replaced by them; the others are
    /// added (dbt's `merge` and `delete+insert`, one Delta commit either way).
    Merge { unique_key: Vec<String> },
    /// The partitions the run produced are replaced whole.
    InsertOverwrite,
}

/// What an incremental run does when the model's columns differ from its table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSchemaChange {
    /// Write the table's columns: the model's new columns are dropped.
    Ignore,
    /// Stop the run; nothing is written.
    Fail,
    /// Add the model's new columns to the table (older rows read them as NULL).
    AppendNewColumns,
    /// Make the table's columns the model's: new ones added, missing ones dropped.
    SyncAllColumns,
}

impl ModelConfig {
    /// Whether the model has no table: it is inlined into its readers.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self.materialized, Materialization::Ephemeral)
    }

    /// Whether the node is a seed (a CSV file), not a model.
    pub fn is_seed(&self) -> bool {
        matches!(self.materialized, Materialization::Seed)
    }

    /// Whether its template renders otherwise in the runs after the first (`is_incremental()`
    /// true): an incremental model's. A snapshot's later runs are SQL dp writes around its
    /// query, and `is_incremental()` stays false in its template, as in dbt.
    pub fn has_incremental_branch(&self) -> bool {
        matches!(self.materialized, Materialization::Incremental)
    }

    /// The node's kind, as dbt names it (`resource_type:`, unique ids): `model`, `seed` or
    /// `snapshot`.
    pub fn resource_type(&self) -> &'static str {
        match self.materialized {
            Materialization::Seed => "seed",
            Materialization::Snapshot => "snapshot",
            _ => "model",
        }
    }
}

/// A configuration that cannot be: the message, a hint, and the key that sets it wrong (where
/// the diagnostic points).
#[derive(Debug)]
pub struct InvalidConfig {
    pub message: String,
    pub help: String,
    pub key: &'static str,
}

impl ModelConfigProperties {
    /// These keys, each overridden by `specific`'s where it sets it; tags add up.
    pub fn overridden_by(self, specific: ModelConfigProperties) -> ModelConfigProperties {
        let tags: Vec<String> = self
            .tags
            .map(|t| t.into_vec())
            .into_iter()
            .chain(specific.tags.map(|t| t.into_vec()))
            .flatten()
            .collect();
        ModelConfigProperties {
            materialized: specific.materialized.or(self.materialized),
            partition_by: specific.partition_by.or(self.partition_by),
            tags: (!tags.is_empty()).then_some(super::OneOrMany::Many(tags)),
            contract: specific.contract.or(self.contract),
            enabled: specific.enabled.or(self.enabled),
            unique_key: specific.unique_key.or(self.unique_key),
            incremental_strategy: specific.incremental_strategy.or(self.incremental_strategy),
            on_schema_change: specific.on_schema_change.or(self.on_schema_change),
            incremental_predicates: specific
                .incremental_predicates
                .or(self.incremental_predicates),
            full_refresh: specific.full_refresh.or(self.full_refresh),
            meta: specific.meta.or(self.meta),
            docs: specific.docs.or(self.docs),
            store_failures: specific.store_failures.or(self.store_failures),
            column_types: specific.column_types.or(self.column_types),
            delimiter: specific.delimiter.or(self.delimiter),
            quote_columns: specific.quote_columns.or(self.quote_columns),
            alias: specific.alias.or(self.alias),
            schema: specific.schema.or(self.schema),
            database: specific.database.or(self.database),
            persist_docs: specific.persist_docs.or(self.persist_docs),
            grants: specific.grants.or(self.grants),
            quoting: specific.quoting.or(self.quoting),
            severity: specific.severity.or(self.severity),
            warn_if: specific.warn_if.or(self.warn_if),
            error_if: specific.error_if.or(self.error_if),
            limit: specific.limit.or(self.limit),
            filter: specific.filter.or(self.filter),
            fail_calc: specific.fail_calc.or(self.fail_calc),
            diff: match (self.diff, specific.diff) {
                (Some(general), Some(specific)) => Some(general.overridden_by(specific)),
                (general, specific) => specific.or(general),
            },
            pre_hook: specific.pre_hook.or(self.pre_hook),
            post_hook: specific.post_hook.or(self.post_hook),
            strategy: specific.strategy.or(self.strategy),
            updated_at: specific.updated_at.or(self.updated_at),
            check_cols: specific.check_cols.or(self.check_cols),
            hard_deletes: specific.hard_deletes.or(self.hard_deletes),
            invalidate_hard_deletes: specific
                .invalidate_hard_deletes
                .or(self.invalidate_hard_deletes),
            dbt_valid_to_current: specific.dbt_valid_to_current.or(self.dbt_valid_to_current),
            snapshot_meta_column_names: specific
                .snapshot_meta_column_names
                .or(self.snapshot_meta_column_names),
            target_schema: specific.target_schema.or(self.target_schema),
            target_database: specific.target_database.or(self.target_database),
            location: specific.location.or(self.location),
            format: specific.format.or(self.format),
            options: specific.options.or(self.options),
        }
    }

    /// The keys set that mean nothing for a Delta table, which dp accepts and ignores.
    fn ignored(&self) -> Vec<&'static str> {
        [
            ("alias", self.alias.is_some()),
            ("schema", self.schema.is_some()),
            ("database", self.database.is_some()),
            ("persist_docs", self.persist_docs.is_some()),
            ("grants", self.grants.is_some()),
            ("quoting", self.quoting.is_some()),
            ("target_schema", self.target_schema.is_some()),
            ("target_database", self.target_database.is_some()),
            ("pre-hook", self.pre_hook.is_some()),
            ("post-hook", self.post_hook.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect()
    }

    /// The configuration these keys give a model, over the defaults.
    pub fn resolve(self) -> Result<ModelConfig, InvalidConfig> {
        let name = self
            .materialized
            .clone()
            .unwrap_or_else(|| "table".to_string());
        let materialized = Materialization::parse(&name).ok_or_else(|| InvalidConfig {
            message: format!("unknown materialization `{name}`"),
            help: match name.as_str() {
                "snapshot" => "a snapshot is a `{% snapshot name %}` block in snapshots/ (or a YAML snapshot with `relation:`), not a model",
                _ => "use one of: table, partitioned, incremental, external, ephemeral (or view)",
            }
            .into(),
            key: "materialized",
        })?;
        self.resolve_as(materialized)
    }

    /// The configuration these keys give a snapshot (whatever `materialized` says).
    pub fn resolve_snapshot(self) -> Result<ModelConfig, InvalidConfig> {
        self.resolve_as(Materialization::Snapshot)
    }

    fn resolve_as(self, materialized: Materialization) -> Result<ModelConfig, InvalidConfig> {
        let mut ignored = self.ignored();
        let external = match materialized {
            Materialization::External => Some(self.external()?),
            _ => {
                // dbt-duckdb's export keys mean nothing for a model that is not exported.
                for (key, set) in [
                    ("location", self.location.is_some()),
                    ("format", self.format.is_some()),
                    ("options", self.options.is_some()),
                ] {
                    if set {
                        ignored.push(key);
                    }
                }
                None
            }
        };
        let partition_by = match &external {
            Some(external) => external.partition_by.clone(),
            None => self
                .partition_by
                .clone()
                .map(|p| p.into_vec())
                .unwrap_or_default(),
        };
        let snapshot = match materialized {
            Materialization::Snapshot => Some(self.snapshot()?),
            _ => None,
        };
        let incremental = match (materialized, &snapshot) {
            (Materialization::Incremental, _) => Some(self.incremental(&partition_by)?),
            // A run after the first merges its versions by their id; new columns of the query
            // are added to the table, as dbt does.
            (_, Some(snapshot)) => Some(Incremental {
                strategy: IncrementalStrategy::Merge {
                    unique_key: vec![snapshot.columns.scd_id.clone()],
                },
                on_schema_change: OnSchemaChange::AppendNewColumns,
                predicates: Vec::new(),
                full_refresh: false,
            }),
            _ => None,
        };
        let test = self.test_config().map_err(|message| InvalidConfig {
            message,
            help:
                "a singular test's config: severity='warn', warn_if='>0', error_if='>10', limit=100"
                    .into(),
            key: "severity",
        })?;
        let diff = self.diff_config(incremental.as_ref())?;
        let delimiter = match self.delimiter.as_deref().map(str::as_bytes) {
            None => b',',
            Some([byte]) if byte.is_ascii() => *byte,
            Some(_) => {
                return Err(InvalidConfig {
                    message: "a seed's delimiter is one character".into(),
                    help: "for example: delimiter: ';'".into(),
                    key: "delimiter",
                });
            }
        };
        match (materialized, partition_by.is_empty()) {
            (Materialization::Partitioned, true) => {
                return Err(InvalidConfig {
                    message: "a partitioned model needs partition_by".into(),
                    help: "for example: config(materialized='partitioned', partition_by='date')"
                        .into(),
                    key: "materialized",
                });
            }
            (Materialization::Table | Materialization::Ephemeral, false) => {
                return Err(InvalidConfig {
                    message: format!(
                        "partition_by is only used by partitioned, incremental and external models, not by {materialized} models"
                    ),
                    help: "set materialized='partitioned', or remove partition_by".into(),
                    key: "partition_by",
                });
            }
            _ => {}
        }
        Ok(ModelConfig {
            materialized,
            partition_by,
            tags: self
                .tags
                .map(|t| t.into_vec())
                .unwrap_or_default()
                .into_iter()
                .collect(),
            contract_enforced: self.contract.is_some_and(|c| c.enforced),
            enabled: self.enabled.unwrap_or(true),
            incremental,
            column_types: self.column_types.unwrap_or_default(),
            delimiter,
            ignored,
            test,
            diff,
            external,
            snapshot,
        })
    }

    /// A snapshot's strategy and columns, as dbt names them.
    fn snapshot(&self) -> Result<SnapshotConfig, InvalidConfig> {
        let invalid = |message: String, key: &'static str| {
            InvalidConfig {
            message,
            help: "for example: config(unique_key='id', strategy='timestamp', updated_at='updated_at'), or strategy='check', check_cols=['status']".into(),
            key,
        }
        };
        let unique_key = self
            .unique_key
            .clone()
            .map(|k| k.into_vec())
            .unwrap_or_default();
        if unique_key.is_empty() {
            return Err(invalid(
                "a snapshot needs a unique_key".into(),
                "unique_key",
            ));
        }
        let strategy = match self.strategy.as_deref() {
            Some("timestamp") => SnapshotStrategy::Timestamp {
                updated_at: self.updated_at.clone().ok_or_else(|| {
                    invalid("the timestamp strategy needs updated_at".into(), "strategy")
                })?,
            },
            Some("check") => SnapshotStrategy::Check {
                columns: match self.check_cols.clone() {
                    Some(OneOrMany::One(all)) if all == "all" => None,
                    Some(OneOrMany::One(one)) => Some(vec![one]),
                    Some(OneOrMany::Many(many)) if !many.is_empty() => Some(many),
                    _ => {
                        return Err(invalid(
                            "the check strategy needs check_cols: a list of columns, or 'all'"
                                .into(),
                            "strategy",
                        ));
                    }
                },
                updated_at: self.updated_at.clone(),
            },
            None => return Err(invalid("a snapshot needs a strategy".into(), "strategy")),
            Some(other) => {
                return Err(invalid(
                    format!("unknown snapshot strategy `{other}`: use timestamp or check"),
                    "strategy",
                ));
            }
        };
        let hard_deletes = match (self.hard_deletes.as_deref(), self.invalidate_hard_deletes) {
            (Some("ignore"), _) | (None, None | Some(false)) => HardDeletes::Ignore,
            (Some("invalidate"), _) | (None, Some(true)) => HardDeletes::Invalidate,
            (Some("new_record"), _) => HardDeletes::NewRecord,
            (Some(other), _) => {
                return Err(invalid(
                    format!("unknown hard_deletes `{other}`: use ignore, invalidate or new_record"),
                    "hard_deletes",
                ));
            }
        };
        let columns = SnapshotColumns::named(
            self.snapshot_meta_column_names
                .as_ref()
                .unwrap_or(&BTreeMap::new()),
        )
        .map_err(|message| invalid(message, "snapshot_meta_column_names"))?;
        Ok(SnapshotConfig {
            unique_key,
            strategy,
            hard_deletes,
            valid_to_current: self.dbt_valid_to_current.clone(),
            columns,
        })
    }

    /// An `external` model's export, from `location`, `format`, `partition_by`, `delimiter`
    /// and dbt-duckdb's `options` (which win over the keys beside them, as in dbt-duckdb).
    fn external(&self) -> Result<External, InvalidConfig> {
        let invalid = |message: String| {
            InvalidConfig {
            message,
            help: "for example: config(materialized='external', location='out/orders.parquet', options={'partition_by': 'date'})".into(),
            key: "location",
        }
        };
        let options = match &self.options {
            None | Some(Value::Null) => serde_yaml::Mapping::new(),
            Some(Value::Mapping(options)) => options.clone(),
            Some(_) => return Err(invalid("an external model's `options` is a mapping".into())),
        };
        let text = |value: &Value| match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        };
        let mut format = self.format.clone();
        let mut partition_by = self.partition_by.clone().map(|p| p.into_vec());
        let mut delimiter = self.delimiter.clone();
        let mut header = true;
        let mut compression = None;
        let mut ignored_options = Vec::new();
        for (key, value) in &options {
            let key = key.as_str().unwrap_or_default().to_ascii_lowercase();
            let wrong = || invalid(format!("the external option `{key}` cannot be {value:?}"));
            match key.as_str() {
                "format" => format = Some(text(value).ok_or_else(wrong)?),
                // DuckDB's `partition_by a` or `(a, b)`, or a list.
                "partition_by" => {
                    let columns: Vec<String> = match value {
                        Value::Sequence(items) => items.iter().filter_map(text).collect(),
                        other => text(other)
                            .ok_or_else(wrong)?
                            .trim_matches(|c| c == '(' || c == ')')
                            .split(',')
                            .map(|c| c.trim().to_string())
                            .filter(|c| !c.is_empty())
                            .collect(),
                    };
                    partition_by = Some(columns);
                }
                "delimiter" | "delim" | "sep" => delimiter = Some(text(value).ok_or_else(wrong)?),
                "header" => {
                    header = match text(value).ok_or_else(wrong)?.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(wrong()),
                    }
                }
                "compression" | "codec" => {
                    let codec = text(value).ok_or_else(wrong)?.to_ascii_lowercase();
                    compression = Some(match codec.as_str() {
                        "zstd" => "zstd(3)".to_string(),
                        "gzip" => "gzip(6)".to_string(),
                        "brotli" => "brotli(4)".to_string(),
                        "snappy" | "lz4" | "lz4_raw" | "uncompressed" => codec,
                        _ => return Err(wrong()),
                    });
                }
                _ => ignored_options.push(key),
            }
        }
        // As dbt-duckdb: the format given, else the location's extension, else Parquet.
        let extension = self
            .location
            .as_deref()
            .and_then(|l| Path::new(l).extension())
            .and_then(|e| ExportFormat::parse(&e.to_string_lossy()));
        let format = match format {
            Some(name) => ExportFormat::parse(&name).ok_or_else(|| {
                invalid(format!(
                    "unknown external format `{name}`: parquet, csv or json"
                ))
            })?,
            None => extension.unwrap_or(ExportFormat::Parquet),
        };
        let delimiter = match delimiter.as_deref().map(str::as_bytes) {
            None => b',',
            Some([byte]) if byte.is_ascii() => *byte,
            Some(_) => return Err(invalid("a CSV export's delimiter is one character".into())),
        };
        if self
            .location
            .as_deref()
            .is_some_and(|l| l.trim().is_empty())
        {
            return Err(invalid("an external model's `location` is empty".into()));
        }
        Ok(External {
            location: self.location.clone(),
            format,
            partition_by: partition_by.unwrap_or_default(),
            delimiter,
            header,
            compression,
            ignored_options,
        })
    }

    /// The model's `diff:`, with the incremental `unique_key` as the key when it gives none.
    fn diff_config(&self, incremental: Option<&Incremental>) -> Result<DiffConfig, InvalidConfig> {
        let given = self.diff.clone().unwrap_or_default();
        let severity = match given.severity.as_deref() {
            None | Some("error") => Severity::Error,
            Some("warn") => Severity::Warn,
            Some(other) => {
                return Err(InvalidConfig {
                    message: format!("diff severity `{other}` is neither error nor warn"),
                    help: "diff: {severity: warn} publishes a breach with a warning".into(),
                    key: "diff",
                });
            }
        };
        let pcts = [given.max_row_change_pct, given.max_changed_pct]
            .into_iter()
            .chain(given.columns.values().map(|c| c.max_sum_change_pct));
        if pcts.flatten().any(|pct| !pct.is_finite() || pct < 0.0) {
            return Err(InvalidConfig {
                message: "a diff percentage is a number from 0 up".into(),
                help: "for example: diff: {max_row_change_pct: 5}".into(),
                key: "diff",
            });
        }
        let key = match (given.key, incremental.map(|i| &i.strategy)) {
            (Some(key), _) => key.into_vec(),
            (None, Some(IncrementalStrategy::Merge { unique_key })) => unique_key.clone(),
            (None, _) => Vec::new(),
        };
        let defaults = DiffConfig::default();
        Ok(DiffConfig {
            enabled: given.enabled.unwrap_or(true),
            key,
            max_added: given.max_added,
            max_removed: given.max_removed,
            max_changed: given.max_changed,
            max_row_change_pct: given.max_row_change_pct,
            max_changed_pct: given.max_changed_pct,
            columns: given.columns,
            severity,
            max_rows: given.max_rows.unwrap_or(defaults.max_rows),
        })
    }

    /// The test config these keys give a singular test, read as a data test's `config:`.
    fn test_config(&self) -> Result<TestConfig, String> {
        parse_config(&self.test_defaults())
    }

    /// The test config keys set, as a data test's `config:` writes them: what `data_tests:` of
    /// the project file gives a folder's tests.
    pub fn test_defaults(&self) -> BTreeMap<String, Value> {
        let text = |value: &Option<String>| value.clone().map(Value::from);
        let keys = [
            ("severity", text(&self.severity)),
            ("warn_if", text(&self.warn_if)),
            ("error_if", text(&self.error_if)),
            ("limit", self.limit.map(Value::from)),
            ("enabled", self.enabled.map(Value::from)),
            ("where", text(&self.filter)),
        ];
        keys.into_iter()
            .filter_map(|(key, value)| Some((key.to_string(), value?)))
            .collect()
    }

    /// An incremental model's strategy and schema policy, as dbt names them.
    fn incremental(&self, partition_by: &[String]) -> Result<Incremental, InvalidConfig> {
        let unique_key = self
            .unique_key
            .clone()
            .map(|k| k.into_vec())
            .unwrap_or_default();
        let strategy = match (self.incremental_strategy.as_deref(), unique_key.is_empty()) {
            (None | Some("merge" | "delete+insert"), false) => {
                IncrementalStrategy::Merge { unique_key }
            }
            (None | Some("append"), true) => IncrementalStrategy::Append,
            (Some("merge" | "delete+insert"), true) => {
                return Err(InvalidConfig {
                    message: "the merge and delete+insert strategies need a unique_key".into(),
                    help: "for example: config(materialized='incremental', unique_key='id')".into(),
                    key: "incremental_strategy",
                });
            }
            (Some("append"), false) => {
                return Err(InvalidConfig {
                    message: "the append strategy does not use a unique_key".into(),
                    help: "remove unique_key, or use incremental_strategy='merge'".into(),
                    key: "unique_key",
                });
            }
            (Some("insert_overwrite"), _) if partition_by.is_empty() => {
                return Err(InvalidConfig {
                    message: "the insert_overwrite strategy replaces partitions: it needs partition_by".into(),
                    help: "for example: config(materialized='incremental', incremental_strategy='insert_overwrite', partition_by='date')".into(),
                    key: "incremental_strategy",
                });
            }
            (Some("insert_overwrite"), _) => IncrementalStrategy::InsertOverwrite,
            (Some(other), _) => {
                return Err(InvalidConfig {
                    message: format!("unknown incremental_strategy `{other}`"),
                    help: "use one of: merge, delete+insert, append, insert_overwrite".into(),
                    key: "incremental_strategy",
                });
            }
        };
        let on_schema_change = match self.on_schema_change.as_deref() {
            None | Some("ignore") => OnSchemaChange::Ignore,
            Some("fail") => OnSchemaChange::Fail,
            Some("append_new_columns") => OnSchemaChange::AppendNewColumns,
            Some("sync_all_columns") => OnSchemaChange::SyncAllColumns,
            Some(other) => {
                return Err(InvalidConfig {
                    message: format!("unknown on_schema_change `{other}`"),
                    help: "use one of: ignore, fail, append_new_columns, sync_all_columns".into(),
                    key: "on_schema_change",
                });
            }
        };
        Ok(Incremental {
            strategy,
            on_schema_change,
            predicates: self
                .incremental_predicates
                .clone()
                .map(|p| p.into_vec())
                .unwrap_or_default(),
            full_refresh: self.full_refresh.unwrap_or(true),
        })
    }
}

/// `models:` of `dp_project.yml`: the configuration of every model under a folder of `models/`.
/// A key is config when it starts with `+`, or names a config key (`materialized`, `tags`...)
/// and its value reads as that key's value; else it is a folder.
#[derive(Debug, Clone, Default)]
pub struct FolderConfig {
    config: ModelConfigProperties,
    folders: BTreeMap<String, FolderConfig>,
}

impl FolderConfig {
    /// The tree under `models:`; an error names the key that is wrong.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Mapping(entries) = value else {
            return match value {
                Value::Null => Ok(Self::default()),
                _ => Err("`models:` is a mapping of folders and config keys".into()),
            };
        };
        let keys = config_keys();
        let mut config = serde_yaml::Mapping::new();
        let mut folders = BTreeMap::new();
        for (key, value) in entries {
            let key = key.as_str().ok_or("a key under `models:` is a string")?;
            let config_key = match key.strip_prefix('+') {
                Some(config_key) => Some(config_key),
                // A config key's name with a value that is no config of it: a folder so named.
                None if keys.contains(key)
                    && (!value.is_mapping()
                        || (!FREE_FORM.contains(&key) && is_config(key, value))) =>
                {
                    Some(key)
                }
                None => None,
            };
            match config_key {
                Some(config_key) => {
                    if config.insert(config_key.into(), value.clone()).is_some() {
                        return Err(format!(
                            "`{config_key}` is given twice (with and without +)"
                        ));
                    }
                }
                None => {
                    let folder = Self::parse(value).map_err(|e| format!("{key}: {e}"))?;
                    folders.insert(key.to_string(), folder);
                }
            }
        }
        let config = serde_yaml::from_value(Value::Mapping(config)).map_err(|e| {
            let message = e.to_string();
            message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string()
        })?;
        Ok(Self { config, folders })
    }

    /// This tree with `specific`'s configuration over it, folder by folder.
    pub fn overridden_by(self, specific: FolderConfig) -> FolderConfig {
        let mut folders = self.folders;
        for (name, folder) in specific.folders {
            let merged = match folders.remove(&name) {
                Some(general) => general.overridden_by(folder),
                None => folder,
            };
            folders.insert(name, merged);
        }
        FolderConfig {
            config: self.config.overridden_by(specific.config),
            folders,
        }
    }

    /// The configuration the tree gives a model whose file is at `path` under its model folder
    /// (`a/b/m.sql`): the root's, overridden by `a`'s, by `a/b`'s, then by an entry named
    /// after the model itself (`a: {b: {m: {...}}}`).
    pub fn for_model(&self, path: &Path) -> ModelConfigProperties {
        let mut config = self.config.clone();
        let mut node = self;
        let folders = path
            .parent()
            .into_iter()
            .flat_map(|p| p.iter())
            .chain(path.file_stem());
        for folder in folders {
            let Some(next) = node.folders.get(&*folder.to_string_lossy()) else {
                break;
            };
            config = config.overridden_by(next.config.clone());
            node = next;
        }
        config
    }
}

/// Config keys whose value may be any mapping: bare, such a key with a mapping is a folder; as
/// config it takes its `+` (`+meta: {owner: x}`).
const FREE_FORM: &[&str] = &[
    "meta",
    "docs",
    "store_failures",
    "quote_columns",
    "persist_docs",
    "grants",
    "quoting",
    "pre_hook",
    "post_hook",
    "options",
];

/// Whether `key: value` reads as configuration.
fn is_config(key: &str, value: &Value) -> bool {
    let mut one = serde_yaml::Mapping::new();
    one.insert(key.into(), value.clone());
    serde_yaml::from_value::<ModelConfigProperties>(Value::Mapping(one)).is_ok()
}

/// The names of the config keys: those of [`ModelConfigProperties`], from its JSON Schema.
fn config_keys() -> BTreeSet<String> {
    let schema = schemars::schema_for!(ModelConfigProperties);
    schema
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> ModelConfigProperties {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn the_most_specific_layer_wins_key_by_key_and_tags_add_up() {
        let properties = yaml("{materialized: partitioned, partition_by: date, tags: [a]}");
        let sql = yaml("{partition_by: [day], tags: b}");
        let config = properties.overridden_by(sql).resolve().unwrap();
        assert_eq!(config.materialized, Materialization::Partitioned);
        assert_eq!(config.partition_by, ["day"]);
        assert_eq!(config.tags, BTreeSet::from(["a".into(), "b".into()]));
        assert!(!config.contract_enforced);
    }

    #[test]
    fn the_folder_tree_configures_the_models_under_each_folder_the_deepest_winning() {
        let tree: Value = serde_yaml::from_str(
            "+tags: [all]\nmaterialized: table\nmarts:\n  +materialized: partitioned\n  partition_by: date\n  finance:\n    materialized: ephemeral\n    partition_by: []\n  tags:\n    +tags: [a_folder_named_tags]\n",
        )
        .unwrap();
        let tree = FolderConfig::parse(&tree).unwrap();
        let resolved = |path: &str| tree.for_model(Path::new(path)).resolve().unwrap();
        let staging = resolved("staging/stg.sql");
        assert_eq!(staging.materialized, Materialization::Table);
        assert_eq!(staging.tags, BTreeSet::from(["all".into()]));
        let marts = resolved("marts/daily.sql");
        assert_eq!(marts.materialized, Materialization::Partitioned);
        assert_eq!(marts.partition_by, ["date"]);
        assert!(resolved("marts/finance/eph.sql").is_ephemeral());
        assert_eq!(
            resolved("marts/tags/t.sql").tags,
            BTreeSet::from(["all".into(), "a_folder_named_tags".into()])
        );
        let wrong: Value = serde_yaml::from_str("marts:\n  +materialised: table\n").unwrap();
        let error = FolderConfig::parse(&wrong).unwrap_err();
        assert!(
            error.contains("marts: unknown field `materialised`"),
            "{error}"
        );
    }

    #[test]
    fn an_external_model_takes_dbt_duckdbs_keys() {
        let config = yaml(
            "{materialized: external, location: out/x.csv, options: {partition_by: '(a, b)', delimiter: '|', header: false, per_thread_output: true}}",
        )
        .resolve()
        .unwrap();
        assert_eq!(config.materialized, Materialization::External);
        let external = config.external.clone().unwrap();
        // The format of the location's extension; the export's partitions are the config's.
        assert_eq!(external.format, ExportFormat::Csv);
        assert_eq!(external.partition_by, ["a", "b"]);
        assert_eq!(config.partition_by, ["a", "b"]);
        assert_eq!((external.delimiter, external.header), (b'|', false));
        assert_eq!(external.ignored_options, ["per_thread_output"]);
        let default = yaml("{materialized: external, partition_by: [d]}")
            .resolve()
            .unwrap()
            .external
            .unwrap();
        assert_eq!(default.location, None);
        assert_eq!(default.format, ExportFormat::Parquet);
        assert_eq!(default.partition_by, ["d"]);
        // `format` wins over the extension; an unknown one is refused.
        let json = yaml("{materialized: external, location: a.parquet, format: json}");
        assert_eq!(
            json.resolve().unwrap().external.unwrap().format,
            ExportFormat::Json
        );
        let xlsx = yaml("{materialized: external, format: xlsx}").resolve();
        assert!(xlsx.unwrap_err().message.contains("xlsx"));
        // On a model that is not exported, the keys are ignored (and said to be).
        let table = yaml("{location: x, format: csv}").resolve().unwrap();
        assert_eq!(table.ignored, ["location", "format"]);
        assert_eq!(table.external, None);
    }

    #[test]
    fn one_list_of_keys_for_yaml_and_config_calls() {
        let unknown = serde_yaml::from_str::<ModelConfigProperties>("{materialised: table}");
        assert!(unknown.unwrap_err().to_string().contains("expected one of"));
    }
}
