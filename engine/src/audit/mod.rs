//! AUDIT: the assertions of a project. Data tests and singular tests run a query returning the
//! failing rows, against a build's staged output (before it is published) or against the
//! published tables (`dp test`); unit tests run a model's SQL on rows written in the test;
//! contracts compare a relation's columns with the declared ones. In: a DataFusion session with
//! the relation registered. Out: [`TestResult`]s.

mod data_tests;
mod diff;
mod unit;
mod views;

use std::path::{Path, PathBuf};

use datafusion::prelude::{DataFrame, SessionContext};

pub use data_tests::{TestRenderer, test_query};
pub use diff::{Partitions, diff, diff_key};
pub(crate) use unit::{InContext, plan_in_context, unit_test_problems};
pub use unit::{UnitTestInputs, run_unit_test};
pub use views::{Published, register_published, register_view, view_plan};

use crate::project::{Severity, TestConfig};
use crate::report::{TestKind, TestResult, TestStatus, TestSummary};

/// How many failing rows a report shows.
const SAMPLE_ROWS: usize = 5;

/// Where a run's failing rows go: `target/test_failures/`.
pub fn failures_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("test_failures")
}

/// Run a query returning failing rows and judge the count by `config`.
pub async fn run_query_test(
    session: &SessionContext,
    name: &str,
    kind: TestKind,
    subject: &str,
    failing_rows: &str,
    config: &TestConfig,
    failures_dir: &Path,
) -> TestResult {
    let mut result = TestResult::passed(name, kind, subject);
    match failing_rows_report(session, name, failing_rows, config, failures_dir).await {
        Ok((failures, sample, file)) => {
            result.failures = failures;
            result.status = judge(config, failures);
            if failures > 0 {
                result.sample = Some(sample);
                result.failures_file = file;
            }
        }
        Err(error) => {
            result.status = TestStatus::Error;
            result.store_failed = crate::session::store_failed(&error);
            result.detail = Some(format!(
                "{}\nquery: {failing_rows}",
                error.strip_backtrace()
            ));
        }
    }
    result
}

/// dbt's rule: an error-severity test whose failures meet `error_if` fails; otherwise failures
/// that meet `warn_if` warn.
fn judge(config: &TestConfig, failures: u64) -> TestStatus {
    if config.severity == Severity::Error && config.error_if.holds(failures) {
        TestStatus::Fail
    } else if config.warn_if.holds(failures) {
        TestStatus::Warn
    } else {
        TestStatus::Pass
    }
}

/// The count of failing rows, a sample as a table, and the file every failing row was written
/// to (when there are any).
async fn failing_rows_report(
    session: &SessionContext,
    name: &str,
    failing_rows: &str,
    config: &TestConfig,
    failures_dir: &Path,
) -> datafusion::error::Result<(u64, String, Option<PathBuf>)> {
    let count = crate::session::read_query(
        session,
        &format!(
            "select cast(coalesce({}, 0) as bigint) from ({failing_rows}\n) as failures",
            config.fail_calc.as_deref().unwrap_or("count(*)")
        ),
    )
    .await?
    .collect()
    .await?;
    let failures = count
        .first()
        .filter(|batch| batch.num_rows() == 1)
        .and_then(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .map(|c| c.value(0).max(0))
        })
        .ok_or_else(|| {
            datafusion::error::DataFusionError::Internal(
                "the count of failing rows is not one number".into(),
            )
        })? as u64;
    if failures == 0 {
        return Ok((0, String::new(), None));
    }
    let rows = crate::session::read_query(session, failing_rows).await?;
    let sample = rows.clone().limit(0, Some(SAMPLE_ROWS))?.collect().await?;
    let sample = datafusion::arrow::util::pretty::pretty_format_batches(&sample)?.to_string();
    let file = write_failures(rows, name, config.limit, failures_dir).await;
    Ok((failures, sample, file))
}

/// Write the failing rows to `<dir>/<test name>.csv`. A write that fails loses only the file:
/// the test's outcome stands, and the warning says why the file is missing.
async fn write_failures(
    rows: DataFrame,
    name: &str,
    limit: Option<u64>,
    dir: &Path,
) -> Option<PathBuf> {
    // A test's name may be anything a user wrote: keep it to one safe file name.
    let mut file: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    if file.is_empty() {
        file.push('_');
    }
    let path = dir.join(format!("{file}.csv"));
    let written = async {
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error.to_string());
            }
            _ => {}
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        // Streamed here, whatever engine ran the query: the file is on this machine.
        let mut rows = rows
            .limit(0, limit.map(|l| l as usize))
            .map_err(|e| e.strip_backtrace())?
            .execute_stream()
            .await
            .map_err(|e| e.strip_backtrace())?;
        let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(std::io::BufWriter::new(file));
        while let Some(batch) = futures::StreamExt::next(&mut rows).await {
            let batch = batch.map_err(|e| e.strip_backtrace())?;
            writer.write(&batch).map_err(|e| e.to_string())?;
        }
        std::io::Write::flush(&mut writer.into_inner()).map_err(|e| e.to_string())
    };
    match written.await {
        Ok(_) => Some(path),
        Err(error) => {
            tracing::warn!(test = name, path = %path.display(), %error, "could not write the failing rows");
            None
        }
    }
}

/// What `dp test` runs.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Where the published model tables live.
    pub warehouse: crate::session::Warehouse,
    pub failures_dir: PathBuf,
    /// The kinds of test to run.
    pub kinds: std::collections::BTreeSet<TestKind>,
    pub run_id: String,
    /// The most memory the tests' queries may hold together, in bytes.
    pub memory_limit: Option<usize>,
    /// Where the tests' queries run.
    pub engine: std::sync::Arc<dyn crate::session::QueryEngine>,
}

/// `dp test`: the data tests and singular tests of the selected nodes against the published
/// tables and sources, and the unit tests of the selected models.
pub async fn run_tests(
    inputs: UnitTestInputs<'_>,
    selected: &std::collections::BTreeSet<crate::graph::NodeId>,
    options: &TestOptions,
    reporter: &dyn crate::report::Reporter,
) -> TestSummary {
    use crate::project::NodeId;
    use crate::report::RunEvent;

    let (project, graph) = (inputs.project, inputs.graph);
    let started = std::time::Instant::now();
    let runtime = crate::session::runtime_env(options.memory_limit);
    let mut results = Vec::new();
    let report = |result: &TestResult, results: &Vec<TestResult>| {
        reporter.report(RunEvent::TestFinished {
            result,
            index: results.len() + 1,
        })
    };

    if options.kinds.contains(&TestKind::Unit) {
        for test in &project.unit_tests {
            if selected.contains(&NodeId::Model(test.properties.model.clone())) {
                let result = run_unit_test(inputs, test).await;
                report(&result, &results);
                results.push(result);
            }
        }
    }
    if options.kinds.contains(&TestKind::Data) {
        for test in project
            .data_tests
            .iter()
            .filter(|t| selected.contains(&t.subject))
        {
            let mut relations = vec![test.subject.clone()];
            relations.extend(test.reads().into_iter().cloned());
            let query = QueryTest {
                name: &test.name,
                kind: TestKind::Data,
                subject: &test.subject.to_string(),
                sql: TestSql::Data(test),
                config: &test.config,
                relations: &relations,
                defined_at: test.file.location(test.at.offset()),
            };
            let result = test_published(inputs, &runtime, options, &query).await;
            report(&result, &results);
            results.push(result);
        }
    }
    if options.kinds.contains(&TestKind::Singular) {
        for test in &graph.singular_tests {
            let relations: Vec<NodeId> = test
                .refs
                .iter()
                .map(|c| NodeId::Model(c.target.clone()))
                .chain(
                    test.sources
                        .iter()
                        .map(|c| NodeId::Source(c.target.clone())),
                )
                .collect();
            if !relations.iter().any(|r| selected.contains(r)) && !relations.is_empty() {
                continue;
            }
            let query = QueryTest {
                name: &test.name,
                kind: TestKind::Singular,
                subject: &test.file.path().display().to_string(),
                sql: match test.runs_queries {
                    false => TestSql::Rendered(test.sql.trim().trim_end_matches(';')),
                    true => TestSql::Singular(&test.file),
                },
                config: &test.config.test,
                relations: &relations,
                defined_at: test.file.path().display().to_string(),
            };
            let result = test_published(inputs, &runtime, options, &query).await;
            report(&result, &results);
            results.push(result);
        }
    }
    let summary = TestSummary {
        run_id: options.run_id.clone(),
        results,
        elapsed: started.elapsed(),
    };
    reporter.report(RunEvent::TestsFinished { summary: &summary });
    summary
}

/// A test that is a failing-rows query over published relations.
struct QueryTest<'a> {
    name: &'a str,
    kind: TestKind,
    subject: &'a str,
    sql: TestSql<'a>,
    config: &'a TestConfig,
    /// What the query reads.
    relations: &'a [crate::project::NodeId],
    /// `path:line` of its definition.
    defined_at: String,
}

/// The query of a [`QueryTest`]: rendered already, or a data test's (rendered in the session
/// that runs it, for a generic test macro that queries).
enum TestSql<'a> {
    Rendered(&'a str),
    Data(&'a crate::project::DataTest),
    /// A singular test that asks `execute`: rendered again with its queries answered.
    Singular(&'a crate::source::SourceFile),
}

/// Run a failing-rows query in a session holding the published relations it reads (a view
/// read as its query over the published relations it reads).
async fn test_published(
    inputs: UnitTestInputs<'_>,
    runtime: &std::sync::Arc<datafusion::execution::runtime_env::RuntimeEnv>,
    options: &TestOptions,
    test: &QueryTest<'_>,
) -> TestResult {
    use crate::project::NodeId;
    let session = options.engine.project_session(runtime, inputs.project);
    let scans = crate::session::SourceScans::default();
    let errored = |error: String| {
        TestResult::errored(test.name, test.kind, test.subject, error)
            .defined_at(test.defined_at.clone())
    };
    let published = Published {
        engine: options.engine.as_ref(),
        warehouse: &options.warehouse,
        sources: &inputs.project.sources,
        scans: &scans,
    };
    for relation in test.relations {
        let view = match relation {
            NodeId::Model(name) => view_plan(inputs.graph, name),
            NodeId::Source(_) => None,
        };
        if let Err(error) = register_published(&session, relation, view.as_ref(), &published).await
        {
            return errored(error);
        }
    }
    let to_run = crate::session::executing(inputs.context, &session);
    let (sql, config) = match test.sql {
        TestSql::Rendered(sql) => (sql.to_string(), test.config.clone()),
        TestSql::Singular(file) => {
            let template = crate::render::singular_test(file);
            match inputs
                .renderer
                .render_model(inputs.project, &template, &to_run)
            {
                Ok(rendered) => (
                    rendered.sql.trim().trim_end_matches(';').to_string(),
                    test.config.clone(),
                ),
                Err(error) => return errored(format!("{:?}", miette::Report::new(error))),
            }
        }
        TestSql::Data(data_test) => {
            let macros = TestRenderer {
                renderer: inputs.renderer,
                context: to_run,
            };
            let tested = crate::session::relation_sql(&data_test.subject);
            match test_query(data_test, &tested, None, &macros) {
                Ok(query) => query,
                Err(error) => return errored(error),
            }
        }
    };
    run_query_test(
        &session,
        test.name,
        test.kind,
        test.subject,
        &sql,
        &config,
        &options.failures_dir,
    )
    .await
    .defined_at(test.defined_at.clone())
}
