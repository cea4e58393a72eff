use super::{DataType, DataTypeSet, Extra, HandleType, NodeResult};
use serde::{Deserialize, Serialize};

/// A node's place on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Position {
    /// Horizontal coordinate.
    pub x: f64,
    /// Vertical coordinate.
    pub y: f64,
}

/// What the engine does when a node fails (n8n's "On Error").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnError {
    /// The node fails; its downstream nodes are skipped (the default).
    #[default]
    Fail,
    /// The node completes with the error text on its `error` output handle (with no output
    /// when it has none, the error kept in its record); nodes fed by its other outputs are
    /// skipped as "not taken".
    Continue,
}

/// A node instance on a canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// Unique id within the workflow.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The node type (a [`NodeTemplate`](super::NodeTemplate)'s `type`).
    #[serde(rename = "type")]
    pub node_type: String,
    /// Place on the canvas.
    #[serde(default)]
    pub position: Position,
    /// Width on the canvas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    /// Height on the canvas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<f64>,
    /// The node's settings, interpreted by its type.
    #[serde(default)]
    pub config: serde_json::Value,
    /// The node's last result (its generations). Shared: a run writes a node's new result
    /// back into the document without copying it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<std::sync::Arc<NodeResult>>,
    /// Id of the template the node was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    /// What happens when the node fails; our addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// Fields this crate does not interpret (zIndex, draggable, …), kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Node {
    /// A node with the given id and type, at the origin, with null config.
    pub fn new(id: impl Into<String>, node_type: impl Into<String>) -> Self {
        let node_type = node_type.into();
        Node {
            id: id.into(),
            name: node_type.clone(),
            node_type,
            position: Position::default(),
            width: None,
            height: None,
            config: serde_json::Value::Null,
            result: None,
            template_id: None,
            on_error: None,
            extra: Extra::new(),
        }
    }
}

/// A handle of a node instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handle {
    /// Unique id within the workflow.
    pub id: String,
    /// Input or Output.
    #[serde(rename = "type")]
    pub handle_type: HandleType,
    /// The data types it accepts or produces.
    #[serde(default)]
    pub data_types: Vec<DataType>,
    /// Display label.
    #[serde(default)]
    pub label: String,
    /// Position among the node's handles of the same type.
    #[serde(default)]
    pub order: i32,
    /// Whether an input must be connected.
    #[serde(default)]
    pub required: bool,
    /// The handle template it was created from; `None` for user-added variable handles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_handle_id: Option<String>,
    /// The node the handle belongs to.
    pub node_id: String,
    /// Help text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether an input takes many edges; `None` defers to the handle template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiple: Option<bool>,
    /// Fields this crate does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Handle {
    /// The accepted types as a bit set.
    pub fn type_set(&self) -> DataTypeSet {
        DataTypeSet::of(&self.data_types)
    }
}

/// An edge from an output handle to an input handle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    /// Unique id within the workflow.
    pub id: String,
    /// Source node id.
    pub source: String,
    /// Target node id.
    pub target: String,
    /// Output handle on the source node.
    pub source_handle_id: String,
    /// Input handle on the target node.
    pub target_handle_id: String,
    /// Fields this crate does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A canvas document: nodes, their handles, and the edges between handles.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workflow {
    /// Workflow id, when stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Workflow name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// The handles of all nodes.
    #[serde(default)]
    pub handles: Vec<Handle>,
    /// The edges.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Fields this crate does not interpret (viewport, description, …), kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

impl Workflow {
    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The node with this id, mutably.
    pub fn node_mut(&mut self, id: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == id)
    }

    /// The handle with this id.
    pub fn handle(&self, id: &str) -> Option<&Handle> {
        self.handles.iter().find(|h| h.id == id)
    }

    /// The handles of a node, inputs and outputs, sorted by type then order.
    pub fn handles_of<'a>(&'a self, node_id: &'a str) -> impl Iterator<Item = &'a Handle> + 'a {
        self.handles.iter().filter(move |h| h.node_id == node_id)
    }
}
