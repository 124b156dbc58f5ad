//! Partition values: checked before any file is written, turned into keys and commit predicates.

use std::collections::{BTreeSet, HashMap};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::SessionContext;

use super::StorageError;

/// The longest name a folder can have on the file systems and object stores dp writes to.
const MAX_FOLDER_NAME: usize = 255;

/// The bytes of `value` once the Delta writer percent-encodes it into a folder name: every
/// byte but an ASCII letter, digit, `-`, `.`, `_` or `~` takes three.
fn encoded_len(value: &str) -> usize {
    value
        .bytes()
        .map(
            |b| match b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                true => 1,
                false => 3,
            },
        )
        .sum()
}

/// Why `value` cannot be a value of partition column `column`, if it cannot: it must be
/// non-empty, hold no path separator, no `..` and no control character, and fit in a folder's
/// name (`column=value`, encoded).
pub fn check_partition_value(column: &str, value: &str) -> Result<(), String> {
    if column.len() + 1 + encoded_len(value) > MAX_FOLDER_NAME {
        return Err(format!(
            "its folder name `{column}=…` would be {} bytes once encoded, over the {MAX_FOLDER_NAME} a folder name can hold",
            column.len() + 1 + encoded_len(value)
        ));
    }
    check_path_safe(value).map_err(str::to_string)
}

/// Why `value` could form a path, if it could.
fn check_path_safe(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        Err("a partition value cannot be empty")
    } else if value.contains('/') || value.contains('\\') {
        Err("a partition value cannot contain `/` or `\\`")
    } else if value.contains("..") {
        Err("a partition value cannot contain `..`")
    } else if value.chars().any(char::is_control) {
        Err("a partition value cannot contain control characters")
    } else {
        Ok(())
    }
}

/// Check every value of the partition columns of `batch`.
pub(super) fn check_batch(
    model: &str,
    batch: &RecordBatch,
    partition_by: &[String],
) -> Result<(), StorageError> {
    for column in partition_by {
        let Some(values) = batch.column_by_name(column) else {
            continue;
        };
        let values = cast(values, &DataType::Utf8).map_err(|source| StorageError::Execution {
            model: model.to_string(),
            source: source.into(),
        })?;
        let values = values.as_string::<i32>();
        let distinct: BTreeSet<&str> = (0..values.len())
            .filter(|&i| values.is_valid(i))
            .map(|i| values.value(i))
            .collect();
        for value in distinct {
            if let Err(reason) = check_partition_value(column, value) {
                return Err(StorageError::InvalidPartitionValue {
                    model: model.to_string(),
                    column: column.clone(),
                    value: value.to_string(),
                    reason: reason.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// A partition's key, `col=value/...` in column-name order; a null value is `col is null`,
/// which no value can spell since a value with `=` is written after the column's own `=`.
pub(super) fn key(values: &HashMap<String, Option<String>>) -> String {
    let mut columns: Vec<_> = values.iter().collect();
    columns.sort();
    columns
        .into_iter()
        .map(|(column, value)| match value {
            Some(value) => format!("{column}={value}"),
            None => format!("{column} is null"),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The predicate naming exactly the partitions of `files` (each given by its partition values),
/// for the commit: Delta's conflict check compares it with what concurrent commits wrote.
pub(super) fn predicate<'a>(
    files: impl IntoIterator<Item = &'a HashMap<String, Option<String>>>,
) -> String {
    let partitions: BTreeSet<Vec<(&String, &Option<String>)>> = files
        .into_iter()
        .map(|values| {
            let mut values: Vec<_> = values.iter().collect();
            values.sort();
            values
        })
        .collect();
    partitions
        .into_iter()
        .map(|values| {
            let terms: Vec<String> = values
                .into_iter()
                .map(|(column, value)| {
                    let column = crate::source::quote_identifier(column);
                    match value {
                        Some(value) => format!("{column} = '{}'", value.replace('\'', "''")),
                        None => format!("{column} IS NULL"),
                    }
                })
                .collect();
            format!("({})", terms.join(" AND "))
        })
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Whether a partition with `values` passes every one of `predicates`, SQL conditions on the
/// table's rows as `DBT_INTERNAL_DEST` (dbt's name for a merge's target). A predicate that reads
/// more than partition columns cannot rule a partition out: it passes.
pub(super) async fn passes(
    session: &SessionContext,
    values: &HashMap<String, Option<String>>,
    schema: &SchemaRef,
    predicates: &[String],
) -> Result<bool, StorageError> {
    if predicates.is_empty() {
        return Ok(true);
    }
    let columns: Vec<String> = values
        .iter()
        .filter_map(|(column, value)| {
            let field = schema.field_with_name(column).ok()?;
            let value = match value {
                Some(value) => format!("'{}'", value.replace('\'', "''")),
                None => "null".into(),
            };
            Some(format!(
                "arrow_cast({value}, '{}') as {}",
                field.data_type(),
                crate::source::quote_identifier(column)
            ))
        })
        .collect();
    let sql = format!(
        "select 1 from (select {}) as \"DBT_INTERNAL_DEST\" where ({})",
        columns.join(", "),
        predicates.join(") and (")
    );
    let rows = match crate::session::read_query(session, &sql).await {
        Ok(frame) => frame.count().await,
        Err(error) => {
            tracing::debug!(%error, "an incremental predicate reads more than partition columns");
            return Ok(true);
        }
    };
    rows.map(|rows| rows > 0)
        .map_err(|source| StorageError::Execution {
            model: String::new(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::kernel::Add;

    #[test]
    fn rejects_values_that_could_form_a_path() {
        let long = "y".repeat(251);
        for bad in ["", "..", "../../x", "a/b", "a\\b", "a\nb", "x\u{0}", &long] {
            assert!(
                check_partition_value("date", bad).is_err(),
                "{bad:?} was accepted"
            );
        }
        let fits = "é".repeat(41);
        for good in ["2024-01-15", "eu-west", "a.b", "with space", &fits] {
            assert!(
                check_partition_value("date", good).is_ok(),
                "{good:?} was rejected"
            );
        }
    }

    #[test]
    fn a_null_partition_and_the_string_null_are_different_partitions() {
        let null = HashMap::from([("date".to_string(), None)]);
        let text = HashMap::from([("date".to_string(), Some("null".to_string()))]);
        assert_ne!(key(&null), key(&text));
    }

    #[test]
    fn predicate_names_each_partition_once() {
        let add = |date: &str| Add {
            path: format!("date={date}/part-0.parquet"),
            partition_values: HashMap::from([("date".to_string(), Some(date.to_string()))]),
            ..Default::default()
        };
        let adds = [add("2024-01-15"), add("2024-01-15"), add("it's")];
        assert_eq!(
            predicate(adds.iter().map(|add| &add.partition_values)),
            "(\"date\" = '2024-01-15') OR (\"date\" = 'it''s')"
        );
    }
}
