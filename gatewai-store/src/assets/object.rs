//! Asset blobs in an object store (S3 and compatibles, through the `object_store` crate).

use super::{
    check_key, describe, new_key, owner_of, recorded_key, recorded_within, too_large, within_limit,
};
use crate::error::{Error, Result};
use crate::store::Store;
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
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

    /// An asset's object as the stream of chunks its store answers with.
    async fn read_blob_stream(&self, asset: &FileAsset) -> Result<gatewai_core::AssetStream> {
        let location = self.location_of(asset).await?;
        self.stream_object(asset, location, None).await
    }

    /// Bytes `range` of an asset's object: only the range is asked of its store. A range
    /// starting at or past the object's end yields nothing, as a file's does (a store refuses
    /// such a range; the object's length then tells).
    async fn read_blob_range(
        &self,
        asset: &FileAsset,
        range: std::ops::Range<u64>,
    ) -> Result<gatewai_core::AssetStream> {
        let location = self.location_of(asset).await?;
        if range.is_empty() {
            // (A store refuses an empty range: there is nothing to read.)
            return Ok(Box::pin(futures::stream::empty()));
        }
        let start = range.start;
        match self
            .stream_object(
                asset,
                location.clone(),
                Some(object_store::GetRange::Bounded(range)),
            )
            .await
        {
            Err(e) if e.kind() != crate::ErrorKind::NotFound => {
                match self.objects.head(&location).await {
                    Ok(meta) if meta.size <= start => Ok(Box::pin(futures::stream::empty())),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// The object's bytes, or those of `range`, as its store streams them.
    async fn stream_object(
        &self,
        asset: &FileAsset,
        location: ObjectPath,
        range: Option<object_store::GetRange>,
    ) -> Result<gatewai_core::AssetStream> {
        use futures::TryStreamExt;
        let options = object_store::GetOptions {
            range,
            ..Default::default()
        };
        let found = match self.objects.get_opts(&location, options).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::not_found("asset", &asset.id));
            }
            Err(e) => return Err(e.into()),
        };
        let id = asset.id.clone();
        Ok(Box::pin(found.into_stream().map_err(move |e| {
            Error::from(e).into_core_asset_error(&id)
        })))
    }

    /// Reads an asset's object if it holds at most `max_bytes`: refused by its record's size,
    /// then by the object's length as the store answers the request (before any of the body
    /// is read), then while streaming the body (never more than `max_bytes` plus one chunk is
    /// held), so that a record understating the object, or an object replaced since, is still
    /// stopped. Dropping the body stream of a refused object closes its connection.
    async fn read_blob_limited(&self, asset: &FileAsset, max_bytes: u64) -> Result<Bytes> {
        let record = recorded_within(&self.records, asset, max_bytes).await?;
        let location = self.location(&record.key)?;
        let found = match self.objects.get(&location).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::not_found("asset", &record.id));
            }
            Err(e) => return Err(e.into()),
        };
        let len = found
            .meta
            .size
            .max(found.range.end.saturating_sub(found.range.start));
        within_limit(&record.id, Some(len), max_bytes)?;
        match collect_within(found.into_stream(), len, max_bytes).await? {
            Some(bytes) => Ok(bytes),
            None => {
                tracing::warn!(
                    asset = %record.id,
                    recorded_size = record.size,
                    object_size = len,
                    max_bytes,
                    "asset object held more than its size said; the read stopped at the limit"
                );
                Err(too_large(&record.id, max_bytes, None))
            }
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

/// The chunks of `stream` joined, or `None` as soon as they come to more than `max_bytes`
/// (the rest of the stream is never polled). `expected` (the size announced, at most
/// `max_bytes`) sizes the first allocation.
async fn collect_within<S>(stream: S, expected: u64, max_bytes: u64) -> Result<Option<Bytes>>
where
    S: Stream<Item = object_store::Result<Bytes>>,
{
    let mut stream = std::pin::pin!(stream);
    let first = usize::try_from(expected.min(max_bytes)).unwrap_or(0);
    let mut joined = BytesMut::with_capacity(first);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (joined.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
            return Ok(None);
        }
        joined.extend_from_slice(&chunk);
    }
    Ok(Some(joined.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(sizes: &[usize]) -> impl Stream<Item = object_store::Result<Bytes>> + use<> {
        let chunks: Vec<_> = sizes
            .iter()
            .map(|&n| Ok(Bytes::from(vec![7u8; n])))
            .collect();
        futures::stream::iter(chunks)
    }

    #[tokio::test]
    async fn a_body_is_collected_up_to_the_limit_exactly() {
        let joined = collect_within(chunks(&[3, 4, 3]), 10, 10).await.unwrap();
        assert_eq!(joined.map(|b| b.len()), Some(10));
        let empty = collect_within(chunks(&[]), 0, 0).await.unwrap();
        assert_eq!(empty.map(|b| b.len()), Some(0));
    }

    /// A body longer than announced (the object replaced, a lying length) is stopped as soon
    /// as it passes the limit: the chunks after that are never polled.
    #[tokio::test]
    async fn a_body_past_the_limit_is_stopped_there() {
        let polled = std::sync::atomic::AtomicUsize::new(0);
        let stream = chunks(&[4, 4, 4, 4, 4]).inspect(|_| {
            polled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        assert!(collect_within(stream, 4, 10).await.unwrap().is_none());
        assert_eq!(polled.load(std::sync::atomic::Ordering::Relaxed), 3);
        assert!(
            collect_within(chunks(&[11]), 0, 10)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_failing_body_is_an_error() {
        let stream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(object_store::Error::NotImplemented),
        ]);
        assert!(collect_within(stream, 4, 10).await.is_err());
    }
}
