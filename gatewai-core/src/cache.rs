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
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(DIGITS[usize::from(b >> 4)]));
            s.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        s
    }
}

impl std::str::FromStr for CacheKey {
    type Err = String;

    /// Reads a key written by [`CacheKey::to_hex`] (64 hex digits, either case).
    fn from_str(hex: &str) -> std::result::Result<Self, Self::Err> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(format!(
                "a cache key is 64 hex digits, not {} characters",
                hex.chars().count()
            ));
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let mut key = [0u8; 32];
        for (byte, pair) in key.iter_mut().zip(bytes.chunks_exact(2)) {
            match (digit(pair[0]), digit(pair[1])) {
                (Some(high), Some(low)) => *byte = high << 4 | low,
                _ => return Err("a cache key holds only hex digits".to_owned()),
            }
        }
        Ok(CacheKey(key))
    }
}

/// A key is written as its 64 hex digits.
impl serde::Serialize for CacheKey {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for CacheKey {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        hex.parse().map_err(serde::de::Error::custom)
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

    /// Answers a lookup at once when the cache can (an in-memory cache), sparing the engine
    /// an awaited call per node; `None` (the default) when it cannot, and the engine awaits
    /// [`ResultCache::get`]. When it answers, it answers as `get` would.
    fn try_get(&self, key: &CacheKey) -> Option<Result<Option<CachedOutputs>>> {
        let _ = key;
        None
    }

    /// Stores at once when the cache can, as [`ResultCache::put`] would; `None` (the default)
    /// when it cannot, and the engine awaits `put`.
    fn try_put(&self, key: CacheKey, outputs: &CachedOutputs) -> Option<Result<()>> {
        let _ = (key, outputs);
        None
    }
}

/// A [`ResultCache`] in memory, bounded by entry count (oldest insertions evicted first).
///
/// A large cache is split into shards by key, each with its own lock and its own share of the
/// capacity, so that nodes settling on different threads rarely touch the same lock; eviction
/// is then oldest-first within a shard (keys are content hashes, spread evenly).
#[derive(Debug)]
pub struct MemoryResultCache {
    shards: Box<[Shard]>,
    capacity: usize,
}

/// One shard, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    /// Lookups share a read lock: the eviction order is by insertion, so a hit changes nothing.
    inner: RwLock<CacheInner>,
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

/// Caches at least this large are sharded.
const SHARDED_FROM: usize = 4096;
const SHARDS: usize = 16;

impl MemoryResultCache {
    /// A cache keeping at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let shards = if capacity >= SHARDED_FROM { SHARDS } else { 1 };
        MemoryResultCache {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            capacity,
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| read(s).map.len()).sum()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &CacheKey) -> &Shard {
        &self.shards[usize::from(key.0[0]) % self.shards.len()]
    }
}

fn read(shard: &Shard) -> std::sync::RwLockReadGuard<'_, CacheInner> {
    shard.inner.read().unwrap_or_else(|e| e.into_inner())
}

fn write(shard: &Shard) -> std::sync::RwLockWriteGuard<'_, CacheInner> {
    shard.inner.write().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl ResultCache for MemoryResultCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedOutputs>> {
        Ok(self.lookup(key))
    }

    async fn put(&self, key: CacheKey, outputs: CachedOutputs) -> Result<()> {
        self.store(key, outputs);
        Ok(())
    }

    fn try_get(&self, key: &CacheKey) -> Option<Result<Option<CachedOutputs>>> {
        Some(Ok(self.lookup(key)))
    }

    fn try_put(&self, key: CacheKey, outputs: &CachedOutputs) -> Option<Result<()>> {
        self.store(key, outputs.clone());
        Some(Ok(()))
    }
}

impl MemoryResultCache {
    fn lookup(&self, key: &CacheKey) -> Option<CachedOutputs> {
        read(self.shard(key)).map.get(key).cloned()
    }

    /// Keeps `outputs`, evicting the oldest entries of its shard beyond the shard's capacity.
    fn store(&self, key: CacheKey, outputs: CachedOutputs) {
        let limit = (self.capacity / self.shards.len()).max(1);
        let mut inner = write(self.shard(&key));
        if inner.map.insert(key, outputs).is_none() {
            inner.order.push_back(key);
            while inner.map.len() > limit {
                match inner.order.pop_front() {
                    Some(old) => {
                        inner.map.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_from_its_hex_and_bad_text_is_refused() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) ^ 0xa5;
        }
        let key = CacheKey(bytes);
        assert_eq!(key.to_hex().parse::<CacheKey>(), Ok(key));
        assert_eq!(key.to_hex().to_uppercase().parse::<CacheKey>(), Ok(key));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", key.to_hex()));
        assert_eq!(serde_json::from_str::<CacheKey>(&json).unwrap(), key);
        let short = "ab".repeat(31);
        assert!(
            "".parse::<CacheKey>()
                .unwrap_err()
                .contains("64 hex digits")
        );
        assert!(short.parse::<CacheKey>().unwrap_err().contains("not 62"));
        let odd = format!("{}zz", &key.to_hex()[..62]);
        assert!(odd.parse::<CacheKey>().unwrap_err().contains("only hex"));
        // Multi-byte characters are refused, not sliced.
        let wide = "é".repeat(32);
        assert!(wide.parse::<CacheKey>().is_err());
        assert!(serde_json::from_str::<CacheKey>("\"00\"").is_err());
    }

    #[tokio::test]
    async fn the_memory_cache_answers_at_once_as_it_does_when_awaited() {
        let cache = MemoryResultCache::with_capacity(2);
        let (a, b, c) = (CacheKey([1; 32]), CacheKey([2; 32]), CacheKey([3; 32]));
        let result = Arc::new(NodeResult::default());
        assert!(matches!(cache.try_get(&a), Some(Ok(None))));
        assert!(matches!(cache.try_put(a, &result), Some(Ok(()))));
        cache.put(b, result.clone()).await.unwrap();
        let now = cache.try_get(&a).unwrap().unwrap().unwrap();
        let awaited = cache.get(&a).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&now, &awaited) && Arc::ptr_eq(&now, &result));
        // Past its capacity the oldest entry goes, whichever way it was stored.
        assert!(matches!(cache.try_put(c, &result), Some(Ok(()))));
        assert_eq!(cache.len(), 2);
        assert!(matches!(cache.try_get(&a), Some(Ok(None))));
        assert!(cache.get(&b).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_large_cache_is_sharded_and_never_holds_more_than_its_capacity() {
        let cache = MemoryResultCache::with_capacity(SHARDED_FROM);
        let result = Arc::new(NodeResult::default());
        // Keys whose first byte is `shard` land in that shard.
        let key = |shard: u8, i: u32| {
            let mut bytes = [0u8; 32];
            bytes[0] = shard;
            bytes[1..5].copy_from_slice(&i.to_le_bytes());
            CacheKey(bytes)
        };
        let per_shard = (SHARDED_FROM / SHARDS) as u32;
        // One shard filled twice over keeps only its share, the newest.
        for i in 0..2 * per_shard {
            cache.put(key(0, i), result.clone()).await.unwrap();
        }
        let newest = key(0, 2 * per_shard - 1);
        assert_eq!(cache.len(), per_shard as usize);
        assert!(!holds(&cache, &key(0, 0)).await);
        assert!(holds(&cache, &newest).await);
        // The other shards are untouched by that eviction and fill up to the capacity.
        for shard in 1..SHARDS as u8 {
            for i in 0..2 * per_shard {
                cache.put(key(shard, i), result.clone()).await.unwrap();
            }
        }
        assert_eq!(cache.len(), SHARDED_FROM);
        assert!(holds(&cache, &newest).await);
    }

    async fn holds(cache: &MemoryResultCache, key: &CacheKey) -> bool {
        cache.get(key).await.unwrap().is_some()
    }
}
