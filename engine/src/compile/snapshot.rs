//! COMPILE: a snapshot's SQL, as dbt's snapshot materialization writes it. Its first run (and
//! every plan of it: checks, docs, the models that read it) is its query with the columns a
//! snapshot adds, every row a current version. A later run is one query over the query and the
//! table's current versions, giving the versions to add and the current versions that end
//! (the same `dbt_scd_id`, a new `dbt_valid_to`); the build merges them by `dbt_scd_id`.

use datafusion::arrow::datatypes::{DataType, Schema};

use super::ModelPlan;
use crate::project::{HardDeletes, SnapshotConfig, SnapshotStrategy};
use crate::source::quote_identifier as q;

/// The time of the run, as a timestamp without a time zone (UTC).
const RUN_TIME: &str = "cast(now() as timestamp)";
/// The column of the query's rows holding the time their version starts at.
const CHANGED_AT: &str = "dp_snapshot_changed_at";

/// `plan`, a snapshot's compiled query, as the snapshot's first run: each row with its id, its
/// times and no end.
pub(super) fn first_run(plan: ModelPlan, config: &SnapshotConfig) -> ModelPlan {
    let columns = &config.columns;
    let updated_at = changed_at(config);
    let scd_id = scd_id(config.unique_key.iter().map(String::as_str), &updated_at);
    let mut before = format!(
        "select *,\n    {scd_id} as {},\n    {updated_at} as {},\n    {updated_at} as {},\n    {} as {}",
        q(&columns.scd_id),
        q(&columns.updated_at),
        q(&columns.valid_from),
        valid_to_current(config, &updated_at),
        q(&columns.valid_to),
    );
    if config.hard_deletes == HardDeletes::NewRecord {
        before.push_str(&format!(",\n    'False' as {}", q(&columns.is_deleted)));
    }
    before.push_str("\nfrom (\n");
    plan.wrapped(before, "\n) as snapshot_query")
}

/// The SQL expression of the time a row's new version starts at: its `updated_at`, or the time
/// of the run (a `check` snapshot without one).
fn changed_at(config: &SnapshotConfig) -> String {
    match &config.strategy {
        SnapshotStrategy::Timestamp { updated_at }
        | SnapshotStrategy::Check {
            updated_at: Some(updated_at),
            ..
        } => format!("({updated_at})"),
        SnapshotStrategy::Check {
            updated_at: None, ..
        } => RUN_TIME.to_string(),
    }
}

/// A version's id: the hash of its key and the time it starts at, as dbt computes it.
fn scd_id<'a>(key: impl Iterator<Item = &'a str>, changed_at: &'a str) -> String {
    let parts: Vec<String> = key
        .chain(std::iter::once(changed_at))
        .map(|part| format!("coalesce(cast({part} as varchar), '')"))
        .collect();
    format!("md5({})", parts.join(" || '|' || "))
}

/// `dbt_valid_to` of a current version starting at `changed_at`: NULL of its type, or the
/// configured `dbt_valid_to_current`.
fn valid_to_current(config: &SnapshotConfig, changed_at: &str) -> String {
    let null = format!("nullif({changed_at}, {changed_at})");
    match &config.valid_to_current {
        Some(current) => format!("coalesce({null}, {current})"),
        None => null,
    }
}

/// A snapshot's later run: `plan` is its first run's (see [`first_run`]); `query` is the schema
/// of its query, `table` that of its table as published. The result has the table's columns
/// (and the query's new ones after them).
pub(super) fn merge_query(
    plan: &ModelPlan,
    config: &SnapshotConfig,
    query: &Schema,
    table: &Schema,
) -> ModelPlan {
    let merge = Merge::new(config, query, table, &plan.name);
    let names = &config.columns;
    let mut ctes = vec![
        format!(
            "source_data as (\n    select *, {}, {} as {CHANGED_AT} from snapshot_query\n)",
            merge.key_columns(),
            changed_at(config)
        ),
        format!(
            "snapshotted_data as (\n    select *, {} from {} where {}\n)",
            merge.key_columns(),
            merge.this,
            merge.current()
        ),
        merge.insertions(),
        merge.branch(
            "updates",
            &|name| (name == names.valid_to).then(|| format!("s.{CHANGED_AT}")),
            &format!(
                "from snapshotted_data as t\n    join source_data as s on {}\n    where {}",
                merge.join(),
                merge.changed()
            ),
        ),
    ];
    if config.hard_deletes != HardDeletes::Ignore {
        ctes.push(merge.branch(
            "deletes",
            &|name| (name == names.valid_to).then(|| merge.run_time.clone()),
            &merge.gone(),
        ));
    }
    if config.hard_deletes == HardDeletes::NewRecord {
        let scd_id = scd_id(
            std::iter::once(format!("t.{}", q(&names.scd_id)).as_str()),
            &merge.run_time,
        );
        ctes.push(merge.branch(
            "deletion_records",
            &|name| match name {
                _ if name == names.scd_id => Some(scd_id.clone()),
                _ if name == names.updated_at || name == names.valid_from => {
                    Some(merge.run_time.clone())
                }
                _ if name == names.is_deleted => Some("'True'".into()),
                _ => None,
            },
            &merge.gone(),
        ));
    }
    // Every CTE after the two inputs is a branch of the result.
    let branches: Vec<String> = ["insertions", "updates", "deletes", "deletion_records"]
        [..ctes.len() - 2]
        .iter()
        .map(|branch| format!("select * from {branch}"))
        .collect();
    let after = format!(
        "\n),\n{}\n{}",
        ctes.join(",\n"),
        branches.join("\nunion all\n")
    );
    plan.around_query("with snapshot_query as (\n".to_string(), &after)
}

/// What a snapshot's later run is written from: its config, the columns of its query and of
/// its table, and the names it gives things.
struct Merge<'a> {
    config: &'a SnapshotConfig,
    query: &'a Schema,
    table: &'a Schema,
    /// The output's columns: the table's in order, then the query's new ones (and the deleted
    /// flag, when it is new).
    output: Vec<&'a str>,
    /// The names of the key's columns, `dbt_unique_key_1`..., as dbt's.
    keys: Vec<String>,
    /// The time of the run, of the type of the table's times.
    run_time: String,
    /// The table as published, quoted.
    this: String,
}

impl<'a> Merge<'a> {
    fn new(config: &'a SnapshotConfig, query: &'a Schema, table: &'a Schema, name: &str) -> Self {
        let names = &config.columns;
        let meta = names.all();
        let in_table = |name: &str| table.field_with_name(name).is_ok();
        let mut output: Vec<&str> = table.fields().iter().map(|f| f.name().as_str()).collect();
        output.extend(
            query
                .fields()
                .iter()
                .map(|f| f.name())
                .filter(|name| !in_table(name) && !meta.contains(name))
                .map(String::as_str),
        );
        if config.hard_deletes == HardDeletes::NewRecord && !in_table(&names.is_deleted) {
            output.push(&names.is_deleted);
        }
        let run_time = match table
            .field_with_name(&names.valid_from)
            .map(|f| f.data_type())
        {
            Ok(data_type @ DataType::Timestamp(..)) => format!("arrow_cast(now(), '{data_type}')"),
            _ => RUN_TIME.to_string(),
        };
        Self {
            config,
            query,
            table,
            output,
            keys: (1..=config.unique_key.len())
                .map(|i| format!("dbt_unique_key_{i}"))
                .collect(),
            run_time,
            this: q(name),
        }
    }

    fn in_table(&self, name: &str) -> bool {
        self.table.field_with_name(name).is_ok()
    }

    fn in_query(&self, name: &str) -> bool {
        self.query.field_with_name(name).is_ok()
    }

    /// The key's expressions as the key's columns.
    fn key_columns(&self) -> String {
        let columns: Vec<String> = self
            .config
            .unique_key
            .iter()
            .zip(&self.keys)
            .map(|(expr, k)| format!("{expr} as {k}"))
            .collect();
        columns.join(", ")
    }

    /// A row of the query (`s`) and its current version (`t`) have the same key.
    fn join(&self) -> String {
        let equal: Vec<String> = self.keys.iter().map(|k| format!("s.{k} = t.{k}")).collect();
        equal.join(" and ")
    }

    /// The versions that are current.
    fn current(&self) -> String {
        let valid_to = q(&self.config.columns.valid_to);
        match &self.config.valid_to_current {
            Some(current) => format!("({valid_to} = {current} or {valid_to} is null)"),
            None => format!("{valid_to} is null"),
        }
    }

    /// A row of the query differs from its current version, or comes back after a deletion.
    fn changed(&self) -> String {
        let changed = row_changed(self.config, self.query, self.table);
        match self.in_table(&self.config.columns.is_deleted) {
            true => format!(
                "({changed}) or t.{} = 'True'",
                q(&self.config.columns.is_deleted)
            ),
            false => format!("({changed})"),
        }
    }

    /// The current versions whose row is gone from the query (and not already marked deleted).
    fn gone(&self) -> String {
        let marked = match self.in_table(&self.config.columns.is_deleted) {
            true => format!(
                " and t.{} is distinct from 'True'",
                q(&self.config.columns.is_deleted)
            ),
            false => String::new(),
        };
        format!(
            "from snapshotted_data as t\n    left join source_data as s on {}\n    where s.{} is null{marked}",
            self.join(),
            self.keys[0]
        )
    }

    /// The versions that begin: new rows, changed rows and rows back. A row back as it was (a
    /// version the table holds) gets an id of its own, where dbt-duckdb repeats the old one.
    fn insertions(&self) -> String {
        let names = &self.config.columns;
        let changed_at = format!("s.{CHANGED_AT}");
        let keys: Vec<String> = self.keys.iter().map(|k| format!("s.{k}")).collect();
        let new_id = scd_id(keys.iter().map(String::as_str), &changed_at);
        let value = |name: &str| {
            let quoted = q(name);
            Some(match name {
                _ if name == names.scd_id => format!(
                    "case when taken.id is null then {new_id} else md5({new_id} || '|' || cast({} as varchar)) end",
                    self.run_time
                ),
                _ if name == names.updated_at || name == names.valid_from => changed_at.clone(),
                _ if name == names.valid_to => valid_to_current(self.config, &changed_at),
                _ if name == names.is_deleted => "'False'".into(),
                _ if self.in_query(name) => format!("s.{quoted}"),
                _ => format!("nullif(t.{quoted}, t.{quoted})"),
            })
        };
        let from = format!(
            "from source_data as s\n    left join snapshotted_data as t on {join}\n    \
             left join (select {id} as id from {this}) as taken on taken.id = {new_id}\n    \
             where t.{first} is null or {changed}",
            join = self.join(),
            id = q(&names.scd_id),
            this = self.this,
            first = self.keys[0],
            changed = self.changed(),
        );
        self.branch("insertions", &value, &from)
    }

    /// The CTE `name`: each output column's `value` (by default the current version's, `t`,
    /// or NULL of the query's type for a column new in the query), `from` the rest.
    fn branch(&self, name: &str, value: &dyn Fn(&str) -> Option<String>, from: &str) -> String {
        let columns: Vec<String> = self
            .output
            .iter()
            .map(|column| {
                let quoted = q(column);
                let value = value(column).unwrap_or_else(|| {
                    match (self.in_table(column), self.in_query(column)) {
                        (true, _) => format!("t.{quoted}"),
                        (false, true) => format!("nullif(s.{quoted}, s.{quoted})"),
                        (false, false) => "cast(null as varchar)".into(),
                    }
                });
                format!("{value} as {quoted}")
            })
            .collect();
        format!(
            "{name} as (\n    select\n        {}\n    {from}\n)",
            columns.join(",\n        ")
        )
    }
}

/// Whether a row of the query (`s`) differs from its current version (`t`): a later
/// `updated_at`, or a checked column that differs (any column, when the query has a column the
/// table does not, as dbt decides).
fn row_changed(config: &SnapshotConfig, query: &Schema, table: &Schema) -> String {
    let meta = config.columns.all();
    let columns = match &config.strategy {
        SnapshotStrategy::Timestamp { .. } => {
            return format!("t.{} < s.{CHANGED_AT}", q(&config.columns.valid_from));
        }
        SnapshotStrategy::Check { columns, .. } => match columns {
            Some(listed) => listed.clone(),
            None => query
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .filter(|name| !meta.contains(&name))
                .collect(),
        },
    };
    if columns
        .iter()
        .any(|c| table.field_with_name(c.trim_matches('"')).is_err())
    {
        return "true".into();
    }
    let differs: Vec<String> = columns
        .iter()
        .map(|c| {
            let c = q(c.trim_matches('"'));
            format!("t.{c} is distinct from s.{c}")
        })
        .collect();
    match differs.is_empty() {
        true => "false".into(),
        false => differs.join(" or "),
    }
}
