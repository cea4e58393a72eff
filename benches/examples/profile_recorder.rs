//! Replays the event batches of recorded 1,000-node runs into a SQLite store (or the store
//! `STORE_URL` names), for profilers:
//! `cargo run --release -p gatewai-benches --example profile_recorder -- 100`. The batches
//! are captured first (one run per repetition: each replay stores a run of its own);
//! `BATCHES=n` regroups each run's events into `n` batches, as a recorder slower than the
//! engine receives them (by default, as an observer that keeps up received them).
//! `NO_KEYS=1` captures records without cache keys (a recorder asks the engine for them).

use gatewai_benches::{Dag, observed_engine};
use gatewai_core::{Observer, RunEvent, RunOptions};
use gatewai_store::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keeps a copy of every batch; asks for cache keys as a run recorder does, unless told not to.
#[derive(Default)]
struct Capture(Mutex<Vec<Vec<RunEvent>>>, bool);

#[async_trait::async_trait]
impl Observer for Capture {
    fn needs_cache_keys(&self) -> bool {
        !self.1
    }

    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.0.lock().expect("lock").push(events.to_vec());
        Ok(())
    }
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let regroup: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    // `STORE_URL` replays into another store (a PostgreSQL database, say) instead.
    let url = std::env::var("STORE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display()));
    let store = rt.block_on(Store::open(&url)).expect("open");
    let wf = Dag::layered(10, 100, 3, 7).workflow();
    let capture = Arc::new(Capture(
        Mutex::default(),
        std::env::var_os("NO_KEYS").is_some(),
    ));
    let engine = observed_engine(capture.clone());
    let started = Instant::now();
    let runs: Vec<Vec<Vec<RunEvent>>> = (0..reps)
        .map(|_| {
            rt.block_on(engine.run(wf.clone(), RunOptions::default()))
                .expect("run");
            let batches = std::mem::take(&mut *capture.0.lock().expect("lock"));
            if regroup == 0 {
                return batches;
            }
            let all: Vec<RunEvent> = batches.into_iter().flatten().collect();
            let size = all.len().div_ceil(regroup);
            all.chunks(size).map(<[RunEvent]>::to_vec).collect()
        })
        .collect();
    // For `perf record -D`: the replay starts after this.
    eprintln!(
        "captured {reps} runs in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let batches: usize = runs.iter().map(Vec::len).sum();
    let start = Instant::now();
    for run in &runs {
        rt.block_on(async {
            for batch in run {
                store.record_events(batch).await.expect("record");
            }
        });
    }
    let per_run = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "replay: {per_run:.2} ms per 1,001-node run ({:.1} batches per run)",
        batches as f64 / reps as f64
    );
}
