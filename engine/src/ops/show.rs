//! What a user asks of the published warehouse without building: `dp show` (the first rows of
//! a model's query or of an inline query) and `dp run-operation` (a macro called with its
//! arguments). Each query's tables are registered as it names them: a model's published
//! table, a view's query over what it reads, a source. Nothing is written.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use super::OpsError;
use crate::audit::{Published, register_published, view_plan};
use crate::compile::ModelPlan;
use crate::graph::ModelGraph;
use crate::project::{NodeId, Project, SourceTable};
use crate::render::{RenderContext, RenderError, RenderedModel, Renderer};
use crate::session::{BeforeQuery, QueryEngine, SourceScans, Warehouse};

/// What `dp show` previews.
#[derive(Debug, Clone)]
pub enum ShowQuery {
    /// A model's query, as the run's vars render it.
    Model(String),
    /// A query given on the command line; it may call `ref()`, `source()` and macros.
    Inline(String),
}

/// What `dp run-operation` did.
#[derive(Debug, Default)]
pub struct Operation {
    /// What the macro's `log(..., info=True)` and `print()` calls said, in order.
    pub messages: Vec<String>,
}

/// What reading the published warehouse needs of a prepared run.
pub struct Reader<'a> {
    pub project: &'a Project,
    pub renderer: &'a Renderer,
    /// The models that rendered.
    pub graph: &'a ModelGraph,
    /// The run's vars and target.
    pub context: &'a RenderContext,
    pub engine: Arc<dyn QueryEngine>,
    pub warehouse: Warehouse,
    pub memory_limit: Option<usize>,
    /// The models that did not render, with why.
    pub render_problems: &'a [(String, RenderError)],
    /// The models left out for reading one that did not render, with that one.
    pub left_out: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    /// The first `limit` rows of `query`, read from the published tables it names.
    pub async fn show(
        &self,
        query: &ShowQuery,
        limit: usize,
    ) -> Result<Vec<RecordBatch>, OpsError> {
        let (session, relations) = (self.warehouse_session(), Arc::new(self.relations()));
        let context = RenderContext {
            queries: Some(crate::session::query_runner(
                &session,
                Some(relations.clone()),
            )),
            ..self.context.clone()
        };
        let rendered = match query {
            ShowQuery::Model(name) => self.model_to_show(name, &context)?,
            ShowQuery::Inline(text) => {
                let (rendered, _) =
                    self.renderer
                        .render_inline(self.project, "inline_query", text, &context);
                rendered?
            }
        };
        let sql = rendered.sql.trim().trim_end_matches(';');
        let failed = |message: String| OpsError::Query {
            name: rendered.name.clone(),
            message,
        };
        relations.register(&session, sql).await.map_err(failed)?;
        let frame = crate::session::read_query(&session, sql)
            .await
            .and_then(|frame| frame.limit(0, Some(limit)))
            .map_err(|e| failed(e.strip_backtrace()))?;
        frame
            .collect()
            .await
            .map_err(|e| failed(e.strip_backtrace()))
    }

    /// Call the macro `name` (`package.name` or bare, as a model would) with `args`, a YAML
    /// mapping of its keyword arguments, its queries answered from the published tables.
    pub async fn run_operation(&self, name: &str, args: &str) -> Result<Operation, OpsError> {
        if !self.renderer.has_macro(name) {
            return Err(OpsError::UnknownMacro {
                name: name.to_string(),
                // A bare name is compared with bare names.
                did_you_mean: crate::source::did_you_mean(
                    name,
                    self.renderer
                        .macro_names()
                        .iter()
                        .map(|qualified| match name.contains('.') {
                            true => qualified.as_str(),
                            false => qualified.rsplit('.').next().unwrap_or(qualified),
                        }),
                ),
            });
        }
        let invalid = |message: String| OpsError::InvalidArgs { message };
        let args: serde_json::Map<String, serde_json::Value> = match args.trim() {
            "" => serde_json::Map::new(),
            text => serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?,
        };
        let args = serde_json::to_string(&args).map_err(|e| invalid(e.to_string()))?;
        // The arguments reach the macro as one JSON string literal.
        let quoted = args.replace('\\', "\\\\").replace('\'', "\\'");
        let call = format!("{{{{ {name}(**fromjson('{quoted}')) }}}}");
        let (session, relations) = (self.warehouse_session(), Arc::new(self.relations()));
        let context = RenderContext {
            queries: Some(crate::session::query_runner(
                &session,
                Some(relations.clone()),
            )),
            ..self.context.clone()
        };
        let (rendered, messages) =
            self.renderer
                .render_inline(self.project, "run_operation", &call, &context);
        rendered?;
        Ok(Operation { messages })
    }

    /// A session over the target's warehouse, in the project's dialect.
    fn warehouse_session(&self) -> SessionContext {
        let runtime = crate::session::runtime_env(self.memory_limit);
        self.engine.project_session(&runtime, self.project)
    }

    /// The rendered query of model `name`, rendered again with its queries answered when it
    /// runs any.
    fn model_to_show(
        &self,
        name: &str,
        context: &RenderContext,
    ) -> Result<RenderedModel, OpsError> {
        if let Some((_, problem)) = self.render_problems.iter().find(|(n, _)| n == name) {
            return Err(problem.clone().into());
        }
        let Some(model) = self.graph.models.get(name) else {
            return Err(match self.left_out.get(name) {
                Some(upstream) => OpsError::Query {
                    name: name.to_string(),
                    message: format!("it reads `{upstream}`, which does not render"),
                },
                None => OpsError::UnknownModel {
                    name: name.to_string(),
                    did_you_mean: crate::source::did_you_mean(
                        name,
                        self.project.models.keys().map(String::as_str),
                    ),
                },
            });
        };
        if !model.runs_queries {
            return Ok(model.clone());
        }
        Ok(self
            .renderer
            .render_model(self.project, &self.project.models[name], context)?)
    }

    /// The published relations of the target, registered as queries name them.
    fn relations(&self) -> Relations {
        Relations {
            engine: self.engine.clone(),
            warehouse: self.warehouse.clone(),
            sources: self.project.sources.clone(),
            views: self
                .graph
                .models
                .keys()
                .filter_map(|name| Some((name.clone(), view_plan(self.graph, name)?)))
                .collect(),
            models: self.project.models.keys().cloned().collect(),
            scans: SourceScans::default(),
        }
    }
}

/// The published relations a session may read, registered when a query names them.
struct Relations {
    engine: Arc<dyn QueryEngine>,
    warehouse: Warehouse,
    sources: BTreeMap<String, SourceTable>,
    /// The project's views, as their plans.
    views: BTreeMap<String, ModelPlan>,
    models: std::collections::BTreeSet<String>,
    scans: SourceScans,
}

#[async_trait::async_trait]
impl BeforeQuery for Relations {
    async fn before(&self, session: &SessionContext, sql: &str) -> Result<(), String> {
        self.register(session, sql).await
    }
}

impl Relations {
    /// Register in `session` each model and source `sql` names that is not registered yet.
    async fn register(&self, session: &SessionContext, sql: &str) -> Result<(), String> {
        let state = session.state();
        let dialect = state.config().options().sql_parser.dialect;
        let named = state
            .sql_to_statement(sql, &dialect)
            .and_then(|statement| state.resolve_table_references(&statement))
            .map_err(|e| e.strip_backtrace())?;
        let published = Published {
            engine: self.engine.as_ref(),
            warehouse: &self.warehouse,
            sources: &self.sources,
            scans: &self.scans,
        };
        for reference in named {
            let relation = match &reference {
                TableReference::Bare { table } if self.models.contains(table.as_ref()) => {
                    NodeId::Model(table.to_string())
                }
                TableReference::Partial { schema, table } => {
                    let id = format!("{schema}.{table}");
                    if !self.sources.contains_key(&id) {
                        continue;
                    }
                    NodeId::Source(id)
                }
                _ => continue,
            };
            if session.table_exist(reference.clone()).unwrap_or(false) {
                continue;
            }
            let view = match &relation {
                NodeId::Model(name) => self.views.get(name),
                NodeId::Source(_) => None,
            };
            register_published(session, &relation, view, &published).await?;
        }
        Ok(())
    }
}
