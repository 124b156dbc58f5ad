//! SESSION: the SQL dialect a session plans in. In: the project's [`Dialect`] and a query's
//! text. Out: its logical plan, with DuckDB's semantics where the project asks for them and
//! DataFusion allows: unquoted names kept as written and found whatever their case, `/` of
//! integers and decimals a double, a fraction cast to an integer rounded, text literals of the
//! type of the values beside them in `coalesce()` and `case`, and DuckDB's names for unnamed
//! columns it can spell (the others are `dp::unaliased_column` warnings of `dp check`).
//!
//! Every rewrite keeps the query's text the same length, so DataFusion's positions still point
//! into the user's file.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, SchemaError};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::expr::{Case, ScalarFunction};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    BinaryExpr, Cast, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Operator, TryCast,
    Union,
};
use datafusion::prelude::SessionContext;
use sqlparser::ast::{
    BinaryOperator, FunctionArg, FunctionArgExpr, FunctionArguments, SelectItem, SetExpr, Spanned,
    Statement, UnaryOperator, Value,
};
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, Word};

use crate::project::Project;
pub use crate::project::profile::Dialect;

/// The dialect a session was made for, kept in its configuration.
#[derive(Debug)]
struct SessionDialect(Dialect);

/// Make `session` plan `project`'s SQL in the project's dialect, with its functions
/// (`read_csv()` and the like read files in the project folder).
pub fn apply(session: &SessionContext, project: &Project) {
    let dialect = Dialect::of(&project.config, &project.root);
    {
        let state = session.state_ref();
        let mut state = state.write();
        let config = state.config_mut();
        config.set_extension(Arc::new(SessionDialect(dialect)));
        if dialect == Dialect::Duckdb {
            // DuckDB keeps unquoted names as written (and finds them whatever their case).
            config.options_mut().sql_parser.enable_ident_normalization = false;
        }
    }
    super::functions::register(session, dialect, &project.root);
}

/// The dialect `session` plans in.
pub fn session_dialect(session: &SessionContext) -> Dialect {
    session
        .state_ref()
        .read()
        .config()
        .get_extension::<SessionDialect>()
        .map_or(Dialect::Datafusion, |d| d.0)
}

/// The dialect of the session `state` belongs to.
pub fn dialect_of(state: &SessionState) -> Dialect {
    state
        .config()
        .get_extension::<SessionDialect>()
        .map_or(Dialect::Datafusion, |d| d.0)
}

/// The logical plan of `sql` in `state`, with the semantics of the session's dialect.
pub async fn plan(state: &SessionState, sql: &str) -> Result<LogicalPlan> {
    if dialect_of(state) == Dialect::Datafusion {
        return state.create_logical_plan(sql).await;
    }
    // A name that differs from a column's only in case is the column (DuckDB finds names
    // whatever their case): respelled as the column is, one place at a time, as DataFusion
    // finds them.
    let mut sql = sql.to_string();
    let mut rounds = 0;
    let plan = loop {
        match state.create_logical_plan(&sql).await {
            Ok(plan) => break plan,
            Err(error) => {
                let fixes: Vec<(usize, usize, String)> =
                    error.iter().filter_map(|e| respell(&sql, e)).collect();
                if fixes.is_empty() || rounds == 1_000 {
                    return Err(error);
                }
                // Each fix keeps the length: positions stay where DataFusion found them.
                for (start, end, respelled) in fixes {
                    sql.replace_range(start..end, &respelled);
                }
                rounds += 1;
            }
        }
    };
    let plan = duckdb_semantics(plan)?;
    name_columns(plan, &sql)
}

/// Where in `sql` the name DataFusion did not find is, and that name spelled as the one column
/// whose name differs from it only in case; None when there is no such column.
fn respell(sql: &str, error: &DataFusionError) -> Option<(usize, usize, String)> {
    let (field, valid) = field_not_found(error)?;
    let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let mut found = valid.iter().filter(|c| {
        same(&c.name, &field.name)
            && match (&field.relation, &c.relation) {
                (Some(wanted), Some(relation)) => same(wanted.table(), relation.table()),
                (Some(_), None) => false,
                (None, _) => true,
            }
    });
    let column = found.next()?;
    if found.any(|other| other.name != column.name) {
        return None;
    }
    let (start, end) = match error.diagnostic().and_then(|d| d.span) {
        Some(span) => (
            crate::source::SourceFile::offset_of(sql, span.start.line, span.start.column),
            crate::source::SourceFile::offset_of(sql, span.end.line, span.end.column),
        ),
        // DataFusion gives no place for a name in ORDER BY or HAVING: the one place it is
        // written so, and not as an alias being defined.
        None => only_use(sql, &field.name)?,
    };
    let written = sql.get(start..end)?;
    // `a.Name`, `"name"`: each part respelled in place, quotes kept.
    let parts: Vec<&str> = written.split('.').collect();
    let mut wanted: Vec<&str> = vec![column.name.as_str()];
    if parts.len() > 1
        && let Some(relation) = &column.relation
    {
        wanted.insert(0, relation.table());
    }
    if parts.len() < wanted.len() {
        return None;
    }
    let keep = parts.len() - wanted.len();
    let mut respelled: Vec<String> = parts[..keep].iter().map(|p| p.to_string()).collect();
    for (part, name) in parts[keep..].iter().zip(wanted) {
        let bare = part.trim_matches('"');
        if !same(bare, name) || bare.len() != name.len() {
            return None;
        }
        respelled.push(part.replace(bare, name));
    }
    let respelled = respelled.join(".");
    if respelled == written {
        return None;
    }
    Some((start, end, respelled))
}

/// Where `name` is used in `sql`, as a name written exactly so (not an alias being defined),
/// when it is used in one place.
fn only_use(sql: &str, name: &str) -> Option<(usize, usize)> {
    let tokens = tokens_of(sql)?;
    let mut uses = tokens.iter().enumerate().filter(|(i, t)| {
        matches!(&t.token, Token::Word(word) if word.value == name)
            && previous_word(&tokens, *i).is_none_or(|w| w.keyword != Keyword::AS)
    });
    let (_, only) = uses.next()?;
    if uses.next().is_some() {
        return None;
    }
    Some(offsets(sql, only.span))
}

/// The SQL tokens of `sql`, with their places.
fn tokens_of(sql: &str) -> Option<Vec<TokenWithSpan>> {
    Tokenizer::new(&sqlparser::dialect::GenericDialect {}, sql)
        .tokenize_with_location()
        .ok()
}

/// The word before token `i`, past whitespace and comments.
fn previous_word(tokens: &[TokenWithSpan], i: usize) -> Option<&Word> {
    tokens[..i]
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_)))
        .and_then(|t| match &t.token {
            Token::Word(word) => Some(word),
            _ => None,
        })
}

/// The byte offsets of `span` in `sql`.
fn offsets(sql: &str, span: sqlparser::tokenizer::Span) -> (usize, usize) {
    (
        crate::source::SourceFile::offset_of(sql, span.start.line, span.start.column),
        crate::source::SourceFile::offset_of(sql, span.end.line, span.end.column),
    )
}

/// The unknown column and the columns there are, of a "no field named" error.
fn field_not_found(error: &DataFusionError) -> Option<(&Column, &[Column])> {
    let mut error = error;
    loop {
        match error {
            DataFusionError::SchemaError(inner, _) => {
                return match inner.as_ref() {
                    SchemaError::FieldNotFound {
                        field,
                        valid_fields,
                    } => Some((field, valid_fields)),
                    _ => None,
                };
            }
            DataFusionError::Diagnostic(_, inner) | DataFusionError::Context(_, inner) => {
                error = inner
            }
            _ => return None,
        }
    }
}

/// `plan` with DuckDB's meaning of `/`, of a cast to an integer and of text literals beside
/// other types; columns keep their names.
fn duckdb_semantics(plan: LogicalPlan) -> Result<LogicalPlan> {
    duckdb_node(plan).map(|t| t.data)
}

/// `node`, its inputs and its subqueries as DuckDB means them. A node's schema is derived again
/// only when something in it or under it changed (deriving it names every expression, which
/// costs more than planning a small query).
fn duckdb_node(node: LogicalPlan) -> Result<Transformed<LogicalPlan>> {
    let below = node
        .map_subqueries(duckdb_node)?
        .transform_data(|node| node.map_children(duckdb_node))?;
    let changed_below = below.transformed;
    let mut node = below.data;
    if changed_below {
        // Its inputs changed types (a union keeps the schema it was planned with unless it is
        // derived again).
        node = match node {
            LogicalPlan::Union(union) => {
                LogicalPlan::Union(Union::try_new_with_loose_types(union.inputs)?)
            }
            other => other.recompute_schema()?,
        };
    }
    let mut candidate = false;
    node.apply_expressions(|expr| {
        candidate = expr.exists(|e| Ok(may_differ(e)))?;
        Ok(match candidate {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    })?;
    let schema: DFSchema = match node.inputs()[..] {
        _ if !candidate => return Ok(Transformed::new_transformed(node, changed_below)),
        [input] => input.schema().as_ref().clone(),
        [left, right] if matches!(node, LogicalPlan::Join(_)) => {
            let mut both = left.schema().as_ref().clone();
            both.merge(right.schema());
            both
        }
        _ => return Ok(Transformed::new_transformed(node, changed_below)),
    };
    let names = NamePreserver::new(&node);
    let rewritten = node.map_expressions(|expr| {
        let name = names.save(&expr);
        expr.transform_up(|e| duckdb_expr(e, &schema))
            .map(|t| t.update_data(|e| name.restore(e)))
    })?;
    match rewritten.transformed {
        true => rewritten.data.recompute_schema().map(Transformed::yes),
        false => Ok(Transformed::new_transformed(rewritten.data, changed_below)),
    }
}

/// The functions whose text literals DuckDB reads as the type of their other values.
const TYPED_BY_THEIR_VALUES: [&str; 5] = ["coalesce", "nvl", "ifnull", "greatest", "least"];

/// Whether [`duckdb_expr`] may rewrite `expr` (it then asks the types).
fn may_differ(expr: &Expr) -> bool {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            op: Operator::Divide,
            ..
        })
        | Expr::Cast(_)
        | Expr::TryCast(_)
        | Expr::Case(_) => true,
        Expr::ScalarFunction(ScalarFunction { func, .. }) => {
            TYPED_BY_THEIR_VALUES.contains(&func.name())
        }
        _ => false,
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    )
}

fn is_text_literal(expr: &Expr) -> bool {
    matches!(expr, Expr::Literal(value, _) if is_text(&value.data_type()) && !value.is_null())
}

fn double(expr: Expr) -> Expr {
    Expr::Cast(Cast::new(Box::new(expr), DataType::Float64))
}

/// One expression as DuckDB means it.
fn duckdb_expr(expr: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    let type_of = |e: &Expr| e.get_type(schema).ok();
    // A cast of a fraction to an integer, which DuckDB rounds.
    let rounds = |field: &datafusion::arrow::datatypes::FieldRef, inner: &Expr| {
        field.data_type().is_integer()
            && type_of(inner).is_some_and(|t| t.is_floating() || t.is_decimal())
    };
    Ok(match expr {
        // `/` of integers or decimals is a double in DuckDB (`//` divides integers).
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) if [&left, &right]
            .iter()
            .all(|side| type_of(side).is_some_and(|t| t.is_integer() || t.is_decimal())) =>
        {
            Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(double(*left)),
                Operator::Divide,
                Box::new(double(*right)),
            )))
        }
        // A fraction cast to an integer is rounded: a decimal half away from zero, a double
        // half to even (cast(2.5::double as int) is 2 in DuckDB).
        Expr::Cast(Cast { expr: inner, field }) if rounds(&field, &inner) => {
            let expr = Box::new(round_as_duckdb(*inner, type_of));
            Transformed::yes(Expr::Cast(Cast { expr, field }))
        }
        Expr::TryCast(TryCast { expr: inner, field }) if rounds(&field, &inner) => {
            let expr = Box::new(round_as_duckdb(*inner, type_of));
            Transformed::yes(Expr::TryCast(TryCast { expr, field }))
        }
        // `coalesce(max(ts), '1900-01-01')`: the text is read as the other values' type.
        Expr::ScalarFunction(ScalarFunction { func, args })
            if TYPED_BY_THEIR_VALUES.contains(&func.name()) && args.iter().any(is_text_literal) =>
        {
            match typed_beside(args.iter(), type_of) {
                Some(target) => Transformed::yes(Expr::ScalarFunction(ScalarFunction {
                    func,
                    args: args.into_iter().map(|a| cast_text(a, &target)).collect(),
                })),
                None => Transformed::no(Expr::ScalarFunction(ScalarFunction { func, args })),
            }
        }
        Expr::Case(case)
            if case
                .when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref())
                .any(is_text_literal) =>
        {
            let results = case
                .when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(case.else_expr.as_deref());
            match typed_beside(results, type_of) {
                Some(target) => Transformed::yes(Expr::Case(Case {
                    expr: case.expr,
                    when_then_expr: case
                        .when_then_expr
                        .into_iter()
                        .map(|(when, then)| (when, Box::new(cast_text(*then, &target))))
                        .collect(),
                    else_expr: case.else_expr.map(|e| Box::new(cast_text(*e, &target))),
                })),
                None => Transformed::no(Expr::Case(case)),
            }
        }
        other => Transformed::no(other),
    })
}

/// The type of the first of `values` that is neither text nor NULL.
fn typed_beside<'a>(
    values: impl Iterator<Item = &'a Expr>,
    type_of: impl Fn(&Expr) -> Option<DataType>,
) -> Option<DataType> {
    values
        .filter_map(type_of)
        .find(|t| !is_text(t) && *t != DataType::Null)
}

fn cast_text(expr: Expr, target: &DataType) -> Expr {
    match is_text_literal(&expr) {
        true => Expr::Cast(Cast::new(Box::new(expr), target.clone())),
        false => expr,
    }
}

/// `expr` rounded as DuckDB rounds a fraction it casts to an integer.
fn round_as_duckdb(expr: Expr, type_of: impl Fn(&Expr) -> Option<DataType>) -> Expr {
    use datafusion::functions::math::expr_fn::{abs, round, trunc};
    use datafusion::prelude::lit;
    if type_of(&expr).is_some_and(|t| t.is_decimal()) {
        return round(vec![expr]);
    }
    // Half to even: a value exactly between two integers goes to the even one.
    let x = double(expr);
    let halfway = abs(x.clone() - trunc(vec![x.clone()])).eq(lit(0.5));
    datafusion::prelude::when(halfway, lit(2.0) * round(vec![x.clone() / lit(2.0)]))
        .otherwise(round(vec![x]))
        .unwrap_or_else(|_| unreachable!("a when with an otherwise builds"))
}

/// `plan`'s columns renamed as DuckDB names the unnamed expressions of the query's select
/// list (`count(*)` is `count_star()`, `sum(t.x)` is `sum(x)` when written `sum(x)`).
fn name_columns(plan: LogicalPlan, sql: &str) -> Result<LogicalPlan> {
    if names_every_column(&plan) {
        return Ok(plan);
    }
    let Some(items) = select_list(sql) else {
        return Ok(plan);
    };
    let fields: Vec<(Option<datafusion::common::TableReference>, String)> = plan
        .schema()
        .iter()
        .map(|(qualifier, field)| (qualifier.cloned(), field.name().clone()))
        .collect();
    if items.len() != fields.len() || items.iter().all(|item| item.duckdb_name.is_none()) {
        return Ok(plan);
    }
    let mut taken: std::collections::BTreeSet<String> =
        fields.iter().map(|(_, name)| name.clone()).collect();
    let mut renamed = false;
    let exprs: Vec<Expr> = fields
        .iter()
        .zip(&items)
        .map(|((qualifier, name), item)| {
            let column = Expr::Column(Column::new(qualifier.clone(), name));
            match &item.duckdb_name {
                Some(duckdb) if duckdb != name && taken.insert(duckdb.clone()) => {
                    renamed = true;
                    column.alias(duckdb)
                }
                _ => column,
            }
        })
        .collect();
    if !renamed {
        return Ok(plan);
    }
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// Whether every column of `plan`'s result is named as DuckDB names it without reading the
/// query: each has a plain name (letters, digits, `_`; DataFusion names an unnamed expression
/// by its text, `count(*)`, `Int64(1)`, `a + b`) and none is an unnamed cast (named after what
/// it casts, which DuckDB does not). Then the query need not be parsed.
pub fn names_every_column(plan: &LogicalPlan) -> bool {
    let plain = plan.schema().fields().iter().all(|field| {
        field
            .name()
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_')
    });
    plain && !casts_unnamed(plan)
}

/// Whether the select list of `plan`'s query (its first branch) has an unnamed cast.
fn casts_unnamed(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Projection(projection) => projection
            .expr
            .iter()
            .any(|expr| matches!(expr, Expr::Cast(_) | Expr::TryCast(_))),
        LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Union(_) => plan
            .inputs()
            .first()
            .is_some_and(|input| casts_unnamed(input)),
        _ => false,
    }
}

/// An unnamed expression of a query's select list.
#[derive(Debug, Clone, PartialEq)]
pub struct Unnamed {
    /// Which column of the query it is, from 0.
    pub index: usize,
    /// The expression as written.
    pub text: String,
    /// Where it is in the query: line and column of its start and end, from 1.
    pub start: (u64, u64),
    pub end: (u64, u64),
    /// The name DuckDB gives it, when dp can spell it.
    pub duckdb_name: Option<String>,
}

/// The unnamed expressions (not a column, not aliased) of the select list of `sql`'s query.
pub fn unnamed_columns(sql: &str) -> Vec<Unnamed> {
    select_list(sql)
        .unwrap_or_default()
        .into_iter()
        .filter(|item| !item.text.is_empty())
        .collect()
}

/// Each item of the select list of `sql`'s query (the first query of a union), in order;
/// `text` empty for a column or an aliased expression. None when it is not one query or it
/// selects `*`.
fn select_list(sql: &str) -> Option<Vec<Unnamed>> {
    let dialect = sqlparser::dialect::GenericDialect {};
    let statements = sqlparser::parser::Parser::parse_sql(&dialect, sql).ok()?;
    let [Statement::Query(query)] = &statements[..] else {
        return None;
    };
    // Tokenized only for an unnamed expression's extent.
    let tokens = std::cell::OnceCell::new();
    let mut body = query.body.as_ref();
    let select = loop {
        match body {
            SetExpr::Select(select) => break select,
            SetExpr::SetOperation { left, .. } => body = left,
            SetExpr::Query(query) => body = query.body.as_ref(),
            _ => return None,
        }
    };
    select
        .projection
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            SelectItem::UnnamedExpr(
                sqlparser::ast::Expr::Identifier(_) | sqlparser::ast::Expr::CompoundIdentifier(_),
            )
            | SelectItem::ExprWithAlias { .. }
            | SelectItem::ExprWithAliases { .. } => Some(Unnamed {
                index,
                text: String::new(),
                start: (0, 0),
                end: (0, 0),
                duckdb_name: None,
            }),
            SelectItem::UnnamedExpr(expr) => {
                let tokens = tokens.get_or_init(|| tokens_of(sql).unwrap_or_default());
                let span = item_extent(tokens, expr.span());
                let (start, end) = offsets(sql, span);
                Some(Unnamed {
                    index,
                    text: sql
                        .get(start..end)
                        .map_or_else(|| expr.to_string(), str::to_string),
                    start: (span.start.line, span.start.column),
                    end: (span.end.line, span.end.column),
                    duckdb_name: duckdb_name(expr),
                })
            }
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => None,
        })
        .collect()
}

/// The whole select-list item around `inner` (sqlparser's place of `cast(x as int)` is that of
/// `x`): from after the comma or SELECT before it to before the comma or clause after it.
fn item_extent(
    tokens: &[TokenWithSpan],
    inner: sqlparser::tokenizer::Span,
) -> sqlparser::tokenizer::Span {
    let solid = |t: &&TokenWithSpan| !matches!(t.token, Token::Whitespace(_) | Token::EOF);
    let Some(first) = tokens.iter().position(|t| t.span.start >= inner.start) else {
        return inner;
    };
    let last = tokens
        .iter()
        .rposition(|t| t.span.end <= inner.end && t.span.end > t.span.start)
        .unwrap_or(first)
        .max(first);
    let mut depth = 0i32;
    // The parentheses the item opens before `inner`, which it closes after it.
    let mut open = 0;
    let mut start = first;
    for i in (0..first).rev() {
        match &tokens[i].token {
            Token::RParen => depth += 1,
            Token::LParen if depth > 0 => depth -= 1,
            Token::LParen => open += 1,
            Token::Comma if depth == 0 => break,
            Token::Word(word)
                if depth == 0
                    && matches!(
                        word.keyword,
                        Keyword::SELECT | Keyword::DISTINCT | Keyword::ALL
                    ) =>
            {
                break;
            }
            _ => {}
        }
        start = i;
    }
    let mut depth = 0i32;
    let mut end = last;
    for (i, token) in tokens.iter().enumerate().skip(last + 1) {
        match &token.token {
            Token::LParen => depth += 1,
            Token::RParen if depth > 0 => depth -= 1,
            Token::RParen if open > 0 => open -= 1,
            Token::RParen | Token::SemiColon | Token::EOF => break,
            Token::Comma if depth == 0 => break,
            Token::Word(word)
                if depth == 0
                    && matches!(
                        word.keyword,
                        Keyword::FROM
                            | Keyword::WHERE
                            | Keyword::GROUP
                            | Keyword::ORDER
                            | Keyword::LIMIT
                            | Keyword::UNION
                            | Keyword::EXCEPT
                            | Keyword::INTERSECT
                            | Keyword::HAVING
                            | Keyword::WINDOW
                            | Keyword::QUALIFY
                    ) =>
            {
                break;
            }
            _ => {}
        }
        end = i;
    }
    let first = tokens[start..=end].iter().find(solid);
    let last = tokens[start..=end].iter().rev().find(solid);
    match (first, last) {
        (Some(first), Some(last)) => {
            sqlparser::tokenizer::Span::new(first.span.start, last.span.end)
        }
        _ => inner,
    }
}

/// The name DuckDB gives an unnamed select-list expression (its text as DuckDB prints it),
/// for the expressions whose printing dp knows; None for the others.
pub fn duckdb_name(expr: &sqlparser::ast::Expr) -> Option<String> {
    use sqlparser::ast::Expr as E;
    Some(match expr {
        E::Identifier(ident) => identifier(ident)?,
        E::CompoundIdentifier(parts) => parts
            .iter()
            .map(identifier)
            .collect::<Option<Vec<_>>>()?
            .join("."),
        E::Value(value) => match &value.value {
            Value::Number(number, _) => number.clone(),
            Value::SingleQuotedString(text) if !text.contains('\'') => format!("'{text}'"),
            Value::Null => "NULL".into(),
            Value::Boolean(true) => "CAST('t' AS BOOLEAN)".into(),
            Value::Boolean(false) => "CAST('f' AS BOOLEAN)".into(),
            _ => return None,
        },
        E::Nested(inner) => duckdb_name(inner)?,
        E::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => format!("-({})", duckdb_name(expr)?),
        E::BinaryOp { left, op, right } => {
            let op = match op {
                BinaryOperator::Plus => "+",
                BinaryOperator::Minus => "-",
                BinaryOperator::Multiply => "*",
                BinaryOperator::Divide => "/",
                BinaryOperator::Modulo => "%",
                BinaryOperator::Eq => "=",
                BinaryOperator::NotEq => "!=",
                BinaryOperator::Lt => "<",
                BinaryOperator::LtEq => "<=",
                BinaryOperator::Gt => ">",
                BinaryOperator::GtEq => ">=",
                BinaryOperator::StringConcat => "||",
                BinaryOperator::And => "AND",
                BinaryOperator::Or => "OR",
                _ => return None,
            };
            format!("({} {op} {})", duckdb_name(left)?, duckdb_name(right)?)
        }
        E::Function(function) => {
            if function.over.is_some()
                || function.filter.is_some()
                || function.null_treatment.is_some()
                || !function.within_group.is_empty()
                || function.name.0.len() != 1
            {
                return None;
            }
            let name = function.name.0[0].as_ident()?;
            if name.quote_style.is_some() {
                return None;
            }
            let name = name.value.to_ascii_lowercase();
            let FunctionArguments::List(list) = &function.args else {
                return None;
            };
            if !list.clauses.is_empty() {
                return None;
            }
            let distinct = match list.duplicate_treatment {
                Some(sqlparser::ast::DuplicateTreatment::Distinct) => "DISTINCT ",
                Some(sqlparser::ast::DuplicateTreatment::All) => return None,
                None => "",
            };
            if name == "count"
                && distinct.is_empty()
                && matches!(
                    &list.args[..],
                    [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                )
            {
                return Some("count_star()".into());
            }
            let args = list
                .args
                .iter()
                .map(|arg| match arg {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(arg)) => duckdb_name(arg),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?
                .join(", ");
            let printed = match name.as_str() {
                "sum" | "min" | "max" | "avg" | "count" | "round" | "abs" | "greatest"
                | "least" | "date_trunc" | "date_part" | "length" | "concat" | "median"
                | "string_agg" | "stddev_samp" | "any_value" | "floor" | "ceil" | "ln"
                | "power" | "sqrt" | "lower" | "upper" | "substr" | "strftime" => name,
                "replace" | "nullif" | "year" | "first" | "left" | "right" | "mode" => {
                    format!("\"{name}\"")
                }
                "trim" | "substring" => format!("main.\"{name}\""),
                "coalesce" | "ifnull" => "COALESCE".into(),
                _ => return None,
            };
            format!("{printed}({distinct}{args})")
        }
        _ => return None,
    })
}

/// A name as DuckDB prints it: as written, or without its quotes when it needs none.
fn identifier(ident: &sqlparser::ast::Ident) -> Option<String> {
    match ident.quote_style {
        None => Some(ident.value.clone()),
        Some('"') => {
            let plain = ident
                .value
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && ident
                    .value
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            plain.then(|| ident.value.clone())
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duckdb_session() -> SessionContext {
        let config = datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.sql_parser.collect_spans", true);
        let session = SessionContext::new_with_config(config);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("dp_project.yml"),
            "name: t\ndialect: duckdb\n",
        )
        .unwrap();
        let project = crate::project::load(dir.path()).unwrap();
        apply(&session, &project);
        session
    }

    async fn rows(session: &SessionContext, sql: &str) -> (Vec<String>, Vec<String>) {
        let plan = plan(&session.state(), sql).await.unwrap();
        let names = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let batches = session
            .execute_logical_plan(plan)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        (names, text.lines().map(str::to_string).collect())
    }

    #[tokio::test]
    async fn duckdb_finds_names_whatever_their_case_and_keeps_aliases_as_written() {
        let session = duckdb_session();
        session
            .sql(r#"create table t as select 1 as "ProcessedAt", 2 as "orderNumber""#)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let (names, _) = rows(
            &session,
            "select processedat, t.ORDERNUMBER as SEGMENT, \"PROCESSEDAT\" + 1 as x from t order by processedAT",
        )
        .await;
        assert_eq!(names, ["ProcessedAt", "SEGMENT", "x"]);
    }

    #[tokio::test]
    async fn duckdb_divides_and_averages_decimals_as_doubles() {
        let session = duckdb_session();
        let (names, text) = rows(
            &session,
            "select avg(x) as a, round(avg(x), 2) as r, sum(x) / count(*) as d, 7 / 2 as i, cast(2.5 as int) as c2, cast(3.5 as int) as c3, cast(cast(2.5 as decimal(3,1)) as int) as c4 \
             from (values (cast(33.30 as decimal(10,2))), (cast(33.31 as decimal(10,2))), (cast(33.31 as decimal(10,2)))) as v(x)",
        )
        .await;
        assert_eq!(names, ["a", "r", "d", "i", "c2", "c3", "c4"]);
        assert!(
            text[3].contains("33.306666666666665")
                && text[3].contains("33.31")
                && text[3].contains("3.5"),
            "{text:?}"
        );
        let values: Vec<&str> = text[3].split('|').map(str::trim).collect();
        assert_eq!(values[5..8], ["2", "4", "3"], "{text:?}");
    }

    #[tokio::test]
    async fn duckdb_reads_text_beside_a_date_as_a_date() {
        let session = duckdb_session();
        let plan = plan(
            &session.state(),
            "select coalesce(max(d), '1900-01-01') as m, case when true then '2020-01-01' else max(d) end as c from (values (cast('2024-03-05' as date))) as v(d)",
        )
        .await
        .unwrap();
        let types: Vec<&DataType> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type())
            .collect();
        assert_eq!(types, [&DataType::Date32, &DataType::Date32]);
    }

    #[tokio::test]
    async fn duckdb_names_unnamed_columns_as_duckdb_does() {
        let session = duckdb_session();
        let (names, _) = rows(
            &session,
            "select count(*), sum(x), round(sum(x) / 2, 2), x + 1, cast(x as double) from (values (1)) as t(x) group by x",
        )
        .await;
        assert_eq!(
            names,
            [
                "count_star()",
                "sum(x)",
                "round((sum(x) / 2), 2)",
                "(x + 1)",
                // DataFusion's name for a cast.
                "t.x"
            ]
        );
        // DataFusion aliases `count(*)` itself: still DuckDB's name, alone and under a limit.
        let (names, _) = rows(
            &session,
            "select count(*) from (values (1)) as t(x) limit 1",
        )
        .await;
        assert_eq!(names, ["count_star()"]);
        let (names, _) = rows(&session, "select x, x as y from (values (1)) as t(x)").await;
        assert_eq!(names, ["x", "y"]);
        assert!(!names_every_column(
            &session
                .sql("select cast(x as int) from (select 1 as x) limit 1")
                .await
                .unwrap()
                .into_unoptimized_plan()
        ));
        let unnamed = unnamed_columns("select a, b as c, cast(a as int), count(*) from t");
        assert_eq!(unnamed.len(), 2);
        assert_eq!(unnamed[0].duckdb_name, None);
        assert_eq!(unnamed[0].start, (1, 19));
        assert_eq!(unnamed[0].text, "cast(a as int)");
        assert_eq!(unnamed[1].text, "count(*)");
        assert_eq!(unnamed[1].duckdb_name.as_deref(), Some("count_star()"));
    }

    #[tokio::test]
    async fn duckdb_functions_strftime_and_generate_series() {
        let session = duckdb_session();
        let (names, text) = rows(
            &session,
            "select strftime(cast(generate_series as date), '%B') as m, strftime('%A', generate_series) as d from generate_series(date '2024-03-05', date '2024-03-06', interval '1 day')",
        )
        .await;
        assert_eq!(names, ["m", "d"]);
        assert!(
            text[3].contains("March") && text[3].contains("Tuesday"),
            "{text:?}"
        );
    }
}
