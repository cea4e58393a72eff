//! The Gatewai data model: node templates, canvas documents, node results, file assets and run
//! records. Every type here is serde-compatible with Gatewai's JSON (camelCase on the wire) and
//! keeps unknown fields, so stored canvases round-trip unchanged.
//!
//! The types read the same whatever features serde_json has in a host's build. Its
//! `arbitrary_precision` feature (cargo features are unified: any crate of the build may turn it
//! on) hands numbers that are not 64-bit integers to a deserializer as a one-entry map, which
//! serde's derived untagged enums cannot read: [`Data`] and [`FileData`] are read by visitors of
//! their own, a number in [`Data`] as serde_json reads it without the feature. A
//! `#[serde(flatten)]` field here is always an [`Extra`] (`Value`s, which read that map), so the
//! other types keep their derives. Configs, metadata and unknown fields are `Value`s: under the
//! feature they keep a number's text as written (`2.50`), as `Value` does.

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
