//! Behaviour of the engine through the public API, every test run against each executor.

mod common;

use async_trait::async_trait;
use gatewai_core::engine::{ExecutorKind, NodePolicy};
use gatewai_core::model::{HandleType, Node as WfNode, OnError};
use gatewai_core::{
    CachePolicy, DataType, Edge, Engine, EngineBuilder, ErrorKind, EventKind, ExecutionStatus,
    HandleTemplate, Inputs, Item, MemoryResultCache, Node, NodeContext, NodeError, NodeRegistry,
    NodeResult, NodeTemplate, Observer, Outputs, ResultMode, ResultSource, Resumed, RetryPolicy,
    RunEvent, RunOptions, RunStatus, RunTarget, TriggerType, ValidationError, Workflow,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EXECUTORS: [ExecutorKind; 2] = [ExecutorKind::MultiThreaded, ExecutorKind::SingleThreaded];

// ---------- test node types ----------

fn number_template(node_type: &str) -> NodeTemplate {
    NodeTemplate::new(node_type, node_type, "Test")
        .handle(HandleTemplate::input("in", "In", &[DataType::Number]).multiple())
        .handle(HandleTemplate::output("out", "Out", &[DataType::Number]))
}

/// Sums its inputs plus `config.add`; counts executions.
struct Sum {
    template: NodeTemplate,
    runs: Arc<AtomicUsize>,
}

impl Sum {
    fn new(runs: Arc<AtomicUsize>) -> Self {
        Sum {
            template: number_template("Sum"),
            runs,
        }
    }
}

#[async_trait]
impl Node for Sum {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let add = ctx
            .raw_config()
            .get("add")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0);
        let sum: f64 = inputs
            .all("in")
            .iter()
            .filter_map(Item::as_f64)
            .sum::<f64>()
            + add;
        Ok(Outputs::one("out", Item::number(sum)))
    }
}

/// Waits on a shared barrier; only finishes when all parties run concurrently.
struct BarrierNode {
    template: NodeTemplate,
    barrier: Arc<tokio::sync::Barrier>,
}

#[async_trait]
impl Node for BarrierNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, _ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.barrier.wait().await;
        Ok(Outputs::one("out", Item::number(1.0)))
    }
}

/// Fails its first `config.failures` attempts with a retryable (or not) error.
struct Flaky {
    template: NodeTemplate,
    attempts: Arc<AtomicU32>,
}

#[async_trait]
impl Node for Flaky {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let failures = ctx
            .raw_config()
            .get("failures")
            .and_then(|v| v.as_u64())
            .unwrap_or(0) as u32;
        let retryable = ctx
            .raw_config()
            .get("retryable")
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        if n <= failures {
            let kind = if retryable {
                ErrorKind::Unavailable
            } else {
                ErrorKind::InvalidInput
            };
            let error = NodeError::new(kind, format!("failure {n}"));
            return Err(
                match ctx
                    .raw_config()
                    .get("retry_after_ms")
                    .and_then(|v| v.as_u64())
                {
                    Some(ms) => error.with_retry_after(Duration::from_millis(ms)),
                    None => error,
                },
            );
        }
        Ok(Outputs::one("out", Item::number(n as f64)))
    }
}

/// Sleeps `config.ms`; honours cancellation unless `config.stubborn`.
struct Sleep {
    template: NodeTemplate,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Sleep {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }
    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let ms = ctx
            .raw_config()
            .get("ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(10);
        let stubborn = ctx
            .raw_config()
            .get("stubborn")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        let sleep = tokio::time::sleep(Duration::from_millis(ms));
        let result = if stubborn {
            sleep.await;
            Ok(Outputs::one("out", Item::number(ms as f64)))
        } else {
            tokio::select! {
                _ = sleep => Ok(Outputs::one("out", Item::number(ms as f64))),
                _ = ctx.cancelled() => Err(NodeError::cancelled()),
            }
        };
        self.active.fetch_sub(1, Ordering::SeqCst);
        result
    }
}

struct Panics {
    template: NodeTemplate,
}

#[async_trait]
impl Node for Panics {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, _ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        panic!("boom");
    }
}

/// Sends its input down `config.route` ("a" or "b") only.
struct Router {
    template: NodeTemplate,
}

#[async_trait]
impl Node for Router {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let route = ctx
            .raw_config()
            .get("route")
            .and_then(|v| v.as_str())
            .unwrap_or("a")
            .to_owned();
        let value = inputs.require("in")?.clone();
        Ok(Outputs::one(route, value))
    }
}

/// Appends a generation each run (like an LLM).
struct Appender {
    template: NodeTemplate,
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Appender {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn result_mode(&self) -> ResultMode {
        ResultMode::Append
    }
    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        let base: f64 = inputs.all("in").iter().filter_map(Item::as_f64).sum();
        Ok(Outputs::one("out", Item::number(base + n as f64 * 1000.0)))
    }
}

struct Export {
    template: NodeTemplate,
}

#[async_trait]
impl Node for Export {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn is_run_output(&self) -> bool {
        true
    }
    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        Ok(Outputs::one("in", inputs.require("in")?.clone()))
    }
}

/// Passes its inputs' sum on; counts how often validation checks its config, and rejects a
/// config with `"bad": true`.
struct Checked {
    template: NodeTemplate,
    checks: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Checked {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn check_config(&self, config: &serde_json::Value) -> Vec<(String, String)> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        if config.get("bad").and_then(|b| b.as_bool()) == Some(true) {
            vec![("bad".to_owned(), "must not be true".to_owned())]
        } else {
            Vec::new()
        }
    }
    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let sum: f64 = inputs.all("in").iter().filter_map(Item::as_f64).sum();
        Ok(Outputs::one("out", Item::number(sum + 1.0)))
    }
}

#[derive(Default)]
struct Counters {
    checks: Arc<AtomicUsize>,
    sum: Arc<AtomicUsize>,
    flaky: Arc<AtomicU32>,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    appends: Arc<AtomicUsize>,
}

fn registry(c: &Counters, barrier_parties: usize) -> NodeRegistry {
    let mut r = NodeRegistry::new();
    r.register(Sum::new(c.sum.clone())).unwrap();
    r.register(BarrierNode {
        template: number_template("Barrier"),
        barrier: Arc::new(tokio::sync::Barrier::new(barrier_parties.max(1))),
    })
    .unwrap();
    r.register(Flaky {
        template: number_template("Flaky").handle(HandleTemplate::output(
            "error",
            "Error",
            &[DataType::Text],
        )),
        attempts: c.flaky.clone(),
    })
    .unwrap();
    r.register(Sleep {
        template: number_template("Sleep"),
        active: c.active.clone(),
        peak: c.peak.clone(),
    })
    .unwrap();
    r.register(Panics {
        template: number_template("Panic"),
    })
    .unwrap();
    r.register(Router {
        template: NodeTemplate::new("Router", "Router", "Test")
            .handle(HandleTemplate::input("in", "In", &[DataType::Number]).required())
            .handle(HandleTemplate::output("a", "A", &[DataType::Number]))
            .handle(HandleTemplate::output("b", "B", &[DataType::Number])),
    })
    .unwrap();
    r.register(Appender {
        template: number_template("Appender"),
        runs: c.appends.clone(),
    })
    .unwrap();
    r.register(Checked {
        template: number_template("Checked"),
        checks: c.checks.clone(),
    })
    .unwrap();
    r.register(Export {
        template: NodeTemplate::new("Export", "Export", "Outputs")
            .terminal()
            .handle(
                HandleTemplate::input("in", "Input", &[DataType::Number, DataType::Text])
                    .required(),
            ),
    })
    .unwrap();
    r
}

fn engine(kind: ExecutorKind, c: &Counters, parties: usize) -> EngineBuilder {
    Engine::builder()
        .registry(registry(c, parties))
        .executor(kind)
}

/// What a store hands a resumed run: each completed node's recorded result, error and (when
/// `keyed`) cache key.
fn resumed_from(outcome: &gatewai_core::RunOutcome, keyed: bool) -> HashMap<String, Resumed> {
    outcome
        .executions
        .iter()
        .filter(|e| e.status == ExecutionStatus::Completed)
        .map(|e| {
            let resumed = Resumed {
                result: (**e.output.as_ref().unwrap()).clone(),
                cache_key: e.cache_key.filter(|_| keyed),
                error: e.error.clone(),
            };
            (e.node_id.to_string(), resumed)
        })
        .collect()
}

/// [`engine`] with one more node type, defined by the test.
fn engine_with(kind: ExecutorKind, c: &Counters, node: impl Node) -> EngineBuilder {
    let mut reg = registry(c, 1);
    reg.register(node).unwrap();
    Engine::builder().registry(reg).executor(kind)
}

/// Builds a workflow; nodes are (id, type, config); edges are (source, source handle, target).
/// Every node gets handles `{id}:{template handle}` from the registry's templates.
fn workflow(
    reg: &NodeRegistry,
    nodes: &[(&str, &str, serde_json::Value)],
    edges: &[(&str, &str, &str)],
) -> Workflow {
    use gatewai_core::TemplateSource;
    let mut wf = Workflow::default();
    for (id, ty, config) in nodes {
        let mut node = WfNode::new(*id, *ty);
        node.config = config.clone();
        wf.nodes.push(node);
        let template = reg.template(ty).unwrap();
        for ht in &template.template_handles {
            wf.handles
                .push(ht.instantiate(id, format!("{id}:{}", ht.id)));
        }
    }
    for (i, (s, sh, t)) in edges.iter().enumerate() {
        wf.edges.push(Edge {
            id: format!("e{i}"),
            source: (*s).to_owned(),
            target: (*t).to_owned(),
            source_handle_id: format!("{s}:{sh}"),
            target_handle_id: format!("{t}:in"),
            extra: Default::default(),
        });
    }
    wf
}

/// Options of a run handed one pinned result, for `node`.
fn pinning(node: &str, result: NodeResult) -> RunOptions {
    RunOptions {
        pinned: [(node.to_owned(), result)].into(),
        ..Default::default()
    }
}

fn value_of(outcome: &gatewai_core::RunOutcome, node: &str) -> Option<f64> {
    outcome
        .results
        .get(node)?
        .selected()?
        .items
        .first()?
        .to_item()
        .as_f64()
}

fn status_of(outcome: &gatewai_core::RunOutcome, node: &str) -> ExecutionStatus {
    outcome
        .executions
        .iter()
        .find(|e| &*e.node_id == node)
        .map(|e| e.status)
        .unwrap()
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<RunEvent>>,
}

#[async_trait]
impl Observer for Recorder {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
}

// ---------- tests ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sums_flow_along_edges_and_results_are_written_back() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("a", "Sum", json!({"add": 1})),
                ("b", "Sum", json!({"add": 2})),
                ("c", "Sum", json!({})),
                ("x", "Export", json!({})),
            ],
            &[("a", "out", "c"), ("b", "out", "c"), ("c", "out", "x")],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(value_of(&outcome, "c"), Some(3.0));
        assert_eq!(outcome.exports["x"], vec![Item::number(3.0)]);
        let c_node = outcome.workflow.node("c").unwrap();
        assert_eq!(
            c_node
                .result
                .as_ref()
                .unwrap()
                .selected_item("c:out")
                .unwrap()
                .to_item(),
            Item::number(3.0)
        );
        assert_eq!(
            outcome.workflow.node("a").unwrap().config,
            json!({"add": 1}),
            "config handed back"
        );
        assert_eq!(outcome.executions.len(), 4);
        assert!(
            outcome
                .executions
                .iter()
                .all(|e| e.status == ExecutionStatus::Completed && e.attempts == 1)
        );
        let c_exec = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "c")
            .unwrap();
        assert_eq!(
            c_exec.input.as_ref().unwrap().to_json()["c:in"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_branches_run_concurrently() {
    // Three nodes wait on one barrier of three parties: they can only finish together.
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 3).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("a", "Barrier", json!({})),
                ("b", "Barrier", json!({})),
                ("c", "Barrier", json!({})),
                ("s", "Sum", json!({})),
            ],
            &[("a", "out", "s"), ("b", "out", "s"), ("c", "out", "s")],
        );
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            engine.run(wf, RunOptions::default()),
        )
        .await
        .expect("barrier nodes must run concurrently")
        .unwrap();
        assert_eq!(value_of(&outcome, "s"), Some(3.0), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_as_soon_as_its_inputs_are_ready() {
    // fast → after_fast must complete while slow (a sibling with no link) is still running.
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .observer(recorder.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("slow", "Sleep", json!({"ms": 300})),
                ("fast", "Sum", json!({"add": 1})),
                ("after_fast", "Sum", json!({})),
                ("end", "Sum", json!({})),
            ],
            &[
                ("fast", "out", "after_fast"),
                ("slow", "out", "end"),
                ("after_fast", "out", "end"),
            ],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed);
        let events = recorder.events.lock().unwrap();
        let pos = |node: &str| {
            events
                .iter()
                .position(|e| {
                    e.node_id() == Some(node) && matches!(e.kind, EventKind::NodeCompleted { .. })
                })
                .unwrap()
        };
        assert!(
            pos("after_fast") < pos("slow"),
            "{kind:?}: no level-by-level barrier"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_skips_downstream_and_independent_branches_go_on() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("bad", "Flaky", json!({"failures": 5, "retryable": false})),
                ("down", "Sum", json!({})),
                ("down2", "Sum", json!({})),
                ("ok", "Sum", json!({"add": 7})),
            ],
            &[("bad", "out", "down"), ("down", "out", "down2")],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Failed, "{kind:?}");
        assert!(outcome.run.error.as_deref().unwrap().contains("bad"));
        assert_eq!(status_of(&outcome, "bad"), ExecutionStatus::Failed);
        assert_eq!(status_of(&outcome, "down"), ExecutionStatus::Skipped);
        assert_eq!(status_of(&outcome, "down2"), ExecutionStatus::Skipped);
        let reason = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "down2")
            .unwrap()
            .error
            .clone()
            .unwrap();
        assert!(reason.contains("Upstream failure in node bad"), "{reason}");
        assert_eq!(status_of(&outcome, "ok"), ExecutionStatus::Completed);
        assert_eq!(value_of(&outcome, "ok"), Some(7.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_the_run() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("bad", "Flaky", json!({"failures": 1, "retryable": false})),
                ("slow", "Sleep", json!({"ms": 10_000})),
            ],
            &[],
        );
        let started = std::time::Instant::now();
        let outcome = engine
            .run(
                wf,
                RunOptions {
                    fail_fast: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{kind:?}");
        assert_eq!(outcome.run.status, RunStatus::Failed);
        assert_eq!(status_of(&outcome, "slow"), ExecutionStatus::Cancelled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_error_continue_puts_the_error_on_the_error_handle() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let mut wf = workflow(
            engine.registry(),
            &[
                ("bad", "Flaky", json!({"failures": 1, "retryable": false})),
                ("down", "Sum", json!({})),
            ],
            &[("bad", "out", "down")],
        );
        wf.node_mut("bad").unwrap().on_error = Some(OnError::Continue);
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        let result = &outcome.results["bad"];
        assert_eq!(
            result
                .selected_item("bad:error")
                .unwrap()
                .to_item()
                .as_text(),
            Some("failure 1")
        );
        assert_eq!(status_of(&outcome, "down"), ExecutionStatus::Skipped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_node_that_continues_on_error_exports_nothing() {
    /// An output node whose export always fails (say, an upload).
    struct FailingExport {
        template: NodeTemplate,
    }
    #[async_trait]
    impl Node for FailingExport {
        fn template(&self) -> &NodeTemplate {
            &self.template
        }
        fn is_run_output(&self) -> bool {
            true
        }
        async fn execute(&self, _: &NodeContext, _: &Inputs) -> Result<Outputs, NodeError> {
            Err(NodeError::new(
                ErrorKind::InvalidInput,
                "the destination refused the file",
            ))
        }
    }
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine_with(
            kind,
            &c,
            FailingExport {
                template: NodeTemplate::new("FailingExport", "FailingExport", "Outputs")
                    .terminal()
                    .handle(HandleTemplate::input("in", "Input", &[DataType::Number]).required()),
            },
        )
        .build()
        .unwrap();
        let mut wf = workflow(
            engine.registry(),
            &[
                ("a", "Sum", json!({"add": 3})),
                ("good", "Export", json!({})),
                ("bad", "FailingExport", json!({})),
            ],
            &[("a", "out", "good"), ("a", "out", "bad")],
        );
        wf.node_mut("bad").unwrap().on_error = Some(OnError::Continue);
        let outcome = engine.run(wf.clone(), RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(outcome.exports["good"], vec![Item::number(3.0)]);
        // The error is the node's record, not the run's output.
        assert!(
            !outcome.exports.contains_key("bad"),
            "{:?}",
            outcome.exports
        );
        let record = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "bad")
            .unwrap();
        assert!(record.error.as_deref().unwrap().contains("refused"));
        // With no error handle, the result holds no item (none on a handle it lacks).
        let result = &outcome.results["bad"];
        assert!(
            result.outputs.iter().all(|g| g.items.is_empty()),
            "{result:?}"
        );
        // Resumed from its records (as a store resumes an interrupted run), with and
        // without the keys: the same exports and the same error in the record.
        for keyed in [true, false] {
            let options = RunOptions {
                resumed: resumed_from(&outcome, keyed),
                ..RunOptions::default()
            };
            let again = engine.run(wf.clone(), options).await.unwrap();
            assert_eq!(again.run.status, RunStatus::Completed, "{kind:?}");
            assert_eq!(again.exports, outcome.exports, "{kind:?}, keyed {keyed}");
            let record = again
                .executions
                .iter()
                .find(|e| &*e.node_id == "bad")
                .unwrap();
            assert!(record.cached, "{kind:?}: resumed, not executed");
            assert!(record.error.as_deref().unwrap().contains("refused"));
            // The node no longer continues on error (its document changed before the
            // resume): the error it continued with is not reused; it runs again and fails,
            // as in a fresh run of that document.
            let mut failing = wf.clone();
            failing.node_mut("bad").unwrap().on_error = None;
            let options = RunOptions {
                resumed: resumed_from(&again, keyed),
                ..RunOptions::default()
            };
            let failed = engine.run(failing, options).await.unwrap();
            assert_eq!(
                failed.run.status,
                RunStatus::Failed,
                "{kind:?}, keyed {keyed}"
            );
            assert_eq!(status_of(&failed, "bad"), ExecutionStatus::Failed);
            assert_eq!(failed.exports, outcome.exports, "{kind:?}, keyed {keyed}");
        }
    }
}

/// A many-edge input gets its values in the order of its edges in the document, not in the
/// order its sources are planned or finish, each slot its own; a second slot's edges between
/// the first one's change neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_many_edge_input_takes_its_values_in_edge_order() {
    /// `in`'s values as the digits of one number, then `more`'s: `in` [1, 3] and `more`
    /// [3, 2, 1] give 13.321.
    struct Digits {
        template: NodeTemplate,
    }
    #[async_trait]
    impl Node for Digits {
        fn template(&self) -> &NodeTemplate {
            &self.template
        }
        async fn execute(&self, _: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
            let digits = |key| {
                inputs
                    .all(key)
                    .iter()
                    .filter_map(Item::as_f64)
                    .fold(0.0, |n, d| n * 10.0 + d)
            };
            Ok(Outputs::one(
                "out",
                Item::number(digits("in") + digits("more") / 1000.0),
            ))
        }
    }
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine_with(
            kind,
            &c,
            Digits {
                template: number_template("Digits")
                    .handle(HandleTemplate::input("more", "More", &[DataType::Number]).multiple()),
            },
        )
        .build()
        .unwrap();
        let mut wf = workflow(
            engine.registry(),
            &[
                ("a", "Sum", json!({"add": 1})),
                ("b", "Sum", json!({"add": 2})),
                ("c", "Sum", json!({"add": 3})),
                ("d", "Digits", json!({})),
            ],
            &[],
        );
        let edges = [
            ("c", "more"),
            ("a", "in"),
            ("b", "more"),
            ("c", "in"),
            ("a", "more"),
        ];
        for (i, (source, slot)) in edges.into_iter().enumerate() {
            wf.edges.push(Edge {
                id: format!("e{i}"),
                source: source.to_owned(),
                target: "d".to_owned(),
                source_handle_id: format!("{source}:out"),
                target_handle_id: format!("d:{slot}"),
                extra: Default::default(),
            });
        }
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(value_of(&outcome, "d"), Some(13.321), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_lacking_an_output_its_type_declares_still_runs() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let mut wf = a_feeds_b(&engine);
        // A document from before the type had this output: b has no handle for it.
        wf.handles.retain(|h| h.id != "b:out");
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(status_of(&outcome, "b"), ExecutionStatus::Completed);
        assert_eq!(c.sum.load(Ordering::SeqCst), 2, "both nodes ran");
        // The value had nowhere to go; no item names a handle the node lacks.
        let result = &outcome.results["b"];
        assert!(
            result.outputs.iter().all(|g| g.items.is_empty()),
            "{result:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_handle_with_a_stale_template_id_fails_its_node_rather_than_carry_nothing() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let mut wf = a_feeds_b(&engine);
        // a's one output names a template output its type does not have (renamed since):
        // it is the handle meant, and its edge must not quietly carry nothing.
        let handle = wf.handles.iter_mut().find(|h| h.id == "a:out").unwrap();
        handle.template_handle_id = Some("result".to_owned());
        handle.label = "Result".to_owned();
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Failed, "{kind:?}");
        assert_eq!(status_of(&outcome, "a"), ExecutionStatus::Failed);
        let a = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "a")
            .unwrap();
        assert!(
            a.error.as_deref().unwrap().contains("unknown handle `out`"),
            "{:?}",
            a.error
        );
        assert_eq!(status_of(&outcome, "b"), ExecutionStatus::Skipped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_skips_the_branch_not_taken_without_failing() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("src", "Sum", json!({"add": 5})),
                ("r", "Router", json!({"route": "b"})),
                ("on_a", "Sum", json!({})),
                ("on_b", "Sum", json!({"add": 1})),
            ],
            &[("src", "out", "r"), ("r", "a", "on_a"), ("r", "b", "on_b")],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(status_of(&outcome, "on_a"), ExecutionStatus::Skipped);
        assert!(
            outcome
                .executions
                .iter()
                .find(|e| &*e.node_id == "on_a")
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .contains("not taken")
        );
        assert_eq!(value_of(&outcome, "on_b"), Some(6.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_input_its_config_stands_in_for_does_not_make_a_node_not_taken() {
    for kind in EXECUTORS {
        let c = Counters::default();
        // Like the app's LLM: a required prompt typed into the node, optional extra inputs.
        let engine = engine_with(
            kind,
            &c,
            Sum {
                template: NodeTemplate::new("Prompted", "Prompted", "Test")
                    .handle(
                        HandleTemplate::input("prompt", "Prompt", &[DataType::Text])
                            .required()
                            .config_fallback("prompt"),
                    )
                    .handle(HandleTemplate::input("in", "In", &[DataType::Number]).multiple())
                    .handle(HandleTemplate::output("out", "Out", &[DataType::Number])),
                runs: c.sum.clone(),
            },
        )
        .build()
        .unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("src", "Sum", json!({"add": 5})),
                ("r", "Router", json!({"route": "b"})),
                ("merge", "Prompted", json!({"prompt": "describe"})),
                ("only_a", "Prompted", json!({"prompt": "describe"})),
            ],
            &[
                ("src", "out", "r"),
                ("src", "out", "merge"),
                ("r", "a", "merge"),
                ("r", "a", "only_a"),
            ],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        // One input came, the prompt is in the config: the node runs.
        assert_eq!(
            status_of(&outcome, "merge"),
            ExecutionStatus::Completed,
            "{kind:?}"
        );
        assert_eq!(value_of(&outcome, "merge"), Some(5.0));
        // Fed only by the branch not taken: skipped, however its prompt is given.
        assert_eq!(
            status_of(&outcome, "only_a"),
            ExecutionStatus::Skipped,
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_runs_take_exactly_the_needed_upstream() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("a", "Sum", json!({"add": 1})),
                ("b", "Sum", json!({})),
                ("other", "Sum", json!({})),
                ("after", "Sum", json!({})),
            ],
            &[("a", "out", "b"), ("b", "out", "after")],
        );
        let outcome = engine
            .run(
                wf,
                RunOptions {
                    target: RunTarget::Nodes(vec!["b".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut ran: Vec<&str> = outcome.executions.iter().map(|e| &*e.node_id).collect();
        ran.sort();
        assert_eq!(ran, ["a", "b"], "{kind:?}");
        assert_eq!(c.sum.load(Ordering::SeqCst), 2);
        let err = engine
            .start(
                Workflow::default(),
                RunOptions {
                    target: RunTarget::Nodes(vec!["ghost".into()]),
                    ..Default::default()
                },
            )
            .err()
            .unwrap();
        assert!(err.to_string().contains("ghost"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_nodes_come_from_the_cache_and_changes_invalidate() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let cache = Arc::new(MemoryResultCache::default());
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .cache(cache.clone())
            .observer(recorder.clone())
            .build()
            .unwrap();
        let nodes = [
            ("a", "Sum", json!({"add": 1})),
            ("b", "Sum", json!({"add": 2})),
            ("c", "Sum", json!({})),
        ];
        let edges = [("a", "out", "c"), ("b", "out", "c")];
        let wf = workflow(engine.registry(), &nodes, &edges);
        let first = engine.run(wf.clone(), RunOptions::default()).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 3);
        let second = engine
            .run(first.workflow.clone(), RunOptions::default())
            .await
            .unwrap();
        assert_eq!(
            c.sum.load(Ordering::SeqCst),
            3,
            "{kind:?}: nothing re-executed"
        );
        assert!(second.executions.iter().all(|e| e.cached));
        assert_eq!(value_of(&second, "c"), Some(3.0));
        let cached_events = recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::NodeCompleted {
                        source: ResultSource::Cached,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(cached_events, 3);
        // Changing a's config re-runs a and c (its input changed), not b.
        let mut changed = second.workflow.clone();
        changed.node_mut("a").unwrap().config = json!({"add": 10});
        let third = engine.run(changed, RunOptions::default()).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 5);
        assert!(
            third
                .executions
                .iter()
                .find(|e| &*e.node_id == "b")
                .unwrap()
                .cached
        );
        assert_eq!(value_of(&third, "c"), Some(12.0));
        // Forcing a node bypasses the cache.
        let mut opts = RunOptions::default();
        opts.force.insert("b".into());
        engine.run(third.workflow.clone(), opts).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appending_nodes_keep_generations_and_a_cache_hit_adds_none() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let cache = Arc::new(MemoryResultCache::default());
        let engine = engine(kind, &c, 1).cache(cache).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("src", "Sum", json!({"add": 1})),
                ("llm", "Appender", json!({})),
            ],
            &[("src", "out", "llm")],
        );
        let first = engine.run(wf, RunOptions::default()).await.unwrap();
        let mut opts = RunOptions::default();
        opts.force.insert("llm".into());
        let second = engine.run(first.workflow.clone(), opts).await.unwrap();
        let result = second.workflow.node("llm").unwrap().result.clone().unwrap();
        assert_eq!(result.outputs.len(), 2, "{kind:?}");
        assert_eq!(result.selected_output_index, 1);
        let third = engine
            .run(second.workflow.clone(), RunOptions::default())
            .await
            .unwrap();
        assert_eq!(
            third
                .workflow
                .node("llm")
                .unwrap()
                .result
                .as_ref()
                .unwrap()
                .outputs
                .len(),
            2
        );
        assert_eq!(c.appends.load(Ordering::SeqCst), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_results_are_used_and_their_nodes_do_not_run() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({"add": 1})), ("b", "Sum", json!({}))],
            &[("a", "out", "b")],
        );
        let mut pinned = HashMap::new();
        pinned.insert(
            "a".to_owned(),
            NodeResult::single(gatewai_core::Generation {
                items: vec![Item::number(41.0).on("a:out")],
            }),
        );
        let outcome = engine
            .run(
                wf,
                RunOptions {
                    pinned,
                    target: RunTarget::Nodes(vec!["b".into()]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 1, "{kind:?}");
        assert_eq!(value_of(&outcome, "b"), Some(41.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_running_and_queued_nodes() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("slow", "Sleep", json!({"ms": 30_000})),
                ("after", "Sum", json!({})),
            ],
            &[("slow", "out", "after")],
        );
        let handle = engine.start(wf, RunOptions::default()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        handle.cancel();
        let outcome = handle.wait().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{kind:?}: prompt"
        );
        assert_eq!(outcome.run.status, RunStatus::Cancelled);
        assert_eq!(status_of(&outcome, "slow"), ExecutionStatus::Cancelled);
        assert_eq!(status_of(&outcome, "after"), ExecutionStatus::Cancelled);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ignoring_cancellation_is_abandoned_after_the_grace_period() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .cancel_grace(Duration::from_millis(200))
            .observer(recorder.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("stubborn", "Sleep", json!({"ms": 60_000, "stubborn": true}))],
            &[],
        );
        let handle = engine.start(wf, RunOptions::default()).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        handle.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(5), handle.wait())
            .await
            .expect("never waited on forever")
            .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Cancelled, "{kind:?}");
        assert_eq!(status_of(&outcome, "stubborn"), ExecutionStatus::Cancelled);
        // Observers see the abandoned node's end before the run's.
        let observed = recorder.events.lock().unwrap().clone();
        let kinds: Vec<&str> = observed
            .iter()
            .map(|e| match &e.kind {
                EventKind::RunStarted { .. } => "run started",
                EventKind::NodeQueued { .. } => "queued",
                EventKind::NodeStarted { .. } => "started",
                EventKind::NodeCancelled { .. } => "cancelled",
                EventKind::RunFinished { .. } => "run finished",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "run started",
                "queued",
                "started",
                "cancelled",
                "run finished"
            ],
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fails_the_attempt() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1)
            .default_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("slow", "Sleep", json!({"ms": 10_000}))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Failed, "{kind:?}");
        let exec = &outcome.executions[0];
        assert_eq!(exec.status, ExecutionStatus::Failed);
        assert!(exec.error.as_deref().unwrap().contains("timed out"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_then_success_and_retries_exhausted() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let policy = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .retry_policy(policy)
            .observer(recorder.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("f", "Flaky", json!({"failures": 2}))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(outcome.executions[0].attempts, 3);
        let retries = recorder
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::NodeFailed {
                        will_retry: true,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(retries, 2);

        c.flaky.store(0, Ordering::SeqCst);
        let wf = workflow(
            engine.registry(),
            &[("f", "Flaky", json!({"failures": 10}))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Failed);
        assert_eq!(outcome.executions[0].attempts, 3);
        assert_eq!(c.flaky.load(Ordering::SeqCst), 3);

        // A non-retryable error is not retried.
        c.flaky.store(0, Ordering::SeqCst);
        let wf = workflow(
            engine.registry(),
            &[("f", "Flaky", json!({"failures": 1, "retryable": false}))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.executions[0].attempts, 1);

        // A provider's Retry-After is waited for; one beyond the policy's max backoff (30 s)
        // is not: the run fails now rather than hang for an hour.
        for (retry_after_ms, attempts, status) in [
            (20, 2, RunStatus::Completed),
            (3_600_000, 1, RunStatus::Failed),
        ] {
            c.flaky.store(0, Ordering::SeqCst);
            let wf = workflow(
                engine.registry(),
                &[(
                    "f",
                    "Flaky",
                    json!({"failures": 1, "retry_after_ms": retry_after_ms}),
                )],
                &[],
            );
            let started = std::time::Instant::now();
            let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
            assert_eq!(outcome.run.status, status, "{kind:?} {retry_after_ms}");
            assert_eq!(outcome.executions[0].attempts, attempts);
            if attempts == 2 {
                assert!(started.elapsed() >= Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn backoff_stays_within_its_cap_and_a_long_retry_after_ends_the_retries() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(100),
        multiplier: 2.0,
        max_backoff: Duration::from_secs(1),
        jitter: 0.5,
    };
    for _ in 0..1000 {
        // 100 ms × 2⁹ is far above the cap: jitter must not lift a delay past it.
        assert!(policy.backoff(10) <= Duration::from_secs(1));
        let first = policy.backoff(1);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(150));
    }
    assert!(
        policy
            .delay_after(1, Some(Duration::from_millis(800)))
            .unwrap()
            >= Duration::from_millis(800)
    );
    assert_eq!(policy.delay_after(1, Some(Duration::from_secs(2))), None);
    assert!(policy.delay_after(1, None).unwrap() <= Duration::from_millis(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_are_never_exceeded() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1)
            .node_policy(
                "Sleep",
                NodePolicy {
                    max_concurrency: Some(2),
                    ..Default::default()
                },
            )
            .build()
            .unwrap();
        let wf = sleepers(engine.registry(), 12, 20);
        // Two runs at once share the engine's limits.
        let (a, b) = tokio::join!(
            engine.run(wf.clone(), RunOptions::default()),
            engine.run(wf, RunOptions::default())
        );
        assert_eq!(a.unwrap().run.status, RunStatus::Completed);
        assert_eq!(b.unwrap().run.status, RunStatus::Completed);
        assert_eq!(c.peak.load(Ordering::SeqCst), 2, "{kind:?}");
    }
    // The global limit.
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .max_concurrency(3)
        .build()
        .unwrap();
    engine
        .run(sleepers(engine.registry(), 12, 20), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(c.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_in_order_per_node() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .observer(recorder.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({})), ("b", "Sum", json!({}))],
            &[("a", "out", "b")],
        );
        let mut handle = engine
            .start(
                wf,
                RunOptions {
                    stream_events: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let mut stream = handle.events().unwrap();
        let outcome = handle.wait().await.unwrap();
        let mut streamed = Vec::new();
        while let Ok(e) = stream.try_recv() {
            streamed.push(e);
        }
        let observed = recorder.events.lock().unwrap().clone();
        assert_eq!(streamed.len(), observed.len(), "{kind:?}");
        assert!(observed.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert!(matches!(
            observed.first().unwrap().kind,
            EventKind::RunStarted { .. }
        ));
        assert!(matches!(
            observed.last().unwrap().kind,
            EventKind::RunFinished { .. }
        ));
        for node in ["a", "b"] {
            let kinds: Vec<&str> = observed
                .iter()
                .filter(|e| e.node_id() == Some(node))
                .map(|e| match e.kind {
                    EventKind::NodeQueued { .. } => "queued",
                    EventKind::NodeStarted { .. } => "started",
                    EventKind::NodeCompleted { .. } => "completed",
                    _ => "other",
                })
                .collect();
            assert_eq!(kinds, ["queued", "started", "completed"]);
        }
        assert_eq!(outcome.run.status, RunStatus::Completed);
        // Events serialise for live streams.
        let json = serde_json::to_value(&observed[observed.len() - 2]).unwrap();
        assert_eq!(json["type"], "nodeCompleted");
        assert_eq!(
            json["nodeId"], "b",
            "fields are camelCase on the wire: {json}"
        );
        assert!(json["runId"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_node_fails_that_node_not_the_engine() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[("p", "Panic", json!({})), ("ok", "Sum", json!({"add": 1}))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(
            status_of(&outcome, "p"),
            ExecutionStatus::Failed,
            "{kind:?}"
        );
        assert!(
            outcome
                .executions
                .iter()
                .find(|e| &*e.node_id == "p")
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .contains("panicked: boom")
        );
        assert_eq!(status_of(&outcome, "ok"), ExecutionStatus::Completed);
        // The engine still runs workflows afterwards.
        let wf = workflow(engine.registry(), &[("ok", "Sum", json!({"add": 1}))], &[]);
        assert_eq!(
            engine
                .run(wf, RunOptions::default())
                .await
                .unwrap()
                .run
                .status,
            RunStatus::Completed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_inputs_reach_source_nodes() {
    struct Echo(NodeTemplate);
    #[async_trait]
    impl Node for Echo {
        fn template(&self) -> &NodeTemplate {
            &self.0
        }
        async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
            match ctx.run_input() {
                Some(gatewai_core::RunInput::Text(t)) => {
                    Ok(Outputs::one("out", Item::text(t.clone())))
                }
                _ => Ok(Outputs::one("out", Item::text("default"))),
            }
        }
    }
    let mut reg = NodeRegistry::new();
    reg.register(Echo(
        NodeTemplate::new("Echo", "Echo", "Test").handle(HandleTemplate::output(
            "out",
            "Out",
            &[DataType::Text],
        )),
    ))
    .unwrap();
    let engine = Engine::builder().registry(reg).build().unwrap();
    let wf = workflow(engine.registry(), &[("e", "Echo", json!({}))], &[]);
    let mut opts = RunOptions::default();
    opts.inputs
        .insert("e".into(), gatewai_core::RunInput::Text("hello".into()));
    let outcome = engine.run(wf, opts).await.unwrap();
    assert_eq!(
        outcome.results["e"].selected().unwrap().items[0]
            .to_item()
            .as_text(),
        Some("hello")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_workflow_runs_no_node() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let mut wf = workflow(engine.registry(), &[("a", "Sum", json!({}))], &[]);
    wf.nodes.push(WfNode::new("u", "Unknown"));
    let err = engine.run(wf, RunOptions::default()).await.err().unwrap();
    assert!(err.to_string().contains("unknown node type"), "{err}");
    assert_eq!(c.sum.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_document_reuses_its_plan_and_a_changed_one_is_validated_again() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Checked", json!({})), ("b", "Checked", json!({}))],
            &[("a", "out", "b")],
        );
        let checks = || c.checks.load(Ordering::SeqCst);
        let first = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(value_of(&first, "b"), Some(2.0));
        let validated_once = checks();
        assert!(validated_once >= 2, "validation checked both configs");

        // The returned document (results written back) is unchanged in structure and config:
        // its plan is reused, nothing is validated again, and it runs the same.
        let again = engine
            .run(first.workflow.clone(), RunOptions::default())
            .await
            .unwrap();
        assert_eq!(value_of(&again, "b"), Some(2.0));
        assert_eq!(
            checks(),
            validated_once,
            "{kind:?}: kept plan, no validation"
        );

        // A changed config is validated again, and a bad one is rejected.
        let mut bad = again.workflow.clone();
        bad.nodes[0].config = json!({"bad": true});
        let err = engine.run(bad, RunOptions::default()).await.err().unwrap();
        assert!(err.to_string().contains("must not be true"), "{err}");
        assert!(checks() > validated_once);

        // A changed structure is validated again: a cycle is rejected, not run on an old plan.
        let mut cyclic = again.workflow.clone();
        cyclic.edges.push(Edge {
            id: "back".into(),
            source: "b".into(),
            target: "a".into(),
            source_handle_id: "b:out".into(),
            target_handle_id: "a:in".into(),
            extra: Default::default(),
        });
        let err = engine
            .run(cyclic, RunOptions::default())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("cycle"), "{err}");

        // A different target is a different plan: only `a` runs.
        let partial = engine
            .run(
                again.workflow.clone(),
                RunOptions {
                    target: RunTarget::Nodes(vec!["a".into()]),
                    force: ["a".to_owned()].into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(partial.executions.len(), 1, "{kind:?}");

        // With no plan cache every run validates.
        let uncached = engine_with_no_plans(kind, &c);
        let before = checks();
        for _ in 0..2 {
            uncached
                .run(again.workflow.clone(), RunOptions::default())
                .await
                .unwrap();
        }
        assert_eq!(checks(), before + 2 * validated_once);
    }
}

/// `n` independent Sleep nodes `s0`, `s1`, … sleeping `ms` each.
fn sleepers(reg: &NodeRegistry, n: usize, ms: u64) -> Workflow {
    let ids: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let nodes: Vec<(&str, &str, serde_json::Value)> = ids
        .iter()
        .map(|id| (id.as_str(), "Sleep", json!({ "ms": ms })))
        .collect();
    workflow(reg, &nodes, &[])
}

/// `a` (a Sum adding 1) feeding `b` (a Sum).
fn a_feeds_b(engine: &Engine) -> Workflow {
    workflow(
        engine.registry(),
        &[("a", "Sum", json!({"add": 1})), ("b", "Sum", json!({}))],
        &[("a", "out", "b")],
    )
}

fn engine_with_no_plans(kind: ExecutorKind, c: &Counters) -> Engine {
    engine(kind, c, 1).plan_cache(0).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_plan_still_checks_what_each_run_brings() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = a_feeds_b(&engine);
    let pinned = |value: Item| {
        let mut pinned = HashMap::new();
        pinned.insert(
            "a".to_owned(),
            NodeResult::single(gatewai_core::Generation {
                items: vec![value.on("a:out")],
            }),
        );
        RunOptions {
            pinned,
            ..Default::default()
        }
    };
    let ok = engine
        .run(wf.clone(), pinned(Item::number(41.0)))
        .await
        .unwrap();
    assert_eq!(value_of(&ok, "b"), Some(41.0));
    // Same document, same pinned node (so the same kept plan), but a result that does not fit.
    let err = engine
        .run(wf.clone(), pinned(Item::text("no")))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("Text on output `a:out`"), "{err}");
    // A run input for a node the document does not have.
    let mut options = RunOptions::default();
    options
        .inputs
        .insert("ghost".into(), gatewai_core::RunInput::Text("boo".into()));
    let err = engine.run(wf.clone(), options).await.err().unwrap();
    assert!(err.to_string().contains("ghost"), "{err}");
    // An unknown target and an unknown run input are reported together.
    let mut options = RunOptions {
        target: RunTarget::Nodes(vec!["nowhere".into()]),
        ..Default::default()
    };
    options
        .inputs
        .insert("ghost".into(), gatewai_core::RunInput::Text("boo".into()));
    let err = engine.run(wf.clone(), options).await.err().unwrap();
    let text = err.to_string();
    assert!(text.contains("nowhere") && text.contains("ghost"), "{text}");
    // The kept plan runs the pinned value through, and the next run without a pin executes `a`.
    let fresh = engine.run(wf, RunOptions::default()).await.unwrap();
    assert_eq!(value_of(&fresh, "b"), Some(1.0));
    assert_eq!(c.sum.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forcing_a_node_the_document_does_not_have_is_an_error_naming_it() {
    let c = Counters::default();
    for engine in [
        engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap(),
        engine_with_no_plans(ExecutorKind::MultiThreaded, &c),
    ] {
        let wf = a_feeds_b(&engine);
        // Once with the plan kept from this run, once with a new plan.
        engine.run(wf.clone(), RunOptions::default()).await.unwrap();
        let options = RunOptions {
            force: ["b".to_owned(), "ghost".to_owned()].into(),
            ..Default::default()
        };
        let err = engine.run(wf, options).await.err().unwrap();
        match &err {
            gatewai_core::Error::Invalid(problems) => assert_eq!(
                problems.0,
                vec![ValidationError::NodeNotFound {
                    node_id: "ghost".into()
                }]
            ),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        c.sum.load(Ordering::SeqCst),
        4,
        "the refused runs ran nothing"
    );
}

#[test]
fn handle_types_are_exported() {
    assert_ne!(HandleType::Input, HandleType::Output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_results_stay_in_the_run() {
    struct Preview(NodeTemplate);
    #[async_trait]
    impl Node for Preview {
        fn template(&self) -> &NodeTemplate {
            &self.0
        }
        async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
            Ok(Outputs::one("in", inputs.require("in")?.clone()))
        }
    }
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine_with(
            kind,
            &c,
            Preview(
                NodeTemplate::new("Preview", "Preview", "Outputs")
                    .transient()
                    .handle(HandleTemplate::input("in", "Input", &[DataType::Number]).required()),
            ),
        )
        .build()
        .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({"add": 2})), ("p", "Preview", json!({}))],
            &[("a", "out", "p")],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(
            outcome.results["p"]
                .selected_item("p:in")
                .unwrap()
                .to_item(),
            Item::number(2.0),
            "{kind:?}"
        );
        assert!(
            outcome.workflow.node("p").unwrap().result.is_none(),
            "transient result not written back"
        );
        assert!(outcome.workflow.node("a").unwrap().result.is_some());
        let record = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "p")
            .unwrap();
        assert!(record.output.is_some(), "the run record keeps it");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_execution_goes_through_the_dispatcher() {
    /// Stands in for a remote executor: counts dispatches and runs the node in-process.
    struct Counting(AtomicUsize);
    #[async_trait]
    impl gatewai_core::NodeDispatcher for Counting {
        async fn dispatch(
            &self,
            node: &Arc<dyn Node>,
            ctx: &NodeContext,
            inputs: &Inputs,
        ) -> Result<Outputs, NodeError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            node.execute(ctx, inputs).await
        }
    }
    for kind in EXECUTORS {
        let c = Counters::default();
        let dispatcher = Arc::new(Counting(AtomicUsize::new(0)));
        let engine = engine(kind, &c, 1)
            .dispatcher(dispatcher.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("a", "Sum", json!({})),
                ("b", "Sum", json!({})),
                ("c", "Sum", json!({})),
            ],
            &[("a", "out", "c"), ("b", "out", "c")],
        );
        engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(dispatcher.0.load(Ordering::SeqCst), 3, "{kind:?}");
        assert_eq!(c.sum.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_input_is_not_served_from_the_cache() {
    struct Echo(NodeTemplate, Arc<AtomicUsize>);
    #[async_trait]
    impl Node for Echo {
        fn template(&self) -> &NodeTemplate {
            &self.0
        }
        async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            let text = match ctx.run_input() {
                Some(gatewai_core::RunInput::Text(t)) => t.clone(),
                _ => "default".to_owned(),
            };
            Ok(Outputs::one("out", Item::text(text)))
        }
    }
    let runs = Arc::new(AtomicUsize::new(0));
    let mut reg = NodeRegistry::new();
    reg.register(Echo(
        NodeTemplate::new("Echo", "Echo", "Test").handle(HandleTemplate::output(
            "out",
            "Out",
            &[DataType::Text],
        )),
        runs.clone(),
    ))
    .unwrap();
    let engine = Engine::builder()
        .registry(reg)
        .cache(Arc::new(MemoryResultCache::default()))
        .build()
        .unwrap();
    let wf = workflow(engine.registry(), &[("e", "Echo", json!({}))], &[]);
    let run_with = |text: &str| {
        let mut opts = RunOptions::default();
        opts.inputs
            .insert("e".into(), gatewai_core::RunInput::Text(text.into()));
        engine.run(wf.clone(), opts)
    };
    let first = run_with("one").await.unwrap();
    let again = run_with("one").await.unwrap();
    let other = run_with("two").await.unwrap();
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "same input cached, new input executed"
    );
    assert!(again.executions[0].cached);
    assert_eq!(
        first.results["e"].selected().unwrap().items[0]
            .to_item()
            .as_text(),
        Some("one")
    );
    assert_eq!(
        other.results["e"].selected().unwrap().items[0]
            .to_item()
            .as_text(),
        Some("two")
    );
}

// ---------- regressions from the engine review ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_run_is_not_queued_behind_a_big_one() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .max_concurrency(2)
        .build()
        .unwrap();
    let big_wf = sleepers(engine.registry(), 100, 10);
    let small_wf = workflow(
        engine.registry(),
        &[("only", "Sleep", json!({"ms": 10}))],
        &[],
    );
    let started = std::time::Instant::now();
    let big_run = engine.start(big_wf, RunOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let small = engine.run(small_wf, RunOptions::default()).await.unwrap();
    let small_done = started.elapsed();
    let big = big_run.wait().await.unwrap();
    let big_done = started.elapsed();
    assert_eq!(small.run.status, RunStatus::Completed);
    assert_eq!(big.run.status, RunStatus::Completed);
    // FIFO would finish the small run together with the big one (~500 ms); round-robin serves
    // it at the next free slot.
    assert!(
        small_done * 3 < big_done,
        "small run done at {small_done:?}, big at {big_done:?}"
    );
}

/// A result cache that keeps nothing and whose lookups go as told.
enum Lookup {
    /// Every lookup panics.
    Panics,
    /// Every lookup finds nothing, after this long.
    MissesAfter(Duration),
}

#[async_trait]
impl gatewai_core::ResultCache for Lookup {
    async fn get(
        &self,
        _key: &gatewai_core::CacheKey,
    ) -> gatewai_core::Result<Option<gatewai_core::CachedOutputs>> {
        match self {
            Lookup::Panics => panic!("cache exploded"),
            Lookup::MissesAfter(wait) => {
                tokio::time::sleep(*wait).await;
                Ok(None)
            }
        }
    }
    async fn put(
        &self,
        _key: gatewai_core::CacheKey,
        _outputs: gatewai_core::CachedOutputs,
    ) -> gatewai_core::Result<()> {
        Ok(())
    }
}

/// An executed node's record starts once its inputs are ready and the cache had nothing for
/// it: a slow result cache (a database) that took 300 ms to find nothing is not the node's time.
/// The record's start, its duration and its `NodeStarted` event agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_cache_miss_is_not_the_nodes_time() {
    let lookup = Duration::from_millis(300);
    let lookup_delta = chrono::Duration::milliseconds(300);
    for kind in EXECUTORS {
        let c = Counters::default();
        let slow = Lookup::MissesAfter(lookup);
        let engine = engine(kind, &c, 1).cache(Arc::new(slow)).build().unwrap();
        let wf = workflow(engine.registry(), &[("a", "Sum", json!({}))], &[]);
        let options = RunOptions {
            stream_events: true,
            ..Default::default()
        };
        let mut handle = engine.start(wf, options).unwrap();
        let mut stream = handle.events().unwrap();
        let outcome = handle.wait().await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        let run = outcome.run.finished_at.unwrap() - outcome.run.created_at;
        assert!(
            run >= lookup_delta,
            "{kind:?}: the lookup was awaited ({run})"
        );
        let record = &outcome.executions[0];
        let (started, finished) = (record.started_at.unwrap(), record.finished_at.unwrap());
        // Any of the lookup counted would make these 300 ms or more.
        assert!(
            record.duration_ms.unwrap() < 300,
            "{kind:?}: duration {:?} ms counts the cache lookup",
            record.duration_ms
        );
        assert!(
            finished - started < lookup_delta,
            "{kind:?}: the record starts before the lookup ended ({})",
            finished - started
        );
        let mut started_events = Vec::new();
        while let Ok(event) = stream.try_recv() {
            if let EventKind::NodeStarted { .. } = event.kind {
                started_events.push(event.at);
            }
        }
        assert_eq!(started_events, [started], "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_cache_fails_the_node_instead_of_hanging_the_run() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1)
            .cache(Arc::new(Lookup::Panics))
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({})), ("b", "Sum", json!({}))],
            &[("a", "out", "b")],
        );
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            engine.run(wf, RunOptions::default()),
        )
        .await
        .expect("no hang")
        .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Failed, "{kind:?}");
        assert!(
            outcome
                .executions
                .iter()
                .find(|e| &*e.node_id == "a")
                .unwrap()
                .error
                .as_deref()
                .unwrap()
                .contains("cache exploded")
        );
        assert_eq!(status_of(&outcome, "b"), ExecutionStatus::Skipped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_a_slot_never_starts_after_cancel() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .node_type_limit("Sleep", 1)
        .cancel_grace(Duration::from_millis(100))
        .build()
        .unwrap();
    // Three slow nodes, one slot: whichever gets it runs; the other two wait for the slot.
    let wf = workflow(
        engine.registry(),
        &[
            ("n1", "Sleep", json!({"ms": 10_000})),
            ("n2", "Sleep", json!({"ms": 10_000})),
            ("n3", "Sleep", json!({"ms": 10_000})),
        ],
        &[],
    );
    let handle = engine.start(wf, RunOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.cancel();
    let outcome = handle.wait().await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Cancelled);
    assert_eq!(c.peak.load(Ordering::SeqCst), 1);
    assert!(
        outcome
            .executions
            .iter()
            .all(|e| e.status == ExecutionStatus::Cancelled)
    );
    let never_started = outcome
        .executions
        .iter()
        .filter(|e| e.attempts == 0)
        .count();
    assert_eq!(never_started, 2, "the waiting nodes never executed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_leaves_the_hosts_token_alone_and_ends_failed() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = workflow(
        engine.registry(),
        &[
            ("bad", "Flaky", json!({"failures": 1, "retryable": false})),
            ("slow", "Sleep", json!({"ms": 10_000})),
        ],
        &[],
    );
    let handle = engine
        .start(
            wf,
            RunOptions {
                fail_fast: true,
                ..Default::default()
            },
        )
        .unwrap();
    let token = handle.cancellation();
    let outcome = handle.wait().await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Failed);
    assert!(
        !token.is_cancelled(),
        "fail-fast cancels the run's own token, not the host's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_keeps_the_users_selected_generation() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = workflow(
        engine.registry(),
        &[
            ("src", "Sum", json!({"add": 1})),
            ("llm", "Appender", json!({})),
        ],
        &[("src", "out", "llm")],
    );
    let first = engine.run(wf, RunOptions::default()).await.unwrap();
    let mut opts = RunOptions::default();
    opts.force.insert("llm".into());
    let second = engine.run(first.workflow.clone(), opts).await.unwrap();
    let mut picked = second.workflow.clone();
    std::sync::Arc::make_mut(picked.node_mut("llm").unwrap().result.as_mut().unwrap())
        .selected_output_index = 0;
    let third = engine.run(picked, RunOptions::default()).await.unwrap();
    let result = third.workflow.node("llm").unwrap().result.clone().unwrap();
    assert_eq!(result.outputs.len(), 2, "no duplicate generation");
    assert_eq!(result.selected_output_index, 0, "the user's pick stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_never_keeps_a_selection_out_of_range() {
    for cache in [true, false] {
        let c = Counters::default();
        let builder = engine(ExecutorKind::MultiThreaded, &c, 1);
        let engine = if cache { builder } else { builder.no_cache() }
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[
                ("src", "Sum", json!({"add": 1})),
                ("llm", "Appender", json!({})),
                ("out", "Sum", json!({})),
            ],
            &[("src", "out", "llm"), ("llm", "out", "out")],
        );
        let first = engine.run(wf, RunOptions::default()).await.unwrap();
        // The document comes back with a selection that picks no generation.
        let mut doc = first.workflow.clone();
        std::sync::Arc::make_mut(doc.node_mut("llm").unwrap().result.as_mut().unwrap())
            .selected_output_index = 7;
        let second = engine.run(doc, RunOptions::default()).await.unwrap();
        let result = &second.results["llm"];
        assert!(result.selected().is_some(), "cache {cache}: {result:?}");
        assert_eq!(
            status_of(&second, "out"),
            ExecutionStatus::Completed,
            "cache {cache}: the llm's value flows on"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_result_that_does_not_fit_its_node_is_rejected() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = workflow(
        engine.registry(),
        &[("a", "Sum", json!({})), ("b", "Sum", json!({}))],
        &[("a", "out", "b")],
    );
    let mut pinned = HashMap::new();
    pinned.insert(
        "a".to_owned(),
        NodeResult::single(gatewai_core::Generation {
            items: vec![
                Item::text("not a number").on("a:out"),
                Item::number(1.0).on("b:in"),
            ],
        }),
    );
    let err = engine
        .start(
            wf,
            RunOptions {
                pinned,
                ..Default::default()
            },
        )
        .err()
        .unwrap();
    let text = err.to_string();
    assert!(text.contains("Text on output `a:out`"), "{text}");
    assert!(
        text.contains("`b:in`, which is not an output handle"),
        "{text}"
    );
    assert_eq!(c.sum.load(Ordering::SeqCst), 0);
}

/// A resumed result is checked as a pinned one is: recorded without a key, it may be of a
/// node that changed since (or the record was altered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_result_that_does_not_fit_its_node_is_rejected() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = a_feeds_b(&engine);
    let unfit = |items: Vec<gatewai_core::OutputItem>, selected: usize| Resumed {
        result: NodeResult {
            selected_output_index: selected,
            outputs: vec![gatewai_core::Generation { items }],
        },
        cache_key: None,
        error: None,
    };
    let cases = [
        (
            unfit(vec![Item::number(1.0).on("a:gone")], 0),
            "`a:gone`, which is not a handle of the node",
        ),
        (
            unfit(vec![Item::text("1").on("a:out")], 0),
            "Text on output `a:out`",
        ),
        (
            unfit(vec![Item::number(1.0).on("a:out")], 3),
            "selectedOutputIndex 3 is out of range",
        ),
    ];
    for (resumed, expected) in cases {
        let options = RunOptions {
            resumed: [("a".to_owned(), resumed)].into(),
            ..Default::default()
        };
        let err = engine.run(wf.clone(), options).await.unwrap_err();
        let gatewai_core::Error::Invalid(problems) = &err else {
            panic!("{err}")
        };
        assert!(
            problems.iter().all(|p| matches!(p,
                ValidationError::InvalidResumedResult { node_id, message }
                    if node_id == "a" && message.contains(expected))),
            "{err}"
        );
        assert!(err.to_string().contains("resumed result"), "{err}");
    }
    assert_eq!(c.sum.load(Ordering::SeqCst), 0, "nothing ran");
    // One that fits is used, and `a` does not run; only what flows on is checked (an older
    // generation on a handle renamed since is history).
    let mut fits = unfit(vec![Item::number(4.0).on("a:out")], 1);
    fits.result.outputs.insert(
        0,
        gatewai_core::Generation {
            items: vec![Item::number(3.0).on("a:renamed")],
        },
    );
    let options = RunOptions {
        resumed: [("a".to_owned(), fits)].into(),
        ..Default::default()
    };
    let outcome = engine.run(wf.clone(), options).await.unwrap();
    assert_eq!(value_of(&outcome, "b"), Some(4.0));
    assert_eq!(c.sum.load(Ordering::SeqCst), 1, "only b ran");
    // A result resumed with its key is not refused: it is used only while the node's key
    // (which covers its handles) is unchanged, and otherwise the node executes again.
    let keyed = Resumed {
        cache_key: Some(gatewai_core::CacheKey([7; 32])),
        ..unfit(vec![Item::number(1.0).on("a:gone")], 0)
    };
    let options = RunOptions {
        resumed: [("a".to_owned(), keyed)].into(),
        ..Default::default()
    };
    let outcome = engine.run(wf, options).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(value_of(&outcome, "b"), Some(1.0));
    assert_eq!(c.sum.load(Ordering::SeqCst), 3, "a executed again, and b");
    // An output node's result sits on its input handle, as the node mapped it: resumable.
    let x = workflow(
        engine.registry(),
        &[("a", "Sum", json!({"add": 1})), ("x", "Export", json!({}))],
        &[("a", "out", "x")],
    );
    let options = RunOptions {
        resumed: [
            (
                "a".to_owned(),
                unfit(vec![Item::number(1.0).on("a:out")], 0),
            ),
            ("x".to_owned(), unfit(vec![Item::number(1.0).on("x:in")], 0)),
        ]
        .into(),
        ..Default::default()
    };
    let outcome = engine.run(x, options).await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(outcome.exports["x"], vec![Item::number(1.0)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_item_whose_data_is_not_of_its_type_is_rejected() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = a_feeds_b(&engine);
    // What a client sends: a Number item holding text, and a Number item that is fine.
    let result: NodeResult = serde_json::from_value(json!({
        "outputs": [{"items": [
            {"type": "Number", "data": "not a number", "outputHandleId": "a:out"},
            {"type": "Number", "data": 2, "outputHandleId": "a:out"}
        ]}]
    }))
    .unwrap();
    let options = pinning("a", result);
    let err = engine.run(wf, options).await.err().unwrap();
    match &err {
        gatewai_core::Error::Invalid(problems) => assert_eq!(
            problems.0,
            vec![ValidationError::InvalidPinnedResult {
                node_id: "a".into(),
                message: "Number item on output `a:out` holds text".into(),
            }]
        ),
        other => panic!("{other}"),
    }
    assert_eq!(c.sum.load(Ordering::SeqCst), 0);
}

/// Asserts that `case` (which returns the time its run took at a size) takes about linear
/// time in its size (see [`common::LinearCheck`]).
async fn assert_linear<F, Fut>(n: usize, case: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let mut check = common::LinearCheck::new(n);
    while let Some([small, large]) = check.sizes() {
        check.took([case(small).await, case(large).await]);
    }
    check.assert();
}

/// An engine that plans every run afresh and caches no result: what a linear-time test
/// measures is each run's own work, not a kept plan or a cache hit.
fn engine_planning_each_run(c: &Counters) -> Engine {
    engine(ExecutorKind::MultiThreaded, c, 1)
        .plan_cache(0)
        .no_cache()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_pinned_result_is_checked_in_linear_time() {
    let c = Counters::default();
    let engine = engine_planning_each_run(&c);
    // `n` more outputs on `b`, listed before a's, and a pinned result of `n` items for `a`:
    // what a client pins is untrusted input. Returns the time the run took to start.
    let case = |n: usize| {
        let engine = &engine;
        async move {
            let mut wf = a_feeds_b(engine);
            let extra: Vec<_> = (0..n)
                .map(|i| {
                    let mut handle = wf.handle("b:out").unwrap().clone();
                    handle.id = format!("b:out{i}");
                    handle.template_handle_id = None; // variable outputs
                    handle
                })
                .collect();
            wf.handles.splice(0..0, extra);
            let items = vec![Item::number(1.0).on("a:out"); n];
            let options = pinning("a", NodeResult::single(gatewai_core::Generation { items }));
            let started = std::time::Instant::now();
            let handle = engine.start(wf, options).unwrap();
            let elapsed = started.elapsed();
            let outcome = handle.wait().await.unwrap();
            assert_eq!(outcome.run.status, RunStatus::Completed);
            assert_eq!(value_of(&outcome, "b"), Some(1.0));
            elapsed
        }
    };
    assert_linear(2_000, case).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_output_of_a_node_with_many_finds_its_item_in_linear_time() {
    let c = Counters::default();
    let engine = engine_planning_each_run(&c);
    assert_linear(2_500, |n| many_outputs_each_found(&engine, n)).await;
}

/// Runs `a` with `n` more outputs that feed `b`, and returns the run's time (see the test).
async fn many_outputs_each_found(engine: &Engine, n: usize) -> Duration {
    let mut wf = a_feeds_b(engine);
    // `a` gets `n` more outputs, each feeding b's input (made a many-edge one), and a
    // pinned result with an item for each, in the reverse order of the handles, and a second
    // item for `a:out0` after them: the first item naming a handle is the one that flows.
    let mut a_out = wf.handle("a:out").unwrap().clone();
    a_out.template_handle_id = None;
    wf.handles
        .iter_mut()
        .find(|h| h.id == "b:in")
        .unwrap()
        .multiple = Some(true);
    for i in 0..n {
        let mut output = a_out.clone();
        output.id = format!("a:out{i}");
        wf.handles.push(output);
        let mut edge = wf.edges[0].clone();
        edge.id = format!("many{i}");
        edge.source_handle_id = format!("a:out{i}");
        wf.edges.push(edge);
    }
    // And `c`, fed only by an output of `a` its result has no item for: not taken.
    let mut lone = a_out.clone();
    lone.id = "a:lone".to_owned();
    wf.handles.push(lone);
    wf.nodes.push(WfNode::new("c", "Sum"));
    let mut c_in = wf.handle("b:in").unwrap().clone();
    c_in.id = "c:in".to_owned();
    c_in.node_id = "c".to_owned();
    wf.handles.push(c_in);
    let mut edge = wf.edges[0].clone();
    edge.id = "to-c".to_owned();
    edge.source_handle_id = "a:lone".to_owned();
    edge.target = "c".to_owned();
    edge.target_handle_id = "c:in".to_owned();
    wf.edges.push(edge);
    let mut items: Vec<_> = (0..n)
        .rev()
        .map(|i| Item::number(i as f64).on(format!("a:out{i}").as_str()))
        .collect();
    items.push(Item::number(1e9).on("a:out0"));
    items.push(Item::number(0.5).on("a:out"));
    let options = pinning("a", NodeResult::single(gatewai_core::Generation { items }));
    let started = std::time::Instant::now();
    let outcome = engine.run(wf, options).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    let sum = (n * (n - 1) / 2) as f64 + 0.5;
    assert_eq!(value_of(&outcome, "b"), Some(sum));
    assert_eq!(status_of(&outcome, "c"), ExecutionStatus::Skipped);
    // (A search per edge took 10 s at 40,000 in a debug build, 3 s in a release build.)
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_many_handles_is_planned_in_linear_time() {
    let c = Counters::default();
    let engine = engine_planning_each_run(&c);
    assert_linear(2_500, |n| many_handles_planned(&engine, n)).await;
}

/// Runs `a` and `b` with `n` more handles each, and `c`, and returns the run's time (see the
/// test).
async fn many_handles_planned(engine: &Engine, n: usize) -> Duration {
    let mut wf = a_feeds_b(engine);
    // `n` more outputs on `a`, and `n` more inputs on `b`, each fed by a's first
    // output: a canvas is untrusted input, and a node's variable handles are not bounded.
    let variable = |wf: &Workflow, id: &str| {
        let mut handle = wf.handle(id).unwrap().clone();
        handle.template_handle_id = None;
        handle.multiple = Some(true);
        handle
    };
    let (a_out, b_in) = (variable(&wf, "a:out"), variable(&wf, "b:in"));
    for i in 0..n {
        let mut output = a_out.clone();
        output.id = format!("a:out{i}");
        let mut input = b_in.clone();
        input.id = format!("b:in{i}");
        let mut edge = wf.edges[0].clone();
        edge.id = format!("many{i}");
        edge.target_handle_id = input.id.clone();
        wf.handles.push(output);
        wf.handles.push(input);
        wf.edges.push(edge);
    }
    // And `c`: one input, fed by each of a's outputs, beside `n` outputs of its own.
    wf.nodes.push(WfNode::new("c", "Sum"));
    for template in ["in", "out"] {
        let mut handle = wf.handle(&format!("b:{template}")).unwrap().clone();
        handle.id = format!("c:{template}");
        handle.node_id = "c".to_owned();
        wf.handles.push(handle);
    }
    let c_out = variable(&wf, "c:out");
    for i in 0..n {
        let mut output = c_out.clone();
        output.id = format!("c:out{i}");
        wf.handles.push(output);
        let mut edge = wf.edges[0].clone();
        edge.id = format!("to-c{i}");
        edge.source_handle_id = format!("a:out{i}");
        edge.target = "c".to_owned();
        edge.target_handle_id = "c:in".to_owned();
        wf.edges.push(edge);
    }
    let started = std::time::Instant::now();
    let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(value_of(&outcome, "b"), Some(1.0));
    // Every edge reached its input: b's recorded inputs hold all of them.
    let b = outcome
        .executions
        .iter()
        .find(|r| &*r.node_id == "b")
        .unwrap();
    let inputs = b.input.as_ref().unwrap().to_json();
    let fed = inputs.as_object().unwrap().values();
    assert_eq!(fed.filter(|v| **v == json!([1.0])).count(), n + 1);
    // c's one input had n edges, from outputs `a` left empty: nothing arrived, not taken.
    assert_eq!(status_of(&outcome, "c"), ExecutionStatus::Skipped);
    elapsed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_an_input_label_invalidates_the_cache() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = a_feeds_b(&engine);
    let first = engine.run(wf, RunOptions::default()).await.unwrap();
    let mut renamed = first.workflow.clone();
    renamed
        .handles
        .iter_mut()
        .find(|h| h.id == "b:in")
        .unwrap()
        .label = "Renamed".into();
    let second = engine.run(renamed, RunOptions::default()).await.unwrap();
    assert!(
        second
            .executions
            .iter()
            .find(|e| &*e.node_id == "a")
            .unwrap()
            .cached
    );
    assert!(
        !second
            .executions
            .iter()
            .find(|e| &*e.node_id == "b")
            .unwrap()
            .cached
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_what_an_output_carries_invalidates_the_cache() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let first = engine
        .run(a_feeds_b(&engine), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(first.run.status, RunStatus::Completed);
    // The document now says `a` puts Text on its output (and `b` takes Text): a's Number
    // no longer fits, whether a runs or its earlier result would be reused.
    let mut retyped = first.workflow.clone();
    for handle in &mut retyped.handles {
        handle.data_types = vec![DataType::Text];
    }
    let cached = engine.run(retyped.clone(), RunOptions::default()).await;
    let fresh = engine_with_no_plans(ExecutorKind::MultiThreaded, &c)
        .run(retyped, RunOptions::default())
        .await;
    for outcome in [cached.unwrap(), fresh.unwrap()] {
        let a = outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == "a")
            .unwrap();
        assert!(!a.cached, "a Number is never served onto a Text output");
        assert_eq!(a.status, ExecutionStatus::Failed);
        assert!(
            a.error.as_deref().unwrap().contains("which carries Text"),
            "{:?}",
            a.error
        );
        assert_eq!(status_of(&outcome, "b"), ExecutionStatus::Skipped);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_observer_does_not_silence_the_others() {
    struct Panicky;
    #[async_trait]
    impl Observer for Panicky {
        async fn on_events(&self, _events: &[RunEvent]) -> gatewai_core::Result<()> {
            panic!("observer bug");
        }
    }
    let c = Counters::default();
    let recorder = Arc::new(Recorder::default());
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .observer(Arc::new(Panicky))
        .observer(recorder.clone())
        .build()
        .unwrap();
    let wf = workflow(engine.registry(), &[("a", "Sum", json!({}))], &[]);
    let mut handle = engine
        .start(
            wf,
            RunOptions {
                stream_events: true,
                ..Default::default()
            },
        )
        .unwrap();
    let mut stream = handle.events().unwrap();
    let outcome = handle.wait().await.unwrap();
    let mut last = None;
    while let Ok(e) = stream.try_recv() {
        last = Some(e);
    }
    assert!(matches!(last.unwrap().kind, EventKind::RunFinished { .. }));
    assert!(matches!(
        recorder.events.lock().unwrap().last().unwrap().kind,
        EventKind::RunFinished { .. }
    ));
    // Every batch the observer panicked on is reported.
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert!(!outcome.observer_errors.is_empty());
    for error in &outcome.observer_errors {
        assert_eq!(error.kind(), ErrorKind::Internal);
        assert!(error.to_string().contains("observer bug"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_failure_is_in_the_outcome_and_the_run_goes_on() {
    /// Fails the batch that ends the run, counts the batches it got.
    #[derive(Default)]
    struct FailsAtTheEnd {
        batches: std::sync::atomic::AtomicUsize,
    }
    #[async_trait]
    impl Observer for FailsAtTheEnd {
        async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
            self.batches.fetch_add(1, Ordering::SeqCst);
            match events.iter().any(|e| e.finished_status().is_some()) {
                true => Err(gatewai_core::Error::observer(
                    ErrorKind::Unavailable,
                    "the database is gone",
                )),
                false => Ok(()),
            }
        }
    }
    for kind in EXECUTORS {
        let c = Counters::default();
        let failing = Arc::new(FailsAtTheEnd::default());
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .observer(failing.clone())
            .observer(recorder.clone())
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({})), ("b", "Sum", json!({"add": 1}))],
            &[("a", "out", "b")],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(outcome.observer_errors.len(), 1, "{kind:?}");
        let error = &outcome.observer_errors[0];
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(
            error.to_string().contains("the database is gone"),
            "{error}"
        );
        // The other observer saw the whole run, the failing one every batch.
        let seen = recorder.events.lock().unwrap();
        assert!(seen.last().unwrap().finished_status().is_some());
        assert!(failing.batches.load(Ordering::SeqCst) >= 1);
    }
    // A run whose observers handle everything reports nothing.
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .observer(Arc::new(Recorder::default()))
        .build()
        .unwrap();
    let wf = workflow(engine.registry(), &[("a", "Sum", json!({}))], &[]);
    let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
    assert!(outcome.observer_errors.is_empty());
}

#[test]
fn backoff_never_panics_on_large_settings() {
    let policy = RetryPolicy {
        max_attempts: 100,
        initial_backoff: Duration::from_secs(3600),
        multiplier: 1e9,
        max_backoff: Duration::MAX,
        jitter: 1.0,
    };
    for attempt in [1, 2, 50, u32::MAX] {
        let _ = policy.backoff(attempt);
    }
}

/// Reports progress through its own context and through a copy made with `with_cancel`.
struct Reporter {
    template: NodeTemplate,
}

#[async_trait]
impl Node for Reporter {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        ctx.report_progress(Some(0.5), Some("half".into()));
        let child = ctx.cancellation().child_token();
        let copy = ctx.clone().with_cancel(child);
        assert_eq!(copy.node_id(), ctx.node_id());
        assert_eq!(copy.run_id(), ctx.run_id());
        copy.report_partial_text("from the copy");
        Ok(Outputs::one("out", Item::integer(1)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reaches_observers_from_a_context_and_from_its_copies() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(Recorder::default());
        let engine = engine_with(
            kind,
            &c,
            Reporter {
                template: NodeTemplate::new("Reporter", "Reporter", "Test")
                    .handle(HandleTemplate::output("out", "out", &[DataType::Number])),
            },
        )
        .observer(recorder.clone())
        .build()
        .unwrap();
        let wf = workflow(engine.registry(), &[("r", "Reporter", json!({}))], &[]);
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        let observed = recorder.events.lock().unwrap().clone();
        let kinds: Vec<String> = observed
            .iter()
            .filter(|e| e.node_id() == Some("r"))
            .map(|e| match &e.kind {
                EventKind::NodeQueued { .. } => "queued".to_owned(),
                EventKind::NodeStarted { .. } => "started".to_owned(),
                EventKind::NodeProgress { progress, .. } => format!(
                    "progress {:?} {:?}",
                    progress.message, progress.partial_text
                ),
                EventKind::NodeCompleted { .. } => "completed".to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "queued",
                "started",
                "progress Some(\"half\") None",
                "progress None Some(\"from the copy\")",
                "completed"
            ],
            "{kind:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_get_every_nodes_events_and_the_outcomes_records_in_large_runs() {
    // More nodes than one delivery holds (4,096 events), so the queued events alone span
    // several batches.
    const WIDTH: usize = 5_000;
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(Recorder::default());
        let engine = engine(kind, &c, 1)
            .observer(recorder.clone())
            .build()
            .unwrap();
        let ids: Vec<String> = (0..WIDTH).map(|i| format!("n{i}")).collect();
        let mut nodes: Vec<(&str, &str, serde_json::Value)> = vec![("src", "Sum", json!({}))];
        nodes.extend(ids.iter().map(|id| (id.as_str(), "Sum", json!({"add": 1}))));
        let edges: Vec<(&str, &str, &str)> =
            ids.iter().map(|id| ("src", "out", id.as_str())).collect();
        let wf = workflow(engine.registry(), &nodes, &edges);
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(outcome.executions.len(), WIDTH + 1);
        let observed = recorder.events.lock().unwrap().clone();
        assert!(observed.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
        assert_eq!(observed.len(), 2 + 3 * (WIDTH + 1), "{kind:?}");
        let mut phase: HashMap<&str, u8> = HashMap::new();
        let mut records = HashMap::new();
        for event in &observed {
            let Some(node) = event.node_id() else {
                continue;
            };
            let step = phase.entry(node).or_default();
            match &event.kind {
                EventKind::NodeQueued { .. } => assert_eq!(*step, 0, "{node}"),
                EventKind::NodeStarted { .. } => assert_eq!(*step, 1, "{node}"),
                EventKind::NodeCompleted { record, .. } => {
                    assert_eq!(*step, 2, "{node}");
                    assert!(event.at == record.finished_at.unwrap());
                    records.insert(node.to_owned(), record.clone());
                }
                other => panic!("unexpected {other:?}"),
            }
            *step += 1;
        }
        // The records observers saw are the records the outcome returns: the same ones.
        for execution in &outcome.executions {
            let seen = &records[&*execution.node_id];
            assert!(Arc::ptr_eq(seen, execution), "{}", execution.node_id);
            assert!(execution.started_at <= execution.finished_at);
            assert_eq!(execution.attempts, 1);
        }
    }
}

/// A run large enough to hand its nodes back to the document on two threads: every planned
/// node gets its config back and its new result, every node outside the run keeps its config
/// and its previous result, whatever the document's order (here the reverse of the plan's,
/// with the nodes outside the run in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_run_hands_every_node_back_to_its_document() {
    const WIDTH: usize = 6_000;
    for kind in EXECUTORS {
        let c = Counters::default();
        let engine = engine(kind, &c, 1).build().unwrap();
        let ids: Vec<String> = (0..WIDTH).map(|i| format!("n{i}")).collect();
        let others: Vec<String> = (0..WIDTH / 10).map(|i| format!("other{i}")).collect();
        let mut nodes: Vec<(&str, &str, serde_json::Value)> = Vec::new();
        for (i, id) in ids.iter().enumerate().rev() {
            nodes.push((id.as_str(), "Sum", json!({ "add": i })));
            if i % 10 == 0 {
                let other = &others[i / 10];
                nodes.push((other.as_str(), "Sum", json!({ "add": -(i as i64) })));
            }
        }
        nodes.push(("src", "Sum", json!({ "add": 0.5 })));
        let edges: Vec<(&str, &str, &str)> =
            ids.iter().map(|id| ("src", "out", id.as_str())).collect();
        let mut wf = workflow(engine.registry(), &nodes, &edges);
        let previous = Arc::new(NodeResult::single(gatewai_core::Generation {
            items: vec![Item::number(-1.0).on("kept")],
        }));
        for node in wf.nodes.iter_mut() {
            node.result = Some(previous.clone());
        }
        let before = wf.clone();
        let outcome = engine
            .run(
                wf,
                RunOptions {
                    target: RunTarget::Nodes(ids.clone()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(outcome.executions.len(), WIDTH + 1, "{kind:?}");
        let after = &outcome.workflow;
        assert_eq!(after.nodes.len(), before.nodes.len());
        for (old, new) in before.nodes.iter().zip(&after.nodes) {
            assert_eq!(old.id, new.id, "{kind:?}: the document's order is kept");
            assert_eq!(
                old.config, new.config,
                "{kind:?}: {} got its config back",
                old.id
            );
            let result = new.result.as_ref().expect("every node has a result");
            if old.id.starts_with("other") {
                assert!(
                    Arc::ptr_eq(result, &previous),
                    "{kind:?}: {} keeps its result",
                    old.id
                );
            } else {
                let add = old.config["add"].as_f64().unwrap();
                let expected = if old.id == "src" { add } else { 0.5 + add };
                let value = result.selected().unwrap().items[0].to_item().as_f64();
                assert_eq!(value, Some(expected), "{kind:?}: {}", old.id);
            }
        }
    }
}

/// A kept plan is only reused for the same configs: numbers of different kinds with the same
/// bits (`1.0` and the integer 4607182418800017408, `-1` and `i64::MAX`, `0` and
/// `i64::MIN`) are different configs, each validated and executed with its own value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_plan_never_serves_a_config_whose_numbers_differ() {
    for (first, second, expected) in [
        (
            json!(1.0),
            json!(4607182418800017408u64),
            4607182418800017408.0,
        ),
        (
            json!(-1),
            json!(9223372036854775807u64),
            9223372036854775807.0,
        ),
        (json!(0), json!(0.5f64), 0.5),
    ] {
        let c = Counters::default();
        let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({ "add": first }))],
            &[],
        );
        engine.run(wf, RunOptions::default()).await.unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({ "add": second }))],
            &[],
        );
        let outcome = engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(
            value_of(&outcome, "a"),
            Some(expected),
            "{first} then {second}"
        );
    }
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    for n in [json!(0), json!(i64::MIN)] {
        let wf = workflow(
            engine.registry(),
            &[("a", "Checked", json!({ "n": n }))],
            &[],
        );
        engine.run(wf, RunOptions::default()).await.unwrap();
    }
    assert_eq!(c.checks.load(Ordering::SeqCst), 2, "each config validated");
}

/// A terminal node ignores a pinned result but takes a resumed one: a plan kept from a run
/// that resumed it must not serve a run that pins it (the node would run without its
/// inputs), nor the other way round (its upstream would run again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_and_resumed_results_of_a_terminal_node_make_different_plans() {
    let options = |pinned: bool| {
        let results = HashMap::from([("x".to_owned(), NodeResult::default())]);
        RunOptions {
            target: RunTarget::Nodes(vec!["x".to_owned()]),
            pinned: if pinned {
                results.clone()
            } else {
                HashMap::new()
            },
            resumed: if pinned {
                HashMap::new()
            } else {
                results.into_iter().map(|(id, r)| (id, r.into())).collect()
            },
            ..RunOptions::default()
        }
    };
    for first_pinned in [false, true] {
        let c = Counters::default();
        let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
            .no_cache()
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("a", "Sum", json!({"add": 7})), ("x", "Export", json!({}))],
            &[("a", "out", "x")],
        );
        let first = engine.run(wf.clone(), options(first_pinned)).await.unwrap();
        assert_eq!(first.run.status, RunStatus::Completed);
        let sums = c.sum.load(Ordering::SeqCst);
        let second = engine.run(wf, options(!first_pinned)).await.unwrap();
        assert_eq!(
            second.run.status,
            RunStatus::Completed,
            "{:?}",
            second.run.error
        );
        if first_pinned {
            // Resumed: the terminal node is not run again, nor what it needs.
            assert_eq!(c.sum.load(Ordering::SeqCst), sums, "upstream not executed");
        } else {
            // Pinned: the terminal node runs, on its upstream's value.
            assert_eq!(c.sum.load(Ordering::SeqCst), sums + 1);
            assert_eq!(value_of(&second, "x"), Some(7.0));
        }
    }
}

/// An observer that asks for every record's cache key, as a store's run recorder does.
#[derive(Default)]
struct KeyedRecorder(Recorder);

#[async_trait]
impl Observer for KeyedRecorder {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.0.on_events(events).await
    }
    fn needs_cache_keys(&self) -> bool {
        true
    }
}

/// A resumed run reuses a recorded result only while the node's key (config, input values,
/// type) is the one it was recorded with: a node edited before the resume executes again, and
/// so does what its new value feeds; a result recorded without a key is reused as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_result_is_reused_only_while_its_key_is_unchanged() {
    for kind in EXECUTORS {
        let c = Counters::default();
        let recorder = Arc::new(KeyedRecorder::default());
        // No result cache: keys are computed because the observer asks for them.
        let engine = engine(kind, &c, 1)
            .no_cache()
            .observer(recorder.clone())
            .build()
            .unwrap();
        let doc = |b_add: i64| {
            workflow(
                engine.registry(),
                &[
                    ("a", "Sum", json!({"add": 1})),
                    ("b", "Sum", json!({"add": b_add})),
                    ("c", "Sum", json!({"add": 100})),
                    ("d", "Sum", json!({"add": 5})),
                ],
                &[("a", "out", "b"), ("b", "out", "c")],
            )
        };
        let first = engine.run(doc(10), RunOptions::default()).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 4);
        assert!(
            first.executions.iter().all(|e| e.cache_key.is_some()),
            "{kind:?}: every record carries its key"
        );
        // What a store hands back for the interrupted attempt: each result with its key.
        let recorded = |keyed: bool| -> HashMap<String, Resumed> {
            first
                .executions
                .iter()
                .map(|e| {
                    let result = (**e.output.as_ref().unwrap()).clone();
                    let resumed = match keyed {
                        true => Resumed::keyed(result, e.cache_key.unwrap()),
                        false => result.into(),
                    };
                    (e.node_id.to_string(), resumed)
                })
                .collect()
        };
        let resume = |keyed: bool| RunOptions {
            trigger: TriggerType::Resume,
            resumed: recorded(keyed),
            ..RunOptions::default()
        };
        let sources = |outcome: &gatewai_core::RunOutcome| -> Vec<(String, bool)> {
            let mut s: Vec<_> = outcome
                .executions
                .iter()
                .map(|e| (e.node_id.to_string(), e.cached))
                .collect();
            s.sort();
            s
        };

        // The same document: nothing executes, every key still matches.
        let same = engine.run(doc(10), resume(true)).await.unwrap();
        assert_eq!(
            c.sum.load(Ordering::SeqCst),
            4,
            "{kind:?}: nothing ran again"
        );
        assert_eq!(value_of(&same, "c"), Some(111.0));
        assert!(same.executions.iter().all(|e| e.cached));
        for e in &same.executions {
            let before = first.executions.iter().find(|f| f.node_id == e.node_id);
            assert_eq!(e.cache_key, before.unwrap().cache_key, "{}", e.node_id);
        }

        // `b` edited since: it executes, and `c` (whose input changed) too; `a` and `d` not.
        let edited = engine.run(doc(20), resume(true)).await.unwrap();
        assert_eq!(edited.run.status, RunStatus::Completed);
        assert_eq!(c.sum.load(Ordering::SeqCst), 6, "{kind:?}: b and c ran");
        assert_eq!(value_of(&edited, "b"), Some(21.0));
        assert_eq!(value_of(&edited, "c"), Some(121.0), "not the stale 111");
        assert_eq!(
            sources(&edited),
            [
                ("a".to_owned(), true),
                ("b".to_owned(), false),
                ("c".to_owned(), false),
                ("d".to_owned(), true)
            ]
        );
        let completed: Vec<(String, ResultSource)> = recorder
            .0
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| &*e.run_id == edited.run.id.as_str())
            .filter_map(|e| match &e.kind {
                EventKind::NodeCompleted {
                    node_id, source, ..
                } => Some((node_id.to_string(), *source)),
                _ => None,
            })
            .filter(|(id, _)| id == "a" || id == "b")
            .collect();
        assert_eq!(
            completed,
            [
                ("a".to_owned(), ResultSource::Resumed),
                ("b".to_owned(), ResultSource::Executed)
            ]
        );

        // Pinned as well (a host merging its canvas's pins into the resume): the resumed
        // result still wins, checked against its key with its upstream settled.
        let mut both = resume(true);
        both.pinned.insert(
            "c".to_owned(),
            NodeResult::single(gatewai_core::Generation {
                items: vec![Item::number(-1.0).on("c:out")],
            }),
        );
        let pinned = engine.run(doc(10), both).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 6, "{kind:?}: nothing ran");
        assert_eq!(value_of(&pinned, "c"), Some(111.0));

        // Without keys (records of an engine that did not hash nodes): reused as they are.
        let unkeyed = engine.run(doc(20), resume(false)).await.unwrap();
        assert_eq!(c.sum.load(Ordering::SeqCst), 6, "{kind:?}: nothing ran");
        assert_eq!(value_of(&unkeyed, "c"), Some(111.0));
    }
}

/// A run id or workflow id a store could not keep (empty, or with a control character such
/// as a NUL) is refused before anything runs, naming the option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_with_an_unusable_id_is_refused_before_it_starts() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1).build().unwrap();
    let wf = workflow(engine.registry(), &[("a", "Sum", json!({}))], &[]);
    for (run_id, workflow_id, cache_scope, option) in [
        (Some("run\u{0}1"), None, None, "run_id"),
        (Some(""), None, None, "run_id"),
        (None, Some("wf\n1"), None, "workflow_id"),
        (None, None, Some(""), "cache_scope"),
        (None, None, Some("alice\u{0}"), "cache_scope"),
    ] {
        let options = RunOptions {
            run_id: run_id.map(str::to_owned),
            workflow_id: workflow_id.map(str::to_owned),
            cache_scope: cache_scope.map(str::to_owned),
            ..RunOptions::default()
        };
        let err = engine.run(wf.clone(), options).await.unwrap_err();
        assert!(
            matches!(&err, gatewai_core::Error::Invalid(problems)
                if matches!(problems.iter().next(), Some(ValidationError::InvalidRunOption { option: o, .. }) if *o == option)),
            "{err}"
        );
        assert!(err.to_string().contains(option), "{err}");
    }
    // With an invalid document and a pin of a node it lacks, every problem comes at once.
    let mut invalid = wf.clone();
    invalid.nodes.push(WfNode::new("u", "Unknown"));
    let options = RunOptions {
        run_id: Some(String::new()),
        pinned: [("ghost".to_owned(), NodeResult::default())].into(),
        ..RunOptions::default()
    };
    let err = engine.run(invalid, options).await.unwrap_err();
    let gatewai_core::Error::Invalid(problems) = &err else {
        panic!("{err}")
    };
    let problems: Vec<_> = problems.iter().collect();
    assert!(
        matches!(problems.as_slice(), [
            ValidationError::InvalidRunOption { option: "run_id", .. },
            ValidationError::UnknownNodeType { node_id: u, .. },
            ValidationError::NodeNotFound { node_id: ghost },
        ] if u == "u" && ghost == "ghost"),
        "{err}"
    );
    assert_eq!(c.sum.load(Ordering::SeqCst), 0, "nothing ran");
}

/// Stores its config's `text` as an asset in the run's asset store and outputs it.
struct Stash {
    template: NodeTemplate,
    runs: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Stash {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let text = ctx.raw_config()["text"].as_str().unwrap_or("").to_owned();
        let asset = ctx
            .assets()
            .put(gatewai_core::NewAsset {
                name: "stash.txt".into(),
                mime_type: "text/plain".into(),
                bytes: text.into_bytes().into(),
                width: None,
                height: None,
                fps: None,
                duration: None,
                metadata: None,
            })
            .await
            .map_err(NodeError::from)?;
        Ok(Outputs::one("file", Item::file(DataType::File, asset)))
    }
}

/// A run's own asset store takes its nodes' assets instead of the engine's, and a cache scope
/// keeps runs of different scopes (users) from sharing cached results, while runs of one
/// scope still share them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_can_bring_its_own_asset_store_and_cache_scope() {
    for kind in EXECUTORS {
        let runs = Arc::new(AtomicUsize::new(0));
        let mut reg = NodeRegistry::new();
        reg.register(Stash {
            template: NodeTemplate::new("Stash", "Stash", "Test").handle(HandleTemplate::output(
                "file",
                "File",
                &[DataType::File],
            )),
            runs: runs.clone(),
        })
        .unwrap();
        let shared = Arc::new(gatewai_core::MemoryAssetStore::new());
        let engine = Engine::builder()
            .registry(reg)
            .executor(kind)
            .assets(shared.clone())
            .cache(Arc::new(MemoryResultCache::default()))
            .build()
            .unwrap();
        let wf = workflow(
            engine.registry(),
            &[("s", "Stash", json!({"text": "alice's secret"}))],
            &[],
        );
        let as_user = |user: &str, assets: &Arc<gatewai_core::MemoryAssetStore>| RunOptions {
            assets: Some(assets.clone() as Arc<dyn gatewai_core::AssetStore>),
            cache_scope: Some(user.to_owned()),
            ..RunOptions::default()
        };
        let (alice, bob) = (
            Arc::new(gatewai_core::MemoryAssetStore::new()),
            Arc::new(gatewai_core::MemoryAssetStore::new()),
        );
        let first = engine
            .run(wf.clone(), as_user("alice", &alice))
            .await
            .unwrap();
        assert_eq!(first.run.status, RunStatus::Completed, "{kind:?}");
        assert_eq!(
            first.run.cache_scope.as_deref(),
            Some("alice"),
            "kept in the record"
        );
        assert_eq!(
            (alice.len(), shared.len()),
            (1, 0),
            "in the run's own store"
        );
        // Bob's run of the same document: not served from Alice's cache entry.
        let second = engine.run(wf.clone(), as_user("bob", &bob)).await.unwrap();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            2,
            "{kind:?}: bob's run executed"
        );
        assert!(!second.executions[0].cached);
        assert_eq!((bob.len(), alice.len()), (1, 1));
        // Alice again: her own entry is a hit.
        let third = engine
            .run(wf.clone(), as_user("alice", &alice))
            .await
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 2, "{kind:?}");
        assert!(third.executions[0].cached);
        // A run with neither: the engine's store, the unscoped cache.
        engine.run(wf, RunOptions::default()).await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert_eq!(shared.len(), 1);
    }
}

/// An unbounded grace period (never abandon a node) is allowed: a cancelled run still ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_cancel_grace_still_cancels() {
    let c = Counters::default();
    let engine = engine(ExecutorKind::MultiThreaded, &c, 1)
        .cancel_grace(Duration::MAX)
        .build()
        .unwrap();
    let wf = workflow(
        engine.registry(),
        &[("s", "Sleep", json!({"ms": 10_000}))],
        &[],
    );
    let handle = engine.start(wf, RunOptions::default()).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(5), handle.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.run.status, RunStatus::Cancelled);
}
