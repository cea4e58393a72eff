//! Config checks quote what they refuse, never all of it: a config value comes from untrusted
//! input and may be megabytes long.
#![cfg(all(feature = "image", feature = "video", feature = "llm"))]

use gatewai_core::NodeRegistry;
use serde_json::{Value, json};

/// The longest problem (field or message) a config check may report.
const MAX_PROBLEM: usize = 1000;

/// Config fields the built-in nodes read (and some they do not).
const FIELDS: &[&str] = &[
    "add",
    "aspectRatio",
    "aspect_ratio",
    "asset",
    "audio",
    "backgroundColor",
    "blendMode",
    "blue",
    "bottom",
    "brightness",
    "color",
    "content",
    "dataUrl",
    "duration",
    "endSec",
    "end_sec",
    "error",
    "file",
    "fill",
    "fontSize",
    "height",
    "heightPercent",
    "heightPercentage",
    "height_percent",
    "hue",
    "image",
    "imageSize",
    "image_size",
    "input",
    "join",
    "label",
    "language",
    "languageCode",
    "language_code",
    "layerUpdates",
    "leftPercentage",
    "lightness",
    "maintainAspect",
    "maintain_aspect",
    "maxOutputTokens",
    "maxTokens",
    "max_output_tokens",
    "max_tokens",
    "model",
    "name",
    "opacity",
    "prompt",
    "provider",
    "radius",
    "red",
    "saturation",
    "separator",
    "size",
    "src",
    "startSec",
    "start_sec",
    "systemPrompt",
    "system_prompt",
    "temperature",
    "text",
    "textColor",
    "timestamp",
    "topPercentage",
    "type",
    "url",
    "userMessage",
    "user_message",
    "value",
    "video",
    "voice",
    "voiceName",
    "voice_name",
    "width",
    "widthPercent",
    "widthPercentage",
    "width_percent",
    "xPercent",
    "x_percent",
    "yPercent",
    "y_percent",
    "zIndex",
    "base64",
];

fn huge_values() -> Vec<Value> {
    let long = "x".repeat(20_000);
    vec![
        Value::String(long.clone()),
        Value::String(format!("#{long}")),
        Value::String(format!("{long}:00")),
        Value::String(format!("{long}%")),
        Value::Array(vec![json!(123456789); 5_000]),
        json!({ long.clone(): 1 }),
        json!({ "a": long }),
    ]
}

#[test]
fn config_checks_quote_what_they_refuse_up_to_a_limit() {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::register_all(&mut registry).unwrap();
    let long = "x".repeat(20_000);
    let mut configs = Vec::new();
    for field in FIELDS {
        for value in huge_values() {
            configs.push(json!({ *field: value }));
        }
    }
    // A compositor's layers: a long layer key, and long values in a layer.
    configs.push(json!({ "layerUpdates": { long.clone(): {} } }));
    configs.push(json!({ "layerUpdates": { long.clone(): { "x": "not a number" } } }));
    for field in FIELDS {
        for value in huge_values() {
            configs.push(json!({ "layerUpdates": { "layer": { *field: value } } }));
        }
    }
    let mut checked = 0;
    for node_type in registry.type_names() {
        let node = registry.get(node_type).unwrap();
        for config in &configs {
            for (field, message) in node.check_config(config) {
                checked += 1;
                assert!(
                    field.chars().count() <= MAX_PROBLEM,
                    "{node_type}: a field of {} characters",
                    field.chars().count()
                );
                assert!(
                    message.chars().count() <= MAX_PROBLEM,
                    "{node_type} `{field}`: {} characters: {}…",
                    message.chars().count(),
                    message.chars().take(120).collect::<String>()
                );
            }
        }
    }
    assert!(checked > 100, "{checked} problems");
}
