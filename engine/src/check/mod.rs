//! CHECK: every model planned by DataFusion from schemas alone, without reading a data row.
//! Sources' columns come from their declared types or their files' footers (or a Delta log);
//! a model's upstream models stand in as empty tables with the schemas planned for them. What
//! a model declares about its output (partition columns, tested columns, an enforced contract)
//! is checked against the planned schema.

mod dialect;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use miette::SourceSpan;
use tokio::task::JoinSet;

use crate::audit::{InContext, UnitTestInputs};
use crate::compile::{ModelPlan, Plan};
use crate::graph::Scheduler;
use crate::project::{DataTestKind, NodeId, Project};
use crate::render::RenderError;
use crate::session::contract::{Contract, check_contract, sql_type};
use crate::session::{
    Embedded, QueryEngine, SessionError, SourceScans, Stores, Warehouse, register_relation,
    source_reference, sql_error,
};

/// A mistake found by planning a model.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum CheckError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Session(#[from] SessionError),

    #[error("`{model}` is partitioned by `{column}`, which it does not output")]
    #[diagnostic(code(dp::partition_column))]
    PartitionColumn {
        model: String,
        column: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("not among its columns")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    #[error("`{model}` is partitioned by `{column}`, a {kind} column: a partition holds one value")]
    #[diagnostic(
        code(dp::partition_type),
        help(
            "Delta partitions by columns of a plain type (string, number, date, timestamp, boolean, binary), never a list, struct or map: partition by a plain column, or output the part to partition by as a column of its own"
        )
    )]
    PartitionType {
        model: String,
        column: String,
        /// `list`, `struct`, `map` or `union`.
        kind: &'static str,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("not a plain column")]
        at: SourceSpan,
    },

    #[error("test `{test}` relates `{model}` to `{to}`, which reads `{model}`: {cycle}")]
    #[diagnostic(
        code(dp::relationship_cycle),
        help(
            "a relationships test waits for the model it relates to; that model waits for this one, so neither could build; test the relationship on the downstream model instead"
        )
    )]
    RelationshipCycle {
        test: String,
        model: String,
        to: String,
        cycle: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("this test")]
        at: SourceSpan,
    },

    #[error("`{model}` outputs a column Delta cannot store: {message}")]
    #[diagnostic(
        code(dp::unstorable_column),
        help(
            "cast it in the model's SQL to a type Delta stores (such as varchar, bigint, timestamp)"
        )
    )]
    Unstorable {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("this query")]
        at: SourceSpan,
    },

    #[error("unit test `{test}`: {message}")]
    #[diagnostic(code(dp::unit_test))]
    UnitTest {
        test: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
        #[help]
        help: Option<String>,
    },

    #[error("`{data_type}` is not a type DataFusion knows: {message}")]
    #[diagnostic(
        code(dp::unknown_type),
        help("a SQL type such as bigint, varchar, double, decimal(10,2), date or timestamp")
    )]
    UnknownType {
        data_type: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("declared here")]
        at: SourceSpan,
    },

    #[error(transparent)]
    #[diagnostic(transparent)]
    IntegerDivision(#[from] dialect::IntegerDivision),

    #[error(transparent)]
    #[diagnostic(transparent)]
    TruncatingCast(#[from] dialect::TruncatingCast),

    #[error(transparent)]
    #[diagnostic(transparent)]
    UnaliasedColumn(#[from] dialect::UnaliasedColumn),

    #[error("`{model}` does not render for its incremental runs: {message}")]
    #[diagnostic(
        code(dp::incremental_render),
        help(
            "is_incremental() is true in the runs after the first: check that branch of the template"
        )
    )]
    IncrementalBranch {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("here")]
        at: SourceSpan,
    },

    #[error("column `{column}` of `{model}` is documented, and `{model}` does not output it")]
    #[diagnostic(code(dp::unproduced_column), severity(Warning))]
    UnproducedColumn {
        model: String,
        column: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("not among its columns")]
        at: SourceSpan,
        #[help]
        help: String,
    },

    #[error("test `{test}` is on column `{column}`, which `{model}` does not output")]
    #[diagnostic(code(dp::test_column))]
    TestColumn {
        test: String,
        model: String,
        column: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("no such column")]
        at: SourceSpan,
        #[help]
        help: String,
    },
}

/// Plan every model of `plan` and return what is wrong, for the models for which
/// `report(name)` is true, in the plan's order. A model whose upstream could not be planned is not
/// planned. Models are planned in parallel: each as soon as its upstream models are.
pub async fn check(
    inputs: UnitTestInputs<'_>,
    plan: &Plan,
    stores: &Stores,
    report: impl Fn(&str) -> bool,
) -> Vec<Finding> {
    let project = inputs.project;
    // One session for the whole project: each source is registered (its footers read) once,
    // and each planned model becomes an empty table that its consumers are planned against.
    let runtime = Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default());
    let session = Embedded.project_session(&runtime, project);
    // The check registers sources only: no table is opened.
    let warehouse = Warehouse::for_planning(stores);
    let scans = SourceScans::default();
    let read: BTreeSet<&str> = plan
        .models
        .iter()
        .flat_map(|model| model.sources.iter().map(String::as_str))
        .collect();
    let mut unreadable: BTreeMap<&str, CheckError> = BTreeMap::new();
    for id in read {
        let relation = NodeId::Source(id.to_string());
        if let Err(problem) = register_relation(
            &Embedded,
            &session,
            &relation,
            &warehouse,
            &project.sources,
            &scans,
        )
        .await
        {
            unreadable.insert(id, problem.into());
        }
    }

    let index: HashMap<&str, usize> = plan
        .models
        .iter()
        .enumerate()
        .map(|(i, model)| (model.name.as_str(), i))
        .collect();
    let mut scheduler = Scheduler::new(plan.models.len());
    for (i, model) in plan.models.iter().enumerate() {
        for upstream in &model.upstream {
            // An upstream model outside the plan is never planned, and neither is this one.
            scheduler.add_wait(i, index.get(upstream.as_str()).copied());
        }
    }
    let state = Arc::new(session.state());
    let mut planning = JoinSet::new();
    let start_ready = |planning: &mut JoinSet<_>, scheduler: &mut Scheduler| {
        while let Some(i) = scheduler.next_ready() {
            let model: &ModelPlan = &plan.models[i];
            if model
                .sources
                .iter()
                .any(|id| unreadable.contains_key(id.as_str()))
            {
                continue;
            }
            // A model that asks `execute` is rendered again as it will run, its queries
            // answered by this session (each model read an empty table of its planned schema).
            let sql = match model.runs_queries {
                false => model.sql.clone(),
                true => {
                    let context = crate::session::executing(inputs.context, &session);
                    match crate::audit::plan_in_context(inputs, &context, &model.name) {
                        Ok(rendered) => rendered.sql,
                        Err(_) => model.sql.clone(),
                    }
                }
            };
            let state = state.clone();
            // A panic in DataFusion's planner comes back as this model's problem.
            planning.spawn(async move {
                let planned = std::panic::AssertUnwindSafe(async move {
                    crate::session::plan_read_query(&state, &sql).await
                })
                .catch_unwind()
                .await;
                (i, planned)
            });
        }
    };
    start_ready(&mut planning, &mut scheduler);
    let mut found: Vec<Vec<CheckError>> = (0..plan.models.len()).map(|_| Vec::new()).collect();
    let mut schemas: BTreeMap<NodeId, SchemaRef> = BTreeMap::new();
    let mut deferred: BTreeSet<&str> = BTreeSet::new();
    while let Some(joined) = planning.join_next().await {
        let Ok((i, planned)) = joined else {
            // The task was cancelled: only the runtime shutting down does that.
            break;
        };
        let model = &plan.models[i];
        let planned = match planned {
            Ok(planned) => planned,
            Err(_) => {
                found[i].push(CheckError::Session(SessionError::Internal {
                    message: format!("DataFusion panicked planning `{}`", model.name),
                }));
                continue;
            }
        };
        let logical = match planned {
            Ok(logical) => logical,
            // Its SQL depends on the rows its queries read (or it reads such a model): it is
            // planned when it runs.
            Err(error)
                if model.runs_queries
                    || model
                        .upstream
                        .iter()
                        .any(|up| deferred.contains(up.as_str())) =>
            {
                deferred.insert(model.name.as_str());
                tracing::debug!(model = %model.name, %error, "planned when it runs");
                scheduler.finish(i);
                start_ready(&mut planning, &mut scheduler);
                continue;
            }
            Err(error) => {
                found[i].push(sql_error(model, &error).into());
                continue;
            }
        };
        let schema: SchemaRef = Arc::new(logical.schema().as_arrow().clone());
        schemas.insert(NodeId::Model(model.name.clone()), schema.clone());
        match (
            model.runs_queries,
            check_model(project, model, &session, schema).await,
        ) {
            // The columns of a model that asks `execute` come from the rows its queries read:
            // they are checked when it runs.
            (true, _) => {}
            (false, Ok(declared)) => found[i] = declared,
            (false, Err(problem)) => {
                found[i].push(problem);
                continue;
            }
        }
        found[i].extend(dialect::dialect_warnings(model, &logical, &session));
        if model.config.has_incremental_branch() {
            found[i].extend(check_incremental_branch(inputs, model, &state).await);
        }
        // Only a model planned cleanly lets its readers be planned against it.
        scheduler.finish(i);
        start_ready(&mut planning, &mut scheduler);
    }

    for id in project.sources.keys() {
        if let Ok(provider) = session.table_provider(source_reference(id)).await {
            schemas.insert(NodeId::Source(id.clone()), provider.schema());
        }
    }
    let mut problems: Vec<Finding> = declared_type_problems(project, &session)
        .await
        .into_iter()
        .map(|problem| Finding {
            model: None,
            problem,
        })
        .collect();
    problems.extend(relationship_problems(inputs, plan, &report));
    for test in &project.unit_tests {
        let model = &test.properties.model;
        if !report(model) || !schemas.contains_key(&NodeId::Model(model.clone())) {
            continue;
        }
        let found = crate::audit::unit_test_problems(&session, inputs, test, &schemas).await;
        problems.extend(found.into_iter().map(|(message, needle, help)| Finding {
            model: Some(model.clone()),
            problem: CheckError::UnitTest {
                test: test.properties.name.clone(),
                message,
                at: test.file.find(&needle, test.at.offset()),
                src: test.file.named(),
                help,
            },
        }));
    }
    for (model, found) in plan.models.iter().zip(found) {
        if !report(&model.name) {
            continue;
        }
        // A source's problem shows once, however many models read the source: with the
        // first (the others are not planned, and fail when they run).
        let of_model = |problem| Finding {
            model: Some(model.name.clone()),
            problem,
        };
        problems.extend(
            model
                .sources
                .iter()
                .filter_map(|id| unreadable.remove(id.as_str()))
                .map(of_model),
        );
        problems.extend(found.into_iter().map(of_model));
    }
    problems
}

/// A problem the check found, and the model it stops (`None`: one of the project's, such as a
/// source column's declared type).
#[derive(Debug)]
pub struct Finding {
    pub model: Option<String>,
    pub problem: CheckError,
}

/// An incremental model rendered and planned as its later runs are, with `is_incremental()`
/// true and `{{ this }}` its own table (registered, empty, once the model was planned).
async fn check_incremental_branch(
    inputs: UnitTestInputs<'_>,
    model: &ModelPlan,
    state: &datafusion::execution::SessionState,
) -> Option<CheckError> {
    let context = crate::render::RenderContext {
        is_incremental: true,
        ..inputs.context.clone()
    };
    let incremental = match crate::audit::plan_in_context(inputs, &context, &model.name) {
        Ok(plan) => plan,
        // A var the branch needs is given by the runs that take it (a full build, the first or
        // with --full-refresh, does not): such a run says so if it lacks it.
        Err(InContext::Render(RenderError::MissingVar { .. })) => return None,
        Err(error) => {
            return Some(CheckError::IncrementalBranch {
                model: model.name.clone(),
                message: error.to_string(),
                src: model.file.named(),
                at: model.file.find("is_incremental", 0),
            });
        }
    };
    let planned = crate::session::plan_read_query(state, &incremental.sql).await;
    planned
        .err()
        .map(|error| sql_error(&incremental, &error).into())
}

/// Every declared `data_type` of a model's or source's column that DataFusion cannot read.
async fn declared_type_problems(project: &Project, session: &SessionContext) -> Vec<CheckError> {
    let mut declared: Vec<(
        &crate::source::SourceFile,
        &crate::project::ColumnProperties,
    )> = Vec::new();
    for model in project.models.values() {
        if let (Some(properties), Some(file)) = (&model.properties, &model.properties_file) {
            declared.extend(properties.columns.iter().map(|c| (file, c)));
        }
    }
    for source in project.sources.values() {
        declared.extend(source.columns.iter().map(|c| (&source.file, c)));
    }
    let mut problems = Vec::new();
    for (file, column) in declared {
        let Some(data_type) = &column.data_type else {
            continue;
        };
        if let Err(message) = sql_type(session, data_type).await {
            let at = file.find(data_type, file.find(&column.name, 0).offset());
            problems.push(CheckError::UnknownType {
                data_type: data_type.clone(),
                message,
                src: file.named(),
                at,
            });
        }
    }
    problems
}

/// The relationships tests of the models for which `report(name)` is true that can never run:
/// to a model that waits (through what it reads and its own relationships tests) for the tested
/// one. A test relating to a view reads the view's query: it waits for what the view reads.
fn relationship_problems(
    inputs: UnitTestInputs<'_>,
    plan: &Plan,
    report: &impl Fn(&str) -> bool,
) -> Vec<Finding> {
    let project = inputs.project;
    let by_name: HashMap<&str, &ModelPlan> =
        plan.models.iter().map(|m| (m.name.as_str(), m)).collect();
    // The views' plans, also of views the selection left out (a test can still read them).
    let views: HashMap<&str, ModelPlan> = inputs
        .graph
        .models
        .keys()
        .filter_map(|name| Some((name.as_str(), crate::audit::view_plan(inputs.graph, name)?)))
        .collect();
    let waits_for = |name: &str| -> Vec<&str> {
        // Reading a view is reading what it reads (its own tests wait for nothing of it).
        if let Some(view) = views.get(name) {
            return view.upstream.iter().map(String::as_str).collect();
        }
        let Some(model) = by_name.get(name) else {
            return Vec::new();
        };
        model.waits_for(project).collect()
    };
    let mut problems = Vec::new();
    for model in plan.models.iter().filter(|m| report(&m.name)) {
        for test in project.data_tests_of(&NodeId::Model(model.name.clone())) {
            let DataTestKind::Relationships {
                to: NodeId::Model(to),
                ..
            } = &test.kind
            else {
                continue;
            };
            // Nothing waits for a view's tests: they close no cycle.
            if *to == model.name || views.contains_key(model.name.as_str()) {
                continue;
            }
            let at = test.file.find(to, test.at.offset());
            let mut found = |problem| {
                problems.push(Finding {
                    model: Some(model.name.clone()),
                    problem,
                })
            };
            // Breadth first from `to` along what each model waits for, back to this model.
            let mut came_from: HashMap<&str, &str> = HashMap::new();
            let mut queue = std::collections::VecDeque::from([to.as_str()]);
            while let Some(current) = queue.pop_front() {
                if current == model.name {
                    break;
                }
                for next in waits_for(current) {
                    if next != to.as_str() && !came_from.contains_key(next) {
                        came_from.insert(next, current);
                        queue.push_back(next);
                    }
                }
            }
            if came_from.contains_key(model.name.as_str()) {
                let mut path = vec![model.name.as_str()];
                while let Some(previous) = came_from.get(path.last().expect("not empty")) {
                    path.push(previous);
                }
                // `to` waits for ... for this model, which waits for `to` through the test.
                let cycle = std::iter::once(model.name.as_str())
                    .chain(path.iter().rev().copied())
                    .collect::<Vec<_>>()
                    .join(" -> ");
                found(CheckError::RelationshipCycle {
                    test: test.name.clone(),
                    model: model.name.clone(),
                    to: to.clone(),
                    cycle: format!("{cycle} (each waits for the next)"),
                    src: test.file.named(),
                    at,
                });
            }
        }
    }
    problems
}

/// What kind of nested value a column of `data_type` holds (`list`, `struct`, `map`, `union`);
/// `None` for a plain type.
fn nested_kind(data_type: &datafusion::arrow::datatypes::DataType) -> Option<&'static str> {
    use datafusion::arrow::datatypes::DataType::*;
    match data_type {
        List(_) | LargeList(_) | FixedSizeList(..) | ListView(_) | LargeListView(_) => Some("list"),
        Struct(_) => Some("struct"),
        Map(..) => Some("map"),
        Union(..) => Some("union"),
        Dictionary(_, value) => nested_kind(value),
        RunEndEncoded(_, value) => nested_kind(value.data_type()),
        _ => None,
    }
}

/// Register the model's planned output as an empty table, and return the mistakes in what it
/// declares about its output; an error when the output cannot stand as a table.
async fn check_model(
    project: &Project,
    model: &ModelPlan,
    session: &SessionContext,
    schema: SchemaRef,
) -> Result<Vec<CheckError>, CheckError> {
    if !model.config.is_ephemeral() {
        let table = stored_empty_table(&schema).map_err(|message| CheckError::Unstorable {
            model: model.name.clone(),
            message,
            at: model.file.find("select", 0),
            src: model.file.named(),
        })?;
        session
            .register_table(TableReference::bare(model.name.as_str()), table)
            .map_err(|error| sql_error(model, &error))?;
    }
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut problems = Vec::new();

    for column in &model.config.partition_by {
        let at = model
            .file
            .find(column, model.file.find("partition_by", 0).offset());
        match schema.field_with_name(column) {
            Err(_) => problems.push(CheckError::PartitionColumn {
                model: model.name.clone(),
                help: help_columns(column, &columns),
                at,
                src: model.file.named(),
                column: column.clone(),
            }),
            // A list, struct or map has no single value to name a partition by.
            Ok(field) => {
                if let Some(kind) = nested_kind(field.data_type()) {
                    problems.push(CheckError::PartitionType {
                        model: model.name.clone(),
                        column: column.clone(),
                        kind,
                        src: model.file.named(),
                        at,
                    })
                }
            }
        }
    }
    for test in project.data_tests_of(&NodeId::Model(model.name.clone())) {
        if let Some(column) = &test.column
            && !columns.contains(&column.as_str())
        {
            problems.push(CheckError::TestColumn {
                test: test.name.clone(),
                model: model.name.clone(),
                help: help_columns(column, &columns),
                column: column.clone(),
                src: test.file.named(),
                at: test
                    .file
                    .find(column, test.file.find(&model.name, 0).offset()),
            });
        }
    }
    let declared = project.models.get(&model.name);
    if let Some((properties, file)) =
        declared.and_then(|d| d.properties.as_ref().zip(d.properties_file.as_ref()))
        && properties
            .config
            .contract
            .as_ref()
            .is_some_and(|c| c.enforced)
    {
        let contract = Contract {
            columns: &properties.columns,
            undeclared_allowed: &[],
            enforced: true,
        };
        if let Err(error) = check_contract(session, contract, &schema).await {
            problems.push(CheckError::Session(SessionError::Contract {
                subject: format!("the output of `{}`", model.name),
                differences: error.to_string(),
                at: file.find("contract", file.find(&model.name, 0).offset()),
                src: file.named(),
            }));
        }
    } else if let Some((properties, file)) =
        declared.and_then(|d| d.properties.as_ref().zip(d.properties_file.as_ref()))
    {
        // Without a contract, documenting a column before the model outputs it is fine: said,
        // never an error.
        // A column with tests is reported by its tests, as an error.
        for column in &properties.columns {
            if !columns.contains(&column.name.as_str()) && column.data_tests.is_empty() {
                // Looked for only when needed: a search from the file's start for every model
                // would grow with the square of the models one file declares.
                let model_at = file.find_name(&model.name, 0).offset();
                problems.push(CheckError::UnproducedColumn {
                    model: model.name.clone(),
                    column: column.name.clone(),
                    help: help_columns(&column.name, &columns),
                    at: file.find_name(&column.name, model_at),
                    src: file.named(),
                });
            }
        }
    }
    Ok(problems)
}

/// An empty table of a planned model's output, as its readers see it in a build: as Delta
/// stores it (a timestamp's zone becomes UTC, a list's items `element`). An error when Delta
/// cannot store it.
pub fn stored_empty_table(schema: &SchemaRef) -> Result<Arc<MemTable>, String> {
    Ok(empty_table(crate::storage::stored_schema(schema)?))
}

/// An empty table of `schema`, for planning its readers.
pub fn empty_table(schema: SchemaRef) -> Arc<MemTable> {
    Arc::new(MemTable::try_new(schema, vec![vec![]]).expect("an empty table fits any schema"))
}

/// "did you mean" and the columns there are.
fn help_columns(column: &str, columns: &[&str]) -> String {
    let listed = format!("its columns: {}", columns.join(", "));
    match crate::source::did_you_mean(column, columns.iter().copied()) {
        Some(suggestion) => format!("{suggestion} ({listed})"),
        None => listed,
    }
}
