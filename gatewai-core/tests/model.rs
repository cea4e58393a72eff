//! The model's wire format through the public API: NodeResult byte for byte, run records,
//! templates.

use gatewai_core::model::{Data, FileData};
use gatewai_core::{
    DataType, ExecutionStatus, FileAsset, Generation, HandleTemplate, Item, NodeExecution,
    NodeResult, NodeTemplate, RunRecord, RunStatus, TriggerType,
};
use serde_json::json;

#[test]
fn node_result_built_through_the_api_serializes_to_gatewai_bytes() {
    let image = FileAsset {
        id: "fa_1".into(),
        name: "crop.png".into(),
        bucket: "assets".into(),
        key: "runs/r1/crop.png".into(),
        mime_type: "image/png".into(),
        size: 2048,
        width: Some(512),
        height: Some(512),
        ..FileAsset::default()
    };
    let result = NodeResult {
        selected_output_index: 1,
        outputs: vec![
            Generation {
                items: vec![Item::text("first draft").on("h_text")],
            },
            Generation {
                items: vec![
                    Item::text("second draft").on("h_text"),
                    Item::integer(3).on("h_count"),
                    Item::number(0.5).on("h_score"),
                    Item::boolean(false).on("h_flag"),
                    Item::file(DataType::Image, image).on("h_image"),
                ],
            },
        ],
    };
    let expected = concat!(
        r#"{"selectedOutputIndex":1,"outputs":["#,
        r#"{"items":[{"type":"Text","data":"first draft","outputHandleId":"h_text"}]},"#,
        r#"{"items":[{"type":"Text","data":"second draft","outputHandleId":"h_text"},"#,
        r#"{"type":"Number","data":3,"outputHandleId":"h_count"},"#,
        r#"{"type":"Number","data":0.5,"outputHandleId":"h_score"},"#,
        r#"{"type":"Boolean","data":false,"outputHandleId":"h_flag"},"#,
        r#"{"type":"Image","data":{"entity":{"id":"fa_1","name":"crop.png","bucket":"assets","key":"runs/r1/crop.png","mimeType":"image/png","size":2048,"width":512,"height":512}},"outputHandleId":"h_image"}"#,
        r#"]}]}"#
    );
    assert_eq!(serde_json::to_string(&result).unwrap(), expected);
    let parsed: NodeResult = serde_json::from_str(expected).unwrap();
    assert_eq!(parsed, result);
    assert_eq!(
        parsed.selected_item("h_count").unwrap().to_item().as_f64(),
        Some(3.0)
    );
    assert_eq!(
        parsed.selected_item("h_text").unwrap().to_item().as_text(),
        Some("second draft")
    );
}

#[test]
fn gatewai_node_results_read_and_write_back_byte_for_byte() {
    // As Gatewai stores them: processData next to the entity, unknown entity fields.
    let stored = r#"{"selectedOutputIndex":0,"outputs":[{"items":[{"type":"Video","data":{"entity":{"id":"v1","name":"clip.mp4","bucket":"b","key":"k","mimeType":"video/mp4","size":99,"width":1280,"height":720,"fps":25.0,"duration":4.2,"signedUrl":"https://s/x","signedUrlExp":"2026-12-01T00:00:00.000Z","metadata":{"codec":"h264"},"createdAt":"2026-11-01"},"processData":{"dataUrl":"data:video/mp4;base64,AA=="}},"outputHandleId":"out"},{"type":"Audio","data":{"processData":{"tempKey":"tmp/a.wav"},"note":"client"},"outputHandleId":"aud"}]}]}"#;
    let parsed: NodeResult = serde_json::from_str(stored).unwrap();
    assert_eq!(serde_json::to_string(&parsed).unwrap(), stored);
    let Data::File(file) = &parsed.outputs[0].items[0].data else {
        panic!("a file")
    };
    let FileData {
        entity: Some(video),
        ..
    } = &**file
    else {
        panic!("a file with its asset")
    };
    assert_eq!(
        (video.fps, video.duration, video.mime_kind()),
        (Some(25.0), Some(4.2), "video")
    );
    let Data::File(audio) = &parsed.outputs[0].items[1].data else {
        panic!("a file")
    };
    assert_eq!(audio.extra["note"], json!("client"));
}

#[test]
fn run_records_use_the_documented_wire_names() {
    let run = RunRecord {
        id: "run_1".into(),
        workflow_id: Some("wf_1".into()),
        trigger_type: TriggerType::Api,
        status: RunStatus::Completed,
        error: None,
        created_at: "2026-11-23T19:00:00Z".parse().unwrap(),
        started_at: Some("2026-11-23T19:00:01.250Z".parse().unwrap()),
        finished_at: None,
        cache_scope: None,
    };
    let json = serde_json::to_string(&run).unwrap();
    assert_eq!(
        json,
        r#"{"id":"run_1","workflowId":"wf_1","triggerType":"API","status":"COMPLETED","createdAt":"2026-11-23T19:00:00Z","startedAt":"2026-11-23T19:00:01.250Z"}"#
    );
    assert_eq!(serde_json::from_str::<RunRecord>(&json).unwrap(), run);

    let task: NodeExecution = serde_json::from_value(json!({
        "runId": "run_1", "nodeId": "n1", "nodeType": "Crop", "label": "Square",
        "status": "SKIPPED", "error": "Upstream failure in node n0: boom", "durationMs": 12, "attempts": 1
    }))
    .unwrap();
    assert_eq!(task.status, ExecutionStatus::Skipped);
    assert_eq!(task.duration_ms, Some(12));
    let back = serde_json::to_value(&task).unwrap();
    assert_eq!(back["status"], json!("SKIPPED"));
    assert_eq!(back["durationMs"], json!(12));
}

#[test]
fn templates_serialize_in_gatewai_shape() {
    let template = NodeTemplate::new("LLM", "LLM", "AI")
        .terminal()
        .variable_inputs(&[DataType::Image])
        .handle(HandleTemplate::input("prompt", "Prompt", &[DataType::Text]).required())
        .handle(
            HandleTemplate::input("image", "Image", &[DataType::Image])
                .multiple()
                .aliases(&["images"]),
        )
        .import_hook(|_| Ok(json!({})));
    let value = serde_json::to_value(&template).unwrap();
    assert_eq!(value["type"], json!("LLM"));
    assert_eq!(value["isTerminalNode"], json!(true));
    assert_eq!(value["variableInputDataTypes"], json!(["Image"]));
    assert_eq!(value["templateHandles"][1]["multiple"], json!(true));
    assert_eq!(value["templateHandles"][1]["order"], json!(1));
    assert!(value.get("importHook").is_none());
    let back: NodeTemplate = serde_json::from_value(value).unwrap();
    assert_eq!(back.template_handles, template.template_handles);
}

/// Every type with a `#[serde(flatten)]` field (whose unknown fields serde buffers) reads
/// numbers of every kind, in its own fields and in the unknown ones, and writes them back: with
/// serde_json's `arbitrary_precision` on (`.ci/run` runs these tests so too), numbers other than
/// 64-bit integers come through such a buffer as serde_json's one-entry map.
#[test]
fn types_with_unknown_fields_read_numbers_of_every_kind() {
    // Numbers as serde_json writes them, so the texts are the same with the feature or without.
    let unknown = r#""zIndex":-3,"scale":0.25,"big":1e+300,"count":18446744073709551615,"nested":[1.5,{"x":-0.5}]"#;
    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(json: &str) -> T {
        let value: serde_json::Value = serde_json::from_str(json).unwrap();
        let read: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(serde_json::to_value(&read).unwrap(), value, "{json}");
        let read: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_value(&read).unwrap(), value, "{json}");
        read
    }
    let node: gatewai_core::model::Node = round_trip(&format!(
        r#"{{"id":"n","name":"N","type":"Text","position":{{"x":-40.5,"y":1e-7}},"width":340.25,"height":180.0,"config":{{"t":0.5}},{unknown}}}"#
    ));
    assert_eq!((node.position.x, node.width), (-40.5, Some(340.25)));
    assert_eq!(node.extra["scale"], json!(0.25));
    let handle: gatewai_core::model::Handle = round_trip(&format!(
        r#"{{"id":"h","type":"Input","dataTypes":["Number"],"label":"","order":-2,"required":false,"nodeId":"n",{unknown}}}"#
    ));
    assert_eq!(handle.order, -2);
    let _: gatewai_core::model::Edge = round_trip(&format!(
        r#"{{"id":"e","source":"a","target":"b","sourceHandleId":"h1","targetHandleId":"h2",{unknown}}}"#
    ));
    let _: gatewai_core::Workflow = round_trip(&format!(
        r#"{{"nodes":[],"handles":[],"edges":[],{unknown}}}"#
    ));
    let _: NodeTemplate = round_trip(&format!(
        r#"{{"type":"T","displayName":"T","category":"C","isTerminalNode":false,"isTransient":false,"variableInputs":false,"variableInputDataTypes":[],"variableOutputs":false,"variableOutputDataTypes":[],"defaultConfig":{{"r":0.1}},"templateHandles":[],{unknown}}}"#
    ));
    let asset: FileAsset = round_trip(&format!(
        r#"{{"id":"f","name":"","bucket":"","key":"","mimeType":"","size":9007199254740993,"width":4,"fps":29.97,"duration":0.04,{unknown}}}"#
    ));
    assert_eq!(asset.size, 9007199254740993);
    assert_eq!((asset.fps, asset.duration), (Some(29.97), Some(0.04)));
    let file: FileData = round_trip(&format!(
        r#"{{"entity":{{"id":"f","name":"","bucket":"","key":"","mimeType":"","size":1,"fps":25.5}},"processData":{{"w":0.5}},{unknown}}}"#
    ));
    assert_eq!(file.entity.unwrap().fps, Some(25.5));
}
