//! Column lineage read off a model's logical plan: for every output column, the columns of the
//! relations the model reads that it is derived from, and how; and the columns that decide which
//! rows appear (WHERE, JOIN, GROUP BY, HAVING, QUALIFY) without flowing into a column.

use std::collections::{BTreeMap, BTreeSet};

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchema, JoinType};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{Distinct, Expr, LogicalPlan, TableScan};
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
    /// A `WHERE` condition (also one of a subquery in `FROM`).
    Where,
    /// A join's `ON` (or `USING`) condition.
    Join,
    /// A `GROUP BY` expression (or `DISTINCT ON`).
    GroupBy,
    /// A `HAVING` condition.
    Having,
    /// A `QUALIFY` condition.
    Qualify,
}

/// A column of a relation a model reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UpstreamColumn {
    /// The model, ephemeral model or source table.
    pub node: NodeId,
    /// The column's name there.
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
/// table scan reads (a model, an ephemeral model or a source), `None` for anything else (a
/// recursive CTE's own rows, a table function).
pub fn trace(plan: &LogicalPlan, relation: &dyn Fn(&TableScan) -> Option<NodeId>) -> ModelLineage {
    let mut tracer = Tracer {
        relation,
        row_filters: BTreeSet::new(),
        outer: Vec::new(),
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
    relation: &'a dyn Fn(&TableScan) -> Option<NodeId>,
    row_filters: BTreeSet<(UpstreamColumn, Clause)>,
    /// The scopes of the queries a subquery being traced sits in, innermost last: its outer
    /// references are looked up there.
    outer: Vec<Vec<(DFSchema, Vec<Origins>)>>,
}

/// The inputs of a plan node an expression's columns are looked up in.
type Scope<'a> = [(&'a DFSchema, &'a [Origins])];

impl Tracer<'_> {
    /// The origins of each output column of `plan`.
    fn plan(&mut self, plan: &LogicalPlan) -> Vec<Origins> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                let node = (self.relation)(scan);
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
                // DataFusion's SQL planner puts HAVING right over the aggregate and QUALIFY
                // right over the window functions.
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
            LogicalPlan::Unnest(unnest) => {
                let input = self.plan(&unnest.input);
                let unnested: BTreeSet<usize> = unnest
                    .list_type_columns
                    .iter()
                    .map(|(index, _)| *index)
                    .chain(unnest.struct_type_columns.iter().copied())
                    .collect();
                unnest
                    .dependency_indices
                    .iter()
                    .map(|&index| {
                        let mut origins = Origins::new();
                        let how = match unnested.contains(&index) {
                            true => How::Computed,
                            false => How::Passthrough,
                        };
                        merge(
                            &mut origins,
                            input.get(index).cloned().unwrap_or_default(),
                            how,
                        );
                        origins
                    })
                    .collect()
            }
            // The recursive term reads the CTE's own rows, which no relation names: its columns
            // add what else they read to the static term's.
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

    /// The origins of an expression over `scope`. A subquery's value depends on what it reads
    /// and on the columns that decide its rows; its outer references are looked up in `scope`.
    fn expr(&mut self, expr: &Expr, scope: &Scope<'_>) -> Origins {
        let how = how(expr);
        let mut origins = Origins::new();
        for column in expr.column_refs() {
            merge(&mut origins, lookup(scope, column), how);
        }
        for column in outer_references(expr) {
            let found = self
                .outer
                .iter()
                .rev()
                .map(|scope| {
                    let borrowed: Vec<(&DFSchema, &[Origins])> =
                        scope.iter().map(|(s, o)| (s, o.as_slice())).collect();
                    lookup(&borrowed, column)
                })
                .find(|origins| !origins.is_empty())
                .unwrap_or_default();
            merge(&mut origins, found, How::Computed);
        }
        let subqueries = subqueries(expr);
        if !subqueries.is_empty() {
            self.outer.push(
                scope
                    .iter()
                    .map(|(schema, origins)| ((*schema).clone(), origins.to_vec()))
                    .collect(),
            );
            let outside = std::mem::take(&mut self.row_filters);
            for subquery in subqueries {
                for from in self.plan(subquery) {
                    merge(&mut origins, from, How::Computed.max(how));
                }
            }
            let inside = std::mem::replace(&mut self.row_filters, outside);
            let deciding = inside
                .into_iter()
                .map(|(column, _)| (column, How::Computed));
            merge(&mut origins, deciding.collect(), How::Computed);
            self.outer.pop();
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
            Expr::SetComparison(comparison) => found.push(comparison.subquery.subquery.as_ref()),
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The columns of enclosing queries a (correlated) subquery's expression reads.
fn outer_references(expr: &Expr) -> Vec<&Column> {
    let mut found = Vec::new();
    let _ = expr.apply(|e| {
        if let Expr::OuterReferenceColumn(_, column) = e {
            found.push(column);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// The lineage of `sql` over models `a(id, k, x, tags)` and `b(id, k, y)`: each output
    /// column with `model.column:how` of its origins, and the row filters as `model.column:clause`.
    async fn lineage_of(sql: &str) -> (Vec<(String, Vec<String>)>, Vec<String>) {
        let session = SessionContext::new();
        let a = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("x", DataType::Int64, true),
            Field::new_list("tags", Field::new_list_field(DataType::Utf8, true), true),
        ]);
        let b = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("y", DataType::Int64, true),
        ]);
        for (name, schema) in [("a", a), ("b", b)] {
            let table = MemTable::try_new(Arc::new(schema), vec![vec![]]).unwrap();
            session.register_table(name, Arc::new(table)).unwrap();
        }
        let plan = session.state().create_logical_plan(sql).await.unwrap();
        let relation = |scan: &TableScan| {
            let name = scan.table_name.table();
            ["a", "b"]
                .contains(&name)
                .then(|| NodeId::Model(name.into()))
        };
        let lineage = trace(&plan, &relation);
        let name = |c: &UpstreamColumn| format!("{}.{}", c.node, c.column);
        let columns = lineage
            .columns
            .iter()
            .map(|(column, origins)| {
                let origins = origins
                    .iter()
                    .map(|(from, how)| format!("{}:{}", name(from), json(how)))
                    .collect();
                (column.clone(), origins)
            })
            .collect();
        let filters = lineage
            .row_filters
            .iter()
            .map(|(from, clause)| format!("{}:{}", name(from), json(clause)))
            .collect();
        (columns, filters)
    }

    fn json(value: &impl Serialize) -> String {
        serde_json::to_value(value)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    fn column(name: &str, origins: &[&str]) -> (String, Vec<String>) {
        (name.into(), origins.iter().map(|o| o.to_string()).collect())
    }

    #[tokio::test]
    async fn a_column_computed_from_two_inputs_lists_both() {
        let (columns, filters) =
            lineage_of("select a.x + b.y as t from a join b on a.id = b.id").await;
        assert_eq!(columns, [column("t", &["a.x:computed", "b.y:computed"])]);
        assert_eq!(filters, ["a.id:join", "b.id:join"]);
    }

    #[tokio::test]
    async fn using_and_semi_joins_keep_their_sides() {
        let (columns, filters) = lineage_of("select a.id, b.y from a join b using (id)").await;
        assert_eq!(
            columns,
            [
                column("id", &["a.id:passthrough"]),
                column("y", &["b.y:passthrough"])
            ]
        );
        assert_eq!(filters, ["a.id:join", "b.id:join"]);
        let (columns, filters) =
            lineage_of("select a.id from a left semi join b on a.k = b.k").await;
        assert_eq!(columns, [column("id", &["a.id:passthrough"])]);
        assert_eq!(filters, ["a.k:join", "b.k:join"]);
    }

    #[tokio::test]
    async fn grouping_sets_and_distinct_on_line_up_with_their_outputs() {
        let (columns, filters) =
            lineage_of("select k, id, sum(x) as s from a group by rollup (k, id)").await;
        assert_eq!(
            columns,
            [
                column("k", &["a.k:passthrough"]),
                column("id", &["a.id:passthrough"]),
                column("s", &["a.x:aggregated"]),
            ]
        );
        assert_eq!(filters, ["a.id:group_by", "a.k:group_by"]);
        let (columns, filters) =
            lineage_of("select distinct on (k) id, x from a order by k, x").await;
        assert_eq!(
            columns,
            [
                column("id", &["a.id:passthrough"]),
                column("x", &["a.x:passthrough"])
            ]
        );
        assert_eq!(filters, ["a.k:group_by"]);
    }

    #[tokio::test]
    async fn a_recursive_cte_takes_its_static_terms_lineage() {
        let (columns, _) = lineage_of(
            "with recursive r as (select id, x from a union all \
             select id, x + 1 from r where x < 10) select id, x from r",
        )
        .await;
        assert_eq!(
            columns,
            [
                column("id", &["a.id:passthrough"]),
                column("x", &["a.x:passthrough"])
            ]
        );
    }

    #[tokio::test]
    async fn unnest_computes_only_the_unnested_column() {
        let (columns, _) = lineage_of("select id, unnest(tags) as tag from a").await;
        assert_eq!(
            columns,
            [
                column("id", &["a.id:passthrough"]),
                column("tag", &["a.tags:computed"])
            ]
        );
    }

    #[tokio::test]
    async fn correlated_subqueries_read_their_outer_columns() {
        // A value: what the subquery reads and what decides its rows, not the model's rows.
        let (columns, filters) =
            lineage_of("select id, (select count(*) from b where b.k = a.k) as n from a").await;
        assert_eq!(
            columns,
            [
                column("id", &["a.id:passthrough"]),
                column("n", &["a.k:computed", "b.k:computed"]),
            ]
        );
        assert!(filters.is_empty(), "{filters:?}");
        // A condition: it decides the model's rows.
        let (_, filters) =
            lineage_of("select id from a where exists (select 1 from b where b.id = a.id)").await;
        assert_eq!(filters, ["a.id:where", "b.id:where"]);
        let (_, filters) = lineage_of("select id from a where x > any (select y from b)").await;
        assert_eq!(filters, ["a.x:where", "b.y:where"]);
    }

    #[tokio::test]
    async fn values_come_from_no_column() {
        let (columns, _) = lineage_of("select id from a union all values (1)").await;
        assert_eq!(columns, [column("id", &["a.id:passthrough"])]);
    }
}
