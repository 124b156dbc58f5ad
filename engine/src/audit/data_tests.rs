//! The built-in data tests, each a query over the tested relation that returns the failing rows
//! (dbt's generic tests, with dbt_utils' `expression_is_true` and
//! `unique_combination_of_columns`, and `row_count`).

use serde_yaml::Value;

use crate::project::{DataTest, DataTestKind, TestConfig};
use crate::source::quote_identifier as quote;

/// What renders a generic test macro: the project's renderer, in the run's context (answering
/// `run_query()` from the test's session).
pub struct TestRenderer<'a> {
    pub renderer: &'a crate::render::Renderer,
    pub context: crate::render::RenderContext,
}

/// The query returning the rows of `tested` (a SQL relation) that fail `test`, and the config
/// it is judged by (a generic test macro's `fail_calc`, unless the test sets its own); a
/// relationships test reads `parent` when given, else the relation it names.
pub fn test_query(
    test: &DataTest,
    tested: &str,
    parent: Option<&str>,
    macros: &TestRenderer<'_>,
) -> Result<(String, TestConfig), String> {
    let DataTestKind::Macro { .. } = &test.kind else {
        return Ok((failing_rows_sql(test, tested, parent), test.config.clone()));
    };
    // `where:` narrows the rows of `model`, as dbt's `get_where_subquery` does.
    let model = match &test.config.filter {
        Some(filter) => format!("(select * from {tested} where {filter}\n) as dbt_subquery"),
        None => tested.to_string(),
    };
    let (sql, called) = macros
        .renderer
        .render_generic_test(test, &model, tested, &macros.context)
        .map_err(|error| format!("{:?}", miette::Report::new(error)))?;
    let mut config = test.config.clone();
    if config.fail_calc.is_none() {
        config.fail_calc = called.fail_calc;
    }
    Ok((sql, config))
}

/// The query returning the rows of `tested` (a SQL relation) that fail a built-in test; a
/// relationships test reads `parent` when given, else the relation it names.
fn failing_rows_sql(test: &DataTest, tested: &str, parent: Option<&str>) -> String {
    // `where:` narrows what is tested (on its own line: it may end in a comment).
    let from = match &test.config.filter {
        Some(filter) => format!("(select * from {tested} where {filter}\n) as tested"),
        None => format!("{tested} as tested"),
    };
    let column = test.column.as_deref().map(quote).unwrap_or_default();
    match &test.kind {
        // not_null: every value of the column is present.
        DataTestKind::NotNull => format!("select * from {from} where {column} is null"),
        // unique: no value appears twice; one failing row per repeated value.
        DataTestKind::Unique => format!(
            "select {column} as unique_field, count(*) as n_records from {from} \
             where {column} is not null group by {column} having count(*) > 1"
        ),
        // accepted_values: one failing row per value outside the list.
        // (A null in the list would make `not in` never true: nulls are left out.)
        DataTestKind::AcceptedValues { values, quote } => {
            let list: Vec<String> = values
                .iter()
                .filter(|v| !v.is_null())
                .map(|v| literal(v, *quote))
                .collect();
            format!(
                "select {column} as value_field, count(*) as n_records from {from} \
                 where {column} is not null and {column} not in ({}) group by {column}",
                list.join(", ")
            )
        }
        // relationships: every value is found in the parent relation's field.
        DataTestKind::Relationships { to, field } => format!(
            "select tested.{column} as from_field from {from} \
             left join {} as parent on tested.{column} = parent.{} \
             where tested.{column} is not null and parent.{} is null",
            parent.map_or_else(|| crate::session::relation_sql(to), str::to_string),
            self::quote(field),
            self::quote(field)
        ),
        // expression_is_true: on a column, the expression follows the column (`>= 0`).
        DataTestKind::ExpressionIsTrue { expression } => match &test.column {
            Some(_) => format!("select * from {from} where not ({column} {expression})"),
            None => format!("select * from {from} where not ({expression})"),
        },
        // unique_combination_of_columns: one failing row per repeated combination.
        DataTestKind::UniqueCombinationOfColumns { columns } => {
            let columns: Vec<String> = columns.iter().map(|c| quote(c)).collect();
            let columns = columns.join(", ");
            format!(
                "select {columns}, count(*) as n_records from {from} \
                 group by {columns} having count(*) > 1"
            )
        }
        DataTestKind::Macro { .. } => unreachable!("rendered by test_query"),
        // row_count: one failing row, the count, when it is out of bounds.
        DataTestKind::RowCount { min, max } => {
            let mut out_of_bounds = Vec::new();
            if let Some(min) = min {
                out_of_bounds.push(format!("count(*) < {min}"));
            }
            if let Some(max) = max {
                out_of_bounds.push(format!("count(*) > {max}"));
            }
            format!(
                "select count(*) as row_count from {from} having {}",
                out_of_bounds.join(" or ")
            )
        }
    }
}

/// A YAML value as a SQL literal: quoted unless `quote` is off or it is a number or boolean.
fn literal(value: &Value, quote: bool) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => return n.to_string(),
        Value::Bool(b) => return b.to_string(),
        Value::Null => return "null".into(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if quote {
        format!("'{}'", text.replace('\'', "''"))
    } else {
        text
    }
}
