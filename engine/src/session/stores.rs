//! SESSION: the object stores a run reads and writes tables through: one place that builds them, so that
//! delta-rs (tables) and DataFusion (reading staged files, sources on the same store) share one
//! client per store. Today a table's store is the one its URL names; a wrapper can stand
//! between dp and every store (the fault tests make a share of calls fail through it).

use std::sync::Arc;

use deltalake::DeltaTable;
use object_store::ObjectStore;
use url::Url;

use super::SessionError;

/// Wraps every object store a run uses.
pub type StoreWrapper = Arc<dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> + Send + Sync>;

/// How a run reaches its object stores.
#[derive(Clone, Default)]
pub struct Stores {
    wrapper: Option<StoreWrapper>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("wrapped", &self.wrapper.is_some())
            .finish()
    }
}

impl Stores {
    /// Stores whose every call goes through `wrapper`.
    pub fn wrapped(wrapper: StoreWrapper) -> Self {
        Self {
            wrapper: Some(wrapper),
        }
    }

    /// The store at the root of `url`'s bucket or file system, as this run reaches it; `None`
    /// when dp reaches it the default way.
    pub fn root_store(&self, url: &Url) -> Result<Option<Arc<dyn ObjectStore>>, SessionError> {
        let Some(wrapper) = &self.wrapper else {
            return Ok(None);
        };
        let root =
            Url::parse(&format!("{}://{}/", url.scheme(), url.authority())).map_err(|_| {
                SessionError::BadWarehouse {
                    location: url.to_string(),
                }
            })?;
        let (store, _) =
            object_store::parse_url(&root).map_err(|source| SessionError::ObjectStore {
                location: url.to_string(),
                source,
            })?;
        Ok(Some(wrapper(Arc::from(store))))
    }

    /// The Delta table at `url` (not loaded).
    pub fn table(&self, url: &Url) -> Result<DeltaTable, SessionError> {
        let delta = |source| SessionError::Delta {
            location: url.to_string(),
            source,
        };
        let mut builder = deltalake::DeltaTableBuilder::from_url(url.clone()).map_err(delta)?;
        if let Some(store) = self.root_store(url)? {
            builder = builder.with_storage_backend(store, url.clone());
        }
        builder.build().map_err(delta)
    }

    /// Register this run's store of `url` with DataFusion's runtime, for reading sources.
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

/// Where a run's model tables live: one Delta table per model under `url`, reached through
/// `stores`.
#[derive(Debug, Clone)]
pub struct Warehouse {
    pub url: Url,
    pub stores: Stores,
}

impl Warehouse {
    /// The warehouse at `url`, reached the default way.
    pub fn at(url: Url) -> Self {
        Self {
            url,
            stores: Stores::default(),
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
