//! AUDIT: the tests of a view. A `view` (an `ephemeral` model) has no table: its data tests,
//! the singular tests that read it and the relationships tests that point at it run on its
//! query, registered in the test's session under the view's name over the relations it reads.
//! In: the run's graph. Out: the view's plan, and its query registered.

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use crate::compile::ModelPlan;
use crate::graph::ModelGraph;
use crate::project::NodeId;

/// The plan of `name` when it is a view of `graph`: its query (with the views it reads
/// inlined), and the stored models and sources it reads. `None` for a stored model, or a view
/// whose SQL does not parse (its readers fail the same way, and the check reports it).
pub fn view_plan(graph: &ModelGraph, name: &str) -> Option<ModelPlan> {
    let model = graph.models.get(name)?;
    if !model.config.is_ephemeral() {
        return None;
    }
    crate::compile::plan_model(&|parent| graph.models.get(parent), model).ok()
}

/// Register `view`'s query in `session` under the view's name; the relations it reads must be
/// registered already.
pub async fn register_view(
    session: &SessionContext,
    view: &ModelPlan,
) -> datafusion::error::Result<()> {
    let frame = crate::session::read_query(session, &view.sql).await?;
    session.register_table(TableReference::bare(view.name.as_str()), frame.into_view())?;
    Ok(())
}

/// What reading published relations needs: where queries run, the warehouse, the project's
/// sources, and the record of source scans.
pub struct Published<'a> {
    pub engine: &'a dyn crate::session::QueryEngine,
    pub warehouse: &'a crate::session::Warehouse,
    pub sources: &'a std::collections::BTreeMap<String, crate::project::SourceTable>,
    pub scans: &'a crate::session::SourceScans,
}

/// Register `relation` in `session` as it is published: a stored model's table, a source, or,
/// for a view (`view`, from [`view_plan`]), its query over the published relations it reads.
pub async fn register_published(
    session: &SessionContext,
    relation: &NodeId,
    view: Option<&ModelPlan>,
    published: &Published<'_>,
) -> Result<(), String> {
    let reads: Vec<NodeId> = match view {
        Some(view) => view
            .sources
            .iter()
            .map(|id| NodeId::Source(id.clone()))
            .chain(view.upstream.iter().map(|m| NodeId::Model(m.clone())))
            .collect(),
        None => vec![relation.clone()],
    };
    for relation in &reads {
        crate::session::register_relation(
            published.engine,
            session,
            relation,
            published.warehouse,
            published.sources,
            published.scans,
        )
        .await
        .map_err(|error| error.to_string())?;
    }
    if let Some(view) = view {
        register_view(session, view).await.map_err(|error| {
            format!(
                "view `{}` cannot be read: {}",
                view.name,
                error.strip_backtrace()
            )
        })?;
    }
    Ok(())
}
