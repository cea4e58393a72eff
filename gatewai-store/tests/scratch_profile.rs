mod common;
use async_trait::async_trait;
use gatewai_core::{Engine, Observer, RunEvent, RunOptions};
use gatewai_store::prelude::*;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Noop;
#[async_trait]
impl Observer for Noop { async fn on_events(&self, _e: &[RunEvent]) {} }
struct Timed { store: Store, log: Mutex<Vec<(usize, Duration)>> }
#[async_trait]
impl Observer for Timed {
    async fn on_events(&self, events: &[RunEvent]) {
        let t = Instant::now();
        self.store.record_events(events).await.unwrap();
        self.log.lock().unwrap().push((events.len(), t.elapsed()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn profile() {
    let t = common::Target::sqlite();
    let store = t.open().await;
    let probes = common::Probes::default();
    let reg = common::registry(&probes);
    // layered-ish: 10 layers of 100
    let mut nodes = vec![];
    let mut edges = vec![];
    let ids: Vec<String> = (0..1000).map(|i| format!("n{i}")).collect();
    for i in 0..1000 { nodes.push((ids[i].as_str(), "Sum", serde_json::json!({"add": 1}))); if i >= 100 { edges.push((ids[i-100].as_str(), ids[i].as_str())); } }
    let wf = common::workflow(&reg, &nodes, &edges);
    let timed = Arc::new(Timed { store: store.clone(), log: Mutex::new(vec![]) });
    let engine = Engine::builder().registry(reg).observer(timed.clone()).build().unwrap();
    let plain = Engine::builder().registry(common::registry(&probes)).build().unwrap();
    let noop = Engine::builder().registry(common::registry(&probes)).observer(Arc::new(Noop)).build().unwrap();
    for _ in 0..5 {
        let s = Instant::now();
        noop.run(wf.clone(), RunOptions::default()).await.unwrap();
        let nob = s.elapsed();
        eprintln!("noop observer {nob:?}");
        let s = Instant::now();
        plain.run(wf.clone(), RunOptions::default()).await.unwrap();
        let base = s.elapsed();
        timed.log.lock().unwrap().clear();
        let s = Instant::now();
        engine.run(wf.clone(), RunOptions::default()).await.unwrap();
        let rec = s.elapsed();
        let log = timed.log.lock().unwrap();
        let total: Duration = log.iter().map(|(_, d)| *d).sum();
        eprintln!("base {base:?} recorded {rec:?} batches {} in-db {total:?} sizes {:?}", log.len(), log.iter().map(|(n, d)| (*n, d.as_micros())).collect::<Vec<_>>());
    }
}
