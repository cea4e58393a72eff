//! The [`Store`] handle and [`open`].

use crate::backend::{Backend, BackendKind};
use crate::cache::StoreResultCache;
use crate::error::{Error, Result};
use crate::model::{Pruned, ResumePlan, Retention};
use crate::recorder::RunRecorder;
use gatewai_core::{ExecutionStatus, Resumed, RunOptions, RunTarget, TriggerType};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A handle on a store backend; cheap to clone, clones share the connection pool.
///
/// The store traits ([`UserStore`](crate::UserStore), [`WorkflowStore`](crate::WorkflowStore),
/// [`RunStore`](crate::RunStore), …) are callable on it directly (it dereferences to the
/// backend); bring them into scope with `use gatewai_store::prelude::*`.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend.kind())
            .finish()
    }
}

impl Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

/// Opens the store a URL names and applies its schema migrations:
///
/// - `memory://` — in memory (feature `memory`);
/// - `sqlite://path/to/file.db?mode=rwc` — a SQLite file, created with `mode=rwc`
///   (feature `sqlite`); `sqlite::memory:` for a private in-memory database. A
///   `busy_timeout=<ms>` parameter sets how long a write waits for a lock another process
///   holds before failing as unavailable (default 10 000);
/// - `postgres://user:password@host:port/database` (or `postgresql://`) — PostgreSQL
///   (feature `postgres`).
pub async fn open(url: &str) -> Result<Store> {
    Store::open(url).await
}

impl Store {
    /// Opens the store a URL names; see [`open`].
    pub async fn open(url: &str) -> Result<Store> {
        let scheme = url
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match scheme.as_str() {
            "memory" => Self::open_memory(url),
            "sqlite" => Self::open_sqlite(url).await,
            "postgres" | "postgresql" => Self::open_postgres(url).await,
            _ => Err(Error::InvalidUrl {
                url: redact(url),
                message: "expected a `memory://`, `sqlite://` or `postgres://` URL".into(),
            }),
        }
    }

    #[cfg(feature = "memory")]
    fn open_memory(_url: &str) -> Result<Store> {
        Ok(Store::memory())
    }

    #[cfg(not(feature = "memory"))]
    fn open_memory(_url: &str) -> Result<Store> {
        Err(Error::BackendDisabled {
            scheme: "memory".into(),
            feature: "memory",
        })
    }

    #[cfg(feature = "sqlite")]
    async fn open_sqlite(url: &str) -> Result<Store> {
        Ok(Store::from_backend(Arc::new(
            crate::sql::SqliteBackend::connect(url).await?,
        )))
    }

    #[cfg(not(feature = "sqlite"))]
    async fn open_sqlite(_url: &str) -> Result<Store> {
        Err(Error::BackendDisabled {
            scheme: "sqlite".into(),
            feature: "sqlite",
        })
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres(url: &str) -> Result<Store> {
        Ok(Store::from_backend(Arc::new(
            crate::sql::PostgresBackend::connect(url).await?,
        )))
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(_url: &str) -> Result<Store> {
        Err(Error::BackendDisabled {
            scheme: "postgres".into(),
            feature: "postgres",
        })
    }

    /// A fresh, empty store in memory.
    #[cfg(feature = "memory")]
    pub fn memory() -> Store {
        Store::from_backend(Arc::new(crate::memory::MemoryBackend::new()))
    }

    /// A store over a backend of the host's own.
    pub fn from_backend(backend: Arc<dyn Backend>) -> Store {
        Store { backend }
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    /// An engine observer that persists every run into this store
    /// (`Engine::builder().observer(store.recorder())`).
    pub fn recorder(&self) -> Arc<RunRecorder> {
        Arc::new(RunRecorder::new(self.clone()))
    }

    /// The engine's result cache backed by this store
    /// (`Engine::builder().cache(store.result_cache())`).
    pub fn result_cache(&self) -> Arc<StoreResultCache> {
        Arc::new(StoreResultCache::new(self.clone()))
    }

    /// How to resume an interrupted run: its workflow and the engine options that reuse the
    /// results of the nodes that had completed. [`Error::NotFound`] when there is no such
    /// run; [`Error::InvalidInput`] when the run has already ended.
    pub async fn resume_plan(&self, run_id: &str) -> Result<ResumePlan> {
        let run = self
            .get_run(run_id)
            .await?
            .ok_or_else(|| Error::not_found("run", run_id))?;
        if run.status.is_terminal() {
            return Err(Error::run_already_ended(run_id, Some(run.status)));
        }
        let executions = self.node_executions(run_id).await?;
        let workflow = self.run_workflow(run_id).await?;
        // Nodes the document no longer has are left out (the engine rejects unknown ids).
        let known: Option<HashSet<&str>> = workflow
            .as_ref()
            .map(|w| w.document.nodes.iter().map(|n| n.id.as_str()).collect());
        let keep = |id: &str| known.as_ref().is_none_or(|k| k.contains(id));
        let queued: Vec<String> = executions
            .iter()
            .filter(|e| keep(&e.node_id))
            .map(|e| e.node_id.to_string())
            .collect();
        let resumed: HashMap<_, _> = executions
            .into_iter()
            .filter(|e| e.status == ExecutionStatus::Completed && keep(&e.node_id))
            .filter_map(|e| {
                let resumed = Resumed {
                    result: Arc::unwrap_or_clone(e.output?),
                    cache_key: e.cache_key,
                    // A completed node's error: the one it continued with.
                    error: e.error,
                };
                Some((e.node_id.to_string(), resumed))
            })
            .collect();
        // The run settles the nodes it queued the first time (all of them, for a run of the
        // whole canvas), which the engine recorded at its start.
        let target = if queued.is_empty() {
            RunTarget::All
        } else {
            RunTarget::Nodes(queued)
        };
        let options = RunOptions {
            run_id: Some(run.id.clone()),
            workflow_id: run.workflow_id.clone(),
            trigger: TriggerType::Resume,
            target,
            resumed,
            cache_scope: run.cache_scope.clone(),
            ..RunOptions::default()
        };
        Ok(ResumePlan {
            run,
            workflow,
            options,
        })
    }

    /// Deletes what `retention` says is too old or too many: ended runs (with their node
    /// executions) and result-cache entries. See [`Retention`] for each rule. Runs pending or
    /// running are never deleted. Safe beside running engines: a large prune is done in
    /// several transactions (100 runs or 500 entries each), so a recorder waits at most for
    /// one of them. Both parts are tried even when the first fails; the first error is
    /// returned. The assets the deleted runs' results named are not deleted (they have owners
    /// of their own), and a SQLite file reuses the pages it frees rather than shrinking.
    pub async fn prune(&self, retention: &Retention) -> Result<Pruned> {
        let runs = if retention.runs_ended_before.is_some() || retention.runs_per_workflow.is_some()
        {
            self.prune_runs(retention).await
        } else {
            Ok(0)
        };
        let cache_entries =
            if retention.cache_written_before.is_some() || retention.cache_entries.is_some() {
                self.prune_cache(retention).await
            } else {
                Ok(0)
            };
        let pruned = Pruned {
            runs: runs?,
            cache_entries: cache_entries?,
        };
        if pruned != Pruned::default() {
            tracing::info!(
                runs = pruned.runs,
                cache_entries = pruned.cache_entries,
                "pruned the store"
            );
        }
        Ok(pruned)
    }

    /// The engine options that resume an interrupted run (see [`Store::resume_plan`]).
    pub async fn resume_options(&self, run_id: &str) -> Result<RunOptions> {
        Ok(self.resume_plan(run_id).await?.options)
    }
}

/// The URL with any password replaced by `***`, for error messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_password_only() {
        assert_eq!(
            redact("postgres://bob:secret@127.0.0.1:5432/db"),
            "postgres://bob:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("postgres://bob@h/db"), "postgres://bob@h/db");
        assert_eq!(redact("sqlite://a.db?mode=rwc"), "sqlite://a.db?mode=rwc");
    }
}
