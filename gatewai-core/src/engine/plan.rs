//! A workflow compiled into flat arrays for one run: nodes in topological order, each input
//! slot's sources as node indices, dependents in one CSR array, and in-degree counts.

use super::limiter::FairLimiter;
use super::{EngineInner, RetryPolicy, RunOptions, RunTarget};
use crate::FastMap as HashMap;
use crate::error::{Error, Result, ValidationError, ValidationErrors};
use crate::event::ResultSource;
use crate::model::{HandleType, NodeResult, OnError, Workflow};
use crate::node::{CachePolicy, Node, ResultMode, RunInput};
use std::sync::Arc;
use std::time::Duration;

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
    /// Index of the node in the workflow document.
    pub(crate) wf_index: u32,
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
    pub(crate) type_limit: Option<Arc<FairLimiter>>,
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
    /// Moves each planned node's config and previous result out of the run's own copy of the
    /// document (the run hands them back when it ends), so no node's data is deep-copied.
    pub(crate) fn take_documents(&mut self, workflow: &mut Workflow) {
        for node in &mut self.nodes {
            if let Some(doc) = workflow.nodes.get_mut(node.wf_index as usize) {
                node.config = Arc::new(std::mem::take(&mut doc.config));
                node.previous = doc.result.take().map(Arc::new);
            }
        }
    }

    pub(crate) fn dependents_of(&self, i: usize) -> &[u32] {
        &self.dependents[self.dep_offsets[i] as usize..self.dep_offsets[i + 1] as usize]
    }

    /// Compiles a validated workflow for a run: linear in nodes + handles + edges, with one
    /// allocation per node and handle where the data must be owned, and everything shared per
    /// node type computed once.
    pub(crate) fn build(
        engine: &EngineInner,
        workflow: &Workflow,
        options: &RunOptions,
    ) -> Result<Plan> {
        let registry = &engine.registry;
        let n = workflow.nodes.len();
        let index: HashMap<&str, u32> = workflow
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.id.as_str(), i as u32))
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
        // Per node type, once: the implementation and the policies that apply.
        let mut types: HashMap<&str, Option<TypeInfo>> = HashMap::default();
        let mut type_of: Vec<Option<usize>> = Vec::with_capacity(n);
        let mut type_list: Vec<TypeInfo> = Vec::new();
        let mut type_slot: HashMap<&str, usize> = HashMap::default();
        for node in &workflow.nodes {
            let name = node.node_type.as_str();
            if !types.contains_key(name) {
                let info = registry
                    .get(name)
                    .filter(|imp| imp.is_executable())
                    .map(|imp| TypeInfo::new(engine, name, imp));
                if let Some(info) = &info {
                    type_slot.insert(name, type_list.len());
                    type_list.push(info.clone());
                }
                types.insert(name, info);
            }
            type_of.push(type_slot.get(name).copied());
        }
        // Incoming edges per executable node, as (source index, edge index), in CSR form.
        let mut in_counts = vec![0u32; n + 1];
        let mut edge_ends: Vec<Option<(u32, u32)>> = Vec::with_capacity(workflow.edges.len());
        for edge in &workflow.edges {
            let ends = match (
                index.get(edge.source.as_str()),
                index.get(edge.target.as_str()),
            ) {
                (Some(&s), Some(&t))
                    if type_of[s as usize].is_some() && type_of[t as usize].is_some() =>
                {
                    in_counts[t as usize] += 1;
                    Some((s, t))
                }
                _ => None,
            };
            edge_ends.push(ends);
        }
        let in_offsets = prefix_sums(&in_counts);
        let mut in_fill = in_offsets.clone();
        let mut incoming = vec![(0u32, 0u32); in_offsets[n] as usize];
        for (e, ends) in edge_ends.iter().enumerate() {
            if let Some((s, t)) = *ends {
                let at = &mut in_fill[t as usize];
                incoming[*at as usize] = (s, e as u32);
                *at += 1;
            }
        }
        let incoming_of = |t: usize| &incoming[in_offsets[t] as usize..in_offsets[t + 1] as usize];
        // Preset results: pinned (not for terminal nodes) and resumed.
        let mut preset: Vec<Option<(Arc<NodeResult>, ResultSource)>> = vec![None; n];
        for (id, result) in &options.resumed {
            if let Some(&i) = index.get(id.as_str()) {
                preset[i as usize] = Some((Arc::new(result.clone()), ResultSource::Resumed));
            }
        }
        for (id, result) in &options.pinned {
            problems.extend(check_pinned(workflow, id, result));
            if let Some(&i) = index.get(id.as_str()) {
                let i = i as usize;
                let terminal = type_of[i].is_some_and(|t| type_list[t].terminal);
                if terminal {
                    tracing::warn!(node_id = %id, "ignoring a pinned result for a terminal node: it runs in the engine");
                } else if preset[i].is_none() {
                    preset[i] = Some((Arc::new(result.clone()), ResultSource::Pinned));
                }
            }
        }
        // Which nodes the run settles: all, or the targets and what they need upstream
        // (a preset node needs nothing upstream).
        let mut included = vec![false; n];
        match &options.target {
            RunTarget::All => {
                for (i, slot) in included.iter_mut().enumerate() {
                    *slot = type_of[i].is_some();
                }
            }
            RunTarget::Nodes(ids) => {
                let mut stack = Vec::new();
                for id in ids {
                    match index.get(id.as_str()) {
                        Some(&i) if type_of[i as usize].is_some() => stack.push(i as usize),
                        Some(_) => {}
                        None => problems.push(ValidationError::NodeNotFound {
                            node_id: id.clone(),
                        }),
                    }
                }
                while let Some(i) = stack.pop() {
                    if std::mem::replace(&mut included[i], true) || preset[i].is_some() {
                        continue;
                    }
                    stack.extend(
                        incoming_of(i)
                            .iter()
                            .map(|&(s, _)| s as usize)
                            .filter(|&s| !included[s]),
                    );
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(ValidationErrors(problems)));
        }
        // Topological order (Kahn) over the edges that count: into included, non-preset nodes.
        let counts = |t: usize| included[t] && preset[t].is_none();
        let mut indeg = vec![0u32; n];
        let mut out_counts = vec![0u32; n + 1];
        for t in (0..n).filter(|&t| counts(t)) {
            for &(s, _) in incoming_of(t) {
                if included[s as usize] {
                    indeg[t] += 1;
                    out_counts[s as usize] += 1;
                }
            }
        }
        let out_offsets = prefix_sums(&out_counts);
        let mut out_fill = out_offsets.clone();
        let mut outgoing = vec![0u32; out_offsets[n] as usize];
        for t in (0..n).filter(|&t| counts(t)) {
            for &(s, _) in incoming_of(t) {
                if included[s as usize] {
                    let at = &mut out_fill[s as usize];
                    outgoing[*at as usize] = t as u32;
                    *at += 1;
                }
            }
        }
        let mut order: Vec<u32> = (0..n as u32)
            .filter(|&i| included[i as usize] && indeg[i as usize] == 0)
            .collect();
        let mut head = 0;
        while head < order.len() {
            let i = order[head] as usize;
            head += 1;
            for &t in &outgoing[out_offsets[i] as usize..out_offsets[i + 1] as usize] {
                indeg[t as usize] -= 1;
                if indeg[t as usize] == 0 {
                    order.push(t);
                }
            }
        }
        let mut position = vec![u32::MAX; n];
        for (p, &i) in order.iter().enumerate() {
            position[i as usize] = p as u32;
        }
        // Handles per node (CSR), in the document's order.
        let mut h_counts = vec![0u32; n + 1];
        let handle_node: Vec<Option<u32>> = workflow
            .handles
            .iter()
            .map(|h| {
                let owner = index.get(h.node_id.as_str()).copied();
                if let Some(o) = owner {
                    h_counts[o as usize] += 1;
                }
                owner
            })
            .collect();
        let h_offsets = prefix_sums(&h_counts);
        let mut h_fill = h_offsets.clone();
        let mut handles_of = vec![0u32; h_offsets[n] as usize];
        for (h, owner) in handle_node.iter().enumerate() {
            if let Some(o) = owner {
                let at = &mut h_fill[*o as usize];
                handles_of[*at as usize] = h as u32;
                *at += 1;
            }
        }
        // Build plan nodes in topological order.
        let mut intern = Interner::default();
        let mut nodes: Vec<PlanNode> = Vec::with_capacity(order.len());
        for &i in &order {
            let i = i as usize;
            let node = &workflow.nodes[i];
            let Some(t) = type_of[i] else { continue };
            let info = &type_list[t];
            let template = info.imp.template();
            let mut handle_ids: Vec<u32> =
                handles_of[h_offsets[i] as usize..h_offsets[i + 1] as usize].to_vec();
            handle_ids.sort_by_key(|&h| (workflow.handles[h as usize].order, h));
            let mut slots = Vec::new();
            let mut handles = Vec::with_capacity(handle_ids.len());
            for &h in &handle_ids {
                let handle = &workflow.handles[h as usize];
                let template_handle_id =
                    handle.template_handle_id.as_deref().map(|t| intern.get(t));
                let label = intern.get(&handle.label);
                let id: Arc<str> = Arc::from(handle.id.as_str());
                let is_output = handle.handle_type == HandleType::Output;
                if !is_output {
                    let multiple = handle.multiple.unwrap_or_else(|| {
                        handle
                            .template_handle_id
                            .as_deref()
                            .and_then(|th| template.handle_template(th))
                            .is_some_and(|th| th.multiple)
                    });
                    slots.push(SlotPlan {
                        handle_id: id.clone(),
                        template_handle_id: template_handle_id.clone(),
                        label: label.clone(),
                        multiple,
                        required: handle.required,
                        sources: Vec::new(),
                    });
                }
                handles.push(HandlePlan {
                    id,
                    template_handle_id,
                    label,
                    data_types: handle.type_set(),
                    is_output,
                });
            }
            // Outputs first when keys are matched.
            handles.sort_by_key(|h| !h.is_output);
            if preset[i].is_none() {
                for &(s, e) in incoming_of(i) {
                    if !included[s as usize] {
                        continue;
                    }
                    let edge = &workflow.edges[e as usize];
                    let Some(slot) = slots
                        .iter_mut()
                        .find(|slot| *slot.handle_id == *edge.target_handle_id)
                    else {
                        continue;
                    };
                    let src = position[s as usize];
                    let Some(src_handle) = nodes.get(src as usize).and_then(|src_node| {
                        src_node
                            .handles
                            .iter()
                            .find(|h| *h.id == *edge.source_handle_id)
                            .map(|h| h.id.clone())
                    }) else {
                        continue;
                    };
                    slot.sources.push((src, src_handle));
                }
            }
            nodes.push(PlanNode {
                wf_index: i as u32,
                id: Arc::from(node.id.as_str()),
                node_type: info.node_type.clone(),
                label: if node.name.is_empty() {
                    info.display_name.clone()
                } else {
                    intern.get(&node.name)
                },
                node: info.imp.clone(),
                // Moved in from the document by `take_documents`, not copied.
                config: Arc::new(serde_json::Value::Null),
                previous: None,
                slots,
                handles,
                transient: info.transient,
                on_error: node.on_error.unwrap_or_default(),
                timeout: info.timeout,
                retry: info.retry.clone(),
                type_limit: info.type_limit.clone(),
                preset: preset[i].clone(),
                run_input: if options.inputs.is_empty() {
                    None
                } else {
                    options.inputs.get(&node.id).cloned().map(Arc::new)
                },
                force: !options.force.is_empty() && options.force.contains(&node.id),
                mode: info.mode,
                cacheable: info.cacheable,
                is_run_output: info.is_run_output,
                version: info.version,
            });
        }
        // Dependents (CSR), once per edge, from the slot sources.
        let count = nodes.len();
        let mut dep_counts = vec![0u32; count + 1];
        for node in &nodes {
            for slot in &node.slots {
                for (s, _) in &slot.sources {
                    dep_counts[*s as usize] += 1;
                }
            }
        }
        let dep_offsets = prefix_sums(&dep_counts);
        let mut fill = dep_offsets.clone();
        let mut dependents = vec![0u32; dep_offsets[count] as usize];
        let mut indegree = vec![0u32; count];
        for (t, node) in nodes.iter().enumerate() {
            for slot in &node.slots {
                for (s, _) in &slot.sources {
                    let at = &mut fill[*s as usize];
                    dependents[*at as usize] = t as u32;
                    *at += 1;
                    indegree[t] += 1;
                }
            }
        }
        Ok(Plan {
            nodes,
            dep_offsets,
            dependents,
            indegree,
        })
    }
}

/// What every node of one type shares in a run.
#[derive(Clone)]
struct TypeInfo {
    imp: Arc<dyn Node>,
    node_type: Arc<str>,
    display_name: Arc<str>,
    terminal: bool,
    transient: bool,
    timeout: Option<Duration>,
    retry: Arc<RetryPolicy>,
    type_limit: Option<Arc<FairLimiter>>,
    mode: ResultMode,
    cacheable: bool,
    is_run_output: bool,
    version: u32,
}

impl TypeInfo {
    fn new(engine: &EngineInner, name: &str, imp: &Arc<dyn Node>) -> Self {
        let policy = engine.policies.get(name);
        let template = imp.template();
        TypeInfo {
            imp: imp.clone(),
            node_type: Arc::from(name),
            display_name: Arc::from(template.display_name.as_str()),
            terminal: template.is_terminal_node,
            transient: template.is_transient,
            timeout: policy.and_then(|p| p.timeout).or(engine.default_timeout),
            retry: Arc::new(
                policy
                    .and_then(|p| p.retry.clone())
                    .unwrap_or_else(|| engine.retry.clone()),
            ),
            type_limit: engine.type_limits.get(name).cloned(),
            mode: imp.result_mode(),
            cacheable: imp.cache_policy() == CachePolicy::Pure,
            is_run_output: imp.is_run_output(),
            version: imp.version(),
        }
    }
}

/// Exclusive prefix sums: `out[i]` = sum of `counts[..i]`; `counts` has one extra slot.
fn prefix_sums(counts: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(counts.len());
    let mut acc = 0u32;
    for &c in counts {
        out.push(acc);
        acc += c;
    }
    out
}

/// Shares one `Arc<str>` among equal strings borrowed from the workflow (labels, template
/// handle ids), so a run allocates them once rather than per handle.
#[derive(Default)]
struct Interner<'a> {
    strings: HashMap<&'a str, Arc<str>>,
}

impl<'a> Interner<'a> {
    fn get(&mut self, s: &'a str) -> Arc<str> {
        self.strings
            .entry(s)
            .or_insert_with(|| Arc::from(s))
            .clone()
    }
}

/// A pinned result comes from a client: every item must sit on an output handle of its node
/// with a data type the handle carries, and the selected index must be in range.
fn check_pinned(workflow: &Workflow, node_id: &str, result: &NodeResult) -> Vec<ValidationError> {
    let mut problems = Vec::new();
    let problem = |message: String| ValidationError::InvalidPinnedResult {
        node_id: node_id.to_owned(),
        message,
    };
    if !result.outputs.is_empty() && result.selected_output_index >= result.outputs.len() {
        problems.push(problem(format!(
            "selectedOutputIndex {} is out of range ({} generations)",
            result.selected_output_index,
            result.outputs.len()
        )));
    }
    for generation in &result.outputs {
        for item in &generation.items {
            let handle = workflow.handles.iter().find(|h| {
                h.id == item.output_handle_id
                    && h.node_id == node_id
                    && h.handle_type == HandleType::Output
            });
            match handle {
                None => problems.push(problem(format!(
                    "item on `{}`, which is not an output handle of the node",
                    item.output_handle_id
                ))),
                Some(h)
                    if !h.data_types.is_empty()
                        && !h
                            .type_set()
                            .intersects(crate::model::DataTypeSet::of(&[item.data_type])) =>
                {
                    problems.push(problem(format!(
                        "{} on output `{}`, which carries {}",
                        item.data_type,
                        h.id,
                        h.type_set()
                    )))
                }
                Some(_) => {}
            }
        }
    }
    problems
}
