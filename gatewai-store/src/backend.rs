//! The store traits every backend implements.

use crate::error::Result;
use crate::model::{
    NewUser, NewWorkflow, Page, Retention, RunHistoryEntry, StoredWorkflow, User, WorkflowUpdate,
};
use async_trait::async_trait;
use gatewai_core::{CacheKey, FileAsset, Generation, NodeExecution, RunEvent, RunRecord};

/// Users.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Creates the user, or updates the email and names of an existing one.
    async fn upsert_user(&self, user: &NewUser) -> Result<User>;

    /// The user with this id.
    async fn get_user(&self, id: &str) -> Result<Option<User>>;

    /// Deletes the user and, with them, their workflows (and those workflows' runs).
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no such user.
    async fn delete_user(&self, id: &str) -> Result<()>;
}

/// Workflows. Every call is scoped by the owner: another owner's workflow is reported exactly
/// like a missing one (`None` or [`Error::NotFound`](crate::Error::NotFound)).
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores a new workflow of `owner_id` (who must exist, see
    /// [`UserStore::upsert_user`]). [`Error::Conflict`](crate::Error::Conflict) when the id is
    /// taken, [`Error::NotFound`](crate::Error::NotFound) when the owner does not exist.
    async fn create_workflow(
        &self,
        owner_id: &str,
        workflow: NewWorkflow,
    ) -> Result<StoredWorkflow>;

    /// The owner's workflow with this id.
    async fn get_workflow(&self, owner_id: &str, id: &str) -> Result<Option<StoredWorkflow>>;

    /// The owner's workflows, most recently updated first.
    async fn list_workflows(&self, owner_id: &str, page: Page) -> Result<Vec<StoredWorkflow>>;

    /// Changes the owner's workflow and returns it as stored.
    async fn update_workflow(
        &self,
        owner_id: &str,
        id: &str,
        update: WorkflowUpdate,
    ) -> Result<StoredWorkflow>;

    /// Deletes the owner's workflow with its runs and their node executions.
    async fn delete_workflow(&self, owner_id: &str, id: &str) -> Result<()>;
}

/// Runs and node executions.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a run. When `run.workflow_id` names no stored workflow the run is stored
    /// without one (an ad-hoc run of a document). A run with the same id is replaced (its
    /// `created_at` kept): that is how a resumed run takes over its earlier attempt.
    async fn save_run(&self, run: &RunRecord) -> Result<()>;

    /// Updates a run's status, error and timestamps. [`Error::NotFound`](crate::Error::NotFound)
    /// when there is no such run.
    async fn update_run(&self, run: &RunRecord) -> Result<()>;

    /// The run with this id, whoever owns its workflow (for hosts and resuming; serve users
    /// through [`RunStore::get_run_entry`]).
    async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>>;

    /// Stores a node execution, replacing the one of the same (run, node).
    /// [`Error::NotFound`](crate::Error::NotFound) when the run does not exist.
    async fn save_node_execution(&self, execution: &NodeExecution) -> Result<()>;

    /// A run's node executions, in the order the run queued them.
    async fn node_executions(&self, run_id: &str) -> Result<Vec<NodeExecution>>;

    /// A run of one of the owner's workflows, with its node executions.
    async fn get_run_entry(&self, owner_id: &str, run_id: &str) -> Result<Option<RunHistoryEntry>>;

    /// The run history of the owner's workflow, newest first, with node executions.
    /// [`Error::NotFound`](crate::Error::NotFound) when the workflow is not the owner's.
    async fn run_history(
        &self,
        owner_id: &str,
        workflow_id: &str,
        page: Page,
    ) -> Result<Vec<RunHistoryEntry>>;

    /// Persists a batch of run events in one transaction: the run is stored on `RunStarted`,
    /// node executions on queued / started / terminal events, the run updated on
    /// `RunFinished`. Either the whole batch is stored or none of it.
    async fn record_events(&self, events: &[RunEvent]) -> Result<()>;

    /// Runs left RUNNING (or PENDING) by a process that stopped without finishing them,
    /// oldest first. Call it at start-up, before starting new runs.
    async fn find_interrupted_runs(&self) -> Result<Vec<RunRecord>>;

    /// Marks an interrupted run FAILED with the error "interrupted"; its unfinished node
    /// executions become FAILED too. [`Error::NotFound`](crate::Error::NotFound) when there
    /// is no such run; [`Error::InvalidInput`](crate::Error::InvalidInput) when it has already
    /// ended (it is left as it is: a run another process finished is never overwritten).
    async fn mark_interrupted(&self, run_id: &str) -> Result<()>;

    /// The stored workflow a run belongs to, whoever owns it (for resuming).
    async fn run_workflow(&self, run_id: &str) -> Result<Option<StoredWorkflow>>;

    /// Deletes ended runs, with their node executions, as the run rules of `retention` say
    /// ([`Retention::runs_ended_before`], [`Retention::runs_per_workflow`]); the other rules
    /// are not this call's. Returns how many runs went. Runs pending or running are never
    /// deleted. A large prune is done in several transactions (100 runs each, their node
    /// executions with them), so that the run recorder waits at most for one of them.
    async fn prune_runs(&self, retention: &Retention) -> Result<u64>;
}

/// The rows behind [`StoreResultCache`](crate::StoreResultCache).
#[async_trait]
pub trait CacheStore: Send + Sync {
    /// The generations stored under `key`.
    async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<Generation>>>;

    /// Stores generations under `key`, replacing what was there (and renewing its time).
    async fn cache_put(&self, key: &CacheKey, outputs: &[Generation]) -> Result<()>;

    /// Deletes result-cache entries as the cache rules of `retention` say
    /// ([`Retention::cache_written_before`], [`Retention::cache_entries`]); returns how many
    /// went. An entry rewritten while the prune runs may go too: the node it serves executes
    /// again next time, nothing else is lost.
    async fn prune_cache(&self, retention: &Retention) -> Result<u64>;
}

/// The `file_assets` table: descriptions of asset blobs (the blobs live in an asset store),
/// and who owns each (`asset_owners`). An asset may have several owners (a host whose users'
/// runs share a result cache grants a shared result to each); serve users through the owner-scoped calls
/// ([`get_owned_asset`](AssetRecordStore::get_owned_asset),
/// [`list_assets`](AssetRecordStore::list_assets)), which report another user's asset exactly
/// like a missing one, as [`WorkflowStore`] does.
#[async_trait]
pub trait AssetRecordStore: Send + Sync {
    /// Stores an asset's description, replacing the one with the same id. A signed URL
    /// (`signed_url`, `signed_url_exp`) is not stored: it is made when the asset is served.
    /// With an `owner_id`, the asset is also granted to that user, in the same transaction
    /// ([`grant_asset`](AssetRecordStore::grant_asset)); the owners it already has keep it.
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for a NUL in a text, a size beyond
    /// `i64`, a width or height beyond `i32`, or an fps or duration that is not a finite
    /// number of at least 0; [`Error::NotFound`](crate::Error::NotFound) when `owner_id`
    /// names no user (nothing is stored then).
    async fn put_asset_record(&self, asset: &FileAsset, owner_id: Option<&str>) -> Result<()>;

    /// The asset with this id, whoever owns it (for hosts; serve users through
    /// [`get_owned_asset`](AssetRecordStore::get_owned_asset)).
    async fn get_asset_record(&self, id: &str) -> Result<Option<FileAsset>>;

    /// The asset with this id when `owner_id` is one of its owners; `None` when it is not
    /// (whether or not the asset exists).
    async fn get_owned_asset(&self, owner_id: &str, id: &str) -> Result<Option<FileAsset>>;

    /// The assets `owner_id` owns, the most recently granted first (ties: the greater asset
    /// id first).
    async fn list_assets(&self, owner_id: &str, page: Page) -> Result<Vec<FileAsset>>;

    /// Makes `user_id` an owner of the asset; whether they were not one already. One row per
    /// owner: grants made at the same time all hold. [`Error::NotFound`](crate::Error::NotFound)
    /// naming the asset or the user when it does not exist (or is deleted while the grant
    /// waits for it).
    async fn grant_asset(&self, asset_id: &str, user_id: &str) -> Result<bool>;

    /// Takes the asset from `user_id`; whether they owned it. Its description stays, for its
    /// other owners (delete it with [`delete_asset_record`](AssetRecordStore::delete_asset_record)).
    async fn revoke_asset(&self, asset_id: &str, user_id: &str) -> Result<bool>;

    /// The asset's owners, in the order they were granted it (empty for a missing asset).
    async fn asset_owners(&self, asset_id: &str) -> Result<Vec<String>>;

    /// Deletes an asset's description and its grants; whether there was one. Deleting a user
    /// takes their grants, not the assets.
    async fn delete_asset_record(&self, id: &str) -> Result<bool>;
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendKind {
    /// In memory.
    Memory,
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A complete backend: every store trait, plus closing.
#[async_trait]
pub trait Backend:
    UserStore + WorkflowStore + RunStore + CacheStore + AssetRecordStore + 'static
{
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// Closes connections, waiting for queries in flight. Calls after closing fail.
    async fn close(&self);
}
