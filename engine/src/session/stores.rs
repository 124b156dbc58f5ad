//! SESSION: the object stores a run reads and writes tables through: one place builds them, so
//! that delta-rs (tables) and DataFusion (sources, staged files) share one client per bucket. Local
//! paths use the local file system; `s3://` URLs an S3 client built from the target's
//! `storage_options`, the `AWS_*` environment and the credential chain, retrying transient
//! failures with backoff. A wrapper can stand between dp and every store (the fault tests make a
//! share of calls fail through it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use url::Url;

use super::SessionError;
use crate::project::StorageOptions;

/// Wraps every object store a run uses.
pub type StoreWrapper = Arc<dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync>;

/// How a run reaches its object stores.
#[derive(Clone, Default)]
pub struct Stores {
    options: StorageOptions,
    wrapper: Option<StoreWrapper>,
    /// One store per bucket (or file system), built on first use.
    built: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("options", &self.options)
            .field("wrapped", &self.wrapper.is_some())
            .finish()
    }
}

impl Stores {
    /// The stores of a target with `options`.
    pub fn new(options: StorageOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// These stores, each call going through `wrapper`.
    pub fn wrapped(self, wrapper: StoreWrapper) -> Self {
        Self {
            options: self.options,
            wrapper: Some(wrapper),
            built: Arc::default(),
        }
    }

    /// The store at the root of `url`'s bucket or file system, as this run reaches it; `None`
    /// when dp reaches it the default way (a local path, not wrapped).
    pub fn root_store(&self, url: &Url) -> Result<Option<Arc<dyn ObjectStore>>, SessionError> {
        let s3 = matches!(url.scheme(), "s3" | "s3a");
        if !s3 && self.wrapper.is_none() {
            return Ok(None);
        }
        let root = format!("{}://{}/", url.scheme(), url.authority());
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = built.get(&root) {
            return Ok(Some(store.clone()));
        }
        let failed = |source| SessionError::ObjectStore {
            location: root.clone(),
            source,
        };
        let store: Arc<dyn ObjectStore> = if s3 {
            let builder = self.s3(&root);
            let secrets = [
                AmazonS3ConfigKey::AccessKeyId,
                AmazonS3ConfigKey::SecretAccessKey,
                AmazonS3ConfigKey::Token,
            ]
            .iter()
            .filter_map(|key| builder.get_config_value(key))
            .filter(|value| !value.is_empty())
            .collect::<Vec<_>>()
            .into();
            Arc::new(Redacted {
                inner: Arc::new(builder.build().map_err(failed)?),
                name: root.clone(),
                secrets,
            })
        } else {
            let parsed = Url::parse(&root).map_err(|_| SessionError::BadWarehouse {
                location: url.to_string(),
            })?;
            Arc::from(object_store::parse_url(&parsed).map_err(failed)?.0)
        };
        let store = match &self.wrapper {
            Some(wrapper) => wrapper(store),
            None => store,
        };
        built.insert(root, store.clone());
        Ok(Some(store))
    }

    /// The S3 client of bucket `root`: the `AWS_*` environment, then the target's settings
    /// over it (the target refused unsafe ones, in the YAML and in the environment, when it
    /// loaded); transient failures (timeouts, 5xx, throttling) retried with backoff, object_store's
    /// policy: 10 times, within three minutes.
    fn s3(&self, root: &str) -> AmazonS3Builder {
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in self.options.s3_settings() {
            builder = builder.with_config(key, value);
        }
        builder
            .with_url(root)
            .with_retry(object_store::RetryConfig::default())
    }

    /// The Delta table at `url` (not loaded).
    pub fn table(&self, url: &Url) -> Result<DeltaTable, SessionError> {
        let delta = |source| SessionError::Delta {
            location: url.to_string(),
            source,
        };
        register_s3_log_stores();
        let mut builder = deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(delta)?;
        if let Some(store) = self.root_store(url)? {
            builder = builder.with_storage_backend(store, url.clone());
        }
        builder.build().map_err(delta)
    }

    /// Register this run's store of `url` with DataFusion's runtime, for reading sources and
    /// staged files.
    pub fn register(
        &self,
        runtime: &datafusion::execution::runtime_env::RuntimeEnv,
        url: &Url,
    ) -> Result<(), SessionError> {
        if let Some(store) = self.root_store(url)? {
            runtime.register_object_store(url, store);
        }
        Ok(())
    }
}

/// Let delta-rs commit to `s3://` tables through the store dp gives each table: Delta's
/// default log store, which writes each version with a put-if-absent (`If-None-Match: *`).
/// (deltalake's own S3 support would build a second client from its own settings.)
fn register_s3_log_stores() {
    use deltalake::logstore::{
        LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
        logstore_factories,
    };
    struct ConditionalPutLogStore;
    impl LogStoreFactory for ConditionalPutLogStore {
        fn with_options(
            &self,
            prefixed_store: ObjectStoreRef,
            root_store: ObjectStoreRef,
            location: &Url,
            options: &StorageConfig,
        ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
            Ok(default_logstore(
                prefixed_store,
                root_store,
                location,
                options,
            ))
        }
    }
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        for scheme in ["s3://", "s3a://"] {
            let scheme = Url::parse(scheme).expect("a valid scheme URL");
            logstore_factories().insert(scheme, Arc::new(ConditionalPutLogStore));
        }
    });
}

/// Where a run's model tables live: one Delta table per model under `url`, reached through
/// `stores`.
#[derive(Debug, Clone)]
pub struct Warehouse {
    /// The folder (or bucket prefix) URL holding one table per model.
    pub url: Url,
    /// How the run reaches it, and its sources.
    pub stores: Stores,
}

impl Warehouse {
    /// A warehouse that holds no table, for planning from schemas alone: only sources are
    /// registered, read through `stores`.
    pub fn for_planning(stores: &Stores) -> Self {
        Self {
            url: Url::parse("memory:///").expect("a valid URL"),
            stores: stores.clone(),
        }
    }

    /// The URL of the Delta table of `model`: a folder URL, since the target checked its
    /// warehouse can hold one (see `project::resolve_location`) and a model's name is letters,
    /// digits and `_` only. A warehouse that still cannot is an error, not a panic.
    pub fn table_url(&self, model: &str) -> Result<Url, SessionError> {
        self.url
            .join(&format!("{model}/"))
            .ok()
            .filter(|url| url.as_str().starts_with(self.url.as_str()))
            .ok_or_else(|| SessionError::BadWarehouse {
                location: self.url.to_string(),
            })
    }
}

/// An S3 client that never shows its credentials: its `Debug` and `Display` name the bucket
/// only (delta-rs logs its store), and its errors are stripped of the credentials (an S3 error
/// body can quote the access key and the signed session token).
struct Redacted {
    inner: Arc<dyn ObjectStore>,
    /// `s3://bucket/`.
    name: String,
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3({})", self.name)
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3({})", self.name)
    }
}

/// `error`, its text without `secrets`. The kinds delta-rs tells apart (not found, already
/// exists, precondition failed) stay what they are.
fn redact(secrets: &[String], error: object_store::Error) -> object_store::Error {
    use object_store::Error;
    let text = error.to_string();
    if !secrets.iter().any(|secret| text.contains(secret.as_str())) {
        return error;
    }
    let clean = |source: &dyn std::error::Error| -> Box<dyn std::error::Error + Send + Sync> {
        let mut text = source.to_string();
        for secret in secrets {
            text = text.replace(secret.as_str(), "***");
        }
        text.into()
    };
    match error {
        Error::NotFound { path, source } => Error::NotFound {
            path,
            source: clean(source.as_ref()),
        },
        Error::AlreadyExists { path, source } => Error::AlreadyExists {
            path,
            source: clean(source.as_ref()),
        },
        Error::Precondition { path, source } => Error::Precondition {
            path,
            source: clean(source.as_ref()),
        },
        other => Error::Generic {
            store: "S3",
            source: clean(&other),
        },
    }
}

#[async_trait::async_trait]
impl ObjectStore for Redacted {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let put = self.inner.put_opts(location, payload, opts).await;
        put.map_err(|e| redact(&self.secrets, e))
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self.inner.put_multipart_opts(location, opts).await;
        upload.map_err(|e| redact(&self.secrets, e))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let get = self.inner.get_opts(location, options).await;
        get.map_err(|e| redact(&self.secrets, e))
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let secrets = self.secrets.clone();
        let deleted = self.inner.delete_stream(locations);
        deleted.map_err(move |e| redact(&secrets, e)).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let secrets = self.secrets.clone();
        let listed = self.inner.list(prefix);
        listed.map_err(move |e| redact(&secrets, e)).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let listed = self.inner.list_with_delimiter(prefix).await;
        listed.map_err(|e| redact(&self.secrets, e))
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let copied = self.inner.copy_opts(from, to, options).await;
        copied.map_err(|e| redact(&self.secrets, e))
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let renamed = self.inner.rename_opts(from, to, options).await;
        renamed.map_err(|e| redact(&self.secrets, e))
    }
}
