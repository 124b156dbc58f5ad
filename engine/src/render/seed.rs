//! Seeds: a CSV file becomes a query over its values, each column cast to the type dbt would
//! read its values as (integer, decimal, date, timestamp, boolean, else text), or to the type
//! `column_types` gives it (a folder's `column_types` may name columns a seed lacks: ignored).
//! Read with the `csv` crate: quoted fields, CRLF or LF line ends.

use crate::project::ModelConfig;
use crate::source::{SourceFile, quote_identifier};

/// What a seed column's values read as, in the order dbt tries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inferred {
    Integer,
    Decimal,
    Date,
    Timestamp,
    Boolean,
    Text,
}

impl Inferred {
    const ORDER: [Inferred; 6] = [
        Inferred::Integer,
        Inferred::Decimal,
        Inferred::Date,
        Inferred::Timestamp,
        Inferred::Boolean,
        Inferred::Text,
    ];

    fn sql_type(self) -> &'static str {
        match self {
            Inferred::Integer => "bigint",
            Inferred::Decimal => "double",
            Inferred::Date => "date",
            Inferred::Timestamp => "timestamp",
            Inferred::Boolean => "boolean",
            Inferred::Text => "varchar",
        }
    }

    fn accepts(self, value: &str) -> bool {
        let number = |v: &str| {
            v.parse::<f64>().is_ok()
                && !v
                    .chars()
                    .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        };
        match self {
            Inferred::Integer => value.parse::<i64>().is_ok(),
            Inferred::Decimal => number(value),
            Inferred::Date => chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").is_ok(),
            Inferred::Timestamp => {
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                    .iter()
                    .any(|format| chrono::NaiveDateTime::parse_from_str(value, format).is_ok())
                    || chrono::DateTime::parse_from_rfc3339(value).is_ok()
            }
            Inferred::Boolean => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            Inferred::Text => true,
        }
    }
}

/// An empty field or `null` is NULL, as in dbt.
fn is_null(value: &str) -> bool {
    value.is_empty() || value.eq_ignore_ascii_case("null")
}

/// A CSV file that cannot be a seed: why, and the byte where it went wrong.
#[derive(Debug)]
pub(super) struct BadSeed {
    pub message: String,
    pub at: usize,
}

/// The query that gives the seed in `file` as a table.
pub(super) fn seed_sql(file: &SourceFile, config: &ModelConfig) -> Result<String, BadSeed> {
    let text = file.text().strip_prefix('\u{feff}').unwrap_or(file.text());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(config.delimiter)
        .from_reader(text.as_bytes());
    let bad = |error: csv::Error| BadSeed {
        at: error.position().map_or(0, |p| p.byte() as usize),
        message: error.to_string(),
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(str::to_string)
        .collect();
    for (index, name) in header.iter().enumerate() {
        if name.trim().is_empty() {
            return Err(BadSeed {
                message: format!("column {} of the header has no name", index + 1),
                at: 0,
            });
        }
        if header[..index].contains(name) {
            return Err(BadSeed {
                message: format!("column `{name}` appears twice in the header"),
                at: 0,
            });
        }
    }
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for record in reader.records() {
        rows.push(record.map_err(bad)?);
    }
    let types: Vec<String> = header
        .iter()
        .enumerate()
        .map(|(index, name)| match config.column_types.get(name) {
            Some(declared) => declared.clone(),
            None => inferred(rows.iter().map(|row| &row[index]))
                .sql_type()
                .to_string(),
        })
        .collect();
    let columns: Vec<String> = header
        .iter()
        .zip(&types)
        .enumerate()
        .map(|(index, (name, sql_type))| {
            let value = if rows.is_empty() {
                "null".to_string()
            } else {
                format!("column{}", index + 1)
            };
            format!("cast({value} as {sql_type}) as {}", quote_identifier(name))
        })
        .collect();
    let select = format!("select {}", columns.join(", "));
    if rows.is_empty() {
        return Ok(format!("{select} limit 0"));
    }
    let values: Vec<String> = rows
        .iter()
        .map(|row| {
            let fields: Vec<String> = row
                .iter()
                .zip(&types)
                .map(|(value, sql_type)| match is_null(value) {
                    true => "null".to_string(),
                    false => {
                        let value = with_seconds(value, sql_type);
                        format!("'{}'", value.replace('\'', "''"))
                    }
                })
                .collect();
            format!("({})", fields.join(", "))
        })
        .collect();
    Ok(format!(
        "{select}\nfrom (values\n{}\n) as seed",
        values.join(",\n")
    ))
}

/// A timestamp written to the minute (`2021-01-01 00:00`, which dbt's warehouses read) with its
/// seconds, as DataFusion reads it; any other value as it is.
fn with_seconds<'a>(value: &'a str, sql_type: &str) -> std::borrow::Cow<'a, str> {
    let to_the_minute = value.len() == 16
        && value.as_bytes()[10] == b' '
        && value.as_bytes()[13] == b':'
        && value.is_char_boundary(16);
    match sql_type.to_ascii_lowercase().starts_with("timestamp") && to_the_minute {
        true => format!("{value}:00").into(),
        false => value.into(),
    }
}

/// The first type, in dbt's order, that every value that is not NULL reads as.
fn inferred<'a>(values: impl Iterator<Item = &'a str> + Clone) -> Inferred {
    Inferred::ORDER
        .into_iter()
        .find(|kind| {
            values
                .clone()
                .filter(|v| !is_null(v))
                .all(|v| kind.accepts(v))
        })
        .unwrap_or(Inferred::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn infer(values: &[&str]) -> Inferred {
        inferred(values.iter().copied())
    }

    #[test]
    fn a_timestamp_to_the_minute_gets_its_seconds() {
        assert_eq!(
            with_seconds("2021-01-01 00:05", "timestamp"),
            "2021-01-01 00:05:00"
        );
        assert_eq!(
            with_seconds("2021-01-01 00:05", "TIMESTAMP(6)"),
            "2021-01-01 00:05:00"
        );
        assert_eq!(
            with_seconds("2021-01-01 00:05", "varchar"),
            "2021-01-01 00:05"
        );
        assert_eq!(
            with_seconds("2021-01-01 00:05:07", "timestamp"),
            "2021-01-01 00:05:07"
        );
    }

    #[test]
    fn types_are_read_as_dbt_reads_them() {
        assert_eq!(infer(&["1", "-2", "", "null"]), Inferred::Integer);
        assert_eq!(infer(&["1", "2.5", "1e3"]), Inferred::Decimal);
        assert_eq!(infer(&["2024-01-15", ""]), Inferred::Date);
        assert_eq!(
            infer(&[
                "2024-01-15 10:00:00",
                "2024-01-15T10:00:00.5",
                "2024-01-15T10:00:00Z"
            ]),
            Inferred::Timestamp
        );
        assert_eq!(infer(&["true", "False"]), Inferred::Boolean);
        assert_eq!(infer(&["1", "x"]), Inferred::Text);
        assert_eq!(infer(&["inf", "nan"]), Inferred::Text);
        assert_eq!(infer(&["99999999999999999999"]), Inferred::Decimal);
    }
}
