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
