//! Engine speed: no-op summing nodes on a chain, a fan-out/fan-in and random layered DAGs,
//! against a sequential loop and a plain tokio ready-queue scheduler, and a cached re-run. The
//! peak heap is measured apart, by `benches/memory.rs` (a counting allocator would tax every
//! allocation here, the engine's more than the baselines'). `gatewai_engine` runs a
//! document the engine has run before (its plan is kept: no validation, no planning);
//! `gatewai_engine_new_document` validates and plans on every run. `--features mimalloc` runs
//! everything, baselines included, on mimalloc instead of the system allocator. Summary lines
//! (`engine summary, …`) print each graph's ratio to the tokio baseline from runs of the kinds
//! interleaved in this process, and the cached re-run's median: a second view of criterion's
//! figures, which the README compares. `tokio_artifacts_floor` (and the summary's floor) is the
//! tokio baseline where each node also builds its inputs, result and record
//! (`gatewai_benches::tokio_floor`): what those artifacts cost without the engine around them.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewai_benches::{
    Dag, FloorGraph, median, registry, sequential_baseline, sink_value, tokio_baseline, tokio_floor,
};
use gatewai_core::{Engine, MemoryResultCache, Observer, RunEvent, RunOptions, RunStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: gatewai_benches::HostAllocator = gatewai_benches::HOST_ALLOCATOR;

/// Counts events, so that events are produced and consumed as in a real host.
#[derive(Default)]
struct EventCounter(AtomicUsize);

#[async_trait::async_trait]
impl Observer for EventCounter {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.0.fetch_add(events.len(), Ordering::Relaxed);
        Ok(())
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn engine(cache: bool) -> Engine {
    engine_with_plans(cache, 16)
}

/// An engine keeping `plans` compiled plans (0: every run validates and plans its document).
fn engine_with_plans(cache: bool, plans: usize) -> Engine {
    let mut b = Engine::builder()
        .registry(registry())
        .plan_cache(plans)
        .observer(Arc::new(EventCounter::default()));
    b = if cache {
        b.cache(Arc::new(MemoryResultCache::default()))
    } else {
        b.no_cache()
    };
    b.build().expect("engine")
}

fn graphs() -> Vec<(&'static str, Dag)> {
    vec![
        ("chain_1000", Dag::chain(1000)),
        ("fan_10000", Dag::fan(10_000)),
        ("layered_10000", Dag::layered(100, 100, 3, 7)),
        ("layered_100000", Dag::layered(100, 1000, 3, 7)),
    ]
}

fn schedulers(c: &mut Criterion) {
    let rt = runtime();
    let engine = engine(false);
    let cold = engine_with_plans(false, 0);
    for (name, dag) in graphs() {
        let expected = dag.sequential_sink();
        let wf = dag.workflow();
        // Correctness first: the engine's sink equals the sequential sum.
        let outcome = rt
            .block_on(engine.run(wf.clone(), RunOptions::default()))
            .expect("run");
        assert_eq!(outcome.run.status, RunStatus::Completed);
        assert_eq!(sink_value(&outcome, &dag), Some(expected), "{name}");
        let dag_arc = Arc::new(dag.clone());
        let children = Arc::new(dag.children());
        assert_eq!(
            rt.block_on(tokio_baseline(dag_arc.clone(), children.clone())),
            expected
        );

        let floor_graph = Arc::new(FloorGraph::new(&dag));
        assert_eq!(rt.block_on(tokio_floor(floor_graph.clone())).0, expected);

        // The ratio measured interleaved in this process: one run of each kind in turn, so
        // that a machine busy with something else slows all alike, in each of the six orders
        // of the three kinds equally often (a run is faster or slower for the kind of run
        // before it: see the README). Criterion's figures come from loops of one kind, minutes
        // apart. Each run's outcome is dropped outside its time, as criterion drops it.
        const ORDERS: [[usize; 3]; 6] = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        let rounds = if dag.len() > 50_000 { 12 } else { 36 };
        let mut times: [Vec<Duration>; 3] = Default::default();
        for round in 0..rounds {
            for kind in ORDERS[round % ORDERS.len()] {
                // The engine's document is copied before its clock starts.
                let doc = (kind == 2).then(|| wf.clone());
                let start = Instant::now();
                let kept: Box<dyn std::any::Any> = match kind {
                    0 => Box::new(rt.block_on(tokio_baseline(dag_arc.clone(), children.clone()))),
                    1 => Box::new(rt.block_on(tokio_floor(floor_graph.clone())).1),
                    _ => Box::new(
                        rt.block_on(engine.run(doc.unwrap_or_default(), RunOptions::default()))
                            .expect("run"),
                    ),
                };
                times[kind].push(start.elapsed());
                drop(kept);
            }
        }
        let [baseline, floor, engine_time] = times.map(median);
        let per_node = |t: Duration| t.as_secs_f64() * 1e6 / dag.len() as f64;
        println!(
            "engine summary, {name} ({} nodes): tokio baseline {:.3} ms, engine {:.3} ms = {:.2}x \
             ({:.2} µs per node against {:.2}); artifacts floor {:.3} ms = {:.2}x the baseline, \
             the engine {:.2}x the floor",
            dag.len(),
            baseline.as_secs_f64() * 1e3,
            engine_time.as_secs_f64() * 1e3,
            engine_time.as_secs_f64() / baseline.as_secs_f64(),
            per_node(engine_time),
            per_node(baseline),
            floor.as_secs_f64() * 1e3,
            floor.as_secs_f64() / baseline.as_secs_f64(),
            engine_time.as_secs_f64() / floor.as_secs_f64(),
        );

        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(dag.len() as u64));
        group.sample_size(if dag.len() > 50_000 { 10 } else { 20 });
        group.bench_function(BenchmarkId::new("sequential", dag.len()), |b| {
            b.iter(|| sequential_baseline(&dag))
        });
        group.bench_function(BenchmarkId::new("tokio_ready_queue", dag.len()), |b| {
            b.to_async(&rt)
                .iter(|| tokio_baseline(dag_arc.clone(), children.clone()))
        });
        group.bench_function(BenchmarkId::new("tokio_artifacts_floor", dag.len()), |b| {
            b.to_async(&rt).iter_batched(
                || floor_graph.clone(),
                tokio_floor,
                BatchSize::PerIteration,
            )
        });
        group.bench_function(BenchmarkId::new("gatewai_engine", dag.len()), |b| {
            b.to_async(&rt).iter_batched(
                || wf.clone(),
                |wf| async {
                    let outcome = engine.run(wf, RunOptions::default()).await.expect("run");
                    assert_eq!(outcome.run.status, RunStatus::Completed);
                    outcome
                },
                BatchSize::PerIteration,
            )
        });
        // A document the engine has not seen: validation and planning on every run.
        group.bench_function(
            BenchmarkId::new("gatewai_engine_new_document", dag.len()),
            |b| {
                b.to_async(&rt).iter_batched(
                    || wf.clone(),
                    |wf| async {
                        let outcome = cold.run(wf, RunOptions::default()).await.expect("run");
                        assert_eq!(outcome.run.status, RunStatus::Completed);
                        outcome
                    },
                    BatchSize::PerIteration,
                )
            },
        );
        group.finish();
    }
}

fn cached_rerun(c: &mut Criterion) {
    let rt = runtime();
    let engine = engine(true);
    let dag = Dag::layered(100, 100, 3, 11);
    let first = rt
        .block_on(engine.run(dag.workflow(), RunOptions::default()))
        .expect("run");
    let wf = first.workflow.clone();
    let times: Vec<Duration> = (0..31)
        .map(|_| {
            let doc = wf.clone();
            let start = Instant::now();
            let outcome = rt
                .block_on(engine.run(doc, RunOptions::default()))
                .expect("run");
            let elapsed = start.elapsed();
            assert!(outcome.executions.iter().all(|e| e.cached));
            elapsed
        })
        .collect();
    println!(
        "engine summary, cached re-run of layered_10000 ({} nodes): {:.3} ms (median of 31; goal: under 10 ms)",
        dag.len(),
        median(times).as_secs_f64() * 1e3
    );
    let mut group = c.benchmark_group("cached_rerun");
    group.throughput(Throughput::Elements(dag.len() as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("layered_10000", dag.len()), |b| {
        b.to_async(&rt).iter_batched(
            || wf.clone(),
            |wf| async {
                let outcome = engine.run(wf, RunOptions::default()).await.expect("run");
                assert!(outcome.executions.iter().all(|e| e.cached));
                outcome
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, cached_rerun, schedulers);
criterion_main!(benches);
