//! SESSION: the object stores a run reads and writes tables through: one place builds them, so
//! that delta-rs (tables) and DataFusion (sources, staged files) share one client per bucket. Local
//! paths use the local file system; `s3://` URLs an S3 client built from the target's
//! `storage_options`, the `AWS_*` environment and the credential chain, retrying transient
//! failures with backoff. A wrapper can stand between dp and every store (the fault tests make a
//! share of calls fail through it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use url::Url;

use super::SessionError;
use crate::project::{StorageOptions, unsafe_setting};

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
            Arc::new(self.s3(&root)?.build().map_err(failed)?)
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
    /// over it; transient failures (timeouts, 5xx, throttling) retried with backoff (10 times,
    /// within three minutes). A setting that makes commits unsafe is refused: the target's YAML
    /// was checked at load, this catches the environment.
    fn s3(&self, root: &str) -> Result<AmazonS3Builder, SessionError> {
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in self.options.s3_settings() {
            builder = builder.with_config(key, value);
        }
        let from_environment = [
            builder
                .get_config_value(&AmazonS3ConfigKey::ConditionalPut)
                .map(|value| ("AWS_CONDITIONAL_PUT", value)),
            std::env::var("AWS_S3_ALLOW_UNSAFE_RENAME")
                .ok()
                .map(|value| ("AWS_S3_ALLOW_UNSAFE_RENAME", value)),
        ];
        for (name, value) in from_environment.into_iter().flatten() {
            if let Some(why) = unsafe_setting(name, &value) {
                return Err(SessionError::UnsafeStore {
                    location: root.to_string(),
                    setting: name.to_string(),
                    why: why.to_string(),
                });
            }
        }
        Ok(builder
            .with_url(root)
            .with_retry(object_store::RetryConfig::default()))
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
    pub url: Url,
    pub stores: Stores,
}

impl Warehouse {
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
