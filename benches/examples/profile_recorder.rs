//! Replays the event batches of recorded 1,000-node runs into a SQLite store (or the store
//! `STORE_URL` names), for profilers:
//! `cargo run --release -p gatewai-benches --example profile_recorder -- 100`. The batches
//! are captured first (one run per repetition: each replay stores a run of its own);
//! `BATCHES=n` regroups each run's events into `n` batches, as a recorder slower than the
//! engine receives them (by default, as an observer that keeps up received them).
//! `NO_KEYS=1` captures records without cache keys (a recorder asks the engine for them).
//! `FLOOR=1` writes each run's final records (every completed node's; the bench graph has no
//! other) the plainest way instead, as a floor for the recorder: one transaction per run,
//! multi-row `INSERT`s into a table of the same columns and key with no other index or
//! constraint, in a SQLite file with the store's journal settings (WAL, `synchronous =
//! NORMAL`), the JSON serialized as the store serializes it; no run row, no upsert, no earlier
//! states of a node.

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
    if std::env::var_os("FLOOR").is_some() {
        let per_run = rt.block_on(write_floor(&runs, &dir.path().join("floor.db")));
        println!(
            "floor: {per_run:.2} ms per 1,001-node run (each run's final records, one transaction)"
        );
        return;
    }
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

/// Writes each run's final records into a fresh table the plainest way (see the module docs);
/// returns the milliseconds per run.
async fn write_floor(runs: &[Vec<Vec<RunEvent>>], path: &std::path::Path) -> f64 {
    use gatewai_core::{EventKind, NodeExecution};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await
        .expect("open the floor's database");
    sqlx::query(
        "CREATE TABLE floor_executions (run_id TEXT NOT NULL, node_id TEXT NOT NULL, \
         seq INTEGER, node_type TEXT, node_label TEXT, status TEXT, input_data TEXT, \
         output_data TEXT, error TEXT, cached INTEGER, started_at TEXT, finished_at TEXT, \
         duration_ms INTEGER, attempts INTEGER, cache_key TEXT, PRIMARY KEY (run_id, node_id))",
    )
    .execute(&mut conn)
    .await
    .expect("create the floor's table");
    // Each run's final records, gathered before the clock starts.
    let records: Vec<Vec<Arc<NodeExecution>>> = runs
        .iter()
        .map(|run| {
            run.iter()
                .flatten()
                .filter_map(|event| match &event.kind {
                    EventKind::NodeCompleted { record, .. } => Some(record.clone()),
                    _ => None,
                })
                .collect()
        })
        .collect();
    // SQLite's default limit is 32,766 parameters a statement; 15 a row.
    const ROWS: usize = 2000;
    let start = Instant::now();
    for (r, run) in records.iter().enumerate() {
        let run_id = format!("floor-{r}");
        let mut tx = conn.begin().await.expect("begin");
        for (c, chunk) in run.chunks(ROWS).enumerate() {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO floor_executions (run_id, node_id, seq, node_type, node_label, \
                 status, input_data, output_data, error, cached, started_at, finished_at, \
                 duration_ms, attempts, cache_key) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut row, (seq, e)| {
                row.push_bind(run_id.as_str())
                    .push_bind(&*e.node_id)
                    .push_bind((c * ROWS + seq) as i64)
                    .push_bind(&*e.node_type)
                    .push_bind(&*e.label)
                    .push_bind(e.status.as_str())
                    .push_bind(
                        e.input
                            .as_ref()
                            .map(|i| serde_json::to_string(i).expect("inputs as JSON")),
                    )
                    .push_bind(
                        e.output
                            .as_ref()
                            .map(|o| serde_json::to_string(o).expect("result as JSON")),
                    )
                    .push_bind(e.error.as_deref())
                    .push_bind(e.cached)
                    .push_bind(e.started_at)
                    .push_bind(e.finished_at)
                    .push_bind(e.duration_ms.map(|d| d as i64))
                    .push_bind(e.attempts as i64)
                    .push_bind(e.cache_key.map(|k| k.to_hex()));
            });
            insert.build().execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    start.elapsed().as_secs_f64() * 1e3 / runs.len() as f64
}
