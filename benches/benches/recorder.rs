//! The run recorder's cost: a 1,000-node run (10 layers of 100 no-op nodes, 3 parents each,
//! plus a sink) with no recorder, and recorded into SQLite (a temp file) and PostgreSQL (the
//! server `GATEWAI_TEST_POSTGRES_URL` names, when set). Criterion reports node executions
//! recorded per second (throughput); summary lines print each recorder's slowdown against
//! the run without one (medians of runs with and without it, interleaved in this process so
//! that a busy machine slows both alike), and the recorder's own throughput: the batches of
//! recorded runs replayed into the store with no engine running. The PostgreSQL bench works
//! in a database of its own, created on the server and dropped at the end.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewai_benches::{Dag, median, observed_engine, registry, sink_value};
use gatewai_core::{Engine, Observer, RunEvent, RunOptions, RunStatus, Workflow};
use gatewai_store::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn engine(recorder: Option<&Arc<RunRecorder>>) -> Engine {
    // No result cache: every iteration executes (and records) every node.
    let mut builder = Engine::builder().registry(registry()).no_cache();
    if let Some(recorder) = recorder {
        builder = builder.observer(recorder.clone());
    }
    builder.build().expect("engine")
}

/// Fails the bench if a recorder could not store a batch: a recorder that fails (a full disk)
/// is fast, and its figures would be worthless.
fn assert_recorded_everything(name: &str, recorder: &RunRecorder) {
    assert_eq!(
        recorder.failures(),
        0,
        "{name}: the recorder failed to store batches: {:?}",
        recorder.last_error()
    );
}

/// The stores to record into: SQLite always, PostgreSQL when configured.
fn stores(rt: &tokio::runtime::Runtime, dir: &tempfile::TempDir) -> Vec<(&'static str, Store)> {
    let sqlite_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("recorder.db").display()
    );
    let mut stores = vec![(
        "sqlite",
        rt.block_on(Store::open(&sqlite_url)).expect("open SQLite"),
    )];
    match std::env::var("GATEWAI_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let url = rt.block_on(fresh_postgres_database(&url, BENCH_DATABASE));
            stores.push((
                "postgres",
                rt.block_on(Store::open(&url)).expect("open PostgreSQL"),
            ))
        }
        _ => println!("note: PostgreSQL recorder bench skipped (GATEWAI_TEST_POSTGRES_URL unset)"),
    }
    stores
}

/// The PostgreSQL database the bench records into.
const BENCH_DATABASE: &str = "gatewai_recorder_bench";

/// The URL with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let base = match base.rfind('/') {
        Some(slash) if slash > base.find("://").map_or(0, |i| i + 2) => &base[..slash],
        _ => base,
    };
    if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    }
}

/// (Re)creates an empty database on the server and returns its URL.
async fn fresh_postgres_database(url: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .expect("create the bench database");
    }
    with_database(url, name)
}

/// Drops the bench database.
async fn drop_postgres_database(url: &str, name: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::PgConnection::connect(url).await {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
}

/// One run's wall time.
fn time_run(rt: &tokio::runtime::Runtime, engine: &Engine, wf: &Workflow) -> Duration {
    let wf = wf.clone();
    let start = Instant::now();
    let outcome = rt
        .block_on(engine.run(wf, RunOptions::default()))
        .expect("run");
    let elapsed = start.elapsed();
    assert_eq!(outcome.run.status, RunStatus::Completed);
    elapsed
}

/// Median wall times of `n` runs without and with a recorder, interleaved (one of each in
/// turn), so that a machine busy with something else slows both alike.
fn median_runs(
    rt: &tokio::runtime::Runtime,
    plain: &Engine,
    recorded: &Engine,
    wf: &Workflow,
    n: usize,
) -> (Duration, Duration) {
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        a.push(time_run(rt, plain, wf));
        b.push(time_run(rt, recorded, wf));
    }
    (median(a), median(b))
}

/// An observer handing each batch to a recorder and keeping a copy, to replay the batches of
/// a real recorded run (their real sizes) into another store.
struct Capture {
    recorder: Arc<RunRecorder>,
    batches: Mutex<Vec<Vec<RunEvent>>>,
}

#[async_trait::async_trait]
impl Observer for Capture {
    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.recorder.on_events(events).await?;
        self.batches
            .lock()
            .expect("capture lock")
            .push(events.to_vec());
        Ok(())
    }
}

/// The batches of one recorded run (recorded into `scratch`).
fn capture_run(rt: &tokio::runtime::Runtime, scratch: &Store, wf: &Workflow) -> Vec<Vec<RunEvent>> {
    let capture = Arc::new(Capture {
        recorder: scratch.recorder(),
        batches: Mutex::new(Vec::new()),
    });
    let engine = observed_engine(capture.clone());
    let outcome = rt
        .block_on(engine.run(wf.clone(), RunOptions::default()))
        .expect("run");
    assert_eq!(outcome.run.status, RunStatus::Completed);
    std::mem::take(&mut *capture.batches.lock().expect("capture lock"))
}

/// Stores a run's batches the way the recorder does, one `record_events` call each.
async fn replay(store: &Store, batches: &[Vec<RunEvent>]) {
    for batch in batches {
        store.record_events(batch).await.expect("record a batch");
    }
}

fn recorder(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let dag = Dag::layered(10, 100, 3, 7);
    let nodes = dag.len();
    let wf = dag.workflow();
    let stores = stores(&rt, &dir);

    let recorders: Vec<Arc<RunRecorder>> = stores.iter().map(|(_, s)| s.recorder()).collect();

    // Correctness first: every node execution of a recorded run is in the store.
    for ((name, store), recorder) in stores.iter().zip(&recorders) {
        let outcome = rt
            .block_on(engine(Some(recorder)).run(wf.clone(), RunOptions::default()))
            .expect("run");
        assert_eq!(sink_value(&outcome, &dag), Some(dag.sequential_sink()));
        let stored = rt
            .block_on(store.node_executions(&outcome.run.id))
            .expect("read back");
        assert_eq!(stored.len(), nodes, "{name}: every execution recorded");
        assert!(stored.iter().all(|e| e.output.is_some()), "{name}");
        let run = rt
            .block_on(store.get_run(&outcome.run.id))
            .expect("read back")
            .expect("run stored");
        assert_eq!(run.status, RunStatus::Completed, "{name}");
    }

    // Summary ratios, measured interleaved in this process.
    let plain = engine(None);
    for ((name, _), recorder) in stores.iter().zip(&recorders) {
        let (baseline, recorded) = median_runs(&rt, &plain, &engine(Some(recorder)), &wf, 31);
        println!(
            "recorder summary, {nodes}-node run: no recorder {:.2} ms; {name} recorder {:.2} ms \
             = {:.2}x slowdown, {:.0} node executions recorded/s",
            baseline.as_secs_f64() * 1e3,
            recorded.as_secs_f64() * 1e3,
            recorded.as_secs_f64() / baseline.as_secs_f64(),
            nodes as f64 / recorded.as_secs_f64()
        );
    }

    // The recorder alone: a recorded run's batches replayed into the store, no engine running.
    let scratch = rt
        .block_on(Store::open(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("scratch.db").display()
        )))
        .expect("open scratch SQLite");
    let captured: Vec<Vec<Vec<RunEvent>>> =
        (0..21).map(|_| capture_run(&rt, &scratch, &wf)).collect();
    for (name, store) in &stores {
        let times: Vec<Duration> = captured
            .iter()
            .map(|batches| {
                let start = Instant::now();
                rt.block_on(replay(store, batches));
                start.elapsed()
            })
            .collect();
        let t = median(times);
        println!(
            "recorder summary, {nodes}-node run replayed (first run: {} batches): {name} {:.2} ms, \
             {:.0} node executions recorded/s",
            captured[0].len(),
            t.as_secs_f64() * 1e3,
            nodes as f64 / t.as_secs_f64()
        );
    }

    let mut group = c.benchmark_group("recorder_1000_nodes");
    group.throughput(Throughput::Elements(nodes as u64));
    group.sample_size(20);
    let mut variants: Vec<(&str, Engine)> = vec![("no_recorder", plain)];
    for ((name, _), recorder) in stores.iter().zip(&recorders) {
        variants.push((name, engine(Some(recorder))));
    }
    for (name, engine) in &variants {
        group.bench_function(BenchmarkId::new(*name, nodes), |b| {
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
    }
    group.finish();
    for ((name, store), recorder) in stores.iter().zip(&recorders) {
        assert_recorded_everything(name, recorder);
        rt.block_on(store.close());
    }
    if let Ok(url) = std::env::var("GATEWAI_TEST_POSTGRES_URL")
        && !url.is_empty()
    {
        rt.block_on(drop_postgres_database(&url, BENCH_DATABASE));
    }
}

criterion_group!(benches, recorder);
criterion_main!(benches);
