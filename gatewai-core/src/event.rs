//! Run events and observers. Every run yields a stream of [`RunEvent`]s; [`Observer`]s see the
//! same events, in order, each batch handled before the next is delivered.

use crate::error::ErrorKind;
use crate::model::{NodeExecution, NodeResult, RunRecord, RunStatus};
use async_trait::async_trait;
use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::Notify;

/// Progress of a running node.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Fraction done, 0..=1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f32>,
    /// A human-readable message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Streamed text (an LLM's latest tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_text: Option<String>,
}

/// Where a completed node's result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ResultSource {
    /// The node executed.
    Executed,
    /// The result cache had it (config and inputs unchanged).
    Cached,
    /// The client computed it and handed it in (hybrid execution).
    Pinned,
    /// A resumed run reused the result recorded before a crash.
    Resumed,
}

/// Why a node was skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "reason"
)]
pub enum SkipReason {
    /// An upstream node failed (or was itself skipped for that reason).
    UpstreamFailed {
        /// The node that failed.
        node_id: Arc<str>,
        /// Its error.
        error: Arc<str>,
    },
    /// An upstream node left the output feeding this node empty on purpose (a router).
    NotTaken {
        /// The node whose output was empty.
        node_id: Arc<str>,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::UpstreamFailed { node_id, error } => {
                write!(f, "Upstream failure in node {node_id}: {error}")
            }
            SkipReason::NotTaken { node_id } => write!(f, "branch not taken at node {node_id}"),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "type"
)]
#[non_exhaustive]
pub enum EventKind {
    /// The run started.
    RunStarted {
        /// The run record at start.
        run: Arc<RunRecord>,
        /// How many nodes the run will settle.
        node_count: usize,
    },
    /// A node is waiting for its inputs or a concurrency slot.
    NodeQueued {
        /// The node.
        node_id: Arc<str>,
        /// Its type.
        node_type: Arc<str>,
        /// Its display name.
        label: Arc<str>,
    },
    /// A node started an attempt.
    NodeStarted {
        /// The node.
        node_id: Arc<str>,
        /// The attempt, from 1.
        attempt: u32,
    },
    /// A running node reported progress.
    NodeProgress {
        /// The node.
        node_id: Arc<str>,
        /// The progress.
        progress: Progress,
    },
    /// A node completed.
    NodeCompleted {
        /// The node.
        node_id: Arc<str>,
        /// Where the result came from.
        source: ResultSource,
        /// The node's result after this run.
        result: Arc<NodeResult>,
        /// The final execution record.
        record: Arc<NodeExecution>,
    },
    /// A node attempt failed.
    NodeFailed {
        /// The node.
        node_id: Arc<str>,
        /// The error message.
        error: Arc<str>,
        /// The error kind.
        #[serde(skip)]
        kind: ErrorKind,
        /// The attempt that failed.
        attempt: u32,
        /// Whether another attempt follows.
        will_retry: bool,
        /// The final execution record, when no retry follows.
        #[serde(skip_serializing_if = "Option::is_none")]
        record: Option<Arc<NodeExecution>>,
    },
    /// A node was skipped.
    NodeSkipped {
        /// The node.
        node_id: Arc<str>,
        /// Why.
        reason: SkipReason,
        /// The final execution record.
        record: Arc<NodeExecution>,
    },
    /// A node was cancelled with its run.
    NodeCancelled {
        /// The node.
        node_id: Arc<str>,
        /// The final execution record.
        record: Arc<NodeExecution>,
    },
    /// The run ended.
    RunFinished {
        /// The final run record.
        run: Arc<RunRecord>,
    },
}

/// One event of a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// The run.
    pub run_id: Arc<str>,
    /// Position in the run's event stream, from 0.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl RunEvent {
    /// The node the event is about, if any.
    pub fn node_id(&self) -> Option<&str> {
        match &self.kind {
            EventKind::NodeQueued { node_id, .. }
            | EventKind::NodeStarted { node_id, .. }
            | EventKind::NodeProgress { node_id, .. }
            | EventKind::NodeCompleted { node_id, .. }
            | EventKind::NodeFailed { node_id, .. }
            | EventKind::NodeSkipped { node_id, .. }
            | EventKind::NodeCancelled { node_id, .. } => Some(node_id),
            _ => None,
        }
    }

    /// The run status, for a `RunFinished` event.
    pub fn finished_status(&self) -> Option<RunStatus> {
        match &self.kind {
            EventKind::RunFinished { run } => Some(run.status),
            _ => None,
        }
    }
}

/// Sees every event of every run of an engine, in order. Events come in batches (whatever
/// accumulated while the previous batch was handled); a batch is handed over only after the
/// previous call returned, so an observer that persists a batch before returning never loses
/// an event it acknowledged.
#[async_trait]
pub trait Observer: Send + Sync + 'static {
    /// Handles a batch of events of one run, in order.
    ///
    /// An error says the observer could not handle (part of) the batch, e.g. a run recorder
    /// could not store it: the engine logs it and lists it in the run's outcome
    /// ([`RunOutcome::observer_errors`](crate::RunOutcome::observer_errors)); the run goes
    /// on and the observer still gets the run's later batches. A panic is reported the same
    /// way.
    async fn on_events(&self, events: &[RunEvent]) -> crate::Result<()>;

    /// Whether node records should carry their [`cache_key`](crate::NodeExecution::cache_key)
    /// even when the engine has no result cache or the node is not cacheable (hashing a
    /// node's inputs costs a little per node, so the engine does it only when asked). A
    /// recorder whose runs may be resumed says yes: a resumed run reuses a recorded result
    /// only for a node whose key did not change. Asked once, when the engine is built.
    fn needs_cache_keys(&self) -> bool {
        false
    }
}

/// An event as the engine queues it. Node transitions name the node by its place in the run's
/// plan and carry no record: the run's event dispatcher builds the public [`RunEvent`] (and
/// the node's record) from the run's settled state, off the node's own task.
pub(crate) enum Pending {
    /// A complete event (run start and end, progress, a failed attempt that will retry).
    Event(Box<(DateTime<Utc>, EventKind)>),
    /// Every planned node is queued (one `NodeQueued` event per node, in plan order).
    NodesQueued(DateTime<Utc>),
    /// A node started an attempt.
    Started {
        node: u32,
        attempt: u32,
        at: Instant,
    },
    /// A node settled; its outcome is in the run's state. The inputs it ran with move here,
    /// to its record, rather than being kept (and shared) by the run's state.
    Settled(u32, Option<Arc<crate::node::Inputs>>),
}

/// Wall-clock times of a run's monotonic clock readings.
#[derive(Clone, Copy)]
pub(crate) struct RunClock {
    origin: Instant,
    pub(crate) origin_utc: DateTime<Utc>,
    /// The origin's date and time of day, for readings on the same day.
    date: chrono::NaiveDate,
    seconds_of_day: u32,
    nanos: u32,
}

impl RunClock {
    pub(crate) fn start() -> RunClock {
        RunClock::new(Instant::now(), Utc::now())
    }

    /// A clock whose reading `origin` was at `origin_utc`.
    pub(crate) fn new(origin: Instant, origin_utc: DateTime<Utc>) -> RunClock {
        let naive = origin_utc.naive_utc();
        RunClock {
            origin,
            origin_utc,
            date: naive.date(),
            seconds_of_day: naive.time().num_seconds_from_midnight(),
            nanos: naive.time().nanosecond(),
        }
    }

    /// The wall-clock time of a reading.
    pub(crate) fn at(&self, reading: Instant) -> DateTime<Utc> {
        const NANOS: u64 = 1_000_000_000;
        let since = reading.saturating_duration_since(self.origin);
        // Readings on the origin's day (nearly all) need no calendar arithmetic.
        let nanos = u64::from(self.nanos) + u64::from(since.subsec_nanos());
        let seconds = u64::from(self.seconds_of_day) + since.as_secs() + nanos / NANOS;
        if seconds < 86_400
            && let Some(time) = chrono::NaiveTime::from_num_seconds_from_midnight_opt(
                seconds as u32,
                (nanos % NANOS) as u32,
            )
        {
            return self.date.and_time(time).and_utc();
        }
        chrono::TimeDelta::from_std(since)
            .ok()
            .and_then(|d| self.origin_utc.checked_add_signed(d))
            .unwrap_or(self.origin_utc)
    }
}

impl RunClock {
    /// The wall-clock time now, on this run's clock.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.at(Instant::now())
    }
}

/// A run's queue of pending events: many senders (the run's drivers, its task, nodes
/// reporting progress), one receiver (the run's dispatcher), which takes everything queued at
/// once. A lock around a vector: a send takes the lock once (a channel's send touches a
/// counter, a slot index, the slot's ready bits and the receiver's waker, each shared with the
/// other senders or the receiver), and the receiver hands its emptied vector back for reuse.
/// The order of events is the order their sends took the lock.
struct EventQueue {
    state: Mutex<QueueState>,
    /// Wakes the receiver (a wake-up before it waits is kept, so none is lost).
    wake: Notify,
}

struct QueueState {
    items: Vec<Pending>,
    /// Live [`EventSink`]s: once none is left, the receiver ends after the last item.
    senders: usize,
    /// The receiver found nothing and waits for a wake-up.
    waiting: bool,
    /// The receiver is gone: sends are dropped.
    closed: bool,
}

impl EventQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // Every critical section is a plain move or count: a poisoned lock holds sound data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A run's event queue: its first sender and its receiver.
pub(crate) fn event_queue(clock: RunClock) -> (EventSink, EventReceiver) {
    let queue = Arc::new(EventQueue {
        state: Mutex::new(QueueState {
            items: Vec::with_capacity(256),
            senders: 1,
            waiting: false,
            closed: false,
        }),
        wake: Notify::new(),
    });
    (
        EventSink {
            queue: queue.clone(),
            clock,
        },
        EventReceiver { queue },
    )
}

/// The sending side of a run's event stream.
pub(crate) struct EventSink {
    queue: Arc<EventQueue>,
    /// The run's clock: every time a run reports comes from it.
    pub(crate) clock: RunClock,
}

impl Clone for EventSink {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        EventSink {
            queue: self.queue.clone(),
            clock: self.clock,
        }
    }
}

impl Drop for EventSink {
    fn drop(&mut self) {
        let wake = {
            let mut state = self.queue.lock();
            state.senders -= 1;
            state.senders == 0 && std::mem::take(&mut state.waiting)
        };
        if wake {
            self.queue.wake.notify_one();
        }
    }
}

impl EventSink {
    /// Queues a complete event that happens now.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.emit_at(self.clock.now(), kind);
    }

    /// Queues a complete event that happened at `at` (a time the caller already read).
    pub(crate) fn emit_at(&self, at: DateTime<Utc>, kind: EventKind) {
        self.send(Pending::Event(Box::new((at, kind))));
    }

    /// Queues an event (dropped once the run's dispatcher has ended: a send after that is
    /// moot).
    pub(crate) fn send(&self, pending: Pending) {
        let (wake, dropped) = {
            let mut state = self.queue.lock();
            if state.closed {
                (false, Some(pending))
            } else {
                state.items.push(pending);
                (std::mem::take(&mut state.waiting), None)
            }
        };
        drop(dropped);
        if wake {
            self.queue.wake.notify_one();
        }
    }
}

/// The receiving side of a run's event stream (its dispatcher's).
pub(crate) struct EventReceiver {
    queue: Arc<EventQueue>,
}

impl EventReceiver {
    /// Waits until events are queued and moves all of them to the end of `buf`, returning
    /// how many; 0 once every sender is gone and nothing is left.
    pub(crate) async fn recv_all(&mut self, buf: &mut Vec<Pending>) -> usize {
        loop {
            {
                let mut state = self.queue.lock();
                if !state.items.is_empty() {
                    let n = state.items.len();
                    if buf.is_empty() {
                        // The receiver's emptied vector goes back to the senders.
                        std::mem::swap(&mut state.items, buf);
                    } else {
                        buf.append(&mut state.items);
                    }
                    return n;
                }
                if state.senders == 0 {
                    return 0;
                }
                state.waiting = true;
            }
            self.queue.wake.notified().await;
        }
    }
}

impl Drop for EventReceiver {
    fn drop(&mut self) {
        let items = {
            let mut state = self.queue.lock();
            state.closed = true;
            std::mem::take(&mut state.items)
        };
        drop(items);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn clock_readings_become_wall_clock_times_on_the_same_day_and_across_midnight() {
        let origin = Instant::now();
        let utc = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let clock = RunClock::new(origin, utc("2026-11-23T23:59:59.900000000Z"));
        assert_eq!(clock.at(origin), utc("2026-11-23T23:59:59.900000000Z"));
        assert_eq!(
            clock.at(origin + Duration::from_nanos(99_999_999)),
            utc("2026-11-23T23:59:59.999999999Z")
        );
        assert_eq!(
            clock.at(origin + Duration::from_millis(100)),
            utc("2026-11-24T00:00:00Z")
        );
        assert_eq!(
            clock.at(origin + Duration::from_secs(86_400 * 40)),
            utc("2027-01-02T23:59:59.900000000Z")
        );
        // A reading from before the run's start is the start.
        let early = RunClock::new(origin + Duration::from_secs(1), utc("2026-11-23T10:00:00Z"));
        assert_eq!(early.at(origin), utc("2026-11-23T10:00:00Z"));
    }

    /// Drains a receiver until every sender is gone.
    async fn drain(mut rx: EventReceiver) -> Vec<Pending> {
        let mut all = Vec::new();
        let mut buf = Vec::new();
        while rx.recv_all(&mut buf).await > 0 {
            all.append(&mut buf);
        }
        all
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_queue_keeps_each_senders_order_loses_nothing_and_ends_with_its_senders() {
        const SENDERS: u32 = 4;
        const EACH: u32 = 20_000;
        let (sink, rx) = event_queue(RunClock::start());
        let receiver = tokio::spawn(drain(rx));
        let senders: Vec<_> = (0..SENDERS)
            .map(|node| {
                let sink = sink.clone();
                tokio::spawn(async move {
                    for attempt in 0..EACH {
                        sink.send(Pending::Started {
                            node,
                            attempt,
                            at: Instant::now(),
                        });
                        if attempt % 1000 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        drop(sink);
        for sender in senders {
            sender.await.unwrap();
        }
        let all = tokio::time::timeout(Duration::from_secs(30), receiver)
            .await
            .expect("the receiver ends once its senders are gone")
            .unwrap();
        assert_eq!(all.len(), (SENDERS * EACH) as usize);
        let mut next = [0u32; SENDERS as usize];
        for pending in all {
            let Pending::Started { node, attempt, .. } = pending else {
                panic!("only starts were sent");
            };
            assert_eq!(attempt, next[node as usize], "sender {node} in order");
            next[node as usize] += 1;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_receiver_wakes_for_a_send_and_for_the_last_sender_leaving() {
        let (sink, mut rx) = event_queue(RunClock::start());
        let late = sink.clone();
        let sender = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.send(Pending::NodesQueued(Utc::now()));
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(late);
        });
        drop(sink);
        let mut buf = Vec::new();
        let wait = Duration::from_secs(10);
        let got = tokio::time::timeout(wait, rx.recv_all(&mut buf)).await;
        assert_eq!(got.expect("woken by the send"), 1);
        assert!(matches!(buf[0], Pending::NodesQueued(_)));
        buf.clear();
        let got = tokio::time::timeout(wait, rx.recv_all(&mut buf)).await;
        assert_eq!(got.expect("woken by the last sender leaving"), 0);
        sender.await.unwrap();
    }

    #[test]
    fn what_is_sent_after_the_receiver_is_gone_is_dropped() {
        let (sink, rx) = event_queue(RunClock::start());
        let inputs = Arc::new(crate::node::Inputs::default());
        sink.send(Pending::Settled(0, Some(inputs.clone())));
        assert_eq!(Arc::strong_count(&inputs), 2, "queued");
        drop(rx);
        assert_eq!(Arc::strong_count(&inputs), 1, "what was queued is freed");
        sink.send(Pending::Settled(1, Some(inputs.clone())));
        assert_eq!(Arc::strong_count(&inputs), 1, "a late send is not kept");
    }
}
