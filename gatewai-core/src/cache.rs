//! The result cache: a node whose (type + version, config, inputs) did not change is not
//! executed again (ComfyUI-style content hash). A file value whose asset carries
//! `metadata.contentHash` (the built-in nodes record the blake3 hash of every file they store)
//! is keyed by that hash and its mime type rather than by its asset id, so a source that stores
//! the same bytes again under a new id still lets everything downstream hit the cache. [`MemoryResultCache`] lives in the process;
//! `gatewai-store` backs the cache with a database so hits survive restarts.

use crate::error::Result;
use crate::model::NodeResult;
use async_trait::async_trait;
use std::fmt;
use std::sync::{Arc, RwLock};

/// A content hash over a node's type and version, config, input values and output handles.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    /// The key as 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            use fmt::Write;
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", &self.to_hex()[..16])
    }
}

/// What the cache keeps for a node: the generations its execution produced, as a result
/// whose `outputs` are those generations and whose selection is the first. For a node that
/// replaces its result (most nodes) this is the node's result itself, so a hit shares it
/// rather than copying it.
pub type CachedOutputs = Arc<NodeResult>;

/// Stores node outputs by [`CacheKey`].
#[async_trait]
pub trait ResultCache: Send + Sync + 'static {
    /// The outputs stored under `key`.
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedOutputs>>;

    /// Stores outputs under `key`.
    async fn put(&self, key: CacheKey, outputs: CachedOutputs) -> Result<()>;
}

/// A [`ResultCache`] in memory, bounded by entry count (oldest insertions evicted first).
#[derive(Debug)]
pub struct MemoryResultCache {
    /// Lookups share a read lock: the eviction order is by insertion, so a hit changes nothing.
    inner: RwLock<CacheInner>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct CacheInner {
    map: crate::FastMap<CacheKey, CachedOutputs>,
    order: std::collections::VecDeque<CacheKey>,
}

impl Default for MemoryResultCache {
    fn default() -> Self {
        Self::with_capacity(1_000_000)
    }
}

impl MemoryResultCache {
    /// A cache of at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryResultCache {
            inner: RwLock::new(CacheInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// How many entries are stored.
    pub fn len(&self) -> usize {
        self.read().map.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ResultCache for MemoryResultCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedOutputs>> {
        Ok(self.read().map.get(key).cloned())
    }

    async fn put(&self, key: CacheKey, outputs: CachedOutputs) -> Result<()> {
        let mut inner = self.write();
        if inner.map.insert(key, outputs).is_none() {
            inner.order.push_back(key);
            while inner.map.len() > self.capacity {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.map.remove(&old);
                    }
                    None => break,
                }
            }
        }
        Ok(())
    }
}
