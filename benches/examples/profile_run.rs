//! Runs one generated graph many times on the engine, for profilers:
//! `cargo run --release -p gatewai-benches --example profile_run -- layered 10000 20`.
//! A fourth argument runs only one part, for `perf stat -e instructions:u`: `engine` (runs of
//! the engine, each on a fresh document clone), `clone` (only the clones), `baseline` (the
//! tokio ready-queue baseline), `floor` (the same baseline producing each node's inputs, result
//! and record: the artifacts floor), `cached` (re-runs served from the result cache).
//! `NO_OBSERVER=1` runs the engine with no observer (no events are built). `NO_COUNT=1` does not
//! count allocations (the count is one atomic add per allocation that every thread shares, and
//! it slows the engine's workers more than the run's start: use it for the split of a run's
//! time). `WORKERS=n` runs the runtime with `n` worker threads instead of one per core (the
//! split between a node's own cost and what sharing the run between cores adds to it).
//! `LAYERS=n` gives the layered graph `n` layers instead of 100 (`LAYERS=10 ... layered 1000`
//! is the recorder bench's run).

use gatewai_benches::HOST_ALLOCATOR;
use gatewai_benches::{Dag, registry, sink_value};
use gatewai_core::{Engine, RunOptions};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts allocations, a figure a busy machine does not blur.
struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Whether to count (`NO_COUNT` unset).
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { HOST_ALLOCATOR.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { HOST_ALLOCATOR.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { HOST_ALLOCATOR.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts events, so that events are produced and consumed as in a real host.
#[derive(Default)]
struct EventCounter(AtomicUsize, AtomicUsize);

#[async_trait::async_trait]
impl gatewai_core::Observer for EventCounter {
    async fn on_events(&self, events: &[gatewai_core::RunEvent]) -> gatewai_core::Result<()> {
        self.0.fetch_add(events.len(), Ordering::Relaxed);
        self.1.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn main() {
    if std::env::var_os("NO_COUNT").is_some() {
        COUNTING.store(false, Ordering::Relaxed);
    }
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map_or("chain", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let dag = match shape {
        "fan" => Dag::fan(n),
        "layered" => {
            let layers = std::env::var("LAYERS")
                .ok()
                .and_then(|l| l.parse().ok())
                .unwrap_or(100usize)
                .max(1);
            Dag::layered(layers, (n / layers).max(1), 3, 7)
        }
        _ => Dag::chain(n),
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("WORKERS").ok().and_then(|w| w.parse().ok()) {
        rt.worker_threads(workers);
    }
    let rt = rt.enable_all().build().expect("runtime");
    // As in the criterion bench: records kept, events produced and consumed by an observer.
    let counter = std::sync::Arc::new(EventCounter::default());
    let mut builder = Engine::builder().registry(registry());
    if std::env::var_os("NO_OBSERVER").is_none() {
        builder = builder.observer(counter.clone());
    }
    let engine = builder.no_cache().build().expect("engine");
    let wf = dag.workflow();
    let expected = dag.sequential_sink();
    // For `perf stat`, which counts instructions whatever else the machine is doing: the same
    // repetitions of only the tokio baseline, or of only the document clone each run starts from.
    match args.get(4).map(String::as_str) {
        Some("baseline") => {
            let dag = std::sync::Arc::new(dag.clone());
            let children = std::sync::Arc::new(dag.children());
            let start = Instant::now();
            for _ in 0..reps {
                let sink = rt.block_on(gatewai_benches::tokio_baseline(
                    dag.clone(),
                    children.clone(),
                ));
                assert_eq!(sink, expected);
            }
            println!(
                "{shape} {} nodes: tokio baseline {:.2} µs/node",
                dag.len(),
                start.elapsed().as_secs_f64() * 1e6 / (reps * dag.len()) as f64
            );
            return;
        }
        Some("floor") => {
            // The tokio baseline plus the records and results every node must produce.
            let graph = std::sync::Arc::new(gatewai_benches::FloorGraph::new(&dag));
            let (mut spent, mut allocations) = (0.0, 0);
            for _ in 0..reps {
                let a0 = ALLOCATIONS.load(Ordering::Relaxed);
                let start = Instant::now();
                let (sink, kept) = rt.block_on(gatewai_benches::tokio_floor(graph.clone()));
                spent += start.elapsed().as_secs_f64();
                allocations += ALLOCATIONS.load(Ordering::Relaxed) - a0;
                drop(kept);
                assert_eq!(sink, expected);
            }
            println!(
                "{shape} {} nodes: artifacts floor {:.2} µs/node, allocations per node {:.1}",
                dag.len(),
                spent * 1e6 / (reps * dag.len()) as f64,
                allocations as f64 / (reps * dag.len()) as f64
            );
            return;
        }
        Some("clone") => {
            for _ in 0..reps {
                drop(std::hint::black_box(wf.clone()));
            }
            return;
        }
        Some("cached") => {
            // Re-runs of an unchanged document, every node served from the result cache.
            let cached = Engine::builder()
                .registry(registry())
                .observer(counter.clone())
                .build()
                .expect("engine");
            let first = rt
                .block_on(cached.run(wf.clone(), RunOptions::default()))
                .expect("run");
            let doc = first.workflow;
            let (mut spent, mut starting) = (0.0, 0.0);
            let mut allocations = 0;
            let mut times = Vec::with_capacity(reps);
            for _ in 0..reps {
                let doc = doc.clone();
                let a0 = ALLOCATIONS.load(Ordering::Relaxed);
                let t = Instant::now();
                let handle = rt
                    .block_on(async { cached.start(doc, RunOptions::default()) })
                    .expect("start");
                starting += t.elapsed().as_secs_f64();
                let outcome = rt.block_on(handle.wait()).expect("run");
                spent += t.elapsed().as_secs_f64();
                times.push(t.elapsed().as_secs_f64());
                allocations += ALLOCATIONS.load(Ordering::Relaxed) - a0;
                assert!(outcome.executions.iter().all(|e| e.cached));
                drop(outcome);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "[{}] cached re-run of {shape} {} nodes: {:.2} ms (median {:.2}; start {:.2}), {:.1} allocations per node",
                gatewai_benches::ALLOCATOR,
                dag.len(),
                spent * 1e3 / reps as f64,
                times.get(reps / 2).copied().unwrap_or_default() * 1e3,
                starting * 1e3 / reps as f64,
                allocations as f64 / (reps * dag.len()) as f64
            );
            return;
        }
        Some("engine") => {
            for _ in 0..reps {
                let outcome = rt
                    .block_on(engine.run(wf.clone(), RunOptions::default()))
                    .expect("run");
                assert_eq!(sink_value(&outcome, &dag), Some(expected));
            }
            return;
        }
        _ => {}
    }
    let (mut starting, mut executing, mut dropping) = (0.0, 0.0, 0.0);
    let (mut start_allocs, mut run_allocs) = (0usize, 0usize);
    let total = Instant::now();
    for _ in 0..reps {
        let doc = wf.clone();
        let a0 = ALLOCATIONS.load(Ordering::Relaxed);
        let t = Instant::now();
        let handle = rt
            .block_on(async { engine.start(doc, RunOptions::default()) })
            .expect("start");
        starting += t.elapsed().as_secs_f64();
        let a1 = ALLOCATIONS.load(Ordering::Relaxed);
        let t = Instant::now();
        let outcome = rt.block_on(handle.wait()).expect("run");
        executing += t.elapsed().as_secs_f64();
        start_allocs += a1 - a0;
        run_allocs += ALLOCATIONS.load(Ordering::Relaxed) - a1;
        assert_eq!(sink_value(&outcome, &dag), Some(expected));
        let t = Instant::now();
        drop(outcome);
        dropping += t.elapsed().as_secs_f64();
    }
    let per = |secs: f64| secs * 1e6 / (reps * dag.len()) as f64;
    let per_node = per(total.elapsed().as_secs_f64());
    let start = Instant::now();
    for _ in 0..reps {
        drop(std::hint::black_box(wf.clone()));
    }
    let clone = start.elapsed().as_secs_f64() * 1e6 / (reps * dag.len()) as f64;
    let start = Instant::now();
    for _ in 0..reps {
        gatewai_core::validate(&wf, engine.registry()).expect("valid");
    }
    let validate = start.elapsed().as_secs_f64() * 1e6 / (reps * dag.len()) as f64;
    let allocs = |n: usize| n as f64 / (reps * dag.len()) as f64;
    println!(
        "[{}] {shape} {} nodes: {per_node:.2} µs/node in all (document clone {clone:.2}); start {:.2} (validation alone {validate:.2}), execution {:.2}, dropping the outcome {:.2}; allocations per node: start {:.1}, execution {:.1}",
        gatewai_benches::ALLOCATOR,
        dag.len(),
        per(starting),
        per(executing),
        per(dropping),
        allocs(start_allocs),
        allocs(run_allocs),
    );
    println!(
        "per run: start {:.1} µs, execution {:.1} µs",
        starting * 1e6 / reps as f64,
        executing * 1e6 / reps as f64
    );
    println!(
        "events per observer batch: {:.1}",
        counter.0.load(Ordering::Relaxed) as f64 / counter.1.load(Ordering::Relaxed).max(1) as f64
    );
}
