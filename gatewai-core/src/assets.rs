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

/// Stores file assets: blobs plus their [`FileAsset`] description.
#[async_trait]
pub trait AssetStore: Send + Sync + 'static {
    /// Stores the bytes and returns the asset describing them (with a fresh id and key).
    async fn put(&self, asset: NewAsset) -> Result<FileAsset>;

    /// Reads an asset's bytes.
    async fn read(&self, asset: &FileAsset) -> Result<Bytes>;

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

    async fn get(&self, id: &str) -> Result<Option<FileAsset>> {
        Ok(self.lock().get(id).map(|(a, _)| a.clone()))
    }

    async fn delete(&self, asset: &FileAsset) -> Result<()> {
        self.lock().remove(&asset.id);
        Ok(())
    }
}
