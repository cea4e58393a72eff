//! Asset blobs in an object store (S3 and compatibles, through the `object_store` crate).

use super::{check_key, describe, new_key, owner_of, recorded_key};
use crate::error::{Error, Result};
use crate::store::Store;
use bytes::Bytes;
use gatewai_core::{FileAsset, NewAsset};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use std::sync::Arc;

/// An [`AssetStore`](gatewai_core::AssetStore) keeping blobs in an [`ObjectStore`] (S3, or any other `object_store`
/// backend) and their descriptions in a [`Store`]'s `file_assets` table. Keys are made here;
/// a key read back is checked like [`FsAssetStore`](crate::FsAssetStore)'s.
#[derive(Debug, Clone)]
pub struct ObjectAssetStore {
    objects: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Option<String>,
    records: Store,
}

impl ObjectAssetStore {
    /// A store over any object store; `bucket` is written into the assets' descriptions.
    pub fn new(objects: Arc<dyn ObjectStore>, bucket: impl Into<String>, records: Store) -> Self {
        ObjectAssetStore {
            objects,
            bucket: bucket.into(),
            prefix: None,
            records,
        }
    }

    /// A store in an S3 bucket, configured from the `AWS_*` environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT` for
    /// S3-compatible services, …).
    pub fn s3_from_env(bucket: &str, records: Store) -> Result<Self> {
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()?;
        Ok(Self::new(Arc::new(s3), bucket, records))
    }

    /// Keeps every blob under a prefix of the bucket (checked like a key).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Result<Self> {
        let prefix = prefix.into();
        check_key(&prefix)?;
        self.prefix = Some(prefix);
        Ok(self)
    }

    fn location(&self, key: &str) -> Result<ObjectPath> {
        check_key(key)?;
        let full = match &self.prefix {
            Some(prefix) => format!("{prefix}/{key}"),
            None => key.to_owned(),
        };
        ObjectPath::parse(&full).map_err(|_| Error::InvalidKey {
            key: key.to_owned(),
            reason: "not a valid object path",
        })
    }

    /// The object of an asset, by its recorded key (see [`recorded_key`]).
    async fn location_of(&self, asset: &FileAsset) -> Result<ObjectPath> {
        self.location(&recorded_key(&self.records, asset).await?)
    }

    async fn put_blob(&self, asset: NewAsset) -> Result<FileAsset> {
        let (id, key) = new_key();
        let location = self.location(&key)?;
        self.objects
            .put(&location, asset.bytes.clone().into())
            .await?;
        let file = describe(&asset, id, key, &self.bucket);
        if let Err(e) = self.records.put_asset_record(&file, owner_of(&asset)).await {
            let _ = self.objects.delete(&location).await;
            return Err(e);
        }
        Ok(file)
    }

    async fn read_blob(&self, asset: &FileAsset) -> Result<Bytes> {
        let location = self.location_of(asset).await?;
        match self.objects.get(&location).await {
            Ok(found) => Ok(found.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(Error::not_found("asset", &asset.id)),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete_blob(&self, asset: &FileAsset) -> Result<()> {
        let location = self.location_of(asset).await?;
        match self.objects.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.records.delete_asset_record(&asset.id).await?;
        Ok(())
    }
}

asset_store_over_blobs!(ObjectAssetStore);
