//! A workflow compiled into flat arrays for one run: nodes in topological order, each input
//! slot's sources as node indices, dependents in one CSR array, and in-degree counts.

use super::{EngineInner, RetryPolicy, RunOptions, RunTarget};
use crate::error::{Error, Result, ValidationError, ValidationErrors};
use crate::event::ResultSource;
use crate::model::{HandleType, NodeResult, OnError, Workflow};
use crate::node::{CachePolicy, Node, ResultMode, RunInput};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// One input handle of a planned node.
pub(crate) struct SlotPlan {
    pub(crate) handle_id: Arc<str>,
    pub(crate) template_handle_id: Option<Arc<str>>,
    pub(crate) label: Arc<str>,
    pub(crate) multiple: bool,
    pub(crate) required: bool,
    /// (source node index, source output handle id), in edge order.
    pub(crate) sources: Vec<(u32, Arc<str>)>,
}

/// A handle a node's output key may name.
pub(crate) struct HandlePlan {
    pub(crate) id: Arc<str>,
    pub(crate) template_handle_id: Option<Arc<str>>,
    pub(crate) label: Arc<str>,
    pub(crate) data_types: crate::model::DataTypeSet,
    pub(crate) is_output: bool,
}

/// A node of the run.
pub(crate) struct PlanNode {
    pub(crate) id: Arc<str>,
    pub(crate) node_type: Arc<str>,
    pub(crate) label: Arc<str>,
    pub(crate) node: Arc<dyn Node>,
    pub(crate) config: Arc<serde_json::Value>,
    pub(crate) previous: Option<Arc<NodeResult>>,
    pub(crate) slots: Vec<SlotPlan>,
    pub(crate) handles: Vec<HandlePlan>,
    pub(crate) transient: bool,
    pub(crate) on_error: OnError,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Arc<RetryPolicy>,
    pub(crate) type_limit: Option<Arc<Semaphore>>,
    pub(crate) preset: Option<(Arc<NodeResult>, ResultSource)>,
    pub(crate) run_input: Option<Arc<RunInput>>,
    pub(crate) force: bool,
    pub(crate) mode: ResultMode,
    pub(crate) cacheable: bool,
    pub(crate) is_run_output: bool,
    pub(crate) version: u32,
}

/// The compiled run.
pub(crate) struct Plan {
    /// Nodes in topological order.
    pub(crate) nodes: Vec<PlanNode>,
    /// `dependents[dep_offsets[i]..dep_offsets[i + 1]]`: the nodes fed by node `i`, once per edge.
    pub(crate) dep_offsets: Vec<u32>,
    pub(crate) dependents: Vec<u32>,
    /// Number of edges into each node from nodes of the run.
    pub(crate) indegree: Vec<u32>,
}

impl Plan {
    pub(crate) fn dependents_of(&self, i: usize) -> &[u32] {
        &self.dependents[self.dep_offsets[i] as usize..self.dep_offsets[i + 1] as usize]
    }

    /// Compiles a validated workflow for a run.
    pub(crate) fn build(
        engine: &EngineInner,
        workflow: &Workflow,
        options: &RunOptions,
    ) -> Result<Plan> {
        let registry = &engine.registry;
        let n = workflow.nodes.len();
        let index: HashMap<&str, usize> = workflow
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.as_str(), i))
            .collect();
        let mut problems = Vec::new();
        for id in options
            .pinned
            .keys()
            .chain(options.resumed.keys())
            .chain(options.inputs.keys())
        {
            if !index.contains_key(id.as_str()) {
                problems.push(ValidationError::NodeNotFound {
                    node_id: id.clone(),
                });
            }
        }
        // Node types (validation guarantees they exist) and which ones execute at all.
        let mut impls: Vec<Option<&Arc<dyn Node>>> = Vec::with_capacity(n);
        for node in &workflow.nodes {
            let imp = registry.get(&node.node_type);
            impls.push(imp.filter(|i| i.is_executable()));
        }
        // Incoming edges per node (as edge indices), for the upstream walk and slot sources.
        let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (e, edge) in workflow.edges.iter().enumerate() {
            if let (Some(&s), Some(&t)) = (
                index.get(edge.source.as_str()),
                index.get(edge.target.as_str()),
            ) {
                if impls[s].is_some() && impls[t].is_some() {
                    incoming[t].push(e);
                }
            }
        }
        // Preset results: pinned (not for terminal nodes) and resumed.
        let mut preset: Vec<Option<(Arc<NodeResult>, ResultSource)>> = vec![None; n];
        for (id, result) in &options.resumed {
            if let Some(&i) = index.get(id.as_str()) {
                preset[i] = Some((Arc::new(result.clone()), ResultSource::Resumed));
            }
        }
        for (id, result) in &options.pinned {
            if let Some(&i) = index.get(id.as_str()) {
                let terminal = impls[i].is_some_and(|imp| imp.template().is_terminal_node);
                if terminal {
                    tracing::warn!(node_id = %id, "ignoring a pinned result for a terminal node: it runs in the engine");
                } else if preset[i].is_none() {
                    preset[i] = Some((Arc::new(result.clone()), ResultSource::Pinned));
                }
            }
        }
        // Which nodes the run settles.
        let mut included = vec![false; n];
        match &options.target {
            RunTarget::All => {
                for i in 0..n {
                    included[i] = impls[i].is_some();
                }
            }
            RunTarget::Nodes(ids) => {
                let mut stack = Vec::new();
                for id in ids {
                    match index.get(id.as_str()) {
                        Some(&i) if impls[i].is_some() => stack.push(i),
                        Some(_) => {}
                        None => problems.push(ValidationError::NodeNotFound {
                            node_id: id.clone(),
                        }),
                    }
                }
                while let Some(i) = stack.pop() {
                    if std::mem::replace(&mut included[i], true) {
                        continue;
                    }
                    if preset[i].is_some() {
                        continue;
                    }
                    for &e in &incoming[i] {
                        if let Some(&s) = index.get(workflow.edges[e].source.as_str()) {
                            if !included[s] {
                                stack.push(s);
                            }
                        }
                    }
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(ValidationErrors(problems)));
        }
        // Topological order of the included nodes (Kahn); preset nodes do not wait for
        // their upstream, so edges into them are dropped.
        let edge_counts = |i: usize| -> bool { included[i] && preset[i].is_none() };
        let mut indeg_tmp = vec![0u32; n];
        let mut outgoing: Vec<Vec<usize>> = vec![Vec::new(); n];
        for t in 0..n {
            if !edge_counts(t) {
                continue;
            }
            for &e in &incoming[t] {
                if let Some(&s) = index.get(workflow.edges[e].source.as_str()) {
                    if included[s] {
                        indeg_tmp[t] += 1;
                        outgoing[s].push(t);
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..n)
            .filter(|&i| included[i] && indeg_tmp[i] == 0)
            .collect();
        let mut head = 0;
        let mut indeg_walk = indeg_tmp.clone();
        while head < order.len() {
            let i = order[head];
            head += 1;
            for &t in &outgoing[i] {
                indeg_walk[t] -= 1;
                if indeg_walk[t] == 0 {
                    order.push(t);
                }
            }
        }
        let mut position = vec![u32::MAX; n];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p as u32;
        }
        // Build plan nodes in topological order.
        let mut nodes = Vec::with_capacity(order.len());
        let mut handles_by_node: HashMap<&str, Vec<usize>> = HashMap::with_capacity(order.len());
        for (h, handle) in workflow.handles.iter().enumerate() {
            handles_by_node
                .entry(handle.node_id.as_str())
                .or_default()
                .push(h);
        }
        for &i in &order {
            let node = &workflow.nodes[i];
            let Some(imp) = impls[i] else { continue };
            let template = imp.template();
            let policy = engine.policies.get(&node.node_type);
            let mut handle_ids: Vec<usize> = handles_by_node
                .get(node.id.as_str())
                .cloned()
                .unwrap_or_default();
            handle_ids.sort_by_key(|&h| (workflow.handles[h].order, h));
            let mut slots = Vec::new();
            let mut handles = Vec::new();
            let mut slot_of: HashMap<&str, usize> = HashMap::new();
            for &h in &handle_ids {
                let handle = &workflow.handles[h];
                let tmpl = handle
                    .template_handle_id
                    .as_deref()
                    .and_then(|t| template.handle_template(t));
                let hp = HandlePlan {
                    id: Arc::from(handle.id.as_str()),
                    template_handle_id: handle.template_handle_id.as_deref().map(Arc::from),
                    label: Arc::from(handle.label.as_str()),
                    data_types: handle.type_set(),
                    is_output: handle.handle_type == HandleType::Output,
                };
                if handle.handle_type == HandleType::Input {
                    slot_of.insert(handle.id.as_str(), slots.len());
                    slots.push(SlotPlan {
                        handle_id: hp.id.clone(),
                        template_handle_id: hp.template_handle_id.clone(),
                        label: hp.label.clone(),
                        multiple: handle
                            .multiple
                            .unwrap_or_else(|| tmpl.is_some_and(|t| t.multiple)),
                        required: handle.required,
                        sources: Vec::new(),
                    });
                }
                handles.push(hp);
            }
            // Outputs first when keys are matched.
            handles.sort_by_key(|h| !h.is_output);
            if preset[i].is_none() {
                for &e in &incoming[i] {
                    let edge = &workflow.edges[e];
                    let Some(&s) = index.get(edge.source.as_str()) else {
                        continue;
                    };
                    if !included[s] {
                        continue;
                    }
                    if let Some(&slot) = slot_of.get(edge.target_handle_id.as_str()) {
                        slots[slot]
                            .sources
                            .push((position[s], Arc::from(edge.source_handle_id.as_str())));
                    }
                }
            }
            nodes.push(PlanNode {
                id: Arc::from(node.id.as_str()),
                node_type: Arc::from(node.node_type.as_str()),
                label: Arc::from(if node.name.is_empty() {
                    template.display_name.as_str()
                } else {
                    node.name.as_str()
                }),
                node: imp.clone(),
                config: Arc::new(node.config.clone()),
                previous: node.result.clone().map(Arc::new),
                slots,
                handles,
                transient: template.is_transient,
                on_error: node.on_error.unwrap_or_default(),
                timeout: policy.and_then(|p| p.timeout).or(engine.default_timeout),
                retry: Arc::new(
                    policy
                        .and_then(|p| p.retry.clone())
                        .unwrap_or_else(|| engine.retry.clone()),
                ),
                type_limit: engine.type_limits.get(&node.node_type).cloned(),
                preset: preset[i].clone(),
                run_input: options.inputs.get(&node.id).cloned().map(Arc::new),
                force: options.force.contains(&node.id),
                mode: imp.result_mode(),
                cacheable: imp.cache_policy() == CachePolicy::Pure,
                is_run_output: imp.is_run_output(),
                version: imp.version(),
            });
        }
        // Dependents (CSR), once per edge, from the slot sources.
        let count = nodes.len();
        let mut out_deg = vec![0u32; count + 1];
        for node in &nodes {
            for slot in &node.slots {
                for (s, _) in &slot.sources {
                    out_deg[*s as usize] += 1;
                }
            }
        }
        let mut dep_offsets = vec![0u32; count + 1];
        for i in 0..count {
            dep_offsets[i + 1] = dep_offsets[i] + out_deg[i];
        }
        let mut fill = dep_offsets.clone();
        let mut dependents = vec![0u32; dep_offsets[count] as usize];
        for (t, node) in nodes.iter().enumerate() {
            for slot in &node.slots {
                for (s, _) in &slot.sources {
                    let at = &mut fill[*s as usize];
                    dependents[*at as usize] = t as u32;
                    *at += 1;
                }
            }
        }
        // A node waits for one completion per edge into it.
        let mut indegree = vec![0u32; count];
        for &d in &dependents {
            indegree[d as usize] += 1;
        }
        Ok(Plan {
            nodes,
            dep_offsets,
            dependents,
            indegree,
        })
    }
}
