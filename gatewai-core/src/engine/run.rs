//! Executing a plan: drive loops that settle nodes and continue with a lone ready successor on
//! the same task, an event dispatcher, and the finalisation of records and the outcome.

use super::plan::{NodeRun, Plan, PlanNode};
use super::{EngineInner, ExecutorKind, RunOptions, RunOutcome};
use crate::cache::CachedOutputs;
use crate::error::{ErrorKind, NodeError, Result};
use crate::event::{EventKind, EventSink, ResultSource, RunEvent, SkipReason};
use crate::model::{
    ExecutionStatus, Generation, InputSnapshot, Item, NodeExecution, NodeResult, OnError,
    OutputItem, RunRecord, RunStatus, Workflow,
};
use crate::node::{InputSlot, Inputs, NodeContext, Outputs, ResultMode};
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

/// How a node settled.
pub(crate) enum Settled {
    Completed {
        result: Arc<NodeResult>,
        record: Arc<NodeExecution>,
    },
    Failed {
        error: Arc<str>,
        kind: ErrorKind,
        record: Arc<NodeExecution>,
    },
    Skipped {
        reason: SkipReason,
        record: Arc<NodeExecution>,
    },
    Cancelled {
        record: Arc<NodeExecution>,
    },
}

/// Where new node futures go: tokio's workers, or the run's own task.
#[derive(Clone)]
enum Spawner {
    Tokio,
    Local(mpsc::UnboundedSender<BoxFuture<'static, ()>>),
}

/// The shared state of one run.
pub(crate) struct RunState {
    plan: Arc<Plan>,
    /// What this run brings for each planned node, by plan index.
    runs: Vec<NodeRun>,
    remaining: Vec<AtomicU32>,
    settled: Vec<OnceLock<Settled>>,
    settled_count: AtomicUsize,
    done: Notify,
    /// Cancelled by the user (the host's token) or by fail-fast; nodes watch this one.
    cancel: CancellationToken,
    failed_fast: OnceLock<Arc<str>>,
    /// This run's turn key in the engine's fair concurrency limits.
    run_key: u64,
    any_failed: AtomicBool,
    events: Option<EventSink>,
    engine: Arc<EngineInner>,
    run_id: Arc<str>,
    spawner: Spawner,
    span: tracing::Span,
    fail_fast: bool,
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
    let created_at = Utc::now();
    let workflow_id = options.workflow_id.clone().or_else(|| workflow.id.clone());
    let span = tracing::info_span!("run", run_id = %run_id, workflow_id = workflow_id.as_deref().unwrap_or(""));

    // Events: a dispatcher task hands batches to observers and the stream, in order.
    let observed = !engine.observers.is_empty() || stream.is_some();
    let (sink, dispatcher) = if observed {
        let (tx, rx) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch_events(
            run_id.clone(),
            rx,
            engine.observers.clone(),
            stream,
        ));
        (Some(EventSink { tx }), Some(dispatcher))
    } else {
        (None, None)
    };

    let mut run = RunRecord {
        id: run_id.to_string(),
        workflow_id,
        trigger_type: options.trigger,
        status: RunStatus::Running,
        error: None,
        created_at,
        started_at: Some(created_at),
        finished_at: None,
    };
    let count = plan.nodes.len();
    if let Some(sink) = &sink {
        sink.emit(EventKind::RunStarted {
            run: Arc::new(run.clone()),
            node_count: count,
        });
        // Every node is queued at the run's start.
        for node in &plan.nodes {
            sink.emit_at(
                created_at,
                EventKind::NodeQueued {
                    node_id: node.id.clone(),
                    node_type: node.node_type.clone(),
                    label: node.label.clone(),
                },
            );
        }
    }
    tracing::info!(parent: &span, nodes = count, "run started");

    let (spawner, mut local_rx) = match engine.executor {
        ExecutorKind::MultiThreaded => (Spawner::Tokio, None),
        ExecutorKind::SingleThreaded => {
            let (tx, rx) = mpsc::unbounded_channel();
            (Spawner::Local(tx), Some(rx))
        }
    };
    let remaining = plan.indegree.iter().map(|&d| AtomicU32::new(d)).collect();
    let settled = (0..count).map(|_| OnceLock::new()).collect();
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
        failed_fast: OnceLock::new(),
        run_key: engine.next_run_key.fetch_add(1, Ordering::Relaxed),
        any_failed: AtomicBool::new(false),
        events: sink.clone(),
        engine: engine.clone(),
        run_id: run_id.clone(),
        spawner: spawner.clone(),
        span: span.clone(),
        fail_fast: options.fail_fast,
    });

    if count > 0 {
        for root in roots {
            state.spawn(root);
        }
        wait_for_settlement(&state, &mut local_rx, engine.cancel_grace).await;
    }
    drop(local_rx);

    // Anything still unsettled (a node that ignored cancellation) is abandoned as cancelled.
    let now = Utc::now();
    for i in 0..count {
        if state.settled[i].get().is_none() {
            let node = &state.plan.nodes[i];
            let record = state.record(
                node,
                ExecutionStatus::Cancelled,
                None,
                Some("abandoned after the cancellation grace period".into()),
                None,
                now,
                0,
                false,
                None,
            );
            state.settle(i, Settled::Cancelled { record });
        }
    }

    // Outcome.
    let any_cancelled = state
        .settled
        .iter()
        .any(|s| matches!(s.get(), Some(Settled::Cancelled { .. })));
    let user_cancelled = cancel.is_cancelled() && any_cancelled;
    let failed = state.any_failed.load(Ordering::Acquire);
    run.status = if user_cancelled {
        RunStatus::Cancelled
    } else if failed {
        RunStatus::Failed
    } else {
        RunStatus::Completed
    };
    let mut first_error: Option<String> = None;
    for (i, node) in state.plan.nodes.iter().enumerate() {
        if let Some(Settled::Failed { error, .. }) = state.settled[i].get() {
            first_error = Some(format!("node {} failed: {error}", node.id));
            break;
        }
    }
    run.error = match run.status {
        RunStatus::Cancelled => Some("cancelled".to_owned()),
        RunStatus::Failed => first_error,
        _ => None,
    };
    run.finished_at = Some(Utc::now());
    tracing::info!(parent: &span, status = run.status.as_str(), "run finished");
    if let Some(sink) = &sink {
        sink.emit(EventKind::RunFinished {
            run: Arc::new(run.clone()),
        });
    }
    drop(sink);
    if let Some(dispatcher) = dispatcher {
        // Observers have handled every event once this returns.
        let _ = dispatcher.await;
    }
    // Take the run state back from the node tasks (they end right after settling their
    // last node), so records and results move into the outcome instead of being copied.
    let mut state = state;
    let mut tries = 0;
    let (plan, runs, settled) = loop {
        match Arc::try_unwrap(state) {
            Ok(owned) => break (owned.plan, owned.runs, SettledSlots::Owned(owned.settled)),
            // A node abandoned after cancellation still holds the state: copy what we need.
            Err(shared) if tries >= 64 => {
                break (
                    shared.plan.clone(),
                    shared.runs.clone(),
                    SettledSlots::Shared(shared),
                );
            }
            Err(shared) => {
                tries += 1;
                state = shared;
                tokio::task::yield_now().await;
            }
        }
    };
    let nodes = &plan.nodes;
    let mut executions = Vec::with_capacity(count);
    let mut results = HashMap::with_capacity(count);
    let mut exports = BTreeMap::new();
    let mut workflow = workflow;
    for (i, slot) in settled.into_iter().enumerate() {
        let node = &nodes[i];
        let Some(settled) = slot else { continue };
        let record = match settled {
            Settled::Completed { result, record } => {
                if node.is_run_output {
                    let items = result
                        .selected()
                        .map(|g| g.items.iter().map(OutputItem::to_item).collect())
                        .unwrap_or_default();
                    exports.insert(node.id.to_string(), items);
                }
                if let Some(wf_node) = workflow
                    .nodes
                    .get_mut(node.wf_index as usize)
                    .filter(|_| !node.transient)
                {
                    wf_node.result = Some((*result).clone());
                }
                results.insert(node.id.clone(), result);
                record
            }
            Settled::Failed { record, .. }
            | Settled::Skipped { record, .. }
            | Settled::Cancelled { record } => record,
        };
        executions.push(Arc::try_unwrap(record).unwrap_or_else(|shared| (*shared).clone()));
    }
    // Hand the configs and untouched previous results back to the document.
    super::plan::restore_documents(&plan, &mut workflow, runs);
    Ok(RunOutcome {
        run,
        executions,
        workflow,
        results,
        exports,
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
                deadline = Some(tokio::time::Instant::now() + grace + std::time::Duration::from_millis(50));
            }
            _ = sleep => return,
        }
    }
}

/// Hands events to observers and the stream in batches, in order, until `RunFinished`.
async fn dispatch_events(
    run_id: Arc<str>,
    mut rx: mpsc::UnboundedReceiver<(DateTime<Utc>, EventKind)>,
    observers: Vec<Arc<dyn crate::event::Observer>>,
    stream: Option<mpsc::UnboundedSender<RunEvent>>,
) {
    let mut seq = 0u64;
    let mut buf = Vec::with_capacity(256);
    let mut batch: Vec<RunEvent> = Vec::with_capacity(256);
    loop {
        if rx.recv_many(&mut buf, 4096).await == 0 {
            return;
        }
        let mut finished = false;
        for (at, kind) in buf.drain(..) {
            if finished {
                break;
            }
            finished = matches!(kind, EventKind::RunFinished { .. });
            batch.push(RunEvent {
                run_id: run_id.clone(),
                seq,
                at,
                kind,
            });
            seq += 1;
        }
        for observer in &observers {
            if let Err(panic) = AssertUnwindSafe(observer.on_events(&batch))
                .catch_unwind()
                .await
            {
                tracing::error!(run_id = %run_id, panic = %panic_message(&*panic), "an observer panicked; its batch is lost, the others go on");
            }
        }
        match &stream {
            Some(tx) => {
                for event in batch.drain(..) {
                    let _ = tx.send(event);
                }
            }
            None => batch.clear(),
        }
        if finished {
            return;
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
    fn spawn(self: &Arc<Self>, idx: u32) {
        let state = self.clone();
        match &self.spawner {
            // Spawned as it is: tokio allocates the task, no second box for the future.
            Spawner::Tokio => {
                tokio::spawn(async move { state.drive(idx).await });
            }
            Spawner::Local(tx) => {
                let _ = tx.send(async move { state.drive(idx).await }.boxed());
            }
        }
    }

    /// Settles `idx`, then keeps going with one newly ready dependent on this task and hands
    /// the others to the spawner: a lone ready node never pays a cross-thread hop.
    async fn drive(self: Arc<Self>, mut idx: u32) {
        loop {
            // Whatever goes wrong while settling a node (a panicking cache or a bug) fails that
            // node; it never leaves the run waiting for a node that will not settle.
            if let Err(panic) = AssertUnwindSafe(self.process(idx as usize))
                .catch_unwind()
                .await
            {
                self.settle_after_panic(idx as usize, &panic_message(&*panic));
            }
            let next = self.release_dependents(idx as usize);
            // A long chain of instant nodes must not hold a worker thread forever.
            tokio::task::consume_budget().await;
            let Some(next) = next else { return };
            idx = next;
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
        let record = self.record(
            node,
            ExecutionStatus::Failed,
            None,
            Some(error.clone()),
            None,
            Utc::now(),
            0,
            false,
            None,
        );
        self.settle(
            idx,
            Settled::Failed {
                error: Arc::from(error),
                kind: ErrorKind::Internal,
                record,
            },
        );
    }

    /// Counts `idx` as settled for each dependent; the first dependent that becomes ready is
    /// returned (to continue on this task), the others are spawned.
    fn release_dependents(self: &Arc<Self>, idx: usize) -> Option<u32> {
        let mut next = None;
        for &d in self.plan.dependents_of(idx) {
            if self.remaining[d as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                match next {
                    None => next = Some(d),
                    Some(_) => self.spawn(d),
                }
            }
        }
        next
    }

    fn emit(&self, kind: EventKind) {
        if let Some(events) = &self.events {
            events.emit(kind);
        }
    }

    /// Records how a node settled (first writer wins) and emits the matching event.
    fn settle(&self, idx: usize, settled: Settled) {
        let node = &self.plan.nodes[idx];
        let event = self.events.as_ref().map(|_| match &settled {
            Settled::Completed { result, record } => EventKind::NodeCompleted {
                node_id: node.id.clone(),
                source: if record.cached {
                    self.runs[idx]
                        .preset
                        .as_ref()
                        .map_or(ResultSource::Cached, |(_, s)| *s)
                } else {
                    ResultSource::Executed
                },
                result: result.clone(),
                record: record.clone(),
            },
            Settled::Failed {
                error,
                kind,
                record,
            } => EventKind::NodeFailed {
                node_id: node.id.clone(),
                error: error.clone(),
                kind: *kind,
                attempt: record.attempts,
                will_retry: false,
                record: Some(record.clone()),
            },
            Settled::Skipped { reason, record } => EventKind::NodeSkipped {
                node_id: node.id.clone(),
                reason: reason.clone(),
                record: record.clone(),
            },
            Settled::Cancelled { record } => EventKind::NodeCancelled {
                node_id: node.id.clone(),
                record: record.clone(),
            },
        });
        let at = match &settled {
            Settled::Completed { record, .. }
            | Settled::Failed { record, .. }
            | Settled::Skipped { record, .. }
            | Settled::Cancelled { record } => record.finished_at,
        };
        if self.settled[idx].set(settled).is_ok() {
            if let (Some(event), Some(events)) = (event, &self.events) {
                // The event happened when the record says the node finished.
                events.emit_at(at.unwrap_or_else(Utc::now), event);
            }
            if self.settled_count.fetch_add(1, Ordering::AcqRel) + 1 == self.plan.nodes.len() {
                self.done.notify_one();
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        node: &PlanNode,
        status: ExecutionStatus,
        output: Option<&Arc<NodeResult>>,
        error: Option<String>,
        input: Option<&Arc<Inputs>>,
        started_at: DateTime<Utc>,
        attempts: u32,
        cached: bool,
        duration_ms: Option<u64>,
    ) -> Arc<NodeExecution> {
        let finished_at = Utc::now();
        Arc::new(NodeExecution {
            run_id: self.run_id.clone(),
            node_id: node.id.clone(),
            node_type: node.node_type.clone(),
            label: node.label.clone(),
            status,
            input: input.map(|inputs| InputSnapshot::of(inputs.clone())),
            output: output.cloned(),
            error,
            cached,
            started_at: Some(started_at),
            finished_at: Some(finished_at),
            duration_ms,
            attempts,
        })
    }

    fn resolve(&self, node: &PlanNode) -> Resolution {
        let mut slots = Vec::with_capacity(node.slots.len());
        let mut not_taken: Option<Arc<str>> = None;
        let mut required_missing = false;
        let mut edges = 0usize;
        let mut delivered = 0usize;
        for slot in &node.slots {
            let mut values = Vec::with_capacity(slot.sources.len());
            for (src, handle) in &slot.sources {
                edges += 1;
                let upstream = &self.plan.nodes[*src as usize];
                match self.settled[*src as usize].get() {
                    Some(Settled::Completed { result, .. }) => {
                        match selected_item(result, handle) {
                            Some(item) => values.push(item.to_item()),
                            None => not_taken = Some(upstream.id.clone()),
                        }
                    }
                    Some(Settled::Failed { error, .. }) => {
                        return Resolution::Skip(SkipReason::UpstreamFailed {
                            node_id: upstream.id.clone(),
                            error: error.clone(),
                        });
                    }
                    Some(Settled::Skipped {
                        reason: reason @ SkipReason::UpstreamFailed { .. },
                        ..
                    }) => {
                        return Resolution::Skip(reason.clone());
                    }
                    Some(Settled::Skipped {
                        reason: SkipReason::NotTaken { node_id },
                        ..
                    }) => {
                        not_taken = Some(node_id.clone());
                    }
                    Some(Settled::Cancelled { .. }) | None => return Resolution::Cancel,
                }
            }
            delivered += values.len();
            if slot.required && values.is_empty() {
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
        Resolution::Ready(Inputs::new(slots))
    }

    /// Settles one node: preset, skip, cancel, cache hit, or execution with retries.
    async fn process(self: &Arc<Self>, idx: usize) {
        let node = &self.plan.nodes[idx];
        let run = &self.runs[idx];
        let started_at = Utc::now();
        if let Some((result, _)) = &run.preset {
            let record = self.record(
                node,
                ExecutionStatus::Completed,
                Some(result),
                None,
                None,
                started_at,
                0,
                true,
                Some(0),
            );
            self.settle(
                idx,
                Settled::Completed {
                    result: result.clone(),
                    record,
                },
            );
            return;
        }
        if self.cancel.is_cancelled() {
            self.cancel_unstarted(idx, started_at);
            return;
        }
        let inputs = match self.resolve(node) {
            // Shared with the records' input snapshots.
            Resolution::Ready(inputs) => Arc::new(inputs),
            Resolution::Skip(reason) => {
                let record = self.record(
                    node,
                    ExecutionStatus::Skipped,
                    None,
                    Some(reason.to_string()),
                    None,
                    started_at,
                    0,
                    false,
                    None,
                );
                self.settle(idx, Settled::Skipped { reason, record });
                return;
            }
            Resolution::Cancel => {
                self.cancel_unstarted(idx, started_at);
                return;
            }
        };
        // Cache.
        // Forced nodes skip the lookup but still store what they produce.
        let cache = self.engine.cache.as_ref().filter(|_| node.cacheable);
        let key = cache.map(|_| super::key::cache_key(node.key_prefix, run, &inputs));
        if let (Some(cache), Some(key), false) = (cache, key.as_ref(), run.force) {
            match cache.get(key).await {
                Ok(Some(generations)) => {
                    let result = merge_cached(node, run, &generations);
                    let record = self.record(
                        node,
                        ExecutionStatus::Completed,
                        Some(&result),
                        None,
                        Some(&inputs),
                        started_at,
                        0,
                        true,
                        Some(0),
                    );
                    self.settle(idx, Settled::Completed { result, record });
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
            .execute_with_retries(node, run, &inputs, &span, started_at)
            .await;
        match outcome {
            Attempted::Done {
                generations,
                attempts,
                duration_ms,
                started_at,
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
                    && let Err(e) = cache.put(key, cached).await
                {
                    tracing::warn!(parent: &span, error = %e, "result cache store failed");
                }
                let record = self.record(
                    node,
                    ExecutionStatus::Completed,
                    Some(&result),
                    None,
                    Some(&inputs),
                    started_at,
                    attempts,
                    false,
                    Some(duration_ms),
                );
                self.settle(idx, Settled::Completed { result, record });
            }
            Attempted::Failed {
                error,
                attempts,
                duration_ms,
                started_at,
            } => {
                if node.on_error == OnError::Continue {
                    let handle = node
                        .handles
                        .iter()
                        .find(|h| {
                            h.is_output
                                && (h.template_handle_id.as_deref() == Some("error")
                                    || h.label.eq_ignore_ascii_case("error"))
                        })
                        .map_or_else(|| Arc::from("error"), |h| h.id.clone());
                    let generation = Generation {
                        items: vec![Item::text(error.message()).on(handle)],
                    };
                    let result = Arc::new(merge(node, run, vec![generation]));
                    let record = self.record(
                        node,
                        ExecutionStatus::Completed,
                        Some(&result),
                        Some(error.to_string()),
                        Some(&inputs),
                        started_at,
                        attempts,
                        false,
                        Some(duration_ms),
                    );
                    self.settle(idx, Settled::Completed { result, record });
                    return;
                }
                self.any_failed.store(true, Ordering::Release);
                let message: Arc<str> = Arc::from(error.to_string());
                tracing::warn!(parent: &span, error = %message, "node failed");
                let record = self.record(
                    node,
                    ExecutionStatus::Failed,
                    None,
                    Some(message.to_string()),
                    Some(&inputs),
                    started_at,
                    attempts,
                    false,
                    Some(duration_ms),
                );
                self.settle(
                    idx,
                    Settled::Failed {
                        error: message,
                        kind: error.kind(),
                        record,
                    },
                );
                if self.fail_fast
                    && !self.cancel.is_cancelled()
                    && self.failed_fast.set(node.id.clone()).is_ok()
                {
                    self.cancel.cancel();
                }
            }
            Attempted::Cancelled {
                attempts,
                started_at,
            } => {
                let reason = self.stop_reason();
                let record = self.record(
                    node,
                    ExecutionStatus::Cancelled,
                    None,
                    Some(reason),
                    Some(&inputs),
                    started_at,
                    attempts,
                    false,
                    None,
                );
                self.settle(idx, Settled::Cancelled { record });
            }
        }
    }

    /// Settles a node that never started as cancelled, with the reason the run stopped.
    fn cancel_unstarted(&self, idx: usize, started_at: DateTime<Utc>) {
        let node = &self.plan.nodes[idx];
        let reason = self.stop_reason();
        let record = self.record(
            node,
            ExecutionStatus::Cancelled,
            None,
            Some(reason),
            None,
            started_at,
            0,
            false,
            None,
        );
        self.settle(idx, Settled::Cancelled { record });
    }

    fn stop_reason(&self) -> String {
        match self.failed_fast.get() {
            Some(node) => format!("run stopped after node {node} failed (fail-fast)"),
            None => "run cancelled".to_owned(),
        }
    }

    async fn execute_with_retries(
        self: &Arc<Self>,
        node: &PlanNode,
        run: &NodeRun,
        inputs: &Inputs,
        span: &tracing::Span,
        first_start: DateTime<Utc>,
    ) -> Attempted {
        let mut attempt = 0u32;
        let first_clock = Instant::now();
        loop {
            attempt += 1;
            // Concurrency: the node type's limit first, then the global one, so a node waiting
            // for its type never holds a global slot.
            let _type_permit = match &node.type_limit {
                Some(limit) => tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Attempted::Cancelled { attempts: attempt - 1, started_at: first_start },
                    p = limit.acquire(self.run_key) => Some(p),
                },
                None => None,
            };
            let _global_permit = match &self.engine.global_limit {
                Some(limit) => tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Attempted::Cancelled { attempts: attempt - 1, started_at: first_start },
                    p = limit.acquire(self.run_key) => Some(p),
                },
                None => None,
            };
            // A cancel that arrived while waiting must not start a (possibly paid) execution.
            if self.cancel.is_cancelled() {
                return Attempted::Cancelled {
                    attempts: attempt - 1,
                    started_at: first_start,
                };
            }
            let started_at = first_start;
            let clock = first_clock;
            self.emit(EventKind::NodeStarted {
                node_id: node.id.clone(),
                attempt,
            });
            let ctx = NodeContext {
                run_id: self.run_id.clone(),
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                config: run.config.clone(),
                previous_result: run.previous.clone(),
                run_input: run.run_input.clone(),
                cancel: self.cancel.clone(),
                assets: self.engine.assets.clone(),
                events: self.events.clone(),
                span: span.clone(),
                attempt,
            };
            let result = self.attempt(node, &ctx, inputs, span).await;
            let duration_ms = clock.elapsed().as_millis() as u64;
            match result {
                AttemptResult::Ok(outputs) => match map_outputs(node, outputs) {
                    Ok(generations) => {
                        return Attempted::Done {
                            generations,
                            attempts: attempt,
                            duration_ms,
                            started_at,
                        };
                    }
                    Err(error) => {
                        return Attempted::Failed {
                            error,
                            attempts: attempt,
                            duration_ms,
                            started_at,
                        };
                    }
                },
                AttemptResult::Cancelled => {
                    return Attempted::Cancelled {
                        attempts: attempt,
                        started_at,
                    };
                }
                AttemptResult::Err(error) => {
                    let retry = error.is_retryable()
                        && attempt < node.retry.max_attempts
                        && !self.cancel.is_cancelled();
                    if !retry {
                        return Attempted::Failed {
                            error,
                            attempts: attempt,
                            duration_ms,
                            started_at,
                        };
                    }
                    let delay = node
                        .retry
                        .backoff(attempt)
                        .max(error.retry_after().unwrap_or_default());
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
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.cancel.cancelled() => return Attempted::Cancelled { attempts: attempt, started_at: first_start },
                    }
                }
            }
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
                Some(limit) => match tokio::time::timeout(limit, dispatch).await {
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
                match tokio::time::timeout(self.engine.cancel_grace, &mut guarded).await {
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
        duration_ms: u64,
        started_at: DateTime<Utc>,
    },
    Failed {
        error: NodeError,
        attempts: u32,
        duration_ms: u64,
        started_at: DateTime<Utc>,
    },
    Cancelled {
        attempts: u32,
        started_at: DateTime<Utc>,
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
            let handle = node
                .handles
                .iter()
                .find(|h| h.template_handle_id.as_deref() == Some(&*key) || *h.id == *key)
                .or_else(|| {
                    node.handles
                        .iter()
                        .find(|h| h.label.eq_ignore_ascii_case(&key))
                })
                .ok_or_else(|| {
                    NodeError::internal(format!("node produced a value on unknown handle `{key}`"))
                })?;
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
            // The result already holds these generations: keep it, and the user's selection.
            run.previous.clone().unwrap_or_default()
        }
        _ => Arc::new(merge(node, run, generations.clone())),
    }
}

/// The item an upstream result holds for `handle` in its selected generation. Items the
/// engine produced name their handle by the plan's own `Arc`, so a pointer comparison finds
/// them; pinned, resumed and cached results fall back to comparing the text.
fn selected_item<'a>(result: &'a NodeResult, handle: &Arc<str>) -> Option<&'a OutputItem> {
    let generation = result.selected()?;
    generation
        .items
        .iter()
        .find(|i| Arc::ptr_eq(&i.output_handle_id, handle))
        .or_else(|| generation.item(handle))
}

/// How each node settled, moved out of the run state or copied from a shared one.
enum SettledSlots {
    Owned(Vec<OnceLock<Settled>>),
    Shared(Arc<RunState>),
}

impl SettledSlots {
    fn into_iter(self) -> Box<dyn Iterator<Item = Option<Settled>>> {
        match self {
            SettledSlots::Owned(slots) => Box::new(slots.into_iter().map(OnceLock::into_inner)),
            SettledSlots::Shared(state) => {
                let copies: Vec<Option<Settled>> = state
                    .settled
                    .iter()
                    .map(|s| s.get().map(Settled::duplicate))
                    .collect();
                Box::new(copies.into_iter())
            }
        }
    }
}

impl Settled {
    fn duplicate(&self) -> Settled {
        match self {
            Settled::Completed { result, record } => Settled::Completed {
                result: result.clone(),
                record: record.clone(),
            },
            Settled::Failed {
                error,
                kind,
                record,
            } => Settled::Failed {
                error: error.clone(),
                kind: *kind,
                record: record.clone(),
            },
            Settled::Skipped { reason, record } => Settled::Skipped {
                reason: reason.clone(),
                record: record.clone(),
            },
            Settled::Cancelled { record } => Settled::Cancelled {
                record: record.clone(),
            },
        }
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
