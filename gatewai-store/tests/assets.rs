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
    Store::open(&url).await.unwrap()
}

#[tokio::test]
async fn fs_store_puts_reads_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = FsAssetStore::open(dir.path().join("blobs"), store.clone())
        .await
        .unwrap();
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
    assert_eq!(assets.get(&put.id).await.unwrap(), Some(put.clone()));
    assert_eq!(
        assets.read(&put).await.unwrap(),
        Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really")
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

/// A workflow document is untrusted: an asset reference pairing an id its author may use with
/// another asset's key must not reach that other blob (nor delete it).
#[tokio::test]
async fn fs_store_reads_an_asset_by_its_recorded_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let assets = FsAssetStore::open(dir.path().join("blobs"), store.clone())
        .await
        .unwrap();
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
    let store = Store::memory();
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
    let store = Store::memory();
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
