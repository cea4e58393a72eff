//! Peak heap of one engine run on random layered DAGs of 10,000 and 100,000 no-op nodes
//! (records kept, events produced), through a counting allocator: linear growth means the
//! bytes per node stay flat. Run: `cargo bench -p gatewai-benches --bench memory`.

use gatewai_benches::{Dag, HOST_ALLOCATOR, registry, sink_value};
use gatewai_core::{Engine, Observer, RunEvent, RunOptions};
use std::alloc::{GlobalAlloc, Layout};
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
        unsafe { HOST_ALLOCATOR.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { HOST_ALLOCATOR.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Consumes events, as a host's observer would.
struct Discard;

#[async_trait::async_trait]
impl Observer for Discard {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        std::hint::black_box(events.len());
        Ok(())
    }
}

fn main() {
    // `cargo bench` passes `--bench`; there is nothing to filter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let engine = Engine::builder()
        .registry(registry())
        .observer(Arc::new(Discard))
        .no_cache()
        .build()
        .expect("engine");
    for (layers, width) in [(100, 100), (100, 1000)] {
        let dag = Dag::layered(layers, width, 3, 7);
        let wf = dag.workflow();
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
        println!(
            "[{} allocator] peak heap of one run, {} nodes: {:.1} MiB ({} bytes/node; the document itself, {} bytes/node, comes on top), {:.1} ms",
            gatewai_benches::ALLOCATOR,
            dag.len(),
            peak as f64 / (1024.0 * 1024.0),
            peak / dag.len(),
            document_bytes(&dag) / dag.len(),
            elapsed.as_secs_f64() * 1e3
        );
    }
}

/// The heap a clone of the DAG's document takes.
fn document_bytes(dag: &Dag) -> usize {
    let before = CURRENT.load(Ordering::Relaxed);
    let wf = dag.workflow();
    let bytes = CURRENT.load(Ordering::Relaxed) - before;
    drop(wf);
    bytes
}
