//! SESSION: DataFusion sessions and their runtime, shared by every stage that plans or reads:
//! the object stores a run reaches tables through, sources and published model tables
//! registered for reading (a source's declared columns checked as it is), SQL types, and
//! DataFusion's errors mapped back to the user's file. A Parquet source is registered behind a
//! recorder that notes the files every scan plans to read: for the source's missing-partition
//! policy, and for the run results.

pub mod contract;
pub mod dialect;
pub mod engine;
pub mod files;
mod functions;
mod stores;
mod subquery;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, Session, TableProvider};
use datafusion::common::TableReference;
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::TableProviderFilterPushDown;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{Expr, SessionContext};

use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use miette::SourceSpan;
use url::Url;

use crate::compile::{ModelPlan, sql_error_location};
use crate::project::{NodeId, SourceFormat, SourceTable, split_source_id};
use crate::source::quote_identifier as quote;
use contract::{Contract, check_contract};
pub use engine::{Ballista, DpCodec, Embedded, QueryEngine};
pub use stores::{StoreWrapper, Stores, Warehouse};

/// Why a relation cannot be read, or a query cannot be planned.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[non_exhaustive]
pub enum SessionError {
    #[error("`{model}`: {message}")]
    #[diagnostic(code(dp::sql))]
    Sql {
        model: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("{label}")]
        at: SourceSpan,
        /// `here`, or which macro call wrote the offending SQL.
        label: String,
        #[help]
        help: Option<String>,
    },

    #[error("source `{source_id}` cannot be read at {location}: {message}")]
    #[diagnostic(code(dp::unreadable_source))]
    Source {
        source_id: String,
        location: String,
        message: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("declared here")]
        at: SourceSpan,
    },

    #[error("{subject} does not match its declared columns")]
    #[diagnostic(
        code(dp::contract),
        help(
            "{differences}\nnothing was written: a schema change needs a person; change the data, the SQL or the declared columns"
        )
    )]
    Contract {
        subject: String,
        differences: String,
        #[source_code]
        src: miette::NamedSource<Arc<str>>,
        #[label("declared here")]
        at: SourceSpan,
    },

    #[error("upstream model `{model}` has never been built (no table at {location})")]
    #[diagnostic(
        code(dp::not_built),
        help("build it first, or select it too: --select +{model}")
    )]
    NotBuilt { model: String, location: String },

    #[error("`{location}` cannot hold model tables")]
    #[diagnostic(
        code(dp::bad_warehouse),
        help(
            "a warehouse is a folder or a URL such as file:///data/warehouse or s3://bucket/prefix"
        )
    )]
    BadWarehouse { location: String },

    #[error("Delta table at {location}: {source}")]
    #[diagnostic(code(dp::delta))]
    Delta {
        location: String,
        #[source]
        source: deltalake::DeltaTableError,
    },

    #[error("object store at {location}: {source}")]
    #[diagnostic(
        code(dp::object_store),
        help(
            "check the location; for s3://, that the bucket exists and the target's storage_options (endpoint, region, credentials) reach it"
        )
    )]
    ObjectStore {
        location: String,
        #[source]
        source: object_store::Error,
    },

    #[error("Delta table at {location} uses {feature}, which a Ballista cluster cannot read")]
    #[diagnostic(
        code(dp::unsupported_on_cluster),
        help(
            "the cluster reads a Delta table as plain Parquet files; run with the embedded engine (a target without `engine: ballista`), or rewrite the table without {feature}"
        )
    )]
    UnsupportedOnCluster { location: String, feature: String },

    #[error("{message}")]
    #[diagnostic(
        code(dp::cluster_unavailable),
        help(
            "start the cluster (dp-scheduler, then dp-executor; see the README), or check the target's `scheduler`; a build retries it (the target's `retries`) and publishes nothing"
        )
    )]
    ClusterUnavailable { message: String },

    #[error("internal error: {message}")]
    #[diagnostic(code(dp::internal), help("this is a bug in dp; please report it"))]
    Internal { message: String },
}

impl SessionError {
    /// A delta-rs error about the table at `url`.
    pub fn delta(url: &Url) -> impl Fn(deltalake::DeltaTableError) -> Self + '_ {
        move |source| SessionError::Delta {
            location: url.to_string(),
            source,
        }
    }
}

/// DataFusion's runtime for a build or a test run: a memory pool shared fairly by the operators
/// that can spill, when there is a limit, and temporary files in the system's temporary folder.
pub fn runtime_env(memory_limit: Option<usize>) -> Arc<RuntimeEnv> {
    let mut builder = RuntimeEnvBuilder::new();
    if let Some(limit) = memory_limit {
        let top_consumers = std::num::NonZeroUsize::new(5).expect("5 is not zero");
        builder = builder.with_memory_pool(Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(limit),
            top_consumers,
        )));
    }
    // As RuntimeEnv::default() does: the default disk manager creates nothing until it spills.
    builder.build_arc().expect("the default runtime builds")
}

/// How SQL names a relation registered in a session: a model by its name, a source as
/// `"source"."table"`.
pub fn relation_sql(relation: &NodeId) -> String {
    match relation {
        NodeId::Model(name) => quote(name),
        NodeId::Source(id) => {
            let (source, table) = split_source_id(id);
            format!("{}.{}", quote(source), quote(table))
        }
    }
}

/// How a session names a registered source table `source.table`.
pub fn source_reference(id: &str) -> TableReference {
    let (source, table) = split_source_id(id);
    TableReference::partial(source, table)
}

/// Whether the object store failed under `error` in a way a later call may not: a timeout, a
/// throttle, a server error, a dropped connection (object_store's `Generic`, which its own
/// retries end in); not a missing object, a refused precondition or bad credentials.
pub fn store_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    causes(error)
        .find_map(|error| {
            error.downcast_ref::<object_store::Error>().or_else(|| {
                match error.downcast_ref::<datafusion::error::DataFusionError>() {
                    Some(datafusion::error::DataFusionError::ObjectStore(inner)) => {
                        Some(inner.as_ref())
                    }
                    _ => None,
                }
            })
        })
        .is_some_and(|store_error| matches!(store_error, object_store::Error::Generic { .. }))
        // The Parquet reader passes a failed fetch on as text only.
        || causes(error).any(|error| {
            matches!(
                error.downcast_ref::<datafusion::error::DataFusionError>(),
                Some(datafusion::error::DataFusionError::ParquetError(_))
            ) && error.to_string().contains("Object Store error: Generic ")
        })
}

/// `error` and the errors under it.
pub fn causes<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'e (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(error), |error| error.source())
}

/// What SQL from a user's files may do: read the relations of the session. DDL (`create
/// external table` reads any file into the session), DML (`copy … to` writes one) and
/// statements (`set`) are refused, wherever the SQL comes from: a model, a test, a
/// `where:`, an incremental predicate, `run_query()`.
pub fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// `sql` planned in `session` as a query that only reads (see [`read_only`]), in the
/// session's dialect.
pub async fn read_query(
    session: &SessionContext,
    sql: &str,
) -> datafusion::error::Result<datafusion::prelude::DataFrame> {
    let state = session.state();
    let plan = plan_read_query(&state, sql).await?;
    Ok(datafusion::prelude::DataFrame::new(state, plan))
}

/// `sql` planned in `state` as a query that only reads (see [`read_only`]), in the session's
/// dialect, without running it.
pub async fn plan_read_query(
    state: &datafusion::execution::SessionState,
    sql: &str,
) -> datafusion::error::Result<datafusion::logical_expr::LogicalPlan> {
    let plan = dialect::plan(state, sql).await?;
    read_only().verify_plan(&plan)?;
    subquery::runnable_subqueries(state, &plan, sql)?;
    Ok(plan)
}

/// The Delta table at `url`, loaded at its latest version when it exists.
pub async fn open_table(stores: &Stores, url: &Url) -> Result<deltalake::DeltaTable, SessionError> {
    let mut table = stores.table(url)?;
    let delta = SessionError::delta(url);
    if table
        .log_store()
        .is_delta_table_location()
        .await
        .map_err(&delta)?
    {
        table.load().await.map_err(&delta)?;
    }
    Ok(table)
}

/// Open the published table of an upstream model, for reading. A model's table is created by
/// its first build's commit, so a table that exists holds a build (perhaps of zero rows).
pub async fn open_published(
    stores: &Stores,
    url: &Url,
    model: &str,
) -> Result<deltalake::DeltaTable, SessionError> {
    let table = open_table(stores, url).await?;
    if table.version().is_none() {
        return Err(SessionError::NotBuilt {
            model: model.to_string(),
            location: url.to_string(),
        });
    }
    Ok(table)
}

/// Every scan of a Parquet source in a session: the source, the filters it was read with, and
/// the files it plans to read.
#[derive(Debug, Default, Clone)]
pub struct SourceScans(Arc<Mutex<Vec<SourceScan>>>);

#[derive(Debug)]
struct SourceScan {
    source: String,
    filters: String,
    files: BTreeSet<String>,
}

impl SourceScans {
    fn scans(&self) -> std::sync::MutexGuard<'_, Vec<SourceScan>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many distinct files the scans of each source plan to read.
    pub fn files_read(&self) -> BTreeMap<String, usize> {
        let mut files: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let scans = self.scans();
        for scan in scans.iter() {
            let read = files.entry(&scan.source).or_default();
            read.extend(scan.files.iter().map(String::as_str));
        }
        files
            .into_iter()
            .map(|(source, read)| (source.to_string(), read.len()))
            .collect()
    }

    /// The sources every scan of which found no file, with the filters of one such scan: a
    /// source one scan of which found files has data for this build.
    pub fn missing(&self) -> Vec<(String, String)> {
        let scans = std::mem::take(&mut *self.scans());
        let mut empty: Vec<(String, String)> = Vec::new();
        for scan in &scans {
            let all_empty = scans
                .iter()
                .filter(|s| s.source == scan.source)
                .all(|s| s.files.is_empty());
            if all_empty && !empty.iter().any(|(s, _)| *s == scan.source) {
                empty.push((scan.source.clone(), scan.filters.clone()));
            }
        }
        empty
    }
}

/// Register a model's published table or a source table in `session` (once), for reading as
/// `engine` reads it; returns the version of a model's table registered now.
pub async fn register_relation(
    engine: &dyn QueryEngine,
    session: &SessionContext,
    relation: &NodeId,
    warehouse: &Warehouse,
    sources: &std::collections::BTreeMap<String, SourceTable>,
    source_scans: &SourceScans,
) -> Result<Option<u64>, SessionError> {
    let sql = relation_sql(relation);
    if session.table_exist(sql.as_str()).unwrap_or(false) {
        return Ok(None);
    }
    match relation {
        NodeId::Source(id) => {
            let source = sources.get(id).ok_or_else(|| SessionError::Internal {
                message: format!("source `{id}` is not declared"),
            })?;
            register_source(engine, session, source, &warehouse.stores, source_scans).await?;
            Ok(None)
        }
        NodeId::Model(name) => {
            let url = warehouse.table_url(name)?;
            let table = open_published(&warehouse.stores, &url, name).await?;
            let provider = engine.delta_table(session, &table, &url).await?;
            session
                .register_table(TableReference::bare(name.as_str()), provider)
                .map_err(|error| SessionError::Internal {
                    message: error.strip_backtrace(),
                })?;
            Ok(table.version())
        }
    }
}

/// A source's files as DataFusion lists them: a folder, a file, or a glob (`raw/*.parquet`),
/// on any store.
fn listing_url(location: &Url) -> Result<ListingTableUrl, String> {
    let path = location.path();
    let Some(glob) = path.find(['*', '?', '[']) else {
        return ListingTableUrl::parse(location.as_str()).map_err(|e| e.strip_backtrace());
    };
    let base_end = path[..glob].rfind('/').map_or(0, |slash| slash + 1);
    let pattern = glob::Pattern::new(&path[base_end..]).map_err(|e| e.to_string())?;
    let mut base = location.clone();
    base.set_path(&path[..base_end]);
    ListingTableUrl::try_new(base, Some(pattern)).map_err(|e| e.strip_backtrace())
}

/// Register a source table as `"source"."table"`: a listing table over its Parquet files, with
/// its hive partition columns (so a filter on them skips whole folders), or a Delta table. Its
/// columns are checked against the declared ones first.
pub async fn register_source(
    engine: &dyn QueryEngine,
    session: &SessionContext,
    source: &SourceTable,
    stores: &Stores,
    source_scans: &SourceScans,
) -> Result<(), SessionError> {
    let unreadable = |message: String| SessionError::Source {
        source_id: source.id(),
        location: source.location.to_string(),
        message,
        at: source.file.find(&source.table, 0),
        src: source.file.named(),
    };
    // Read through the run's store of the source's bucket (or file system).
    stores
        .register(session.runtime_env().as_ref(), &source.location)
        .map_err(|e| unreadable(e.to_string()))?;
    let provider: Arc<dyn TableProvider> = match source.format {
        SourceFormat::Parquet | SourceFormat::Csv => {
            let url = listing_url(&source.location).map_err(&unreadable)?;
            let options = match source.format {
                SourceFormat::Csv => ListingOptions::new(Arc::new(
                    datafusion::datasource::file_format::csv::CsvFormat::default()
                        .with_has_header(true),
                ))
                .with_file_extension(".csv"),
                _ => ListingOptions::new(Arc::new(ParquetFormat::default()))
                    .with_file_extension(".parquet"),
            };
            let options = options.with_table_partition_cols(
                source
                    .partitioned_by
                    .iter()
                    .map(|column| (column.clone(), DataType::Utf8))
                    .collect(),
            );
            let schema = match source.file_schema.get() {
                Some(schema) => schema.clone(),
                None => {
                    let inferred = options
                        .infer_schema(&session.state(), &url)
                        .await
                        .map_err(|e| unreadable(e.strip_backtrace()))?;
                    // A table without files yet has no schema to remember.
                    if inferred.fields().is_empty() {
                        inferred
                    } else {
                        source.file_schema.get_or_init(|| inferred).clone()
                    }
                }
            };
            let config = ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(schema);
            let table =
                ListingTable::try_new(config).map_err(|e| unreadable(e.strip_backtrace()))?;
            Arc::new(RecordingTable {
                inner: Arc::new(table),
                source: source.id(),
                source_scans: source_scans.clone(),
            })
        }
        SourceFormat::Delta => {
            let table = open_table(stores, &source.location)
                .await
                .map_err(|e| unreadable(e.to_string()))?;
            if table.version().is_none() {
                return Err(unreadable("no Delta table is there".into()));
            }
            engine
                .delta_table(session, &table, &source.location)
                .await
                .map_err(|e| match e {
                    SessionError::UnsupportedOnCluster { .. } => e,
                    other => unreadable(other.to_string()),
                })?
        }
    };
    let contract = Contract {
        columns: &source.columns,
        undeclared_allowed: &source.partitioned_by,
        enforced: false,
    };
    if let Err(error) = check_contract(session, contract, &provider.schema()).await {
        return Err(SessionError::Contract {
            subject: format!("source `{}`", source.id()),
            differences: error.to_string(),
            at: source
                .file
                .find("columns:", source.file.find(&source.table, 0).offset()),
            src: source.file.named(),
        });
    }
    let catalog = session
        .catalog("datafusion")
        .expect("the default catalog exists");
    if catalog.schema(&source.source).is_none() {
        catalog
            .register_schema(&source.source, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| unreadable(e.strip_backtrace()))?;
    }
    session
        .register_table(
            TableReference::partial(source.source.as_str(), source.table.as_str()),
            provider,
        )
        .map_err(|e| unreadable(e.strip_backtrace()))?;
    Ok(())
}

/// A listing table that notes the files each scan plans to read.
#[derive(Debug)]
struct RecordingTable {
    inner: Arc<ListingTable>,
    source: String,
    source_scans: SourceScans,
}

#[async_trait]
impl TableProvider for RecordingTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let filters: Vec<String> = filters
            .iter()
            .map(|f| f.human_display().to_string())
            .collect();
        let filters = if filters.is_empty() {
            "no filter".to_string()
        } else {
            filters.join(" and ")
        };
        let files = planned_files(&plan);
        self.source_scans.scans().push(SourceScan {
            source: self.source.clone(),
            filters,
            files,
        });
        Ok(plan)
    }
}

/// The files a scan plan reads (a large file may be split across partitions: it counts once).
fn planned_files(plan: &Arc<dyn ExecutionPlan>) -> BTreeSet<String> {
    fn collect(plan: &Arc<dyn ExecutionPlan>, files: &mut BTreeSet<String>) {
        if let Some(config) = plan
            .downcast_ref::<DataSourceExec>()
            .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
        {
            let paths = config.file_groups.iter().flat_map(|group| group.iter());
            files.extend(paths.map(|file| file.object_meta.location.to_string()));
        }
        for child in plan.children() {
            collect(child, files);
        }
    }
    let mut files = BTreeSet::new();
    collect(plan, &mut files);
    files
}

/// A DataFusion error in a model's SQL, pointing at the model's file.
pub fn sql_error(model: &ModelPlan, error: &DataFusionError) -> SessionError {
    let full = error.strip_backtrace();
    let diagnostic = error.diagnostic();
    let (file, at, message) = if let Some(diagnostic) = diagnostic
        && let Some(span) = diagnostic.span
    {
        let (file, at) = model.locate_between(
            (span.start.line, span.start.column),
            (span.end.line, span.end.column),
        );
        (file, at, diagnostic.message.clone())
    } else if let Some((line, column, clean)) = sql_error_location(&full) {
        let (file, at) = model.locate_line(line, column, 1);
        (file, at, clean)
    } else if let Some((function, message)) = function_mismatch(&full) {
        // DataFusion gives no position for a call that matches no signature: find the call.
        let at = model.file.find(&format!("{function}("), 0);
        (model.file.clone(), at, message)
    } else {
        (model.file.clone(), (0, 0).into(), full.clone())
    };
    let notes = diagnostic.into_iter().flat_map(|d| {
        d.helps
            .iter()
            .map(|h| h.message.clone())
            .chain(d.notes.iter().map(|n| n.message.clone()))
    });
    let help: Vec<String> = notes
        .chain(column_candidates(&full))
        .chain(signatures(&full))
        .collect();
    SessionError::Sql {
        model: model.name.clone(),
        message,
        label: macro_call(&file, at).map_or_else(
            || "here".to_string(),
            |name| format!("in the SQL that macro `{name}` wrote"),
        ),
        src: file.named(),
        at,
        help: (!help.is_empty()).then(|| help.join("\n")),
    }
}

/// The macro whose call `at` spans, when the offending SQL came out of a macro.
fn macro_call(file: &crate::source::SourceFile, at: miette::SourceSpan) -> Option<String> {
    let text = file.text().get(at.offset()..at.offset() + at.len())?;
    let before = file.text().get(..at.offset())?.trim_end();
    if !(before.ends_with("{{") || before.ends_with("{{-")) {
        return None;
    }
    let (name, _) = text.split_once('(')?;
    let name = name.trim();
    let builtin = ["ref", "source", "var", "env_var", "config"].contains(&name);
    let identifier =
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    (identifier && !builtin).then(|| name.to_string())
}

/// `Function 'sum' expects 1 arguments but received 2`: the function and that sentence.
fn function_mismatch(message: &str) -> Option<(String, String)> {
    let start = message.find("Function '")?;
    let rest = &message[start..];
    let function = rest["Function '".len()..].split('\'').next()?.to_string();
    let sentence = rest.split([',', '.']).next()?.trim().to_string();
    Some((function, sentence))
}

/// The signatures DataFusion lists for a call that matches none.
fn signatures(message: &str) -> Option<String> {
    let (_, list) = message.split_once("Candidate functions:")?;
    let candidates: Vec<&str> = list.split_whitespace().collect();
    Some(format!("it takes: {}", candidates.join(", ")))
}

/// For an unknown column: the closest column that exists, and all of them, from DataFusion's
/// "No field named x. Valid fields are a.b, c." message.
fn column_candidates(message: &str) -> Option<String> {
    let (_, valid) = message.split_once("Valid fields are ")?;
    let columns: Vec<&str> = valid
        .trim_end()
        .trim_end_matches('.')
        .split(", ")
        .map(|field| field.rsplit('.').next().unwrap_or(field).trim_matches('"'))
        .collect();
    let unknown = message
        .split_once("No field named ")
        .map(|(_, rest)| rest.split(['.', ' ']).find(|w| !w.is_empty()).unwrap_or(""))
        .unwrap_or("")
        .trim_matches('"');
    let listed = format!("columns here: {}", columns.join(", "));
    // `Amount` is read as `amount`: a warehouse that upper-cases (Snowflake) or keeps seed
    // headers as written would have found the column.
    if let Some(cased) = columns
        .iter()
        .find(|c| **c != unknown && c.eq_ignore_ascii_case(unknown))
    {
        return Some(format!(
            "DataFusion lower-cases unquoted names, as Postgres does (Snowflake upper-cases them): quote it as written, \"{cased}\" ({listed})"
        ));
    }
    Some(
        match crate::source::did_you_mean(unknown, columns.iter().copied()) {
            Some(suggestion) => format!("{suggestion} ({listed})"),
            None => listed,
        },
    )
}

/// `context` as a render at execution time sees it: `execute` true, and `run_query()`
/// answered from `session`.
pub fn executing(
    context: &crate::render::RenderContext,
    session: &SessionContext,
) -> crate::render::RenderContext {
    crate::render::RenderContext {
        queries: Some(query_runner(session, None)),
        ..context.clone()
    }
}

/// What a query runner does before each query: registers the tables the query names, for a
/// session that holds none up front (`dp show`, `dp run-operation`).
#[async_trait::async_trait]
pub trait BeforeQuery: Send + Sync {
    async fn before(&self, session: &SessionContext, sql: &str) -> Result<(), String>;
}

/// Answers `run_query()` from `session` (the tables the model reads, or those `before` each
/// query registers), for a render, which is synchronous: each query runs to its end on a
/// thread of its own.
pub fn query_runner(
    session: &SessionContext,
    before: Option<Arc<dyn BeforeQuery>>,
) -> crate::render::QueryRunner {
    let session = session.clone();
    crate::render::QueryRunner(Arc::new(move |sql: &str| {
        crate::compile::depth::check_sql(sql).map_err(|message| format!("run_query: {message}"))?;
        let (session, sql, before) = (session.clone(), sql.to_string(), before.clone());
        let run = move || -> Result<crate::render::QueryResult, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            if let Some(before) = &before {
                runtime
                    .block_on(before.before(&session, &sql))
                    .map_err(|message| format!("run_query: {message}"))?;
            }
            let (schema, batches) = runtime
                .block_on(async {
                    let frame = read_query(&session, &sql).await?;
                    let schema = frame.schema().as_arrow().clone();
                    Ok::<_, datafusion::error::DataFusionError>((schema, frame.collect().await?))
                })
                .map_err(|e| format!("run_query: {e}"))?;
            let mut result = crate::render::QueryResult::default();
            for field in schema.fields() {
                result.columns.push(field.name().clone());
                result.types.push(contract::sql_name(field.data_type()));
            }
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    let cells = batch
                        .columns()
                        .iter()
                        .map(|column| {
                            (!column.is_null(row)).then(|| {
                                datafusion::arrow::util::display::array_value_to_string(column, row)
                                    .unwrap_or_default()
                            })
                        })
                        .collect();
                    result.rows.push(cells);
                }
            }
            Ok(result)
        };
        // With the stack of the runtime's threads, for a query as deep as a model may be.
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .stack_size(crate::compile::depth::STACK_SIZE)
                .spawn_scoped(scope, run)
                .map_err(|e| format!("run_query: cannot start a thread: {e}"))?
                .join()
                .unwrap_or_else(|_| Err("run_query: the query panicked".into()))
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sql_from_a_users_files_only_reads() {
        let dir = tempfile::tempdir().unwrap();
        let written = dir.path().join("x.csv");
        let session = SessionContext::new();
        for sql in [
            format!("copy (select 1 as x) to '{}'", written.display()),
            "create external table leak stored as csv location '/etc/hostname'".to_string(),
            "create table t as select 1 as x".to_string(),
            "insert into t values (1)".to_string(),
            "set datafusion.execution.batch_size = 1".to_string(),
            format!(
                "explain analyze copy (select 1 as x) to '{}'",
                written.display()
            ),
        ] {
            assert!(read_query(&session, &sql).await.is_err(), "{sql} was run");
            assert!(
                plan_read_query(&session.state(), &sql).await.is_err(),
                "{sql} planned"
            );
        }
        assert!(!written.exists());
        assert!(!session.table_exist("leak").unwrap());
        assert!(!session.table_exist("t").unwrap());
        let rows = read_query(&session, "with a as (select 1 as x) select x from a")
            .await
            .unwrap()
            .count()
            .await
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn an_unquoted_name_that_differs_only_in_case_says_to_quote_it() {
        let session = SessionContext::new();
        session
            .sql(r#"create table t as select 1 as "Amount", 2 as id"#)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let error = session.sql("select Amount from t").await.unwrap_err();
        let help = column_candidates(&error.to_string()).unwrap();
        assert!(help.contains(r#"quote it as written, "Amount""#), "{help}");
        let error = session.sql("select idd from t").await.unwrap_err();
        let help = column_candidates(&error.to_string()).unwrap();
        assert!(help.starts_with("did you mean"), "{help}");
    }

    /// The `explain` of `sql` in `session`, as text.
    pub(crate) async fn explain(session: &SessionContext, sql: &str) -> String {
        let batches = session
            .sql(&format!("explain {sql}"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_filter_on_a_hive_partition_column_reads_only_that_partitions_files() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../example_project");
        let project = crate::project::load(&root).unwrap();
        let session = SessionContext::new();
        register_source(
            &Embedded,
            &session,
            &project.sources["raw.events"],
            &Stores::default(),
            &SourceScans::default(),
        )
        .await
        .unwrap();

        let plan = explain(
            &session,
            "select event_id from raw.events where date = '2024-01-15'",
        )
        .await;
        assert!(plan.contains("date=2024-01-15/part-0.parquet"), "{plan}");
        assert_eq!(plan.matches("part-0.parquet").count(), 1, "{plan}");

        let all = explain(&session, "select event_id from raw.events").await;
        assert!(
            all.contains("date=2024-01-12") && all.contains("date=2024-01-18"),
            "{all}"
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_filter_on_a_delta_partition_column_reads_only_that_partitions_files() {
        let dir = tempfile::tempdir().unwrap();
        let session = SessionContext::new();
        session
            .sql(&format!(
                "create external table events stored as parquet location '{}' \
                 partitioned by (date)",
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../example_project/data/raw/events/")
                    .display()
            ))
            .await
            .unwrap();
        let frame = session
            .sql("select event_id, date from events")
            .await
            .unwrap();
        let schema = std::sync::Arc::new(frame.schema().as_arrow().clone());
        let url = url::Url::from_directory_path(dir.path().join("stg")).unwrap();
        let table = crate::storage::ModelTable::open_for_build(
            &Default::default(),
            "stg",
            &url,
            &schema,
            &crate::storage::WriteMode::ReplacePartitions {
                partition_by: vec!["date".into()],
            },
            None,
            None,
        )
        .await
        .unwrap();
        let staged = table
            .stage(frame.execute_stream().await.unwrap())
            .await
            .unwrap();
        table.commit(staged, Default::default()).await.unwrap();

        let published = open_published(&Default::default(), &url, "stg")
            .await
            .unwrap();
        let provider = Embedded
            .delta_table(&session, &published, &url)
            .await
            .unwrap();
        session.register_table("stg", provider).unwrap();
        let plan = explain(
            &session,
            "select event_id from stg where date = '2024-01-15'",
        )
        .await;
        assert!(plan.contains("date=2024-01-15/"), "{plan}");
        assert_eq!(plan.matches(".parquet").count(), 1, "{plan}");
    }
}
