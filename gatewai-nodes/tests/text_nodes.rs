//! Text, TextMerger and Note through the engine and the importer.
#![cfg(feature = "text")]

use gatewai_core::edit::{self, Connection};
use gatewai_core::model::{HandleType, Position};
use gatewai_core::{
    DataType, Engine, ErrorKind, FileAsset, Inputs, Item, MemoryAssetStore, Node, NodeContext,
    NodeRegistry, RunInput, RunOptions, RunStatus, Workflow,
};
use gatewai_nodes::text::{TextMergerNode, TextNode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::text::register(&mut registry).unwrap();
    registry
}

fn add(
    wf: &mut Workflow,
    reg: &NodeRegistry,
    node_type: &str,
    config: serde_json::Value,
) -> String {
    let id = edit::add_node(wf, reg, node_type, Position::default()).unwrap();
    edit::merge_patch(&mut wf.node_mut(&id).unwrap().config, &config);
    id
}

fn text_of(outcome: &gatewai_core::RunOutcome, node: &str) -> String {
    outcome.results[node].selected().unwrap().items[0]
        .to_item()
        .as_text()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn merger_joins_in_handle_order_with_variable_inputs_and_run_inputs_win() {
    let reg = registry();
    let mut wf = Workflow::default();
    let a = add(&mut wf, &reg, "Text", json!({"content": "alpha"}));
    let b = add(&mut wf, &reg, "Text", json!({"content": "beta"}));
    let c = add(&mut wf, &reg, "Text", json!({"content": "gamma"}));
    let note = add(&mut wf, &reg, "Note", json!({"content": "remember"}));
    let merge = add(&mut wf, &reg, "TextMerger", json!({"join": " | "}));
    let extra = edit::add_variable_handle(
        &mut wf,
        &reg,
        &merge,
        HandleType::Input,
        &[DataType::Text],
        None,
    )
    .unwrap();
    // beta on the first handle, alpha on the second, gamma on the variable third.
    for (source, target) in [(&b, "text"), (&a, "text_2")] {
        let c = Connection::between(&wf, source, "text", &merge, target).unwrap();
        edit::connect(&mut wf, &reg, &c).unwrap();
    }
    let to_extra = Connection::between(&wf, &c, "text", &merge, "text").unwrap();
    let to_extra = Connection::new(&c, to_extra.source_handle_id, &merge, extra);
    edit::connect(&mut wf, &reg, &to_extra).unwrap();

    let engine = Engine::builder().registry(reg).build().unwrap();
    let outcome = engine.run(wf.clone(), RunOptions::default()).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(text_of(&outcome, &merge), "beta | alpha | gamma");
    assert!(
        !outcome.results.contains_key(note.as_str()),
        "a Note never executes"
    );

    let outcome = engine
        .run(
            wf,
            RunOptions {
                inputs: HashMap::from([(a.clone(), RunInput::Text("ALPHA".into()))]),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(text_of(&outcome, &a), "ALPHA");
    assert_eq!(text_of(&outcome, &merge), "beta | ALPHA | gamma");
}

#[tokio::test]
async fn wrong_values_are_input_errors_naming_the_handle() {
    let assets = Arc::new(MemoryAssetStore::new());
    let ctx = NodeContext::detached("m", "TextMerger", json!({}), assets.clone());
    let inputs = Inputs::default()
        .with("text", Item::text("a"))
        .with("text_2", Item::file(DataType::Image, FileAsset::default()));
    let e = TextMergerNode::new()
        .execute(&ctx, &inputs)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("text_2"), "{e}");

    // Default join is a space; unconnected inputs are left out.
    let inputs = Inputs::default()
        .with("text", Item::text("a"))
        .with("text_2", Item::text("b"));
    let out = TextMergerNode::new().execute(&ctx, &inputs).await.unwrap();
    assert_eq!(out.get("result"), Some(&Item::text("a b")));

    let ctx = NodeContext::detached("t", "Text", json!({"content": "x"}), assets)
        .with_run_input(RunInput::Url("https://example.invalid/a.png".into()));
    let e = TextNode::new()
        .execute(&ctx, &Inputs::default())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn workflow_app_text_nodes_import_as_text() {
    let reg = registry();
    let doc = json!({
        "nodes": [
            {"id": "n1", "type": "text", "position": {"x": 0, "y": 0},
             "data": {"label": "Text", "text": "a red fox", "status": "idle"}},
            {"id": "n2", "type": "text", "position": {"x": 0, "y": 100},
             "data": {"label": "Text", "value": "in snow"}},
            {"id": "n3", "type": "textMerger", "position": {"x": 200, "y": 0}, "data": {}}
        ],
        "edges": [
            {"id": "e1", "source": "n1", "sourceHandle": "output", "target": "n3", "targetHandle": "text"},
            {"id": "e2", "source": "n2", "sourceHandle": "output", "target": "n3", "targetHandle": "text_2"}
        ]
    });
    let wf = gatewai_core::import::read_document(doc, &reg).unwrap();
    assert_eq!(wf.node("n1").unwrap().node_type, "Text");
    assert_eq!(wf.node("n1").unwrap().config["content"], "a red fox");
    let engine = Engine::builder().registry(reg).build().unwrap();
    let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.run.error
    );
    assert_eq!(text_of(&outcome, "n3"), "a red fox in snow");
}

#[cfg(feature = "llm")]
#[test]
fn an_imported_workflow_app_llm_with_a_typed_message_and_no_edge_validates() {
    let mut registry = gatewai_core::NodeRegistry::new();
    gatewai_nodes::register_all(&mut registry).unwrap();
    let doc = r#"{"nodes":[{"id":"l1","type":"llm","position":{"x":0,"y":0},
        "data":{"label":"LLM","model":"gemini-2.5-flash","userMessage":"Write a haiku"}}],"edges":[]}"#;
    let workflow = gatewai_core::import::parse_document(doc, &registry).unwrap();
    assert_eq!(workflow.nodes[0].config["prompt"], "Write a haiku");
    gatewai_core::validate(&workflow, &registry).unwrap();
    // Without a typed message and without an edge, the prompt is still required.
    let empty = doc.replace(r#","userMessage":"Write a haiku""#, "");
    let workflow = gatewai_core::import::parse_document(&empty, &registry).unwrap();
    let problems = gatewai_core::validate(&workflow, &registry).unwrap_err();
    assert!(problems.to_string().contains("Prompt"), "{problems}");
}
