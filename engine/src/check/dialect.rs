//! Where DataFusion's SQL means something else than the warehouse a dbt user comes from: found
//! in a model's logical plan, each a warning at the span in the user's file, with the rewrite
//! that keeps the meaning they expect.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::common::ScalarValue;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::{BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use miette::SourceSpan;

use crate::compile::ModelPlan;

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

/// The integer divisions of `model`'s plan that name a column, once each.
pub fn integer_divisions(model: &ModelPlan, plan: &LogicalPlan) -> Vec<IntegerDivision> {
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        // The expressions of a node with one input are typed by that input's columns.
        let [input] = node.inputs()[..] else {
            return Ok(TreeNodeRecursion::Continue);
        };
        let schema = input.schema();
        node.apply_expressions(|expr| {
            expr.apply(|expr| {
                if let Expr::BinaryExpr(BinaryExpr {
                    left,
                    op: Operator::Divide,
                    right,
                }) = expr
                    && [left, right].iter().all(|side| {
                        side.get_type(schema).is_ok_and(|t| t.is_integer())
                    })
                    && let Some((column, span)) = first_column(left).or_else(|| first_column(right))
                    && seen.insert((span.start.line, span.start.column))
                {
                    let len = (span.end.column.saturating_sub(span.start.column)) as usize;
                    let (file, at) = model.locate_line(span.start.line, span.start.column, len);
                    let rewrite = match right.as_ref() {
                        Expr::Literal(value, _) if is_integer_literal(value) => {
                            format!("{column} / {value}.0")
                        }
                        _ => format!("cast({column} as double) / ..."),
                    };
                    found.push(IntegerDivision {
                        model: model.name.clone(),
                        src: file.named(),
                        at,
                        help: format!(
                            "to keep the fraction, write {rewrite}; if dropping it is meant, say so: floor(...) of a decimal division"
                        ),
                    });
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
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
