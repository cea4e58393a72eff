//! The Gatewai data model: node templates, canvas documents, node results, file assets and run
//! records. Every type here is serde-compatible with Gatewai's JSON (camelCase on the wire) and
//! keeps unknown fields, so stored canvases round-trip unchanged.

mod asset;
mod data_de;
mod data_type;
mod result;
mod run;
mod snapshot;
mod template;
mod workflow;

pub use asset::FileAsset;
pub use data_type::{DataType, DataTypeSet};
pub use result::{Data, FileData, Generation, Item, NodeResult, OutputItem};
pub use run::{ExecutionStatus, NodeExecution, RunRecord, RunStatus, TriggerType};
pub use snapshot::InputSnapshot;
pub use template::{HandleTemplate, HandleType, ImportFn, ImportHook, NodeTemplate};
pub use workflow::{Edge, Handle, Node, OnError, Position, Workflow};

/// A JSON object with fields this crate does not interpret; kept so documents round-trip.
pub type Extra = serde_json::Map<String, serde_json::Value>;
