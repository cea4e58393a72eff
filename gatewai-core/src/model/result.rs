use super::{DataType, Extra, FileAsset};
use serde::{Deserialize, Serialize};

/// A node's result, exactly as Gatewai stores it: one entry of `outputs` per generation, and
/// `selectedOutputIndex` picking the generation that flows on to downstream nodes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResult {
    /// Index into `outputs` of the generation that flows on.
    #[serde(default)]
    pub selected_output_index: usize,
    /// The generations, oldest first.
    #[serde(default)]
    pub outputs: Vec<Generation>,
}

impl NodeResult {
    /// A result of one generation.
    pub fn single(generation: Generation) -> Self {
        NodeResult {
            selected_output_index: 0,
            outputs: vec![generation],
        }
    }

    /// The selected generation, if the index is in range.
    pub fn selected(&self) -> Option<&Generation> {
        self.outputs.get(self.selected_output_index)
    }

    /// The item the selected generation holds for an output handle.
    pub fn selected_item(&self, output_handle_id: &str) -> Option<&OutputItem> {
        self.selected()?.item(output_handle_id)
    }
}

/// One generation of a node's output: one item per output handle that produced something.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Generation {
    /// The items, one per output handle.
    #[serde(default)]
    pub items: Vec<OutputItem>,
}

impl Generation {
    /// The item for an output handle.
    pub fn item(&self, output_handle_id: &str) -> Option<&OutputItem> {
        self.items
            .iter()
            .find(|i| &*i.output_handle_id == output_handle_id)
    }
}

/// A value produced on an output handle: `{ type, data, outputHandleId }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputItem {
    /// The value's data type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// The value.
    pub data: Data,
    /// The output handle (instance handle id) that produced it.
    pub output_handle_id: std::sync::Arc<str>,
}

impl OutputItem {
    /// The value without its handle.
    pub fn to_item(&self) -> Item {
        Item {
            data_type: self.data_type,
            data: self.data.clone(),
        }
    }
}

/// A value flowing along an edge: its type and its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The value's data type.
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// The value.
    pub data: Data,
}

impl Item {
    /// A text value.
    pub fn text(s: impl Into<String>) -> Self {
        Item {
            data_type: DataType::Text,
            data: Data::Text(s.into()),
        }
    }

    /// A number value; NaN and infinities become 0 (JSON has no place for them).
    pub fn number(n: f64) -> Self {
        Item {
            data_type: DataType::Number,
            data: Data::Number(serde_json::Number::from_f64(n).unwrap_or_else(|| 0.into())),
        }
    }

    /// An integer value.
    pub fn integer(n: i64) -> Self {
        Item {
            data_type: DataType::Number,
            data: Data::Number(n.into()),
        }
    }

    /// A boolean value.
    pub fn boolean(b: bool) -> Self {
        Item {
            data_type: DataType::Boolean,
            data: Data::Boolean(b),
        }
    }

    /// A file asset of the given media type.
    pub fn file(data_type: DataType, asset: FileAsset) -> Self {
        Item {
            data_type,
            data: Data::File(Box::new(FileData {
                entity: Some(asset),
                process_data: None,
                extra: Extra::new(),
            })),
        }
    }

    /// The text, if this is a text value.
    pub fn as_text(&self) -> Option<&str> {
        match &self.data {
            Data::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The number, if this is a number value.
    pub fn as_f64(&self) -> Option<f64> {
        match &self.data {
            Data::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The file asset, if this is a file value with an entity.
    pub fn as_asset(&self) -> Option<&FileAsset> {
        match &self.data {
            Data::File(f) => f.entity.as_ref(),
            _ => None,
        }
    }

    /// Attaches an output handle id.
    pub fn on(self, output_handle_id: impl Into<std::sync::Arc<str>>) -> OutputItem {
        OutputItem {
            data_type: self.data_type,
            data: self.data,
            output_handle_id: output_handle_id.into(),
        }
    }
}

/// The data of a value: a string, number, boolean or file data, untagged on the wire (`"a fox"`,
/// `2.5`, `true`, `{"entity": {...}}`).
///
/// Read by a visitor of its own rather than serde's untagged derive, so that it reads the same
/// whichever features serde_json has in a host's build: with `arbitrary_precision` on (cargo
/// features are unified, so any crate of the build may turn it on) a derived untagged enum
/// cannot read numbers at all. A value that is none of the four is an error saying what was
/// expected ("invalid type: null, expected a string, a number, a boolean or file data (an
/// object)").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Data {
    /// A boolean.
    Boolean(bool),
    /// A number, of the kind it was written as: an integer as `u64` (`i64` when negative),
    /// anything else (a fraction or exponent, an integer beyond 64 bits) as the nearest `f64`
    /// — as serde_json reads JSON without `arbitrary_precision`, and also with it (`2.50` reads
    /// as `2.5` either way, and writes back as `2.5`).
    Number(serde_json::Number),
    /// A string.
    Text(String),
    /// A file: the stored asset and/or client-side processing data (boxed: values flow by the
    /// thousand and most are small).
    File(Box<FileData>),
}

/// File data: `{ entity?: FileAsset, processData?: {...} }`, other fields kept in `extra`.
///
/// Read by a visitor of its own (no buffering of the fields `extra` takes, and so none of the
/// numbers in them), as [`Data`] is.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileData {
    /// The stored asset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity: Option<FileAsset>,
    /// Data a client produced while processing (data URLs, temp keys, dimensions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process_data: Option<serde_json::Value>,
    /// Fields this crate does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_result_round_trips_byte_for_byte() {
        let json = r#"{"selectedOutputIndex":1,"outputs":[{"items":[{"type":"Text","data":"a fox","outputHandleId":"h1"}]},{"items":[{"type":"Number","data":2.5,"outputHandleId":"h2"},{"type":"Boolean","data":true,"outputHandleId":"h3"},{"type":"Image","data":{"entity":{"id":"f1","name":"a.png","bucket":"b","key":"k/a.png","mimeType":"image/png","size":10,"width":2,"height":3,"signedUrl":"https://x/y","signedUrlExp":"2025-01-01T00:00:00.000Z","createdAt":"2025-01-01"},"processData":{"dataUrl":"data:image/png;base64,AA=="}},"outputHandleId":"h4"}]}]}"#;
        let parsed: NodeResult = serde_json::from_str(json).unwrap();
        assert_eq!(
            parsed.outputs[1].items[0].data,
            Data::Number(serde_json::Number::from_f64(2.5).unwrap())
        );
        assert_eq!(serde_json::to_string(&parsed).unwrap(), json);
        assert_eq!(
            parsed.selected_item("h3").unwrap().data,
            Data::Boolean(true)
        );
    }
}
