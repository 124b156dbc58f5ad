//! Where DataFusion's SQL means something else than the warehouse a dbt user comes from: found
//! in a model's logical plan, each a warning at the span in the user's file, with the rewrite
//! that keeps the meaning they expect.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, Operator, TryCast,
};
use miette::SourceSpan;

use crate::compile::ModelPlan;
use crate::project::profile::Dialect;
use crate::source::SourceFile;

/// The unnamed expressions of `model`'s select list that keep DataFusion's name, at their place.
fn unaliased_columns(model: &ModelPlan, plan: &LogicalPlan) -> Vec<super::CheckError> {
    if crate::session::dialect::names_every_column(plan) {
        return Vec::new();
    }
    let fields = plan.schema().fields();
    crate::session::dialect::unnamed_columns(&model.sql)
        .into_iter()
        .filter(|column| column.duckdb_name.is_none())
        .filter_map(|column| {
            let named = fields.get(column.index)?.name().clone();
            let start = SourceFile::offset_of(&model.sql, column.start.0, column.start.1);
            let end = SourceFile::offset_of(&model.sql, column.end.0, column.end.1);
            let (file, at) = model.locate_line(
                column.start.0,
                column.start.1,
                end.saturating_sub(start).max(1),
            );
            Some(
                UnaliasedColumn {
                    model: model.name.clone(),
                    help: format!(
                        "name it, so that dp and dbt-duckdb write the same column: {} as {}",
                        column.text,
                        alias_for(&column.text)
                    ),
                    expression: column.text,
                    named,
                    src: file.named(),
                    at,
                }
                .into(),
            )
        })
        .collect()
}

/// A column name made of an expression's words: `cast(x as double)` gives `cast_x_as_double`.
fn alias_for(expression: &str) -> String {
    let words: Vec<String> = expression
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut alias = words.join("_");
    alias.truncate(40);
    match alias.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => alias,
        _ => format!("c_{alias}"),
    }
}

/// A construct whose result differs from the usual warehouses'.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "`{model}` divides integers: DataFusion's `/` drops the fraction (7 / 2 = 3), where Snowflake, BigQuery and DuckDB give 3.5"
)]
#[diagnostic(code(dp::integer_division), severity(Warning))]
pub struct IntegerDivision {
    pub model: String,
    #[source_code]
    pub src: miette::NamedSource<Arc<str>>,
    #[label("this division")]
    pub at: SourceSpan,
    #[help]
    pub help: String,
}

/// A float or decimal cast to an integer type, which DataFusion truncates.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "`{model}` casts a fraction to an integer: DataFusion truncates it (cast(2.7 as int) = 2), where Snowflake, BigQuery, Postgres and DuckDB round (3)"
)]
#[diagnostic(code(dp::truncating_cast), severity(Warning))]
pub struct TruncatingCast {
    pub model: String,
    #[source_code]
    pub src: miette::NamedSource<Arc<str>>,
    #[label("this cast")]
    pub at: SourceSpan,
    #[help]
    pub help: String,
}

/// An unnamed expression of a model's output whose DuckDB name dp cannot spell.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error(
    "`{model}` outputs `{expression}` without a name: dbt-duckdb names the column after the expression as DuckDB prints it, which dp cannot spell here; dp names it `{named}`"
)]
#[diagnostic(code(dp::unaliased_column), severity(Warning))]
pub struct UnaliasedColumn {
    pub model: String,
    pub expression: String,
    pub named: String,
    #[source_code]
    pub src: miette::NamedSource<Arc<str>>,
    #[label("this column has no name")]
    pub at: SourceSpan,
    #[help]
    pub help: String,
}

/// The dialect differences of `model`'s plan, planned in `session`: each construct that names
/// a column, once. In the DuckDB dialect, divisions and casts already mean what DuckDB's do;
/// what is left is an unnamed column dp cannot name as DuckDB does.
pub fn dialect_warnings(
    model: &ModelPlan,
    plan: &LogicalPlan,
    session: &datafusion::prelude::SessionContext,
) -> Vec<super::CheckError> {
    let mut found = Vec::new();
    if crate::session::dialect::session_dialect(session) == Dialect::Duckdb {
        found.extend(unaliased_columns(model, plan));
    }
    let mut seen = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        // The expressions of a node with one input are typed by that input's columns.
        let [input] = node.inputs()[..] else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let schema = input.schema();
        let is_type = |expr: &Expr, test: fn(&DataType) -> bool| {
            expr.get_type(schema).is_ok_and(|t| test(&t))
        };
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                let finding = match expr {
                    Expr::BinaryExpr(BinaryExpr {
                        left,
                        op: Operator::Divide,
                        right,
                    }) if is_type(left, DataType::is_integer)
                        && is_type(right, DataType::is_integer) =>
                    {
                        first_column(left).or_else(|| first_column(right)).map(
                            |(column, span)| {
                                let rewrite = match right.as_ref() {
                                    Expr::Literal(value, _) if is_integer_literal(value) => {
                                        format!("{column} / {value}.0")
                                    }
                                    _ => format!("cast({column} as double) / ..."),
                                };
                                (span, Finding::Division { rewrite })
                            },
                        )
                    }
                    Expr::Cast(Cast { expr: inner, field })
                    | Expr::TryCast(TryCast { expr: inner, field })
                        if field.data_type().is_integer()
                            && is_type(inner, |t| t.is_floating() || t.is_decimal())
                            && !is_whole(inner) =>
                    {
                        first_column(inner).map(|(column, span)| {
                            let data_type = crate::session::contract::sql_name(field.data_type());
                            (span, Finding::Cast { column, data_type })
                        })
                    }
                    _ => None,
                };
                if let Some((span, finding)) = finding
                    && seen.insert((span.start.line, span.start.column))
                {
                    let len = (span.end.column.saturating_sub(span.start.column)) as usize;
                    let (file, at) = model.locate_line(span.start.line, span.start.column, len);
                    let (model, src) = (model.name.clone(), file.named());
                    found.push(match finding {
                        Finding::Division { rewrite } => IntegerDivision {
                            model,
                            src,
                            at,
                            help: format!(
                                "to keep the fraction, write {rewrite}; if dropping it is meant, say so: floor(...) of a decimal division"
                            ),
                        }
                        .into(),
                        Finding::Cast { column, data_type } => TruncatingCast {
                            model,
                            src,
                            at,
                            help: format!(
                                "to round as those warehouses do, write cast(round({column}) as {data_type}); if truncating is meant, say so: cast(trunc({column}) as {data_type})"
                            ),
                        }
                        .into(),
                    });
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

/// What [`dialect_warnings`] found at a column's place.
enum Finding {
    Division { rewrite: String },
    Cast { column: String, data_type: String },
}

/// The first column `expr` reads that has a place in the SQL, with that place.
fn first_column(expr: &Expr) -> Option<(String, datafusion::common::Span)> {
    let mut found = None;
    let _ = expr.apply(|expr| {
        if let Expr::Column(column) = expr
            && let Some(span) = column.spans().first()
        {
            found = Some((column.name.clone(), span));
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

fn is_integer_literal(value: &ScalarValue) -> bool {
    value.data_type().is_integer() && !value.is_null()
}

/// Whether `expr` is already a whole number (`floor`, `ceil`, or `round`/`trunc` to no digits).
fn is_whole(expr: &Expr) -> bool {
    matches!(expr, Expr::ScalarFunction(call)
        if ["floor", "ceil"].contains(&call.name())
            || (["round", "trunc"].contains(&call.name()) && call.args.len() == 1))
}
