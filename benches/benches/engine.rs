//! Engine speed: no-op summing nodes on a chain, a fan-out/fan-in and random layered DAGs,
//! against a sequential loop and a plain tokio ready-queue scheduler; a cached re-run; and the
//! peak heap of 10,000- and 100,000-node runs (a counting allocator).

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewai_benches::{Dag, registry, sequential_baseline, sink_value, tokio_baseline};
use gatewai_core::{Engine, MemoryResultCache, Observer, RunEvent, RunOptions, RunStatus};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts events, so that events are produced and consumed as in a real host.
#[derive(Default)]
struct EventCounter(AtomicUsize);

#[async_trait::async_trait]
impl Observer for EventCounter {
    async fn on_events(&self, events: &[RunEvent]) {
        self.0.fetch_add(events.len(), Ordering::Relaxed);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn engine(cache: bool) -> Engine {
    let mut b = Engine::builder()
        .registry(registry())
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

fn peak_memory(_c: &mut Criterion) {
    let rt = runtime();
    let engine = engine(false);
    for (layers, width) in [(100, 100), (100, 1000)] {
        let dag = Dag::layered(layers, width, 3, 7);
        let wf = dag.workflow();
        let wf_bytes = PEAK.load(Ordering::Relaxed);
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let start = Instant::now();
        let outcome = rt
            .block_on(engine.run(wf, RunOptions::default()))
            .expect("run");
        let elapsed = start.elapsed();
        let peak = PEAK.load(Ordering::Relaxed) - base;
        assert_eq!(sink_value(&outcome, &dag), Some(dag.sequential_sink()));
        drop(outcome);
        let _ = wf_bytes;
        println!(
            "peak heap of one run, {} nodes: {:.1} MiB ({} bytes/node), {:.1} ms",
            dag.len(),
            peak as f64 / (1024.0 * 1024.0),
            peak / dag.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }
}

criterion_group!(benches, peak_memory, cached_rerun, schedulers);
criterion_main!(benches);
