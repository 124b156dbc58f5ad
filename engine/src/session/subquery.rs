//! SESSION: the subqueries DataFusion plans but cannot run. Its optimizer turns `IN (subquery)`,
//! `EXISTS` and correlated scalar subqueries into joins where it can (a conjunction of a
//! `WHERE`); one it leaves (under an `OR`, in a `SELECT` list, correlated through an aggregate)
//! fails at execution with a dump of the internal plan. In: a query's logical plan and text.
//! Out: that failure before anything runs, as a diagnostic at the subquery with the rewrite.

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Diagnostic, Location, Span, not_impl_datafusion_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, Subquery};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

/// Fail when `plan` (the plan of `sql`) keeps a subquery DataFusion cannot run once optimized.
pub fn runnable_subqueries(state: &SessionState, plan: &LogicalPlan, sql: &str) -> Result<()> {
    if first_subquery(plan, |_| true).is_none() {
        return Ok(());
    }
    let optimized = state.optimize(plan)?;
    let Some((kind, subquery)) = first_subquery(&optimized, unrunnable) else {
        return Ok(());
    };
    let outer: Vec<String> = subquery
        .outer_ref_columns
        .iter()
        .flat_map(|e| e.column_refs())
        .map(|c| c.name.to_ascii_lowercase())
        .collect();
    let span = place(sql, kind, &outer);
    let diagnostic = Diagnostic::new_error(
        format!(
            "{kind} that reads the outer query is not supported here (DataFusion cannot run it)"
        ),
        span,
    )
    .with_help(
        "rewrite it as a join on the columns it compares (select distinct ones from the \
         subquery), or as EXISTS (select 1 from ... where <its column> = <outer column>) in a \
         WHERE condition joined by AND",
        None,
    );
    Err(DataFusionError::Diagnostic(
        Box::new(diagnostic),
        Box::new(not_impl_datafusion_err!(
            "{kind} that reads the outer query"
        )),
    ))
}

/// A subquery expression the physical planner refuses: all but an uncorrelated scalar one.
fn unrunnable(expr: &Expr) -> bool {
    !matches!(expr, Expr::ScalarSubquery(s) if s.outer_ref_columns.is_empty())
}

/// The first subquery expression of `plan` (or of a subquery in it) for which `keep` holds: what
/// it is, and the subquery.
fn first_subquery(
    plan: &LogicalPlan,
    keep: impl Fn(&Expr) -> bool,
) -> Option<(&'static str, Subquery)> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        for expr in node.expressions() {
            let _ = expr.apply(|e| {
                let subquery = match e {
                    Expr::InSubquery(e) => Some(("`IN (subquery)`", &e.subquery)),
                    Expr::Exists(e) => Some(("`EXISTS (subquery)`", &e.subquery)),
                    Expr::ScalarSubquery(s) => Some(("a scalar subquery", s)),
                    _ => None,
                };
                if let Some((kind, subquery)) = subquery
                    && keep(e)
                {
                    found = Some((kind, subquery.clone()));
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(if found.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Where `sql` writes the subquery of `kind`: the first such one that names a column of the
/// outer query it reads (`outer`), else the first one; from its `IN` / `EXISTS` (or opening
/// parenthesis) to its closing parenthesis.
fn place(sql: &str, kind: &str, outer: &[String]) -> Option<Span> {
    let tokens: Vec<TokenWithSpan> = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let keyword = |i: usize| match &tokens[i].token {
        Token::Word(w) => Some(w.keyword),
        _ => None,
    };
    let wanted = |before: Option<Keyword>| match kind {
        "`IN (subquery)`" => before == Some(Keyword::IN),
        "`EXISTS (subquery)`" => before == Some(Keyword::EXISTS),
        _ => !matches!(
            before,
            Some(Keyword::IN | Keyword::EXISTS | Keyword::FROM | Keyword::JOIN | Keyword::LATERAL)
        ),
    };
    let candidates = (1..tokens.len()).filter_map(|open| {
        let opens_query = tokens[open].token == Token::LParen
            && matches!(keyword(open + 1), Some(Keyword::SELECT | Keyword::WITH))
            && wanted(keyword(open - 1));
        if !opens_query {
            return None;
        }
        let mut depth = 0;
        let close = (open..tokens.len()).find(|&i| {
            match tokens[i].token {
                Token::LParen => depth += 1,
                Token::RParen => depth -= 1,
                _ => {}
            }
            depth == 0
        })?;
        let names_outer = tokens[open..close].iter().any(
            |t| matches!(&t.token, Token::Word(w) if outer.contains(&w.value.to_ascii_lowercase())),
        );
        let start = match keyword(open - 1) {
            Some(Keyword::IN | Keyword::EXISTS) => tokens[open - 1].span.start,
            _ => tokens[open].span.start,
        };
        Some((names_outer, start, tokens[close].span.end))
    });
    let candidates: Vec<_> = candidates.collect();
    let (_, start, end) = candidates
        .iter()
        .find(|(names_outer, ..)| *names_outer)
        .or(candidates.first())?;
    let location = |l: &sqlparser::tokenizer::Location| Location {
        line: l.line,
        column: l.column,
    };
    Some(Span::new(location(start), location(end)))
}
