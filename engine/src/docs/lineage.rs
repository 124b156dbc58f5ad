//! Column lineage read off a model's logical plan: for every output column, the columns of the
//! relations the model reads that it is derived from, and how; and the columns that decide which
//! rows appear (WHERE, JOIN, GROUP BY, HAVING, QUALIFY) without flowing into a column.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType, TableReference};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan};
use serde::Serialize;

use crate::graph::NodeId;

/// How an output column is derived from an upstream column, weakest first: a column derived
/// along several steps is as strong as its strongest step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// The same value, under the same name.
    Passthrough,
    /// The same value, under another name.
    Renamed,
    /// The value cast to another type.
    Cast,
    /// Computed by an expression of this and perhaps other columns.
    Computed,
    /// Computed by a window function.
    Windowed,
    /// Computed by an aggregate function.
    Aggregated,
}

/// The clause through which a column decides which rows appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clause {
    Where,
    Join,
    GroupBy,
    Having,
    Qualify,
}

/// A column of a relation a model reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpstreamColumn {
    pub node: NodeId,
    pub column: String,
}

/// The upstream columns one column is derived from, each with how.
pub type Origins = BTreeMap<UpstreamColumn, How>;

/// The lineage of one model's output.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelLineage {
    /// Every output column, in output order, with what it is derived from.
    pub columns: Vec<(String, Origins)>,
    /// The upstream columns that decide which rows appear, and through which clause.
    pub row_filters: BTreeSet<(UpstreamColumn, Clause)>,
}

/// The lineage of `plan`, a model's unoptimized logical plan; `relation` names the node a
/// scanned table is (a model, an ephemeral model or a source), `None` for anything else.
pub fn trace(
    plan: &LogicalPlan,
    relation: &dyn Fn(&TableReference) -> Option<NodeId>,
) -> ModelLineage {
    let mut tracer = Tracer {
        relation,
        row_filters: BTreeSet::new(),
    };
    let traced = tracer.plan(plan);
    let columns = plan
        .schema()
        .fields()
        .iter()
        .zip(traced)
        .map(|(field, origins)| {
            let named = |upstream: &UpstreamColumn, how: How| match how {
                How::Passthrough if upstream.column != *field.name() => How::Renamed,
                how => how,
            };
            let origins = origins
                .into_iter()
                .map(|(upstream, how)| {
                    let how = named(&upstream, how);
                    (upstream, how)
                })
                .collect();
            (field.name().clone(), origins)
        })
        .collect();
    ModelLineage {
        columns,
        row_filters: tracer.row_filters,
    }
}

struct Tracer<'a> {
    relation: &'a dyn Fn(&TableReference) -> Option<NodeId>,
    row_filters: BTreeSet<(UpstreamColumn, Clause)>,
}

/// The inputs of a plan node an expression's columns are looked up in.
type Scope<'a> = [(&'a DFSchema, &'a [Origins])];

impl Tracer<'_> {
    /// The origins of each output column of `plan`.
    fn plan(&mut self, plan: &LogicalPlan) -> Vec<Origins> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let node = (self.relation)(&scan.table_name);
                plan.schema()
                    .fields()
                    .iter()
                    .map(|field| {
                        node.iter()
                            .map(|node| {
                                let column = UpstreamColumn {
                                    node: node.clone(),
                                    column: field.name().clone(),
                                };
                                (column, How::Passthrough)
                            })
                            .collect()
                    })
                    .collect()
            }
            LogicalPlan::Projection(projection) => {
                let input = self.plan(&projection.input);
                let scope = [(projection.input.schema().as_ref(), input.as_slice())];
                projection
                    .expr
                    .iter()
                    .map(|expr| self.expr(expr, &scope))
                    .collect()
            }
            LogicalPlan::Filter(filter) => {
                let input = self.plan(&filter.input);
                let clause = match filter.input.as_ref() {
                    LogicalPlan::Aggregate(_) => Clause::Having,
                    LogicalPlan::Window(_) => Clause::Qualify,
                    _ => Clause::Where,
                };
                let scope = [(filter.input.schema().as_ref(), input.as_slice())];
                self.decides_rows(&filter.predicate, &scope, clause);
                input
            }
            LogicalPlan::Window(window) => {
                let input = self.plan(&window.input);
                let scope = [(window.input.schema().as_ref(), input.as_slice())];
                let windowed: Vec<Origins> = window
                    .window_expr
                    .iter()
                    .map(|expr| self.expr(expr, &scope))
                    .collect();
                input.iter().cloned().chain(windowed).collect()
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.plan(&aggregate.input);
                let scope = [(aggregate.input.schema().as_ref(), input.as_slice())];
                let groups = grouping_set_to_exprlist(&aggregate.group_expr).unwrap_or_default();
                let mut out: Vec<Origins> = Vec::new();
                for group in &groups {
                    self.decides_rows(group, &scope, Clause::GroupBy);
                    out.push(self.expr(group, &scope));
                }
                // A grouping set adds its grouping id after the groups.
                let added = plan
                    .schema()
                    .fields()
                    .len()
                    .saturating_sub(groups.len() + aggregate.aggr_expr.len());
                out.extend((0..added).map(|_| Origins::new()));
                for expr in &aggregate.aggr_expr {
                    out.push(self.expr(expr, &scope));
                }
                out
            }
            LogicalPlan::Join(join) => {
                let left = self.plan(&join.left);
                let right = self.plan(&join.right);
                let scope = [
                    (join.left.schema().as_ref(), left.as_slice()),
                    (join.right.schema().as_ref(), right.as_slice()),
                ];
                for (l, r) in &join.on {
                    self.decides_rows(l, &scope, Clause::Join);
                    self.decides_rows(r, &scope, Clause::Join);
                }
                if let Some(filter) = &join.filter {
                    self.decides_rows(filter, &scope, Clause::Join);
                }
                let width = plan.schema().fields().len();
                let mut out: Vec<Origins> = match join.join_type {
                    JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right,
                    JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left,
                    _ => left.into_iter().chain(right).collect(),
                };
                // A mark join's mark column comes from no column.
                out.resize(width, Origins::new());
                out
            }
            LogicalPlan::Union(union) => {
                let mut out = vec![Origins::new(); plan.schema().fields().len()];
                for input in &union.inputs {
                    for (merged, origins) in out.iter_mut().zip(self.plan(input)) {
                        merge(merged, origins, How::Passthrough);
                    }
                }
                out
            }
            LogicalPlan::Distinct(Distinct::On(on)) => {
                let input = self.plan(&on.input);
                let scope = [(on.input.schema().as_ref(), input.as_slice())];
                for expr in &on.on_expr {
                    self.decides_rows(expr, &scope, Clause::GroupBy);
                }
                on.select_expr
                    .iter()
                    .map(|expr| self.expr(expr, &scope))
                    .collect()
            }
            LogicalPlan::RecursiveQuery(recursive) => {
                let mut out = self.plan(&recursive.static_term);
                for (merged, origins) in out.iter_mut().zip(self.plan(&recursive.recursive_term)) {
                    merge(merged, origins, How::Passthrough);
                }
                out
            }
            LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Subquery(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Repartition(_)
            | LogicalPlan::Distinct(Distinct::All(_))
                if plan.inputs().len() == 1 =>
            {
                self.plan(plan.inputs()[0])
            }
            // Anything else (VALUES, UNNEST, an extension): each output column is computed from
            // every input column.
            other => {
                let mut all = Origins::new();
                for input in other.inputs() {
                    for origins in self.plan(input) {
                        merge(&mut all, origins, How::Computed);
                    }
                }
                vec![all; plan.schema().fields().len()]
            }
        }
    }

    /// The origins of an expression over `scope`.
    fn expr(&mut self, expr: &Expr, scope: &Scope<'_>) -> Origins {
        let how = how(expr);
        let mut origins = Origins::new();
        for column in expr.column_refs() {
            merge(&mut origins, lookup(scope, column), how);
        }
        for subquery in subqueries(expr) {
            for from in self.plan(subquery) {
                merge(&mut origins, from, How::Computed.max(how));
            }
        }
        origins
    }

    /// Record the origins of `expr` as deciding which rows appear.
    fn decides_rows(&mut self, expr: &Expr, scope: &Scope<'_>, clause: Clause) {
        let origins = self.expr(expr, scope);
        self.row_filters
            .extend(origins.into_keys().map(|column| (column, clause)));
    }
}

/// Add `from` to `into`, each at least as strong as `how`.
fn merge(into: &mut Origins, from: Origins, how: How) {
    for (column, was) in from {
        let how = was.max(how);
        let entry = into.entry(column).or_insert(how);
        *entry = (*entry).max(how);
    }
}

/// The origins of `column` in whichever input of `scope` has it.
fn lookup(scope: &Scope<'_>, column: &Column) -> Origins {
    scope
        .iter()
        .find_map(|(schema, origins)| {
            let index = schema.maybe_index_of_column(column)?;
            origins.get(index).cloned()
        })
        .unwrap_or_default()
}

/// How an expression derives its value from the columns it reads.
fn how(expr: &Expr) -> How {
    let mut found = match expr.clone().unalias_nested().data {
        Expr::Column(_) => How::Passthrough,
        Expr::Cast(cast) if matches!(cast.expr.as_ref(), Expr::Column(_)) => How::Cast,
        Expr::TryCast(cast) if matches!(cast.expr.as_ref(), Expr::Column(_)) => How::Cast,
        _ => How::Computed,
    };
    let _ = expr.apply(|e| {
        match e {
            Expr::AggregateFunction(_) => found = found.max(How::Aggregated),
            Expr::WindowFunction(_) => found = found.max(How::Windowed),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The plans of the subqueries an expression holds.
fn subqueries(expr: &Expr) -> Vec<&LogicalPlan> {
    let mut found = Vec::new();
    let _ = expr.apply(|e| {
        match e {
            Expr::ScalarSubquery(subquery) => found.push(subquery.subquery.as_ref()),
            Expr::InSubquery(in_subquery) => found.push(in_subquery.subquery.subquery.as_ref()),
            Expr::Exists(exists) => found.push(exists.subquery.subquery.as_ref()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}
