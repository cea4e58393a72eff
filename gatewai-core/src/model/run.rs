use super::{InputSnapshot, NodeResult};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TriggerType {
    /// A user pressed Run on the canvas.
    #[default]
    Manual,
    /// An API call ran the workflow as a function.
    Api,
    /// A schedule.
    Schedule,
    /// A webhook.
    Webhook,
    /// The engine resumed a run a crashed process left behind.
    Resume,
}

/// The state of a run (a Gatewai task batch / a workflow-app workflow run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Created, not started.
    #[default]
    Pending,
    /// Executing.
    Running,
    /// Every targeted node completed (or was skipped as not taken).
    Completed,
    /// At least one node failed.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The wire name (`"RUNNING"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "PENDING",
            RunStatus::Running => "RUNNING",
            RunStatus::Completed => "COMPLETED",
            RunStatus::Failed => "FAILED",
            RunStatus::Cancelled => "CANCELLED",
        }
    }
}

/// The state of one node's execution within a run (a Gatewai task).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    /// Waiting for inputs or a concurrency slot.
    #[default]
    Queued,
    /// Running.
    Executing,
    /// Produced its result (or was served from cache / pinned).
    Completed,
    /// Failed.
    Failed,
    /// Not run: an upstream node failed, or a branch was not taken.
    Skipped,
    /// Cancelled with its run.
    Cancelled,
}

impl ExecutionStatus {
    /// Whether the execution has ended.
    pub fn is_terminal(self) -> bool {
        !matches!(self, ExecutionStatus::Queued | ExecutionStatus::Executing)
    }

    /// The wire name (`"EXECUTING"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "QUEUED",
            ExecutionStatus::Executing => "EXECUTING",
            ExecutionStatus::Completed => "COMPLETED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::Skipped => "SKIPPED",
            ExecutionStatus::Cancelled => "CANCELLED",
        }
    }
}

/// One run of a workflow (a task batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Run id.
    pub id: String,
    /// The workflow run, when it is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// What started it.
    #[serde(default)]
    pub trigger_type: TriggerType,
    /// Its state.
    pub status: RunStatus,
    /// Why it failed or was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started: for a node that executed, once its inputs were ready and the result
    /// cache had nothing for it (where `duration_ms` starts; also its first `NodeStarted`
    /// event's time when it waited for no concurrency slot); otherwise when the engine began
    /// settling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// The cache scope its nodes' keys were computed in (`RunOptions::cache_scope`), kept
    /// so that a resumed run computes the same keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_scope: Option<String>,
}

/// One node's execution within a run (a task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeExecution {
    /// The run it belongs to (shared by every record of the run).
    pub run_id: Arc<str>,
    /// The node.
    pub node_id: Arc<str>,
    /// The node's type.
    pub node_type: Arc<str>,
    /// The node's display name.
    #[serde(default = "empty_str")]
    pub label: Arc<str>,
    /// Its state.
    pub status: ExecutionStatus,
    /// Snapshot of the inputs it ran with, by input handle id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputSnapshot>,
    /// Snapshot of the result it produced (shared with the run's results, not copied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Arc<NodeResult>>,
    /// Why it failed, was skipped or cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether the result came from the cache (or was pinned) instead of executing.
    #[serde(default)]
    pub cached: bool,
    /// When it started: for a node that executed, once its inputs were ready and the result
    /// cache had nothing for it (where `duration_ms` starts; also its first `NodeStarted`
    /// event's time when it waited for no concurrency slot); otherwise when the engine began
    /// settling it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time of the node's execution in milliseconds: from `started_at` (waits for
    /// concurrency slots and retry pauses included; a result-cache lookup not) to the end of its
    /// last attempt; 0 for a result from the cache or handed in, none when it never executed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// How many attempts were made (0 when it never executed).
    #[serde(default)]
    pub attempts: u32,
    /// The content hash of what the node ran with (type and version, config, handles, input
    /// values, run input: the result cache's key), when the engine computed it: for nodes it
    /// looked up in or stored into its cache, and for every node that resolved its inputs
    /// when an observer asks for keys ([`Observer::needs_cache_keys`](crate::Observer::needs_cache_keys);
    /// a store's run recorder does). Resuming a run reuses a recorded result only while the
    /// node's key is still the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<crate::CacheKey>,
}

impl NodeExecution {
    /// The record of a node that is queued and has done nothing yet.
    pub fn queued(
        run_id: Arc<str>,
        node_id: Arc<str>,
        node_type: Arc<str>,
        label: Arc<str>,
    ) -> Self {
        NodeExecution {
            run_id,
            node_id,
            node_type,
            label,
            status: ExecutionStatus::Queued,
            input: None,
            output: None,
            error: None,
            cached: false,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            attempts: 0,
            cache_key: None,
        }
    }
}

fn empty_str() -> Arc<str> {
    Arc::from("")
}
