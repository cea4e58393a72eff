//! The output nodes, always compiled: **Preview** (transient; shows its input) and **Export**
//! (terminal; marks its input as a final output of the run). Both pass the value on their
//! `input` handle through as their result, keyed by that input handle (they have no output
//! handle; the engine maps result keys onto output handles first, then input handles).

use async_trait::async_trait;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Node, NodeContext, NodeError, NodeRegistry, NodeTemplate,
    Outputs,
};

/// The data types an output node accepts.
const SHOWN: [DataType; 4] = [
    DataType::Text,
    DataType::Image,
    DataType::Video,
    DataType::Audio,
];

/// Which of the two output nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputKind {
    Preview,
    Export,
}

/// An output node: [`Preview`] or [`Export`].
#[derive(Debug)]
struct OutputNode {
    template: NodeTemplate,
    kind: OutputKind,
}

impl OutputNode {
    fn new(kind: OutputKind) -> Self {
        let input = HandleTemplate::input("input", "Input", &SHOWN).required();
        let template = match kind {
            OutputKind::Preview => NodeTemplate::new("Preview", "Preview", "Outputs")
                .description("Shows its input.")
                .transient()
                .aliases(&["preview"]),
            OutputKind::Export => NodeTemplate::new("Export", "Export", "Outputs")
                .description("Marks its input as a final output of the run.")
                .terminal()
                .aliases(&["export", "output"]),
        }
        .handle(input);
        OutputNode { template, kind }
    }

    fn pass_through(&self, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let item = inputs.require("input")?;
        if !SHOWN.contains(&item.data_type) && !item.data_type.is_media() {
            return Err(NodeError::input(
                "input",
                format!(
                    "expected Text, Image, Video or Audio, got {}",
                    item.data_type
                ),
            ));
        }
        Ok(Outputs::one("input", item.clone()))
    }
}

/// The **Preview** node: transient, passes its `input` through for display.
#[derive(Debug)]
pub struct Preview(OutputNode);

impl Preview {
    /// The node.
    pub fn new() -> Self {
        Preview(OutputNode::new(OutputKind::Preview))
    }
}

impl Default for Preview {
    fn default() -> Self {
        Self::new()
    }
}

/// The **Export** node: terminal; its `input` is a final output of the run
/// ([`Node::is_run_output`]).
#[derive(Debug)]
pub struct Export(OutputNode);

impl Export {
    /// The node.
    pub fn new() -> Self {
        Export(OutputNode::new(OutputKind::Export))
    }
}

impl Default for Export {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Preview {
    fn template(&self) -> &NodeTemplate {
        &self.0.template
    }

    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.0.pass_through(inputs)
    }
}

#[async_trait]
impl Node for Export {
    fn template(&self) -> &NodeTemplate {
        &self.0.template
    }

    fn is_run_output(&self) -> bool {
        self.0.kind == OutputKind::Export
    }

    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.0.pass_through(inputs)
    }
}

/// Registers Preview and Export.
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    registry.register(Preview::new())?;
    registry.register(Export::new())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{Item, MemoryAssetStore};
    use std::sync::Arc;

    fn ctx() -> NodeContext {
        NodeContext::detached(
            "n",
            "Export",
            serde_json::Value::Null,
            Arc::new(MemoryAssetStore::new()),
        )
    }

    #[tokio::test]
    async fn export_passes_its_input_through() {
        let export = Export::new();
        assert!(export.is_run_output());
        assert!(export.template().is_terminal_node);
        let inputs = Inputs::default().with("input", Item::text("a fox"));
        let out = export.execute(&ctx(), &inputs).await.unwrap();
        assert_eq!(out.get("input").and_then(Item::as_text), Some("a fox"));
    }

    #[tokio::test]
    async fn preview_is_transient_and_needs_an_input() {
        let preview = Preview::new();
        assert!(!preview.is_run_output());
        assert!(preview.template().is_transient);
        let err = preview
            .execute(&ctx(), &Inputs::default())
            .await
            .unwrap_err();
        assert!(err.message().contains("input"), "{err}");
        let out = preview
            .execute(&ctx(), &Inputs::default().with("input", Item::number(2.0)))
            .await
            .unwrap_err();
        assert!(out.message().contains("Number"), "{out}");
    }
}
