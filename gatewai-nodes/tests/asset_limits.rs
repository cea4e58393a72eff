//! The nodes' byte limits on the assets they read from the asset store: an asset of exactly the
//! limit is read, one byte more is an input error naming the handle, the asset and the limit
//! (its source core's typed `AssetTooLarge`), refused without the store reading it whole.
#![cfg(feature = "image")]

mod common;

use common::*;
use gatewai_core::{
    AssetStore, Engine, ErrorKind, ExecutionStatus, FileAsset, Inputs, Item, Node, NodeContext,
    NodeError, NodeRegistry, RunOptions, RunStatus, Workflow,
};
use gatewai_nodes::fetch::FetchPolicy;
use gatewai_nodes::media::{Blur, Compositor, Crop, File, ImageLimits, Modulate, Resize};
use gatewai_nodes::media_util::DEFAULT_MAX_MEDIA_BYTES;
use gatewai_store::{FsAssetStore, Store};
use image::ImageFormat;
use serde_json::json;
use std::sync::Arc;

/// The error of an asset over a node's limit: an input error (not retryable) naming the handle
/// or field, the asset (id and name) and the limit, with core's typed error as its source.
fn assert_too_large(err: &NodeError, handle: &str, asset: &FileAsset, max_bytes: u64) {
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.is_retryable());
    let message = err.message();
    for part in [
        format!("input `{handle}`"),
        format!("asset `{}`", asset.id),
        format!("(`{}`)", asset.name),
        format!("the {max_bytes}-byte limit"),
    ] {
        assert!(message.contains(&part), "{part:?} not in {message:?}");
    }
    let source = std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<gatewai_core::Error>())
        .unwrap_or_else(|| panic!("no core error under {err:?}"));
    match source {
        gatewai_core::Error::AssetTooLarge {
            id, max_bytes: max, ..
        } => assert_eq!((id.as_str(), *max), (asset.id.as_str(), max_bytes)),
        other => panic!("expected AssetTooLarge, got {other:?}"),
    }
}

fn limited(max_bytes: u64) -> ImageLimits {
    ImageLimits {
        max_bytes,
        ..ImageLimits::default()
    }
}

#[test]
fn every_node_reads_up_to_the_file_nodes_import_limit_by_default() {
    assert_eq!(DEFAULT_MAX_MEDIA_BYTES, 100 * 1024 * 1024);
    assert_eq!(ImageLimits::default().max_bytes, DEFAULT_MAX_MEDIA_BYTES);
    assert_eq!(FetchPolicy::default().max_bytes, DEFAULT_MAX_MEDIA_BYTES);
    #[cfg(feature = "video")]
    assert_eq!(
        gatewai_nodes::video::FfmpegTools::default().max_input_bytes,
        DEFAULT_MAX_MEDIA_BYTES
    );
    #[cfg(feature = "llm")]
    assert_eq!(
        gatewai_nodes::ai::AiSettings::default().max_input_bytes,
        DEFAULT_MAX_MEDIA_BYTES
    );
}

#[tokio::test]
async fn image_tools_read_an_image_of_their_limit_and_refuse_one_byte_more() {
    let h = Harness::new();
    let asset = h.put_image(&pattern(6, 4), ImageFormat::Png).await;
    let size = asset.size;
    type Make = fn(ImageLimits) -> Box<dyn gatewai_core::Node>;
    let nodes: [(Make, serde_json::Value); 4] = [
        (|l| Box::new(Crop::with_limits(l)), json!({})),
        (|l| Box::new(Resize::with_limits(l)), json!({"width": 3})),
        (|l| Box::new(Blur::with_limits(l)), json!({})),
        (|l| Box::new(Modulate::with_limits(l)), json!({})),
    ];
    for (make, config) in nodes {
        let at_limit = make(limited(size));
        let name = at_limit.template().node_type.clone();
        let out = h
            .run(
                &*at_limit,
                config.clone(),
                "image",
                image_item(asset.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("{name} at its limit: {e}"));
        h.output_image(&out, "result").await;
        let err = h
            .run(
                &*make(limited(size - 1)),
                config,
                "image",
                image_item(asset.clone()),
            )
            .await
            .unwrap_err();
        assert_too_large(&err, "image", &asset, size - 1);
        assert!(
            err.message().contains(&format!(
                "is {size} bytes, over the {}-byte limit",
                size - 1
            )),
            "{name}: {err}"
        );
    }
}

#[tokio::test]
async fn compositor_refuses_an_image_layer_over_its_limit() {
    let h = Harness::new();
    let asset = h.put_image(&pattern(4, 4), ImageFormat::Png).await;
    let config = json!({"width": 8, "height": 8});
    let at_limit = Compositor::with_limits(limited(asset.size));
    h.run(
        &at_limit,
        config.clone(),
        "image",
        image_item(asset.clone()),
    )
    .await
    .unwrap();
    let over = Compositor::with_limits(limited(asset.size - 1));
    let err = h
        .run(&over, config, "image", image_item(asset.clone()))
        .await
        .unwrap_err();
    assert_too_large(&err, "image", &asset, asset.size - 1);
}

/// The Compositor holds its layers' files to `max_bytes` together: two layers that each fit
/// are refused when both would go past it (naming the second, unread, and the limit), and
/// composited at exactly the limit.
#[tokio::test]
async fn compositor_holds_its_layers_to_the_limit_together() {
    let h = Harness::new();
    let first = h.put_image(&pattern(4, 4), ImageFormat::Png).await;
    let second = h.put_image(&pattern(4, 4), ImageFormat::Png).await;
    let config = json!({"width": 8, "height": 8});
    let layers = Inputs::default()
        .with("image", image_item(first.clone()))
        .with("image", image_item(second.clone()));
    let run = |max_bytes: u64| {
        let node = Compositor::with_limits(limited(max_bytes));
        let ctx = h.ctx("Compositor", config.clone());
        let layers = layers.clone();
        async move { node.execute(&ctx, &layers).await }
    };
    let total = first.size + second.size;
    let err = run(total - 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    for part in [
        "input `image`".to_owned(),
        format!("asset `{}`", second.id),
        format!("with the {} bytes of the node's other inputs", first.size),
        format!("over the {}-byte limit", total - 1),
    ] {
        assert!(err.message().contains(&part), "{part:?} not in {err}");
    }
    run(total).await.expect("both layers fit the limit exactly");
}

/// The File node holds a stored asset (by config, run input or uploaded result) to its fetch
/// policy's `max_bytes`, as it holds downloads and bytes handed in.
#[tokio::test]
async fn file_node_refuses_a_stored_asset_over_its_fetch_limit() {
    let h = Harness::new();
    let asset = h.put_image(&pattern(4, 4), ImageFormat::Png).await;
    let file = |max_bytes| {
        File::with_fetch_policy(FetchPolicy {
            max_bytes,
            ..FetchPolicy::default()
        })
    };
    let config = json!({ "asset": { "id": asset.id } });
    let out = h
        .run(&file(asset.size), config.clone(), "unused", Item::text(""))
        .await
        .unwrap();
    assert_eq!(out.get("file").unwrap().as_asset().unwrap().id, asset.id);
    let err = h
        .run(&file(asset.size - 1), config, "unused", Item::text(""))
        .await
        .unwrap_err();
    assert_too_large(&err, "asset", &asset, asset.size - 1);

    let ctx = h
        .ctx("File", json!({}))
        .with_run_input(gatewai_core::RunInput::Asset(asset.clone()));
    let err = gatewai_core::Node::execute(&file(asset.size - 1), &ctx, &Default::default())
        .await
        .unwrap_err();
    assert_too_large(&err, "run input", &asset, asset.size - 1);
}

#[cfg(feature = "video")]
#[tokio::test]
async fn video_nodes_refuse_a_file_over_their_limit_before_ffmpeg_runs() {
    use gatewai_core::DataType;
    use gatewai_nodes::video::{ExtractFrame, FfmpegTools, MediaCut};
    let h = Harness::new();
    let video = h.put("clip.mp4", "video/mp4", vec![0u8; 1000]).await;
    let tools = FfmpegTools {
        // Never run: the input is refused first.
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ffprobe: "/nonexistent/ffprobe".into(),
        max_input_bytes: 999,
        ..FfmpegTools::default()
    };
    let extract = ExtractFrame::with_tools(tools.clone());
    let cut = MediaCut::with_tools(tools);
    let nodes: [(&dyn gatewai_core::Node, &str, serde_json::Value); 2] = [
        (&extract, "video", json!({ "timestamp": "0" })),
        (&cut, "media", json!({ "startSec": 0 })),
    ];
    for (node, handle, config) in nodes {
        let err = h
            .run(
                node,
                config,
                handle,
                Item::file(DataType::Video, video.clone()),
            )
            .await
            .unwrap_err();
        assert_too_large(&err, handle, &video, 999);
    }
}

/// A local-directory store whose file for an asset is 64 GiB (sparse) while its record says
/// 18 bytes, as a stored asset grown or replaced behind the store's back.
async fn huge_stored_asset(dir: &tempfile::TempDir) -> (FsAssetStore, FileAsset) {
    let store = Store::memory();
    let assets = FsAssetStore::open(dir.path().join("blobs"), store.clone())
        .await
        .unwrap();
    let asset = assets
        .put(gatewai_core::NewAsset {
            name: "huge.png".into(),
            mime_type: "image/png".into(),
            bytes: bytes::Bytes::from_static(b"\x89PNG\r\n\x1a\nnot really"),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .get_asset_record(&asset.id)
            .await
            .unwrap()
            .unwrap()
            .size,
        18
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(assets.path_of(&asset.key).unwrap())
        .unwrap()
        .set_len(64 << 30)
        .unwrap();
    (assets, asset)
}

/// A node with its default limits given a 64 GiB stored asset (recorded as 18 bytes) fails
/// at once with the typed error: the store refused it by its file's size, never reading it.
#[tokio::test]
async fn a_huge_stored_file_is_refused_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let (assets, asset) = huge_stored_asset(&dir).await;
    let ctx = NodeContext::detached("crop", "Crop", json!({}), Arc::new(assets));
    let inputs = gatewai_core::Inputs::default().with("image", image_item(asset.clone()));
    let err = gatewai_core::Node::execute(&Crop::new(), &ctx, &inputs)
        .await
        .unwrap_err();
    assert_too_large(&err, "image", &asset, DEFAULT_MAX_MEDIA_BYTES);
    assert!(
        err.message()
            .contains(&format!("is {} bytes, over the", 64u64 << 30)),
        "{err}"
    );
}

/// Through the engine: a workflow whose File node names the huge stored asset fails there,
/// with the limit in its record, and the Crop it feeds is skipped.
#[tokio::test]
async fn a_workflow_naming_a_huge_stored_asset_fails_at_its_file_node() {
    let dir = tempfile::tempdir().unwrap();
    let (assets, asset) = huge_stored_asset(&dir).await;
    let mut registry = NodeRegistry::new();
    gatewai_nodes::register_all(&mut registry).unwrap();
    let engine = Engine::builder()
        .registry(registry)
        .assets(Arc::new(assets))
        .build()
        .unwrap();
    let registry = engine.registry().clone();
    let mut wf = Workflow::default();
    add(
        &mut wf,
        &registry,
        "file",
        "File",
        json!({ "asset": { "id": asset.id } }),
    );
    add(&mut wf, &registry, "crop", "Crop", json!({}));
    link(&mut wf, "file", "file", "crop", "image");
    let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Failed);
    let file = outcome
        .executions
        .iter()
        .find(|e| &*e.node_id == "file")
        .unwrap();
    assert_eq!(file.status, ExecutionStatus::Failed);
    let error = file.error.as_deref().unwrap_or_default();
    for part in [
        "input `asset`".to_owned(),
        format!("asset `{}` (`huge.png`)", asset.id),
        format!("the {DEFAULT_MAX_MEDIA_BYTES}-byte limit"),
    ] {
        assert!(error.contains(&part), "{part:?} not in {error:?}");
    }
    let crop = outcome
        .executions
        .iter()
        .find(|e| &*e.node_id == "crop")
        .unwrap();
    assert_eq!(crop.status, ExecutionStatus::Skipped);
}
