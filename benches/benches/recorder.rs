//! The run recorder's cost: a 1,000-node run (10 layers of 100 no-op nodes, 3 parents each,
//! plus a sink) with no recorder, and recorded into SQLite (a temp file) and PostgreSQL (the
//! server `GATEWAI_TEST_POSTGRES_URL` names, when set). Criterion reports node executions
//! recorded per second (throughput); a summary line prints each recorder's slowdown against
//! the run without one, measured in the same process. The PostgreSQL bench works in a
//! database of its own, created on the server and dropped at the end.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewai_benches::{Dag, registry, sink_value};
use gatewai_core::{Engine, RunOptions, RunStatus};
use gatewai_store::prelude::*;
use std::time::{Duration, Instant};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn engine(store: Option<&Store>) -> Engine {
    // No result cache: every iteration executes (and records) every node.
    let mut builder = Engine::builder().registry(registry()).no_cache();
    if let Some(store) = store {
        builder = builder.observer(store.recorder());
    }
    builder.build().expect("engine")
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

/// Median wall time of `n` runs.
fn median_run(rt: &tokio::runtime::Runtime, engine: &Engine, dag: &Dag, n: usize) -> Duration {
    let wf = dag.workflow();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let wf = wf.clone();
            let start = Instant::now();
            let outcome = rt
                .block_on(engine.run(wf, RunOptions::default()))
                .expect("run");
            let elapsed = start.elapsed();
            assert_eq!(outcome.run.status, RunStatus::Completed);
            elapsed
        })
        .collect();
    times.sort();
    times[n / 2]
}

fn recorder(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let dag = Dag::layered(10, 100, 3, 7);
    let nodes = dag.len();
    let wf = dag.workflow();
    let stores = stores(&rt, &dir);

    // Correctness first: every node execution of a recorded run is in the store.
    for (name, store) in &stores {
        let outcome = rt
            .block_on(engine(Some(store)).run(wf.clone(), RunOptions::default()))
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

    // Summary ratios, measured back to back in this process.
    let plain = engine(None);
    let baseline = median_run(&rt, &plain, &dag, 21);
    for (name, store) in &stores {
        let recorded = median_run(&rt, &engine(Some(store)), &dag, 21);
        println!(
            "recorder summary, {nodes}-node run: no recorder {:.2} ms; {name} recorder {:.2} ms \
             = {:.2}x slowdown, {:.0} node executions recorded/s",
            baseline.as_secs_f64() * 1e3,
            recorded.as_secs_f64() * 1e3,
            recorded.as_secs_f64() / baseline.as_secs_f64(),
            nodes as f64 / recorded.as_secs_f64()
        );
    }

    let mut group = c.benchmark_group("recorder_1000_nodes");
    group.throughput(Throughput::Elements(nodes as u64));
    group.sample_size(20);
    let mut variants: Vec<(&str, Engine)> = vec![("no_recorder", plain)];
    for (name, store) in &stores {
        variants.push((name, engine(Some(store))));
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
    for (_, store) in &stores {
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
