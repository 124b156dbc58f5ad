//! COMPILE: the SQL each selected model runs. Ephemeral models are inlined into their consumers as
//! CTEs (found with sqlparser, so a model's own `WITH` keeps working), and every byte of the
//! compiled SQL can be traced back to the template it came from. In: a [`ModelGraph`] and the
//! selected nodes. Out: a [`Plan`], in execution order.

pub mod depth;
mod snapshot;
mod unused;

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use miette::SourceSpan;
use rayon::prelude::*;
use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token, Tokenizer};

use crate::graph::{ModelGraph, NodeId};
use crate::project::Project;
use crate::render::{ModelConfig, RenderedModel, SourceMap};
use crate::source::{SourceFile, span};

/// The selected models, in execution order, with the SQL each runs.
#[derive(Debug, Clone)]
pub struct Plan {
    pub models: Vec<ModelPlan>,
}

/// One model ready to run.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    pub name: String,
    pub file: SourceFile,
    /// The SQL to run: the rendered model with the ephemeral models it reads inlined as CTEs.
    pub sql: String,
    pub config: ModelConfig,
    /// Stored models this one reads, directly or through ephemeral models.
    pub upstream: BTreeSet<String>,
    /// Source tables (`source.table`) this one reads, directly or through ephemeral models.
    pub sources: BTreeSet<String>,
    /// Its template calls `run_query()`: a build renders it again, with `execute` true.
    pub runs_queries: bool,
    pieces: Vec<Piece>,
    /// A snapshot's: where its query is in `sql` (dp wrote the rest).
    snapshot_query: Option<Range<usize>>,
}

/// A stretch of compiled SQL copied from one model's rendered SQL.
#[derive(Debug, Clone)]
struct Piece {
    compiled: Range<usize>,
    rendered_start: usize,
    file: SourceFile,
    map: SourceMap,
}

impl ModelPlan {
    /// The models this one waits for in a build: those it reads, and those its relationships
    /// tests read (a test reads the published table, so it must see this run's build of it).
    pub fn waits_for<'a>(&'a self, project: &'a Project) -> impl Iterator<Item = &'a str> {
        self.upstream.iter().map(String::as_str).chain(
            project
                .related_models(&self.name)
                .filter(move |to| *to != self.name),
        )
    }

    /// The file and span that produced `len` bytes at `offset` of the compiled SQL.
    pub fn locate(&self, offset: usize, len: usize) -> (SourceFile, SourceSpan) {
        // Text dp wrote itself (`"eph" as (`, the end) belongs to the piece before it.
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.compiled.start <= offset && !p.compiled.is_empty())
            .or(self.pieces.first())
            .expect("a plan has a piece of its own model");
        let within = offset.clamp(
            piece.compiled.start,
            piece
                .compiled
                .end
                .saturating_sub(1)
                .max(piece.compiled.start),
        );
        let rendered = piece.rendered_start + (within - piece.compiled.start);
        let range = piece.map.to_template(rendered, len).unwrap_or(0..0);
        let at = span(range, piece.file.text().len());
        (piece.file.clone(), at)
    }

    /// A snapshot's query, without what dp writes around it.
    pub fn snapshot_query(&self) -> Option<&str> {
        self.snapshot_query.clone().map(|range| &self.sql[range])
    }

    /// A snapshot's later run (see [`snapshot::merge_query`]), given the schemas of its query
    /// and of its published table; `None` for a model that is no snapshot.
    pub fn snapshot_merge(
        &self,
        query: &datafusion::arrow::datatypes::Schema,
        table: &datafusion::arrow::datatypes::Schema,
    ) -> Option<ModelPlan> {
        let config = self.config.snapshot.as_ref()?;
        Some(snapshot::merge_query(self, config, query, table))
    }

    /// This plan with `before` and `after` written around its SQL, every position kept.
    fn wrapped(mut self, before: String, after: &str) -> ModelPlan {
        let shift = before.len();
        for piece in &mut self.pieces {
            piece.compiled = piece.compiled.start + shift..piece.compiled.end + shift;
        }
        self.snapshot_query = Some(shift..shift + self.sql.len());
        self.sql = before + &self.sql + after;
        self
    }

    /// A snapshot's query (the whole SQL of another plan) with `before` and `after` around it.
    fn around_query(&self, before: String, after: &str) -> ModelPlan {
        let range = self.snapshot_query.clone().unwrap_or(0..self.sql.len());
        let mut plan = self.clone();
        plan.sql = self.sql[range.clone()].to_string();
        for piece in &mut plan.pieces {
            piece.compiled = piece.compiled.start.saturating_sub(range.start)
                ..piece.compiled.end.saturating_sub(range.start);
        }
        plan.wrapped(before, after)
    }

    /// Where a 1-based line and column of the compiled SQL came from.
    pub fn locate_line(&self, line: u64, column: u64, len: usize) -> (SourceFile, SourceSpan) {
        self.locate(SourceFile::offset_of(&self.sql, line, column), len)
    }

    /// Where the compiled SQL from one 1-based (line, column) to another came from: from the
    /// first character's place to the last's when both are in one file, else the first's.
    pub fn locate_between(&self, start: (u64, u64), end: (u64, u64)) -> (SourceFile, SourceSpan) {
        let offset = |(line, column)| SourceFile::offset_of(&self.sql, line, column);
        let (file, first) = self.locate(offset(start), 1);
        let (last_file, last) = self.locate(offset(end).saturating_sub(1), 1);
        let through = last.offset() + last.len();
        if last_file.path() != file.path() || through <= first.offset() {
            return (file, first);
        }
        (file, (first.offset(), through - first.offset()).into())
    }
}

/// A model whose SQL is not a single query.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum PlanError {
    #[error("`{model}` is not valid SQL: {message}")]
    #[diagnostic(code(dp::sql_syntax))]
    Syntax {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("`{model}` must be one SELECT query")]
    #[diagnostic(
        code(dp::not_a_query),
        help(
            "a model is a single SELECT (or WITH ... SELECT); dp creates and replaces the table itself"
        )
    )]
    NotAQuery {
        model: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("this statement")]
        at: SourceSpan,
    },

    #[error("`{model}` nests deeper than dp can plan")]
    #[diagnostic(code(dp::too_deep))]
    TooDeep {
        model: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("{label}")]
        at: SourceSpan,
        label: String,
        #[help]
        help: &'static str,
    },
}

impl PlanError {
    /// The model that cannot be planned.
    pub fn model(&self) -> &str {
        match self {
            PlanError::Syntax { model, .. }
            | PlanError::NotAQuery { model, .. }
            | PlanError::TooDeep { model, .. } => model,
        }
    }
}

/// Plan every selected model, in the graph's execution order (models are planned in parallel);
/// a model that cannot be planned is left out, and its problem listed.
pub fn plan(graph: &ModelGraph, selected: &BTreeSet<NodeId>) -> (Plan, Vec<PlanError>) {
    let planned: Vec<Result<ModelPlan, PlanError>> = graph
        .order()
        .par_iter()
        .filter_map(|node| match node {
            NodeId::Model(name) if selected.contains(node) => Some(plan_model(
                &|parent| graph.models.get(parent),
                &graph.models[name],
            )),
            _ => None,
        })
        .collect();
    let mut models = Vec::new();
    let mut problems: Vec<PlanError> = Vec::new();
    for model in planned {
        match model {
            Ok(model) => models.push(model),
            // An ephemeral model that does not parse fails each of its readers the same way:
            // say it once.
            Err(problem)
                if problems
                    .iter()
                    .any(|p| p.to_string() == problem.to_string()) => {}
            Err(problem) => problems.push(problem),
        }
    }
    (Plan { models }, problems)
}

/// Plan one model whose parents `parent` finds: a parent it does not find, or that is not
/// ephemeral, is a stored table the model reads.
pub fn plan_model<'a>(
    parent: &dyn Fn(&str) -> Option<&'a RenderedModel>,
    model: &'a RenderedModel,
) -> Result<ModelPlan, PlanError> {
    // The ephemeral models read through `model`, each after those it reads, and what they read.
    fn visit<'a>(
        parent: &dyn Fn(&str) -> Option<&'a RenderedModel>,
        current: &'a RenderedModel,
        seen: &mut BTreeSet<&'a str>,
        ordered: &mut Vec<&'a RenderedModel>,
        upstream: &mut BTreeSet<String>,
        sources: &mut BTreeSet<String>,
    ) {
        sources.extend(current.sources.iter().map(|c| c.target.clone()));
        for call in &current.refs {
            match parent(&call.target) {
                Some(eph) if eph.config.is_ephemeral() => {
                    if seen.insert(eph.name.as_str()) {
                        visit(parent, eph, seen, ordered, upstream, sources);
                        ordered.push(eph);
                    }
                }
                _ => {
                    upstream.insert(call.target.clone());
                }
            }
        }
    }
    let mut ordered = Vec::new();
    let mut upstream = BTreeSet::new();
    let mut sources = BTreeSet::new();
    visit(
        parent,
        model,
        &mut BTreeSet::new(),
        &mut ordered,
        &mut upstream,
        &mut sources,
    );
    let own_piece = |compiled: Range<usize>, rendered_start: usize| Piece {
        compiled,
        rendered_start,
        file: model.file.clone(),
        map: model.source_map.clone(),
    };
    let (first_cte, deferred) = match parse_query(model) {
        Ok(first_cte) => (first_cte, false),
        // A model that asks `execute` renders its real SQL when it runs (with the rows of its
        // queries); what it renders while dp plans may not even be SQL.
        Err(_) if model.runs_queries => (None, true),
        Err(problem) => return Err(problem),
    };
    if ordered.is_empty() || deferred {
        return Ok(finished(ModelPlan {
            name: model.name.clone(),
            file: model.file.clone(),
            sql: model.sql.clone(),
            config: model.config.clone(),
            upstream,
            sources,
            runs_queries: model.runs_queries,
            pieces: vec![own_piece(0..model.sql.len(), 0)],
            snapshot_query: None,
        }));
    }
    // Before the first CTE of the model's own WITH, or before the query when it has none.
    let insert_at = first_cte.unwrap_or_else(|| statement_range(&model.sql).start);
    let mut sql = model.sql[..insert_at].to_string();
    let mut pieces = vec![own_piece(0..sql.len(), 0)];
    if first_cte.is_none() {
        sql.push_str("with ");
    }
    for (index, eph) in ordered.into_iter().enumerate() {
        parse_query(eph)?;
        let body = statement_range(&eph.sql);
        if index > 0 {
            sql.push_str(",\n");
        }
        sql.push_str(&format!(
            "{} as (\n",
            crate::source::quote_identifier(&eph.name)
        ));
        pieces.push(Piece {
            compiled: sql.len()..sql.len() + body.len(),
            rendered_start: body.start,
            file: eph.file.clone(),
            map: eph.source_map.clone(),
        });
        sql.push_str(&eph.sql[body]);
        sql.push_str("\n)");
    }
    sql.push_str(if first_cte.is_none() { "\n" } else { ",\n" });
    pieces.push(own_piece(
        sql.len()..sql.len() + model.sql.len() - insert_at,
        insert_at,
    ));
    sql.push_str(&model.sql[insert_at..]);
    let plan = ModelPlan {
        name: model.name.clone(),
        file: model.file.clone(),
        sql,
        config: model.config.clone(),
        upstream,
        sources,
        runs_queries: model.runs_queries,
        pieces,
        snapshot_query: None,
    };
    check_depth(&plan)?;
    Ok(finished(plan))
}

/// `plan` without the CTEs its query never reads (see [`unused`]); a snapshot's query as its
/// first run.
fn finished(mut plan: ModelPlan) -> ModelPlan {
    if let Some((sql, sources)) = unused::without_unused_ctes(&plan.sql, &plan.sources) {
        plan.sql = sql;
        plan.sources = sources;
    }
    match plan.config.snapshot.clone() {
        Some(snapshot) => snapshot::first_run(plan, &snapshot),
        None => plan,
    }
}

/// Check that a model's SQL is one query; returns where the first CTE of the query's own `WITH`
/// starts in the rendered SQL, if it has one.
fn parse_query(model: &RenderedModel) -> Result<Option<usize>, PlanError> {
    let sql = &model.sql;
    let in_template = |at: Option<Span>| {
        let (offset, len) = sql_range(sql, at);
        let at = model.source_map.to_template(offset, len).unwrap_or(0..0);
        (model.file.clone(), span(at, model.file.text().len()))
    };
    let parsed = Parser::parse_sql(&GenericDialect {}, sql);
    if let Err(ParserError::RecursionLimitExceeded) = parsed {
        let at = depth::deepest_parenthesis(sql);
        return Err(too_deep(
            &model.name,
            depth::Nesting::Parentheses,
            in_template(at),
        ));
    }
    if let Ok(statements) = &parsed
        && let Some(problem) = statements.iter().find_map(|s| depth::measure(s).err())
    {
        depth::release(parsed.unwrap_or_default(), true);
        return Err(too_deep(
            &model.name,
            problem.nesting,
            in_template(problem.at),
        ));
    }
    let statements = parsed.map_err(|error| {
        let message = error.to_string();
        let message = message.trim_start_matches("sql parser error: ");
        // sqlparser gives no position when the SQL ends too early: point at its last character.
        let (message, offset) = match sql_error_location(message) {
            Some((line, column, clean)) => (clean, SourceFile::offset_of(sql, line, column)),
            None => (
                message.to_string(),
                statement_range(sql).end.saturating_sub(1),
            ),
        };
        let at = model.source_map.to_template(offset, 1).unwrap_or(0..0);
        PlanError::Syntax {
            model: model.name.clone(),
            message,
            at: span(at, model.file.text().len()),
            src: model.file.named(),
        }
    })?;
    let [Statement::Query(query)] = statements.as_slice() else {
        let body = statement_range(sql);
        let first_word = sql[body.clone()].split_whitespace().next().unwrap_or("");
        let at = model
            .source_map
            .to_template(body.start, first_word.len())
            .unwrap_or(0..0);
        return Err(PlanError::NotAQuery {
            model: model.name.clone(),
            src: model.file.named(),
            at: span(at, model.file.text().len()),
        });
    };
    Ok(query
        .with
        .as_ref()
        .and_then(|with| with.cte_tables.first())
        .map(|cte| {
            let at = cte.alias.name.span.start;
            SourceFile::offset_of(sql, at.line, at.column)
        }))
}

/// The problem of `model` nesting too deep, at `at`.
fn too_deep(model: &str, nesting: depth::Nesting, at: (SourceFile, SourceSpan)) -> PlanError {
    let (file, at) = at;
    PlanError::TooDeep {
        model: model.to_string(),
        src: file.named(),
        at,
        label: nesting.label(),
        help: nesting.help(),
    }
}

/// The byte offset and length in `sql` of sqlparser's span `at`; without one, the first
/// character of the statement.
fn sql_range(sql: &str, at: Option<Span>) -> (usize, usize) {
    match at {
        Some(at) => {
            let start = SourceFile::offset_of(sql, at.start.line, at.start.column);
            let end = SourceFile::offset_of(sql, at.end.line, at.end.column);
            (start, end.saturating_sub(start).max(1))
        }
        None => (statement_range(sql).start, 1),
    }
}

/// Whether the compiled SQL of `plan` (its ephemeral models inlined, so each one that reads
/// another nests inside it) nests deeper than dp plans.
fn check_depth(plan: &ModelPlan) -> Result<(), PlanError> {
    // Each piece parsed on its own: a whole that does not is left to DataFusion to report.
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, &plan.sql) else {
        return Ok(());
    };
    match statements.iter().find_map(|s| depth::measure(s).err()) {
        None => Ok(()),
        Some(problem) => {
            depth::release(statements, true);
            let (offset, len) = sql_range(&plan.sql, problem.at);
            Err(too_deep(
                &plan.name,
                problem.nesting,
                plan.locate(offset, len),
            ))
        }
    }
}

/// Where the statement in `sql` starts and ends: without the blank space and comments around it,
/// and without a final `;`, so that it can stand inside a CTE.
fn statement_range(sql: &str) -> Range<usize> {
    let trimmed = || {
        let end = sql.trim_end().trim_end_matches(';').trim_end().len();
        (end - sql[..end].trim_start().len())..end
    };
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // Left for the parser to report.
        return trimmed();
    };
    let mut meaningful = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF));
    let Some(first) = meaningful.next() else {
        return trimmed();
    };
    let mut meaningful: Vec<_> = std::iter::once(first).chain(meaningful).collect();
    if meaningful.len() > 1
        && meaningful
            .last()
            .is_some_and(|t| t.token == Token::SemiColon)
    {
        meaningful.pop();
    }
    let last = meaningful.last().expect("holds the first token");
    let offset =
        |at: sqlparser::tokenizer::Location| SourceFile::offset_of(sql, at.line, at.column);
    offset(first.span.start)..offset(last.span.end)
}

/// The `Line: N, Column: M` that sqlparser and DataFusion put in their messages, and the message
/// without it.
pub fn sql_error_location(message: &str) -> Option<(u64, u64, String)> {
    let at = message.rfind("Line: ")?;
    let rest = &message[at + "Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let clean = message[..at]
        .trim_end()
        .trim_end_matches(" at")
        .trim_end_matches(',')
        .trim_start_matches("sql parser error: ")
        .to_string();
    Some((line.trim().parse().ok()?, column.parse().ok()?, clean))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render;

    /// Plan every model of a project made of `files` (path, text).
    fn plan_files(files: &[(&str, &str)]) -> Plan {
        let (plan, problems) = planned(files);
        assert!(problems.is_empty());
        plan
    }

    /// The plan of every model of a project made of `files`, and the problems found.
    fn planned(files: &[(&str, &str)]) -> (Plan, Vec<PlanError>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dp_project.yml"), "name: t\n").unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let project = crate::project::load(dir.path()).unwrap();
        let renderer = crate::render::Renderer::new(&project, &Default::default()).unwrap();
        let rendered = render(&renderer, &project, &Default::default());
        assert!(rendered.problems.is_empty());
        let graph = crate::graph::resolve(&project, &rendered.project).unwrap();
        let all = crate::graph::select(&graph, &[], &[]).unwrap();
        plan(&graph, &all)
    }

    /// The one problem of planning `files`: the model, what its label says, and the template
    /// text it points at.
    fn too_deep(files: &[(&str, &str)]) -> (String, String, String) {
        let (_, problems) = planned(files);
        let [
            PlanError::TooDeep {
                model,
                src,
                at,
                label,
                ..
            },
        ] = problems.as_slice()
        else {
            panic!("{problems:?}");
        };
        let path = src.name().to_string();
        let text = files.iter().find(|(p, _)| *p == path).unwrap().1;
        let pointed = &text[at.offset()..at.offset() + at.len()];
        (model.clone(), label.clone(), pointed.to_string())
    }

    #[test]
    fn a_chain_too_long_is_refused_at_the_template_text_that_wrote_it() {
        let (model, label, pointed) = too_deep(&[(
            "models/sum.sql",
            "select {% for i in range(10001) %}{{ i }} + {% endfor %}0 as x",
        )]);
        assert_eq!(model, "sum");
        assert_eq!(label, "this expression nests more than 10000 levels");
        assert_eq!(pointed, "i");
        // A chain as long as a loop over ids writes passes.
        let (plan, problems) = planned(&[(
            "models/ids.sql",
            "select 1 as x where {% for i in range(2000) %}x = {{ i }} or {% endfor %}false",
        )]);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(plan.models.len(), 1);
    }

    #[test]
    fn parentheses_past_the_parsers_limit_are_too_deep_at_the_innermost() {
        let (_, label, pointed) = too_deep(&[(
            "models/nested.sql",
            "select ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))))))))))))))))))))))))) as x",
        )]);
        assert_eq!(
            label,
            "parentheses and subqueries nest more than 50 levels here"
        );
        assert_eq!(pointed, "(");
    }

    #[test]
    fn ephemeral_models_inlined_as_ctes_count_in_the_chain_they_lengthen() {
        // The model's own chain of CTEs passes alone; five ephemeral models in front of it,
        // each reading the one before, take it past the limit.
        let chain = depth::MAX_QUERY_DEPTH - 2;
        let report = format!(
            "with c0 as (select x from {{{{ ref('eph5') }}}}){{% for i in range(1, {chain}) %}}, c{{{{ i }}}} as (select x from c{{{{ i - 1 }}}}){{% endfor %}} select x from c{}",
            chain - 1
        );
        let alone = report.replace("{{ ref('eph5') }}", "t");
        let mut files: Vec<(String, String)> = vec![
            ("models/report.sql".into(), report),
            (
                "models/eph1.sql".into(),
                "{{ config(materialized='ephemeral') }}select 1 as x".into(),
            ),
        ];
        for i in 2..=5 {
            files.push((
                format!("models/eph{i}.sql"),
                format!(
                    "{{{{ config(materialized='ephemeral') }}}}select x from {{{{ ref('eph{}') }}}}",
                    i - 1
                ),
            ));
        }
        fn refs(files: &[(String, String)]) -> Vec<(&str, &str)> {
            files
                .iter()
                .map(|(p, t)| (p.as_str(), t.as_str()))
                .collect()
        }
        let only = [(files[0].0.clone(), alone)];
        assert!(planned(&refs(&only)).1.is_empty());
        let (model, label, pointed) = too_deep(&refs(&files));
        assert_eq!(model, "report");
        assert_eq!(
            label,
            format!(
                "this reads a chain of CTEs more than {} levels deep",
                depth::MAX_QUERY_DEPTH
            )
        );
        assert_eq!(pointed, "c");
    }

    fn model<'a>(plan: &'a Plan, name: &str) -> &'a ModelPlan {
        plan.models.iter().find(|m| m.name == name).unwrap()
    }

    const EPHEMERALS: &[(&str, &str)] = &[
        ("models/base.sql", "select 1 as id, 'a' as kind"),
        (
            "models/eph_one.sql",
            "{{ config(materialized='ephemeral') }}\nselect id, kind from {{ ref('base') }}",
        ),
        (
            "models/eph_two.sql",
            "{{ config(materialized='view') }}\nselect id from {{ ref('eph_one') }} where kind = 'a'",
        ),
        (
            "models/report.sql",
            "with wanted as (\n  select id from {{ ref('eph_two') }}\n)\nselect count(*) as n from wanted;\n",
        ),
    ];

    #[test]
    fn ephemeral_models_are_inlined_as_ctes_before_the_models_own() {
        let plan = plan_files(EPHEMERALS);
        let report = model(&plan, "report");
        insta::assert_snapshot!(report.sql, @r#"
        with "eph_one" as (
        select id, kind from "base"
        ),
        "eph_two" as (
        select id from "eph_one" where kind = 'a'
        ),
        wanted as (
          select id from "eph_two"
        )
        select count(*) as n from wanted;
        "#);
        assert_eq!(report.upstream, BTreeSet::from(["base".to_string()]));
    }

    #[test]
    fn positions_in_compiled_sql_lead_back_to_the_file_that_wrote_them() {
        let plan = plan_files(EPHEMERALS);
        let report = model(&plan, "report");
        let at = |needle: &str| {
            let (file, span) = report.locate(report.sql.find(needle).unwrap(), needle.len());
            let text = &file.text()[span.offset()..span.offset() + span.len()];
            (file.path().display().to_string(), text.to_string())
        };
        assert_eq!(
            at("kind = 'a'"),
            ("models/eph_two.sql".into(), "kind = 'a'".into())
        );
        assert_eq!(
            at("count(*)"),
            ("models/report.sql".into(), "count(*)".into())
        );
        // Output of a template expression maps to the whole expression.
        assert_eq!(
            at("\"eph_two\"\n)"),
            ("models/report.sql".into(), "ref('eph_two')".into())
        );
    }

    #[test]
    fn an_ephemeral_ending_in_a_semicolon_and_a_comment_inlines_cleanly() {
        let plan = plan_files(&[
            (
                "models/eph.sql",
                "{{ config(materialized='ephemeral') }}\n-- leading\nselect 1 as id; -- trailing\n",
            ),
            ("models/uses.sql", "select id from {{ ref('eph') }}"),
        ]);
        let uses = model(&plan, "uses");
        assert_eq!(
            uses.sql,
            "with \"eph\" as (\nselect 1 as id\n)\nselect id from \"eph\""
        );
        assert!(Parser::parse_sql(&GenericDialect {}, &uses.sql).is_ok());
    }

    #[test]
    fn a_model_without_ephemeral_parents_runs_its_rendered_sql_as_is() {
        let plan = plan_files(EPHEMERALS);
        assert_eq!(model(&plan, "base").sql, "select 1 as id, 'a' as kind");
    }
}
