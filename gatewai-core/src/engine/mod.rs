//! The engine: an async DAG scheduler over [`Node`]s with run tracking, events, a result cache,
//! partial runs, pinned results, cancellation, retries and timeouts.
//!
//! ## How a run goes
//! [`Engine::start`] fingerprints the document (nodes, handles, edges, configs, the run target
//! and which nodes the run brings results for: 128 bits of keyed BLAKE3, the key drawn at random
//! per engine; a large document's two halves on two threads). A document seen
//! before reuses its kept plan; a new one is validated and compiled into a plan of flat arrays
//! (nodes in topological order, input sources as node indices, dependents in one CSR array,
//! in-degree counters, and each node's part of its cache key), which the engine keeps
//! ([`EngineBuilder::plan_cache`]). What the run itself brings — configs and previous results
//! moved out of the document, pinned and resumed results, run inputs — is gathered per run
//! and checked on every run. Each ready node is then settled by a drive loop: resolve inputs,
//! look the cache up, execute with retries and timeouts (directly, or through a host's
//! [`NodeDispatcher`]), settle, then release dependents; one newly ready dependent continues
//! on the same task, the others go to the run's ready queue. A run has at most one free drive
//! loop per worker thread, each taking queued nodes in turn, so no task is spawned per node; a
//! node that has to wait (an external call, a concurrency slot) keeps its loop, which stops
//! counting as free, and another loop is started for the queue meanwhile: waiting nodes never
//! hold back ready ones (a node that blocks its thread, e.g. in `block_in_place`, instead of
//! waiting does: use `spawn_blocking`). A node's settlement is compact (how it ended,
//! two monotonic clock readings); its [`NodeExecution`] record and its events are built from
//! it off the node's task. Nodes queue small messages (node index, attempt, clock reading; a
//! settled node's inputs move with its message) on the run's event queue (a vector behind a
//! lock: one lock per message, and the dispatcher takes all queued at once); the run's dispatcher task builds
//! each record, gathers the outcome (records, results, exports) as nodes settle, and for an
//! observed run turns the messages into [`RunEvent`]s and hands batches to the observers, so
//! slow observers never stall node execution. At the run's end the results move into the
//! document in one pass with the configs (a large run's halves on two threads). A [`NodeContext`] is a pointer to the run and the
//! node's index: making one copies nothing.
//!
//! ## Where the time goes (measured: see the README)
//! Per node, beyond the node itself: the resolved inputs and the node's outputs (a few small
//! vectors and the shared result), the node's boxed future, the events and the records (each
//! record built once, by the dispatcher, and shared by the events and the outcome; records
//! share results and inputs through `Arc`s), and the allocator under all of it. Work left for
//! the run's end touches each node's data once more, after other cores wrote it: it is kept
//! to moving results into the document (no shared counter touched per node). A new document
//! also pays validation and planning (about 1–2 µs per node), a kept one only its fingerprint.

use crate::assets::{AssetStore, MemoryAssetStore};
use crate::cache::{CacheKey, ResultCache};
use crate::error::{Error, NodeError, Result, ValidationError, ValidationErrors};
use crate::event::{Observer, RunEvent};
use crate::model::{Item, NodeExecution, NodeResult, RunRecord, TriggerType, Workflow};
use crate::node::{Inputs, Node, NodeContext, Outputs, RunInput};
use crate::registry::NodeRegistry;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod key;
mod limiter;
mod plan;
mod run;

/// How failed attempts are retried: only errors whose kind is retryable, with exponential
/// backoff and jitter; a node error's `retry_after` is honoured as a minimum (one longer than
/// `max_backoff` ends the retries).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt.
    pub initial_backoff: Duration,
    /// Factor applied to the delay after each attempt.
    pub multiplier: f64,
    /// Upper bound of a delay.
    pub max_backoff: Duration,
    /// Random spread of a delay, as a fraction (0.2 = ±20%).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            multiplier: 2.0,
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delay before attempt `attempt + 1` after attempt `attempt` (from 1) failed: the
    /// exponential delay with jitter, never above `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.max_backoff.as_secs_f64();
        let base = self.initial_backoff.as_secs_f64()
            * self
                .multiplier
                .max(1.0)
                .powi(attempt.saturating_sub(1).min(1024) as i32);
        let spread = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 + spread * (fastrand::f64() * 2.0 - 1.0);
        let delay = base * factor;
        let delay = if delay.is_finite() {
            delay.min(cap)
        } else {
            cap
        };
        Duration::try_from_secs_f64(delay).unwrap_or(self.max_backoff)
    }

    /// The delay before the attempt after attempt `attempt` failed with an error that asks
    /// to wait `retry_after` (a provider's `Retry-After`): at least that, else
    /// [`RetryPolicy::backoff`]. `None` when the wait asked for is longer than
    /// `max_backoff`: the attempt's error stands rather than holding the run that long.
    pub fn delay_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        match retry_after {
            Some(wait) if wait > self.max_backoff => None,
            Some(wait) => Some(self.backoff(attempt).max(wait)),
            None => Some(self.backoff(attempt)),
        }
    }
}

/// Per-node-type settings that override the engine's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodePolicy {
    /// Timeout of one attempt.
    pub timeout: Option<Duration>,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// At most this many nodes of the type run at once, across all runs of the engine.
    pub max_concurrency: Option<usize>,
}

/// Which executor runs node futures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutorKind {
    /// Nodes run on the runtime's worker threads, at most one free drive loop per worker
    /// taking ready nodes from the run's queue (a node that waits gets its own task); a lone
    /// ready node continues on the thread that made it ready (the default).
    #[default]
    MultiThreaded,
    /// Every node future of a run is polled by one task: concurrency without parallelism of
    /// CPU work, no task spawned per node (useful on a current-thread runtime, and as a second
    /// executor every engine test runs against).
    SingleThreaded,
}

/// Where a node's execution is dispatched: the seam for running nodes elsewhere (a distributed
/// executor) without touching the scheduler. The default calls `node.execute` in-process.
#[async_trait]
pub trait NodeDispatcher: Send + Sync + 'static {
    /// Executes one attempt of a node.
    async fn dispatch(
        &self,
        node: &Arc<dyn Node>,
        ctx: &NodeContext,
        inputs: &Inputs,
    ) -> std::result::Result<Outputs, NodeError>;
}

/// Runs nodes in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalDispatcher;

#[async_trait]
impl NodeDispatcher for LocalDispatcher {
    async fn dispatch(
        &self,
        node: &Arc<dyn Node>,
        ctx: &NodeContext,
        inputs: &Inputs,
    ) -> std::result::Result<Outputs, NodeError> {
        node.execute(ctx, inputs).await
    }
}

/// What a run executes.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RunTarget {
    /// Every node (the canvas's "Run").
    #[default]
    All,
    /// These nodes plus what they need upstream ("Run selected").
    Nodes(Vec<String>),
}

/// A result an earlier, interrupted attempt of a run recorded for a node
/// ([`RunOptions::resumed`]).
///
/// With its [`cache_key`](Self::cache_key) (what the node ran with, as the engine hashed it
/// then), the resumed run first settles the node's upstream, hashes what the node would run
/// with now and reuses the result only if the key is the same; a node whose config, input
/// values or type version changed since (the canvas was edited before the resume) executes
/// again, as does whatever its new result feeds. Without a key (a record made by an engine
/// that did not hash the node) the result is reused as it is and the node's upstream is not
/// run for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Resumed {
    /// The recorded result.
    pub result: NodeResult,
    /// The key the node ran with, when it was recorded.
    pub cache_key: Option<CacheKey>,
    /// The error the node turned into its output when it continued on error (its record's
    /// error). The resumed node completes with it as the interrupted attempt did: its record
    /// keeps the error, and an output node is left out of the run's exports, as in a run
    /// that was never interrupted. Such a result is reused only while the node continues on
    /// error: a node whose policy is now `Fail` runs again.
    pub error: Option<String>,
}

impl Resumed {
    /// A recorded result and the key it was recorded with.
    pub fn keyed(result: NodeResult, cache_key: CacheKey) -> Self {
        Resumed {
            result,
            cache_key: Some(cache_key),
            error: None,
        }
    }
}

/// A result recorded without a key: reused as it is.
impl From<NodeResult> for Resumed {
    fn from(result: NodeResult) -> Self {
        Resumed {
            result,
            cache_key: None,
            error: None,
        }
    }
}

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// What to execute.
    pub target: RunTarget,
    /// What started the run.
    pub trigger: TriggerType,
    /// The run id (a fresh UUID when `None`).
    pub run_id: Option<String>,
    /// The stored workflow's id, which the run's record carries and a store files the run
    /// under: set by the host that loaded the document for its user. The document's own
    /// `id` is never used for this (it is untrusted input: a canvas shared by another user
    /// carries that user's id); without it the run is an ad-hoc run.
    pub workflow_id: Option<String>,
    /// Results a client computed itself, by node id: used as they are, the node is not run
    /// (ignored for terminal nodes, which must run in the engine).
    pub pinned: HashMap<String, NodeResult>,
    /// Results recorded by an earlier, interrupted attempt of this run, by node id: reused and
    /// reported as resumed (a result recorded with its key only while the node's key is
    /// unchanged; see [`Resumed`]).
    pub resumed: HashMap<String, Resumed>,
    /// Values for source nodes, by node id (running a workflow as a function).
    pub inputs: HashMap<String, RunInput>,
    /// Nodes that execute even when the cache has their result (by node id; an id that is
    /// not a node of the document is an error).
    pub force: HashSet<String>,
    /// Stop the whole run at the first failure.
    pub fail_fast: bool,
    /// Deliver the run's events on [`RunHandle::events`].
    pub stream_events: bool,
    /// The asset store this run's nodes read and write, instead of the engine's: a host
    /// running documents of several users scopes each run to its user's assets (a store that
    /// refuses another user's asset ids, and files new assets under the user).
    pub assets: Option<Arc<dyn AssetStore>>,
    /// Partitions the result cache: a run reuses cached results only of runs of the same
    /// scope (and its results serve only those). A host running documents of several users
    /// sets it to the user (or tenant), so that a node another user's run cached, a File node
    /// naming that user's asset say, is never a hit for this one. Part of every cache key
    /// (so a run resumed with its recorded keys needs the same scope: the run's record keeps
    /// it, [`RunRecord::cache_scope`]). `None`: one cache for all runs. Like an id, a scope is
    /// non-empty and holds no control character.
    pub cache_scope: Option<String>,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run record.
    pub run: RunRecord,
    /// One record per node the run settled, in topological order: the very records the
    /// run's events carried to observers (built once, shared).
    pub executions: Vec<Arc<NodeExecution>>,
    /// The workflow with the results of completed, non-transient nodes written back.
    pub workflow: Workflow,
    /// Every completed node's result in this run (transient nodes included), by node id.
    pub results: HashMap<Arc<str>, Arc<NodeResult>>,
    /// The values of the run's output nodes (Export), by node id. An output node that failed
    /// and continued on error exports nothing (its record has the error).
    pub exports: BTreeMap<String, Vec<Item>>,
    /// What observers reported they could not handle during the run ([`Error::Observer`]),
    /// in order. Empty when every observer handled every event: with a store's run
    /// recorder, when the run is stored whole.
    pub observer_errors: Vec<Error>,
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    registry: NodeRegistry,
    max_concurrency: Option<usize>,
    policies: HashMap<String, NodePolicy>,
    default_timeout: Option<Duration>,
    retry: RetryPolicy,
    observers: Vec<Arc<dyn Observer>>,
    assets: Option<Arc<dyn AssetStore>>,
    cache: Option<Arc<dyn ResultCache>>,
    no_cache: bool,
    dispatcher: Option<Arc<dyn NodeDispatcher>>,
    executor: ExecutorKind,
    cancel_grace: Duration,
    plan_cache: usize,
}

/// Runs workflows. Cheap to clone; clones share limits, observers, cache and assets.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

pub(crate) struct EngineInner {
    pub(crate) registry: NodeRegistry,
    pub(crate) global_limit: Option<Arc<limiter::FairLimiter>>,
    pub(crate) type_limits: HashMap<String, Arc<limiter::FairLimiter>>,
    pub(crate) next_run_key: std::sync::atomic::AtomicU64,
    pub(crate) policies: HashMap<String, NodePolicy>,
    pub(crate) default_timeout: Option<Duration>,
    pub(crate) retry: RetryPolicy,
    pub(crate) observers: Vec<Arc<dyn Observer>>,
    pub(crate) assets: Arc<dyn AssetStore>,
    pub(crate) cache: Option<Arc<dyn ResultCache>>,
    /// A host's dispatcher; `None` calls nodes in-process.
    pub(crate) dispatcher: Option<Arc<dyn NodeDispatcher>>,
    pub(crate) executor: ExecutorKind,
    pub(crate) cancel_grace: Duration,
    pub(crate) plans: plan::PlanCache,
    /// Whether an observer wants every node record to carry its cache key.
    pub(crate) records_keys: bool,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder {
            registry: NodeRegistry::new(),
            max_concurrency: None,
            policies: HashMap::new(),
            default_timeout: None,
            retry: RetryPolicy::none(),
            observers: Vec::new(),
            assets: None,
            cache: None,
            no_cache: false,
            dispatcher: None,
            executor: ExecutorKind::default(),
            cancel_grace: Duration::from_secs(5),
            plan_cache: 16,
        }
    }
}

impl EngineBuilder {
    /// The node types the engine runs.
    pub fn registry(mut self, registry: NodeRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// At most `n` nodes execute at once across all runs.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// At most `n` nodes of `node_type` execute at once across all runs.
    pub fn node_type_limit(mut self, node_type: &str, n: usize) -> Self {
        self.policies
            .entry(node_type.to_owned())
            .or_default()
            .max_concurrency = Some(n.max(1));
        self
    }

    /// Settings for one node type (timeout, retries, concurrency).
    pub fn node_policy(mut self, node_type: &str, mut policy: NodePolicy) -> Self {
        if let Some(earlier) = self.policies.get(node_type) {
            policy.max_concurrency = policy.max_concurrency.or(earlier.max_concurrency);
        }
        self.policies.insert(node_type.to_owned(), policy);
        self
    }

    /// Timeout of one attempt of any node without its own.
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Retry policy of nodes without their own (the default is no retry).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Adds an observer of every run's events.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observers.push(observer);
        self
    }

    /// The asset store nodes read and write media through (in memory by default).
    pub fn assets(mut self, assets: Arc<dyn AssetStore>) -> Self {
        self.assets = Some(assets);
        self
    }

    /// The result cache. By default an in-memory cache of the last 100,000 node outputs, so
    /// that unchanged upstream nodes of "Run selected" are not executed again; a host keeps
    /// hits across restarts with a store-backed cache (`gatewai-store`).
    pub fn cache(mut self, cache: Arc<dyn ResultCache>) -> Self {
        self.cache = Some(cache);
        self.no_cache = false;
        self
    }

    /// No result cache: every node executes on every run.
    pub fn no_cache(mut self) -> Self {
        self.cache = None;
        self.no_cache = true;
        self
    }

    /// Where node executions are dispatched (in-process by default).
    pub fn dispatcher(mut self, dispatcher: Arc<dyn NodeDispatcher>) -> Self {
        self.dispatcher = Some(dispatcher);
        self
    }

    /// Which executor polls node futures.
    pub fn executor(mut self, executor: ExecutorKind) -> Self {
        self.executor = executor;
        self
    }

    /// How long a cancelled run waits for running nodes to notice before abandoning them.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// How many compiled plans the engine keeps (16 by default; 0 keeps none). A run of a
    /// document whose structure, configs, run target and pinned/resumed nodes match a kept
    /// plan skips validation and planning; a plan costs memory in proportion to its document.
    pub fn plan_cache(mut self, plans: usize) -> Self {
        self.plan_cache = plans;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<Engine> {
        let type_limits = self
            .policies
            .iter()
            .filter_map(|(t, p)| {
                p.max_concurrency
                    .map(|n| (t.clone(), limiter::FairLimiter::new(n)))
            })
            .collect();
        Ok(Engine {
            inner: Arc::new(EngineInner {
                registry: self.registry,
                global_limit: self.max_concurrency.map(limiter::FairLimiter::new),
                next_run_key: std::sync::atomic::AtomicU64::new(0),
                type_limits,
                policies: self.policies,
                default_timeout: self.default_timeout,
                retry: self.retry,
                records_keys: self.observers.iter().any(|o| o.needs_cache_keys()),
                observers: self.observers,
                assets: self
                    .assets
                    .unwrap_or_else(|| Arc::new(MemoryAssetStore::new())),
                cache: match (self.cache, self.no_cache) {
                    (Some(cache), _) => Some(cache),
                    (None, true) => None,
                    (None, false) => Some(Arc::new(
                        crate::cache::MemoryResultCache::with_capacity(100_000),
                    )),
                },
                dispatcher: self.dispatcher,
                executor: self.executor,
                cancel_grace: self.cancel_grace,
                plans: plan::PlanCache::new(self.plan_cache),
            }),
        })
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The registered node types.
    pub fn registry(&self) -> &NodeRegistry {
        &self.inner.registry
    }

    /// The asset store.
    pub fn assets(&self) -> &Arc<dyn AssetStore> {
        &self.inner.assets
    }

    /// Validates and starts a run; must be called within a tokio runtime. An invalid workflow
    /// is an [`Error::Invalid`] listing every problem, and no node runs.
    pub fn start(&self, workflow: Workflow, options: RunOptions) -> Result<RunHandle> {
        let bad_ids: Vec<ValidationError> = [
            ("run_id", &options.run_id),
            ("workflow_id", &options.workflow_id),
            ("cache_scope", &options.cache_scope),
        ]
        .into_iter()
        .filter_map(|(option, id)| {
            let reason = crate::validate::id_problem(id.as_deref()?)?;
            Some(ValidationError::InvalidRunOption { option, reason })
        })
        .collect();
        // Every problem at once: the run's ids, the document's, then what the run brings.
        let mut workflow = workflow;
        let prepared = self
            .plan_for(&workflow, &options)
            .and_then(|plan| Ok((plan.prepare_run(&mut workflow, &options)?, plan)));
        let (runs, plan) = match prepared {
            Ok(prepared) if bad_ids.is_empty() => prepared,
            Ok(_) => return Err(Error::Invalid(ValidationErrors(bad_ids))),
            Err(Error::Invalid(ValidationErrors(problems))) => {
                let mut all = bad_ids;
                all.extend(problems);
                return Err(Error::Invalid(ValidationErrors(all)));
            }
            Err(e) => return Err(e),
        };
        let run_id: Arc<str> = Arc::from(
            options
                .run_id
                .clone()
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        );
        let cancel = CancellationToken::new();
        let (stream, events) = if options.stream_events {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let join = tokio::spawn(run::execute(run::RunSetup {
            engine: self.inner.clone(),
            workflow,
            plan,
            runs,
            options,
            run_id: run_id.clone(),
            cancel: cancel.clone(),
            stream,
        }));
        Ok(RunHandle {
            run_id,
            cancel,
            events,
            join,
        })
    }

    /// The compiled plan of a document: kept from an earlier run when the document's structure,
    /// configs, target and preset nodes are unchanged (no validation, no planning), or
    /// validated and compiled now.
    fn plan_for(&self, workflow: &Workflow, options: &RunOptions) -> Result<Arc<plan::Plan>> {
        let plans = &self.inner.plans;
        let key = plans
            .is_enabled()
            .then(|| plans.fingerprint(workflow, options));
        if let Some(plan) = key.and_then(|k| plans.get(k)) {
            return Ok(plan);
        }
        let built = crate::validate::validate(workflow, &self.inner.registry)
            .map_err(Error::Invalid)
            .and_then(|()| plan::Plan::build(&self.inner, workflow, options));
        let mut problems = match built {
            Ok(plan) => {
                let plan = Arc::new(plan);
                if let Some(key) = key {
                    plans.insert(key, plan.clone());
                }
                return Ok(plan);
            }
            Err(Error::Invalid(problems)) => problems,
            Err(e) => return Err(e),
        };
        // Every problem at once: what the run brings is checked too.
        let ids: crate::FastSet<&str> = workflow.nodes.iter().map(|n| n.id.as_str()).collect();
        problems
            .0
            .extend(plan::brought_problems(workflow, options, |id| {
                ids.contains(id)
            }));
        Err(Error::Invalid(problems))
    }

    /// Runs a workflow to the end.
    pub async fn run(&self, workflow: Workflow, options: RunOptions) -> Result<RunOutcome> {
        self.start(workflow, options)?.wait().await
    }
}

/// A started run: its id, cancellation, events, and its outcome.
pub struct RunHandle {
    pub(crate) run_id: Arc<str>,
    pub(crate) cancel: CancellationToken,
    pub(crate) events: Option<mpsc::UnboundedReceiver<RunEvent>>,
    pub(crate) join: tokio::task::JoinHandle<Result<RunOutcome>>,
}

impl RunHandle {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Cancels the run: queued nodes become CANCELLED, running nodes see the signal, and the
    /// run ends CANCELLED (nodes that ignore the signal are abandoned after the grace period).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// A token that cancels the run when cancelled.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The run's events, when the run was started with `stream_events` (taken once).
    pub fn events(&mut self) -> Option<mpsc::UnboundedReceiver<RunEvent>> {
        self.events.take()
    }

    /// Waits for the run to end.
    pub async fn wait(self) -> Result<RunOutcome> {
        match self.join.await {
            Ok(outcome) => outcome,
            Err(e) => Err(Error::Config(format!("run task failed: {e}"))),
        }
    }
}
