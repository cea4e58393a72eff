//! Asset blob stores: a local directory ([`FsAssetStore`], feature `fs`) and any
//! `object_store` backend such as S3 (`ObjectAssetStore`, feature `s3`). Both implement
//! core's [`AssetStore`](gatewai_core::AssetStore), keep each asset's description in the
//! store's `file_assets` table, and make their keys themselves from fresh ids. An asset handed
//! back to them is read by the key recorded for its id (a key it carries must be that one), so
//! that a crafted reference can never name a blob outside the store, nor another asset's.
//! An asset whose metadata names an owner (`ownerId`, or `userId`) is granted to that user as
//! its description is stored ([`AssetRecordStore::put_asset_record`](crate::AssetRecordStore::put_asset_record)):
//! the user must exist, or the put fails and leaves no blob behind.
//!
//! A bounded read (`AssetStore::read_limited`) refuses an asset over its limit three times
//! over, never holding more than the limit and one byte: by the size its record states, by
//! the blob's own size (the file's metadata, the object's length) before reading, and while
//! reading, as soon as more than the limit arrived (a blob may have grown or been replaced
//! behind the store's back, and its record never see it).

/// Implements core's `AssetStore` for a blob store with `put_blob`, `read_blob`,
/// `read_blob_limited`, `read_blob_stream`, `read_blob_range` and `delete_blob` methods and a `records` field (the
/// [`Store`](crate::Store) keeping asset descriptions), reporting every error as core's asset
/// error. Both blob stores share it.
#[cfg(any(feature = "fs", feature = "s3"))]
macro_rules! asset_store_over_blobs {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl gatewai_core::AssetStore for $store {
            async fn put(
                &self,
                asset: gatewai_core::NewAsset,
            ) -> gatewai_core::Result<gatewai_core::FileAsset> {
                self.put_blob(asset)
                    .await
                    .map_err(|e| e.into_core_asset_error("new asset"))
            }

            async fn read(
                &self,
                asset: &gatewai_core::FileAsset,
            ) -> gatewai_core::Result<bytes::Bytes> {
                self.read_blob(asset)
                    .await
                    .map_err(|e| e.into_core_asset_error(&asset.id))
            }

            async fn read_limited(
                &self,
                asset: &gatewai_core::FileAsset,
                max_bytes: u64,
            ) -> gatewai_core::Result<bytes::Bytes> {
                self.read_blob_limited(asset, max_bytes)
                    .await
                    .map_err(|e| e.into_core_asset_error(&asset.id))
            }

            async fn read_stream(
                &self,
                asset: &gatewai_core::FileAsset,
            ) -> gatewai_core::Result<gatewai_core::AssetStream> {
                self.read_blob_stream(asset)
                    .await
                    .map_err(|e| e.into_core_asset_error(&asset.id))
            }

            async fn read_range(
                &self,
                asset: &gatewai_core::FileAsset,
                range: std::ops::Range<u64>,
            ) -> gatewai_core::Result<gatewai_core::AssetStream> {
                self.read_blob_range(asset, range)
                    .await
                    .map_err(|e| e.into_core_asset_error(&asset.id))
            }

            async fn get(&self, id: &str) -> gatewai_core::Result<Option<gatewai_core::FileAsset>> {
                self.records
                    .get_asset_record(id)
                    .await
                    .map_err(|e| e.into_core_asset_error(id))
            }

            async fn delete(&self, asset: &gatewai_core::FileAsset) -> gatewai_core::Result<()> {
                self.delete_blob(asset)
                    .await
                    .map_err(|e| e.into_core_asset_error(&asset.id))
            }
        }
    };
}

#[cfg(feature = "fs")]
mod fs;
#[cfg(feature = "s3")]
mod object;

#[cfg(feature = "fs")]
pub use fs::FsAssetStore;
#[cfg(feature = "s3")]
pub use object::ObjectAssetStore;

use crate::error::{Error, Result};
use gatewai_core::{FileAsset, NewAsset};

/// The longest key accepted.
const MAX_KEY_LEN: usize = 512;

/// A fresh asset id and the key its blob is stored under: `assets/<2 hex>/<uuid>`.
pub(crate) fn new_key() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let key = format!("assets/{}/{id}", &id[..2]);
    (id, key)
}

/// The key of an asset as its record has it. A caller's [`FileAsset`] is untrusted (it may
/// come from a workflow document): its id names the asset, and a key it carries must be the
/// recorded one, so that a crafted reference cannot reach another asset's blob under an id
/// its caller may use.
pub(crate) async fn recorded_key(records: &crate::Store, asset: &FileAsset) -> Result<String> {
    Ok(recorded(records, asset).await?.key)
}

/// The record of an asset, checked as [`recorded_key`] says, for a read of at most
/// `max_bytes`: an asset whose recorded size is over the limit is refused here, before its
/// blob is touched.
pub(crate) async fn recorded_within(
    records: &crate::Store,
    asset: &FileAsset,
    max_bytes: u64,
) -> Result<FileAsset> {
    let record = recorded(records, asset).await?;
    within_limit(&record.id, Some(record.size), max_bytes)?;
    Ok(record)
}

/// [`Error::AssetTooLarge`] when `size` (when known) is over `max_bytes`.
pub(crate) fn within_limit(id: &str, size: Option<u64>, max_bytes: u64) -> Result<()> {
    match size {
        Some(size) if size > max_bytes => Err(too_large(id, max_bytes, Some(size))),
        _ => Ok(()),
    }
}

/// An asset over a bounded read's limit.
pub(crate) fn too_large(id: &str, max_bytes: u64, size: Option<u64>) -> Error {
    Error::AssetTooLarge {
        id: id.to_owned(),
        max_bytes,
        size,
    }
}

/// An asset's record, found by the caller's id; a key the caller's asset carries must be the
/// recorded one (see [`recorded_key`]).
async fn recorded(records: &crate::Store, asset: &FileAsset) -> Result<FileAsset> {
    if !asset.key.is_empty() {
        check_key(&asset.key)?;
    }
    let stored = records
        .get_asset_record(&asset.id)
        .await?
        .ok_or_else(|| Error::not_found("asset", &asset.id))?;
    if !asset.key.is_empty() && asset.key != stored.key {
        return Err(Error::InvalidKey {
            key: asset.key.chars().take(100).collect(),
            reason: "not the key recorded for the asset's id",
        });
    }
    Ok(stored)
}

/// Checks that a key is relative, made of `/`-separated segments of ASCII letters, digits,
/// `-`, `_` and `.`, none of them empty, `.` or `..`. Such a key cannot leave the store's root
/// on any platform.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidKey {
            key: key.chars().take(100).collect(),
            reason,
        })
    };
    if key.is_empty() {
        return reject("empty");
    }
    if key.len() > MAX_KEY_LEN {
        return reject("too long");
    }
    if key.starts_with('/') || key.starts_with('\\') {
        return reject("absolute path");
    }
    for segment in key.split('/') {
        match segment {
            "" => return reject("empty path segment"),
            "." | ".." => return reject("`.` or `..` path segment"),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return reject("characters other than ASCII letters, digits, `-`, `_`, `.` and `/`");
        }
    }
    Ok(())
}

/// The asset description of a new blob.
pub(crate) fn describe(asset: &NewAsset, id: String, key: String, bucket: &str) -> FileAsset {
    FileAsset {
        id,
        name: asset.name.clone(),
        bucket: bucket.to_owned(),
        key,
        mime_type: asset.mime_type.clone(),
        size: asset.bytes.len() as u64,
        width: asset.width,
        height: asset.height,
        fps: asset.fps,
        duration: asset.duration,
        metadata: asset.metadata.clone(),
        ..FileAsset::default()
    }
}

/// The owner named in an asset's metadata (`ownerId` or `userId`), if any: the user the
/// asset is granted to as it is stored.
pub(crate) fn owner_of(asset: &NewAsset) -> Option<&str> {
    let metadata = asset.metadata.as_ref()?;
    metadata
        .get("ownerId")
        .or_else(|| metadata.get("userId"))
        .and_then(|v| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_pass_the_check() {
        for _ in 0..100 {
            let (id, key) = new_key();
            check_key(&key).unwrap();
            assert!(key.ends_with(&id));
        }
    }

    #[test]
    fn escaping_or_odd_keys_are_rejected() {
        for key in [
            "",
            "..",
            "../etc/passwd",
            "assets/../../x",
            "assets/./x",
            "/etc/passwd",
            "\\windows\\system32",
            "assets//x",
            "assets/x/",
            "C:\\x",
            "assets/a b",
            "assets/\u{0}x",
            "assets/ü",
            "assets/x\\..\\..\\y",
        ] {
            let err = check_key(key).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidInput, "{key:?}");
        }
        check_key(&"a".repeat(MAX_KEY_LEN + 1)).unwrap_err();
        check_key("assets/ab/abc.png").unwrap();
    }
}
