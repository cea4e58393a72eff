//! A workflow compiled into flat arrays: nodes in topological order, each input slot's sources
//! as node indices, dependents in one CSR array, and in-degree counts. A plan holds only what
//! the document's structure decides, so the engine keeps plans of unchanged documents and a
//! re-run skips validation and planning; what each run brings (configs, previous results,
//! pinned results, run inputs) is gathered per run into [`NodeRun`]s.

use super::key::FieldSink;
use super::limiter::FairLimiter;
use super::{EngineInner, RetryPolicy, RunOptions, RunTarget};
use crate::FastMap as HashMap;
use crate::cache::CacheKey;
use crate::error::{Error, Result, ValidationError, ValidationErrors};
use crate::event::ResultSource;
use crate::model::{Data, DataType, Handle, HandleType, NodeResult, OnError, OutputItem, Workflow};
use crate::node::{CachePolicy, Node, ResultMode, RunInput};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// One input handle of a planned node.
pub(crate) struct SlotPlan {
    pub(crate) handle_id: Arc<str>,
    pub(crate) template_handle_id: Option<Arc<str>>,
    pub(crate) label: Arc<str>,
    pub(crate) multiple: bool,
    pub(crate) required: bool,
    /// Where its sources are in [`Plan::sources`].
    pub(crate) sources: std::ops::Range<u32>,
}

/// Where a slot's value comes from: an upstream node and one of its handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Source {
    /// The upstream node's index in the plan.
    pub(crate) node: u32,
    /// The position of the edge's source handle in the upstream node's
    /// [`handles`](PlanNode::handles) (outputs first).
    pub(crate) handle: u32,
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
    /// Where its input slots are in [`Plan::slots`].
    pub(crate) slots: std::ops::Range<u32>,
    pub(crate) handles: Vec<HandlePlan>,
    pub(crate) transient: bool,
    pub(crate) on_error: OnError,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retry: Arc<RetryPolicy>,
    pub(crate) type_limit: Option<Arc<FairLimiter>>,
    /// Whether the node must run in the engine (a pinned result for it is ignored).
    pub(crate) terminal: bool,
    pub(crate) mode: ResultMode,
    pub(crate) cacheable: bool,
    pub(crate) is_run_output: bool,
    /// The plan's part of the node's result-cache key (see `engine::key`).
    pub(crate) key_prefix: [u8; 32],
    /// Where output keys are found, for a node with many handles.
    pub(crate) keys: Option<Box<KeyIndex>>,
    /// Whether every output handle of the node names an output its type declares: then an
    /// output key the type declares that no handle answers to is an output the node lacks
    /// (rather than one a stale handle was meant for).
    pub(crate) outputs_declared: bool,
}

impl PlanNode {
    /// The handle an output key of the node names: the first whose template handle id or id
    /// is the key, else the first whose label is the key, ignoring ASCII case.
    pub(crate) fn handle_for_key(&self, key: &str) -> Option<&HandlePlan> {
        handle_for_key(&self.handles, self.keys.as_deref(), key)
    }
}

/// See [`PlanNode::handle_for_key`]: by the index when the node has one, else by a scan.
fn handle_for_key<'h>(
    handles: &'h [HandlePlan],
    keys: Option<&KeyIndex>,
    key: &str,
) -> Option<&'h HandlePlan> {
    let position = match keys {
        Some(keys) => keys
            .by_key
            .get(key)
            .or_else(|| keys.by_label.get(key.to_ascii_lowercase().as_str()))
            .map(|&p| p as usize),
        None => handles
            .iter()
            .position(|h| h.template_handle_id.as_deref() == Some(key) || *h.id == *key)
            .or_else(|| {
                handles
                    .iter()
                    .position(|h| h.label.eq_ignore_ascii_case(key))
            }),
    };
    handles.get(position?)
}

/// A node's handles by output key (template handle id or id) and by ASCII-lower-cased label,
/// built for nodes with many handles so that mapping their outputs stays linear.
pub(crate) struct KeyIndex {
    by_key: HashMap<Arc<str>, u32>,
    by_label: HashMap<Box<str>, u32>,
}

impl KeyIndex {
    fn new(handles: &[HandlePlan]) -> Option<Box<Self>> {
        if handles.len() <= ById::MAP_ABOVE {
            return None;
        }
        let mut by_key = HashMap::default();
        let mut by_label = HashMap::default();
        for (p, h) in handles.iter().enumerate() {
            let p = p as u32;
            if let Some(t) = &h.template_handle_id {
                by_key.entry(t.clone()).or_insert(p);
            }
            by_key.entry(h.id.clone()).or_insert(p);
            by_label
                .entry(h.label.to_ascii_lowercase().into_boxed_str())
                .or_insert(p);
        }
        Some(Box::new(KeyIndex { by_key, by_label }))
    }
}

/// A result handed in for a node: pinned by the client, or resumed from an interrupted
/// attempt.
#[derive(Clone)]
pub(crate) struct Preset {
    pub(crate) result: Arc<NodeResult>,
    pub(crate) source: ResultSource,
    /// The error a resumed node that continued on error had turned into its output.
    pub(crate) error: Option<Arc<str>>,
}

/// What one run brings for a planned node.
#[derive(Clone)]
pub(crate) struct NodeRun {
    /// The node's config, moved out of the run's document (and handed back at the end).
    pub(crate) config: serde_json::Value,
    /// The node's result before the run, moved out of the document likewise.
    pub(crate) previous: Option<Arc<NodeResult>>,
    /// A pinned or resumed result the run uses instead of executing the node.
    pub(crate) preset: Option<Preset>,
    /// The key a resumed result was recorded with: the preset is used only if the node's
    /// key, once its inputs are resolved, is the same (the plan settles its upstream).
    pub(crate) resume_key: Option<CacheKey>,
    /// The value the run was given for this source node.
    pub(crate) run_input: Option<Arc<RunInput>>,
    /// Executes even when the cache has the result.
    pub(crate) force: bool,
}

/// A compiled workflow: everything its structure decides, shared by every run of it.
pub(crate) struct Plan {
    /// Nodes in topological order.
    pub(crate) nodes: Vec<PlanNode>,
    /// `dependents[dep_offsets[i]..dep_offsets[i + 1]]`: the nodes fed by node `i`, once per edge.
    pub(crate) dep_offsets: Vec<u32>,
    pub(crate) dependents: Vec<u32>,
    /// Number of edges into each node from nodes of the run.
    pub(crate) indegree: Vec<u32>,
    /// Every node's input slots, node after node in the plan's order: a run reads a node's
    /// slots and their sources where the previous node's end, not behind two pointers of
    /// the node's own.
    pub(crate) slots: Vec<SlotPlan>,
    /// Every slot's sources, slot after slot, in edge order.
    pub(crate) sources: Vec<Source>,
    /// Number of nodes in the document.
    doc_nodes: usize,
    /// Document node id → (document index, plan index or `u32::MAX`), built on first need
    /// (only runs with pinned results, resumed results, run inputs or forced nodes ask).
    lookup: OnceLock<crate::FastMap<Box<str>, (u32, u32)>>,
}

impl Plan {
    /// Gathers what this run brings for each planned node: configs and previous results are
    /// moved out of the run's own copy of the document (the run hands them back when it
    /// ends), so no node's data is deep-copied; pinned and resumed results, run inputs and
    /// forced nodes are checked and attached.
    pub(crate) fn prepare_run(
        &self,
        workflow: &mut Workflow,
        options: &RunOptions,
    ) -> Result<Vec<NodeRun>> {
        let mut runs: Vec<NodeRun> = self
            .nodes
            .iter()
            .map(|node| {
                let (config, previous) = match workflow.nodes.get_mut(node.wf_index as usize) {
                    Some(doc) => (std::mem::take(&mut doc.config), doc.result.take()),
                    None => (serde_json::Value::Null, None),
                };
                NodeRun {
                    config,
                    previous,
                    preset: None,
                    resume_key: None,
                    run_input: None,
                    force: false,
                }
            })
            .collect();
        let has_ids = !(options.pinned.is_empty()
            && options.resumed.is_empty()
            && options.inputs.is_empty()
            && options.force.is_empty());
        if !has_ids {
            return Ok(runs);
        }
        let problems = self.attach(&mut runs, workflow, options);
        if problems.is_empty() {
            Ok(runs)
        } else {
            // Hand the moved data back: a rejected run leaves the document as it was.
            restore_documents(self, workflow, runs, |_| None);
            Err(Error::Invalid(ValidationErrors(problems)))
        }
    }

    /// Attaches pinned and resumed results, run inputs and forced flags; returns the problems.
    fn attach(
        &self,
        runs: &mut [NodeRun],
        workflow: &Workflow,
        options: &RunOptions,
    ) -> Vec<ValidationError> {
        let lookup = self.lookup(workflow);
        let problems = brought_problems(workflow, options, |id| lookup.contains_key(id));
        let planned = |id: &str| {
            lookup
                .get(id)
                .map(|&(_, p)| p as usize)
                .filter(|&p| p < runs.len())
        };
        // A result a node turned an error into is reused only while the node still continues
        // on error: one whose document now says `Fail` runs again (and fails as in a fresh
        // run, rather than pass the error on to its dependents).
        let reusable = |p: usize, resumed: &super::Resumed| {
            resumed.error.is_none() || self.nodes[p].on_error == OnError::Continue
        };
        let mut presets = Vec::new();
        let mut resume_keys = Vec::new();
        for (id, resumed) in &options.resumed {
            if let Some(p) = planned(id) {
                if !reusable(p, resumed) {
                    tracing::info!(node_id = %id, "not resuming the error a node continued with: it no longer continues on error");
                    continue;
                }
                presets.push((
                    p,
                    Preset {
                        result: Arc::new(resumed.result.clone()),
                        source: ResultSource::Resumed,
                        error: resumed.error.as_deref().map(Arc::from),
                    },
                ));
                if let Some(key) = resumed.cache_key {
                    resume_keys.push((p, key));
                }
            }
        }
        for (id, result) in &options.pinned {
            if let Some(p) = planned(id) {
                if self.nodes[p].terminal {
                    tracing::warn!(node_id = %id, "ignoring a pinned result for a terminal node: it runs in the engine");
                } else if !options.resumed.get(id).is_some_and(|r| reusable(p, r)) {
                    presets.push((
                        p,
                        Preset {
                            result: Arc::new(result.clone()),
                            source: ResultSource::Pinned,
                            error: None,
                        },
                    ));
                }
            }
        }
        let mut inputs = Vec::new();
        for (id, input) in &options.inputs {
            if let Some(p) = planned(id) {
                inputs.push((p, Arc::new(input.clone())));
            }
        }
        let forced: Vec<usize> = options.force.iter().filter_map(|id| planned(id)).collect();
        for (p, preset) in presets {
            runs[p].preset = Some(preset);
        }
        for (p, key) in resume_keys {
            runs[p].resume_key = Some(key);
        }
        for (p, input) in inputs {
            runs[p].run_input = Some(input);
        }
        for p in forced {
            runs[p].force = true;
        }
        problems
    }

    fn lookup(&self, workflow: &Workflow) -> &crate::FastMap<Box<str>, (u32, u32)> {
        self.lookup.get_or_init(|| {
            let mut map: crate::FastMap<Box<str>, (u32, u32)> = workflow
                .nodes
                .iter()
                .enumerate()
                .take(self.doc_nodes)
                .rev() // the first of duplicate ids wins, as in validation
                .map(|(i, n)| (Box::from(n.id.as_str()), (i as u32, u32::MAX)))
                .collect();
            for (p, node) in self.nodes.iter().enumerate() {
                if let Some(entry) = map.get_mut(&*node.id) {
                    entry.1 = p as u32;
                }
            }
            map
        })
    }

    pub(crate) fn dependents_of(&self, i: usize) -> &[u32] {
        &self.dependents[self.dep_offsets[i] as usize..self.dep_offsets[i + 1] as usize]
    }

    /// A node's input slots.
    pub(crate) fn slots_of(&self, node: &PlanNode) -> &[SlotPlan] {
        &self.slots[node.slots.start as usize..node.slots.end as usize]
    }

    /// A slot's sources, in edge order.
    pub(crate) fn sources_of(&self, slot: &SlotPlan) -> &[Source] {
        &self.sources[slot.sources.start as usize..slot.sources.end as usize]
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
        // Only the target is checked here: what the run brings is checked per run
        // (`prepare_run`, or `brought_problems` when this fails).
        let mut problems = Vec::new();
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
        // Nodes whose result the run brings and needs nothing upstream for (resumed without
        // a key; pinned, except for terminal nodes). A result resumed with its key is
        // checked against the node's key, which its inputs decide: its upstream runs.
        let mut preset = vec![false; n];
        let mut keyed = vec![false; n];
        for (id, resumed) in &options.resumed {
            if let Some(&i) = index.get(id.as_str()) {
                match resumed.cache_key {
                    Some(_) => keyed[i as usize] = true,
                    None => preset[i as usize] = true,
                }
            }
        }
        // A resumed result wins over a pinned one (as `attach` decides): a pin does not
        // make a key-checked node skip its upstream.
        for id in options.pinned.keys() {
            if let Some(&i) = index.get(id.as_str())
                && !options.resumed.contains_key(id)
            {
                let i = i as usize;
                if !type_of[i].is_some_and(|t| type_list[t].terminal) {
                    preset[i] = true;
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
                    if std::mem::replace(&mut included[i], true) || preset[i] {
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
        let counts = |t: usize| included[t] && !preset[t];
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
        // For each planned node with many handles, its handles by id (edges find their
        // source handle here rather than by a scan, so planning stays linear in one node's
        // handles).
        let mut handles_by_id: Vec<ById<'_>> = Vec::with_capacity(order.len());
        let mut all_slots: Vec<SlotPlan> = Vec::with_capacity(order.len());
        let mut all_sources: Vec<Source> = Vec::with_capacity(workflow.edges.len());
        for &i in &order {
            let i = i as usize;
            let node = &workflow.nodes[i];
            let Some(t) = type_of[i] else { continue };
            let info = &type_list[t];
            let template = info.imp.template();
            let mut handle_ids: Vec<u32> =
                handles_of[h_offsets[i] as usize..h_offsets[i + 1] as usize].to_vec();
            // Outputs first (where output keys are matched), each kind in the document's order.
            handle_ids.sort_by_key(|&h| {
                let handle = &workflow.handles[h as usize];
                (handle.handle_type != HandleType::Output, handle.order, h)
            });
            let id_of = |h: &u32| workflow.handles[*h as usize].id.as_str();
            let is_input =
                |h: &&u32| workflow.handles[**h as usize].handle_type != HandleType::Output;
            // The node's slots go straight into the plan's array, after the previous node's.
            let slot_start = all_slots.len();
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
                    all_slots.push(SlotPlan {
                        handle_id: id.clone(),
                        template_handle_id: template_handle_id.clone(),
                        label: label.clone(),
                        multiple,
                        required: handle.required,
                        sources: 0..0,
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
            // (slot, source), in edge order.
            let mut fed: Vec<(u32, Source)> = Vec::new();
            if !preset[i] {
                let slot_by_id = ById::new(handle_ids.iter().filter(is_input).map(id_of));
                for &(s, e) in incoming_of(i) {
                    if !included[s as usize] {
                        continue;
                    }
                    let edge = &workflow.edges[e as usize];
                    // The scan walks the slots (inputs only), not every handle.
                    let Some(slot) = slot_by_id.find(
                        &edge.target_handle_id,
                        all_slots[slot_start..].iter().map(|slot| &*slot.handle_id),
                    ) else {
                        continue;
                    };
                    let src = position[s as usize] as usize;
                    let Some(handle) = nodes.get(src).and_then(|src_node| {
                        handles_by_id.get(src)?.find(
                            &edge.source_handle_id,
                            src_node.handles.iter().map(|h| &*h.id),
                        )
                    }) else {
                        continue;
                    };
                    fed.push((
                        slot,
                        Source {
                            node: src as u32,
                            handle,
                        },
                    ));
                }
            }
            // Each slot's sources after the previous slot's, in edge order (a stable sort).
            fed.sort_by_key(|&(slot, _)| slot);
            let mut fed = fed.into_iter().peekable();
            for (k, slot) in all_slots[slot_start..].iter_mut().enumerate() {
                let start = all_sources.len() as u32;
                while let Some((_, source)) = fed.next_if(|&(s, _)| s as usize == k) {
                    all_sources.push(source);
                }
                slot.sources = start..all_sources.len() as u32;
            }
            handles_by_id.push(ById::new(handle_ids.iter().map(id_of)));
            let hashed = (info.cacheable && engine.cache.is_some()) || engine.records_keys;
            let key_prefix = if hashed || keyed[i] {
                super::key::key_prefix(
                    &info.node_type,
                    info.version,
                    &node.config,
                    &all_slots[slot_start..],
                    &handles,
                )
            } else {
                [0; 32]
            };
            let outputs_declared = handles.iter().filter(|h| h.is_output).all(|h| {
                h.template_handle_id
                    .as_deref()
                    .and_then(|t| template.handle_template(t))
                    .is_some_and(|t| t.handle_type == HandleType::Output)
            });
            nodes.push(PlanNode {
                key_prefix,
                outputs_declared,
                keys: KeyIndex::new(&handles),
                wf_index: i as u32,
                id: Arc::from(node.id.as_str()),
                node_type: info.node_type.clone(),
                label: if node.name.is_empty() {
                    info.display_name.clone()
                } else {
                    intern.get(&node.name)
                },
                node: info.imp.clone(),
                slots: slot_start as u32..all_slots.len() as u32,
                handles,
                transient: info.transient,
                on_error: node.on_error.unwrap_or_default(),
                timeout: info.timeout,
                retry: info.retry.clone(),
                type_limit: info.type_limit.clone(),
                terminal: info.terminal,
                mode: info.mode,
                cacheable: info.cacheable,
                is_run_output: info.is_run_output,
            });
        }
        // Dependents (CSR), once per edge, from the slot sources.
        let count = nodes.len();
        let mut dep_counts = vec![0u32; count + 1];
        for source in &all_sources {
            dep_counts[source.node as usize] += 1;
        }
        let dep_offsets = prefix_sums(&dep_counts);
        let mut fill = dep_offsets.clone();
        let mut dependents = vec![0u32; dep_offsets[count] as usize];
        let mut indegree = vec![0u32; count];
        for (t, node) in nodes.iter().enumerate() {
            for slot in &all_slots[node.slots.start as usize..node.slots.end as usize] {
                let sources = slot.sources.start as usize..slot.sources.end as usize;
                for source in &all_sources[sources] {
                    let at = &mut fill[source.node as usize];
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
            slots: all_slots,
            sources: all_sources,
            doc_nodes: n,
            lookup: OnceLock::new(),
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

/// Positions of one node's handles by id, for a node with many handles; a scan serves the
/// others, where it is cheaper than hashing. The first of equal ids wins, as in a scan.
struct ById<'a>(Option<HashMap<&'a str, u32>>);

impl<'a> ById<'a> {
    /// Nodes with more handles than this get a map.
    const MAP_ABOVE: usize = 16;

    fn new(ids: impl Iterator<Item = &'a str> + Clone) -> Self {
        if ids.clone().nth(Self::MAP_ABOVE).is_none() {
            return ById(None);
        }
        let mut map = HashMap::default();
        for (p, id) in ids.enumerate() {
            map.entry(id).or_insert(p as u32);
        }
        ById(Some(map))
    }

    /// The position of `id`: from the map, or by scanning `ids` (the same ids, in order).
    fn find<'b>(&self, id: &str, mut ids: impl Iterator<Item = &'b str>) -> Option<u32> {
        match &self.0 {
            Some(map) => map.get(id).copied(),
            None => ids.position(|x| x == id).map(|p| p as u32),
        }
    }
}

/// Handles by (node id, handle id), the first of each pair: where the items of pinned and
/// resumed results are looked up, once each, so that a large result is checked in linear
/// time.
type HandlesByNode<'a> = HashMap<(&'a str, &'a str), &'a Handle>;

/// A pinned result comes from a client: every item must sit on an output handle of its node
/// with a data type the handle carries and data of that type, and the selected index must be
/// in range.
///
/// A resumed result recorded without a key comes from a record of a node that may have
/// changed since: only what flows on is checked, its selected generation, whose items may sit
/// on any handle of the node (an output node's result sits on its input, as the node mapped
/// it). A result resumed with its key is not checked here: it is used only when the node's
/// key, which covers its handles, is unchanged.
fn check_brought(
    handles: &HandlesByNode<'_>,
    node_id: &str,
    result: &NodeResult,
    source: ResultSource,
) -> Vec<ValidationError> {
    let mut problems = Vec::new();
    let resumed = source == ResultSource::Resumed;
    let problem = |message: String| match source {
        ResultSource::Resumed => ValidationError::InvalidResumedResult {
            node_id: node_id.to_owned(),
            message,
        },
        _ => ValidationError::InvalidPinnedResult {
            node_id: node_id.to_owned(),
            message,
        },
    };
    if !result.outputs.is_empty() && result.selected_output_index >= result.outputs.len() {
        problems.push(problem(format!(
            "selectedOutputIndex {} is out of range ({} generations)",
            result.selected_output_index,
            result.outputs.len()
        )));
    }
    let generations = if resumed {
        result
            .selected()
            .map(std::slice::from_ref)
            .unwrap_or_default()
    } else {
        &result.outputs
    };
    for generation in generations {
        for item in &generation.items {
            let handle = handles
                .get(&(node_id, &*item.output_handle_id))
                .filter(|h| resumed || h.handle_type == HandleType::Output);
            match handle {
                None if resumed => problems.push(problem(format!(
                    "item on `{}`, which is not a handle of the node",
                    item.output_handle_id
                ))),
                None => problems.push(problem(format!(
                    "item on `{}`, which is not an output handle of the node",
                    item.output_handle_id
                ))),
                Some(h)
                    if h.handle_type == HandleType::Output
                        && !h.data_types.is_empty()
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
            if let Some(holds) = data_not_of_its_type(item) {
                problems.push(problem(format!(
                    "{} item on output `{}` holds {holds}",
                    item.data_type, item.output_handle_id
                )));
            }
        }
    }
    problems
}

/// What an item's data holds when it is not of the item's type (a Number item holding text,
/// which a node reading a number would be handed as one).
fn data_not_of_its_type(item: &OutputItem) -> Option<&'static str> {
    let of_its_type = match item.data_type {
        DataType::Text => matches!(item.data, Data::Text(_)),
        DataType::Number => matches!(item.data, Data::Number(_)),
        DataType::Boolean => matches!(item.data, Data::Boolean(_)),
        DataType::Image | DataType::Video | DataType::Audio | DataType::File => {
            matches!(item.data, Data::File(_))
        }
    };
    let holds = match item.data {
        Data::Text(_) => "text",
        Data::Number(_) => "a number",
        Data::Boolean(_) => "a boolean",
        Data::File(_) => "a file",
    };
    (!of_its_type).then_some(holds)
}

/// What is wrong with what a run brings: ids (pinned, resumed, run inputs, forced nodes) that
/// are not nodes of the document, and pinned or resumed results that do not fit their node.
pub(crate) fn brought_problems(
    workflow: &Workflow,
    options: &RunOptions,
    exists: impl Fn(&str) -> bool,
) -> Vec<ValidationError> {
    let mut problems: Vec<ValidationError> = options
        .pinned
        .keys()
        .chain(options.resumed.keys())
        .chain(options.inputs.keys())
        .chain(options.force.iter())
        .filter(|id| !exists(id))
        .map(|id| ValidationError::NodeNotFound {
            node_id: id.clone(),
        })
        .collect();
    let unkeyed = |id: &str| {
        options
            .resumed
            .get(id)
            .is_some_and(|r| r.cache_key.is_none())
    };
    if options.pinned.is_empty() && !options.resumed.keys().any(|id| unkeyed(id)) {
        return problems;
    }
    let handles: HandlesByNode<'_> = workflow
        .handles
        .iter()
        .rev() // the first of duplicates wins
        .filter(|h| options.pinned.contains_key(&h.node_id) || unkeyed(&h.node_id))
        .map(|h| ((h.node_id.as_str(), h.id.as_str()), h))
        .collect();
    for (id, result) in &options.pinned {
        problems.extend(check_brought(&handles, id, result, ResultSource::Pinned));
    }
    for (id, resumed) in options.resumed.iter().filter(|(id, _)| unkeyed(id)) {
        problems.extend(check_brought(
            &handles,
            id,
            &resumed.result,
            ResultSource::Resumed,
        ));
    }
    problems
}

/// Hands each planned node's config back to the document, with its new result (`result_of`
/// its plan index, for a completed node that is not transient) or else its previous one.
pub(crate) fn restore_documents(
    plan: &Plan,
    workflow: &mut Workflow,
    runs: Vec<NodeRun>,
    mut result_of: impl FnMut(usize) -> Option<Arc<NodeResult>>,
) {
    for (i, (node, run)) in plan.nodes.iter().zip(runs).enumerate() {
        let result = result_of(i).filter(|_| !node.transient);
        if let Some(doc) = workflow.nodes.get_mut(node.wf_index as usize) {
            hand_back(doc, run, result);
        }
    }
}

/// One node's part of [`restore_documents`].
fn hand_back(doc: &mut crate::model::Node, run: NodeRun, result: Option<Arc<NodeResult>>) {
    doc.config = run.config;
    match result {
        Some(result) => doc.result = Some(result),
        None if doc.result.is_none() => doc.result = run.previous,
        None => {}
    }
}

/// Runs of at least this many nodes hand their documents back on two threads.
const PARALLEL_RESTORE_FROM: usize = 4096;

/// [`restore_documents`] for a run that owns its nodes' settlements (`take` moves a node's
/// result out of its settlement): a large run's nodes are handed back on two threads (a
/// scoped thread, joined before this returns). Each node touches its document node, its
/// run's part and its settlement once, mostly cache misses, at the end of the run where
/// nothing else is left to do: a second core halves that wait.
pub(crate) fn restore_documents_owned<T: Send>(
    plan: &Plan,
    workflow: &mut Workflow,
    mut runs: Vec<NodeRun>,
    settled: &mut [T],
    take: impl Fn(&mut T) -> Option<Arc<NodeResult>> + Sync,
) {
    let n = plan.nodes.len();
    if n < PARALLEL_RESTORE_FROM || runs.len() != n || settled.len() != n {
        return restore_documents(plan, workflow, runs, |i| settled.get_mut(i).and_then(&take));
    }
    // Each planned node's document node, in plan order (each document node at most once).
    let mut docs: Vec<Option<&mut crate::model::Node>> =
        workflow.nodes.iter_mut().map(Some).collect();
    let mut ordered: Vec<Option<&mut crate::model::Node>> = plan
        .nodes
        .iter()
        .map(|node| docs.get_mut(node.wf_index as usize).and_then(Option::take))
        .collect();
    drop(docs);
    let part = |nodes: &[PlanNode],
                docs: &mut [Option<&mut crate::model::Node>],
                runs: Vec<NodeRun>,
                settled: &mut [T]| {
        for (((node, doc), run), slot) in nodes.iter().zip(docs).zip(runs).zip(settled) {
            let result = take(slot).filter(|_| !node.transient);
            if let Some(doc) = doc {
                hand_back(doc, run, result);
            }
        }
    };
    let mid = n / 2;
    let runs_b = runs.split_off(mid);
    let (nodes_a, nodes_b) = plan.nodes.split_at(mid);
    let (docs_a, docs_b) = ordered.split_at_mut(mid);
    let (settled_a, settled_b) = settled.split_at_mut(mid);
    let part = &part;
    // A panic on the other thread would be a bug in plain moves; what it handed back stays.
    let _ = on_two_threads(
        "gatewai-restore",
        || part(nodes_a, docs_a, runs, settled_a),
        || part(nodes_b, docs_b, runs_b, settled_b),
    );
}

/// Runs `here` on this thread and `there` on a scoped thread named `name`, joined before this
/// returns; `there` runs on this thread after `here` when no thread can be started. `there`'s
/// result is `None` only when it panicked on its thread.
fn on_two_threads<A, B: Send>(
    name: &str,
    here: impl FnOnce() -> A,
    there: impl FnOnce() -> B + Send,
) -> (A, Option<B>) {
    let mut there = Some(there);
    let mut result = None;
    let here = std::thread::scope(|scope| {
        let (job, out) = (&mut there, &mut result);
        let other = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, move || {
                if let Some(job) = job.take() {
                    *out = Some(job());
                }
            });
        let here = here();
        if let Ok(other) = other {
            let _ = other.join();
        }
        here
    });
    // Still here: no thread could be started.
    if let Some(there) = there {
        result = Some(there());
    }
    (here, result)
}

/// The compiled plans of recently run documents, keyed by a fingerprint of everything that
/// decides a plan: the document's nodes, handles, edges and configs (validation checks
/// configs), the run target, and which nodes the run brings results for. A re-run of an
/// unchanged document skips validation and planning.
pub(crate) struct PlanCache {
    capacity: usize,
    /// The key of the fingerprints' keyed hash, drawn at random per engine.
    key: [u8; 32],
    /// A use counter, and at most `capacity` kept plans.
    entries: Mutex<(u64, Vec<KeptPlan>)>,
}

/// A kept plan: (fingerprint, plan, the use counter's value at its last use).
type KeptPlan = (u128, Arc<Plan>, u64);

impl PlanCache {
    pub(crate) fn new(capacity: usize) -> Self {
        PlanCache {
            capacity,
            key: std::array::from_fn(|_| fastrand::u8(..)),
            entries: Mutex::new((0, Vec::new())),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The plan compiled for this fingerprint, if it is still kept.
    pub(crate) fn get(&self, key: u128) -> Option<Arc<Plan>> {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let entry = entries.iter_mut().find(|(k, _, _)| *k == key)?;
        entry.2 = *clock;
        Some(entry.1.clone())
    }

    /// Keeps a plan, evicting the least recently used one when full.
    pub(crate) fn insert(&self, key: u128, plan: Arc<Plan>) {
        let mut guard = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (clock, entries) = &mut *guard;
        *clock += 1;
        if let Some(entry) = entries.iter_mut().find(|(k, _, _)| *k == key) {
            *entry = (key, plan, *clock);
            return;
        }
        if entries.len() >= self.capacity
            && let Some(oldest) = entries
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(i, _)| i)
        {
            entries.swap_remove(oldest);
        }
        entries.push((key, plan, *clock));
    }

    /// A 128-bit fingerprint of what decides the plan: BLAKE3 in keyed mode (a key drawn at
    /// random per engine), over every field in order, each text prefixed with its length
    /// (numbers, lengths and tags written as LEB128, as in result-cache keys).
    /// Fields are gathered into a buffer and hashed 64 KiB at a time (a small document's in
    /// one go), so BLAKE3 hashes many chunks at once (SIMD) and small fields cost a copy, not
    /// a compression each. The nodes and handles, and the edges and run options, are hashed
    /// apart and the two hashes hashed together: a large document's halves on two threads (a
    /// scoped thread, joined before this returns), which takes a fifth to a quarter off the
    /// fingerprint of a 10,000- or 100,000-node document on a 2-core machine. A keyed
    /// cryptographic hash: no document can be crafted to collide with another, and chance
    /// collisions are out of reach (2^-128 per pair).
    pub(crate) fn fingerprint(&self, workflow: &Workflow, options: &RunOptions) -> u128 {
        let large = workflow.handles.len() + workflow.edges.len() >= PARALLEL_FINGERPRINT_FROM;
        self.fingerprint_on(workflow, options, large)
    }

    /// The fingerprint, its two halves hashed on two threads when `two_threads` (the same
    /// value either way).
    fn fingerprint_on(&self, workflow: &Workflow, options: &RunOptions, two_threads: bool) -> u128 {
        let half = |first: bool| {
            // A buffer of about the half's size (a small document's fingerprint zeroes a
            // kibibyte, not 64 KiB: how the bytes are split between updates does not change
            // the hash).
            let fields = if first {
                workflow.nodes.len() + workflow.handles.len()
            } else {
                workflow.edges.len() + options.pinned.len() + options.resumed.len() + 1
            };
            let mut print = Fingerprint::new(&self.key, fields.saturating_mul(BYTES_PER_ITEM));
            print.num(u64::from(first));
            if first {
                print.nodes_and_handles(workflow);
            } else {
                print.edges_and_options(workflow, options);
            }
            print.finish()
        };
        // A large document's halves are hashed on two threads (each half is mostly memory
        // reads of scattered strings); a thread that cannot be started leaves it to this one.
        let (first, second) = if two_threads {
            let (first, second) =
                on_two_threads("gatewai-fingerprint", || half(true), || half(false));
            (first, second.unwrap_or_else(|| half(false)))
        } else {
            (half(true), half(false))
        };
        // Two hashes of fixed size, in order: no lengths needed.
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(first.as_bytes());
        hasher.update(second.as_bytes());
        let hash = hasher.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&hash.as_bytes()[..16]);
        u128::from_le_bytes(bytes)
    }
}

/// Documents with at least this many handles and edges are fingerprinted on two threads.
const PARALLEL_FINGERPRINT_FROM: usize = 8192;

/// Bytes of fields gathered before they are hashed, at most.
const FINGERPRINT_BUFFER: usize = 64 * 1024;

/// ... and at least.
const MIN_FINGERPRINT_BUFFER: usize = 1024;

/// About how many bytes of fields a node, handle or edge makes: sizes the buffer.
const BYTES_PER_ITEM: usize = 64;

/// Room kept free at the buffer's end: a number or a short field is written without a
/// bounds check of its own, and a field longer than this is hashed where it lies.
const FIELD_ROOM: usize = 64;

/// Copies `from` (at most [`FIELD_ROOM`] bytes) to the start of `to` ([`FIELD_ROOM`] bytes)
/// with a few fixed-size moves rather than a call to `memcpy`: ids and labels are short, and
/// a document has hundreds of thousands of them. Two moves of the same size, one from each
/// end of `from`, cover every length between that size and twice it.
fn copy_short(from: &[u8], to: &mut [u8]) {
    fn two<const N: usize>(from: &[u8], to: &mut [u8]) {
        let n = from.len();
        let (head, tail) = (&from[..N], &from[n - N..]);
        to[..N].copy_from_slice(head);
        to[n - N..n].copy_from_slice(tail);
    }
    match from.len() {
        0 => {}
        1..=3 => {
            let n = from.len();
            to[0] = from[0];
            to[n / 2] = from[n / 2];
            to[n - 1] = from[n - 1];
        }
        4..=7 => two::<4>(from, to),
        8..=15 => two::<8>(from, to),
        16..=31 => two::<16>(from, to),
        _ => two::<32>(from, to),
    }
}

/// Gathers fields for the keyed hash.
struct Fingerprint {
    hasher: blake3::Hasher,
    buf: Box<[u8]>,
    len: usize,
}

impl FieldSink for Fingerprint {
    fn write(&mut self, bytes: &[u8]) {
        if bytes.len() > FIELD_ROOM {
            self.flush();
            self.hasher.update(bytes);
            return;
        }
        let room = &mut self.buf[self.len..self.len + FIELD_ROOM];
        copy_short(bytes, room);
        self.len += bytes.len();
        self.flush_if_full();
    }

    /// Written in the buffer's room, with no copy.
    fn num(&mut self, n: u64) {
        let room = &mut self.buf[self.len..self.len + super::key::LEB128_MAX];
        self.len += super::key::leb128(n, room);
        self.flush_if_full();
    }
}

impl Fingerprint {
    /// A fingerprint that gathers about `expected` bytes (within [`MIN_FINGERPRINT_BUFFER`]
    /// and [`FINGERPRINT_BUFFER`]) before it hashes them.
    fn new(key: &[u8; 32], expected: usize) -> Self {
        let gather = expected.clamp(MIN_FINGERPRINT_BUFFER, FINGERPRINT_BUFFER);
        Fingerprint {
            hasher: blake3::Hasher::new_keyed(key),
            buf: vec![0; gather + FIELD_ROOM].into_boxed_slice(),
            len: 0,
        }
    }

    /// Hashes what was gathered once less than [`FIELD_ROOM`] bytes are left: every write
    /// starts with that much room.
    fn flush_if_full(&mut self) {
        if self.len + FIELD_ROOM >= self.buf.len() {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }

    fn finish(mut self) -> blake3::Hash {
        self.flush();
        self.hasher.finalize()
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.num(0),
            Some(s) => {
                self.num(1);
                self.field(s.as_bytes());
            }
        }
    }

    /// The nodes and handles: one half of the fingerprint.
    fn nodes_and_handles(&mut self, workflow: &Workflow) {
        self.num(workflow.nodes.len() as u64);
        for node in &workflow.nodes {
            self.field(node.id.as_bytes());
            self.field(node.node_type.as_bytes());
            self.field(node.name.as_bytes());
            self.num(match node.on_error {
                None => 0,
                Some(OnError::Fail) => 1,
                Some(OnError::Continue) => 2,
            });
            self.json(&node.config);
        }
        self.num(workflow.handles.len() as u64);
        for handle in &workflow.handles {
            self.field(handle.id.as_bytes());
            self.field(handle.node_id.as_bytes());
            self.num(u64::from(handle.handle_type == HandleType::Output));
            self.num(handle.data_types.len() as u64);
            for data_type in &handle.data_types {
                self.num(*data_type as u64);
            }
            self.field(handle.label.as_bytes());
            self.num(handle.order as u64);
            self.num(u64::from(handle.required));
            self.opt(handle.template_handle_id.as_deref());
            self.num(match handle.multiple {
                None => 0,
                Some(false) => 1,
                Some(true) => 2,
            });
        }
    }

    /// The edges and what the run options decide: the other half.
    fn edges_and_options(&mut self, workflow: &Workflow, options: &RunOptions) {
        self.num(workflow.edges.len() as u64);
        for edge in &workflow.edges {
            self.field(edge.id.as_bytes());
            self.field(edge.source.as_bytes());
            self.field(edge.target.as_bytes());
            self.field(edge.source_handle_id.as_bytes());
            self.field(edge.target_handle_id.as_bytes());
        }
        match &options.target {
            RunTarget::All => self.num(0),
            RunTarget::Nodes(ids) => {
                self.num(1);
                self.num(ids.len() as u64);
                for id in ids {
                    self.field(id.as_bytes());
                }
            }
        }
        // Which nodes bring their result decides what the run needs upstream. Pinned,
        // resumed and key-checked resumed results apart: a terminal node ignores a pinned
        // result but takes a resumed one, and a key-checked one needs its upstream, so the
        // same ids make different plans.
        let resumed = |keyed: bool| {
            options
                .resumed
                .iter()
                .filter(move |(_, r)| r.cache_key.is_some() == keyed)
                .map(|(id, _)| id.as_str())
        };
        let sets: [Vec<&str>; 3] = [
            options.pinned.keys().map(String::as_str).collect(),
            resumed(false).collect(),
            resumed(true).collect(),
        ];
        for mut ids in sets {
            ids.sort_unstable();
            self.num(ids.len() as u64);
            for id in ids {
                self.field(id.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(id: &str, template: Option<&str>, label: &str, is_output: bool) -> HandlePlan {
        HandlePlan {
            id: Arc::from(id),
            template_handle_id: template.map(Arc::from),
            label: Arc::from(label),
            data_types: crate::model::DataTypeSet::default(),
            is_output,
        }
    }

    /// Configs that differ in a number (as serde_json compares them) have different
    /// fingerprints, like the key prefixes a kept plan holds: also under serde_json's
    /// `arbitrary_precision`, where numbers keep their text and different ones can read as the
    /// same `f64` (`cargo test -p gatewai-core --features serde_json/arbitrary_precision`).
    #[test]
    fn configs_with_different_numbers_have_different_fingerprints() {
        let texts = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "1.0",
            "1.00",
            "1e0",
            "10e-1",
            "0.1",
            "0.10000000000000000001",
            "-1",
            "-1.0",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e300",
            "1e400",
        ];
        let configs: Vec<serde_json::Value> = texts
            .iter()
            .filter_map(|t| serde_json::from_str(&format!("{{\"k\":{t}}}")).ok())
            .collect();
        let plans = PlanCache::new(1);
        let options = RunOptions::default();
        let print = |config: &serde_json::Value| {
            let mut wf = Workflow::default();
            let mut node = crate::model::Node::new("n", "Sum");
            node.config = config.clone();
            wf.nodes.push(node);
            plans.fingerprint(&wf, &options)
        };
        for (i, a) in configs.iter().enumerate() {
            for b in &configs[..i] {
                // (`0.0` and `-0.0` compare equal yet are different texts: apart is fine.)
                assert!(a == b || print(a) != print(b), "{a} against {b}");
            }
        }
    }

    /// What the buffer hashes is exactly the fields' encoding (LEB128 numbers, each field
    /// behind its length, long fields hashed where they lie), whatever offset of the buffer a
    /// field or number lands on: ending a byte or a whole field before the buffer is full, or
    /// right on it, neither panics nor drops a byte.
    #[test]
    fn fields_hash_as_their_encoding_at_every_offset_of_the_buffer() {
        use super::super::key::{LEB128_MAX, leb128};
        let key = [7u8; 32];
        let field: Vec<u8> = (0..=255u8).cycle().take(4 * FIELD_ROOM).collect();
        let filler = &field[..FIELD_ROOM - 1];
        for gather in [FINGERPRINT_BUFFER, MIN_FINGERPRINT_BUFFER] {
            let mut print = Fingerprint::new(&key, gather);
            let full = print.buf.len() - FIELD_ROOM;
            assert_eq!(full, gather);
            let mut expected = Vec::new();
            let num = |print: &mut Fingerprint, expected: &mut Vec<u8>, n: u64| {
                print.num(n);
                let mut bytes = [0u8; LEB128_MAX];
                let len = leb128(n, &mut bytes);
                expected.extend_from_slice(&bytes[..len]);
            };
            let bytes = |print: &mut Fingerprint, expected: &mut Vec<u8>, b: &[u8]| {
                print.field(b);
                let mut len = [0u8; LEB128_MAX];
                let n = leb128(b.len() as u64, &mut len);
                expected.extend_from_slice(&len[..n]);
                expected.extend_from_slice(b);
            };
            for short in 0..=2 * FIELD_ROOM + 1 {
                // Up to `short` bytes before the buffer is full, then fields and numbers of every
                // size across its end.
                let start = print.len;
                let target = (full - short).max(start);
                for _ in 0..(target - start) / FIELD_ROOM {
                    bytes(&mut print, &mut expected, filler);
                }
                for _ in 0..(target - start) % FIELD_ROOM {
                    num(&mut print, &mut expected, 0);
                }
                assert_eq!(print.len, target % full, "{short}");
                bytes(&mut print, &mut expected, &field[short..short + FIELD_ROOM]);
                num(&mut print, &mut expected, u64::MAX);
                bytes(&mut print, &mut expected, &field[..FIELD_ROOM + 1 + short]);
                bytes(&mut print, &mut expected, &field[short..short + short % 17]);
                num(&mut print, &mut expected, 300);
            }
            assert_eq!(
                print.finish(),
                blake3::keyed_hash(&key, &expected),
                "{gather}"
            );
        }
    }

    /// Both halves run, the other one on its own thread; one that panics there is `None`.
    #[test]
    fn two_threads_run_both_halves() {
        let here = std::thread::current().id();
        let (a, b) = on_two_threads("t", || 1, || std::thread::current().id());
        assert_eq!((a, b.map(|id| id != here)), (1, Some(true)));
        let (a, b) = on_two_threads("t", || 2, || -> u8 { panic!("on purpose") });
        assert_eq!((a, b), (2, None));
    }

    /// Every length a short field can have is copied whole, and nothing past it is written.
    #[test]
    fn short_fields_are_copied_whole() {
        let from: Vec<u8> = (1..=FIELD_ROOM as u8).collect();
        for n in 0..=FIELD_ROOM {
            let mut to = [0u8; FIELD_ROOM];
            copy_short(&from[..n], &mut to);
            assert_eq!(&to[..n], &from[..n], "{n}");
            assert!(to[n..].iter().all(|&b| b == 0), "{n}");
        }
    }

    /// A document large enough to be fingerprinted on two threads: the fingerprint is the
    /// one a single thread computes, is the same for the same document, and changes with any
    /// field of either half (a node's config, a handle's label, an edge's id or target, a
    /// long id hashed where it lies, the run's target).
    #[test]
    fn a_large_document_has_one_fingerprint_and_every_change_shows() {
        use crate::model::{Edge, Handle, Node as DocNode};
        let n = PARALLEL_FINGERPRINT_FROM / 3 + 1;
        let mut wf = Workflow::default();
        for i in 0..n {
            let id = format!("n{i}");
            for (h, handle_type) in [("in", HandleType::Input), ("out", HandleType::Output)] {
                wf.handles.push(Handle {
                    id: format!("{id}:{h}"),
                    handle_type,
                    data_types: vec![DataType::Number],
                    label: h.to_owned(),
                    order: 0,
                    required: false,
                    template_handle_id: Some(h.to_owned()),
                    node_id: id.clone(),
                    description: None,
                    multiple: None,
                    extra: Default::default(),
                });
            }
            wf.nodes.push(DocNode::new(id, "Sum"));
        }
        for i in 1..n {
            wf.edges.push(Edge {
                id: format!("e{i}"),
                source: format!("n{}", i - 1),
                target: format!("n{i}"),
                source_handle_id: format!("n{}:out", i - 1),
                target_handle_id: format!("n{i}:in"),
                extra: Default::default(),
            });
        }
        // A long field (hashed where it lies), changed below to another of its length.
        wf.nodes[0].name = "x".repeat(FIELD_ROOM + 1);
        assert!(wf.handles.len() + wf.edges.len() >= PARALLEL_FINGERPRINT_FROM);
        let plans = PlanCache::new(1);
        let options = RunOptions::default();
        let print = plans.fingerprint(&wf, &options);
        assert_eq!(print, plans.fingerprint_on(&wf, &options, false));
        assert_eq!(print, plans.fingerprint(&wf.clone(), &options));
        type Change = (&'static str, fn(&mut Workflow));
        let changes: [Change; 7] = [
            ("config", |wf| {
                wf.nodes[7].config = serde_json::json!({ "add": 1 })
            }),
            ("label", |wf| wf.handles[3].label = "In".to_owned()),
            ("last handle's label", |wf| {
                wf.handles.last_mut().unwrap().label = "Out".to_owned()
            }),
            ("a handle moved from the last node to the first", |wf| {
                let moved = wf.handles.pop().unwrap();
                wf.handles.insert(0, moved);
            }),
            ("edge id", |wf| {
                wf.edges.last_mut().unwrap().id = "e0".to_owned()
            }),
            ("edge target", |wf| {
                wf.edges[5].target_handle_id = "n6:out".to_owned()
            }),
            ("long id", |wf| {
                wf.nodes[0].name = "y".repeat(FIELD_ROOM + 1)
            }),
        ];
        let mut seen = std::collections::HashSet::from([print]);
        for (what, change) in changes {
            let mut changed = wf.clone();
            change(&mut changed);
            let print = plans.fingerprint(&changed, &options);
            assert_eq!(
                print,
                plans.fingerprint_on(&changed, &options, false),
                "{what}"
            );
            assert!(seen.insert(print), "{what} left the fingerprint as it was");
        }
        let partial = RunOptions {
            target: RunTarget::Nodes(vec!["n3".to_owned()]),
            ..RunOptions::default()
        };
        assert!(seen.insert(plans.fingerprint(&wf, &partial)), "run target");
    }

    /// The index finds, for every key, the very handle a scan finds: the first whose template
    /// handle id or id is the key, else the first whose label is, ignoring ASCII case.
    #[test]
    fn the_key_index_finds_what_a_scan_finds() {
        let mut handles = vec![
            handle("h0", Some("out"), "Out", true),
            handle("out", Some("other"), "Shadow", true), // an id equal to a template id
            handle("h2", Some("out"), "Out", true),       // a second handle of the template
            handle("h3", None, "Error", true),
            handle("h4", Some("error"), "ERROR", true),
            handle("Mixed", None, "mIxEd", false),
        ];
        for i in 0..ById::MAP_ABOVE {
            handles.push(handle(
                &format!("x{i}"),
                Some("x"),
                &format!("Label {i}"),
                false,
            ));
        }
        let keys = KeyIndex::new(&handles).expect("a node with many handles has an index");
        assert!(KeyIndex::new(&handles[..ById::MAP_ABOVE]).is_none());
        let probes = [
            "out", "other", "h2", "error", "Error", "eRRor", "mixed", "MIXED", "Mixed", "x", "x7",
            "label 3", "LABEL 15", "missing", "", "shadow",
        ];
        for key in probes {
            let indexed = handle_for_key(&handles, Some(&keys), key).map(|h| &*h.id);
            let scanned = handle_for_key(&handles, None, key).map(|h| &*h.id);
            assert_eq!(indexed, scanned, "key {key:?}");
        }
        assert_eq!(
            handle_for_key(&handles, Some(&keys), "out").map(|h| &*h.id),
            Some("h0")
        );
        // A template id is matched exactly, and before any label.
        assert_eq!(
            handle_for_key(&handles, Some(&keys), "error").map(|h| &*h.id),
            Some("h4")
        );
        assert_eq!(
            handle_for_key(&handles, Some(&keys), "eRRor").map(|h| &*h.id),
            Some("h3")
        );
        assert_eq!(
            handle_for_key(&handles, Some(&keys), "ERROR!").map(|h| &*h.id),
            None
        );
    }

    /// Positions by id: the first of equal ids, by map or by scan alike.
    #[test]
    fn positions_by_id_agree_with_a_scan() {
        let ids: Vec<String> = (0..40).map(|i| format!("id{}", i % 30)).collect();
        let small: Vec<&str> = ids
            .iter()
            .take(ById::MAP_ABOVE)
            .map(String::as_str)
            .collect();
        let all: Vec<&str> = ids.iter().map(String::as_str).collect();
        assert!(ById::new(small.iter().copied()).0.is_none());
        let map = ById::new(all.iter().copied());
        assert!(map.0.is_some());
        for probe in ["id0", "id5", "id29", "id30", "nope"] {
            let scanned = all.iter().position(|x| *x == probe).map(|p| p as u32);
            assert_eq!(map.find(probe, all.iter().copied()), scanned, "{probe}");
            assert_eq!(
                ById(None).find(probe, all.iter().copied()),
                scanned,
                "{probe}"
            );
        }
    }
}
