//! Validation of generated graphs of 1k, 10k and 100k nodes: the time per node should stay flat
//! (validation is linear in the size of the graph).
//!
//! Each graph is a layered DAG, 100 nodes wide: a layer of Text sources, then Join nodes each fed
//! by two nodes of the layer before — n nodes, 2n handles, about 2n edges. Criterion reports the
//! throughput in nodes per second; the bench also prints the nanoseconds per node of each size,
//! next to a baseline measured in the same run: a plain hash index of the node and handle ids
//! and a lookup of the four ids of every edge (the kind of memory-bound, linear work validation is
//! made of). Past the CPU caches both get slower per node; their ratio staying flat is what shows
//! validation is linear.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gatewai_core::model::{Edge, Extra, Workflow};
use gatewai_core::{DataType, HandleTemplate, NodeTemplate, WorkflowNode, validate};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

const WIDTH: usize = 100;
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

fn templates() -> Vec<NodeTemplate> {
    vec![
        NodeTemplate::new("Text", "Text", "Inputs").handle(HandleTemplate::output(
            "text",
            "Text",
            &[DataType::Text],
        )),
        NodeTemplate::new("Join", "Join", "Tools")
            .handle(
                HandleTemplate::input("in", "In", &[DataType::Text])
                    .required()
                    .multiple(),
            )
            .handle(HandleTemplate::output("out", "Out", &[DataType::Text])),
    ]
}

/// A layered DAG of `nodes` nodes, `WIDTH` wide.
fn layered(nodes: usize, templates: &[NodeTemplate]) -> Workflow {
    let mut w = Workflow::default();
    let id = |i: usize| format!("n{i}");
    for i in 0..nodes {
        let node_id = id(i);
        let template = if i < WIDTH {
            &templates[0]
        } else {
            &templates[1]
        };
        for h in &template.template_handles {
            w.handles
                .push(h.instantiate(&node_id, format!("{node_id}:{}", h.id)));
        }
        if i >= WIDTH {
            let layer_start = i - i % WIDTH;
            let previous = [i - WIDTH, layer_start - WIDTH + (i + 1) % WIDTH];
            for (k, &source) in previous.iter().enumerate() {
                let out = if source < WIDTH { "text" } else { "out" };
                w.edges.push(Edge {
                    id: format!("{node_id}e{k}"),
                    source: id(source),
                    target: node_id.clone(),
                    source_handle_id: format!("{}:{out}", id(source)),
                    target_handle_id: format!("{node_id}:in"),
                    extra: Extra::new(),
                });
            }
        }
        w.nodes
            .push(WorkflowNode::new(node_id, template.node_type.clone()));
    }
    w
}

/// The baseline: index every node and handle id, and look up the four ids of every edge.
/// Returns how many lookups found something, so that nothing is optimised away.
fn index_and_look_up(workflow: &Workflow) -> usize {
    let nodes: HashMap<&str, usize> = workflow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let handles: HashMap<&str, usize> = workflow
        .handles
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    workflow
        .edges
        .iter()
        .map(|e| {
            usize::from(nodes.contains_key(e.source.as_str()))
                + usize::from(nodes.contains_key(e.target.as_str()))
                + usize::from(handles.contains_key(e.source_handle_id.as_str()))
                + usize::from(handles.contains_key(e.target_handle_id.as_str()))
        })
        .sum()
}

/// The median wall time of `runs` calls of `f`.
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn bench_validate(c: &mut Criterion) {
    let templates = templates();
    let graphs: Vec<(usize, Workflow)> =
        SIZES.iter().map(|&n| (n, layered(n, &templates))).collect();

    eprintln!("per node, median of 21 runs (baseline: hash ids + look up every edge's ids):");
    for (n, workflow) in &graphs {
        let per_node = |d: Duration| d.as_nanos() as f64 / *n as f64;
        let validation = per_node(median_time(21, || {
            black_box(validate(black_box(workflow), &templates)).expect("valid graph");
        }));
        let baseline = per_node(median_time(21, || {
            black_box(index_and_look_up(black_box(workflow)));
        }));
        eprintln!(
            "  {n:>7} nodes ({:>6} edges): validate {validation:>7.1} ns/node, \
             baseline {baseline:>7.1} ns/node, ratio {:.2}",
            workflow.edges.len(),
            validation / baseline
        );
    }

    let mut group = c.benchmark_group("validate_layered_dag");
    for (n, workflow) in &graphs {
        group.throughput(Throughput::Elements(*n as u64));
        if *n >= 100_000 {
            group.sample_size(20);
        }
        group.bench_with_input(BenchmarkId::new("validate", n), workflow, |b, w| {
            b.iter(|| validate(black_box(w), &templates))
        });
        group.bench_with_input(BenchmarkId::new("baseline", n), workflow, |b, w| {
            b.iter(|| index_and_look_up(black_box(w)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_validate);
criterion_main!(benches);
