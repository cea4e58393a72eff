use super::{DataType, DataTypeSet, Extra};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// Whether a handle receives (Input) or sends (Output) data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HandleType {
    /// Receives data from an edge.
    Input,
    /// Sends data along edges.
    Output,
}

/// A handle of a node type, from which handles of node instances are created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandleTemplate {
    /// Stable id within the template (`"prompt"`, `"result"`, …); instance handles point here
    /// through `templateHandleId`.
    pub id: String,
    /// Input or Output.
    #[serde(rename = "type")]
    pub handle_type: HandleType,
    /// The data types the handle accepts or produces.
    pub data_types: Vec<DataType>,
    /// Display label.
    pub label: String,
    /// Whether an input must be connected for the node to run.
    #[serde(default)]
    pub required: bool,
    /// Position among the node's handles of the same type.
    #[serde(default)]
    pub order: i32,
    /// Help text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether an input takes many edges (an ordered list) rather than one. Our addition.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub multiple: bool,
    /// Other ids this handle is known by in imported documents (e.g. the workflow app's
    /// `user_message` for an LLM's `prompt`). Our addition; matched case-insensitively.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A config field that stands in for this input when no edge feeds it (the workflow app's
    /// LLM takes its user message typed into the node or from an edge). A required input with
    /// a non-empty value in that field is not reported unconnected. Our addition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_fallback: Option<String>,
}

impl HandleTemplate {
    /// The instance handle `id` of node `node_id` made from this template: its type, data
    /// types, label, order, required flag and description, and `templateHandleId` pointing
    /// back here.
    pub fn instantiate(&self, node_id: &str, id: String) -> super::Handle {
        super::Handle {
            id,
            handle_type: self.handle_type,
            data_types: self.data_types.clone(),
            label: self.label.clone(),
            order: self.order,
            required: self.required,
            template_handle_id: Some(self.id.clone()),
            node_id: node_id.to_owned(),
            description: self.description.clone(),
            multiple: None,
            extra: Extra::new(),
        }
    }

    /// An input handle template.
    pub fn input(id: &str, label: &str, data_types: &[DataType]) -> Self {
        Self::new(id, HandleType::Input, label, data_types)
    }

    /// An output handle template.
    pub fn output(id: &str, label: &str, data_types: &[DataType]) -> Self {
        Self::new(id, HandleType::Output, label, data_types)
    }

    fn new(id: &str, handle_type: HandleType, label: &str, data_types: &[DataType]) -> Self {
        HandleTemplate {
            id: id.to_owned(),
            handle_type,
            data_types: data_types.to_vec(),
            label: label.to_owned(),
            required: false,
            order: 0,
            description: None,
            multiple: false,
            aliases: Vec::new(),
            config_fallback: None,
        }
    }

    /// Marks the input as required.
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Lets the input take many edges.
    pub fn multiple(mut self) -> Self {
        self.multiple = true;
        self
    }

    /// Sets the order.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// Adds import aliases.
    pub fn aliases(mut self, aliases: &[&str]) -> Self {
        self.aliases = aliases.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Lets the config field `field` stand in for this input when it is unconnected.
    pub fn config_fallback(mut self, field: &str) -> Self {
        self.config_fallback = Some(field.to_owned());
        self
    }

    /// Whether `config` holds a non-empty value for this input's config fallback.
    pub fn is_satisfied_by(&self, config: &serde_json::Value) -> bool {
        self.config_fallback
            .as_deref()
            .and_then(|field| config.get(field))
            .is_some_and(|v| match v {
                serde_json::Value::Null => false,
                serde_json::Value::String(s) => !s.trim().is_empty(),
                serde_json::Value::Array(a) => !a.is_empty(),
                _ => true,
            })
    }

    /// The accepted types as a bit set.
    pub fn type_set(&self) -> DataTypeSet {
        DataTypeSet::of(&self.data_types)
    }
}

/// A hook that maps the `data` object of an imported React Flow node onto this node type's
/// `config`. It receives the node's data (unknown fields included) and returns the config, or a
/// message saying which field is wrong.
#[derive(Clone)]
pub struct ImportHook(pub Arc<ImportFn>);

/// The function behind an [`ImportHook`]: a node's React Flow `data` in, its config out.
pub type ImportFn = dyn Fn(&Extra) -> Result<serde_json::Value, String> + Send + Sync;

impl ImportHook {
    /// Wraps a mapping function.
    pub fn new(
        f: impl Fn(&Extra) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    ) -> Self {
        ImportHook(Arc::new(f))
    }
}

impl fmt::Debug for ImportHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ImportHook(..)")
    }
}

impl PartialEq for ImportHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A node type: its category, whether it is terminal or transient, and its handles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    /// The type name (`"Crop"`, `"LLM"`, or a host's own).
    #[serde(rename = "type")]
    pub node_type: String,
    /// Name shown to users.
    pub display_name: String,
    /// Help text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Category in the node picker (`"Image"`, `"AI"`, …).
    #[serde(default)]
    pub category: String,
    /// Subcategory in the node picker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
    /// Must run on the server, in the engine (never computed by a client).
    #[serde(default)]
    pub is_terminal_node: bool,
    /// Its result lives only in the run; it is never written back to the node.
    #[serde(default)]
    pub is_transient: bool,
    /// Users may add inputs of `variable_input_data_types`.
    #[serde(default)]
    pub variable_inputs: bool,
    /// Data types of user-added inputs.
    #[serde(default)]
    pub variable_input_data_types: Vec<DataType>,
    /// Users may add outputs of `variable_output_data_types`.
    #[serde(default)]
    pub variable_outputs: bool,
    /// Data types of user-added outputs.
    #[serde(default)]
    pub variable_output_data_types: Vec<DataType>,
    /// Config given to new nodes of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<serde_json::Value>,
    /// The handles every node of this type starts with.
    #[serde(default)]
    pub template_handles: Vec<HandleTemplate>,
    /// Other type names this type is known by in imported documents (`"crop_image"`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Maps an imported node's `data` onto this type's config; not serialized.
    #[serde(skip)]
    pub import_hook: Option<ImportHook>,
    /// Fields this crate does not interpret, kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

impl NodeTemplate {
    /// A template with the given type name, display name and category, and nothing else.
    pub fn new(node_type: &str, display_name: &str, category: &str) -> Self {
        NodeTemplate {
            node_type: node_type.to_owned(),
            display_name: display_name.to_owned(),
            description: None,
            category: category.to_owned(),
            subcategory: None,
            is_terminal_node: false,
            is_transient: false,
            variable_inputs: false,
            variable_input_data_types: Vec::new(),
            variable_outputs: false,
            variable_output_data_types: Vec::new(),
            default_config: None,
            template_handles: Vec::new(),
            aliases: Vec::new(),
            import_hook: None,
            extra: Extra::new(),
        }
    }

    /// Adds a handle template; its order is its position among handles of its type.
    pub fn handle(mut self, mut handle: HandleTemplate) -> Self {
        if handle.order == 0 {
            handle.order = self
                .template_handles
                .iter()
                .filter(|h| h.handle_type == handle.handle_type)
                .count() as i32;
        }
        self.template_handles.push(handle);
        self
    }

    /// Sets the default config.
    pub fn default_config(mut self, config: serde_json::Value) -> Self {
        self.default_config = Some(config);
        self
    }

    /// Marks the type terminal (runs only in the engine).
    pub fn terminal(mut self) -> Self {
        self.is_terminal_node = true;
        self
    }

    /// Marks the type transient (result kept only in the run).
    pub fn transient(mut self) -> Self {
        self.is_transient = true;
        self
    }

    /// Lets users add inputs of these types.
    pub fn variable_inputs(mut self, types: &[DataType]) -> Self {
        self.variable_inputs = true;
        self.variable_input_data_types = types.to_vec();
        self
    }

    /// Sets import aliases of the type name.
    pub fn aliases(mut self, aliases: &[&str]) -> Self {
        self.aliases = aliases.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the import hook.
    pub fn import_hook(
        mut self,
        f: impl Fn(&Extra) -> Result<serde_json::Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.import_hook = Some(ImportHook::new(f));
        self
    }

    /// Sets the description.
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }

    /// The handle template with this id.
    pub fn handle_template(&self, id: &str) -> Option<&HandleTemplate> {
        self.template_handles.iter().find(|h| h.id == id)
    }

    /// Input handle templates, in order.
    pub fn inputs(&self) -> impl Iterator<Item = &HandleTemplate> {
        self.template_handles
            .iter()
            .filter(|h| h.handle_type == HandleType::Input)
    }

    /// Output handle templates, in order.
    pub fn outputs(&self) -> impl Iterator<Item = &HandleTemplate> {
        self.template_handles
            .iter()
            .filter(|h| h.handle_type == HandleType::Output)
    }

    /// Whether `name` is this type's name or one of its aliases (aliases case-insensitively).
    pub fn answers_to(&self, name: &str) -> bool {
        self.node_type == name || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}
