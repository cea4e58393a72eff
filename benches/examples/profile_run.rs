//! Runs one generated graph many times on the engine, for profilers:
//! `cargo run --release -p gatewai-benches --example profile_run -- layered 10000 20`.

use gatewai_benches::{Dag, registry, sink_value};
use gatewai_core::{Engine, RunOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let shape = args.get(1).map_or("chain", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let reps: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(50);
    let dag = match shape {
        "fan" => Dag::fan(n),
        "layered" => Dag::layered(100, (n / 100).max(1), 3, 7),
        _ => Dag::chain(n),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = Engine::builder()
        .registry(registry())
        .no_cache()
        .build()
        .expect("engine");
    let wf = dag.workflow();
    let expected = dag.sequential_sink();
    let (mut starting, mut executing, mut dropping) = (0.0, 0.0, 0.0);
    let total = Instant::now();
    for _ in 0..reps {
        let doc = wf.clone();
        let t = Instant::now();
        let handle = rt
            .block_on(async { engine.start(doc, RunOptions::default()) })
            .expect("start");
        starting += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let outcome = rt.block_on(handle.wait()).expect("run");
        executing += t.elapsed().as_secs_f64();
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
    println!(
        "{shape} {} nodes: {per_node:.2} µs/node in all (document clone {clone:.2}); start {:.2} (validation alone {validate:.2}), execution {:.2}, dropping the outcome {:.2}",
        dag.len(),
        per(starting),
        per(executing),
        per(dropping),
    );
}
