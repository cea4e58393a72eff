//! The asset blob stores through core's `AssetStore` trait: a local directory (descriptions in
//! a SQLite store) and, with `s3`, an object store.

#![cfg(all(feature = "fs", feature = "memory", feature = "sqlite"))]

use bytes::Bytes;
use gatewai_core::{AssetStore, ErrorKind, FileAsset, NewAsset};
use gatewai_store::FsAssetStore;
use gatewai_store::prelude::*;
use serde_json::json;

fn png(name: &str) -> NewAsset {
    NewAsset {
        name: name.into(),
        mime_type: "image/png".into(),
        bytes: Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really"),
        width: Some(2),
        height: Some(3),
        metadata: Some(json!({"ownerId": "alice", "nodeId": "n1"})),
        ..NewAsset::default()
    }
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("assets.db").display()
    );
    with_alice(Store::open(&url).await.unwrap()).await
}

/// A memory store knowing alice, who the assets of [`png`] are stored for.
async fn memory_store() -> Store {
    with_alice(Store::memory()).await
}

/// `store`, with the user alice in it.
async fn with_alice(store: Store) -> Store {
    store
        .upsert_user(&NewUser::new("alice", "alice@example.com"))
        .await
        .unwrap();
    store
}

/// A local-directory asset store under `dir`, recording into `store`.
async fn fs_assets(dir: &tempfile::TempDir, store: Store) -> FsAssetStore {
    FsAssetStore::open(dir.path().join("blobs"), store)
        .await
        .unwrap()
}

#[tokio::test]
async fn fs_store_puts_reads_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = fs_assets(&dir, store.clone()).await;
    let put = assets.put(png("fox.png")).await.unwrap();
    assert_eq!(put.bucket, "local");
    assert_eq!(put.size, 18);
    assert_eq!((put.width, put.height), (Some(2), Some(3)));
    assert!(put.key.ends_with(&put.id) && put.key.starts_with("assets/"));
    // The blob is a file under the root, the description a row.
    let path = assets.path_of(&put.key).unwrap();
    assert!(path.starts_with(assets.root()));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"\x89PNG\r\n\x1a\nnot really"
    );
    assert_eq!(
        store.get_asset_record(&put.id).await.unwrap(),
        Some(put.clone())
    );
    // The user its metadata names owns it.
    assert_eq!(store.asset_owners(&put.id).await.unwrap(), ["alice"]);
    assert_eq!(assets.get(&put.id).await.unwrap(), Some(put.clone()));
    assert_eq!(
        assets.read(&put).await.unwrap(),
        Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really")
    );
    // Stored for a user the store does not know: refused, and no blob is left behind.
    let mut stray = png("stray.png");
    stray.metadata = Some(json!({"ownerId": "nobody"}));
    let err = assets.put(stray).await.unwrap_err();
    assert_eq!(err.kind(), gatewai_core::ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("nobody"), "{err}");
    let blobs = walk(assets.root());
    assert_eq!(
        blobs,
        std::slice::from_ref(&path),
        "only the first asset's file is left"
    );
    // An asset reference without a key (as a client may send it) is found by id.
    let by_id = FileAsset {
        id: put.id.clone(),
        ..FileAsset::default()
    };
    assert_eq!(assets.read(&by_id).await.unwrap().len(), 18);

    assets.delete(&put).await.unwrap();
    assert!(!path.exists());
    assert!(assets.get(&put.id).await.unwrap().is_none());
    let err = assets.read(&put).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    let err = assets.read(&by_id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// Stores 200 KiB and a few bytes that differ chunk to chunk; returns the asset and its bytes.
async fn put_large(assets: &dyn AssetStore) -> (FileAsset, Bytes) {
    let bytes: Bytes = (0..200 * 1024 + 7).map(|i| (i * 31 % 251) as u8).collect();
    let put = assets
        .put(NewAsset {
            bytes: bytes.clone(),
            ..png("large.bin")
        })
        .await
        .unwrap();
    (put, bytes)
}

/// Collects a stream's chunks: their sizes and their bytes joined.
async fn collect(mut stream: gatewai_core::AssetStream) -> (Vec<usize>, Vec<u8>) {
    use futures::StreamExt;
    let (mut sizes, mut all) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        sizes.push(chunk.len());
        all.extend_from_slice(&chunk);
    }
    (sizes, all)
}

/// Reads ranges of the large asset: at its start, across and at chunk boundaries, at its end,
/// past its end (what there is), starting past its end (nothing), and empty; each joined is
/// that slice of the bytes.
async fn check_ranges(assets: &dyn AssetStore, put: &FileAsset, bytes: &Bytes) {
    let len = bytes.len() as u64;
    let cases = [
        (0, 1),
        (1, 70_000),
        (65_535, 65_537),
        (65_536, 131_072),
        (len - 10, len),
        (len - 10, len + 1_000),
        (7, 7),
        (0, len),
        // Starting at or past the end: nothing.
        (len, len + 5),
        (len + 10, len + 20),
    ];
    for (start, end) in cases {
        let (_, all) = collect(assets.read_range(put, start..end).await.unwrap()).await;
        let want = &bytes[start.min(len) as usize..end.min(len) as usize];
        assert_eq!(all, want, "{start}..{end}");
    }
}

/// A range read starts at the range (a video player seeking) and stops at its end.
#[tokio::test]
async fn fs_store_reads_a_range_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = fs_assets(&dir, store).await;
    let (put, bytes) = put_large(&assets).await;
    check_ranges(&assets, &put, &bytes).await;
    // Read in chunks, as the whole is.
    let (sizes, _) = collect(assets.read_range(&put, 1..150_000).await.unwrap()).await;
    assert_eq!(sizes, [65_536, 65_536, 18_927]);
    assets.delete(&put).await.unwrap();
    let err = assets.read_range(&put, 0..10).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// The object store asks its store for the range only.
#[cfg(feature = "s3")]
#[tokio::test]
async fn object_store_reads_a_range_of_an_object() {
    use gatewai_store::ObjectAssetStore;
    use std::sync::Arc;
    let objects = Arc::new(object_store::memory::InMemory::new());
    let assets = ObjectAssetStore::new(objects, "media", memory_store().await);
    let (put, bytes) = put_large(&assets).await;
    check_ranges(&assets, &put, &bytes).await;
    assets.delete(&put).await.unwrap();
    for range in [0..10, 5..5] {
        let err = assets.read_range(&put, range).await.err().unwrap();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
}

/// A download streams an asset's file in chunks, never all of it at once; a missing asset or
/// file fails when the stream is opened, as a read does.
#[tokio::test]
async fn fs_store_streams_a_file_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = fs_assets(&dir, store).await;
    let (put, bytes) = put_large(&assets).await;
    let (sizes, all) = collect(assets.read_stream(&put).await.unwrap()).await;
    assert_eq!(all, bytes);
    assert!(sizes.len() >= 4, "{sizes:?}");
    assert!(sizes.iter().all(|&n| n > 0 && n <= 64 * 1024), "{sizes:?}");
    // The file gone behind the store's back, then the asset deleted.
    std::fs::remove_file(assets.path_of(&put.key).unwrap()).unwrap();
    let err = assets.read_stream(&put).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assets.delete(&put).await.unwrap();
    let err = assets.read_stream(&put).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// The object store streams an object as its store answers, whole once joined.
#[cfg(feature = "s3")]
#[tokio::test]
async fn object_store_streams_an_object() {
    use gatewai_store::ObjectAssetStore;
    use std::sync::Arc;
    let objects = Arc::new(object_store::memory::InMemory::new());
    let assets = ObjectAssetStore::new(objects, "media", memory_store().await);
    let (put, bytes) = put_large(&assets).await;
    let (_, all) = collect(assets.read_stream(&put).await.unwrap()).await;
    assert_eq!(all, bytes);
    assets.delete(&put).await.unwrap();
    let err = assets.read_stream(&put).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A workflow document is untrusted: an asset reference pairing an id its author may use with
/// another asset's key must not reach that other blob (nor delete it).
#[tokio::test]
async fn fs_store_reads_an_asset_by_its_recorded_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = fs_assets(&dir, store.clone()).await;
    let mine = assets.put(png("mine.png")).await.unwrap();
    let theirs = assets
        .put(NewAsset {
            bytes: Bytes::from_static(b"their secret"),
            ..png("theirs.png")
        })
        .await
        .unwrap();
    for crafted in [
        FileAsset {
            key: theirs.key.clone(),
            ..mine.clone()
        },
        FileAsset {
            id: "no-such-asset".into(),
            key: theirs.key.clone(),
            ..FileAsset::default()
        },
    ] {
        let err = assets.read(&crafted).await.unwrap_err();
        assert!(
            matches!(err.kind(), ErrorKind::InvalidInput | ErrorKind::NotFound),
            "{err}"
        );
        assert!(!err.to_string().contains("their secret"));
        assets.delete(&crafted).await.unwrap_err();
    }
    assert_eq!(
        assets.read(&theirs).await.unwrap(),
        Bytes::from_static(b"their secret")
    );
    assert_eq!(assets.read(&mine).await.unwrap().len(), 18);
}

#[tokio::test]
async fn fs_store_rejects_keys_escaping_its_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = memory_store().await;
    let root = dir.path().join("blobs");
    let assets = FsAssetStore::open(&root, store).await.unwrap();
    // A secret beside the root that a crafted asset reference tries to reach.
    std::fs::write(dir.path().join("secret.txt"), b"top secret").unwrap();
    let outside = dir.path().join("secret.txt");
    for key in [
        "../secret.txt".to_owned(),
        "assets/../../secret.txt".to_owned(),
        outside.display().to_string(),
        "/etc/passwd".to_owned(),
        "assets/./x".to_owned(),
        "assets//x".to_owned(),
        "assets/x y".to_owned(),
        "assets\\..\\..\\secret.txt".to_owned(),
        "".to_owned(),
    ] {
        let crafted = FileAsset {
            id: "crafted".into(),
            key: key.clone(),
            ..FileAsset::default()
        };
        if key.is_empty() {
            // No key: looked up by id, and there is no such asset.
            let err = assets.read(&crafted).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
            continue;
        }
        let err = assets.read(&crafted).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{key:?}: {err}");
        assert!(err.to_string().contains("rejected"), "{err}");
        let err = assets.delete(&crafted).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{key:?}: {err}");
        assert!(assets.path_of(&key).is_err());
    }
    assert_eq!(std::fs::read(&outside).unwrap(), b"top secret", "untouched");
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn object_store_puts_reads_and_deletes() {
    use gatewai_store::ObjectAssetStore;
    use std::sync::Arc;
    let objects = Arc::new(object_store::memory::InMemory::new());
    let store = memory_store().await;
    let assets = ObjectAssetStore::new(objects.clone(), "media", store.clone())
        .with_prefix("tenant-1")
        .unwrap();
    let put = assets.put(png("fox.png")).await.unwrap();
    assert_eq!(put.bucket, "media");
    let location = object_store::path::Path::from(format!("tenant-1/{}", put.key));
    use object_store::ObjectStore;
    assert_eq!(objects.head(&location).await.unwrap().size, 18);
    assert_eq!(assets.read(&put).await.unwrap().len(), 18);
    assert_eq!(assets.get(&put.id).await.unwrap(), Some(put.clone()));
    let crafted = FileAsset {
        id: "x".into(),
        key: "../other-tenant/secret".into(),
        ..FileAsset::default()
    };
    assert_eq!(
        assets.read(&crafted).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assets.delete(&put).await.unwrap();
    assert!(objects.head(&location).await.is_err());
    assert_eq!(
        assets.read(&put).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        ObjectAssetStore::new(objects, "media", store)
            .with_prefix("../up")
            .is_err()
    );
}

/// The error of a bounded read is core's typed one, naming the asset and the limit, and is
/// not retryable.
fn assert_too_large(err: &gatewai_core::Error, id: &str, max_bytes: u64, size: Option<u64>) {
    match err {
        gatewai_core::Error::AssetTooLarge {
            id: got_id,
            max_bytes: got_max,
            size: got_size,
        } => assert_eq!(
            (got_id.as_str(), *got_max, *got_size),
            (id, max_bytes, size),
            "{err}"
        ),
        other => panic!("expected AssetTooLarge, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.kind().is_retryable());
    let text = err.to_string();
    assert!(
        text.contains(id) && text.contains(&format!("{max_bytes}-byte limit")),
        "{text}"
    );
}

/// Replaces an asset's record by one stating another size (as a stale or tampered row might).
async fn record_size(store: &Store, asset: &FileAsset, size: u64) {
    let lying = FileAsset {
        size,
        ..asset.clone()
    };
    store.put_asset_record(&lying, None).await.unwrap();
}

#[tokio::test]
async fn fs_store_bounded_read_takes_the_limit_exactly_and_refuses_one_byte_more() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = fs_assets(&dir, store).await;
    let put = assets.put(png("fox.png")).await.unwrap();
    assert_eq!(
        assets.read_limited(&put, 18).await.unwrap(),
        Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really")
    );
    assert_eq!(assets.read_limited(&put, u64::MAX).await.unwrap().len(), 18);
    let err = assets.read_limited(&put, 17).await.unwrap_err();
    assert_too_large(&err, &put.id, 17, Some(18));
    // The caller's `size` is not believed (its record's is).
    let understated = FileAsset {
        size: 1,
        ..put.clone()
    };
    let err = assets.read_limited(&understated, 17).await.unwrap_err();
    assert_too_large(&err, &put.id, 17, Some(18));
    // A crafted reference is refused as by `read`; a missing asset is not found.
    let crafted = FileAsset {
        id: "x".into(),
        key: "../secret".into(),
        ..FileAsset::default()
    };
    let err = assets.read_limited(&crafted, 100).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assets.delete(&put).await.unwrap();
    let err = assets.read_limited(&put, 100).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

/// A record stating a size over the limit is refused before its file is opened: the file is
/// gone, and the answer is still "too large", not "not found".
#[tokio::test]
async fn fs_store_bounded_read_refuses_by_the_record_before_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = memory_store().await;
    let assets = fs_assets(&dir, store.clone()).await;
    let put = assets.put(png("fox.png")).await.unwrap();
    record_size(&store, &put, 5 << 30).await;
    std::fs::remove_file(assets.path_of(&put.key).unwrap()).unwrap();
    let err = assets.read_limited(&put, 1 << 20).await.unwrap_err();
    assert_too_large(&err, &put.id, 1 << 20, Some(5 << 30));
}

/// A file larger than its record says (grown, or replaced behind the store's back) is refused
/// by its metadata, before it is read: here a 64 GiB sparse file recorded as 18 bytes.
#[tokio::test]
async fn fs_store_bounded_read_refuses_a_file_larger_than_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = memory_store().await;
    let assets = fs_assets(&dir, store).await;
    let put = assets.put(png("fox.png")).await.unwrap();
    let path = assets.path_of(&put.key).unwrap();
    let huge = 64u64 << 30;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(huge)
        .unwrap();
    let err = assets.read_limited(&put, 1 << 20).await.unwrap_err();
    assert_too_large(&err, &put.id, 1 << 20, Some(huge));
}

/// A blob whose record and metadata both understate it (a named pipe, whose size is 0, as a
/// stand-in for a file growing while it is read) is stopped while reading, past the limit:
/// the writer is cut off after little more than the limit (a pipe buffer), and a blob of
/// exactly the limit is read whole.
#[cfg(unix)]
#[tokio::test]
async fn fs_store_bounded_read_stops_reading_past_the_limit() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = memory_store().await;
    let assets = fs_assets(&dir, store).await;
    let put = assets.put(png("fox.png")).await.unwrap();
    let path = assets.path_of(&put.key).unwrap();
    // Feeds the pipe `total` bytes in 64 KiB writes; returns how many were taken.
    let feed = |total: usize| {
        std::fs::remove_file(&path).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success());
        let path = path.clone();
        std::thread::spawn(move || {
            let mut pipe = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let chunk = vec![b'x'; 64 << 10];
            let mut written = 0;
            while written < total {
                let n = chunk.len().min(total - written);
                match pipe.write(&chunk[..n]) {
                    Ok(n) => written += n,
                    Err(_) => break, // the reader closed the pipe
                }
            }
            written
        })
    };
    let limit = 1u64 << 20;
    let writer = feed(256 << 20);
    let err = assets.read_limited(&put, limit).await.unwrap_err();
    assert_too_large(&err, &put.id, limit, None);
    let written = writer.join().unwrap();
    assert!(
        (written as u64) < 4 * limit,
        "the reader took {written} bytes for a {limit}-byte limit"
    );
    // Exactly the limit, then the end: read whole.
    let writer = feed(limit as usize);
    let bytes = assets.read_limited(&put, limit).await.unwrap();
    assert_eq!(bytes.len() as u64, limit);
    assert_eq!(writer.join().unwrap() as u64, limit);
}

#[cfg(feature = "s3")]
mod object_store_limits {
    use super::*;
    use futures::stream::BoxStream;
    use gatewai_store::ObjectAssetStore;
    use object_store::memory::InMemory;
    use object_store::path::Path;
    use object_store::{
        GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };
    use std::sync::Arc;

    fn object_assets(objects: Arc<dyn ObjectStore>, store: &Store) -> ObjectAssetStore {
        ObjectAssetStore::new(objects, "media", store.clone())
            .with_prefix("tenant-1")
            .unwrap()
    }

    fn location(asset: &FileAsset) -> Path {
        Path::from(format!("tenant-1/{}", asset.key))
    }

    #[tokio::test]
    async fn object_store_bounded_read_takes_the_limit_exactly_and_refuses_one_byte_more() {
        let objects = Arc::new(InMemory::new());
        let store = memory_store().await;
        let assets = object_assets(objects.clone(), &store);
        let put = assets.put(png("fox.png")).await.unwrap();
        assert_eq!(assets.read_limited(&put, 18).await.unwrap().len(), 18);
        let err = assets.read_limited(&put, 17).await.unwrap_err();
        assert_too_large(&err, &put.id, 17, Some(18));
        // Refused by its record, before the object is asked for: gone, and still too large.
        record_size(&store, &put, 5 << 30).await;
        objects.delete(&location(&put)).await.unwrap();
        let err = assets.read_limited(&put, 1 << 20).await.unwrap_err();
        assert_too_large(&err, &put.id, 1 << 20, Some(5 << 30));
        record_size(&store, &put, 18).await;
        let err = assets.read_limited(&put, 1 << 20).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }

    /// An object replaced by a larger one behind the store's back (its record still says 18
    /// bytes) is refused by the length the object store answers with.
    #[tokio::test]
    async fn object_store_bounded_read_refuses_an_object_larger_than_its_record() {
        let objects = Arc::new(InMemory::new());
        let store = memory_store().await;
        let assets = object_assets(objects.clone(), &store);
        let put = assets.put(png("fox.png")).await.unwrap();
        objects
            .put(&location(&put), vec![0u8; 1000].into())
            .await
            .unwrap();
        let err = assets.read_limited(&put, 999).await.unwrap_err();
        assert_too_large(&err, &put.id, 999, Some(1000));
        assert_eq!(assets.read_limited(&put, 1000).await.unwrap().len(), 1000);
    }

    /// An object store whose answers understate every object's length (as a lying or broken
    /// server might): over `InMemory`, with the length of each answer cut to one byte and
    /// its body in 100-byte chunks.
    #[derive(Debug)]
    struct Understating(InMemory);

    impl std::fmt::Display for Understating {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "Understating({})", self.0)
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Understating {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.0.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            use futures::StreamExt;
            let found = self.0.get_opts(location, options).await?;
            let (meta, attributes) = (found.meta.clone(), found.attributes.clone());
            let body = found.bytes().await?;
            let chunks: Vec<object_store::Result<Bytes>> = body
                .chunks(100)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            Ok(GetResult {
                payload: object_store::GetResultPayload::Stream(
                    futures::stream::iter(chunks).boxed(),
                ),
                meta: ObjectMeta { size: 1, ..meta },
                range: 0..1,
                attributes,
            })
        }

        async fn delete(&self, location: &Path) -> object_store::Result<()> {
            self.0.delete(location).await
        }

        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }

        async fn copy(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.0.copy(from, to).await
        }

        async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> object_store::Result<()> {
            self.0.copy_if_not_exists(from, to).await
        }
    }

    /// Record and announced length both understate the object: the body is stopped once it
    /// passes the limit; a body of exactly the limit is read whole.
    #[tokio::test]
    async fn object_store_bounded_read_stops_a_body_past_the_limit() {
        let objects = Arc::new(Understating(InMemory::new()));
        let store = memory_store().await;
        let assets = object_assets(objects.clone(), &store);
        let put = assets.put(png("fox.png")).await.unwrap();
        objects
            .put(&location(&put), vec![0u8; 1000].into())
            .await
            .unwrap();
        let err = assets.read_limited(&put, 999).await.unwrap_err();
        assert_too_large(&err, &put.id, 999, None);
        assert_eq!(assets.read_limited(&put, 1000).await.unwrap().len(), 1000);
    }
}

/// Every file under `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        match path.is_dir() {
            true => files.extend(walk(&path)),
            false => files.push(path),
        }
    }
    files
}
