//! Node types by type name: the [`NodeRegistry`] a host fills with built-in and its own nodes,
//! and the [`TemplateSource`] view of it that validation, editing and import use.

use crate::error::{Error, Result};
use crate::model::NodeTemplate;
use crate::node::Node;
use std::collections::HashMap;
use std::sync::Arc;

/// Where validation, editing and import look node types up.
pub trait TemplateSource {
    /// The template of a type name.
    fn template(&self, node_type: &str) -> Option<&NodeTemplate>;

    /// Every template (for alias lookups on import).
    fn templates(&self) -> Vec<&NodeTemplate>;

    /// Problems with a node's config, as (field, message); none by default.
    fn check_config(&self, node_type: &str, config: &serde_json::Value) -> Vec<(String, String)> {
        let _ = (node_type, config);
        Vec::new()
    }

    /// The template whose type name or alias is `name` (type names exactly, aliases
    /// case-insensitively).
    fn resolve(&self, name: &str) -> Option<&NodeTemplate> {
        self.template(name)
            .or_else(|| self.templates().into_iter().find(|t| t.answers_to(name)))
    }
}

impl TemplateSource for [NodeTemplate] {
    fn template(&self, node_type: &str) -> Option<&NodeTemplate> {
        self.iter().find(|t| t.node_type == node_type)
    }
    fn templates(&self) -> Vec<&NodeTemplate> {
        self.iter().collect()
    }
}

impl TemplateSource for Vec<NodeTemplate> {
    fn template(&self, node_type: &str) -> Option<&NodeTemplate> {
        self.as_slice().template(node_type)
    }
    fn templates(&self) -> Vec<&NodeTemplate> {
        self.iter().collect()
    }
}

impl TemplateSource for HashMap<String, NodeTemplate> {
    fn template(&self, node_type: &str) -> Option<&NodeTemplate> {
        self.get(node_type)
    }
    fn templates(&self) -> Vec<&NodeTemplate> {
        self.values().collect()
    }
}

/// Node types by template type name. A host registers its own next to the built-ins.
#[derive(Clone, Default)]
pub struct NodeRegistry {
    nodes: HashMap<String, Arc<dyn Node>>,
}

impl NodeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a node type under its template's type name; an error if the name is taken.
    pub fn register(&mut self, node: impl Node) -> Result<&mut Self> {
        self.register_arc(Arc::new(node))
    }

    /// Registers a shared node type.
    pub fn register_arc(&mut self, node: Arc<dyn Node>) -> Result<&mut Self> {
        let name = node.template().node_type.clone();
        if self.nodes.contains_key(&name) {
            return Err(Error::Config(format!(
                "node type `{name}` is registered twice"
            )));
        }
        self.nodes.insert(name, node);
        Ok(self)
    }

    /// Registers a node type, replacing any registered under the same name (a host overriding
    /// a built-in).
    pub fn replace(&mut self, node: impl Node) -> &mut Self {
        let node: Arc<dyn Node> = Arc::new(node);
        self.nodes.insert(node.template().node_type.clone(), node);
        self
    }

    /// The node type registered under `node_type`.
    pub fn get(&self, node_type: &str) -> Option<&Arc<dyn Node>> {
        self.nodes.get(node_type)
    }

    /// The registered type names, sorted.
    pub fn type_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.nodes.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// How many node types are registered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node type is registered.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("types", &self.type_names())
            .finish()
    }
}

impl TemplateSource for NodeRegistry {
    fn template(&self, node_type: &str) -> Option<&NodeTemplate> {
        self.nodes.get(node_type).map(|n| n.template())
    }

    fn templates(&self) -> Vec<&NodeTemplate> {
        self.nodes.values().map(|n| n.template()).collect()
    }

    fn check_config(&self, node_type: &str, config: &serde_json::Value) -> Vec<(String, String)> {
        self.nodes
            .get(node_type)
            .map(|n| n.check_config(config))
            .unwrap_or_default()
    }
}
