//! The run recorder: an engine observer that persists runs as they happen.

use crate::error::{Error, ErrorKind, Result};
use crate::store::Store;
use crate::write_plan::is_recorded;
use async_trait::async_trait;
use gatewai_core::{Observer, RetryPolicy, RunEvent};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An engine [`Observer`] that persists every run into a [`Store`]: the run on `RunStarted`,
/// each node's execution as it is queued, starts and ends, the run's outcome on `RunFinished`.
///
/// Each batch of events the engine hands over is committed in one transaction before
/// [`Observer::on_events`] returns, and the engine hands over the next batch only then: a
/// crash loses nothing the recorder acknowledged, and a busy run costs one commit per batch
/// rather than one per event.
///
/// When the store cannot take a batch:
/// - **Unavailable** (a lost connection, a busy database, a server restarting): the batch is
///   tried again with backoff ([`RunRecorder::with_retry`]; the run waits meanwhile, as it
///   waits for any commit). Should the store stay away, the batch's events are held in
///   memory and stored together with the run's next batch, so that the run's record is
///   whole again as soon as the store is back. A run that *ends* while its events are held
///   reports it: its outcome's
///   [`observer_errors`](gatewai_core::RunOutcome::observer_errors) names the run, and
///   [`RunRecorder::flush`] stores the held events later.
/// - **Rejected** (a value the database cannot hold): the batch is stored event by event,
///   so that only the events at fault are lost; the run's outcome names them.
///
/// Every failure is also logged with `tracing` and counted ([`RunRecorder::failures`]).
#[derive(Debug)]
pub struct RunRecorder {
    store: Store,
    retry: RetryPolicy,
    failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Events the store could not take yet (it was unavailable), by run, in order.
    held: Mutex<HashMap<Arc<str>, Vec<RunEvent>>>,
}

/// The recorder's default retry of a batch the store is unavailable for: 5 attempts over
/// about 1.5 s.
fn default_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        max_backoff: Duration::from_secs(2),
        jitter: 0.2,
    }
}

impl RunRecorder {
    /// A recorder writing into `store`.
    pub fn new(store: Store) -> Self {
        RunRecorder {
            store,
            retry: default_retry(),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how a batch the store is unavailable for is tried again (default: 5 attempts,
    /// 100 ms doubling to at most 2 s). `RetryPolicy::none()` holds the batch at once.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How many batches could not be stored when handed over (after retries).
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

    /// The runs with events held because the store was unavailable, and how many events.
    pub fn held_runs(&self) -> Vec<(String, usize)> {
        let mut runs: Vec<_> = self
            .held()
            .iter()
            .map(|(run, events)| (run.to_string(), events.len()))
            .collect();
        runs.sort();
        runs
    }

    /// Stores the held events of every run that has ended (a run still going stores its
    /// held events with its next batch). Runs whose events still cannot be stored keep them;
    /// the first such error is returned.
    pub async fn flush(&self) -> Result<()> {
        let ended: Vec<Arc<str>> = self
            .held()
            .iter()
            .filter(|(_, events)| events.iter().any(|e| e.finished_status().is_some()))
            .map(|(run, _)| run.clone())
            .collect();
        let mut first_error = None;
        for run in ended {
            let Some(events) = self.take_held(&run) else {
                continue;
            };
            if let Err(e) = self.store.record_events(&events).await {
                tracing::warn!(run_id = %run, events = events.len(), error = %e, "run recorder: held events still cannot be stored");
                self.hold(run, events);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn held(&self) -> MutexGuard<'_, HashMap<Arc<str>, Vec<RunEvent>>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_held(&self, run: &str) -> Option<Vec<RunEvent>> {
        self.held().remove(run)
    }

    fn hold(&self, run: Arc<str>, events: Vec<RunEvent>) {
        self.held().entry(run).or_default().extend(events);
    }

    /// Stores a batch, trying again while the store is unavailable.
    async fn store_with_retries(&self, batch: &[RunEvent]) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.store.record_events(batch).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if e.kind() == ErrorKind::Unavailable && attempt < self.retry.max_attempts =>
                {
                    let delay = self.retry.backoff(attempt);
                    tracing::warn!(run_id = %batch[0].run_id, attempt, ?delay, error = %e, "run recorder: the store is unavailable; trying the batch again");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stores a rejected batch one event at a time; returns what could not be stored.
    async fn store_one_by_one(&self, batch: &[RunEvent]) -> Vec<String> {
        let mut lost = Vec::new();
        for event in batch.iter().filter(|e| is_recorded(e)) {
            if let Err(e) = self.store.record_events(std::slice::from_ref(event)).await {
                let what = event.node_id().map_or_else(
                    || "the run's own record".to_owned(),
                    |node| format!("node `{node}`"),
                );
                lost.push(format!("{what} (event {}): {e}", event.seq));
            }
        }
        lost
    }

    fn note_failure(&self, batch: &[RunEvent], error: &Error) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            run_id = %batch[0].run_id,
            events = batch.len(),
            %error,
            "run recorder could not store a batch of events"
        );
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
    }
}

#[async_trait]
impl Observer for RunRecorder {
    /// Yes: a stored run may be resumed, and a resumed run reuses a recorded result only
    /// while the node's key is the one recorded with it.
    fn needs_cache_keys(&self) -> bool {
        true
    }

    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let run_id = first.run_id.clone();
        // Events held from earlier batches go first: the writes of a batch are idempotent,
        // so the joined batch stores both as one.
        let batch: Cow<'_, [RunEvent]> = match self.take_held(&run_id) {
            Some(mut held) => {
                held.extend(events.iter().filter(|e| is_recorded(e)).cloned());
                Cow::Owned(held)
            }
            None => Cow::Borrowed(events),
        };
        let error = match self.store_with_retries(&batch).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        self.note_failure(&batch, &error);
        let ends_run = events.iter().any(|e| e.finished_status().is_some());
        if error.kind() == ErrorKind::Unavailable {
            let held = match batch {
                Cow::Owned(held) => held,
                Cow::Borrowed(events) => {
                    events.iter().filter(|e| is_recorded(e)).cloned().collect()
                }
            };
            let count = held.len();
            self.hold(run_id.clone(), held);
            if !ends_run {
                tracing::warn!(%run_id, events = count, "run recorder: events held until the store is back; stored with the run's next batch");
                return Ok(());
            }
            return Err(gatewai_core::Error::observer(
                gatewai_core::ErrorKind::Unavailable,
                format!(
                    "run `{run_id}` is not stored whole: {count} event(s), its end included, are held until the store is back (RunRecorder::flush): {error}"
                ),
            ));
        }
        let lost = self.store_one_by_one(&batch).await;
        if lost.is_empty() {
            return Ok(());
        }
        Err(gatewai_core::Error::observer(
            gatewai_core::ErrorKind::InvalidInput,
            format!(
                "run `{run_id}`: the store rejected {} event(s), lost: {}",
                lost.len(),
                lost.join("; ")
            ),
        ))
    }
}
