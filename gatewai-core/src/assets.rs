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

/// `stream` (bytes of the asset `asset_id`) checked against the length expected of it (the
/// asset's recorded size, or the length of the range read): should the bytes come to more or
/// fewer, the stream ends in an error (kind [`ErrorKind::Io`]) naming the asset, where it
/// would otherwise send more or end early. For a host that declares the length (an HTTP
/// `Content-Length`) before streaming: a file whose size changed behind its store's back then
/// breaks the download instead of passing for a whole one. (Only the length is checked: a file
/// rewritten at the same size passes.)
pub fn sized_stream(asset_id: &str, size: u64, stream: AssetStream) -> AssetStream {
    use futures::StreamExt;
    struct State {
        stream: AssetStream,
        id: String,
        size: u64,
        sent: u64,
        ended: bool,
    }
    let state = State {
        stream,
        id: asset_id.to_owned(),
        size,
        sent: 0,
        ended: false,
    };
    let mismatch = |s: &State, what: &str| {
        tracing::error!(asset_id = %s.id, expected = s.size, read = s.sent, "the asset's stored bytes come to {what} than expected");
        Error::asset(
            &s.id,
            ErrorKind::Io,
            format!(
                "the stored bytes come to {what} than the {} expected ({} read)",
                s.size, s.sent
            ),
        )
    };
    Box::pin(futures::stream::unfold(state, move |mut s| async move {
        if s.ended {
            return None;
        }
        let item = match s.stream.next().await {
            Some(Ok(chunk)) => {
                s.sent += chunk.len() as u64;
                if s.sent > s.size {
                    Err(mismatch(&s, "more"))
                } else {
                    Ok(chunk)
                }
            }
            Some(Err(e)) => Err(e),
            None if s.sent < s.size => Err(mismatch(&s, "fewer")),
            None => return None,
        };
        s.ended = item.is_err();
        Some((item, s))
    }))
}

/// The bytes of `stream` within `range` (offsets into the whole stream), without copying:
/// chunks before it are skipped, the stream is dropped once the range is sent, and a range
/// reaching past the end yields what there is. What [`AssetStore::read_range`] does by
/// default.
pub fn range_of_stream(stream: AssetStream, range: std::ops::Range<u64>) -> AssetStream {
    use futures::StreamExt;
    let state = (
        Some(stream),
        range.start,
        range.end.saturating_sub(range.start),
    );
    Box::pin(futures::stream::unfold(
        state,
        |(stream, mut skip, left)| async move {
            let mut stream = stream.filter(|_| left > 0)?;
            loop {
                let chunk = match stream.next().await? {
                    Ok(chunk) => chunk,
                    Err(e) => return Some((Err(e), (None, 0, 0))),
                };
                let len = chunk.len() as u64;
                if skip >= len {
                    skip -= len;
                    continue;
                }
                let take = (len - skip).min(left);
                let part = chunk.slice(skip as usize..(skip + take) as usize);
                return Some((Ok(part), (Some(stream), 0, left - take)));
            }
        },
    ))
}

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

    /// Bytes `range` of an asset (offsets into its bytes) as a stream of chunks, for an HTTP
    /// range request (a video player seeking). A range reaching past the asset's end yields
    /// what there is: a host checks the range against the asset's size first, and the length
    /// it gets with [`sized_stream`]. Opening fails as [`read_stream`](Self::read_stream)
    /// does.
    ///
    /// The default implementation streams the asset from its start and keeps the range
    /// ([`range_of_stream`]); the stores of `gatewai-store` start reading at the range.
    async fn read_range(
        &self,
        asset: &FileAsset,
        range: std::ops::Range<u64>,
    ) -> Result<AssetStream> {
        let stream = self.read_stream(asset).await?;
        Ok(range_of_stream(stream, range))
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn asset(size: u64) -> FileAsset {
        FileAsset {
            id: "a1".to_owned(),
            size,
            ..FileAsset::default()
        }
    }

    fn chunks(parts: Vec<Result<&'static [u8]>>) -> AssetStream {
        Box::pin(futures::stream::iter(
            parts.into_iter().map(|p| p.map(Bytes::from_static)),
        ))
    }

    async fn collect(asset: &FileAsset, parts: Vec<Result<&'static [u8]>>) -> Vec<Result<Bytes>> {
        sized_stream(&asset.id, asset.size, chunks(parts))
            .collect()
            .await
    }

    async fn joined(stream: AssetStream) -> Vec<u8> {
        let parts: Vec<Result<Bytes>> = stream.collect().await;
        parts
            .into_iter()
            .flat_map(|p| p.unwrap().to_vec())
            .collect()
    }

    #[tokio::test]
    async fn a_range_of_a_stream_spans_its_chunks() {
        let parts = || chunks(vec![Ok(b"abc"), Ok(b""), Ok(b"defg"), Ok(b"hij")]);
        let all = b"abcdefghij";
        for (start, end) in [
            (0, 10),
            (0, 0),
            (2, 3),
            (2, 8),
            (3, 7),
            (9, 10),
            (5, 100),
            (10, 12),
        ] {
            let got = joined(range_of_stream(parts(), start..end)).await;
            let want = &all[(start as usize).min(10)..(end as usize).min(10)];
            assert_eq!(got, want, "{start}..{end}");
        }
        // Once the range is sent, the rest of the stream is not read: an error after it is
        // never seen; one within it is passed on.
        let failing = || {
            chunks(vec![
                Ok(b"abc"),
                Err(Error::asset("a1", ErrorKind::Io, "disk gone")),
            ])
        };
        assert_eq!(joined(range_of_stream(failing(), 1..3)).await, b"bc");
        let got: Vec<_> = range_of_stream(failing(), 1..5).collect().await;
        assert_eq!(got.len(), 2);
        assert!(got[1].is_err());
    }

    #[tokio::test]
    async fn the_default_range_read_keeps_the_range_of_the_whole() {
        let store = MemoryAssetStore::default();
        let asset = store
            .put(NewAsset {
                name: "a.bin".into(),
                mime_type: "application/octet-stream".into(),
                bytes: Bytes::from_static(b"0123456789"),
                ..Default::default()
            })
            .await
            .unwrap();
        let got = joined(store.read_range(&asset, 3..7).await.unwrap()).await;
        assert_eq!(got, b"3456");
    }

    #[tokio::test]
    async fn a_stream_of_the_recorded_size_passes_whole() {
        let got = collect(&asset(5), vec![Ok(b"abc"), Ok(b""), Ok(b"de")]).await;
        let bytes: Vec<u8> = got.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"abcde");
        assert!(collect(&asset(0), vec![]).await.is_empty());
    }

    #[tokio::test]
    async fn more_or_fewer_bytes_than_recorded_end_the_stream_in_an_error() {
        // More: the chunk that goes past the size is not sent, and nothing after it.
        let got = collect(&asset(4), vec![Ok(b"abc"), Ok(b"de"), Ok(b"f")]).await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref().unwrap(), &b"abc"[..]);
        let e = got[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.to_string().contains("a1") && e.to_string().contains("more"),
            "{e}"
        );
        // Fewer: an error after the last chunk.
        let got = collect(&asset(10), vec![Ok(b"abc")]).await;
        assert_eq!(got.len(), 2);
        let e = got[1].as_ref().unwrap_err();
        assert!(
            e.to_string()
                .contains("fewer than the 10 expected (3 read)"),
            "{e}"
        );
        // The store's own error is passed on, and ends the stream.
        let failed = Error::asset("a1", ErrorKind::Io, "disk gone");
        let got = collect(&asset(10), vec![Ok(b"abc"), Err(failed), Ok(b"de")]).await;
        assert_eq!(got.len(), 2);
        assert!(
            got[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("disk gone")
        );
    }
}
