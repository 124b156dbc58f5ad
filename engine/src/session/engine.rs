//! Where a run's queries execute: the embedded DataFusion engine, or a DataFusion Ballista
//! cluster. Both sides of the seam plan in a session dp fills; they differ in how a session
//! reads a Delta table and where a planned query runs. Writing, auditing and committing stay
//! in dp either way: a cluster streams the rows back.
//!
//! On a cluster, the scheduler and the executors decode each plan with [`DpCodec`]: a Delta
//! table goes as its live files at the version read ([`FileTable`]), a Parquet source as its
//! location, everything else as Ballista encodes it.

use std::sync::Arc;

use async_trait::async_trait;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::serde::BallistaLogicalExtensionCodec;
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::{Extension, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, PhysicalPlanner};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use futures::TryStreamExt;

use super::files::{FileTable, TableFile, TableFiles};
use super::{RecordingTable, SessionError};
use crate::project::Project;

/// The executor seam: a session to plan in, how it reads a Delta table, and where a planned
/// query runs (the schema of its plan is the query's; executing it streams the rows).
#[async_trait]
pub trait QueryEngine: Send + Sync + std::fmt::Debug {
    /// A new session whose queries run on this engine, in DataFusion's dialect: for reading
    /// tables (a project's SQL is planned in a [`QueryEngine::project_session`]).
    fn session(&self, runtime: &Arc<RuntimeEnv>) -> SessionContext;

    /// A new session for SQL of `project` (its models, tests, `run_query()`), whose queries run
    /// on this engine, in the project's SQL dialect with its functions.
    fn project_session(&self, runtime: &Arc<RuntimeEnv>, project: &Project) -> SessionContext {
        let session = self.session(runtime);
        super::dialect::apply(&session, project);
        session
    }

    /// How `session` reads the Delta table at `url`, at the version `table` has loaded.
    async fn delta_table(
        &self,
        session: &SessionContext,
        table: &deltalake::DeltaTable,
        url: &url::Url,
    ) -> Result<Arc<dyn TableProvider>, SessionError>;

    /// Whether this engine can run queries now (a cluster's scheduler answers).
    async fn ready(&self) -> Result<(), SessionError>;

    /// The plan that runs `frame` on this engine. Its scans are planned on this machine first,
    /// so the files each source scan reads are recorded before any row is read.
    async fn plan(&self, frame: DataFrame) -> Result<Arc<dyn ExecutionPlan>>;
}

/// The configuration every dp session starts from: SQL spans kept for error locations.
fn session_config() -> SessionConfig {
    SessionConfig::new().set_bool("datafusion.sql_parser.collect_spans", true)
}

/// DataFusion in this process, reading Delta tables through delta-rs.
#[derive(Debug, Default)]
pub struct Embedded;

#[async_trait]
impl QueryEngine for Embedded {
    fn session(&self, runtime: &Arc<RuntimeEnv>) -> SessionContext {
        SessionContext::new_with_config_rt(session_config(), runtime.clone())
    }

    async fn delta_table(
        &self,
        session: &SessionContext,
        table: &deltalake::DeltaTable,
        url: &url::Url,
    ) -> Result<Arc<dyn TableProvider>, SessionError> {
        let delta = SessionError::delta(url);
        table
            .update_datafusion_session(&session.state())
            .map_err(&delta)?;
        let provider = table.table_provider().await;
        provider.map_err(|error| delta(error.into()))
    }

    async fn ready(&self) -> Result<(), SessionError> {
        Ok(())
    }

    async fn plan(&self, frame: DataFrame) -> Result<Arc<dyn ExecutionPlan>> {
        frame.create_physical_plan().await
    }
}

/// A Ballista cluster: each query goes to its scheduler, which plans its stages and runs them
/// on its executors; the rows come back to this process.
#[derive(Debug)]
pub struct Ballista {
    host: String,
    port: u16,
}

impl Ballista {
    /// The cluster whose scheduler listens at `host:port`.
    pub fn new(host: &str, port: u16) -> Self {
        Ballista {
            host: host.to_string(),
            port,
        }
    }

    /// The scheduler's `host:port` (an IPv6 address in brackets).
    fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

#[async_trait]
impl QueryEngine for Ballista {
    fn session(&self, runtime: &Arc<RuntimeEnv>) -> SessionContext {
        let config =
            session_config().with_ballista_logical_extension_codec(Arc::new(DpCodec::default()));
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime.clone())
            .with_default_features()
            .build();
        let state = state
            .upgrade_for_ballista(format!("http://{}", self.address()))
            .expect("a session with a scheduler address upgrades");
        SessionContext::new_with_state(state)
    }

    async fn delta_table(
        &self,
        session: &SessionContext,
        table: &deltalake::DeltaTable,
        url: &url::Url,
    ) -> Result<Arc<dyn TableProvider>, SessionError> {
        // The table's store, for the scans this process plans.
        table
            .update_datafusion_session(&session.state())
            .map_err(SessionError::delta(url))?;
        Ok(Arc::new(delta_files(table, url).await?))
    }

    /// Whether the scheduler accepts a connection (within 10 s).
    async fn ready(&self) -> Result<(), SessionError> {
        let connect = tokio::net::TcpStream::connect((self.host.as_str(), self.port));
        let failure = match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await
        {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
        Err(SessionError::ClusterUnavailable {
            message: format!(
                "the Ballista scheduler at df://{} cannot be reached: {failure}",
                self.address()
            ),
        })
    }

    async fn plan(&self, frame: DataFrame) -> Result<Arc<dyn ExecutionPlan>> {
        // Said plainly up front, rather than as the transport error of the query's stream.
        self.ready()
            .await
            .map_err(|error| DataFusionError::External(Box::new(error)))?;
        let (state, plan) = frame.into_parts();
        let optimized = state.optimize(&plan)?;
        // Planned here once, for the scans' record; the cluster plans it again to run it.
        DefaultPhysicalPlanner::default()
            .create_physical_plan(&optimized, &state)
            .await?;
        state
            .query_planner()
            .create_physical_plan(&optimized, &state)
            .await
    }
}

/// The Delta table at `url` as its live files at the version `table` has loaded. A table
/// whose files need more than a Parquet scan to read (deletion vectors, column mapping) is
/// refused.
pub async fn delta_files(
    table: &deltalake::DeltaTable,
    url: &url::Url,
) -> Result<FileTable, SessionError> {
    let delta = SessionError::delta(url);
    let unsupported = |feature: &str| SessionError::UnsupportedOnCluster {
        location: url.to_string(),
        feature: feature.to_string(),
    };
    let state = table.snapshot().map_err(&delta)?;
    let mapping = state.snapshot().table_properties().column_mapping_mode;
    if let Some(mode) = mapping.map(|m| format!("{m:?}")).filter(|m| m != "None") {
        return Err(unsupported(&format!("column mapping (mode {mode})")));
    }
    let partition_by = state.metadata().partition_columns().to_vec();
    let schema = state.snapshot().arrow_schema();
    let views: Vec<_> = table
        .get_active_add_actions_by_partitions(&[])
        .try_collect()
        .await
        .map_err(&delta)?;
    let mut files = Vec::with_capacity(views.len());
    for view in views {
        if view.deletion_vector_descriptor().is_some() {
            return Err(unsupported("deletion vectors"));
        }
        files.push(TableFile::new(
            view.path().to_string(),
            view.size(),
            &view.partition_values_map(),
            &partition_by,
        ));
    }
    Ok(FileTable::new(
        schema,
        TableFiles::new(url, partition_by, files),
    ))
}

/// The runtime of a cluster's scheduler and executors: an `s3://` bucket is reached as dp
/// reaches it without target settings (the `AWS_*` environment and the credential chain, with
/// object_store's retries), a local path as DataFusion does; temporary files go to `temp_dir`.
pub fn cluster_runtime(temp_dir: Option<&std::path::Path>) -> Result<Arc<RuntimeEnv>> {
    let mut builder = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(ClusterStores::default()));
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}

/// The object stores of a cluster process: see [`cluster_runtime`].
#[derive(Debug, Default)]
struct ClusterStores {
    stores: super::Stores,
    registered: datafusion::execution::object_store::DefaultObjectStoreRegistry,
}

impl datafusion::execution::object_store::ObjectStoreRegistry for ClusterStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn object_store::ObjectStore>,
    ) -> Option<Arc<dyn object_store::ObjectStore>> {
        self.registered.register_store(url, store)
    }

    fn deregister_store(&self, url: &url::Url) -> Result<Arc<dyn object_store::ObjectStore>> {
        self.registered.deregister_store(url)
    }

    fn get_store(&self, url: &url::Url) -> Result<Arc<dyn object_store::ObjectStore>> {
        match self.stores.root_store(url) {
            Ok(Some(store)) => Ok(store),
            Ok(None) => self.registered.get_store(url),
            Err(error) => Err(DataFusionError::External(Box::new(error))),
        }
    }
}

/// A Parquet source as a cluster reads it: its folder, and its hive partition columns (text).
#[derive(serde::Serialize, serde::Deserialize)]
struct ListedSource {
    location: String,
    partition_by: Vec<String>,
}

const FILES: &[u8] = b"dp.files:";
const SOURCE: &[u8] = b"dp.source:";

/// dp's logical plan codec, on the client, the scheduler and the executors: a [`FileTable`]
/// travels as its file list, a Parquet source as its location; everything else as Ballista's
/// own codec encodes it.
#[derive(Debug, Default)]
pub struct DpCodec {
    ballista: BallistaLogicalExtensionCodec,
}

fn codec_error(error: serde_json::Error) -> DataFusionError {
    DataFusionError::Internal(format!("dp codec: {error}"))
}

impl LogicalExtensionCodec for DpCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(files) = buf.strip_prefix(FILES) {
            let files: TableFiles = serde_json::from_slice(files).map_err(codec_error)?;
            return Ok(Arc::new(FileTable::new(schema, files)));
        }
        if let Some(source) = buf.strip_prefix(SOURCE) {
            let source: ListedSource = serde_json::from_slice(source).map_err(codec_error)?;
            let file_schema = Schema::new(
                schema
                    .fields()
                    .iter()
                    .filter(|f| !source.partition_by.contains(f.name()))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                .with_file_extension(".parquet")
                .with_table_partition_cols(
                    source
                        .partition_by
                        .iter()
                        .map(|column| (column.clone(), DataType::Utf8))
                        .collect(),
                );
            let config = ListingTableConfig::new(ListingTableUrl::parse(&source.location)?)
                .with_listing_options(options)
                .with_schema(Arc::new(file_schema));
            return Ok(Arc::new(ListingTable::try_new(config)?));
        }
        self.ballista
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<FileTable>() {
            buf.extend_from_slice(FILES);
            return serde_json::to_writer(buf, table.files()).map_err(codec_error);
        }
        if let Some(source) = node.downcast_ref::<RecordingTable>() {
            let location = source
                .inner
                .table_paths()
                .first()
                .ok_or_else(|| DataFusionError::Internal("a source without a path".into()))?;
            let listed = ListedSource {
                location: location.as_str().to_string(),
                partition_by: source
                    .inner
                    .options()
                    .table_partition_cols
                    .iter()
                    .map(|(column, _)| column.clone())
                    .collect(),
            };
            buf.extend_from_slice(SOURCE);
            return serde_json::to_writer(buf, &listed).map_err(codec_error);
        }
        self.ballista
            .try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::kernel::{DataType as DeltaType, StructField};

    async fn table_at(dir: &std::path::Path, mapping: Option<&str>) -> deltalake::DeltaTable {
        let url = url::Url::from_directory_path(dir).unwrap();
        let mut create = deltalake::DeltaTable::try_from_url(url)
            .await
            .unwrap()
            .create()
            .with_columns(vec![
                StructField::new("id", DeltaType::LONG, true),
                StructField::new("date", DeltaType::STRING, true),
            ])
            .with_partition_columns(["date"]);
        if let Some(mode) = mapping {
            create = create.with_configuration_property(
                deltalake::TableProperty::ColumnMappingMode,
                Some(mode),
            );
        }
        create.await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_delta_table_with_column_mapping_is_refused_for_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        let mapped = table_at(dir.path(), Some("name")).await;
        let error = delta_files(&mapped, &url).await.unwrap_err();
        assert!(
            matches!(&error, SessionError::UnsupportedOnCluster { feature, .. } if feature.contains("column mapping")),
            "{error}"
        );

        let plain_dir = tempfile::tempdir().unwrap();
        let plain_url = url::Url::from_directory_path(plain_dir.path()).unwrap();
        let plain = table_at(plain_dir.path(), None).await;
        let files = delta_files(&plain, &plain_url).await.unwrap();
        assert_eq!(files.files().partition_by, ["date"]);
        assert!(files.files().files.is_empty());
    }

    #[test]
    fn a_file_list_travels_through_the_codec_unchanged() {
        let schema = Arc::new(Schema::new(vec![
            datafusion::arrow::datatypes::Field::new("id", DataType::Int64, true),
            datafusion::arrow::datatypes::Field::new("date", DataType::Utf8, true),
        ]));
        let files = TableFiles::new(
            &url::Url::parse("s3://lake/warehouse/stg").unwrap(),
            vec!["date".into()],
            vec![TableFile {
                path: "date=2024-01-15/part-00000-x.parquet".into(),
                size: 1234,
                partition_values: vec![Some("2024-01-15".into())],
            }],
        );
        let codec = DpCodec::default();
        let mut buf = Vec::new();
        let table: Arc<dyn TableProvider> = Arc::new(FileTable::new(schema.clone(), files.clone()));
        codec
            .try_encode_table_provider(&TableReference::bare("stg"), table, &mut buf)
            .unwrap();
        let context = TaskContext::default();
        let decoded = codec
            .try_decode_table_provider(&buf, &TableReference::bare("stg"), schema, &context)
            .unwrap();
        let decoded = decoded.downcast_ref::<FileTable>().unwrap();
        assert_eq!(decoded.files(), &files);
        assert_eq!(decoded.files().root.as_str(), "s3://lake/warehouse/stg/");
    }
}
