//! # gatewai-core
//!
//! The model, graph validation and editing, and a generic async scheduler of Gatewai, a
//! node-based generative-AI workflow engine. It knows no concrete node, no database and no HTTP:
//! hosts register node types (built-in ones from `gatewai-nodes`, or their own) in a
//! [`NodeRegistry`] and run workflows on an [`Engine`].
//!
//! - [`model`]: node templates, canvas documents ([`Workflow`]), [`NodeResult`], [`FileAsset`],
//!   run records — serde-compatible with Gatewai's JSON.
//! - [`validate()`]: every problem of a workflow at once, each naming its node, handle or edge.
//! - [`edit`]: the operations a canvas editor needs, each keeping the workflow valid.
//! - [`import`]: React Flow documents of the workflow-app kind into our model.
//! - [`mermaid`]: the graph as Mermaid text.
//! - [`Node`], [`NodeContext`], [`Inputs`], [`Outputs`]: the pluggable node.
//! - [`Engine`]: the DAG scheduler (parallel branches, caching, partial runs, cancellation,
//!   retries, timeouts, events).
//!
//! ## Example: a node type of your own, on a canvas, run by the engine
//!
//! ```
//! use async_trait::async_trait;
//! use gatewai_core::edit::{add_node, connect, update_config, Connection};
//! use gatewai_core::model::Position;
//! use gatewai_core::{
//!     DataType, Engine, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError,
//!     NodeRegistry, NodeTemplate, Outputs, RunOptions, RunStatus, Workflow,
//! };
//! use serde::Deserialize;
//! use serde_json::json;
//!
//! /// A source node: outputs the text in its config.
//! struct Say(NodeTemplate);
//!
//! /// Upper-cases its text input and appends a suffix from its config.
//! struct Shout(NodeTemplate);
//!
//! #[derive(Deserialize)]
//! struct ShoutConfig {
//!     suffix: String,
//! }
//!
//! #[async_trait]
//! impl Node for Say {
//!     fn template(&self) -> &NodeTemplate {
//!         &self.0
//!     }
//!     async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
//!         let text = ctx.raw_config()["text"].as_str().unwrap_or_default();
//!         Ok(Outputs::one("text", Item::text(text)))
//!     }
//! }
//!
//! #[async_trait]
//! impl Node for Shout {
//!     fn template(&self) -> &NodeTemplate {
//!         &self.0
//!     }
//!     async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
//!         let config: ShoutConfig = ctx.config()?;
//!         let text = inputs.text("text")?.unwrap_or_default();
//!         Ok(Outputs::one("result", Item::text(text.to_uppercase() + &config.suffix)))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> gatewai_core::Result<()> {
//! let mut registry = NodeRegistry::new();
//! registry.register(Say(NodeTemplate::new("Say", "Say", "Inputs")
//!     .handle(HandleTemplate::output("text", "Text", &[DataType::Text]))))?;
//! registry.register(Shout(NodeTemplate::new("Shout", "Shout", "Text")
//!     .handle(HandleTemplate::input("text", "Text", &[DataType::Text]).required())
//!     .handle(HandleTemplate::output("result", "Result", &[DataType::Text]))
//!     .default_config(json!({ "suffix": "!" }))))?;
//! let engine = Engine::builder().registry(registry).build()?;
//!
//! // Build the canvas as an editor would: every edit keeps it valid.
//! let mut canvas = Workflow::default();
//! let say = add_node(&mut canvas, engine.registry(), "Say", Position::default())?;
//! update_config(&mut canvas, engine.registry(), &say, &json!({ "text": "hello" }))?;
//! let shout = add_node(&mut canvas, engine.registry(), "Shout", Position { x: 200.0, y: 0.0 })?;
//! let wire = Connection::between(&canvas, &say, "text", &shout, "text")?;
//! connect(&mut canvas, engine.registry(), &wire)?;
//!
//! let outcome = engine.run(canvas, RunOptions::default()).await?;
//! assert_eq!(outcome.run.status, RunStatus::Completed);
//! let result = &outcome.results[shout.as_str()];
//! assert_eq!(result.selected().unwrap().items[0].to_item().as_text(), Some("HELLO!"));
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod assets;
pub mod cache;
pub mod edit;
pub mod engine;
pub mod error;
pub mod event;
pub mod import;
pub mod mermaid;
pub mod model;
pub mod node;
pub mod registry;
pub mod validate;

/// Hash maps keyed by ids from documents: a fast hasher, randomly seeded per map so crafted
/// ids cannot flood it.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// Hash sets keyed by ids from documents (see [`FastMap`]).
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub use assets::{AssetStore, AssetStream, MemoryAssetStore, NewAsset};
pub use cache::{CacheKey, CachedOutputs, MemoryResultCache, ResultCache};
pub use engine::{
    Engine, EngineBuilder, NodeDispatcher, Resumed, RetryPolicy, RunHandle, RunOptions, RunOutcome,
    RunTarget,
};
pub use error::{Error, ErrorKind, NodeError, Result, ValidationError, ValidationErrors};
pub use event::{EventKind, Observer, Progress, ResultSource, RunEvent, SkipReason};
pub use model::{
    DataType, DataTypeSet, Edge, ExecutionStatus, FileAsset, Generation, Handle, HandleTemplate,
    HandleType, InputSnapshot, Item, Node as WorkflowNode, NodeExecution, NodeResult, NodeTemplate,
    OutputItem, RunRecord, RunStatus, TriggerType, Workflow,
};
pub use node::{CachePolicy, InputSlot, Inputs, Node, NodeContext, Outputs, ResultMode, RunInput};
pub use registry::{NodeRegistry, TemplateSource};
pub use validate::validate;

/// The README's Rust examples, compiled and run as doctests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
