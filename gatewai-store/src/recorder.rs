//! The run recorder: an engine observer that persists runs as they happen.

use crate::store::Store;
use async_trait::async_trait;
use gatewai_core::{Observer, RunEvent};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// An engine [`Observer`] that persists every run into a [`Store`]: the run on `RunStarted`,
/// each node's execution as it is queued, starts and ends, the run's outcome on `RunFinished`.
///
/// Each batch of events the engine hands over is committed in one transaction before
/// [`Observer::on_events`] returns, and the engine hands over the next batch only then: a
/// crash loses nothing the recorder acknowledged, and a busy run costs one commit per batch
/// rather than one per event.
///
/// A batch that cannot be stored (the database is gone) is logged with `tracing` and counted
/// ([`RunRecorder::failures`]); the run itself goes on.
#[derive(Debug)]
pub struct RunRecorder {
    store: Store,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl RunRecorder {
    /// A recorder writing into `store`.
    pub fn new(store: Store) -> Self {
        RunRecorder {
            store,
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// How many batches could not be stored.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The error of the last batch that could not be stored.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[async_trait]
impl Observer for RunRecorder {
    async fn on_events(&self, events: &[RunEvent]) {
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.store.record_events(events).await {
            self.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                run_id = %events[0].run_id,
                events = events.len(),
                error = %e,
                "run recorder could not store a batch of events"
            );
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
        }
    }
}
