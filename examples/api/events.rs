//! Live run events for server-sent events: the [`RunHub`] is an engine [`Observer`] that keeps
//! each registered run's events and fans them out through a tokio broadcast channel, so a
//! client that subscribes late first gets everything that already happened, then the rest
//! live, without gaps or duplicates.

use async_trait::async_trait;
use gatewai_core::{EventKind, Observer, RunEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Capacity of a run's broadcast channel; a subscriber that falls further behind catches up
/// from the run's log.
const CHANNEL_CAPACITY: usize = 256;

/// Keeps the events of the runs started through the server.
#[derive(Debug)]
pub struct RunHub {
    inner: Mutex<HubInner>,
    retain_finished: usize,
}

#[derive(Debug, Default)]
struct HubInner {
    runs: HashMap<String, RunLog>,
    finished: VecDeque<String>,
}

#[derive(Debug)]
struct RunLog {
    owner: String,
    events: Vec<Arc<RunEvent>>,
    tx: broadcast::Sender<Arc<RunEvent>>,
    finished: bool,
}

/// The result of [`RunHub::subscribe`].
#[derive(Debug)]
pub enum Subscribe {
    /// The hub has the run and it is the caller's.
    Found(Subscription),
    /// The hub does not know the run (or it is another user's).
    Unknown,
}

impl RunHub {
    /// A hub that keeps the events of the last `retain_finished` finished runs.
    pub fn new(retain_finished: usize) -> Self {
        RunHub {
            inner: Mutex::new(HubInner::default()),
            retain_finished: retain_finished.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        // The map stays consistent even if a holder panicked; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts keeping the events of a run of `owner`; call it before the run starts.
    pub fn register(&self, run_id: &str, owner: &str) {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        self.lock().runs.insert(
            run_id.to_owned(),
            RunLog {
                owner: owner.to_owned(),
                events: Vec::new(),
                tx,
                finished: false,
            },
        );
    }

    /// The owner of a registered run.
    pub fn owner(&self, run_id: &str) -> Option<String> {
        self.lock().runs.get(run_id).map(|r| r.owner.clone())
    }

    /// Forgets a run (one that failed to start).
    pub fn remove(&self, run_id: &str) {
        self.lock().runs.remove(run_id);
    }

    /// Whether the hub has the run (for `owner`) and it is still going.
    pub fn is_live(&self, run_id: &str, owner: &str) -> bool {
        self.lock()
            .runs
            .get(run_id)
            .is_some_and(|r| r.owner == owner && !r.finished)
    }

    /// Subscribes to a run of `owner`: what happened so far, then the live events.
    pub fn subscribe(self: &Arc<Self>, run_id: &str, owner: &str) -> Subscribe {
        let inner = self.lock();
        match inner.runs.get(run_id) {
            Some(log) if log.owner == owner => Subscribe::Found(Subscription {
                hub: self.clone(),
                run_id: run_id.to_owned(),
                backlog: log.events.iter().cloned().collect(),
                rx: if log.finished {
                    None
                } else {
                    Some(log.tx.subscribe())
                },
                next_seq: 0,
                done: false,
            }),
            _ => Subscribe::Unknown,
        }
    }

    /// The events of a run from `seq` on, and a fresh receiver (catching up after a lag).
    fn catch_up(&self, run_id: &str, seq: u64) -> Option<CatchUp> {
        let inner = self.lock();
        let log = inner.runs.get(run_id)?;
        let events = log
            .events
            .iter()
            .filter(|e| e.seq >= seq)
            .cloned()
            .collect();
        let rx = (!log.finished).then(|| log.tx.subscribe());
        Some((events, rx))
    }
}

#[async_trait]
impl Observer for RunHub {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        let mut inner = self.lock();
        let mut finished_now = Vec::new();
        for event in events {
            let Some(log) = inner.runs.get_mut(&*event.run_id) else {
                continue;
            };
            let event = Arc::new(event.clone());
            log.events.push(event.clone());
            // No receiver is fine: late subscribers read the log.
            let _ = log.tx.send(event.clone());
            if matches!(event.kind, EventKind::RunFinished { .. }) {
                log.finished = true;
                finished_now.push(event.run_id.to_string());
            }
        }
        for run_id in finished_now {
            inner.finished.push_back(run_id);
        }
        while inner.finished.len() > self.retain_finished {
            if let Some(old) = inner.finished.pop_front() {
                inner.runs.remove(&old);
            }
        }
        Ok(())
    }
}

/// The events a lagging subscriber missed, and a fresh receiver (none once the run ended).
type CatchUp = (
    Vec<Arc<RunEvent>>,
    Option<broadcast::Receiver<Arc<RunEvent>>>,
);

/// A subscriber's view of one run's events.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<RunHub>,
    run_id: String,
    backlog: VecDeque<Arc<RunEvent>>,
    rx: Option<broadcast::Receiver<Arc<RunEvent>>>,
    next_seq: u64,
    done: bool,
}

impl Subscription {
    /// The next event, in order; `None` after `RunFinished` (or when the run was forgotten).
    pub async fn next(&mut self) -> Option<Arc<RunEvent>> {
        loop {
            if self.done {
                return None;
            }
            let event = match self.backlog.pop_front() {
                Some(event) => event,
                None => {
                    let rx = self.rx.as_mut()?;
                    match rx.recv().await {
                        Ok(event) => event,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            let (events, rx) = self.hub.catch_up(&self.run_id, self.next_seq)?;
                            self.backlog = events.into();
                            self.rx = rx;
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            };
            if event.seq < self.next_seq {
                continue;
            }
            self.next_seq = event.seq + 1;
            if matches!(event.kind, EventKind::RunFinished { .. }) {
                self.done = true;
            }
            return Some(event);
        }
    }
}

/// The SSE event name of a run event: its `type` (`runStarted`, `nodeCompleted`, …).
pub fn event_name(event: &RunEvent) -> &'static str {
    match &event.kind {
        EventKind::RunStarted { .. } => "runStarted",
        EventKind::NodeQueued { .. } => "nodeQueued",
        EventKind::NodeStarted { .. } => "nodeStarted",
        EventKind::NodeProgress { .. } => "nodeProgress",
        EventKind::NodeCompleted { .. } => "nodeCompleted",
        EventKind::NodeFailed { .. } => "nodeFailed",
        EventKind::NodeSkipped { .. } => "nodeSkipped",
        EventKind::NodeCancelled { .. } => "nodeCancelled",
        EventKind::RunFinished { .. } => "runFinished",
        _ => "event",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{Progress, RunRecord, RunStatus};

    fn progress(seq: u64) -> RunEvent {
        RunEvent {
            run_id: Arc::from("r1"),
            seq,
            at: chrono::Utc::now(),
            kind: EventKind::NodeProgress {
                node_id: Arc::from("n"),
                progress: Progress {
                    fraction: None,
                    message: None,
                    partial_text: Some(seq.to_string()),
                },
            },
        }
    }

    fn finished(seq: u64) -> RunEvent {
        RunEvent {
            run_id: Arc::from("r1"),
            seq,
            at: chrono::Utc::now(),
            kind: EventKind::RunFinished {
                run: Arc::new(RunRecord {
                    id: "r1".into(),
                    workflow_id: None,
                    trigger_type: Default::default(),
                    status: RunStatus::Completed,
                    error: None,
                    created_at: chrono::Utc::now(),
                    started_at: None,
                    finished_at: None,
                    cache_scope: None,
                }),
            },
        }
    }

    async fn drain(sub: &mut Subscription) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(event) = sub.next().await {
            seqs.push(event.seq);
        }
        seqs
    }

    #[tokio::test]
    async fn lagging_and_late_subscribers_get_every_event_once_in_order() {
        let hub = Arc::new(RunHub::new(4));
        hub.register("r1", "alice");
        hub.on_events(&[progress(0), progress(1)]).await.unwrap();
        let Subscribe::Found(mut early) = hub.subscribe("r1", "alice") else {
            panic!("registered run")
        };
        assert!(matches!(hub.subscribe("r1", "bob"), Subscribe::Unknown));
        assert!(matches!(hub.subscribe("r2", "alice"), Subscribe::Unknown));
        // Far more than the channel holds before the subscriber reads: it lags and catches up
        // from the log.
        let batch: Vec<RunEvent> = (2..1000).map(progress).collect();
        hub.on_events(&batch).await.unwrap();
        hub.on_events(&[finished(1000)]).await.unwrap();
        assert_eq!(drain(&mut early).await, (0..=1000).collect::<Vec<_>>());
        assert!(!hub.is_live("r1", "alice"));
        let Subscribe::Found(mut late) = hub.subscribe("r1", "alice") else {
            panic!("finished runs are kept")
        };
        assert_eq!(drain(&mut late).await.len(), 1001);
        // Unregistered runs (the command-line runner's) are ignored.
        hub.on_events(&[RunEvent {
            run_id: Arc::from("other"),
            ..progress(0)
        }])
        .await
        .unwrap();
        assert!(hub.owner("other").is_none());
    }

    #[tokio::test]
    async fn finished_runs_beyond_the_retention_are_forgotten() {
        let hub = Arc::new(RunHub::new(2));
        for id in ["a", "b", "c"] {
            hub.register(id, "u");
            hub.on_events(&[RunEvent {
                run_id: Arc::from(id),
                ..finished(0)
            }])
            .await
            .unwrap();
        }
        assert!(matches!(hub.subscribe("a", "u"), Subscribe::Unknown));
        assert!(matches!(hub.subscribe("b", "u"), Subscribe::Found(_)));
        assert!(matches!(hub.subscribe("c", "u"), Subscribe::Found(_)));
    }
}
