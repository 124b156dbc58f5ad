//! COMPILE: how deep a model's SQL nests, measured on its syntax tree before DataFusion plans
//! it. In: a parsed statement. Out: nothing, or where it nests past [`MAX_DEPTH`].
//!
//! DataFusion clones, compares, formats and drops expressions and plans by recursion, one stack
//! frame (or a few) per level, and a thread whose stack runs out aborts the process. A loop in a
//! template writes such nesting easily: each term of `a or b or …`, `x + y + …`, `v::t::t…`, each
//! `union`, each join and each CTE that reads the CTE before it is one level deeper. So dp plans
//! and runs queries on threads of [`STACK_SIZE`], and refuses a model that nests deeper than
//! those threads hold, at its SQL.

use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SetExpr, Statement, Visit, Visitor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token, Tokenizer};

/// The stack of every thread dp plans models or runs queries on. The deepest recursion per level
/// measured in DataFusion is about 5 KB, in a debug build (formatting the name of a `+` chain);
/// this holds [`MAX_DEPTH`] levels about five times over. A thread reserves its stack as address
/// space: only the part a query uses becomes memory.
pub const STACK_SIZE: usize = 256 << 20;

/// The deepest nesting dp plans, in levels of expressions, along the deepest path through a
/// model's expressions and queries.
pub const MAX_DEPTH: usize = 10_000;

/// What one level of queries (a subquery, a `union`, a join, a CTE read through another)
/// counts for, in levels of expressions: DataFusion plans each as a few nodes, and the time and
/// memory to plan a chain of them grows with the square of its length (1,000 chained CTEs take
/// 0.5 GB to check in a debug build, 4,000 take 5 GB). So queries nest at most
/// [`MAX_QUERY_DEPTH`] deep.
pub const QUERY_LEVEL: usize = 4;

/// The deepest nesting of queries alone.
pub const MAX_QUERY_DEPTH: usize = MAX_DEPTH / QUERY_LEVEL;

/// How deep sqlparser and DataFusion parse nested parentheses and subqueries (sqlparser's
/// default, and DataFusion's `sql_parser.recursion_limit`).
pub const PARSER_DEPTH: usize = 50;

/// What nests too deep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// A chain of operators: each `or`, `+`, `::` is one level.
    Expression,
    /// Queries in queries: subqueries, `union`s, joins.
    Query,
    /// CTEs that read CTEs (ephemeral models are inlined as CTEs).
    Ctes,
    /// Parentheses and subqueries past the parser's limit.
    Parentheses,
}

impl Nesting {
    /// What the label at the place says.
    pub fn label(self) -> String {
        match self {
            Nesting::Expression => format!("this expression nests more than {MAX_DEPTH} levels"),
            Nesting::Query => format!("queries nest more than {MAX_QUERY_DEPTH} levels here"),
            Nesting::Ctes => {
                format!("this reads a chain of CTEs more than {MAX_QUERY_DEPTH} levels deep")
            }
            Nesting::Parentheses => {
                format!("parentheses and subqueries nest more than {PARSER_DEPTH} levels here")
            }
        }
    }

    /// What nests too deep, without a place.
    pub fn what(self) -> String {
        match self {
            Nesting::Expression => format!("an expression nests more than {MAX_DEPTH} levels"),
            Nesting::Query => format!("queries nest more than {MAX_QUERY_DEPTH} levels"),
            Nesting::Ctes => format!("a chain of CTEs is more than {MAX_QUERY_DEPTH} levels deep"),
            Nesting::Parentheses => {
                format!("parentheses and subqueries nest more than {PARSER_DEPTH} levels")
            }
        }
    }

    /// What to do about it.
    pub fn help(self) -> &'static str {
        match self {
            Nesting::Expression => {
                "each term of a chain such as `a or b or ...` or `x + y + ...` nests one level deeper: test a list of values with `x in (...)`, join to a seed or model that holds them, or add up columns in steps, in models or CTEs"
            }
            Nesting::Query => {
                "each union, join and subquery nests one level deeper: build the parts as models of their own and combine those"
            }
            Nesting::Ctes => {
                "a CTE that reads the one before it nests inside it, and ephemeral models are inlined as CTEs: materialize part of the chain as models (view or table)"
            }
            Nesting::Parentheses => "take the inner part out as a CTE or a model",
        }
    }
}

/// Where a statement nests too deep: where the part that crossed the limit starts (sqlparser's
/// 1-based lines and columns), when the tree says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    pub nesting: Nesting,
    pub at: Option<Span>,
}

/// Whether `statement` nests at most [`MAX_DEPTH`] levels (see [`Nesting`]).
///
/// The walk is sqlparser's visitor, which grows its stack on the heap as it goes; it stops where
/// the limit is crossed.
pub fn measure(statement: &Statement) -> Result<(), TooDeep> {
    match statement.visit(&mut Measure::default()) {
        ControlFlow::Break(too_deep) => Err(too_deep),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// For SQL that is not a model's (a `run_query()`, a model planned for the docs): whether it
/// nests at most as deep as dp plans, or what to say about it. SQL that does not parse passes,
/// for DataFusion to report.
pub fn check_sql(sql: &str) -> Result<(), String> {
    let parsed = Parser::parse_sql(&GenericDialect {}, sql);
    let nesting = match &parsed {
        Err(ParserError::RecursionLimitExceeded) => Some(Nesting::Parentheses),
        Err(_) => None,
        Ok(statements) => statements
            .iter()
            .find_map(|s| measure(s).err())
            .map(|too_deep| too_deep.nesting),
    };
    match nesting {
        None => Ok(()),
        Some(nesting) => {
            release(parsed.unwrap_or_default(), true);
            Err(format!(
                "{}, deeper than dp plans: {}",
                nesting.what(),
                nesting.help()
            ))
        }
    }
}

/// Let go of a parsed statement. One that nests too deep is leaked: dropping it would recurse
/// once per level, on the stack of whatever thread holds it, and dp stops at this model anyway.
pub fn release(statements: Vec<Statement>, too_deep: bool) {
    if too_deep {
        std::mem::forget(statements);
    }
}

/// For SQL the parser refused as nesting too deep: the first opening parenthesis at the deepest
/// level.
pub fn deepest_parenthesis(sql: &str) -> Option<Span> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()?;
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, None);
    for token in tokens {
        match token.token {
            Token::LParen => {
                depth += 1;
                if depth > deepest {
                    (deepest, at) = (depth, Some(token.span));
                }
            }
            Token::RParen => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    at
}

/// A CTE's name as DataFusion resolves it: unquoted names in lower case.
fn normalized(ident: &Ident) -> String {
    match ident.quote_style {
        None => ident.value.to_lowercase(),
        Some(_) => ident.value.clone(),
    }
}

/// The WITH clause of a query, while its query is walked: each CTE's depth (levels of its plan,
/// inlined where it is read), known once its query was walked.
struct Scope {
    query: usize,
    depths: HashMap<String, usize>,
}

/// A CTE's query being walked: the depth it started at and the deepest reached inside it.
struct Frame {
    query: usize,
    name: String,
    start: usize,
    deepest: usize,
}

#[derive(Default)]
struct Measure {
    depth: usize,
    scopes: Vec<Scope>,
    frames: Vec<Frame>,
    /// CTE queries not walked yet, by address: their name.
    ctes: HashMap<usize, String>,
}

fn address(query: &Query) -> usize {
    std::ptr::from_ref(query) as usize
}

/// Levels a query adds besides the query itself: the left-deep chain of its set operations.
fn set_operations(query: &Query) -> usize {
    let mut levels = 0;
    let mut body = query.body.as_ref();
    while let SetExpr::SetOperation { left, .. } = body {
        levels += 1;
        body = left;
    }
    levels
}

/// Levels a SELECT adds: DataFusion plans `from a, b join c` as a left-deep chain of joins.
fn joins(select: &Select) -> usize {
    select.from.len().saturating_sub(1) + select.from.iter().map(|t| t.joins.len()).sum::<usize>()
}

/// Where an expression starts: its first identifier or value, found down the chain of left
/// operands without recursion (the chain can be far longer than a stack holds).
fn first_leaf(mut expr: &Expr) -> Option<Span> {
    loop {
        expr = match expr {
            Expr::Identifier(ident) => return Some(ident.span),
            Expr::CompoundIdentifier(idents) => return idents.first().map(|i| i.span),
            Expr::Value(value) => return Some(value.span),
            Expr::BinaryOp { left, .. }
            | Expr::AnyOp { left, .. }
            | Expr::AllOp { left, .. }
            | Expr::IsDistinctFrom(left, _)
            | Expr::IsNotDistinctFrom(left, _) => left,
            Expr::IsFalse(inner)
            | Expr::IsNotFalse(inner)
            | Expr::IsTrue(inner)
            | Expr::IsNotTrue(inner)
            | Expr::IsNull(inner)
            | Expr::IsNotNull(inner)
            | Expr::IsUnknown(inner)
            | Expr::IsNotUnknown(inner)
            | Expr::Nested(inner) => inner,
            Expr::IsNormalized { expr, .. }
            | Expr::InList { expr, .. }
            | Expr::InSubquery { expr, .. }
            | Expr::Between { expr, .. }
            | Expr::Like { expr, .. }
            | Expr::ILike { expr, .. }
            | Expr::SimilarTo { expr, .. }
            | Expr::RLike { expr, .. }
            | Expr::UnaryOp { expr, .. }
            | Expr::Cast { expr, .. }
            | Expr::Collate { expr, .. } => expr,
            Expr::AtTimeZone { timestamp, .. } => timestamp,
            Expr::CompoundFieldAccess { root, .. } => root,
            _ => return None,
        };
    }
}

/// Where a query starts: the `select` of the first query of its chain of set operations.
fn first_select(query: &Query) -> Option<Span> {
    let mut body = query.body.as_ref();
    loop {
        body = match body {
            SetExpr::SetOperation { left, .. } => left,
            SetExpr::Select(select) => return Some(select.select_token.0.span),
            SetExpr::Query(query) => &query.body,
            _ => return None,
        };
    }
}

impl Measure {
    /// Reached `depth` through `nesting`: past the limit, stop at `at` (where it was crossed).
    fn reach(
        &mut self,
        depth: usize,
        nesting: Nesting,
        at: impl FnOnce() -> Option<Span>,
    ) -> ControlFlow<TooDeep> {
        if let Some(frame) = self.frames.last_mut() {
            frame.deepest = frame.deepest.max(depth);
        }
        if depth <= MAX_DEPTH {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(TooDeep {
            nesting,
            at: at().filter(|span| span.start.line > 0),
        })
    }
}

/// The walk stops where the limit is crossed: each level walked costs stack (on the heap, as
/// the visitor grows it), so the walk never goes far past the limit.
impl Visitor for Measure {
    type Break = TooDeep;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<TooDeep> {
        let at = address(query);
        if let Some(name) = self.ctes.remove(&at) {
            self.frames.push(Frame {
                query: at,
                name,
                start: self.depth,
                deepest: self.depth,
            });
        }
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes
                    .insert(address(&cte.query), normalized(&cte.alias.name));
            }
            self.scopes.push(Scope {
                query: at,
                depths: HashMap::new(),
            });
        }
        self.depth += (1 + set_operations(query)) * QUERY_LEVEL;
        self.reach(self.depth, Nesting::Query, || first_select(query))
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<TooDeep> {
        let at = address(query);
        self.depth -= (1 + set_operations(query)) * QUERY_LEVEL;
        if self.scopes.last().is_some_and(|scope| scope.query == at) {
            self.scopes.pop();
        }
        if self.frames.last().is_some_and(|frame| frame.query == at) {
            let frame = self.frames.pop().expect("checked above");
            if let Some(outer) = self.frames.last_mut() {
                outer.deepest = outer.deepest.max(frame.deepest);
            }
            // The WITH that defines the CTE is the innermost scope open.
            if let Some(scope) = self.scopes.last_mut() {
                scope.depths.insert(frame.name, frame.deepest - frame.start);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<TooDeep> {
        self.depth += joins(select) * QUERY_LEVEL;
        self.reach(self.depth, Nesting::Query, || {
            Some(select.select_token.0.span)
        })
    }

    fn post_visit_select(&mut self, select: &Select) -> ControlFlow<TooDeep> {
        self.depth -= joins(select) * QUERY_LEVEL;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<TooDeep> {
        let [ObjectNamePart::Identifier(name)] = relation.0.as_slice() else {
            return ControlFlow::Continue(());
        };
        // A CTE read here is planned here, as deep as it goes.
        let key = normalized(name);
        let cte = self
            .scopes
            .iter()
            .rev()
            .find_map(|scope| scope.depths.get(&key).copied());
        match cte {
            Some(levels) => self.reach(self.depth + levels, Nesting::Ctes, || Some(name.span)),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<TooDeep> {
        self.depth += 1;
        self.reach(self.depth, Nesting::Expression, || first_leaf(expr))
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<TooDeep> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measure of `sql`, run where the test runs (a test thread's small stack).
    fn measured(sql: &str) -> Result<(), TooDeep> {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).unwrap();
        let measured = measure(&statements[0]);
        release(statements, measured.is_err());
        measured
    }

    fn chain(terms: usize, term: impl Fn(usize) -> String, operator: &str) -> String {
        (0..terms).map(term).collect::<Vec<_>>().join(operator)
    }

    #[test]
    fn chains_up_to_the_limit_pass_and_past_it_point_at_their_first_term() {
        let or = |n| {
            format!(
                "select x from t where {}",
                chain(n, |i| format!("x = {i}"), " or ")
            )
        };
        assert_eq!(measured(&or(MAX_DEPTH - 10)), Ok(()));
        let too_deep = measured(&or(MAX_DEPTH + 10)).unwrap_err();
        assert_eq!(too_deep.nesting, Nesting::Expression);
        // The first term: `x` of `x = 0`.
        let at = too_deep.at.unwrap().start;
        assert_eq!((at.line, at.column), (1, 23));

        let plus = |n| format!("select {} as x", chain(n, |i| i.to_string(), " + "));
        assert_eq!(measured(&plus(MAX_DEPTH - 10)), Ok(()));
        assert_eq!(
            measured(&plus(200_000)).unwrap_err().nesting,
            Nesting::Expression
        );
        let casts = format!("select 1{} as x", "::bigint".repeat(MAX_DEPTH + 1));
        assert_eq!(measured(&casts).unwrap_err().nesting, Nesting::Expression);
    }

    #[test]
    fn a_chain_of_ctes_nests_as_deep_as_it_is_long() {
        let ctes = |n: usize| {
            let mut sql = "with c0 as (select 1 as x)".to_string();
            for i in 1..n {
                sql.push_str(&format!(", c{i} as (select x from c{})", i - 1));
            }
            format!("{sql} select x from c{}", n - 1)
        };
        assert_eq!(measured(&ctes(1_000)), Ok(()));
        assert_eq!(measured(&ctes(MAX_QUERY_DEPTH - 10)), Ok(()));
        let too_deep = measured(&ctes(MAX_QUERY_DEPTH + 10)).unwrap_err();
        assert_eq!(too_deep.nesting, Nesting::Ctes);
        // At the CTE that reads the chain past the limit, near its end.
        let at = too_deep.at.unwrap().start;
        let sql = ctes(MAX_QUERY_DEPTH + 10);
        let offset = crate::source::SourceFile::offset_of(&sql, at.line, at.column);
        let read = &sql[offset..offset + sql[offset..].find(')').unwrap()];
        let index: usize = read.trim_start_matches('c').parse().unwrap();
        assert!(
            (MAX_QUERY_DEPTH - 10..MAX_QUERY_DEPTH + 10).contains(&index),
            "{read}"
        );
        // Independent CTEs, each read once, do not nest.
        let flat = (0..MAX_DEPTH)
            .map(|i| format!("c{i} as (select {i} as x)"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            measured(&format!("with {flat} select x from c0 join c1 using (x)")),
            Ok(())
        );
    }

    #[test]
    fn unions_and_joins_nest_one_level_each() {
        let unions = |n| chain(n, |i| format!("select {i} as x"), " union all ");
        assert_eq!(measured(&unions(MAX_QUERY_DEPTH - 10)), Ok(()));
        assert_eq!(
            measured(&unions(MAX_QUERY_DEPTH + 10)).unwrap_err().nesting,
            Nesting::Query
        );
        let joins = |n| {
            format!(
                "select t0.x from t0{}",
                (1..n)
                    .map(|i| format!(" join t{i} on t{i}.x = t0.x"))
                    .collect::<String>()
            )
        };
        assert_eq!(measured(&joins(MAX_QUERY_DEPTH - 10)), Ok(()));
        assert_eq!(
            measured(&joins(MAX_QUERY_DEPTH + 10)).unwrap_err().nesting,
            Nesting::Query
        );
    }

    #[test]
    fn statements_at_the_limit_are_measured_and_dropped_on_a_small_stack() {
        // Models are compiled on rayon's threads (2 MB of stack, unless the caller says): a
        // statement that passes is dropped there, one level of recursion per level. Here on
        // half of that.
        let at_limit = |term: &str, operator: &str| {
            format!(
                "select {} as x from t",
                chain(MAX_DEPTH - 10, |_| term.to_string(), operator)
            )
        };
        let statements = [
            at_limit("x = 1", " or "),
            at_limit("x", " + "),
            at_limit("x", " || "),
            format!("select x{} from t", " is not null".repeat(MAX_DEPTH - 10)),
            format!("select x{} from t", "::bigint".repeat(MAX_DEPTH - 10)),
            chain(MAX_QUERY_DEPTH - 10, |_| "select 1".into(), " union all "),
        ];
        let thread = std::thread::Builder::new().stack_size(1 << 20);
        let measured = thread
            .spawn(move || {
                statements
                    .iter()
                    .map(|sql| measured(sql))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(measured.iter().all(Result::is_ok), "{measured:?}");
    }

    #[test]
    fn wide_queries_do_not_nest() {
        let columns = (0..50_000)
            .map(|i| format!("a + {i} as c{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(measured(&format!("select {columns} from t")), Ok(()));
        let list = chain(50_000, |i| i.to_string(), ", ");
        assert_eq!(
            measured(&format!("select x from t where x in ({list})")),
            Ok(())
        );
    }

    #[test]
    fn the_deepest_parenthesis_is_the_first_at_the_deepest_level() {
        let at = deepest_parenthesis("select ((1)) + (((2)))").unwrap().start;
        assert_eq!((at.line, at.column), (1, 18));
        assert_eq!(deepest_parenthesis("select 1"), None);
    }
}
