//! Stress tests of the run's drive loops: random DAGs of nodes that finish at once, yield,
//! sleep, spin, panic, fail or retry, many runs at once on one engine with shared limits,
//! on a current-thread runtime, a one-worker and a four-worker runtime, both executors.

use async_trait::async_trait;
use gatewai_core::engine::{ExecutorKind, NodePolicy};
use gatewai_core::model::Node as WfNode;
use gatewai_core::{
    CachePolicy, DataType, Edge, Engine, ErrorKind, ExecutionStatus, HandleTemplate, Inputs, Item,
    Node, NodeContext, NodeError, NodeRegistry, NodeTemplate, Outputs, RetryPolicy, RunOptions,
    RunStatus, Workflow,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const EXECUTORS: [ExecutorKind; 2] = [ExecutorKind::MultiThreaded, ExecutorKind::SingleThreaded];

struct Mix {
    template: NodeTemplate,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

#[async_trait]
impl Node for Mix {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }
    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let cfg = ctx.raw_config();
        let mode = cfg
            .get("mode")
            .and_then(|v| v.as_str())
            .unwrap_or("instant");
        let n = cfg.get("n").and_then(|v| v.as_u64()).unwrap_or(1);
        let result = match mode {
            "yield" => {
                for _ in 0..n {
                    tokio::task::yield_now().await;
                }
                Ok(())
            }
            "sleep" => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(n)) => Ok(()),
                    _ = ctx.cancelled() => Err(NodeError::cancelled()),
                }
            }
            "spin" => {
                let until = Instant::now() + Duration::from_micros(n);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                Ok(())
            }
            "block_in_place" => {
                tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(n)));
                Ok(())
            }
            "panic" => {
                self.active.fetch_sub(1, Ordering::SeqCst);
                panic!("boom")
            }
            "fail" => Err(NodeError::new(ErrorKind::InvalidInput, "fail")),
            "flaky" => {
                if ctx.attempt() < 2 {
                    Err(NodeError::new(ErrorKind::Unavailable, "again"))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        };
        self.active.fetch_sub(1, Ordering::SeqCst);
        result.map(|()| Outputs::one("out", Item::number(1.0)))
    }
}

fn template(ty: &str) -> NodeTemplate {
    NodeTemplate::new(ty, ty, "Test")
        .handle(HandleTemplate::input("in", "In", &[DataType::Number]).multiple())
        .handle(HandleTemplate::output("out", "Out", &[DataType::Number]))
}

struct Peaks {
    limited: (Arc<AtomicUsize>, Arc<AtomicUsize>),
    free: (Arc<AtomicUsize>, Arc<AtomicUsize>),
}

fn engine(kind: ExecutorKind, limit: Option<usize>, global: Option<usize>) -> (Engine, Peaks) {
    let peaks = Peaks {
        limited: Default::default(),
        free: Default::default(),
    };
    let mut r = NodeRegistry::new();
    r.register(Mix {
        template: template("Mix"),
        active: peaks.free.0.clone(),
        peak: peaks.free.1.clone(),
    })
    .unwrap();
    r.register(Mix {
        template: template("Limited"),
        active: peaks.limited.0.clone(),
        peak: peaks.limited.1.clone(),
    })
    .unwrap();
    let mut b = Engine::builder()
        .registry(r)
        .executor(kind)
        .no_cache()
        .cancel_grace(Duration::from_millis(50))
        .retry_policy(RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            jitter: 0.0,
            ..RetryPolicy::none()
        });
    if let Some(n) = limit {
        b = b.node_policy(
            "Limited",
            NodePolicy {
                max_concurrency: Some(n),
                timeout: Some(Duration::from_secs(5)),
                ..Default::default()
            },
        );
    }
    if let Some(n) = global {
        b = b.max_concurrency(n);
    }
    (b.build().unwrap(), peaks)
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random DAG of `n` nodes; `bad` lets it have panicking and failing nodes.
fn random_dag(seed: u64, n: usize, bad: bool) -> Workflow {
    let mut rng = Lcg(seed);
    let mut wf = Workflow::default();
    for i in 0..n {
        let id = format!("n{i}");
        let ty = if rng.below(4) == 0 { "Limited" } else { "Mix" };
        let (mode, arg) = match rng.below(if bad { 9 } else { 7 }) {
            0 | 1 => ("instant", 0),
            2 => ("yield", 1 + rng.below(4)),
            3 | 4 => ("sleep", rng.below(4)),
            5 => ("spin", rng.below(200)),
            6 => ("flaky", 0),
            7 => ("panic", 0),
            _ => ("fail", 0),
        };
        let mut node = WfNode::new(id.clone(), ty);
        node.config = json!({"mode": mode, "n": arg});
        wf.nodes.push(node);
        for h in ["in", "out"] {
            let t = template(ty);
            let ht = t.template_handles.iter().find(|t| t.id == h).unwrap();
            wf.handles.push(ht.instantiate(&id, format!("{id}:{h}")));
        }
        // Up to three upstream nodes among the earlier ones.
        if i > 0 {
            for _ in 0..rng.below(4) {
                let s = rng.below(i as u64);
                let eid = format!("e{}", wf.edges.len());
                if wf
                    .edges
                    .iter()
                    .any(|e| e.source == format!("n{s}") && e.target == id)
                {
                    continue;
                }
                wf.edges.push(Edge {
                    id: eid,
                    source: format!("n{s}"),
                    target: id.clone(),
                    source_handle_id: format!("n{s}:out"),
                    target_handle_id: format!("{id}:in"),
                    extra: Default::default(),
                });
            }
        }
    }
    wf
}

/// Many random runs at once on one engine; each must finish (no hang) with every node
/// settled, and the type limit must hold.
async fn many_runs(kind: ExecutorKind, rounds: u64, runs: u64, nodes: usize, bad: bool) {
    let (engine, peaks) = engine(kind, Some(2), Some(6));
    for round in 0..rounds {
        let mut handles = Vec::new();
        for r in 0..runs {
            let wf = random_dag(round * 1000 + r + 1, nodes, bad);
            handles.push(engine.start(wf, RunOptions::default()).unwrap());
        }
        for (i, h) in handles.into_iter().enumerate() {
            let outcome = tokio::time::timeout(Duration::from_secs(20), h.wait())
                .await
                .unwrap_or_else(|_| panic!("{kind:?}: run {i} of round {round} hung"))
                .unwrap();
            assert_eq!(outcome.executions.len(), nodes, "{kind:?}");
            if !bad {
                assert_eq!(outcome.run.status, RunStatus::Completed, "{kind:?}");
            }
            assert!(
                outcome
                    .executions
                    .iter()
                    .all(|e| e.status != ExecutionStatus::Cancelled),
                "{kind:?}: a node was cancelled in a run nobody cancelled"
            );
        }
    }
    assert!(
        peaks.limited.1.load(Ordering::SeqCst) <= 2,
        "type limit exceeded"
    );
    assert!(
        peaks.limited.1.load(Ordering::SeqCst) + peaks.free.1.load(Ordering::SeqCst) <= 12,
        "global limit grossly exceeded"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn stress_current_thread() {
    for kind in EXECUTORS {
        many_runs(kind, 30, 8, 60, false).await;
        many_runs(kind, 10, 8, 60, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn stress_one_worker() {
    for kind in EXECUTORS {
        many_runs(kind, 30, 8, 60, false).await;
        many_runs(kind, 10, 8, 60, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stress_four_workers() {
    for kind in EXECUTORS {
        many_runs(kind, 30, 8, 60, false).await;
        many_runs(kind, 10, 8, 60, true).await;
    }
}

/// Tiny runs of instant and yielding nodes, many in a row: the tightest interleavings of
/// enqueue / retire / demotion.
async fn tight_loops(kind: ExecutorKind) {
    let (engine, _) = engine(kind, None, None);
    for seed in 0..3000u64 {
        let mut wf = random_dag(seed + 7, 12, false);
        for n in &mut wf.nodes {
            n.node_type = "Mix".into();
            let mode = if seed % 3 == 0 { "yield" } else { "instant" };
            n.config = json!({"mode": mode, "n": 1});
        }
        let outcome = tokio::time::timeout(
            Duration::from_secs(10),
            engine.run(wf, RunOptions::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{kind:?}: run {seed} hung"))
        .unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tight_loops_two_workers() {
    for kind in EXECUTORS {
        tight_loops(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn tight_loops_eight_workers() {
    for kind in EXECUTORS {
        tight_loops(kind).await;
    }
}

/// A fan-out of many more waiting nodes than workers: they all wait at once.
async fn wide_waiting_fan_out(kind: ExecutorKind) {
    let (engine, peaks) = engine(kind, None, None);
    let mut wf = random_dag(1, 1, false);
    wf.nodes[0].config = json!({"mode": "instant"});
    let n = 200;
    for i in 1..=n {
        let id = format!("w{i}");
        let mut node = WfNode::new(id.clone(), "Mix");
        node.config = json!({"mode": "sleep", "n": 200});
        wf.nodes.push(node);
        for h in ["in", "out"] {
            let t = template("Mix");
            let ht = t.template_handles.iter().find(|t| t.id == h).unwrap();
            wf.handles.push(ht.instantiate(&id, format!("{id}:{h}")));
        }
        wf.edges.push(Edge {
            id: format!("e{i}"),
            source: "n0".into(),
            target: id.clone(),
            source_handle_id: "n0:out".into(),
            target_handle_id: format!("{id}:in"),
            extra: Default::default(),
        });
    }
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        engine.run(wf, RunOptions::default()),
    )
    .await
    .expect("hung")
    .unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(
        peaks.free.1.load(Ordering::SeqCst),
        n,
        "{kind:?}: not all waited at once"
    );
    assert!(started.elapsed() < Duration::from_millis(1500), "{kind:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn wide_waiting_fan_out_current_thread() {
    for kind in EXECUTORS {
        wide_waiting_fan_out(kind).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn wide_waiting_fan_out_one_worker() {
    for kind in EXECUTORS {
        wide_waiting_fan_out(kind).await;
    }
}

/// Runs cancelled at random moments still end.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn cancelled_runs_end() {
    for kind in EXECUTORS {
        let (engine, _) = engine(kind, Some(2), Some(4));
        for round in 0..20u64 {
            let mut handles = Vec::new();
            for r in 0..6 {
                handles.push(
                    engine
                        .start(random_dag(round * 100 + r, 50, true), RunOptions::default())
                        .unwrap(),
                );
            }
            tokio::time::sleep(Duration::from_millis(round % 7)).await;
            for h in &handles {
                h.cancel();
            }
            for h in handles {
                tokio::time::timeout(Duration::from_secs(10), h.wait())
                    .await
                    .expect("a cancelled run hung")
                    .unwrap();
            }
        }
    }
}

/// Nodes that block their thread with `block_in_place` (tokio hands the worker's other
/// tasks to a new thread meanwhile) all complete. Only a `Pending` poll frees a drive loop, so
/// they count as free: at most one runs per worker, as the engine's docs say (with a task per
/// node they all ran at once; a node should block in `spawn_blocking`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_blocking_their_thread_all_complete_one_per_worker() {
    let (engine, peaks) = engine(ExecutorKind::MultiThreaded, None, None);
    let mut wf = Workflow::default();
    for i in 0..8 {
        let id = format!("b{i}");
        let mut node = WfNode::new(id.clone(), "Mix");
        node.config = json!({"mode": "block_in_place", "n": 50});
        wf.nodes.push(node);
        for h in ["in", "out"] {
            let t = template("Mix");
            let ht = t.template_handles.iter().find(|t| t.id == h).unwrap();
            wf.handles.push(ht.instantiate(&id, format!("{id}:{h}")));
        }
    }
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        engine.run(wf, RunOptions::default()),
    )
    .await
    .expect("the run ends")
    .unwrap();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    assert_eq!(outcome.executions.len(), 8);
    let peak = peaks.free.1.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak {peak}");
}

/// Records the tokio task each execution ran on.
struct OnTask {
    template: NodeTemplate,
    tasks: Arc<std::sync::Mutex<std::collections::HashSet<tokio::task::Id>>>,
}

#[async_trait]
impl Node for OnTask {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }
    async fn execute(&self, _ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        if let Some(id) = tokio::task::try_id() {
            self.tasks.lock().unwrap().insert(id);
        }
        Ok(Outputs::one("out", Item::number(1.0)))
    }
}

/// The tasks a chain of 1,000 instant nodes and a fan-out of 1,000 ran on.
async fn tasks_of_instant_nodes(kind: ExecutorKind) -> (usize, usize) {
    let tasks = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let mut r = NodeRegistry::new();
    r.register(OnTask {
        template: template("OnTask"),
        tasks: tasks.clone(),
    })
    .unwrap();
    let engine = Engine::builder()
        .registry(r)
        .executor(kind)
        .no_cache()
        .build()
        .unwrap();
    let shape = |fan: bool| {
        let mut wf = Workflow::default();
        for i in 0..1000 {
            let id = format!("n{i}");
            wf.nodes.push(WfNode::new(id.clone(), "OnTask"));
            for h in ["in", "out"] {
                let t = template("OnTask");
                let ht = t.template_handles.iter().find(|t| t.id == h).unwrap();
                wf.handles.push(ht.instantiate(&id, format!("{id}:{h}")));
            }
            if i > 0 {
                let from = if fan { 0 } else { i - 1 };
                wf.edges.push(Edge {
                    id: format!("e{i}"),
                    source: format!("n{from}"),
                    target: id.clone(),
                    source_handle_id: format!("n{from}:out"),
                    target_handle_id: format!("{id}:in"),
                    extra: Default::default(),
                });
            }
        }
        wf
    };
    let mut counts = [0; 2];
    for (fan, count) in [false, true].into_iter().zip(&mut counts) {
        tasks.lock().unwrap().clear();
        let outcome = engine.run(shape(fan), RunOptions::default()).await.unwrap();
        assert_eq!(outcome.run.status, RunStatus::Completed);
        *count = tasks.lock().unwrap().len();
    }
    (counts[0], counts[1])
}

/// Nodes that never wait never start another driver: a chain of 1,000 instant nodes runs on
/// one task from start to end (its driver yields every so often, as tokio's budget asks, and
/// goes on: a yield is not a wait), and a fan-out on at most one task per worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_nodes_run_on_one_driver_per_worker() {
    for kind in EXECUTORS {
        let (chain, fan) = tasks_of_instant_nodes(kind).await;
        assert_eq!(chain, 1, "{kind:?}: the chain ran on {chain} tasks");
        assert!(
            (1..=2).contains(&fan),
            "{kind:?}: the fan ran on {fan} tasks"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn instant_nodes_run_on_one_driver_current_thread() {
    for kind in EXECUTORS {
        assert_eq!(tasks_of_instant_nodes(kind).await, (1, 1), "{kind:?}");
    }
}
