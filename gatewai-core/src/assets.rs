//! The file-asset store: where media bytes live while they move between nodes. Backends
//! (local directory, S3) come with `gatewai-store`; [`MemoryAssetStore`] serves tests and
//! embedded one-off runs.

use crate::error::{Error, ErrorKind, Result};
use crate::model::FileAsset;
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

/// A new asset to store: its bytes and what is known about them.
#[derive(Debug, Clone, Default)]
pub struct NewAsset {
    /// File name (display only; never used as a path).
    pub name: String,
    /// The real mime type, detected from the bytes.
    pub mime_type: String,
    /// The bytes.
    pub bytes: Bytes,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Frames per second (video).
    pub fps: Option<f64>,
    /// Duration in seconds (video and audio).
    pub duration: Option<f64>,
    /// Free-form metadata (the owner's id, the producing node, …).
    pub metadata: Option<serde_json::Value>,
}

/// An asset's bytes in chunks ([`AssetStore::read_stream`]).
pub type AssetStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<Bytes>> + Send + 'static>>;

/// Stores file assets: blobs plus their [`FileAsset`] description.
#[async_trait]
pub trait AssetStore: Send + Sync + 'static {
    /// Stores the bytes and returns the asset describing them (with a fresh id and key).
    async fn put(&self, asset: NewAsset) -> Result<FileAsset>;

    /// Reads an asset's bytes, whatever their size. What reads an asset named by untrusted
    /// input (a node, an API) should use [`read_limited`](Self::read_limited) instead.
    async fn read(&self, asset: &FileAsset) -> Result<Bytes>;

    /// Reads an asset's bytes if there are at most `max_bytes` of them (an asset of exactly
    /// `max_bytes` is read); a larger asset is [`Error::AssetTooLarge`] naming it and the
    /// limit (kind [`ErrorKind::InvalidInput`], not retryable).
    ///
    /// An implementation must enforce the limit without first reading the whole blob: it
    /// refuses an asset whose recorded size, or the blob's own size (a file's metadata, an
    /// object's length), is over the limit before reading anything, and it stops reading as
    /// soon as more than `max_bytes` arrived, since a record's size may understate the blob
    /// (a file grown or replaced behind the store's back). The stores of this crate and of
    /// `gatewai-store` do all three.
    ///
    /// The default implementation cannot bound what [`read`](Self::read) holds: it refuses an
    /// asset whose record (from [`get`](Self::get)) is over the limit, then reads it with
    /// `read` and refuses a blob that turns out larger, so that it never *returns* more than
    /// `max_bytes`, but a blob whose record understates it is read whole first. A store of
    /// your own should override it.
    async fn read_limited(&self, asset: &FileAsset, max_bytes: u64) -> Result<Bytes> {
        if let Some(record) = self.get(&asset.id).await?
            && record.size > max_bytes
        {
            return Err(Error::asset_too_large(
                &asset.id,
                max_bytes,
                Some(record.size),
            ));
        }
        let bytes = self.read(asset).await?;
        if bytes.len() as u64 > max_bytes {
            return Err(Error::asset_too_large(
                &asset.id,
                max_bytes,
                Some(bytes.len() as u64),
            ));
        }
        Ok(bytes)
    }

    /// An asset's bytes as a stream of chunks, for sending them on (an HTTP download, a file)
    /// without holding them whole. Opening the asset fails as [`read`](Self::read) would (a
    /// missing asset is not found); a failure while streaming is the stream's last item.
    ///
    /// The default implementation reads the asset whole with `read` and yields it as one
    /// chunk; the stores of `gatewai-store` stream their files and objects.
    async fn read_stream(&self, asset: &FileAsset) -> Result<AssetStream> {
        let bytes = self.read(asset).await?;
        Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })))
    }

    /// Looks an asset up by id.
    async fn get(&self, id: &str) -> Result<Option<FileAsset>>;

    /// Deletes an asset and its bytes.
    async fn delete(&self, asset: &FileAsset) -> Result<()>;
}

/// An asset store prints as what it is, whatever its implementation (so that what holds one,
/// such as [`RunOptions`](crate::RunOptions), can derive `Debug`).
impl std::fmt::Debug for dyn AssetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("dyn AssetStore")
    }
}

/// An [`AssetStore`] in memory.
#[derive(Debug, Default)]
pub struct MemoryAssetStore {
    assets: Mutex<HashMap<String, (FileAsset, Bytes)>>,
}

impl MemoryAssetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many assets are stored.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (FileAsset, Bytes)>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still valid.
        self.assets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl AssetStore for MemoryAssetStore {
    async fn put(&self, asset: NewAsset) -> Result<FileAsset> {
        let id = uuid::Uuid::new_v4().to_string();
        let file = FileAsset {
            key: format!("assets/{id}"),
            id: id.clone(),
            name: asset.name,
            bucket: "memory".to_owned(),
            mime_type: asset.mime_type,
            size: asset.bytes.len() as u64,
            width: asset.width,
            height: asset.height,
            fps: asset.fps,
            duration: asset.duration,
            metadata: asset.metadata,
            ..FileAsset::default()
        };
        self.lock().insert(id, (file.clone(), asset.bytes));
        Ok(file)
    }

    async fn read(&self, asset: &FileAsset) -> Result<Bytes> {
        self.lock()
            .get(&asset.id)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| Error::asset(&asset.id, ErrorKind::NotFound, "no such asset"))
    }

    /// The bytes are already in memory: their length is the asset's true size, checked
    /// before a handle on them is returned (whatever the asset's `size` field says).
    async fn read_limited(&self, asset: &FileAsset, max_bytes: u64) -> Result<Bytes> {
        let bytes = self.read(asset).await?;
        let size = bytes.len() as u64;
        if size > max_bytes {
            return Err(Error::asset_too_large(&asset.id, max_bytes, Some(size)));
        }
        Ok(bytes)
    }

    async fn get(&self, id: &str) -> Result<Option<FileAsset>> {
        Ok(self.lock().get(id).map(|(a, _)| a.clone()))
    }

    async fn delete(&self, asset: &FileAsset) -> Result<()> {
        self.lock().remove(&asset.id);
        Ok(())
    }
}
