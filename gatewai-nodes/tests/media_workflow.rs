//! Media workflows run through the engine: File → Crop → Resize → Compositor → Export, File
//! (video) → ExtractFrame ("50%") → Crop → Export, an imported React Flow document, and bad
//! config reported before anything runs.
#![cfg(feature = "image")]

mod common;

use common::*;
use gatewai_core::{
    AssetStore, DataType, Engine, Error, Item, MemoryAssetStore, NodeRegistry, RunInput,
    RunOptions, RunStatus, Workflow,
};
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::json;
use std::sync::Arc;

fn engine(store: Arc<MemoryAssetStore>) -> Engine {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::register_all(&mut registry).unwrap();
    Engine::builder()
        .registry(registry)
        .assets(store)
        .build()
        .unwrap()
}

async fn exported_image(store: &MemoryAssetStore, items: &[Item]) -> RgbaImage {
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].data_type, DataType::Image);
    let bytes = store.read(items[0].as_asset().unwrap()).await.unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgba8()
}

const RED: Rgba<u8> = Rgba([255, 0, 0, 255]);
const GREEN: Rgba<u8> = Rgba([0, 255, 0, 255]);
const BLUE: Rgba<u8> = Rgba([0, 0, 255, 255]);
const YELLOW: Rgba<u8> = Rgba([255, 255, 0, 255]);

/// 40×40: red, green on top; blue, yellow below.
fn quadrants() -> RgbaImage {
    RgbaImage::from_fn(40, 40, |x, y| {
        [RED, GREEN, BLUE, YELLOW][(x / 20 + 2 * (y / 20)) as usize]
    })
}

#[tokio::test]
async fn file_crop_resize_compositor_export() {
    let store = Arc::new(MemoryAssetStore::new());
    let engine = engine(store.clone());
    let registry = engine.registry().clone();
    let mut wf = Workflow::default();
    add(&mut wf, &registry, "file", "File", json!({}));
    // The top-right (green) quadrant.
    add(
        &mut wf,
        &registry,
        "crop",
        "Crop",
        json!({"leftPercentage": 50, "topPercentage": 0, "widthPercentage": 50, "heightPercentage": 50}),
    );
    add(&mut wf, &registry, "resize", "Resize", json!({"width": 10}));
    add(
        &mut wf,
        &registry,
        "comp",
        "Compositor",
        json!({"width": 30, "height": 20, "backgroundColor": "#000000",
               "layerUpdates": {"comp:image": {"x": 5, "y": 6}}}),
    );
    add(&mut wf, &registry, "export", "Export", json!({}));
    link(&mut wf, "file", "file", "crop", "image");
    link(&mut wf, "crop", "result", "resize", "image");
    link(&mut wf, "resize", "result", "comp", "image");
    link(&mut wf, "comp", "result", "export", "input");
    let mut options = RunOptions::default();
    options.inputs.insert(
        "file".into(),
        RunInput::Bytes {
            bytes: encode(&quadrants(), ImageFormat::Png).into(),
            name: Some("quadrants.png".into()),
        },
    );
    let outcome = engine.run(wf, options).await.unwrap();
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.executions
    );
    let canvas = exported_image(&store, &outcome.exports["export"]).await;
    assert_eq!(canvas.dimensions(), (30, 20));
    for (x, y, p) in canvas.enumerate_pixels() {
        let inside = (5..15).contains(&x) && (6..16).contains(&y);
        let want = if inside { GREEN } else { Rgba([0, 0, 0, 255]) };
        assert_eq!(p, &want, "pixel {x},{y}");
    }
}

#[cfg(feature = "video")]
#[tokio::test]
async fn video_extract_frame_crop_export() {
    let store = Arc::new(MemoryAssetStore::new());
    let engine = engine(store.clone());
    let registry = engine.registry().clone();
    let mut wf = Workflow::default();
    add(&mut wf, &registry, "file", "File", json!({}));
    add(
        &mut wf,
        &registry,
        "frame",
        "ExtractFrame",
        json!({"timestamp": "50%"}),
    );
    add(
        &mut wf,
        &registry,
        "crop",
        "Crop",
        json!({"leftPercentage": 50, "topPercentage": 50, "widthPercentage": 50, "heightPercentage": 50}),
    );
    add(&mut wf, &registry, "export", "Export", json!({}));
    link(&mut wf, "file", "file", "frame", "video");
    link(&mut wf, "frame", "result", "crop", "image");
    link(&mut wf, "crop", "result", "export", "input");
    let dir = tempfile::tempdir().unwrap();
    let mut options = RunOptions::default();
    options.inputs.insert(
        "file".into(),
        RunInput::Bytes {
            bytes: colour_video(dir.path()).into(),
            name: Some("colours.mp4".into()),
        },
    );
    let outcome = engine.run(wf, options).await.unwrap();
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.executions
    );
    let frame = exported_image(&store, &outcome.exports["export"]).await;
    assert_eq!(frame.dimensions(), (32, 24));
    // 50% of a red-green-blue video is the green second.
    assert!(frame.pixels().all(|p| dominant(p) == "green"));
}

#[tokio::test]
async fn an_imported_react_flow_image_and_crop_run() {
    use base64::Engine as _;
    let png = encode(&quadrants(), ImageFormat::Png);
    let data_url = format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    );
    let document = json!({
        "nodes": [
            {"id": "img", "type": "image", "position": {"x": 0, "y": 0},
             "data": {"label": "Image", "file": {"url": data_url, "name": "q.png", "type": "image/png"}}},
            {"id": "crop", "type": "crop", "position": {"x": 200, "y": 0},
             "data": {"label": "Crop", "x_percent": 0, "y_percent": 50, "width_percent": 50, "height_percent": 50}},
            {"id": "out", "type": "output", "position": {"x": 400, "y": 0}, "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "img", "sourceHandle": "output", "target": "crop", "targetHandle": "image_url"},
            {"id": "e2", "source": "crop", "sourceHandle": "output", "target": "out", "targetHandle": "input"}
        ]
    });
    let store = Arc::new(MemoryAssetStore::new());
    let engine = engine(store.clone());
    let wf = gatewai_core::import::import_react_flow(document, engine.registry()).unwrap();
    assert_eq!(
        wf.node("crop").unwrap().config,
        json!({"leftPercentage": 0, "topPercentage": 50, "widthPercentage": 50, "heightPercentage": 50})
    );
    let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.executions
    );
    // The bottom-left (blue) quadrant.
    let crop = exported_image(&store, &outcome.exports["out"]).await;
    assert_eq!(crop.dimensions(), (20, 20));
    assert!(crop.pixels().all(|p| *p == BLUE));
}

#[tokio::test]
async fn bad_media_config_is_reported_before_anything_runs() {
    let store = Arc::new(MemoryAssetStore::new());
    let engine = engine(store.clone());
    let registry = engine.registry().clone();
    let mut wf = Workflow::default();
    add(
        &mut wf,
        &registry,
        "file",
        "File",
        json!({"url": "ftp://example.com/a.png"}),
    );
    add(
        &mut wf,
        &registry,
        "crop",
        "Crop",
        json!({"widthPercentage": 0, "leftPercentage": "NaN"}),
    );
    add(&mut wf, &registry, "export", "Export", json!({}));
    link(&mut wf, "file", "file", "crop", "image");
    link(&mut wf, "crop", "result", "export", "input");
    let err = engine.run(wf, RunOptions::default()).await.unwrap_err();
    let Error::Invalid(problems) = &err else {
        panic!("expected a validation error, got {err}");
    };
    let text = problems.to_string();
    for needle in [
        "`file`",
        "url",
        "`crop`",
        "widthPercentage",
        "leftPercentage",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(store.is_empty());
}
