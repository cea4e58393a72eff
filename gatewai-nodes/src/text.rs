//! Text nodes: **Text** (a source of text), **TextMerger** (joins its text inputs) and **Note**
//! (a canvas annotation that never executes).
//!
//! | type | inputs | outputs | config |
//! |---|---|---|---|
//! | `Text` | – | `text`: Text | `{content: ""}`; a [`RunInput::Text`] handed to the run wins |
//! | `TextMerger` | `text`, `text_2`, + variable Text | `result`: Text | `{join: " "}` |
//! | `Note` | – | – | `{backgroundColor, textColor}` |
//!
//! The workflow app's `text` nodes import as `Text` (`data.text` or `data.value` becomes
//! `content`).

use async_trait::async_trait;
use gatewai_core::model::Extra;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError, NodeRegistry,
    NodeTemplate, Outputs, RunInput,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// Registers Text, TextMerger and Note.
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    registry.register(TextNode::new())?;
    registry.register(TextMergerNode::new())?;
    registry.register(NoteNode::new())?;
    Ok(())
}

/// Returns the first of `keys` that `data` holds as a string (or a number / boolean, as text).
pub(crate) fn data_text(data: &Extra, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match data.get(*k) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Some(v.to_string()),
        _ => None,
    })
}

/// Copies the fields of `data` that are not in `consumed` (nor `label` / `status`, which are
/// React Flow display state) into `config`, so that unknown fields survive an import.
pub(crate) fn keep_unknown_fields(data: &Extra, consumed: &[&str], config: &mut Extra) {
    for (k, v) in data {
        let known = consumed.contains(&k.as_str()) || k == "label" || k == "status";
        if !known && !config.contains_key(k) {
            config.insert(k.clone(), v.clone());
        }
    }
}

/// The **Text** source node: outputs its config's `content`, or the text handed to the run for
/// this node.
#[derive(Debug)]
pub struct TextNode {
    template: NodeTemplate,
}

#[derive(Debug, Deserialize)]
struct TextConfig {
    #[serde(default)]
    content: Option<Value>,
}

impl TextNode {
    /// The node type.
    pub fn new() -> Self {
        let template = NodeTemplate::new("Text", "Text", "Inputs")
            .description("A piece of text.")
            .aliases(&["text"])
            .handle(HandleTemplate::output("text", "Text", &[DataType::Text]).aliases(&["output"]))
            .default_config(json!({ "content": "" }))
            .import_hook(|data| {
                let mut config = Extra::new();
                let content = data_text(data, &["content", "text", "value"]).unwrap_or_default();
                config.insert("content".into(), Value::String(content));
                keep_unknown_fields(data, &["content", "text", "value"], &mut config);
                Ok(Value::Object(config))
            });
        TextNode { template }
    }
}

impl Default for TextNode {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for TextNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        match config.get("content") {
            None | Some(Value::Null | Value::String(_)) => Vec::new(),
            Some(other) => vec![(
                "content".into(),
                format!("must be a string, got {}", json_kind(other)),
            )],
        }
    }

    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let text = match ctx.run_input() {
            Some(RunInput::Text(text)) => text.clone(),
            Some(_) => {
                return Err(NodeError::input(
                    "text",
                    "a Text node takes a text run input, not a file or URL",
                ));
            }
            None => {
                let config: TextConfig = ctx.config()?;
                match config.content {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s,
                    Some(other) => {
                        return Err(NodeError::config(
                            "content",
                            format!("must be a string, got {}", json_kind(&other)),
                        ));
                    }
                }
            }
        };
        Ok(Outputs::one("text", Item::text(text)))
    }
}

/// The **TextMerger** node: joins the texts on `text`, `text_2` and any variable inputs, in
/// handle order, with config `join` (a space by default). Inputs without a value are left out.
#[derive(Debug)]
pub struct TextMergerNode {
    template: NodeTemplate,
}

#[derive(Debug, Deserialize)]
struct TextMergerConfig {
    #[serde(default = "default_join")]
    join: String,
}

fn default_join() -> String {
    " ".to_owned()
}

impl TextMergerNode {
    /// The node type.
    pub fn new() -> Self {
        let template = NodeTemplate::new("TextMerger", "Text Merger", "Tools")
            .description("Joins texts in handle order.")
            .aliases(&["textMerger", "text_merger"])
            .handle(HandleTemplate::input("text", "Text", &[DataType::Text]))
            .handle(HandleTemplate::input("text_2", "Text 2", &[DataType::Text]))
            .handle(
                HandleTemplate::output("result", "Merged Text", &[DataType::Text])
                    .aliases(&["output"]),
            )
            .variable_inputs(&[DataType::Text])
            .default_config(json!({ "join": " " }))
            .import_hook(|data| {
                let mut config = Extra::new();
                let join = data_text(data, &["join", "separator"]).unwrap_or_else(default_join);
                config.insert("join".into(), Value::String(join));
                keep_unknown_fields(data, &["join", "separator"], &mut config);
                Ok(Value::Object(config))
            });
        TextMergerNode { template }
    }
}

impl Default for TextMergerNode {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for TextMergerNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        match config.get("join") {
            None | Some(Value::Null | Value::String(_)) => Vec::new(),
            Some(other) => vec![(
                "join".into(),
                format!("must be a string, got {}", json_kind(other)),
            )],
        }
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config: TextMergerConfig = ctx.config()?;
        let mut parts: Vec<&str> = Vec::new();
        for slot in inputs.slots() {
            for item in &slot.values {
                let text = item.as_text().ok_or_else(|| {
                    NodeError::input(
                        &slot.handle_id,
                        format!("expected Text, got {}", item.data_type),
                    )
                })?;
                parts.push(text);
            }
        }
        Ok(Outputs::one("result", Item::text(parts.join(&config.join))))
    }
}

/// The **Note** node: a canvas annotation. It never executes and carries no data.
#[derive(Debug)]
pub struct NoteNode {
    template: NodeTemplate,
}

impl NoteNode {
    /// The node type.
    pub fn new() -> Self {
        let template = NodeTemplate::new("Note", "Note", "Tools")
            .description("A note on the canvas; never executes.")
            .aliases(&["note"])
            .default_config(json!({ "backgroundColor": "#fef3c7", "textColor": "#1f2937" }))
            .import_hook(|data| {
                let mut config = Extra::new();
                if let Some(text) = data_text(data, &["content", "text"]) {
                    config.insert("content".into(), Value::String(text));
                }
                keep_unknown_fields(data, &["content", "text"], &mut config);
                Ok(Value::Object(config))
            });
        NoteNode { template }
    }
}

impl Default for NoteNode {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for NoteNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn is_executable(&self) -> bool {
        false
    }

    async fn execute(&self, _ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        Ok(Outputs::none())
    }
}

/// The JSON kind of a value, for error messages.
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_import_hook_maps_text_and_value_and_keeps_unknown_fields() {
        let node = TextNode::new();
        let hook = node.template().import_hook.clone().unwrap();
        let data: Extra = serde_json::from_value(
            json!({"label": "Text", "text": "a red fox", "status": "idle", "color": "red"}),
        )
        .unwrap();
        assert_eq!(
            (hook.0)(&data).unwrap(),
            json!({"content": "a red fox", "color": "red"})
        );
        let data: Extra = serde_json::from_value(json!({"value": "v"})).unwrap();
        assert_eq!((hook.0)(&data).unwrap(), json!({"content": "v"}));
    }

    #[test]
    fn check_config_rejects_non_string_content_and_join() {
        assert_eq!(
            TextNode::new().check_config(&json!({"content": 3}))[0].0,
            "content"
        );
        assert!(
            TextNode::new()
                .check_config(&json!({"content": "x"}))
                .is_empty()
        );
        assert_eq!(
            TextMergerNode::new().check_config(&json!({"join": []}))[0].0,
            "join"
        );
    }
}
