//! AUDIT: the tests of a view. A `view` (an `ephemeral` model) has no table: its data tests,
//! the singular tests that read it and the relationships tests that point at it run on its
//! query, registered in the test's session under the view's name over the relations it reads.
//! In: the run's graph. Out: the view's plan, and its query registered.

use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;

use crate::compile::ModelPlan;
use crate::graph::ModelGraph;

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
