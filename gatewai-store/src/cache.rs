//! The engine's result cache, backed by a store.

use crate::store::Store;
use async_trait::async_trait;
use gatewai_core::{CacheKey, CachedOutputs, NodeResult, ResultCache};
use std::sync::Arc;

/// A [`ResultCache`] whose entries live in the store's `cache_entries` table, so that a node
/// whose type, config and inputs did not change is not executed again, even after a restart.
#[derive(Debug, Clone)]
pub struct StoreResultCache {
    store: Store,
}

impl StoreResultCache {
    /// A cache over a store.
    pub fn new(store: Store) -> Self {
        StoreResultCache { store }
    }
}

#[async_trait]
impl ResultCache for StoreResultCache {
    async fn get(&self, key: &CacheKey) -> gatewai_core::Result<Option<CachedOutputs>> {
        match self.store.cache_get(key).await {
            Ok(found) => Ok(found.map(|outputs| {
                Arc::new(NodeResult {
                    selected_output_index: 0,
                    outputs,
                })
            })),
            Err(e) => Err(gatewai_core::Error::Cache(format!(
                "reading entry {}: {e}",
                key.to_hex()
            ))),
        }
    }

    async fn put(&self, key: CacheKey, outputs: CachedOutputs) -> gatewai_core::Result<()> {
        self.store
            .cache_put(&key, &outputs.outputs)
            .await
            .map_err(|e| gatewai_core::Error::Cache(format!("writing entry {}: {e}", key.to_hex())))
    }
}
