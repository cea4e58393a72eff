//! Reading documents through the public API: Gatewai canvas round-trips and React Flow import
//! with templates defined in the tests (see `common`).

mod common;

use common::{CheckedTemplates, fixture, templates};
use gatewai_core::import::{
    DocumentKind, detect_kind, import_react_flow, parse_document, read_document,
};
use gatewai_core::model::Workflow;
use gatewai_core::{Error, HandleType, validate};
use serde_json::{Value, json};

fn import_fixture(name: &str) -> Workflow {
    parse_document(&fixture(name), &templates()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The (source node, source template handle) → (target node, target template handle) of every
/// edge, resolved through the handles.
fn wiring(w: &Workflow) -> Vec<(String, String, String, String)> {
    let th = |id: &str| {
        w.handle(id)
            .and_then(|h| h.template_handle_id.clone())
            .unwrap_or_else(|| panic!("edge handle {id} missing"))
    };
    w.edges
        .iter()
        .map(|e| {
            (
                e.source.clone(),
                th(&e.source_handle_id),
                e.target.clone(),
                th(&e.target_handle_id),
            )
        })
        .collect()
}

fn wire(s: &str, sh: &str, t: &str, th: &str) -> (String, String, String, String) {
    (s.into(), sh.into(), t.into(), th.into())
}

#[test]
fn a_gatewai_canvas_with_unknown_fields_round_trips_to_the_same_json() {
    let text = fixture("campaign.canvas.json");
    let original: Value = serde_json::from_str(&text).unwrap();
    let workflow: Workflow = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_value(&workflow).unwrap(), original);
    // Unknown fields landed in `extra` at every level.
    assert_eq!(
        workflow.extra["description"],
        json!("Spring sneaker launch: one photo, square crop, caption.")
    );
    assert_eq!(workflow.nodes[0].extra["zIndex"], json!(3));
    assert_eq!(workflow.edges[0].extra["animated"], json!(false));
    let photo = workflow.nodes[1]
        .result
        .as_ref()
        .unwrap()
        .selected_item("h_photo_out")
        .unwrap();
    assert_eq!(
        photo.to_item().as_asset().unwrap().extra["userId"],
        json!("u_1")
    );
    assert_eq!(
        workflow.nodes[4]
            .result
            .as_ref()
            .unwrap()
            .selected_item("h_llm_out")
            .unwrap()
            .to_item()
            .as_text(),
        Some("Moss, light, and 210 grams of go.")
    );
    // And parse_document reads it as a canvas, unchanged.
    assert_eq!(detect_kind(&original), Some(DocumentKind::Canvas));
    assert_eq!(parse_document(&text, &templates()).unwrap(), workflow);
    // The canvas is valid: h_llm_image takes the crop and the photo (its template takes many),
    // h_llm_image_2 (a variable input, `multiple: false`) takes one.
    validate(&workflow, &CheckedTemplates::new()).unwrap();
}

#[test]
fn the_product_marketing_kit_imports() {
    let w = import_fixture("product_marketing_kit.reactflow.json");
    assert_eq!(w.nodes.len(), 16);
    assert_eq!(w.edges.len(), 20);
    // Every node type resolved to its template's type name.
    let types: Vec<(&str, &str)> = w
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.node_type.as_str()))
        .collect();
    for (id, t) in [
        ("product-photo", "File"),
        ("brand-voice", "Text"),
        ("crop-square", "Crop"),
        ("crop-banner", "Crop"),
        ("headline", "LLM"),
        ("teaser-video", "File"),
        ("hero-frame", "ExtractFrame"),
        ("export-headline", "Export"),
        ("export-copy", "Export"),
        ("preview-social", "Preview"),
    ] {
        assert!(types.contains(&(id, t)), "{id} should be {t}: {types:?}");
    }
    // data.label is the name; a node without a label gets the template's display name.
    assert_eq!(w.node("crop-square").unwrap().name, "Square (Instagram)");
    // One handle per template handle, with deterministic ids.
    let llm_handles: Vec<&str> = w.handles_of("headline").map(|h| h.id.as_str()).collect();
    assert_eq!(
        llm_handles,
        [
            "headline:prompt",
            "headline:system_prompt",
            "headline:image",
            "headline:result"
        ]
    );
    // The whole graph, handle by handle.
    let wires = wiring(&w);
    for expected in [
        wire("brand-voice", "text", "headline", "system_prompt"),
        wire("product-facts", "text", "headline", "prompt"),
        wire("product-photo", "file", "headline", "image"),
        wire("brand-voice", "text", "description", "system_prompt"),
        wire("product-facts", "text", "description", "prompt"),
        wire("product-photo", "file", "crop-banner", "image"),
        wire("product-photo", "file", "crop-detail", "image"),
        wire("crop-square", "result", "description", "image"),
        wire("crop-detail", "result", "description", "image"),
        wire("teaser-video", "file", "hero-frame", "video"),
        wire("hero-frame", "result", "frame-crop", "image"),
        wire("headline", "result", "social", "prompt"),
        wire("description", "result", "export-copy", "input"),
        wire("social", "result", "preview-social", "input"),
    ] {
        assert!(wires.contains(&expected), "missing {expected:?}");
    }
    // Several branches feed the LLMs' many-edge image inputs, and the result is valid.
    validate(&w, &CheckedTemplates::new()).unwrap();
}

#[test]
fn configs_come_from_the_import_hooks_in_either_spelling() {
    let w = import_fixture("product_marketing_kit.reactflow.json");
    let config = |id: &str| w.node(id).unwrap().config.clone();
    assert_eq!(
        config("crop-square"),
        json!({"leftPercentage": 10, "topPercentage": 0, "widthPercentage": 80, "heightPercentage": 100})
    );
    assert_eq!(
        config("crop-banner"),
        json!({"leftPercentage": 0, "topPercentage": 30, "widthPercentage": 100, "heightPercentage": 40})
    );
    // Unknown data fields are kept in the config.
    assert_eq!(config("crop-detail")["aspect_lock"], json!(true));
    assert_eq!(
        config("brand-voice")["content"],
        json!("You write for Northpeak: playful, confident, eco-minded. No exclamation marks.")
    );
    assert_eq!(
        config("product-facts")["content"],
        json!(
            "Trailrunner 3: recycled mesh upper, 210 g, 6 mm drop, Vibram sole, three colourways."
        )
    );
    assert_eq!(
        config("headline"),
        json!({"model": "gemini-1.5-flash", "temperature": 0.4, "systemPrompt": "You write punchy five-word headlines."})
    );
    assert_eq!(
        config("description")["systemPrompt"],
        json!("Describe the product in 60 words.")
    );
    assert_eq!(
        config("description")["userMessage"],
        json!("Use the facts and the pictures.")
    );
    assert_eq!(
        config("product-photo")["url"],
        json!("https://cdn.example.com/trailrunner-3.png")
    );
    assert_eq!(
        config("teaser-video")["url"],
        json!("https://cdn.example.com/teaser.mp4")
    );
    assert_eq!(config("hero-frame")["timestamp"], json!("50%"));
    // Hooks receive the UI fields but the configs here do not keep them.
    assert!(
        w.nodes
            .iter()
            .all(|n| n.config.get("label").is_none() && n.config.get("status").is_none())
    );
}

#[test]
fn unknown_fields_are_kept() {
    let w = import_fixture("product_marketing_kit.reactflow.json");
    assert_eq!(
        w.extra["viewport"],
        json!({"x": -120, "y": 40, "zoom": 0.85})
    );
    let photo = w.node("product-photo").unwrap();
    assert_eq!(
        photo.extra["measured"],
        json!({"width": 260, "height": 210})
    );
    assert_eq!(photo.extra["selected"], json!(false));
    assert_eq!(photo.position.y, 240.0);
    let edge = |id: &str| w.edges.iter().find(|e| e.id == id).unwrap();
    assert_eq!(edge("e-voice-headline").extra["animated"], json!(true));
    assert_eq!(edge("e-photo-square").extra["type"], json!("smoothstep"));
    // Serialized, the imported workflow reads back unchanged as a canvas.
    let text = serde_json::to_string(&w).unwrap();
    assert_eq!(parse_document(&text, &templates()).unwrap(), w);
}

#[test]
fn handle_names_match_leniently_and_missing_handles_mean_the_first() {
    let w = import_fixture("story_frames.reactflow.json");
    assert_eq!(
        wiring(&w),
        vec![
            wire("clip", "file", "frame", "video"), // no sourceHandle: first output
            wire("frame", "result", "narrate", "image"), // "Images": alias, any case
            wire("style", "text", "narrate", "system_prompt"), // "System Prompt": the label
            wire("ask", "text", "narrate", "prompt"), // "userMessage" vs alias user_message
        ]
    );
    // An edge without an id gets one from its ends.
    assert_eq!(
        w.edges[3].id,
        "reactflow__edge-askoutput-narrateuserMessage"
    );
    // Type names match aliases case-insensitively ("TEXT"); no label: the display name.
    assert_eq!(w.node("style").unwrap().node_type, "Text");
    assert_eq!(w.node("style").unwrap().name, "Text");
    assert_eq!(w.node("narrate").unwrap().config["notes"], json!("kept"));
    assert_eq!(
        w.node("clip").unwrap().config["url"],
        json!("https://cdn.example.com/clip.mp4")
    );
    validate(&w, &CheckedTemplates::new()).unwrap();
}

#[test]
fn an_unknown_node_type_is_an_error_naming_the_node_and_the_type() {
    let err = parse_document(&fixture("unknown_type.reactflow.json"), &templates()).unwrap_err();
    let Error::Import { message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("node `magic`: unknown node type `sparkle_filter`"),
        "{message}"
    );
    // The edge into the skipped node is reported too.
    assert!(
        message.contains("edge `e1`: target node `magic` does not exist"),
        "{message}"
    );
}

#[test]
fn an_unknown_handle_is_an_error_naming_the_edge_and_listing_the_handles() {
    let doc = json!({
        "nodes": [
            {"id": "t", "type": "text", "position": {"x": 0, "y": 0}, "data": {"text": "hi"}},
            {"id": "c", "type": "crop", "position": {"x": 0, "y": 0}, "data": {}}
        ],
        "edges": [{"id": "e9", "source": "t", "sourceHandle": "output", "target": "c", "targetHandle": "mask"}]
    });
    let err = import_react_flow(doc, &templates()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot import workflow: edge `e9`: target node `c` (type `Crop`) has no input `mask` (its inputs: image)"
    );
}

#[test]
fn an_import_hook_rejection_names_the_node() {
    let doc = json!({
        "nodes": [{"id": "c", "type": "crop", "data": {"x_percent": 140}}],
        "edges": []
    });
    let err = read_document(doc, &templates()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot import workflow: node `c` (type `Crop`): data field `x_percent` must be a percentage, got 140"
    );
}

#[test]
fn without_a_hook_the_data_minus_ui_fields_is_the_config() {
    let doc = json!({
        "nodes": [{"id": "p", "type": "preview", "position": {"x": 5, "y": 6}, "width": 320, "data": {"label": "Look", "status": "running", "zoom": 2}}],
        "edges": []
    });
    let w = read_document(doc, &templates()).unwrap();
    let node = &w.nodes[0];
    assert_eq!(
        (node.name.as_str(), node.node_type.as_str()),
        ("Look", "Preview")
    );
    assert_eq!(node.config, json!({"zoom": 2}));
    assert_eq!(node.width, Some(320.0));
    assert_eq!(w.handles.len(), 1);
    assert_eq!(w.handles[0].handle_type, HandleType::Input);
}

#[test]
fn malformed_documents_are_import_errors() {
    let t = templates();
    let err = parse_document("{\"nodes\": [", &t).unwrap_err();
    assert!(
        matches!(&err, Error::Import { message } if message.starts_with("not valid JSON")),
        "{err}"
    );
    let err = parse_document("[1, 2]", &t).unwrap_err();
    assert!(matches!(err, Error::Import { .. }));
    // A React Flow node without an id is named by its position.
    let err = read_document(json!({"nodes": [{"type": "text", "data": {}}]}), &t).unwrap_err();
    assert!(
        err.to_string().contains("node #0: missing field `id`"),
        "{err}"
    );
    // A node without a type.
    let err = read_document(json!({"nodes": [{"id": "x", "data": {}}]}), &t).unwrap_err();
    assert!(err.to_string().contains("node `x` has no type"), "{err}");
    // A canvas document of the wrong shape names the field.
    let err = read_document(json!({"nodes": [], "handles": [{"id": "h"}]}), &t).unwrap_err();
    assert!(
        err.to_string().contains("not a Gatewai canvas document"),
        "{err}"
    );
}

#[test]
fn a_canvas_document_of_the_wrong_shape_names_each_item_at_fault() {
    let t = templates();
    let document = json!({
        "nodes": [
            {"id": "ok", "type": "Text", "config": {}},
            {"id": "untyped", "config": {}},
            {"type": "Text", "config": {}}
        ],
        "handles": [{"id": "h1", "type": "Sideways", "nodeId": "ok"}],
        "edges": [{"id": "e1", "source": "ok", "sourceHandleId": "h1"}]
    });
    let err = read_document(document, &t).unwrap_err();
    assert!(matches!(err, Error::Import { .. }), "{err}");
    let text = err.to_string();
    for expected in [
        "node `untyped`: missing field `type`",
        "node #2: missing field `id`",
        "handle `h1`: unknown variant `Sideways`",
        "edge `e1`: missing field `target`",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    assert!(!text.contains("node `ok`"), "{text}");
    // A field of the document itself is named as serde names it. (serde_json's `Value` says
    // "number" for any number under its `arbitrary_precision` feature, which a host's build may
    // turn on: the message is then serde_json's, as for every other type of that build.)
    let keeps_number_text = serde_json::from_str::<serde_json::Number>("1.50")
        .unwrap()
        .to_string()
        == "1.50";
    let expected = if keeps_number_text {
        "invalid type: number, expected a string"
    } else {
        "invalid type: integer `7`, expected a string"
    };
    let err = read_document(json!({"nodes": [], "name": 7}), &t).unwrap_err();
    assert!(err.to_string().contains(expected), "{err}");
}

#[test]
fn an_empty_document_is_an_empty_workflow() {
    assert_eq!(
        parse_document("{}", &templates()).unwrap(),
        Workflow::default()
    );
}

/// A document can make any value megabytes long: an import error quotes at most a few hundred
/// characters of each, and lists at most 50 problems, however many there are.
#[test]
fn import_errors_quote_long_values_and_many_problems_briefly() {
    let t = templates();
    let long = "x".repeat(100_000);
    // Serde's message quotes the value it could not read; ids name the items at fault.
    for document in [
        json!({"nodes": [{"id": long, "type": "text", "data": {}, "position": long}]}),
        json!({"nodes": [{"id": long, "type": long, "data": {}}]}),
        json!({"nodes": [], "handles": [{"id": long, "nodeId": long, "type": long}]}),
        json!({"nodes": [{"id": "a", "type": "text", "data": {}}],
               "edges": [{"id": long, "source": "a", "target": long}]}),
    ] {
        let message = read_document(document, &t).unwrap_err().to_string();
        assert!(
            message.len() < 2_000,
            "{} bytes: {}",
            message.len(),
            &message[..300]
        );
        assert!(message.contains("xxxxxxxx…"), "{message}");
    }
    // 200 nodes without a type: 50 named, then how many more.
    let nodes: Vec<Value> = (0..200)
        .map(|i| json!({"id": format!("n{i}"), "data": {}}))
        .collect();
    let message = read_document(json!({ "nodes": nodes }), &t)
        .unwrap_err()
        .to_string();
    assert!(message.contains("node `n49` has no type"), "{message}");
    assert!(!message.contains("node `n50`"), "{message}");
    assert!(message.ends_with("… (150 more problems)"), "{message}");
}
