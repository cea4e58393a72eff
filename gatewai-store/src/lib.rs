//! # gatewai-store
//!
//! Durable storage for Gatewai: users, workflows, runs, node executions, file assets and the
//! engine's result cache, behind one set of traits with three backends:
//!
//! - `memory://` (feature `memory`): in the process, for tests and one-off embedded runs;
//! - `sqlite://path?mode=rwc` (feature `sqlite`, the default): one file, WAL, one writer;
//! - `postgres://user@host/db` (feature `postgres`).
//!
//! [`Store::open`] picks the backend from the URL and applies the schema migrations.
//!
//! Every backend stores and refuses the same things: timestamps are kept to the microsecond;
//! free text the engine hands over (a node's label, an error) has each NUL character turned
//! into U+FFFD (PostgreSQL's `text` cannot hold one, and a run must not lose its record over
//! it); an id or a name a caller passes with a NUL is refused with
//! [`Error::InvalidInput`] naming the field. JSON (documents, snapshots, cached results) is
//! stored as it is, NULs included.
//!
//! ```no_run
//! # async fn demo() -> gatewai_store::Result<()> {
//! use gatewai_store::prelude::*;
//! let store = Store::open("sqlite://gatewai.db?mode=rwc").await?;
//! store.upsert_user(&NewUser::new("u1", "ada@example.com")).await?;
//! let wf = store
//!     .create_workflow("u1", NewWorkflow::new("My canvas", gatewai_core::Workflow::default()))
//!     .await?;
//! // Persist every run of an engine as it happens:
//! let engine = gatewai_core::Engine::builder().observer(store.recorder());
//! # let _ = (wf, engine);
//! # Ok(()) }
//! ```
//!
//! Other pieces:
//! - [`RunRecorder`]: an engine [`Observer`](gatewai_core::Observer) that commits each batch of
//!   run events in one transaction before the engine hands over the next. A batch the store is
//!   unavailable for is retried with backoff, then held and stored with the run's next batch;
//!   a run that ends unstored says so in its outcome
//!   ([`observer_errors`](gatewai_core::RunOutcome::observer_errors)) and
//!   [`RunRecorder::flush`] stores it later.
//! - [`Store::find_interrupted_runs`](RunStore::find_interrupted_runs),
//!   [`Store::resume_plan`] and [`RunStore::mark_interrupted`]: what to do with runs a crashed
//!   process left RUNNING. A resumed run keeps the completed executions of its earlier
//!   attempt until it records them again, so a second crash loses none of them. Each
//!   execution is stored with its cache key (the recorder asks the engine for keys), and a
//!   resumed run reuses a result only while the node's key is unchanged: a node edited
//!   between the crash and the resume executes again, with what it feeds. (A pinned result
//!   has no key and is reused as it is; see [`ResumePlan`] for what the host hands in again.)
//! - [`StoreResultCache`]: the engine's [`ResultCache`](gatewai_core::ResultCache) backed by
//!   the store, so cache hits survive restarts.
//! - [`Store::prune`] with a [`Retention`]: deletes ended runs by age and by count per
//!   workflow, and result-cache entries by age and by count, so that run history and the
//!   cache of a long-lived store stop growing (assets are not pruned: they have owners).
//! - [`FsAssetStore`] (feature `fs`) and `ObjectAssetStore` (feature `s3`): asset blobs.
#![warn(missing_docs)]

// Used by the backends: a store built with none (assets only) leaves them idle.
#[cfg_attr(
    not(any(feature = "memory", feature = "sqlite", feature = "postgres")),
    allow(dead_code)
)]
mod argument;
mod backend;
mod cache;
mod error;
mod model;
mod recorder;
mod store;
#[cfg_attr(
    not(any(feature = "memory", feature = "sqlite", feature = "postgres")),
    allow(dead_code)
)]
mod write_plan;

/// The error a run and its unfinished node executions get when
/// [`RunStore::mark_interrupted`] closes a run a crashed process left behind.
pub const INTERRUPTED: &str = "interrupted";

#[cfg(any(feature = "fs", feature = "s3"))]
pub mod assets;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub mod sql;

pub use backend::{
    AssetRecordStore, Backend, BackendKind, CacheStore, RunStore, UserStore, WorkflowStore,
};
pub use cache::StoreResultCache;
pub use error::{Error, ErrorKind, Result};
pub use model::{
    NewUser, NewWorkflow, Page, Pruned, ResumePlan, Retention, RunHistoryEntry, StoredWorkflow,
    User, WorkflowUpdate,
};
pub use recorder::RunRecorder;
pub use store::{Store, open};

#[cfg(feature = "fs")]
pub use assets::FsAssetStore;
#[cfg(feature = "s3")]
pub use assets::ObjectAssetStore;

/// Everything needed to call a [`Store`]: the handle, its traits and its types.
pub mod prelude {
    pub use crate::backend::{
        AssetRecordStore, Backend, BackendKind, CacheStore, RunStore, UserStore, WorkflowStore,
    };
    pub use crate::model::{
        NewUser, NewWorkflow, Page, Pruned, ResumePlan, Retention, RunHistoryEntry, StoredWorkflow,
        User, WorkflowUpdate,
    };
    pub use crate::{Error, ErrorKind, Result, RunRecorder, Store, StoreResultCache};
}
