//! Asset blobs in a local directory.

use super::{
    check_key, describe, new_key, owner_of, recorded_key, recorded_within, too_large, within_limit,
};
use crate::error::{Error, Result};
use crate::store::Store;
use bytes::Bytes;
use gatewai_core::{FileAsset, NewAsset};
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

/// The most bytes of a file one chunk of [`AssetStore::read_stream`] holds.
///
/// [`AssetStore::read_stream`]: gatewai_core::AssetStore::read_stream
const STREAM_CHUNK: usize = 64 * 1024;

/// An [`AssetStore`](gatewai_core::AssetStore) keeping blobs as files under a root directory, and their descriptions in
/// a [`Store`]'s `file_assets` table. Keys are made here (`assets/<2 hex>/<id>`); a key read
/// back is checked ([`FsAssetStore::path_of`]) so that no asset, whatever its JSON says, can
/// name a file outside the root.
#[derive(Debug, Clone)]
pub struct FsAssetStore {
    root: PathBuf,
    bucket: String,
    records: Store,
}

impl FsAssetStore {
    /// A store under `root` (created if missing), describing its assets in `records`.
    pub async fn open(root: impl AsRef<Path>, records: Store) -> Result<Self> {
        let root = root.as_ref();
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|source| Error::Io {
                path: root.to_owned(),
                source,
            })?;
        let root = tokio::fs::canonicalize(root)
            .await
            .map_err(|source| Error::Io {
                path: root.to_owned(),
                source,
            })?;
        Ok(FsAssetStore {
            root,
            bucket: "local".to_owned(),
            records,
        })
    }

    /// Names the bucket written into the assets' descriptions (`"local"` by default).
    pub fn with_bucket(mut self, bucket: impl Into<String>) -> Self {
        self.bucket = bucket.into();
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a key names, after checking the key cannot leave the root.
    pub fn path_of(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// The file of an asset, by its recorded key (see [`recorded_key`]).
    async fn file_of(&self, asset: &FileAsset) -> Result<PathBuf> {
        self.path_of(&recorded_key(&self.records, asset).await?)
    }

    async fn put_blob(&self, asset: NewAsset) -> Result<FileAsset> {
        let (id, key) = new_key();
        let path = self.path_of(&key)?;
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        // Written beside, then renamed: a reader never sees half a file.
        let partial = path.with_extension("partial");
        tokio::fs::write(&partial, &asset.bytes)
            .await
            .map_err(|source| Error::Io {
                path: partial.clone(),
                source,
            })?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        let file = describe(&asset, id, key, &self.bucket);
        if let Err(e) = self.records.put_asset_record(&file, owner_of(&asset)).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(e);
        }
        Ok(file)
    }

    async fn read_blob(&self, asset: &FileAsset) -> Result<Bytes> {
        let path = self.file_of(asset).await?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::not_found("asset", &asset.id))
            }
            Err(source) => Err(Error::Io { path, source }),
        }
    }

    /// An asset's file as a stream of chunks of at most [`STREAM_CHUNK`] bytes, read as the
    /// stream is polled (a download holds one chunk at a time, not the file).
    async fn read_blob_stream(&self, asset: &FileAsset) -> Result<gatewai_core::AssetStream> {
        self.read_blob_range(asset, 0..u64::MAX).await
    }

    /// Bytes `range` of an asset's file, as [`read_blob_stream`](Self::read_blob_stream)
    /// streams the whole: the file is read from the range's start, and no further than its
    /// end.
    async fn read_blob_range(
        &self,
        asset: &FileAsset,
        range: std::ops::Range<u64>,
    ) -> Result<gatewai_core::AssetStream> {
        use futures::TryStreamExt;
        use tokio::io::AsyncSeekExt;
        let path = self.file_of(asset).await?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found("asset", &asset.id));
            }
            Err(source) => return Err(Error::Io { path, source }),
        };
        if range.start > 0
            && let Err(source) = file.seek(std::io::SeekFrom::Start(range.start)).await
        {
            return Err(Error::Io { path, source });
        }
        let id = asset.id.clone();
        let left = range.end.saturating_sub(range.start);
        let chunks =
            futures::stream::try_unfold((file, path, left), |(mut file, path, left)| async move {
                if left == 0 {
                    return Ok(None);
                }
                let mut chunk = vec![0u8; (STREAM_CHUNK as u64).min(left) as usize];
                match file.read(&mut chunk).await {
                    Ok(0) => Ok(None),
                    Ok(n) => {
                        chunk.truncate(n);
                        Ok(Some((Bytes::from(chunk), (file, path, left - n as u64))))
                    }
                    Err(source) => Err(Error::Io { path, source }),
                }
            });
        Ok(Box::pin(
            chunks.map_err(move |e| e.into_core_asset_error(&id)),
        ))
    }

    /// Reads an asset's file if it holds at most `max_bytes`: refused by its record's size,
    /// then by the file's size, then while reading (never more than `max_bytes + 1` bytes are
    /// read), so that a record understating the file, or a file grown since, is still stopped.
    async fn read_blob_limited(&self, asset: &FileAsset, max_bytes: u64) -> Result<Bytes> {
        let record = recorded_within(&self.records, asset, max_bytes).await?;
        let path = self.path_of(&record.key)?;
        let io = |path: &Path, source: std::io::Error| match source.kind() {
            std::io::ErrorKind::NotFound => Error::not_found("asset", &record.id),
            _ => Error::Io {
                path: path.to_owned(),
                source,
            },
        };
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io(&path, e))?;
        let len = file.metadata().await.map_err(|e| io(&path, e))?.len();
        within_limit(&record.id, Some(len), max_bytes)?;
        // The file's size, at most the limit: a fair first allocation, never a huge one.
        let mut buffer = Vec::with_capacity(usize::try_from(len.min(max_bytes)).unwrap_or(0));
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut buffer)
            .await
            .map_err(|e| io(&path, e))?;
        if buffer.len() as u64 > max_bytes {
            tracing::warn!(
                asset = %record.id,
                recorded_size = record.size,
                file_size = len,
                max_bytes,
                "asset file held more than its size said; the read stopped at the limit"
            );
            return Err(too_large(&record.id, max_bytes, None));
        }
        Ok(Bytes::from(buffer))
    }

    async fn delete_blob(&self, asset: &FileAsset) -> Result<()> {
        let path = self.file_of(asset).await?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path, source }),
        }
        self.records.delete_asset_record(&asset.id).await?;
        Ok(())
    }
}

asset_store_over_blobs!(FsAssetStore);
