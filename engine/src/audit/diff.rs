//! The diff of a build: its staged rows against the published rows they replace, computed in
//! DataFusion before the commit: rows before and after (per partition), rows added, removed
//! and changed by key with a sample of each, and per column the change in NULLs, distinct
//! values and the min / max / sum of numbers. The model's `diff:` thresholds judge it like a
//! data test.

mod in_memory;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::project::{DataTestKind, DiffConfig, NodeId, Project, Severity};
use crate::report::{ColumnDiff, DiffMode, ModelDiff, RowCounts, TestKind, TestResult, TestStatus};
use crate::source::quote_identifier as quote;
use crate::storage::DiffSides;

/// Above this many rows (before and after together), distinct values are counted
/// approximately.
const EXACT_DISTINCT_ROWS: u64 = 1_000_000;

/// Sides of at most this many rows are read into memory once, rather than scanned by each
/// query of the diff.
const IN_MEMORY_ROWS: u64 = 100_000;

/// Keys shown of each kind of change.
const SAMPLE_KEYS: usize = 5;

/// The names the two sides are registered under, which no model can have.
const BEFORE: &str = "diff-before";
const AFTER: &str = "diff-after";

/// The columns a model's rows are matched by: its `diff: {key}` (or incremental `unique_key`),
/// else the column of a `unique` test, else those of a `unique_combination_of_columns` test.
pub fn diff_key(project: &Project, model: &str, config: &DiffConfig) -> Vec<String> {
    if !config.key.is_empty() {
        return config.key.clone();
    }
    let tests = project.data_tests_of(&NodeId::Model(model.to_string()));
    let unique = tests
        .iter()
        .find_map(|test| match (&test.kind, &test.column) {
            (DataTestKind::Unique, Some(column)) => Some(vec![column.clone()]),
            _ => None,
        });
    unique
        .or_else(|| {
            tests.iter().find_map(|test| match &test.kind {
                DataTestKind::UniqueCombinationOfColumns { columns } => Some(columns.clone()),
                _ => None,
            })
        })
        .unwrap_or_default()
}

/// How a diff's rows split into partitions.
pub enum Partitions {
    /// The table is not partitioned.
    None,
    /// Both sides are this one partition (`col=value`).
    One(String),
    /// By these partition columns.
    Many(Vec<String>),
}

/// The diff of `sides.after` (the staged rows) against `sides.before` (the published rows they
/// replace), both registered in `session` for its time; `partitions` splits the row counts.
/// With thresholds in `config`, also the diff judged as a test of `model`, its offending keys
/// written under `failures_dir`.
pub async fn diff(
    session: &SessionContext,
    sides: DiffSides,
    model: &str,
    key: &[String],
    partitions: Partitions,
    config: &DiffConfig,
    failures_dir: &Path,
) -> Result<(ModelDiff, Option<TestResult>)> {
    // Both sides have the table's columns.
    let fields: Vec<_> = sides
        .after
        .schema()
        .as_arrow()
        .fields()
        .iter()
        .map(|field| field.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let small = |rows: Option<u64>| rows.is_some_and(|rows| rows <= IN_MEMORY_ROWS);
    let in_memory = small(sides.before_rows) && small(sides.after_rows);
    // Small sides are queried in one partition: splitting a few rows costs more than it saves.
    let single;
    let session = match in_memory {
        true => {
            // Here, whatever engine read the sides: the rows are in hand.
            let config = session.copied_config().with_target_partitions(1);
            single = SessionContext::new_with_config_rt(config, session.runtime_env());
            &single
        }
        false => session,
    };
    let mut in_hand = None;
    if in_memory {
        // Read once each (side by side): the figures are computed on the rows in hand. (The
        // batches of the partitions' scans may differ from the table's schema in nullability
        // only.)
        let (before, after) =
            futures::future::try_join(sides.before.collect(), sides.after.collect()).await?;
        let mut sides = Vec::new();
        for (name, batches) in [(BEFORE, before), (AFTER, after)] {
            let batches = batches
                .into_iter()
                .map(|batch| RecordBatch::try_new(schema.clone(), batch.columns().to_vec()))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            sides.push(concat_batches(&schema, &batches)?);
            let table = MemTable::try_new(schema.clone(), vec![batches])?;
            session.register_table(name, Arc::new(table))?;
        }
        in_hand = Some(sides);
    } else {
        session.register_table(BEFORE, sides.before.into_view())?;
        session.register_table(AFTER, sides.after.into_view())?;
    }
    let rows = (sides.before_rows, sides.after_rows);
    let computed = async {
        let (diff, changes) = compute(
            session,
            &schema,
            rows,
            in_hand.as_deref(),
            key,
            partitions,
            config.max_rows,
        )
        .await?;
        // A threshold compares with what was published: a first build, or a new partition,
        // has nothing to compare with.
        let judged = match config.has_thresholds() && diff.rows_before > 0 {
            true => Some(judge(session, model, &diff, config, changes, failures_dir).await),
            false => None,
        };
        Ok((diff, judged))
    }
    .await;
    let _ = session.deregister_table(BEFORE);
    let _ = session.deregister_table(AFTER);
    computed
}

/// The diff, and the query of its changed keys when it has a key. `rows` are the row counts
/// before and after when the files' statistics give them.
async fn compute(
    session: &SessionContext,
    schema: &datafusion::arrow::datatypes::Schema,
    rows: (Option<u64>, Option<u64>),
    in_hand: Option<&[RecordBatch]>,
    key: &[String],
    partitions: Partitions,
    max_rows: u64,
) -> Result<(ModelDiff, Option<String>)> {
    let (before, after) = (quote(BEFORE), quote(AFTER));
    let count = |known: Option<u64>, table: String| async move {
        match known {
            Some(rows) => Ok::<u64, datafusion::error::DataFusionError>(rows),
            None => Ok(integer(
                &query(session, &format!("select count(*) from {table}")).await?,
                0,
                0,
            )),
        }
    };
    let mut diff = ModelDiff {
        mode: DiffMode::Full,
        rows_before: count(rows.0, before.clone()).await?,
        rows_after: count(rows.1, after.clone()).await?,
        ..Default::default()
    };
    let rows = diff.rows_before + diff.rows_after;
    if rows > max_rows {
        diff.mode = DiffMode::Counts;
        return Ok((diff, None));
    }
    diff.partitions = match partitions {
        Partitions::None => BTreeMap::new(),
        // The whole diff is the partition's.
        Partitions::One(name) => BTreeMap::from([(
            name,
            RowCounts {
                before: diff.rows_before,
                after: diff.rows_after,
            },
        )]),
        Partitions::Many(columns) => partition_counts(session, &columns).await?,
    };
    let columns: Vec<(String, bool)> = schema
        .fields()
        .iter()
        // A key's sum or range says nothing: only its NULLs and distinct values are counted.
        .map(|f| {
            let number = f.data_type().is_numeric() && !key.contains(f.name());
            (f.name().clone(), number)
        })
        .collect();
    let approximate = rows > EXACT_DISTINCT_ROWS;
    let keyed = !key.is_empty() && key.iter().all(|k| columns.iter().any(|(c, _)| c == k));
    let compared: Vec<&str> = columns
        .iter()
        .map(|(c, _)| c.as_str())
        .filter(|c| !key.iter().any(|k| k == c))
        .collect();
    let changes = changes_sql(key, &compared);
    let both_sides = diff.rows_before > 0 && diff.rows_after > 0;
    let (before_stats, after_stats, keyed_figures) = match in_hand {
        Some([before_rows, after_rows]) => {
            let keyed = (keyed && both_sides)
                .then(|| in_memory::changes(before_rows, after_rows, key, &compared, SAMPLE_KEYS));
            (
                in_memory::column_stats(before_rows, &columns)?,
                in_memory::column_stats(after_rows, &columns)?,
                keyed.transpose()?,
            )
        }
        _ => {
            let (before_stats, after_stats, counts) = query_figures(
                session,
                (&before, &after),
                (diff.rows_before, diff.rows_after),
                &columns,
                approximate,
                keyed.then_some(&changes),
            )
            .await?;
            let keyed = match counts {
                Some((added, removed, changed)) if both_sides => Some(Changes {
                    added,
                    removed,
                    changed,
                    samples: sample_keys(session, &changes, key, added + removed + changed).await?,
                }),
                _ => None,
            };
            (before_stats, after_stats, keyed)
        }
    };
    for ((name, _), (b, a)) in columns
        .iter()
        .zip(before_stats.into_iter().zip(after_stats))
    {
        diff.columns.insert(
            name.clone(),
            ColumnDiff {
                nulls_before: b.nulls,
                nulls_after: a.nulls,
                distinct_before: b.distinct,
                distinct_after: a.distinct,
                distinct_approximate: approximate,
                min_before: b.min,
                min_after: a.min,
                max_before: b.max,
                max_after: a.max,
                sum_before: b.sum,
                sum_after: a.sum,
            },
        );
    }
    let mut changes_query = None;
    if keyed {
        diff.key = key.to_vec();
        // With one side empty, every row is added (or removed), and a sample says nothing.
        let found = keyed_figures.unwrap_or(Changes {
            added: diff.rows_after,
            removed: diff.rows_before,
            changed: 0,
            samples: BTreeMap::new(),
        });
        diff.added = Some(found.added);
        diff.removed = Some(found.removed);
        diff.changed = Some(found.changed);
        diff.samples = found.samples;
        changes_query = Some(changes);
    }
    Ok((diff, changes_query))
}

/// What the changes by key are: counts and the first keys of each.
struct Changes {
    added: u64,
    removed: u64,
    changed: u64,
    samples: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// Each side's column figures and the counts of changes by key (when `changes` is given), by
/// queries run side by side; a side without rows has none to compute.
async fn query_figures(
    session: &SessionContext,
    (before, after): (&str, &str),
    (rows_before, rows_after): (u64, u64),
    columns: &[(String, bool)],
    approximate: bool,
    changes: Option<&String>,
) -> Result<(Vec<Stats>, Vec<Stats>, Option<(u64, u64, u64)>)> {
    let mut parts = Vec::new();
    for (table, rows) in [(before, rows_before), (after, rows_after)] {
        if rows > 0 {
            parts.push(stats_sql(table, columns, approximate));
        }
    }
    if let Some(changes) = changes.filter(|_| rows_before > 0 && rows_after > 0) {
        parts.push(format!(
            "select count(case when change = 'added' then 1 end), \
             count(case when change = 'removed' then 1 end), \
             count(case when change = 'changed' then 1 end) from ({changes}) as changes"
        ));
    }
    let figures: Vec<Vec<RecordBatch>> =
        futures::future::try_join_all(parts.iter().map(|part| query(session, part))).await?;
    let mut figures = figures.iter();
    let mut side = |rows: u64| match rows {
        0 => columns.iter().map(|_| Stats::empty()).collect(),
        _ => figures
            .next()
            .map_or_else(Vec::new, |batches| read_stats(batches, columns.len())),
    };
    let (before_stats, after_stats) = (side(rows_before), side(rows_after));
    let counts = figures.next().map(|batches| {
        (
            integer(batches, 0, 0),
            integer(batches, 1, 0),
            integer(batches, 2, 0),
        )
    });
    Ok((before_stats, after_stats, counts))
}

/// The first keys of each change, in one query (none when nothing changed).
async fn sample_keys(
    session: &SessionContext,
    changes: &str,
    key: &[String],
    changed: u64,
) -> Result<BTreeMap<String, Vec<BTreeMap<String, String>>>> {
    let mut samples: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    if changed == 0 {
        return Ok(samples);
    }
    let order: Vec<String> = key.iter().map(|k| quote(k)).collect();
    let order = order.join(", ");
    let sample = query(
        session,
        &format!(
            "select * from (select *, row_number() over (partition by change order by {order}) as n \
             from ({changes}) as changes) as numbered where n <= {SAMPLE_KEYS} order by change, {order}"
        ),
    )
    .await?;
    for (kind, keys) in key_rows(&sample, key) {
        samples.entry(kind).or_default().push(keys);
    }
    Ok(samples)
}

/// One row per key that the build adds, removes or changes: `change`, then the key columns.
fn changes_sql(key: &[String], compared: &[&str]) -> String {
    let on: Vec<String> = key
        .iter()
        .map(|k| format!("b.{0} is not distinct from a.{0}", quote(k)))
        .collect();
    let keys: Vec<String> = key
        .iter()
        .map(|k| format!("coalesce(a.{0}, b.{0}) as {0}", quote(k)))
        .collect();
    let differs = match compared.is_empty() {
        true => "false".to_string(),
        false => compared
            .iter()
            .map(|c| format!("(b.{0} is distinct from a.{0})", quote(c)))
            .collect::<Vec<_>>()
            .join(" or "),
    };
    format!(
        "select * from (select case when b.\"__dp_before\" is null then 'added' \
         when a.\"__dp_after\" is null then 'removed' \
         when {differs} then 'changed' end as change, {keys} \
         from (select *, true as \"__dp_before\" from {before}) as b \
         full outer join (select *, true as \"__dp_after\" from {after}) as a on {on}) as changes \
         where change is not null",
        keys = keys.join(", "),
        before = quote(BEFORE),
        after = quote(AFTER),
        on = on.join(" and "),
    )
}

/// Rows before and after per partition, as `col=value/...` keys.
async fn partition_counts(
    session: &SessionContext,
    partition_by: &[String],
) -> Result<BTreeMap<String, RowCounts>> {
    let mut sorted = partition_by.to_vec();
    sorted.sort();
    let columns: Vec<String> = sorted
        .iter()
        .map(|c| format!("cast({} as varchar)", quote(c)))
        .collect();
    let mut counts: BTreeMap<String, RowCounts> = BTreeMap::new();
    for (table, after) in [(BEFORE, false), (AFTER, true)] {
        let batches = query(
            session,
            &format!(
                "select {0}, count(*) from {1} group by {0}",
                columns.join(", "),
                quote(table)
            ),
        )
        .await?;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let key: Vec<String> = sorted
                    .iter()
                    .enumerate()
                    .map(|(i, column)| match batch.column(i).is_null(row) {
                        true => format!("{column} is null"),
                        false => format!(
                            "{column}={}",
                            datafusion::arrow::util::display::array_value_to_string(
                                batch.column(i),
                                row
                            )
                            .unwrap_or_default()
                        ),
                    })
                    .collect();
                let n = integer(std::slice::from_ref(batch), sorted.len(), row);
                let entry = counts.entry(key.join("/")).or_default();
                match after {
                    true => entry.after = n,
                    false => entry.before = n,
                }
            }
        }
    }
    Ok(counts)
}

/// How many figures the stats query computes per column.
const STATS_PER_COLUMN: usize = 5;

/// A column's figures on one side.
struct Stats {
    nulls: u64,
    distinct: u64,
    min: Option<f64>,
    max: Option<f64>,
    sum: Option<f64>,
}

impl Stats {
    /// The figures of a side without rows.
    fn empty() -> Self {
        Stats {
            nulls: 0,
            distinct: 0,
            min: None,
            max: None,
            sum: None,
        }
    }
}

/// The query of every column's figures of `table`, [`STATS_PER_COLUMN`] a column.
fn stats_sql(table: &str, columns: &[(String, bool)], approximate: bool) -> String {
    let mut selected = Vec::new();
    for (name, number) in columns {
        let column = quote(name);
        selected.push(format!("count(*) - count({column})"));
        selected.push(match approximate {
            // (approx_distinct takes no floats: their text is as distinct.)
            true => format!("cast(approx_distinct(cast({column} as varchar)) as bigint)"),
            false => format!("count(distinct {column})"),
        });
        for function in ["min", "max", "sum"] {
            selected.push(match number {
                true => format!("cast({function}({column}) as double)"),
                false => "cast(null as double)".into(),
            });
        }
    }
    let selected: Vec<String> = selected
        .iter()
        .enumerate()
        .map(|(i, expression)| format!("{expression} as c{i}"))
        .collect();
    format!("select {} from {table}", selected.join(", "))
}

/// The figures of `count` columns, from the row of a stats query.
fn read_stats(figures: &[RecordBatch], count: usize) -> Vec<Stats> {
    (0..count)
        .map(|i| {
            let at = i * STATS_PER_COLUMN;
            Stats {
                nulls: integer(figures, at, 0),
                distinct: integer(figures, at + 1, 0),
                min: float(figures, at + 2),
                max: float(figures, at + 3),
                sum: float(figures, at + 4),
            }
        })
        .collect()
}

/// The change of each row of `batches` (its first column) and its key columns, as text.
fn key_rows(batches: &[RecordBatch], key: &[String]) -> Vec<(String, BTreeMap<String, String>)> {
    let text = |batch: &RecordBatch, column: usize, row: usize| {
        datafusion::arrow::util::display::array_value_to_string(batch.column(column), row)
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let keys = key
                .iter()
                .enumerate()
                .map(|(i, name)| (name.clone(), text(batch, i + 1, row)))
                .collect();
            rows.push((text(batch, 0, row), keys));
        }
    }
    rows
}

async fn query(session: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    session.sql(sql).await?.collect().await
}

/// The integer at `column`, `row` of the first batch with rows (0 when there is none).
fn integer(batches: &[RecordBatch], column: usize, row: usize) -> u64 {
    batches
        .iter()
        .find(|b| b.num_rows() > row)
        .and_then(|b| {
            b.column(column)
                .as_primitive_opt::<Int64Type>()
                .map(|c| c.value(row))
        })
        .map_or(0, |n| n.max(0) as u64)
}

/// The float at `column` of the first row, if it is not NULL.
fn float(batches: &[RecordBatch], column: usize) -> Option<f64> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    let values = batch.column(column).as_primitive_opt::<Float64Type>()?;
    (!values.is_null(0)).then(|| values.value(0))
}

/// The thresholds of `config` that `diff` breaks, each said with its figures.
fn breaches(diff: &ModelDiff, config: &DiffConfig) -> Vec<String> {
    let mut found = Vec::new();
    let keyed = |name: &str, value: Option<u64>, max: Option<u64>, found: &mut Vec<String>| match (
        value, max,
    ) {
        (Some(value), Some(max)) if value > max => {
            found.push(format!("{value} rows {name}, more than max_{name}: {max}"));
        }
        // A diff that counted rows only (reported as such) judges the row thresholds alone.
        (None, Some(_)) if diff.mode != DiffMode::Counts => {
            found.push(format!("max_{name} cannot be judged: {NO_KEY}"))
        }
        _ => {}
    };
    keyed("added", diff.added, config.max_added, &mut found);
    keyed("removed", diff.removed, config.max_removed, &mut found);
    keyed("changed", diff.changed, config.max_changed, &mut found);
    let before = diff.rows_before as f64;
    let pct = |part: f64, whole: f64| (whole != 0.0).then(|| 100.0 * part / whole);
    if let Some(max) = config.max_row_change_pct
        && let Some(change) = pct((diff.rows_after as f64 - before).abs(), before)
        && change > max
    {
        found.push(format!(
            "the row count changed by {change:.2}% ({} → {}), more than max_row_change_pct: {max}",
            diff.rows_before, diff.rows_after
        ));
    }
    if let Some(max) = config.max_changed_pct {
        match diff.changed {
            Some(changed) => {
                if let Some(share) = pct(changed as f64, before)
                    && share > max
                {
                    found.push(format!(
                        "{changed} of {} rows changed ({share:.2}%), more than max_changed_pct: {max}",
                        diff.rows_before
                    ));
                }
            }
            None if diff.mode != DiffMode::Counts => {
                found.push(format!("max_changed_pct cannot be judged: {NO_KEY}"))
            }
            None => {}
        }
    }
    for (name, limits) in &config.columns {
        // A diff that counted rows only (reported as such) has no column figures.
        let Some(column) = diff.columns.get(name) else {
            if diff.mode != DiffMode::Counts {
                found.push(format!(
                    "column `{name}` cannot be judged: the model has no such column"
                ));
            }
            continue;
        };
        if let Some(max) = limits.max_null_increase {
            let increase = column.nulls_after.saturating_sub(column.nulls_before);
            if increase > max {
                found.push(format!(
                    "`{name}` has {increase} more NULLs ({} → {}), more than max_null_increase: {max}",
                    column.nulls_before, column.nulls_after
                ));
            }
        }
        if let Some(max) = limits.max_sum_change_pct {
            // A sum that became NULL (every value gone) is a change to 0.
            let after = column.sum_after.unwrap_or(0.0);
            match column.sum_before {
                // To or from NaN or an infinity: no percentage measures it (NaN compares false
                // with any threshold), and it is a change past every one.
                before if unmeasurable(before, after) => {
                    let before = before.map_or_else(|| "NULL".to_string(), |b| b.to_string());
                    found.push(format!(
                        "the sum of `{name}` changed from {before} to {after}: a sum that becomes or stops being NaN or infinite is a change past any max_sum_change_pct ({max})"
                    ));
                }
                Some(before) => {
                    if let Some(change) = pct((after - before).abs(), before.abs())
                        && change > max
                    {
                        found.push(format!(
                            "the sum of `{name}` changed by {change:.2}% ({before} → {after}), more than max_sum_change_pct: {max}"
                        ));
                    }
                }
                None => {}
            }
        }
    }
    found
}

/// Whether a sum going from `before` (NULL: no value) to `after` changed to or from a value no
/// percentage can measure: NaN or an infinity on one side and not the same on the other.
fn unmeasurable(before: Option<f64>, after: f64) -> bool {
    match before {
        Some(before) => {
            let same = before == after || (before.is_nan() && after.is_nan());
            let measurable = before.is_finite() && after.is_finite();
            !(same || measurable)
        }
        None => !after.is_finite(),
    }
}

/// Why a keyed threshold has no figure to judge.
const NO_KEY: &str = "the model has no key: set diff: {key: [...]}";

/// The diff judged by the model's thresholds, as a test: failing (or warning, at `severity:
/// warn`) when one breaks, with every added, removed and changed key written to
/// `<failures_dir>/<model>__diff.csv`.
async fn judge(
    session: &SessionContext,
    model: &str,
    diff: &ModelDiff,
    config: &DiffConfig,
    changes: Option<String>,
    failures_dir: &Path,
) -> TestResult {
    let found = breaches(diff, config);
    let name = format!("{model}__diff");
    let mut result = TestResult::passed(&name, TestKind::Diff, model);
    if found.is_empty() {
        return result;
    }
    result.status = match config.severity {
        Severity::Error => TestStatus::Fail,
        Severity::Warn => TestStatus::Warn,
    };
    // The keys it changes are the failing rows (none when the model has no key).
    result.failures = [diff.added, diff.removed, diff.changed]
        .into_iter()
        .flatten()
        .sum();
    result.detail = Some(found.join("\n"));
    if let Some(changes) = changes
        && let Ok(rows) = session.sql(&changes).await
    {
        result.failures_file = super::write_failures(rows, &name, None, failures_dir).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::ColumnDiffProperties;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    /// Rows of (id, name, amount): NULL amounts, a duplicated and a NULL key.
    fn side(ids: &[Option<i64>], names: &[&str], amounts: &[Option<f64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Float64Array::from(amounts.to_vec())),
            ],
        )
        .unwrap()
    }

    #[tokio::test]
    async fn figures_in_memory_are_the_queries_figures() {
        let before = side(
            &[Some(1), Some(2), Some(3), Some(3), None, Some(9)],
            &["a", "b", "c", "c", "n", "z"],
            &[Some(1.5), None, Some(3.0), Some(3.0), Some(0.5), Some(9.0)],
        );
        let after = side(
            &[Some(1), Some(2), Some(3), Some(4), None, Some(5), Some(6)],
            &["a", "B", "c", "d", "n", "e", "f"],
            &[
                Some(1.5),
                Some(2.0),
                None,
                Some(4.0),
                Some(0.5),
                None,
                Some(6.5),
            ],
        );
        let session = SessionContext::new();
        let schema = before.schema();
        for (name, batch) in [(BEFORE, &before), (AFTER, &after)] {
            let table = MemTable::try_new(schema.clone(), vec![vec![batch.clone()]]).unwrap();
            session.register_table(name, Arc::new(table)).unwrap();
        }
        let key = ["id".to_string()];
        let rows = (Some(6), Some(7));
        let compute = |in_hand| {
            compute(
                &session,
                &schema,
                rows,
                in_hand,
                &key,
                Partitions::None,
                1_000,
            )
        };
        let in_hand = [before.clone(), after.clone()];
        let (by_kernels, _) = compute(Some(&in_hand)).await.unwrap();
        let (by_queries, _) = compute(None).await.unwrap();
        assert_eq!(by_kernels, by_queries);
        // id 9 removed; 2 changed, and 3 twice over (both rows of the duplicated key differ);
        // 4, 5, 6 added; the NULL keys match each other, unchanged.
        assert_eq!(by_kernels.added, Some(3));
        assert_eq!(by_kernels.removed, Some(1));
        assert_eq!(by_kernels.changed, Some(3));
        assert_eq!(by_kernels.columns["amount"].sum_before, Some(17.0));
        assert_eq!(by_kernels.columns["name"].distinct_after, 7);
    }

    fn diff() -> ModelDiff {
        ModelDiff {
            mode: DiffMode::Full,
            rows_before: 200,
            rows_after: 190,
            key: vec!["id".into()],
            added: Some(0),
            removed: Some(10),
            changed: Some(30),
            columns: BTreeMap::from([(
                "revenue".to_string(),
                ColumnDiff {
                    sum_before: Some(1000.0),
                    sum_after: Some(970.0),
                    nulls_before: 2,
                    nulls_after: 2,
                    ..Default::default()
                },
            )]),
            ..Default::default()
        }
    }

    #[test]
    fn percentages_are_of_the_rows_and_sums_before() {
        let config = |change: f64, changed: f64, sum: f64| DiffConfig {
            max_row_change_pct: Some(change),
            max_changed_pct: Some(changed),
            columns: BTreeMap::from([(
                "revenue".to_string(),
                ColumnDiffProperties {
                    max_sum_change_pct: Some(sum),
                    max_null_increase: Some(0),
                },
            )]),
            ..Default::default()
        };
        // 10 of 200 rows fewer: 5 %; 30 of 200 changed: 15 %; the sum fell by 3 %.
        assert!(breaches(&diff(), &config(5.0, 15.0, 3.0)).is_empty());
        let found = breaches(&diff(), &config(4.9, 14.9, 2.9));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(
            found[0].contains("changed by 5.00% (200 → 190)"),
            "{found:?}"
        );
        assert!(
            found[1].contains("30 of 200 rows changed (15.00%)"),
            "{found:?}"
        );
        assert!(
            found[2].contains("the sum of `revenue` changed by 3.00%"),
            "{found:?}"
        );
        // Every value gone: the sum fell to nothing, a change of 100 %.
        let mut emptied = diff();
        emptied.columns.get_mut("revenue").unwrap().sum_after = None;
        let found = breaches(&emptied, &config(5.0, 15.0, 3.0));
        assert!(
            found.iter().any(|b| b.contains("changed by 100.00%")),
            "{found:?}"
        );
    }

    #[test]
    fn a_sum_that_becomes_or_stops_being_nan_breaks_any_threshold() {
        let config = DiffConfig {
            columns: BTreeMap::from([(
                "revenue".to_string(),
                ColumnDiffProperties {
                    max_sum_change_pct: Some(1_000_000.0),
                    max_null_increase: None,
                },
            )]),
            ..Default::default()
        };
        let with_sums = |before: Option<f64>, after: Option<f64>| {
            let mut diff = diff();
            let revenue = diff.columns.get_mut("revenue").unwrap();
            (revenue.sum_before, revenue.sum_after) = (before, after);
            breaches(&diff, &config)
        };
        let (nan, inf) = (f64::NAN, f64::INFINITY);
        for (before, after) in [
            (Some(1000.0), Some(nan)),
            (Some(nan), Some(1000.0)),
            (Some(nan), None),
            (None, Some(nan)),
            (Some(0.0), Some(nan)),
            (Some(1000.0), Some(inf)),
            (Some(inf), Some(1000.0)),
            (Some(-inf), Some(inf)),
            (Some(nan), Some(inf)),
        ] {
            let found = with_sums(before, after);
            assert_eq!(found.len(), 1, "{before:?} → {after:?}: {found:?}");
            assert!(
                found[0].contains("the sum of `revenue` changed from")
                    && found[0].contains("past any max_sum_change_pct (1000000)"),
                "{found:?}"
            );
        }
        // Unchanged, or within the threshold: nothing to say.
        for (before, after) in [
            (Some(nan), Some(nan)),
            (Some(inf), Some(inf)),
            (Some(1000.0), Some(2000.0)),
            (None, None),
        ] {
            let found = with_sums(before, after);
            assert!(found.is_empty(), "{before:?} → {after:?}: {found:?}");
        }
    }

    #[test]
    fn keyed_thresholds_without_figures_say_why() {
        let config = DiffConfig {
            max_removed: Some(5),
            ..Default::default()
        };
        assert_eq!(
            breaches(&diff(), &config),
            ["10 rows removed, more than max_removed: 5"]
        );
        let unkeyed = ModelDiff {
            key: Vec::new(),
            added: None,
            removed: None,
            changed: None,
            ..diff()
        };
        assert!(breaches(&unkeyed, &config)[0].contains("the model has no key"));
        // Counting rows only (as reported), a diff judges the row thresholds alone.
        let counted = ModelDiff {
            mode: DiffMode::Counts,
            ..unkeyed
        };
        assert!(breaches(&counted, &config).is_empty());
    }
}
