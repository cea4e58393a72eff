//! Bounded reads of file assets: `AssetStore::read_limited` of the memory store, and the
//! trait's default for a store that does not override it.

use async_trait::async_trait;
use bytes::Bytes;
use gatewai_core::{AssetStore, Error, ErrorKind, FileAsset, MemoryAssetStore, NewAsset};
use std::collections::HashMap;
use std::sync::Mutex;

fn new_asset(bytes: &'static [u8]) -> NewAsset {
    NewAsset {
        name: "blob.bin".into(),
        mime_type: "application/octet-stream".into(),
        bytes: Bytes::from_static(bytes),
        ..NewAsset::default()
    }
}

/// The error is the typed one, naming the asset and the limit, and is not retryable.
fn assert_too_large(err: &Error, id: &str, max_bytes: u64, size: Option<u64>) {
    match err {
        Error::AssetTooLarge {
            id: got_id,
            max_bytes: got_max,
            size: got_size,
        } => {
            assert_eq!(
                (got_id.as_str(), *got_max, *got_size),
                (id, max_bytes, size)
            );
        }
        other => panic!("expected AssetTooLarge, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.kind().is_retryable());
    let text = err.to_string();
    assert!(text.contains(id), "{text}");
    assert!(text.contains(&format!("{max_bytes}-byte limit")), "{text}");
}

#[tokio::test]
async fn memory_store_reads_up_to_the_limit_and_refuses_past_it() {
    let store = MemoryAssetStore::new();
    let asset = store.put(new_asset(b"0123456789")).await.unwrap();
    assert_eq!(
        store.read_limited(&asset, 10).await.unwrap(),
        Bytes::from_static(b"0123456789")
    );
    assert_eq!(
        store.read_limited(&asset, u64::MAX).await.unwrap().len(),
        10
    );
    let err = store.read_limited(&asset, 9).await.unwrap_err();
    assert_too_large(&err, &asset.id, 9, Some(10));
    assert_eq!(
        err.to_string(),
        format!(
            "asset `{}` (10 bytes) is larger than the 9-byte limit",
            asset.id
        )
    );
    // The asset's own `size` (untrusted: it may come from a document) is not believed.
    let understated = FileAsset {
        size: 1,
        ..asset.clone()
    };
    let err = store.read_limited(&understated, 9).await.unwrap_err();
    assert_too_large(&err, &asset.id, 9, Some(10));
    // An empty asset is within any limit; an unknown one is not found.
    let empty = store.put(new_asset(b"")).await.unwrap();
    assert!(store.read_limited(&empty, 0).await.unwrap().is_empty());
    let unknown = FileAsset {
        id: "nope".into(),
        ..FileAsset::default()
    };
    let err = store.read_limited(&unknown, 100).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A store implementing only the required methods, whose records may state a size other than
/// the blob's (as a host's database might).
#[derive(Default)]
struct RecordsAndBlobs {
    assets: Mutex<HashMap<String, (FileAsset, Bytes)>>,
    reads: Mutex<usize>,
}

impl RecordsAndBlobs {
    fn insert(&self, id: &str, recorded_size: u64, bytes: &'static [u8]) -> FileAsset {
        let asset = FileAsset {
            id: id.into(),
            size: recorded_size,
            ..FileAsset::default()
        };
        self.assets
            .lock()
            .unwrap()
            .insert(id.into(), (asset.clone(), Bytes::from_static(bytes)));
        asset
    }

    fn reads(&self) -> usize {
        *self.reads.lock().unwrap()
    }
}

#[async_trait]
impl AssetStore for RecordsAndBlobs {
    async fn put(&self, _asset: NewAsset) -> gatewai_core::Result<FileAsset> {
        unimplemented!("not used")
    }

    async fn read(&self, asset: &FileAsset) -> gatewai_core::Result<Bytes> {
        *self.reads.lock().unwrap() += 1;
        self.assets
            .lock()
            .unwrap()
            .get(&asset.id)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| Error::asset(&asset.id, ErrorKind::NotFound, "no such asset"))
    }

    async fn get(&self, id: &str) -> gatewai_core::Result<Option<FileAsset>> {
        Ok(self.assets.lock().unwrap().get(id).map(|(a, _)| a.clone()))
    }

    async fn delete(&self, asset: &FileAsset) -> gatewai_core::Result<()> {
        self.assets.lock().unwrap().remove(&asset.id);
        Ok(())
    }
}

#[tokio::test]
async fn the_default_bounded_read_refuses_by_record_before_reading_and_never_returns_more() {
    let store = RecordsAndBlobs::default();
    let honest = store.insert("honest", 10, b"0123456789");
    assert_eq!(store.read_limited(&honest, 10).await.unwrap().len(), 10);
    assert_eq!(store.reads(), 1);
    // Refused by its record: the blob is never read.
    let err = store.read_limited(&honest, 9).await.unwrap_err();
    assert_too_large(&err, "honest", 9, Some(10));
    assert_eq!(store.reads(), 1, "refused before reading");
    // A record understating the blob: read (the default cannot help it), but not returned.
    let liar = store.insert("liar", 3, b"0123456789");
    let err = store.read_limited(&liar, 5).await.unwrap_err();
    assert_too_large(&err, "liar", 5, Some(10));
    // An unknown asset is not found, as `read` says.
    let unknown = FileAsset {
        id: "nope".into(),
        ..FileAsset::default()
    };
    let err = store.read_limited(&unknown, 5).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// The default stream of an asset is its bytes in one chunk; a missing asset fails when the
/// stream is opened.
#[tokio::test]
async fn the_default_stream_yields_the_asset_whole() {
    use futures::StreamExt;
    let store = MemoryAssetStore::new();
    let asset = store.put(new_asset(b"twelve bytes")).await.unwrap();
    let chunks: Vec<Bytes> = store
        .read_stream(&asset)
        .await
        .unwrap()
        .map(|chunk| chunk.unwrap())
        .collect()
        .await;
    assert_eq!(chunks, [Bytes::from_static(b"twelve bytes")]);
    store.delete(&asset).await.unwrap();
    let err = store.read_stream(&asset).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}
