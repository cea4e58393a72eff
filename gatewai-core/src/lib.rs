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

pub use assets::{AssetStore, MemoryAssetStore, NewAsset};
pub use cache::{CacheKey, CachedOutputs, MemoryResultCache, ResultCache};
pub use engine::{
    Engine, EngineBuilder, NodeDispatcher, RetryPolicy, RunHandle, RunOptions, RunOutcome,
    RunTarget,
};
pub use error::{Error, ErrorKind, NodeError, Result, ValidationError, ValidationErrors};
pub use event::{EventKind, Observer, Progress, ResultSource, RunEvent, SkipReason};
pub use model::{
    DataType, DataTypeSet, Edge, ExecutionStatus, FileAsset, Generation, Handle, HandleTemplate,
    HandleType, Item, Node as WorkflowNode, NodeExecution, NodeResult, NodeTemplate, OutputItem,
    RunRecord, RunStatus, TriggerType, Workflow,
};
pub use node::{CachePolicy, InputSlot, Inputs, Node, NodeContext, Outputs, ResultMode, RunInput};
pub use registry::{NodeRegistry, TemplateSource};
pub use validate::validate;
