//! The result cache across runs of a media workflow: the File node re-imports its source every
//! run (it is volatile), but the bytes are the same, so everything downstream is served from the
//! cache — keyed by the assets' content hash, not their fresh ids.
#![cfg(feature = "image")]

mod common;

use common::*;
use gatewai_core::{
    Engine, MemoryAssetStore, NodeRegistry, RunInput, RunOptions, RunStatus, Workflow,
};
use image::ImageFormat;
use serde_json::json;
use std::sync::Arc;

fn options(bytes: Vec<u8>) -> RunOptions {
    let mut options = RunOptions::default();
    options.inputs.insert(
        "file".into(),
        RunInput::Bytes {
            bytes: bytes.into(),
            name: Some("pattern.png".into()),
        },
    );
    options
}

#[tokio::test]
async fn same_bytes_again_hit_the_cache_downstream_and_new_bytes_do_not() {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::register_all(&mut registry).unwrap();
    let engine = Engine::builder()
        .registry(registry.clone())
        .assets(Arc::new(MemoryAssetStore::new()))
        .build()
        .unwrap();
    let mut wf = Workflow::default();
    add(&mut wf, &registry, "file", "File", json!({}));
    add(
        &mut wf,
        &registry,
        "crop",
        "Crop",
        json!({"leftPercentage": 25, "topPercentage": 25, "widthPercentage": 50, "heightPercentage": 50}),
    );
    add(&mut wf, &registry, "blur", "Blur", json!({"size": 4}));
    link(&mut wf, "file", "file", "crop", "image");
    link(&mut wf, "crop", "result", "blur", "image");
    let png = encode(&pattern(64, 48), ImageFormat::Png);

    let first = engine.run(wf.clone(), options(png.clone())).await.unwrap();
    assert_eq!(first.run.status, RunStatus::Completed);
    assert!(first.executions.iter().all(|e| !e.cached));

    let second = engine
        .run(first.workflow.clone(), options(png.clone()))
        .await
        .unwrap();
    let cached = |outcome: &gatewai_core::RunOutcome, node: &str| {
        outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == node)
            .unwrap()
            .cached
    };
    assert!(!cached(&second, "file"), "the volatile source runs again");
    assert!(
        cached(&second, "crop") && cached(&second, "blur"),
        "{:?}",
        second.executions
    );
    assert_eq!(second.results["blur"], first.results["blur"]);

    let other = encode(&pattern(64, 40), ImageFormat::Png);
    let third = engine
        .run(second.workflow.clone(), options(other))
        .await
        .unwrap();
    assert!(
        !cached(&third, "crop") && !cached(&third, "blur"),
        "new bytes, new results"
    );
}
