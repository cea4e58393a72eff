//! Executing a plan: drive loops that settle nodes and continue with a lone ready successor on
//! the same task, an event dispatcher, and the finalisation of records and the outcome.
//!
//! A node's settlement is kept compact (how it ended, two clock readings); the public
//! [`NodeExecution`] record and the node's events are built from it off the node's task, by
//! the run's dispatcher. The dispatcher also gathers the outcome (records, results, exports)
//! as nodes settle, while their data is still in cache: the run's end then only moves
//! results into the document, with no shared counter to touch per node.

use super::plan::{NodeRun, Plan, PlanNode};
use super::{EngineInner, ExecutorKind, RunOptions, RunOutcome};
use crate::assets::AssetStore;
use crate::cache::{CacheKey, CachedOutputs};
use crate::error::{Error, ErrorKind, NodeError, Result};
use crate::event::{
    EventKind, EventReceiver, EventSink, Pending, ResultSource, RunClock, RunEvent, SkipReason,
};
use crate::model::{
    ExecutionStatus, Generation, HandleType, InputSnapshot, Item, NodeExecution, NodeResult,
    OnError, OutputItem, RunRecord, RunStatus, Workflow,
};
use crate::node::{InputSlot, Inputs, NodeContext, Outputs, ResultMode, RunInput, RunScope, Scope};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The most queued nodes a driver takes at once.
const DRIVER_BATCH: usize = 16;

/// Queued nodes a driver took.
type Batch = smallvec::SmallVec<[u32; DRIVER_BATCH]>;

/// How a node ended.
pub(crate) enum End {
    Completed {
        result: Arc<NodeResult>,
        source: ResultSource,
        /// The error a node that continues on error turned into its output.
        error: Option<Arc<str>>,
    },
    Failed {
        error: Arc<str>,
        kind: ErrorKind,
    },
    Skipped {
        reason: SkipReason,
    },
    Cancelled {
        reason: Arc<str>,
    },
}

/// How a node settled: its end and what its record needs.
pub(crate) struct Settled {
    end: End,
    started: Instant,
    finished: Instant,
    attempts: u32,
    /// From the first attempt to the end of the last, for nodes that executed (0 for results
    /// taken from the cache or handed in).
    duration_ms: Option<u64>,
    /// The node's cache key, when the run computed it.
    key: Option<CacheKey>,
    /// For a completed node with dependents, what flows on from each of its output handles
    /// (set by [`RunState::settle`]; empty for a node no edge leaves, which no one resolves
    /// inputs from).
    flows: Flows,
}

/// Where a completed node's selected generation holds the item of each of its output handles
/// (`None`: no item, the handle's dependents are not taken), in the order of
/// [`PlanNode::handles`]. Found once as the node settles: its dependents take their values from
/// there instead of searching the result for their handle per edge.
type Flows = smallvec::SmallVec<[Option<u32>; 2]>;

/// The flows of `result` out of `node`'s output handles: each handle's item is the first in
/// the selected generation that names it (items the engine produced name it by the plan's
/// own `Arc`, so a pointer comparison usually finds it).
fn flows_of(node: &PlanNode, result: &NodeResult) -> Flows {
    let outputs = node.handles.iter().take_while(|h| h.is_output);
    let Some(generation) = result.selected() else {
        return outputs.map(|_| None).collect();
    };
    let items = &generation.items;
    // A node with many items finds them through a map, so that this stays linear.
    if items.len() > 16 {
        let mut by_handle: HashMap<&str, u32> = HashMap::with_capacity(items.len());
        for (at, item) in items.iter().enumerate() {
            by_handle.entry(&item.output_handle_id).or_insert(at as u32);
        }
        return outputs.map(|h| by_handle.get(&*h.id).copied()).collect();
    }
    outputs
        .map(|h| {
            items
                .iter()
                .position(|i| {
                    Arc::ptr_eq(&i.output_handle_id, &h.id) || *i.output_handle_id == *h.id
                })
                .map(|at| at as u32)
        })
        .collect()
}

impl Settled {
    /// A settlement with no attempt, ending now.
    fn now(end: End, started: Instant) -> Settled {
        Settled {
            end,
            started,
            finished: Instant::now(),
            attempts: 0,
            duration_ms: None,
            key: None,
            flows: Flows::new(),
        }
    }

    /// The result of a completed node.
    fn into_result(self) -> Option<Arc<NodeResult>> {
        match self.end {
            End::Completed { result, .. } => Some(result),
            _ => None,
        }
    }
}

/// A node's public record, built from its settlement and the inputs it ran with.
fn record(
    run_id: &Arc<str>,
    node: &PlanNode,
    s: &Settled,
    inputs: Option<Arc<Inputs>>,
    clock: &RunClock,
) -> NodeExecution {
    let (status, output, error, cached) = match &s.end {
        End::Completed {
            result,
            source,
            error,
        } => (
            ExecutionStatus::Completed,
            Some(result.clone()),
            error.as_deref().map(str::to_owned),
            *source != ResultSource::Executed,
        ),
        End::Failed { error, .. } => (
            ExecutionStatus::Failed,
            None,
            Some(error.to_string()),
            false,
        ),
        End::Skipped { reason } => (
            ExecutionStatus::Skipped,
            None,
            Some(reason.to_string()),
            false,
        ),
        End::Cancelled { reason } => (
            ExecutionStatus::Cancelled,
            None,
            Some(reason.to_string()),
            false,
        ),
    };
    NodeExecution {
        run_id: run_id.clone(),
        node_id: node.id.clone(),
        node_type: node.node_type.clone(),
        label: node.label.clone(),
        status,
        input: inputs.map(InputSnapshot::of),
        output,
        error,
        cached,
        started_at: Some(clock.at(s.started)),
        finished_at: Some(clock.at(s.finished)),
        duration_ms: s.duration_ms,
        attempts: s.attempts,
        cache_key: s.key,
    }
}

/// A settled node's event, with its record.
fn settled_event(node: &PlanNode, s: &Settled, record: Arc<NodeExecution>) -> EventKind {
    let node_id = node.id.clone();
    match &s.end {
        End::Completed { result, source, .. } => EventKind::NodeCompleted {
            node_id,
            source: *source,
            result: result.clone(),
            record,
        },
        End::Failed { error, kind } => EventKind::NodeFailed {
            node_id,
            error: error.clone(),
            kind: *kind,
            attempt: s.attempts,
            will_retry: false,
            record: Some(record),
        },
        End::Skipped { reason } => EventKind::NodeSkipped {
            node_id,
            reason: reason.clone(),
            record,
        },
        End::Cancelled { .. } => EventKind::NodeCancelled { node_id, record },
    }
}

/// The parts of a run's outcome gathered node by node, by the run's dispatcher as nodes settle
/// (while a node's data is still in cache, and beside the nodes' own work). Should the
/// dispatcher die, what it missed is built at the run's end.
struct Collector {
    /// Each node's record, by plan index.
    records: Vec<Option<Arc<NodeExecution>>>,
    results: HashMap<Arc<str>, Arc<NodeResult>>,
    exports: BTreeMap<String, Vec<Item>>,
    /// What observers could not handle.
    observer_errors: Vec<Error>,
}

impl Collector {
    fn new(count: usize) -> Self {
        Collector {
            records: vec![None; count],
            results: HashMap::with_capacity(count),
            exports: BTreeMap::new(),
            observer_errors: Vec::new(),
        }
    }

    /// Takes in a settled node's record and result.
    fn collect(&mut self, idx: usize, node: &PlanNode, s: &Settled, record: Arc<NodeExecution>) {
        if let Some(slot) = self.records.get_mut(idx) {
            *slot = Some(record);
        }
        if let End::Completed { result, error, .. } = &s.end {
            // An output node that continued on error has the error as its result: that is
            // its record's, not a value the run exports.
            if node.is_run_output && error.is_none() {
                let items = result
                    .selected()
                    .map(|g| g.items.iter().map(OutputItem::to_item).collect())
                    .unwrap_or_default();
                self.exports.insert(node.id.to_string(), items);
            }
            self.results.insert(node.id.clone(), result.clone());
        }
    }
}

/// Where new node futures go: tokio's workers, or the run's own task.
#[derive(Clone)]
enum Spawner {
    Tokio,
    Local(mpsc::UnboundedSender<BoxFuture<'static, ()>>),
}

/// How each planned node settled, by plan index (shared by the run and its event dispatcher).
type SettledSlots = Arc<[OnceLock<Settled>]>;

/// The shared state of one run.
pub(crate) struct RunState {
    plan: Arc<Plan>,
    /// What this run brings for each planned node, by plan index.
    runs: Vec<NodeRun>,
    remaining: Vec<AtomicU32>,
    settled: SettledSlots,
    settled_count: AtomicUsize,
    done: Notify,
    /// Cancelled by the user (the host's token) or by fail-fast; nodes watch this one.
    cancel: CancellationToken,
    /// Set once the run task or fail-fast saw `cancel` cancelled: a check that takes no lock
    /// (the token's own takes a mutex every run node shares), for skipping the work of nodes
    /// that have not started. It may lag the token by a task wake-up; the check right before a
    /// node executes asks the token itself.
    stopping: AtomicBool,
    failed_fast: OnceLock<Arc<str>>,
    /// This run's turn key in the engine's fair concurrency limits.
    run_key: u64,
    any_failed: AtomicBool,
    /// Set when a node settles cancelled (before it is counted as settled).
    any_cancelled: AtomicBool,
    /// Where nodes queue their settlements (always) and events (in an observed run).
    sink: EventSink,
    /// Whether anyone watches the run's events (observers or the handle's stream).
    observed: bool,
    engine: Arc<EngineInner>,
    run_id: Arc<str>,
    spawner: Spawner,
    /// Ready nodes no driver has taken yet.
    ready: std::sync::Mutex<Vec<u32>>,
    /// Drivers free to take a queued node (not waiting inside one).
    drivers: AtomicUsize,
    /// The most free drivers: one per worker thread of the executor.
    max_drivers: usize,
    span: tracing::Span,
    fail_fast: bool,
    /// The run's asset store (its own, or the engine's).
    assets: Arc<dyn AssetStore>,
    /// The run's part of its cache keys.
    cache_scope: Option<String>,
}

impl RunScope for RunState {
    fn run_id(&self) -> &str {
        &self.run_id
    }
    fn node_id(&self, node: u32) -> &Arc<str> {
        &self.plan.nodes[node as usize].id
    }
    fn node_type(&self, node: u32) -> &str {
        &self.plan.nodes[node as usize].node_type
    }
    fn config(&self, node: u32) -> &serde_json::Value {
        &self.runs[node as usize].config
    }
    fn previous_result(&self, node: u32) -> Option<&NodeResult> {
        self.runs[node as usize].previous.as_deref()
    }
    fn run_input(&self, node: u32) -> Option<&RunInput> {
        self.runs[node as usize].run_input.as_deref()
    }
    fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }
    fn assets(&self) -> &Arc<dyn AssetStore> {
        &self.assets
    }
    fn events(&self) -> Option<&EventSink> {
        self.observed.then_some(&self.sink)
    }
}

/// Everything `Engine::start` hands over to the run task.
pub(crate) struct RunSetup {
    pub(crate) engine: Arc<EngineInner>,
    pub(crate) workflow: Workflow,
    pub(crate) plan: Arc<Plan>,
    pub(crate) runs: Vec<NodeRun>,
    pub(crate) options: RunOptions,
    pub(crate) run_id: Arc<str>,
    pub(crate) cancel: CancellationToken,
    pub(crate) stream: Option<mpsc::UnboundedSender<RunEvent>>,
}

/// Runs a plan to the end and builds the outcome.
pub(crate) async fn execute(setup: RunSetup) -> Result<RunOutcome> {
    let RunSetup {
        engine,
        workflow,
        plan,
        runs,
        options,
        run_id,
        cancel,
        stream,
    } = setup;
    let clock = RunClock::start();
    let created_at = clock.origin_utc;
    // Only the host names the stored workflow: the document's own `id` is untrusted input
    // (a shared canvas carries its author's id), and a store files the run under it.
    let workflow_id = options.workflow_id.clone();
    let span = tracing::info_span!("run", run_id = %run_id, workflow_id = workflow_id.as_deref().unwrap_or(""));
    let count = plan.nodes.len();
    let settled: SettledSlots = (0..count).map(|_| OnceLock::new()).collect();

    // A dispatcher task builds each node's record and gathers the outcome as nodes settle;
    // for an observed run it also builds the events and hands them to observers and the
    // stream, in batches, in order.
    let observed = !engine.observers.is_empty() || stream.is_some();
    let (sink, rx) = crate::event::event_queue(clock);
    let dispatcher = tokio::spawn(dispatch_events(
        Dispatch {
            run_id: run_id.clone(),
            plan: plan.clone(),
            settled: settled.clone(),
            clock,
            observed,
            observers: engine.observers.clone(),
            stream,
        },
        rx,
    ));

    let mut run = RunRecord {
        id: run_id.to_string(),
        workflow_id,
        trigger_type: options.trigger,
        status: RunStatus::Running,
        error: None,
        created_at,
        started_at: Some(created_at),
        finished_at: None,
        cache_scope: options.cache_scope.clone(),
    };
    if observed {
        sink.emit_at(
            created_at,
            EventKind::RunStarted {
                run: Arc::new(run.clone()),
                node_count: count,
            },
        );
        // Every node is queued at the run's start.
        sink.send(Pending::NodesQueued(created_at));
    }
    tracing::info!(parent: &span, nodes = count, "run started");

    let (spawner, mut local_rx) = match engine.executor {
        ExecutorKind::MultiThreaded => (Spawner::Tokio, None),
        ExecutorKind::SingleThreaded => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Spawner::Local(tx), Some(rx))
        }
    };
    let max_drivers = match spawner {
        Spawner::Tokio => tokio::runtime::Handle::current()
            .metrics()
            .num_workers()
            .max(1),
        Spawner::Local(_) => 1,
    };
    let remaining = plan.indegree.iter().map(|&d| AtomicU32::new(d)).collect();
    let roots: Vec<u32> = (0..count as u32)
        .filter(|&i| plan.indegree[i as usize] == 0)
        .collect();
    let state = Arc::new(RunState {
        plan,
        runs,
        remaining,
        settled,
        settled_count: AtomicUsize::new(0),
        done: Notify::new(),
        // Nodes watch a child token, so fail-fast never cancels the host's own token.
        cancel: cancel.child_token(),
        stopping: AtomicBool::new(false),
        failed_fast: OnceLock::new(),
        run_key: engine.next_run_key.fetch_add(1, Ordering::Relaxed),
        any_failed: AtomicBool::new(false),
        any_cancelled: AtomicBool::new(false),
        sink: sink.clone(),
        observed,
        engine: engine.clone(),
        run_id: run_id.clone(),
        spawner: spawner.clone(),
        ready: std::sync::Mutex::new(Vec::new()),
        drivers: AtomicUsize::new(0),
        max_drivers,
        span: span.clone(),
        fail_fast: options.fail_fast,
        assets: options
            .assets
            .clone()
            .unwrap_or_else(|| engine.assets.clone()),
        cache_scope: options.cache_scope.clone(),
    });

    if count > 0 {
        state.enqueue(roots);
        wait_for_settlement(&state, &mut local_rx, engine.cancel_grace).await;
    }
    drop(local_rx);

    // Anything still unsettled (a node that ignored cancellation) is abandoned as cancelled.
    let unsettled = state.settled_count.load(Ordering::Acquire) < count;
    for i in (0..count).filter(|_| unsettled) {
        if state.settled[i].get().is_none() {
            let reason = Arc::from("abandoned after the cancellation grace period");
            state.settle(
                i,
                Settled::now(End::Cancelled { reason }, Instant::now()),
                None,
            );
        }
    }
    // A node task that settled its node just now may not have queued its event yet (it
    // counts the node right after queueing it, without waiting for anything): let it, so
    // that `RunFinished` comes after every node's last event.
    while state.settled_count.load(Ordering::Acquire) < count {
        tokio::task::yield_now().await;
    }

    // Outcome.
    let any_cancelled = state.any_cancelled.load(Ordering::Acquire);
    let user_cancelled = cancel.is_cancelled() && any_cancelled;
    let failed = state.any_failed.load(Ordering::Acquire);
    run.status = if user_cancelled {
        RunStatus::Cancelled
    } else if failed {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    };
    // The first failed node in plan order (only a failed run looks).
    let first_error = || {
        state
            .settled
            .iter()
            .zip(&state.plan.nodes)
            .find_map(|(s, node)| match s.get().map(|s| &s.end) {
                Some(End::Failed { error, .. }) => {
                    Some(format!("node {} failed: {error}", node.id))
                }
                _ => None,
            })
    };
    run.error = match run.status {
        RunStatus::Cancelled => Some("cancelled".to_owned()),
        RunStatus::Failed => first_error(),
        _ => None,
    };
    run.finished_at = Some(clock.now());
    tracing::info!(parent: &span, status = run.status.as_str(), "run finished");
    // Also the dispatcher's signal to finish.
    sink.emit(EventKind::RunFinished {
        run: Arc::new(run.clone()),
    });
    drop(sink);
    // Observers have handled every event once the dispatcher ends; what it collected for
    // the outcome (records, results, exports) is complete then.
    let mut collector = dispatcher.await.unwrap_or_else(|e| {
        tracing::error!(parent: &span, error = %e, "the run's dispatcher died; its records are rebuilt without inputs");
        Collector::new(count)
    });
    // Take the run state back from the drivers (they end once nothing is queued), so results
    // move into the document instead of being shared.
    let mut state = state;
    let mut tries = 0;
    let (plan, runs, mut settled) = loop {
        match Arc::try_unwrap(state) {
            Ok(owned) => break (owned.plan, owned.runs, owned.settled),
            // A node abandoned after cancellation still holds the state: share what we need.
            Err(shared) if tries >= 64 => {
                break (
                    shared.plan.clone(),
                    shared.runs.clone(),
                    shared.settled.clone(),
                );
            }
            Err(shared) => {
                tries += 1;
                state = shared;
                tokio::task::yield_now().await;
            }
        }
    };
    // Records the dispatcher did not collect (it died) are built now.
    for (i, (node, slot)) in plan.nodes.iter().zip(settled.iter()).enumerate() {
        if collector.records[i].is_some() {
            continue;
        }
        if let Some(s) = slot.get() {
            let built = Arc::new(record(&run_id, node, s, None, &clock));
            collector.collect(i, node, s, built);
        }
    }
    // Hand the results, configs and untouched previous results back to the document, moving
    // each node's result out of the run's state when nothing else holds it.
    let mut workflow = workflow;
    match Arc::get_mut(&mut settled) {
        Some(slots) => {
            super::plan::restore_documents_owned(&plan, &mut workflow, runs, slots, |s| {
                s.take().and_then(Settled::into_result)
            })
        }
        None => super::plan::restore_documents(&plan, &mut workflow, runs, |i| {
            settled[i].get().and_then(|s| match &s.end {
                End::Completed { result, .. } => Some(result.clone()),
                _ => None,
            })
        }),
    }
    drop(settled);
    let Collector {
        records,
        results,
        exports,
        observer_errors,
    } = collector;
    let executions = records.into_iter().flatten().collect();
    Ok(RunOutcome {
        run,
        executions,
        workflow,
        results,
        exports,
        observer_errors,
    })
}

/// Waits until every node settled, or the run was cancelled and the grace period passed.
async fn wait_for_settlement(
    state: &Arc<RunState>,
    local: &mut Option<mpsc::UnboundedReceiver<BoxFuture<'static, ()>>>,
    grace: std::time::Duration,
) {
    let total = state.plan.nodes.len();
    let mut futures: FuturesUnordered<BoxFuture<'static, ()>> = FuturesUnordered::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if state.settled_count.load(Ordering::Acquire) >= total {
            return;
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => futures::future::pending::<()>().await,
            }
        };
        let cancelled = async {
            if deadline.is_none() {
                state.cancel.cancelled().await
            } else {
                futures::future::pending::<()>().await
            }
        };
        let incoming = async {
            match local.as_mut() {
                Some(rx) => rx.recv().await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            _ = state.done.notified() => {}
            Some(fut) = incoming => futures.push(fut),
            Some(()) = futures.next(), if !futures.is_empty() => {}
            _ = cancelled => {
                state.stopping.store(true, Ordering::Release);
                // A grace too long to add (`Duration::MAX`: never abandon) waits a century.
                let now = tokio::time::Instant::now();
                let wait = grace.saturating_add(std::time::Duration::from_millis(50));
                deadline = Some(now.checked_add(wait).unwrap_or_else(|| {
                    now + std::time::Duration::from_secs(100 * 365 * 24 * 3600)
                }));
            }
            _ = sleep => return,
        }
    }
}

/// What the event dispatcher of a run needs.
struct Dispatch {
    run_id: Arc<str>,
    plan: Arc<Plan>,
    settled: SettledSlots,
    clock: RunClock,
    /// Whether to build events (someone watches them), or only the records.
    observed: bool,
    observers: Vec<Arc<dyn crate::event::Observer>>,
    stream: Option<mpsc::UnboundedSender<RunEvent>>,
}

/// The most events handed to observers at once.
const MAX_BATCH: usize = 4096;

impl Dispatch {
    fn push(&self, batch: &mut Vec<RunEvent>, seq: &mut u64, at: DateTime<Utc>, kind: EventKind) {
        batch.push(RunEvent {
            run_id: self.run_id.clone(),
            seq: *seq,
            at,
            kind,
        });
        *seq += 1;
    }

    /// Hands a batch to every observer, then to the stream; what observers could not handle
    /// goes to `errors`.
    async fn deliver(&self, batch: &mut Vec<RunEvent>, errors: &mut Vec<Error>) {
        if batch.is_empty() {
            return;
        }
        for observer in &self.observers {
            match AssertUnwindSafe(observer.on_events(batch))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(run_id = %self.run_id, events = batch.len(), %error, "an observer could not handle a batch of events; the run goes on");
                    errors.push(error);
                }
                Err(panic) => {
                    let message = panic_message(&*panic);
                    tracing::error!(run_id = %self.run_id, panic = %message, "an observer panicked; its batch is lost, the others go on");
                    errors.push(Error::observer(
                        ErrorKind::Internal,
                        format!(
                            "an observer panicked on {} events of run `{}`: {message}",
                            batch.len(),
                            self.run_id
                        ),
                    ));
                }
            }
        }
        match &self.stream {
            Some(tx) => {
                for event in batch.drain(..) {
                    let _ = tx.send(event);
                }
            }
            None => batch.clear(),
        }
    }
}

/// Builds each settled node's record and, for an observed run, the run's events from what
/// its nodes queued, handed to observers and the stream in batches, in order, until
/// `RunFinished`. Returns what it gathered for the run's outcome.
async fn dispatch_events(dispatch: Dispatch, mut rx: EventReceiver) -> Collector {
    let mut collector = Collector::new(dispatch.plan.nodes.len());
    let mut seq = 0u64;
    let mut buf = Vec::with_capacity(256);
    let mut batch: Vec<RunEvent> = Vec::with_capacity(256);
    let d = &dispatch;
    loop {
        if rx.recv_all(&mut buf).await == 0 {
            return collector;
        }
        let mut finished = false;
        for pending in buf.drain(..) {
            if finished {
                break;
            }
            match pending {
                Pending::Event(event) => {
                    let (at, kind) = *event;
                    finished = matches!(kind, EventKind::RunFinished { .. });
                    d.push(&mut batch, &mut seq, at, kind);
                }
                Pending::NodesQueued(at) => {
                    for node in &d.plan.nodes {
                        let kind = EventKind::NodeQueued {
                            node_id: node.id.clone(),
                            node_type: node.node_type.clone(),
                            label: node.label.clone(),
                        };
                        d.push(&mut batch, &mut seq, at, kind);
                        if batch.len() >= MAX_BATCH {
                            d.deliver(&mut batch, &mut collector.observer_errors).await;
                        }
                    }
                }
                Pending::Started { node, attempt, at } => {
                    let kind = EventKind::NodeStarted {
                        node_id: d.plan.nodes[node as usize].id.clone(),
                        attempt,
                    };
                    d.push(&mut batch, &mut seq, d.clock.at(at), kind);
                }
                Pending::Settled(node, inputs) => {
                    let plan_node = &d.plan.nodes[node as usize];
                    // Set before the node queued this event.
                    if let Some(s) = d.settled[node as usize].get() {
                        let record = Arc::new(record(&d.run_id, plan_node, s, inputs, &d.clock));
                        collector.collect(node as usize, plan_node, s, record.clone());
                        if d.observed {
                            let kind = settled_event(plan_node, s, record);
                            d.push(&mut batch, &mut seq, d.clock.at(s.finished), kind);
                        }
                    }
                }
            }
            if batch.len() >= MAX_BATCH {
                d.deliver(&mut batch, &mut collector.observer_errors).await;
            }
        }
        d.deliver(&mut batch, &mut collector.observer_errors).await;
        if finished {
            return collector;
        }
    }
}

/// What resolving a node's inputs found.
enum Resolution {
    Ready(Inputs),
    Skip(SkipReason),
    Cancel,
}

impl RunState {
    /// Starts a driver task (the caller has counted it in `drivers`).
    fn spawn_driver(self: &Arc<Self>) {
        let state = self.clone();
        match &self.spawner {
            // Spawned as it is: tokio allocates the task, no second box for the future.
            Spawner::Tokio => {
                tokio::spawn(async move { state.drive().await });
            }
            Spawner::Local(tx) => {
                let _ = tx.send(async move { state.drive().await }.boxed());
            }
        }
    }

    /// Queues ready nodes for the run's drivers, and starts drivers while fewer than the
    /// executor's workers are free to take them.
    fn enqueue(self: &Arc<Self>, nodes: impl IntoIterator<Item = u32>) {
        let queued = {
            let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
            ready.extend(nodes);
            ready.len()
        };
        self.add_drivers(queued);
    }

    /// Starts drivers for up to `queued` nodes while fewer than `max_drivers` are free.
    fn add_drivers(self: &Arc<Self>, mut queued: usize) {
        while queued > 0 && self.try_join_drivers() {
            self.spawn_driver();
            queued -= 1;
        }
    }

    /// How many ready nodes are queued.
    fn queued(&self) -> usize {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Counts one more free driver, unless `max_drivers` already are.
    fn try_join_drivers(&self) -> bool {
        self.drivers
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_drivers).then_some(n + 1)
            })
            .is_ok()
    }

    /// Moves queued ready nodes into a driver's own batch: its share of the queue (the queue
    /// split between the free drivers), at most [`DRIVER_BATCH`], so that drivers take the
    /// queue's lock once per batch rather than once per node.
    fn take_ready(&self, batch: &mut Batch) {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        let share = ready.len().div_ceil(self.max_drivers).min(DRIVER_BATCH);
        let from = ready.len() - share;
        batch.extend(ready.drain(from..));
    }

    /// A free driver with nothing to do stops counting itself; it stays (returns `false`)
    /// when work was queued meanwhile and it can count itself again. (A node queued before the
    /// count dropped was either seen here or saw the lower count and started a driver: the
    /// queue's lock orders the two.)
    fn retire(&self) -> bool {
        self.drivers.fetch_sub(1, Ordering::AcqRel);
        self.queued() == 0 || !self.try_join_drivers()
    }

    /// A driver: settles nodes one after another, taking a newly ready dependent of the node
    /// it just settled first (no cross-thread hop; after a node that waited, only when the
    /// driver can count itself free again), then queued ones, and leaves the others to the
    /// queue. At most `max_drivers` drivers are free at a time (one per worker thread): no task
    /// is spawned per node that does not wait. A node that has to wait (an external call, a
    /// concurrency slot, a slow cache) keeps its driver, which stops counting as free so that
    /// another takes the queue meanwhile. Only a `Pending` poll tells: a node that blocks its
    /// thread instead (`block_in_place`, blocking I/O) keeps counting as free, and queued nodes
    /// wait for it (the few its driver took first among them).
    async fn drive(self: Arc<Self>) {
        // The nodes this driver holds, the next one last: a dependent of the node it just
        // settled, or its share of the queue. Given back to the queue when a node has to wait.
        let mut batch = Batch::new();
        loop {
            if batch.is_empty() {
                self.take_ready(&mut batch);
            }
            let idx = match batch.pop() {
                Some(idx) => idx,
                None if self.retire() => return,
                None => continue,
            };
            // Whatever goes wrong while settling a node (a panicking cache or a bug) fails that
            // node; it never leaves the run waiting for a node that will not settle.
            let mut settling =
                std::pin::pin!(AssertUnwindSafe(self.process(idx as usize)).catch_unwind());
            let mut waited = false;
            let settled = std::future::poll_fn(|cx| {
                let poll = settling.as_mut().poll(cx);
                if poll.is_pending() && !waited {
                    waited = true;
                    self.drivers.fetch_sub(1, Ordering::AcqRel);
                    self.enqueue(batch.drain(..));
                }
                poll
            })
            .await;
            if let Err(panic) = settled {
                self.settle_after_panic(idx as usize, &panic_message(&*panic));
            }
            let mut ready = self.ready_dependents(idx as usize);
            if waited && !self.try_join_drivers() {
                // Enough drivers are free: they take what this node made ready.
                self.enqueue(ready);
                return;
            }
            batch.extend(ready.next());
            if ready.len() > 0 {
                self.enqueue(ready);
            }
            // A long chain of instant nodes must not hold a worker thread forever: each node
            // spends a unit of the task's budget, and the driver yields once it is spent,
            // before the next node. A node never starts on a spent budget: its first
            // budget-aware await (`select!` checks the budget) would return `Pending` for a mere
            // yield, and the driver would take that for a wait (stop counting as free, start
            // another driver, hand its batch back).
            // (On the single-threaded executor other drivers share the run task's budget and
            // may spend it again before this one resumes: hence a loop.)
            tokio::task::coop::consume_budget().await;
            while !tokio::task::coop::has_budget_remaining() {
                tokio::task::yield_now().await;
            }
        }
    }

    fn settle_after_panic(&self, idx: usize, message: &str) {
        if self.settled[idx].get().is_some() {
            return;
        }
        let node = &self.plan.nodes[idx];
        let error = format!("engine error while running the node: {message}");
        tracing::error!(parent: &self.span, node_id = %node.id, %error);
        self.any_failed.store(true, Ordering::Release);
        let end = End::Failed {
            error: Arc::from(error),
            kind: ErrorKind::Internal,
        };
        self.settle(idx, Settled::now(end, Instant::now()), None);
    }

    /// Counts `idx` as settled for each dependent; yields the dependents that became ready.
    fn ready_dependents(&self, idx: usize) -> smallvec::IntoIter<[u32; 4]> {
        let mut ready = smallvec::SmallVec::new();
        for &d in self.plan.dependents_of(idx) {
            if self.remaining[d as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                ready.push(d);
            }
        }
        ready.into_iter()
    }

    fn emit(&self, kind: EventKind) {
        if self.observed {
            self.sink.emit(kind);
        }
    }

    /// Records how a node settled (first writer wins) and queues its event, with the inputs
    /// it ran with (they go to the dispatcher, which builds the record).
    fn settle(&self, idx: usize, mut settled: Settled, inputs: Option<Arc<Inputs>>) {
        let cancelled = matches!(settled.end, End::Cancelled { .. });
        // (Only what a dependent will read.)
        if let End::Completed { result, .. } = &settled.end
            && !self.plan.dependents_of(idx).is_empty()
        {
            settled.flows = flows_of(&self.plan.nodes[idx], result);
        }
        if self.settled[idx].set(settled).is_ok() {
            if cancelled {
                self.any_cancelled.store(true, Ordering::Release);
            }
            self.sink.send(Pending::Settled(idx as u32, inputs));
            if self.settled_count.fetch_add(1, Ordering::AcqRel) + 1 == self.plan.nodes.len() {
                self.done.notify_one();
            }
        }
    }

    fn resolve(&self, node: &PlanNode) -> Resolution {
        let slot_plans = self.plan.slots_of(node);
        let mut slots = smallvec::SmallVec::with_capacity(slot_plans.len());
        let mut not_taken: Option<Arc<str>> = None;
        let mut required_missing = false;
        let mut edges = 0usize;
        let mut delivered = 0usize;
        for slot in slot_plans {
            let sources = self.plan.sources_of(slot);
            let mut values = Vec::with_capacity(sources.len());
            for source in sources {
                edges += 1;
                let upstream = &self.plan.nodes[source.node as usize];
                let settled = self.settled[source.node as usize].get();
                match settled.map(|s| &s.end) {
                    Some(End::Completed { result, .. }) => {
                        let flow = settled.and_then(|s| s.flows.get(source.handle as usize));
                        let item = match flow {
                            Some(Some(at)) => result
                                .selected()
                                .and_then(|g| g.items.get(*at as usize))
                                .map(OutputItem::to_item),
                            Some(None) => None,
                            // An edge out of an input handle (validation refuses one), or a
                            // settlement without flows: the item is looked for by the handle's
                            // id.
                            None => upstream
                                .handles
                                .get(source.handle as usize)
                                .and_then(|h| result.selected_item(&h.id).map(OutputItem::to_item)),
                        };
                        match item {
                            Some(item) => values.push(item),
                            None => not_taken = Some(upstream.id.clone()),
                        }
                    }
                    Some(End::Failed { error, .. }) => {
                        return Resolution::Skip(SkipReason::UpstreamFailed {
                            node_id: upstream.id.clone(),
                            error: error.clone(),
                        });
                    }
                    Some(End::Skipped {
                        reason: reason @ SkipReason::UpstreamFailed { .. },
                    }) => {
                        return Resolution::Skip(reason.clone());
                    }
                    Some(End::Skipped {
                        reason: SkipReason::NotTaken { node_id },
                    }) => {
                        not_taken = Some(node_id.clone());
                    }
                    Some(End::Cancelled { .. }) | None => return Resolution::Cancel,
                }
            }
            delivered += values.len();
            // A required input no edge feeds is stood in for by the node's config (validation
            // checked that): only one whose edges delivered nothing is missing.
            if slot.required && values.is_empty() && !sources.is_empty() {
                required_missing = true;
            }
            slots.push(InputSlot {
                handle_id: slot.handle_id.clone(),
                template_handle_id: slot.template_handle_id.clone(),
                label: slot.label.clone(),
                multiple: slot.multiple,
                values,
            });
        }
        if let Some(node_id) = not_taken.filter(|_| required_missing || delivered == 0 && edges > 0)
        {
            return Resolution::Skip(SkipReason::NotTaken { node_id });
        }
        Resolution::Ready(Inputs::from_slots(slots))
    }

    /// Settles one node: preset, skip, cancel, cache hit, or execution with retries.
    async fn process(self: &Arc<Self>, idx: usize) {
        let node = &self.plan.nodes[idx];
        let run = &self.runs[idx];
        let started = Instant::now();
        // A result resumed with its key waits for the node's inputs (below).
        if let (Some(preset), None) = (&run.preset, run.resume_key) {
            let end = End::Completed {
                result: preset.result.clone(),
                source: preset.source,
                error: preset.error.clone(),
            };
            let mut settled = Settled::now(end, started);
            settled.duration_ms = Some(0);
            self.settle(idx, settled, None);
            return;
        }
        if self.stopping.load(Ordering::Acquire) {
            self.cancel_unstarted(idx, started);
            return;
        }
        let inputs = match self.resolve(node) {
            // Shared with the records' input snapshots.
            Resolution::Ready(inputs) => Arc::new(inputs),
            Resolution::Skip(reason) => {
                self.settle(idx, Settled::now(End::Skipped { reason }, started), None);
                return;
            }
            Resolution::Cancel => {
                self.cancel_unstarted(idx, started);
                return;
            }
        };
        // Where an executed node's record and duration start: its inputs are ready (resolving
        // them and hashing its key take no time worth a clock read of its own), and the cache
        // had nothing for it (a lookup that waited moves it).
        let mut began = started;
        // The node's key: for the cache, for a resumed result recorded with its key, and for
        // the record when an observer asks (the plan hashed the prefix in each case).
        let cache = self.engine.cache.as_ref().filter(|_| node.cacheable);
        let key =
            (cache.is_some() || run.resume_key.is_some() || self.engine.records_keys).then(|| {
                super::key::cache_key(node.key_prefix, self.cache_scope.as_deref(), run, &inputs)
            });
        if let (Some(preset), Some(recorded)) = (&run.preset, run.resume_key) {
            if key == Some(recorded) {
                let end = End::Completed {
                    result: preset.result.clone(),
                    source: ResultSource::Resumed,
                    error: preset.error.clone(),
                };
                let mut settled = Settled::now(end, started);
                settled.duration_ms = Some(0);
                settled.key = key;
                self.settle(idx, settled, Some(inputs));
                return;
            }
            tracing::info!(parent: &self.span, node_id = %node.id, "the node's config or inputs changed since the interrupted attempt: executing it again instead of reusing its result");
        }
        // Cache.
        // Forced nodes skip the lookup but still store what they produce.
        if let (Some(cache), Some(key), false) = (cache, key.as_ref(), run.force) {
            // A node the run had not started when it was cancelled ends cancelled, even when
            // the cache has its result (the `stopping` flag above may lag the token).
            if self.cancel.is_cancelled() {
                self.cancel_unstarted(idx, started);
                return;
            }
            let found = match cache.try_get(key) {
                Some(found) => found,
                None => {
                    let found = cache.get(key).await;
                    // A lookup that waited (a store's cache) is not the node's time.
                    began = Instant::now();
                    found
                }
            };
            match found {
                Ok(Some(generations)) => {
                    let end = End::Completed {
                        result: merge_cached(node, run, &generations),
                        source: ResultSource::Cached,
                        error: None,
                    };
                    let mut settled = Settled::now(end, started);
                    settled.duration_ms = Some(0);
                    settled.key = Some(*key);
                    self.settle(idx, settled, Some(inputs));
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(parent: &self.span, node_id = %node.id, error = %e, "result cache lookup failed; executing")
                }
            }
        }
        let span = tracing::info_span!(parent: &self.span, "node", node_id = %node.id, node_type = %node.node_type);
        let outcome = self
            .execute_with_retries(idx, node, &inputs, &span, began)
            .await;
        // Fail-fast: this node's failure stops the run (once it is settled, so that the
        // failure is what the run reports).
        let mut stops_run = false;
        let (end, attempts, finished, duration_ms) = match outcome {
            Attempted::Done {
                generations,
                attempts,
                finished,
                duration_ms,
            } => {
                // A replacing node's result is exactly its generations: the cache shares it.
                let (result, cached) = match node.mode {
                    ResultMode::Replace => {
                        let result = Arc::new(merge(node, run, generations));
                        (result.clone(), result)
                    }
                    ResultMode::Append => (
                        Arc::new(merge(node, run, generations.clone())),
                        Arc::new(NodeResult {
                            selected_output_index: 0,
                            outputs: generations,
                        }),
                    ),
                };
                if let (Some(cache), Some(key)) = (cache, key)
                    && let Err(e) = match cache.try_put(key, &cached) {
                        Some(stored) => stored,
                        None => cache.put(key, cached).await,
                    }
                {
                    tracing::warn!(parent: &span, error = %e, "result cache store failed");
                }
                let end = End::Completed {
                    result,
                    source: ResultSource::Executed,
                    error: None,
                };
                (end, attempts, finished, Some(duration_ms))
            }
            Attempted::Failed {
                error,
                attempts,
                finished,
                duration_ms,
            } => {
                let end = if node.on_error == OnError::Continue {
                    // The error becomes the node's output, on its error handle; a node with
                    // none completes with no output (its record keeps the error), so what
                    // it feeds is not taken.
                    let handle = node.handles.iter().find(|h| {
                        h.is_output
                            && (h.template_handle_id.as_deref() == Some("error")
                                || h.label.eq_ignore_ascii_case("error"))
                    });
                    let generation = Generation {
                        items: handle
                            .map(|h| Item::text(error.message()).on(h.id.clone()))
                            .into_iter()
                            .collect(),
                    };
                    End::Completed {
                        result: Arc::new(merge(node, run, vec![generation])),
                        source: ResultSource::Executed,
                        error: Some(Arc::from(error.to_string())),
                    }
                } else {
                    self.any_failed.store(true, Ordering::Release);
                    let message: Arc<str> = Arc::from(error.to_string());
                    tracing::warn!(parent: &span, error = %message, "node failed");
                    stops_run = self.fail_fast
                        && !self.cancel.is_cancelled()
                        && self.failed_fast.set(node.id.clone()).is_ok();
                    End::Failed {
                        error: message,
                        kind: error.kind(),
                    }
                };
                (end, attempts, finished, Some(duration_ms))
            }
            Attempted::Cancelled { attempts } => {
                let end = End::Cancelled {
                    reason: self.stop_reason(),
                };
                (end, attempts, Instant::now(), None)
            }
        };
        self.settle(
            idx,
            Settled {
                end,
                // Its record starts where its duration does (and its first `NodeStarted`, when
                // it waited for no slot).
                started: began,
                finished,
                attempts,
                duration_ms,
                key,
                flows: Flows::new(),
            },
            Some(inputs),
        );
        if stops_run {
            self.stopping.store(true, Ordering::Release);
            self.cancel.cancel();
        }
    }

    /// Settles a node that never started as cancelled, with the reason the run stopped.
    fn cancel_unstarted(&self, idx: usize, started: Instant) {
        let end = End::Cancelled {
            reason: self.stop_reason(),
        };
        self.settle(idx, Settled::now(end, started), None);
    }

    fn stop_reason(&self) -> Arc<str> {
        match self.failed_fast.get() {
            Some(node) => Arc::from(format!("run stopped after node {node} failed (fail-fast)")),
            None => Arc::from("run cancelled"),
        }
    }

    async fn execute_with_retries(
        self: &Arc<Self>,
        idx: usize,
        node: &PlanNode,
        inputs: &Inputs,
        span: &tracing::Span,
        began: Instant,
    ) -> Attempted {
        let mut attempt = 0u32;
        // The node's duration runs from `began` (waits for slots and retry pauses included).
        loop {
            attempt += 1;
            // Concurrency: the node type's limit first, then the global one, so a node waiting
            // for its type never holds a global slot.
            // (Waits that only some nodes make are boxed: every driver's task holds the
            // drive loop's future, which stays small enough for the allocator's fast path.)
            let _type_permit = match &node.type_limit {
                Some(limit) => match Box::pin(self.permit(limit)).await {
                    Some(permit) => Some(permit),
                    None => {
                        return Attempted::Cancelled {
                            attempts: attempt - 1,
                        };
                    }
                },
                None => None,
            };
            let _global_permit = match &self.engine.global_limit {
                Some(limit) => match Box::pin(self.permit(limit)).await {
                    Some(permit) => Some(permit),
                    None => {
                        return Attempted::Cancelled {
                            attempts: attempt - 1,
                        };
                    }
                },
                None => None,
            };
            // A cancel that arrived while waiting must not start a (possibly paid) execution.
            if self.cancel.is_cancelled() {
                return Attempted::Cancelled {
                    attempts: attempt - 1,
                };
            }
            if let Some(events) = self.events() {
                // The first attempt of a node that waited for no slot starts now.
                let waited = node.type_limit.is_some() || self.engine.global_limit.is_some();
                let at = if attempt == 1 && !waited {
                    began
                } else {
                    Instant::now()
                };
                events.send(Pending::Started {
                    node: idx as u32,
                    attempt,
                    at,
                });
            }
            let ctx = NodeContext {
                scope: Scope::Run(self.clone(), idx as u32),
                span: span.clone(),
                attempt,
            };
            let result = self.attempt(node, &ctx, inputs, span).await;
            drop(ctx);
            let finished = Instant::now();
            let duration_ms = finished.saturating_duration_since(began).as_millis() as u64;
            match result {
                AttemptResult::Ok(outputs) => match map_outputs(node, outputs) {
                    Ok(generations) => {
                        return Attempted::Done {
                            generations,
                            attempts: attempt,
                            finished,
                            duration_ms,
                        };
                    }
                    Err(error) => {
                        return Attempted::Failed {
                            error,
                            attempts: attempt,
                            finished,
                            duration_ms,
                        };
                    }
                },
                AttemptResult::Cancelled => {
                    return Attempted::Cancelled { attempts: attempt };
                }
                AttemptResult::Err(error) => {
                    let retry = error.is_retryable()
                        && attempt < node.retry.max_attempts
                        && !self.cancel.is_cancelled();
                    let delay = match retry {
                        true => node.retry.delay_after(attempt, error.retry_after()),
                        false => None,
                    };
                    let Some(delay) = delay else {
                        if retry {
                            tracing::info!(parent: span, attempt, error = %error, retry_after_ms = error.retry_after().map(|d| d.as_millis() as u64), "the error asks to wait longer than the retry policy's max backoff; not retrying");
                        }
                        return Attempted::Failed {
                            error,
                            attempts: attempt,
                            finished,
                            duration_ms,
                        };
                    };
                    tracing::info!(parent: span, attempt, error = %error, delay_ms = delay.as_millis() as u64, "attempt failed; retrying");
                    self.emit(EventKind::NodeFailed {
                        node_id: node.id.clone(),
                        error: Arc::from(error.to_string()),
                        kind: error.kind(),
                        attempt,
                        will_retry: true,
                        record: None,
                    });
                    drop(_global_permit);
                    drop(_type_permit);
                    let pause = Box::pin(async {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => true,
                            _ = self.cancel.cancelled() => false,
                        }
                    });
                    if !pause.await {
                        return Attempted::Cancelled { attempts: attempt };
                    }
                }
            }
        }
    }

    /// A permit of `limit`, or `None` when the run is cancelled first.
    async fn permit(
        &self,
        limit: &Arc<super::limiter::FairLimiter>,
    ) -> Option<super::limiter::Permit> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            p = limit.acquire(self.run_key) => Some(p),
        }
    }

    /// One attempt: dispatch with timeout, panic capture and cancellation (with a grace
    /// period for the node to notice, after which it is abandoned).
    async fn attempt(
        &self,
        node: &PlanNode,
        ctx: &NodeContext,
        inputs: &Inputs,
        span: &tracing::Span,
    ) -> AttemptResult {
        // In-process nodes are called directly (one boxed future fewer than through the
        // dispatcher trait); a host's dispatcher gets every execution.
        let dispatch = async {
            match &self.engine.dispatcher {
                Some(dispatcher) => dispatcher.dispatch(&node.node, ctx, inputs).await,
                None => node.node.execute(ctx, inputs).await,
            }
        };
        let timed = async {
            match node.timeout {
                Some(limit) => match Box::pin(tokio::time::timeout(limit, dispatch)).await {
                    Ok(r) => r,
                    Err(_) => Err(NodeError::new(
                        ErrorKind::Timeout,
                        format!("timed out after {} ms", limit.as_millis()),
                    )),
                },
                None => dispatch.await,
            }
        };
        let guarded = AssertUnwindSafe(timed.instrument(span.clone())).catch_unwind();
        let mut guarded = std::pin::pin!(guarded);
        let outcome = tokio::select! {
            biased;
            r = &mut guarded => r,
            _ = self.cancel.cancelled() => {
                match Box::pin(tokio::time::timeout(self.engine.cancel_grace, &mut guarded)).await {
                    Ok(Ok(Ok(_))) | Ok(Ok(Err(_))) | Ok(Err(_)) | Err(_) => return AttemptResult::Cancelled,
                }
            }
        };
        match outcome {
            Ok(Ok(outputs)) => AttemptResult::Ok(outputs),
            Ok(Err(e)) if e.kind() == ErrorKind::Cancelled && self.cancel.is_cancelled() => {
                AttemptResult::Cancelled
            }
            Ok(Err(e)) => AttemptResult::Err(e),
            Err(panic) => AttemptResult::Err(NodeError::internal(format!(
                "node panicked: {}",
                panic_message(&*panic)
            ))),
        }
    }
}

enum AttemptResult {
    Ok(Outputs),
    Err(NodeError),
    Cancelled,
}

enum Attempted {
    Done {
        generations: Vec<Generation>,
        attempts: u32,
        finished: Instant,
        duration_ms: u64,
    },
    Failed {
        error: NodeError,
        attempts: u32,
        finished: Instant,
        duration_ms: u64,
    },
    Cancelled {
        attempts: u32,
    },
}

/// Maps a node's output keys onto its instance handles and checks the data types.
fn map_outputs(
    node: &PlanNode,
    outputs: Outputs,
) -> std::result::Result<Vec<Generation>, NodeError> {
    let Outputs {
        items: all,
        starts,
        count,
    } = outputs;
    let total = all.len();
    let mut all = all.into_iter();
    let mut generations = Vec::with_capacity(count.max(1));
    for g in 0..count {
        let start = if g == 0 {
            0
        } else {
            starts.get(g - 1).copied().unwrap_or(total)
        };
        let size = starts
            .get(g)
            .copied()
            .unwrap_or(total)
            .saturating_sub(start);
        let mut items = Vec::with_capacity(size);
        for (key, item) in all.by_ref().take(size) {
            let Some(handle) = node.handle_for_key(&key) else {
                // An output the node's type declares but this instance lacks (a document
                // from before the type gained it): no edge can leave it, and a result item
                // must name a handle of the node, so the value has nowhere to go. Only when
                // every output handle the node has is one its type declares: otherwise a
                // handle with a stale template id may be the one meant, and its edges would
                // silently carry nothing.
                let declared = node.outputs_declared
                    && node
                        .node
                        .template()
                        .handle_template(&key)
                        .is_some_and(|t| t.handle_type == HandleType::Output);
                if declared {
                    tracing::warn!(
                        node_id = %node.id,
                        handle = %key,
                        "the node has no handle for its type's output `{key}`: its value is dropped"
                    );
                    continue;
                }
                return Err(NodeError::internal(format!(
                    "node produced a value on unknown handle `{key}`"
                )));
            };
            if handle.is_output
                && !handle.data_types.is_empty()
                && !handle
                    .data_types
                    .intersects(crate::model::DataTypeSet::of(&[item.data_type]))
            {
                return Err(NodeError::internal(format!(
                    "node produced {} on output `{key}`, which carries {}",
                    item.data_type, handle.data_types
                )));
            }
            items.push(item.on(handle.id.clone()));
        }
        generations.push(Generation { items });
    }
    if generations.is_empty() {
        generations.push(Generation::default());
    }
    Ok(generations)
}

/// The node's result after this run's generations, as its result mode says.
fn merge(node: &PlanNode, run: &NodeRun, generations: Vec<Generation>) -> NodeResult {
    match node.mode {
        ResultMode::Replace => NodeResult {
            selected_output_index: 0,
            outputs: generations,
        },
        ResultMode::Append => {
            let mut outputs = run
                .previous
                .as_ref()
                .map(|p| p.outputs.clone())
                .unwrap_or_default();
            outputs.extend(generations);
            NodeResult {
                selected_output_index: outputs.len().saturating_sub(1),
                outputs,
            }
        }
    }
}

/// A cache hit: an appending node whose selected generation already is the cached one keeps
/// its result as it is (no duplicate generation).
fn merge_cached(node: &PlanNode, run: &NodeRun, cached: &CachedOutputs) -> Arc<NodeResult> {
    let generations = &cached.outputs;
    match node.mode {
        // The cached result is the node's result: shared, not copied.
        ResultMode::Replace if cached.selected_output_index == 0 => cached.clone(),
        ResultMode::Append
            if run.previous.as_ref().is_some_and(|previous| {
                !generations.is_empty() && previous.outputs.ends_with(generations)
            }) =>
        {
            // The result already holds these generations: keep it, and the user's selection
            // when it picks one (a document's selection out of range would hide them all, and
            // leave downstream nodes "not taken": the newest is selected, as when it executes).
            match run.previous.clone() {
                Some(previous) if previous.selected().is_none() => Arc::new(NodeResult {
                    selected_output_index: previous.outputs.len().saturating_sub(1),
                    outputs: previous.outputs.clone(),
                }),
                previous => previous.unwrap_or_default(),
            }
        }
        _ => Arc::new(merge(node, run, generations.clone())),
    }
}

/// The text of a panic payload.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_owned())
}
