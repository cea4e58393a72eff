//! Shared code for the criterion benchmarks: generated graphs (chain, fan-out/fan-in, random
//! layered DAGs) as Gatewai workflows, a no-op summing node, and the two hand-written baseline
//! schedulers the engine is measured against.

use async_trait::async_trait;
use gatewai_core::model::NodeResult;
use gatewai_core::model::{Handle, Node as WfNode};
use gatewai_core::{
    DataType, Edge, HandleTemplate, HandleType, Inputs, Item, Node, NodeContext, NodeError,
    NodeRegistry, NodeTemplate, Outputs, Workflow,
};
use gatewai_core::{ExecutionStatus, Generation, InputSlot, InputSnapshot, NodeExecution};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// The allocator the benchmarks run on: the system's, or mimalloc with `--features mimalloc`
/// (engine and baselines always share one, so ratios compare like with like).
#[cfg(feature = "mimalloc")]
pub type HostAllocator = mimalloc::MiMalloc;
/// The allocator the benchmarks run on: the system's, or mimalloc with `--features mimalloc`
/// (engine and baselines always share one, so ratios compare like with like).
#[cfg(not(feature = "mimalloc"))]
pub type HostAllocator = std::alloc::System;

/// The allocator the benchmarks' counting allocators forward to.
#[cfg(feature = "mimalloc")]
pub const HOST_ALLOCATOR: HostAllocator = mimalloc::MiMalloc;
/// The allocator the benchmarks' counting allocators forward to.
#[cfg(not(feature = "mimalloc"))]
pub const HOST_ALLOCATOR: HostAllocator = std::alloc::System;

/// The allocator's name, for reports.
pub const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

/// Values are kept below this modulus so sums stay exact.
pub const MODULUS: i64 = 1_000_003;

/// A generated DAG: `parents[i]` are the nodes feeding node `i`, all with smaller indices.
#[derive(Debug, Clone)]
pub struct Dag {
    /// Parents of each node, in edge order.
    pub parents: Vec<Vec<u32>>,
}

impl Dag {
    /// A chain of `n` nodes.
    pub fn chain(n: usize) -> Dag {
        Dag {
            parents: (0..n)
                .map(|i| if i == 0 { vec![] } else { vec![i as u32 - 1] })
                .collect(),
        }
    }

    /// One source, `width` middle nodes, one sink.
    pub fn fan(width: usize) -> Dag {
        let mut parents = vec![vec![]];
        parents.extend((0..width).map(|_| vec![0]));
        parents.push((1..=width as u32).collect());
        Dag { parents }
    }

    /// `layers` layers of `width` nodes, each node after the first layer with `k` random
    /// parents in the previous layer, plus one sink fed by the whole last layer.
    pub fn layered(layers: usize, width: usize, k: usize, seed: u64) -> Dag {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut parents = Vec::with_capacity(layers * width + 1);
        for layer in 0..layers {
            for _ in 0..width {
                if layer == 0 {
                    parents.push(vec![]);
                } else {
                    let base = ((layer - 1) * width) as u32;
                    let mut p: Vec<u32> = Vec::with_capacity(k);
                    while p.len() < k.min(width) {
                        let c = base + rng.u32(0..width as u32);
                        if !p.contains(&c) {
                            p.push(c);
                        }
                    }
                    parents.push(p);
                }
            }
        }
        let last = ((layers - 1) * width) as u32;
        parents.push((last..last + width as u32).collect());
        Dag { parents }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// Whether the DAG is empty.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }

    /// Children lists.
    pub fn children(&self) -> Vec<Vec<u32>> {
        let mut children = vec![Vec::new(); self.len()];
        for (i, ps) in self.parents.iter().enumerate() {
            for &p in ps {
                children[p as usize].push(i as u32);
            }
        }
        children
    }

    /// Each node's count of parents not yet done, for a ready-queue scheduler.
    fn in_degrees(&self) -> Vec<AtomicU32> {
        self.parents
            .iter()
            .map(|p| AtomicU32::new(p.len() as u32))
            .collect()
    }

    /// The value of the last node (the sink) under the summing rule, computed sequentially.
    pub fn sequential_sink(&self) -> i64 {
        let mut values = vec![0i64; self.len()];
        for i in 0..self.len() {
            values[i] = node_value(self.parents[i].iter().map(|&p| values[p as usize]));
        }
        values[self.len() - 1]
    }

    /// The DAG as a Gatewai workflow of `Sum` nodes (`n{i}`), each with an `in` (many edges)
    /// and an `out` handle.
    pub fn workflow(&self) -> Workflow {
        let mut wf = Workflow::default();
        wf.nodes.reserve(self.len());
        wf.handles.reserve(self.len() * 2);
        for i in 0..self.len() {
            let id = format!("n{i}");
            wf.handles.push(handle(&id, "in", HandleType::Input));
            wf.handles.push(handle(&id, "out", HandleType::Output));
            wf.nodes.push(WfNode::new(id, "Sum"));
        }
        let mut e = 0usize;
        for (i, ps) in self.parents.iter().enumerate() {
            for &p in ps {
                wf.edges.push(Edge {
                    id: format!("e{e}"),
                    source: format!("n{p}"),
                    target: format!("n{i}"),
                    source_handle_id: format!("n{p}:out"),
                    target_handle_id: format!("n{i}:in"),
                    extra: Default::default(),
                });
                e += 1;
            }
        }
        wf
    }
}

fn handle(node: &str, id: &str, handle_type: HandleType) -> Handle {
    Handle {
        id: format!("{node}:{id}"),
        handle_type,
        data_types: vec![DataType::Number],
        label: id.to_owned(),
        order: 0,
        required: false,
        template_handle_id: Some(id.to_owned()),
        node_id: node.to_owned(),
        description: None,
        multiple: None,
        extra: Default::default(),
    }
}

/// The summing rule: (sum of inputs + 1) mod [`MODULUS`].
pub fn node_value(inputs: impl Iterator<Item = i64>) -> i64 {
    (inputs.fold(0i64, |a, b| (a + b) % MODULUS) + 1) % MODULUS
}

/// A no-op node that sums its inputs by [`node_value`].
pub struct Sum {
    template: NodeTemplate,
}

impl Default for Sum {
    fn default() -> Self {
        Sum {
            template: NodeTemplate::new("Sum", "Sum", "Bench")
                .handle(HandleTemplate::input("in", "in", &[DataType::Number]).multiple())
                .handle(HandleTemplate::output("out", "out", &[DataType::Number])),
        }
    }
}

#[async_trait]
impl Node for Sum {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }
    async fn execute(&self, _ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let v = node_value(inputs.values().filter_map(Item::as_f64).map(|f| f as i64));
        Ok(Outputs::one("out", Item::integer(v)))
    }
}

/// A registry with the [`Sum`] node.
pub fn registry() -> NodeRegistry {
    let mut r = NodeRegistry::new();
    // A fresh registry cannot already hold `Sum`.
    let _ = r.register(Sum::default());
    r
}

/// An engine with the [`Sum`] node, no result cache (every run executes every node), and one
/// observer.
pub fn observed_engine(observer: Arc<dyn gatewai_core::Observer>) -> gatewai_core::Engine {
    gatewai_core::Engine::builder()
        .registry(registry())
        .no_cache()
        .observer(observer)
        .build()
        .expect("engine")
}

/// The median of some times (of interleaved runs, in the benches' summary lines).
pub fn median(mut times: Vec<std::time::Duration>) -> std::time::Duration {
    times.sort();
    times[times.len() / 2]
}

/// The sink's value from a run outcome.
pub fn sink_value(outcome: &gatewai_core::RunOutcome, dag: &Dag) -> Option<i64> {
    let id = format!("n{}", dag.len() - 1);
    outcome
        .results
        .get(id.as_str())?
        .selected()?
        .items
        .first()?
        .to_item()
        .as_f64()
        .map(|f| f as i64)
}

/// Baseline 1: a sequential loop over the nodes in topological order.
pub fn sequential_baseline(dag: &Dag) -> i64 {
    dag.sequential_sink()
}

/// The artifacts floor: the tokio ready-queue scheduler of [`tokio_baseline`], where each node
/// also does what the engine's goal requires of every node and nothing else — its inputs
/// gathered into [`Inputs`] from its parents' [`NodeResult`]s, the [`Sum`] node called through
/// the [`Node`] trait, its outputs kept as a shared `NodeResult` (one generation, its item on the
/// node's own output handle), and a shared [`NodeExecution`] record with the two clock readings
/// its times need. No validation, plan, events, limits, retries, timeouts, cancellation or
/// cache. It is a plain implementation, not a bound: an estimate of what the required records
/// and results cost when built the straightforward way on the baseline's own scheduler (a task
/// per node, which the engine's drivers avoid; `Inputs::new` copies its one slot out of a `Vec`,
/// an allocation the engine avoids).
///
/// Returns the sink's value and the run's records and results, which the caller drops outside
/// its timing (as criterion drops an engine run's outcome).
pub async fn tokio_floor(graph: Arc<FloorGraph>) -> (i64, FloorRun) {
    fn spawn(state: Arc<FloorState>, i: u32) {
        tokio::spawn(async move {
            let at = i as usize;
            let started = std::time::Instant::now();
            let graph = &*state.graph;
            let parents = &graph.dag.parents[at];
            let mut values = Vec::with_capacity(parents.len());
            for &p in parents {
                let item = state.results[p as usize]
                    .get()
                    .and_then(|r| Some(r.selected()?.items.first()?.to_item()));
                match item {
                    Some(item) => values.push(item),
                    // A parent settled without a value: a bug the tests catch (a panic here
                    // would leave the run waiting forever instead).
                    None => {
                        state.faults.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let named = &graph.names[at];
            let inputs = Arc::new(Inputs::new(vec![InputSlot {
                handle_id: named.input.clone(),
                template_handle_id: Some(state.slot.0.clone()),
                label: state.slot.1.clone(),
                multiple: true,
                values,
            }]));
            let outputs = match state.node.execute(&state.ctx, &inputs).await {
                Ok(outputs) => outputs,
                Err(_) => {
                    state.faults.fetch_add(1, Ordering::Relaxed);
                    Outputs::none()
                }
            };
            let generation = Generation {
                items: outputs
                    .generations()
                    .flatten()
                    .map(|(_, item)| item.clone().on(named.out.clone()))
                    .collect(),
            };
            let result = Arc::new(NodeResult {
                selected_output_index: 0,
                outputs: vec![generation],
            });
            let finished = std::time::Instant::now();
            let record = NodeExecution {
                run_id: state.run_id.clone(),
                node_id: named.id.clone(),
                node_type: state.node_type.clone(),
                label: state.node_type.clone(),
                status: ExecutionStatus::Completed,
                input: Some(InputSnapshot::of(inputs)),
                output: Some(result.clone()),
                error: None,
                cached: false,
                started_at: Some(state.at(started)),
                finished_at: Some(state.at(finished)),
                duration_ms: Some(finished.saturating_duration_since(started).as_millis() as u64),
                attempts: 1,
                cache_key: None,
            };
            let _ = state.records[at].set(Arc::new(record));
            let _ = state.results[at].set(result);
            for &c in &graph.children[at] {
                if state.remaining[c as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    spawn(state.clone(), c);
                }
            }
            if state.done.fetch_add(1, Ordering::AcqRel) + 1 == graph.dag.len() {
                state.notify.notify_one();
            }
        });
    }
    let dag = &graph.dag;
    let n = dag.len();
    let sum: Arc<dyn Node> = Arc::new(Sum::default());
    let state = Arc::new(FloorState {
        remaining: dag.in_degrees(),
        results: (0..n).map(|_| OnceLock::new()).collect(),
        records: (0..n).map(|_| OnceLock::new()).collect(),
        ctx: NodeContext::detached(
            "n",
            "Sum",
            serde_json::Value::Null,
            Arc::new(gatewai_core::MemoryAssetStore::default()),
        ),
        node: sum,
        run_id: Arc::from("floor"),
        node_type: Arc::from("Sum"),
        slot: (Arc::from("in"), Arc::from("in")),
        faults: AtomicUsize::new(0),
        origin: (std::time::Instant::now(), chrono::Utc::now()),
        done: AtomicUsize::new(0),
        notify: tokio::sync::Notify::new(),
        graph: graph.clone(),
    });
    for (i, p) in graph.dag.parents.iter().enumerate() {
        if p.is_empty() {
            spawn(state.clone(), i as u32);
        }
    }
    state.notify.notified().await;
    let sink = state.results[n - 1]
        .get()
        .and_then(|r| r.selected()?.items.first()?.to_item().as_f64());
    (sink.map_or(i64::MIN, |f| f as i64), FloorRun(state))
}

/// What a [`tokio_floor`] run kept: its records and results.
pub struct FloorRun(Arc<FloorState>);

impl FloorRun {
    /// How many parents were found without a value and node calls failed (0 in a correct
    /// run).
    pub fn faults(&self) -> usize {
        self.0.faults.load(Ordering::Relaxed)
    }

    /// The run's node records, in node order (`None` for a node that did not run).
    pub fn records(&self) -> impl Iterator<Item = Option<&NodeExecution>> {
        self.0.records.iter().map(|r| r.get().map(|r| &**r))
    }
}

/// The shared state of a [`tokio_floor`] run.
struct FloorState {
    graph: Arc<FloorGraph>,
    remaining: Vec<AtomicU32>,
    results: Vec<OnceLock<Arc<NodeResult>>>,
    records: Vec<OnceLock<Arc<NodeExecution>>>,
    node: Arc<dyn Node>,
    ctx: NodeContext,
    run_id: Arc<str>,
    node_type: Arc<str>,
    /// The input slot's template handle id and label (one `Arc` each for every node, as the
    /// engine's plan shares equal labels and template ids).
    slot: (Arc<str>, Arc<str>),
    /// Parents found without a value and failed node calls (none in a correct run).
    faults: AtomicUsize,
    /// The run's start, on the monotonic clock and on the wall clock.
    origin: (std::time::Instant, chrono::DateTime<chrono::Utc>),
    done: AtomicUsize,
    notify: tokio::sync::Notify,
}

impl FloorState {
    /// The wall-clock time of a monotonic reading, as the engine's run clock gives it.
    fn at(&self, t: std::time::Instant) -> chrono::DateTime<chrono::Utc> {
        let since = t.saturating_duration_since(self.origin.0);
        self.origin.1 + chrono::TimeDelta::from_std(since).unwrap_or_default()
    }
}

/// A graph prepared for [`tokio_floor`] once (as the engine keeps a document's plan): its
/// children lists and each node's id and output handle id.
pub struct FloorGraph {
    dag: Dag,
    children: Vec<Vec<u32>>,
    names: Vec<FloorNames>,
}

/// A node's id and output handle id.
struct FloorNames {
    id: Arc<str>,
    input: Arc<str>,
    out: Arc<str>,
}

impl FloorGraph {
    /// Prepares `dag` (node `i` is `n{i}`, as in [`Dag::workflow`]).
    pub fn new(dag: &Dag) -> Self {
        FloorGraph {
            dag: dag.clone(),
            children: dag.children(),
            names: (0..dag.len())
                .map(|i| FloorNames {
                    id: Arc::from(format!("n{i}")),
                    input: Arc::from(format!("n{i}:in")),
                    out: Arc::from(format!("n{i}:out")),
                })
                .collect(),
        }
    }
}

/// Baseline 2: a plain tokio ready-queue scheduler — in-degree counters, and a task spawned
/// for each node when its inputs are ready; each task releases its children.
pub async fn tokio_baseline(dag: Arc<Dag>, children: Arc<Vec<Vec<u32>>>) -> i64 {
    struct State {
        dag: Arc<Dag>,
        children: Arc<Vec<Vec<u32>>>,
        remaining: Vec<AtomicU32>,
        values: Vec<AtomicI64>,
        done: AtomicUsize,
        notify: tokio::sync::Notify,
    }
    fn spawn(state: Arc<State>, i: u32) {
        tokio::spawn(async move {
            let v = node_value(
                state.dag.parents[i as usize]
                    .iter()
                    .map(|&p| state.values[p as usize].load(Ordering::Acquire)),
            );
            state.values[i as usize].store(v, Ordering::Release);
            for &c in &state.children[i as usize] {
                if state.remaining[c as usize].fetch_sub(1, Ordering::AcqRel) == 1 {
                    spawn(state.clone(), c);
                }
            }
            if state.done.fetch_add(1, Ordering::AcqRel) + 1 == state.dag.len() {
                state.notify.notify_one();
            }
        });
    }
    let n = dag.len();
    let state = Arc::new(State {
        remaining: dag.in_degrees(),
        values: (0..n).map(|_| AtomicI64::new(0)).collect(),
        done: AtomicUsize::new(0),
        notify: tokio::sync::Notify::new(),
        dag: dag.clone(),
        children,
    });
    for (i, p) in dag.parents.iter().enumerate() {
        if p.is_empty() {
            spawn(state.clone(), i as u32);
        }
    }
    state.notify.notified().await;
    state.values[n - 1].load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graphs() -> Vec<Dag> {
        vec![Dag::chain(50), Dag::fan(40), Dag::layered(6, 7, 3, 11)]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_baselines_and_the_floor_compute_the_sequential_sink() {
        for dag in graphs() {
            let expected = dag.sequential_sink();
            let (dag_arc, children) = (Arc::new(dag.clone()), Arc::new(dag.children()));
            assert_eq!(tokio_baseline(dag_arc, children).await, expected);
            let (sink, run) = tokio_floor(Arc::new(FloorGraph::new(&dag))).await;
            assert_eq!(sink, expected, "{} nodes", dag.len());
            assert_eq!(run.faults(), 0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_floor_keeps_a_record_per_node_with_its_inputs_and_result() {
        let dag = Dag::layered(5, 4, 3, 3);
        let (_, run) = tokio_floor(Arc::new(FloorGraph::new(&dag))).await;
        let records: Vec<&NodeExecution> = run.records().map(|r| r.expect("ran")).collect();
        assert_eq!(records.len(), dag.len());
        for (i, record) in records.iter().enumerate() {
            assert_eq!(&*record.node_id, format!("n{i}"));
            let snapshot = record.input.as_ref().expect("inputs").to_json();
            assert!(snapshot.get(format!("n{i}:in")).is_some(), "{snapshot}");
            assert_eq!(record.status, ExecutionStatus::Completed);
            assert!(record.started_at <= record.finished_at);
            // The record's inputs are its parents' outputs, and its output sums them.
            let inputs = record
                .input
                .as_ref()
                .expect("inputs")
                .get(&format!("n{i}:in"));
            let parents: Vec<i64> = dag.parents[i]
                .iter()
                .map(|&p| {
                    let out = records[p as usize].output.as_ref().expect("output");
                    out.selected().expect("generation").items[0]
                        .to_item()
                        .as_f64()
                        .expect("number") as i64
                })
                .collect();
            let given: Vec<i64> = inputs
                .as_ref()
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(serde_json::Value::as_i64)
                .collect();
            assert_eq!(given, parents, "inputs of n{i}");
            let item = &record.output.as_ref().expect("output").outputs[0].items[0];
            assert_eq!(&*item.output_handle_id, format!("n{i}:out"));
            assert_eq!(
                item.to_item().as_f64().map(|f| f as i64),
                Some(node_value(parents.into_iter()))
            );
        }
    }
}
