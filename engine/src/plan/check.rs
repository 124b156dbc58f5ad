//! CHECK: every model planned by DataFusion from schemas alone, without reading a data row.
//! Sources' columns come from their declared types or their files' footers (or a Delta log);
//! a model's upstream models stand in as empty tables with the schemas planned for them. What
//! a model declares about its output (partition columns, tested columns, an enforced contract)
//! is checked against the planned schema.

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::TableReference;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use miette::SourceSpan;

use super::{ModelPlan, Plan};
use crate::audit::{Contract, check_contract};
use crate::execute::{ModelError, SourceScans, new_session, register_relation, sql_error};
use crate::project::{Project, Relation, Subject};

/// A mistake found by planning a model.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum CheckError {
    #[error(transparent)]
    #[diagnostic(transparent)]
    Model(#[from] ModelError),

    #[error("`{model}` is partitioned by `{column}`, which it does not output")]
    #[diagnostic(code(dp::check::partition_column))]
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

    #[error("test `{test}` is on column `{column}`, which `{model}` does not output")]
    #[diagnostic(code(dp::check::test_column))]
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

/// Plan every model of `plan` (in its order) and return what is wrong, for the models for
/// which `report(name)` is true. A model whose upstream could not be planned is not planned.
pub async fn check(
    project: &Project,
    plan: &Plan,
    report: impl Fn(&str) -> bool,
) -> Vec<CheckError> {
    // One session for the whole project: each source is registered (its footers read) once,
    // and each planned model becomes an empty table that its consumers are planned against.
    let runtime = Arc::new(datafusion::execution::runtime_env::RuntimeEnv::default());
    let session = new_session(&runtime);
    let warehouse = url::Url::parse("memory:///").expect("a valid URL");
    let scans = SourceScans::default();
    let mut planned: BTreeSet<&str> = BTreeSet::new();
    let mut problems = Vec::new();
    for model in &plan.models {
        if model.upstream.iter().any(|u| !planned.contains(u.as_str())) {
            continue;
        }
        let mut found = Vec::new();
        for id in &model.sources {
            let relation = Relation::Source(id.clone());
            let registered =
                register_relation(&session, &relation, &warehouse, &project.sources, &scans).await;
            found.extend(registered.err().map(CheckError::from));
        }
        if found.is_empty() {
            match check_model(project, model, &session).await {
                Ok(declared) => {
                    planned.insert(&model.name);
                    found = declared;
                }
                Err(problem) => found.push(problem),
            }
        }
        if report(&model.name) {
            // A source's problem shows once, however many models read the source.
            for problem in found {
                if !problems
                    .iter()
                    .any(|p: &CheckError| p.to_string() == problem.to_string())
                {
                    problems.push(problem);
                }
            }
        }
    }
    problems
}

/// Plan the model, register its output as an empty table, and return the mistakes in what it
/// declares about its output; an error when its SQL does not plan.
async fn check_model(
    project: &Project,
    model: &ModelPlan,
    session: &SessionContext,
) -> Result<Vec<CheckError>, CheckError> {
    let frame = session
        .sql(&model.sql)
        .await
        .map_err(|error| sql_error(model, &error))?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    if model.config.materialized != crate::render::Materialization::Ephemeral {
        let table = MemTable::try_new(schema.clone(), vec![vec![]])
            .map_err(|error| sql_error(model, &error))?;
        session
            .register_table(TableReference::bare(model.name.as_str()), Arc::new(table))
            .map_err(|error| sql_error(model, &error))?;
    }
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let mut problems = Vec::new();

    for column in &model.config.partition_by {
        if !columns.contains(&column.as_str()) {
            problems.push(CheckError::PartitionColumn {
                model: model.name.clone(),
                help: help_columns(column, &columns),
                at: model
                    .file
                    .find(column, model.file.find("partition_by", 0).offset()),
                src: model.file.named(),
                column: column.clone(),
            });
        }
    }
    for test in project.data_tests_of(&Subject::Model(model.name.clone())) {
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
            problems.push(CheckError::Model(ModelError::Contract {
                subject: format!("the output of `{}`", model.name),
                differences: error.to_string(),
                at: file.find("contract", file.find(&model.name, 0).offset()),
                src: file.named(),
            }));
        }
    }
    Ok(problems)
}

/// "did you mean" and the columns there are.
fn help_columns(column: &str, columns: &[&str]) -> String {
    let listed = format!("its columns: {}", columns.join(", "));
    match crate::source::did_you_mean(column, columns.iter().copied()) {
        Some(suggestion) => format!("{suggestion} ({listed})"),
        None => listed,
    }
}
