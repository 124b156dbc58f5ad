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
    let names = &config.columns;
    let meta = [
        &names.scd_id,
        &names.updated_at,
        &names.valid_from,
        &names.valid_to,
        &names.is_deleted,
    ];
    let in_table = |name: &str| table.field_with_name(name).is_ok();
    let in_query = |name: &str| query.field_with_name(name).is_ok();
    let marks_deletes =
        config.hard_deletes == HardDeletes::NewRecord || in_table(&names.is_deleted);
    // The table's columns in order, then the query's new ones; the deleted flag when used.
    let mut output: Vec<&str> = table.fields().iter().map(|f| f.name().as_str()).collect();
    output.extend(
        query
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|name| !in_table(name) && !meta.contains(&&name.to_string())),
    );
    if marks_deletes && !in_table(&names.is_deleted) {
        output.push(&names.is_deleted);
    }
    let run_time = match table
        .field_with_name(&names.valid_from)
        .map(|f| f.data_type())
    {
        Ok(data_type @ DataType::Timestamp(..)) => {
            format!("arrow_cast(now(), '{data_type}')")
        }
        _ => RUN_TIME.to_string(),
    };
    let keys: Vec<String> = (1..=config.unique_key.len())
        .map(|i| format!("dbt_unique_key_{i}"))
        .collect();
    let join = keys
        .iter()
        .map(|k| format!("s.{k} = t.{k}"))
        .collect::<Vec<_>>()
        .join(" and ");
    let key_columns = config
        .unique_key
        .iter()
        .zip(&keys)
        .map(|(expr, k)| format!("{expr} as {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    let changed_at_s = format!("s.{CHANGED_AT}");
    let is_deleted_t = format!("t.{}", q(&names.is_deleted));
    let row_changed = row_changed(config, query, table, &meta);
    let was_deleted = match in_table(&names.is_deleted) {
        true => format!(" or {is_deleted_t} = 'True'"),
        false => String::new(),
    };
    // Each branch's value of each output column, `t` the current version, `s` the query's row.
    let select = |value: &dyn Fn(&str) -> Option<String>| -> String {
        output
            .iter()
            .map(|name| {
                let quoted = q(name);
                let value = value(name).unwrap_or_else(|| match in_query(name) {
                    true if !in_table(name) => format!("nullif(s.{quoted}, s.{quoted})"),
                    _ if in_table(name) => format!("t.{quoted}"),
                    _ => "cast(null as varchar)".to_string(),
                });
                format!("{value} as {quoted}")
            })
            .collect::<Vec<_>>()
            .join(",\n        ")
    };
    let query_keys: Vec<String> = keys.iter().map(|k| format!("s.{k}")).collect();
    let new_scd_id = scd_id(query_keys.iter().map(String::as_str), &changed_at_s);
    let insertions = select(&|name| {
        let quoted = q(name);
        Some(match name {
            // A row back as it was before it went (a version the table holds): as dbt-duckdb,
            // a new current version, with an id of its own.
            _ if name == names.scd_id => format!(
                "case when taken.id is null then {new_scd_id} else md5({new_scd_id} || '|' || cast({run_time} as varchar)) end"
            ),
            _ if name == names.updated_at || name == names.valid_from => changed_at_s.clone(),
            _ if name == names.valid_to => valid_to_current(config, &changed_at_s),
            _ if name == names.is_deleted => "'False'".into(),
            _ if in_query(name) => format!("s.{quoted}"),
            _ => format!("nullif(t.{quoted}, t.{quoted})"),
        })
    });
    let updates = select(&|name| (name == names.valid_to).then(|| changed_at_s.clone()));
    let deletes = select(&|name| (name == names.valid_to).then(|| run_time.clone()));
    let deletion_records = select(&|name| {
        Some(match name {
            _ if name == names.scd_id => scd_id(
                std::iter::once(format!("t.{}", q(&names.scd_id)).as_str()),
                &run_time,
            ),
            _ if name == names.updated_at || name == names.valid_from => run_time.clone(),
            _ if name == names.is_deleted => "'True'".into(),
            _ => return None,
        })
    });
    let current = match &config.valid_to_current {
        Some(current) => format!(
            "({valid_to} = {current} or {valid_to} is null)",
            valid_to = q(&names.valid_to)
        ),
        None => format!("{} is null", q(&names.valid_to)),
    };
    let this = q(&plan.name);
    let gone = format!(
        "from snapshotted_data as t\n    left join source_data as s on {join}\n    where s.{} is null{}",
        keys[0],
        match in_table(&names.is_deleted) {
            true => format!(" and {is_deleted_t} is distinct from 'True'"),
            false => String::new(),
        }
    );
    let before = "with snapshot_query as (\n".to_string();
    let mut after = format!(
        "\n),\nsource_data as (\n    select *, {keys}, {changed_at} as {CHANGED_AT} from snapshot_query\n),\n\
         snapshotted_data as (\n    select *, {keys} from {this} where {current}\n),\n\
         insertions as (\n    select\n        {insertions}\n    from source_data as s\n    left join snapshotted_data as t on {join}\n    \
         left join (select {scd} as id from {this}) as taken on taken.id = {new_scd_id}\n    \
         where t.{first} is null or ({row_changed}){was_deleted}\n),\n\
         updates as (\n    select\n        {updates}\n    from snapshotted_data as t\n    join source_data as s on {join}\n    \
         where ({row_changed}){was_deleted}\n)",
        keys = key_columns,
        changed_at = changed_at(config),
        first = keys[0],
        scd = q(&names.scd_id),
    );
    let mut branches = vec![
        "select * from insertions".to_string(),
        "select * from updates".to_string(),
    ];
    if config.hard_deletes != HardDeletes::Ignore {
        after.push_str(&format!(
            ",\ndeletes as (\n    select\n        {deletes}\n    {gone}\n)"
        ));
        branches.push("select * from deletes".into());
    }
    if config.hard_deletes == HardDeletes::NewRecord {
        after.push_str(&format!(
            ",\ndeletion_records as (\n    select\n        {deletion_records}\n    {gone}\n)"
        ));
        branches.push("select * from deletion_records".into());
    }
    after.push('\n');
    after.push_str(&branches.join("\nunion all\n"));
    plan.around_query(before, &after)
}

/// Whether a row of the query (`s`) differs from its current version (`t`): a later
/// `updated_at`, or a checked column that differs (any column, when the query has a column the
/// table does not, as dbt decides).
fn row_changed(
    config: &SnapshotConfig,
    query: &Schema,
    table: &Schema,
    meta: &[&String],
) -> String {
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
