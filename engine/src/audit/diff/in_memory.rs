//! The figures of a diff whose sides are small enough to hold: computed on their rows with
//! arrow's kernels, with no query to plan. They are the queries' figures (the tests compare
//! both ways on the same rows).

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{SortOptions, cast, max, min, sum};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::Result;

use super::{Changes, Stats};

/// Each column's figures of `batch`, as the stats query computes them.
pub(super) fn column_stats(batch: &RecordBatch, columns: &[(String, bool)]) -> Result<Vec<Stats>> {
    columns
        .iter()
        .map(|(name, number)| {
            let array = batch.column_by_name(name).ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!("no column {name}"))
            })?;
            let (min, max, sum) = match number {
                true => {
                    let values = cast(array, &DataType::Float64)?;
                    let values = values.as_primitive::<Float64Type>();
                    (min(values), max(values), sum(values))
                }
                false => (None, None, None),
            };
            Ok(Stats {
                nulls: array.null_count() as u64,
                distinct: distinct(array)?,
                min,
                max,
                sum,
            })
        })
        .collect()
}

/// The distinct values of `array`, NULL aside.
fn distinct(array: &ArrayRef) -> Result<u64> {
    let rows = rows_of(std::slice::from_ref(array))?;
    let values: HashSet<_> = (0..array.len())
        .filter(|&i| array.is_valid(i))
        .map(|i| rows.row(i))
        .collect();
    Ok(values.len() as u64)
}

/// The columns' values of each row, comparable as bytes (equal bytes: equal values), in SQL's
/// ascending order (NULLs last).
fn rows_of(columns: &[ArrayRef]) -> Result<Rows> {
    let ascending = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let fields = columns
        .iter()
        .map(|c| SortField::new_with_options(c.data_type().clone(), ascending))
        .collect();
    Ok(RowConverter::new(fields)?.convert_columns(columns)?)
}

/// The changes from `before` to `after` by `key`, as the full outer join on the key finds
/// them (a NULL key matches a NULL key, as `is not distinct from`), with the first `sample` keys of each in key order.
pub(super) fn changes(
    before: &RecordBatch,
    after: &RecordBatch,
    key: &[String],
    compared: &[&str],
    sample: usize,
) -> Result<Changes> {
    let columns = |batch: &RecordBatch, names: &[&str]| -> Vec<ArrayRef> {
        names
            .iter()
            .filter_map(|name| batch.column_by_name(name).cloned())
            .collect()
    };
    let key_names: Vec<&str> = key.iter().map(String::as_str).collect();
    let (key_before, key_after) = (columns(before, &key_names), columns(after, &key_names));
    let (keys_before, keys_after) = (rows_of(&key_before)?, rows_of(&key_after)?);
    let values = |batch: &RecordBatch| -> Result<Option<Rows>> {
        match compared.is_empty() {
            true => Ok(None),
            false => rows_of(&columns(batch, compared)).map(Some),
        }
    };
    let (values_before, values_after) = (values(before)?, values(after)?);
    let mut by_key: HashMap<_, Vec<usize>> = HashMap::new();
    for row in 0..before.num_rows() {
        by_key.entry(keys_before.row(row)).or_default().push(row);
    }
    let mut matched = vec![false; before.num_rows()];
    // Each change with its key's row (in `after` for added and changed, `before` for removed).
    let mut found: BTreeMap<&str, Vec<(bool, usize)>> = BTreeMap::new();
    let (mut added, mut changed) = (0, 0);
    for row in 0..after.num_rows() {
        let Some(partners) = by_key.get(&keys_after.row(row)) else {
            added += 1;
            found.entry("added").or_default().push((true, row));
            continue;
        };
        for &partner in partners {
            matched[partner] = true;
            let differs = match (&values_before, &values_after) {
                (Some(b), Some(a)) => b.row(partner) != a.row(row),
                _ => false,
            };
            if differs {
                changed += 1;
                found.entry("changed").or_default().push((true, row));
            }
        }
    }
    let unmatched: Vec<usize> = (0..before.num_rows())
        .filter(|&row| !matched[row])
        .collect();
    let removed = unmatched.len() as u64;
    found
        .entry("removed")
        .or_default()
        .extend(unmatched.into_iter().map(|row| (false, row)));

    let mut samples = BTreeMap::new();
    for (kind, mut rows) in found.into_iter().filter(|(_, rows)| !rows.is_empty()) {
        let key_of = |(in_after, row): (bool, usize)| match in_after {
            true => keys_after.row(row),
            false => keys_before.row(row),
        };
        rows.sort_by(|a, b| key_of(*a).cmp(&key_of(*b)));
        let keys = rows
            .into_iter()
            .take(sample)
            .map(|(in_after, row)| {
                let arrays = if in_after { &key_after } else { &key_before };
                key.iter()
                    .zip(arrays)
                    .map(|(name, array)| {
                        (
                            name.clone(),
                            array_value_to_string(array, row).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .collect();
        samples.insert(kind.to_string(), keys);
    }
    Ok(Changes {
        added,
        removed,
        changed,
        samples,
    })
}
