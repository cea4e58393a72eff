//! The rows a store keeps, as Rust types.

use chrono::{DateTime, Utc};
use gatewai_core::{NodeExecution, RunOptions, RunRecord, Workflow};
use serde::{Deserialize, Serialize};

/// A user. The id comes from the host's identity provider; the store only keeps it so that
/// workflows have an owner (deleting a user deletes their workflows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Id from the identity provider.
    pub id: String,
    /// Email address.
    pub email: String,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// When the user was first stored.
    pub created_at: DateTime<Utc>,
    /// When the user was last changed.
    pub updated_at: DateTime<Utc>,
}

/// A user to create or update ([`UserStore::upsert_user`](crate::UserStore::upsert_user)).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    /// Id from the identity provider.
    pub id: String,
    /// Email address.
    pub email: String,
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
}

impl NewUser {
    /// A user with an id and an email and no names.
    pub fn new(id: impl Into<String>, email: impl Into<String>) -> Self {
        NewUser {
            id: id.into(),
            email: email.into(),
            first_name: None,
            last_name: None,
        }
    }
}

/// A stored workflow: the canvas document plus who owns it and when it changed.
///
/// `document.id` and `document.name` are set to the row's `id` and `name` when read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredWorkflow {
    /// Workflow id.
    pub id: String,
    /// The owning user's id.
    pub owner_id: String,
    /// Name.
    pub name: String,
    /// The canvas document.
    pub document: Workflow,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last updated.
    pub updated_at: DateTime<Utc>,
}

/// A workflow to create ([`WorkflowStore::create_workflow`](crate::WorkflowStore::create_workflow)).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewWorkflow {
    /// The id to use; a fresh UUID when `None`.
    pub id: Option<String>,
    /// Name.
    pub name: String,
    /// The canvas document.
    pub document: Workflow,
}

impl NewWorkflow {
    /// A workflow with a fresh id.
    pub fn new(name: impl Into<String>, document: Workflow) -> Self {
        NewWorkflow {
            id: None,
            name: name.into(),
            document,
        }
    }

    /// Uses this id instead of a fresh one.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
}

/// Changes to a stored workflow; `None` fields are left as they are.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkflowUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new document.
    pub document: Option<Workflow>,
}

/// A page of a listing: at most `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Maximum rows returned (1..=[`Page::MAX_LIMIT`]; larger values are clamped).
    pub limit: u32,
    /// Rows skipped.
    pub offset: u64,
}

impl Page {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 1000;

    /// A page of `limit` rows after `offset`.
    pub fn new(limit: u32, offset: u64) -> Self {
        Page { limit, offset }
    }

    /// The first `limit` rows.
    pub fn first(limit: u32) -> Self {
        Page { limit, offset: 0 }
    }

    /// The page after this one.
    pub fn next(self) -> Self {
        Page {
            limit: self.limit,
            offset: self.offset.saturating_add(u64::from(self.limit)),
        }
    }

    /// The limit, clamped to 1..=MAX_LIMIT.
    pub fn effective_limit(self) -> u32 {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for Page {
    /// The first 50 rows.
    fn default() -> Self {
        Page::first(50)
    }
}

/// One run of a workflow's history, with its node executions (in the order the run queued
/// them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunHistoryEntry {
    /// The run.
    pub run: RunRecord,
    /// Its node executions.
    pub executions: Vec<NodeExecution>,
}

/// How to resume an interrupted run ([`Store::resume_plan`](crate::Store::resume_plan)):
/// start `workflow` on the engine with `options`. The options keep the run's id, set the
/// trigger to [`TriggerType::Resume`](gatewai_core::TriggerType::Resume), keep the run's
/// cache scope ([`RunOptions::cache_scope`], part of every key, recorded with the run) and
/// hand in the results of the nodes that had completed, each with the cache key it ran with,
/// so they are not executed again unless the node changed since (see
/// [`gatewai_core::Resumed`]).
///
/// What the store does not keep, the host hands in again before starting, as it did for
/// the interrupted attempt:
/// - the values for its source nodes ([`RunOptions::inputs`], an API run; they may be
///   large uploads);
/// - its asset store ([`RunOptions::assets`]).
///
/// Without the inputs the keys of the source nodes differ from the recorded ones, and those
/// nodes execute again (with no input), with what they feed.
///
/// A result recorded without a key is reused as it is, even for a node edited since: a
/// pinned result (handed in by a client, never hashed), or a record made before keys were
/// recorded. One whose selected generation no longer fits its node (an item on a handle
/// the node lost, or of a type its output no longer carries) is refused by [`gatewai_core::Engine::start`] as
/// [`gatewai_core::ValidationError::InvalidResumedResult`] naming the node: leave it out of
/// `options.resumed` and that node executes again.
#[derive(Debug, Clone)]
pub struct ResumePlan {
    /// The run as it was left.
    pub run: RunRecord,
    /// The stored workflow the run belongs to, when it still exists (its current document).
    pub workflow: Option<StoredWorkflow>,
    /// The engine options that resume the run.
    pub options: RunOptions,
}

/// What [`Store::prune`](crate::Store::prune) deletes: old run history and old result-cache
/// entries, so that a long-lived store does not grow without bound. Every rule is optional;
/// the default deletes nothing. A host typically prunes now and then, with limits from its
/// settings (as n8n prunes executions by age and count).
///
/// ```
/// use chrono::{Duration, Utc};
/// use gatewai_store::Retention;
/// let retention = Retention {
///     runs_ended_before: Some(Utc::now() - Duration::days(14)),
///     runs_per_workflow: Some(100),
///     cache_written_before: Some(Utc::now() - Duration::days(30)),
///     ..Retention::default()
/// };
/// assert_eq!(retention.cache_entries, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// Runs that ended (completed, failed or cancelled) before this time are deleted with
    /// their node executions. A run's end is its `finished_at` (its `created_at` when it has
    /// none). Runs still pending or running are never deleted: they may be resumed.
    pub runs_ended_before: Option<DateTime<Utc>>,
    /// Of each workflow's ended runs, only this many are kept, the newest by `created_at`
    /// (ties: the greater id), as the run history lists them; the runs filed under no
    /// workflow count as one more workflow. Runs still pending or running are neither
    /// counted nor deleted.
    pub runs_per_workflow: Option<u64>,
    /// Result-cache entries written before this time are deleted (an entry is rewritten,
    /// and its time renewed, when a node executes again after missing it).
    pub cache_written_before: Option<DateTime<Utc>>,
    /// Only this many result-cache entries are kept, the most recently written (ties: the
    /// greater key).
    pub cache_entries: Option<u64>,
}

impl Retention {
    /// Whether this retention deletes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Retention::default()
    }

    /// The times to the microsecond, as every backend keeps times, and at most the end of
    /// year 9999 (SQLite compares times as text, and a later year is written with a sign that
    /// sorts before every digit: the latest time a database holds cuts as well as any later
    /// one); the counts as the databases bind them (a count beyond `i64::MAX` keeps everything
    /// anyway). So every backend compares the same.
    #[cfg_attr(
        not(any(feature = "memory", feature = "sqlite", feature = "postgres")),
        allow(dead_code)
    )]
    pub(crate) fn normalized(&self) -> Retention {
        use chrono::{SubsecRound, TimeZone};
        let latest = Utc
            .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
            .single()
            .and_then(|t| t.checked_add_signed(chrono::Duration::microseconds(999_999)));
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| {
                let t = t.trunc_subsecs(6);
                latest.map_or(t, |latest| t.min(latest))
            })
        };
        let count = |n: Option<u64>| n.map(|n| n.min(i64::MAX as u64));
        Retention {
            runs_ended_before: time(self.runs_ended_before),
            runs_per_workflow: count(self.runs_per_workflow),
            cache_written_before: time(self.cache_written_before),
            cache_entries: count(self.cache_entries),
        }
    }
}

/// What [`Store::prune`](crate::Store::prune) deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pruned {
    /// Runs deleted (their node executions went with them).
    pub runs: u64,
    /// Result-cache entries deleted.
    pub cache_entries: u64,
}
