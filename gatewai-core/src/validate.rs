//! Workflow validation: every problem at once, each naming its node, handle or edge.
//!
//! [`validate`] checks a workflow against its node templates and returns every problem it finds,
//! not the first. It runs in time linear in the size of the graph: every lookup table is built
//! once ([`GraphIndex`]), and cycles are found iteratively (Kahn's algorithm, then one cycle path
//! is extracted per group of nodes left over), so graphs of 100,000 nodes validate in
//! milliseconds and never overflow the stack.

use crate::error::{ValidationError, ValidationErrors};
use crate::model::{Edge, Handle, HandleType, Node, NodeTemplate, Workflow};
use crate::registry::TemplateSource;
use crate::{FastMap as HashMap, FastSet as HashSet};
use std::collections::VecDeque;
use std::collections::hash_map::Entry;

/// Validates a workflow against node templates; returns every problem found.
///
/// Checks: unknown node types, duplicate node / handle / edge ids, duplicate edges between the
/// same pair of handles, handles of missing nodes, two handles of a node naming the same
/// template handle, a handle naming a template handle of the other kind (input or output),
/// edges to missing nodes or handles (or to a handle that is not on the named node), edges
/// leaving an input or entering an output, incompatible data types, several edges into a
/// single-edge input, cycles (naming the nodes on each), required inputs left unconnected, and
/// configs the node type rejects ([`TemplateSource::check_config`]).
pub fn validate<T: TemplateSource + ?Sized>(
    workflow: &Workflow,
    templates: &T,
) -> Result<(), ValidationErrors> {
    check(workflow, templates, true)
}

/// Validates the structure of a workflow: everything [`validate`] checks except that required
/// inputs are connected.
///
/// This is what a canvas being edited must satisfy at every step (a freshly added LLM node has
/// its required prompt open until the user connects it); the editing operations in
/// [`edit`](crate::edit) keep it, and [`validate`] adds the required-input check before a run.
pub fn validate_structure<T: TemplateSource + ?Sized>(
    workflow: &Workflow,
    templates: &T,
) -> Result<(), ValidationErrors> {
    check(workflow, templates, false)
}

/// Whether an input handle takes many edges: its own `multiple` flag when set, otherwise the
/// flag of the handle template it was created from (none: one edge).
pub fn input_takes_many(handle: &Handle, template: Option<&NodeTemplate>) -> bool {
    handle.multiple.unwrap_or_else(|| {
        template
            .zip(handle.template_handle_id.as_deref())
            .and_then(|(t, id)| t.handle_template(id))
            .is_some_and(|h| h.multiple)
    })
}

/// Lookup tables of a workflow's nodes, handles and edges by id, built once in linear time.
/// When several items share an id, the first one wins (validation reports the duplicate).
#[derive(Debug, Clone)]
pub struct GraphIndex<'a> {
    workflow: &'a Workflow,
    nodes: HashMap<&'a str, usize>,
    handles: HashMap<&'a str, usize>,
    edges: HashMap<&'a str, usize>,
    /// For each handle (by position), the index of the node it belongs to, if that exists.
    handle_nodes: Vec<Option<usize>>,
}

/// The ends of an edge as far as they check out, as indices into the workflow's `nodes` and
/// `handles`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeEnds {
    /// The source node, if it exists.
    pub source_node: Option<usize>,
    /// The target node, if it exists.
    pub target_node: Option<usize>,
    /// The source handle, if it exists, is on the source node and is an output.
    pub source_handle: Option<usize>,
    /// The target handle, if it exists, is on the target node and is an input.
    pub target_handle: Option<usize>,
}

impl<'a> GraphIndex<'a> {
    /// Indexes a workflow.
    pub fn new(workflow: &'a Workflow) -> Self {
        Self::build(workflow, &mut Vec::new())
    }

    /// Indexes a workflow, reporting duplicate ids into `problems`.
    fn build(workflow: &'a Workflow, problems: &mut Vec<ValidationError>) -> Self {
        let nodes = index_ids(workflow.nodes.iter().map(|n| n.id.as_str()), |id| {
            problems.push(ValidationError::DuplicateNodeId {
                node_id: id.to_owned(),
            })
        });
        let handles = index_ids(workflow.handles.iter().map(|h| h.id.as_str()), |id| {
            problems.push(ValidationError::DuplicateHandleId {
                handle_id: id.to_owned(),
            })
        });
        let edges = index_ids(workflow.edges.iter().map(|e| e.id.as_str()), |id| {
            problems.push(ValidationError::DuplicateEdgeId {
                edge_id: id.to_owned(),
            })
        });
        let handle_nodes = workflow
            .handles
            .iter()
            .map(|h| nodes.get(h.node_id.as_str()).copied())
            .collect();
        GraphIndex {
            workflow,
            nodes,
            handles,
            edges,
            handle_nodes,
        }
    }

    /// The indexed workflow.
    pub fn workflow(&self) -> &'a Workflow {
        self.workflow
    }

    /// Index into `nodes` of the node with this id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.get(id).copied()
    }

    /// The node with this id.
    pub fn node(&self, id: &str) -> Option<&'a Node> {
        self.node_index(id).map(|i| &self.workflow.nodes[i])
    }

    /// Index into `handles` of the handle with this id.
    pub fn handle_index(&self, id: &str) -> Option<usize> {
        self.handles.get(id).copied()
    }

    /// The handle with this id.
    pub fn handle(&self, id: &str) -> Option<&'a Handle> {
        self.handle_index(id).map(|i| &self.workflow.handles[i])
    }

    /// Index into `nodes` of the node the handle at index `handle` belongs to, if that node
    /// exists.
    pub fn node_of_handle(&self, handle: usize) -> Option<usize> {
        self.handle_nodes.get(handle).copied().flatten()
    }

    /// Whether the handle at index `handle` is the first (or only) one with its id.
    fn is_first_handle(&self, handle: usize) -> bool {
        self.handles.len() == self.workflow.handles.len()
            || self.handle_index(&self.workflow.handles[handle].id) == Some(handle)
    }

    /// Index into `edges` of the edge with this id.
    pub fn edge_index(&self, id: &str) -> Option<usize> {
        self.edges.get(id).copied()
    }

    /// The edge with this id.
    pub fn edge(&self, id: &str) -> Option<&'a Edge> {
        self.edge_index(id).map(|i| &self.workflow.edges[i])
    }

    /// Checks one edge against the indexed workflow (the edge itself need not be in it):
    /// missing nodes or handles, handles not on the named node, wrong direction, incompatible
    /// data types. Problems go into `problems`; the ends that check out are returned.
    pub fn check_edge(&self, edge: &Edge, problems: &mut Vec<ValidationError>) -> EdgeEnds {
        let (source_node, source_handle) = self.check_end(
            edge,
            "source",
            &edge.source,
            &edge.source_handle_id,
            HandleType::Output,
            problems,
        );
        let (target_node, target_handle) = self.check_end(
            edge,
            "target",
            &edge.target,
            &edge.target_handle_id,
            HandleType::Input,
            problems,
        );
        if let (Some(s), Some(t)) = (source_handle, target_handle) {
            let (source, target) = (&self.workflow.handles[s], &self.workflow.handles[t]);
            if !source.type_set().intersects(target.type_set()) {
                problems.push(ValidationError::IncompatibleTypes {
                    edge_id: edge.id.clone(),
                    source_node: edge.source.clone(),
                    source_handle_id: edge.source_handle_id.clone(),
                    target_node: edge.target.clone(),
                    target_handle_id: edge.target_handle_id.clone(),
                    produced: source.type_set(),
                    accepted: target.type_set(),
                });
            }
        }
        EdgeEnds {
            source_node,
            target_node,
            source_handle,
            target_handle,
        }
    }

    fn check_end(
        &self,
        edge: &Edge,
        end: &'static str,
        node_id: &str,
        handle_id: &str,
        expected: HandleType,
        problems: &mut Vec<ValidationError>,
    ) -> (Option<usize>, Option<usize>) {
        let handle = self.handle_index(handle_id);
        let owner = handle.and_then(|h| self.handle_nodes[h]);
        // The handle's owner is the node the edge names in the usual case: no second lookup.
        let node = match owner {
            Some(n) if self.workflow.nodes[n].id == node_id => Some(n),
            _ => self.node_index(node_id),
        };
        let Some(node) = node else {
            problems.push(ValidationError::MissingNode {
                edge_id: edge.id.clone(),
                end,
                node_id: node_id.to_owned(),
            });
            return (None, None);
        };
        let Some(handle) = handle.filter(|_| owner == Some(node)) else {
            problems.push(ValidationError::MissingHandle {
                edge_id: edge.id.clone(),
                end,
                node_id: node_id.to_owned(),
                handle_id: handle_id.to_owned(),
            });
            return (Some(node), None);
        };
        let actual = self.workflow.handles[handle].handle_type;
        if actual != expected {
            problems.push(ValidationError::WrongDirection {
                edge_id: edge.id.clone(),
                end,
                node_id: node_id.to_owned(),
                handle_id: handle_id.to_owned(),
                actual,
            });
            return (Some(node), None);
        }
        (Some(node), Some(handle))
    }
}

/// What is wrong with an id (a node's, a run's): empty, or holding a control character (a
/// NUL, a line break, …), which cannot go where ids go (records, logs, URLs, database text).
pub(crate) fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// Maps ids to the position of their first occurrence; calls `on_duplicate` once per id that
/// occurs more than once.
fn index_ids<'a>(
    ids: impl ExactSizeIterator<Item = &'a str>,
    mut on_duplicate: impl FnMut(&'a str),
) -> HashMap<&'a str, usize> {
    let mut map = HashMap::with_capacity_and_hasher(ids.len(), Default::default());
    let mut reported = HashSet::default();
    for (i, id) in ids.enumerate() {
        match map.entry(id) {
            Entry::Occupied(_) => {
                if reported.insert(id) {
                    on_duplicate(id);
                }
            }
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
    map
}

fn check<T: TemplateSource + ?Sized>(
    workflow: &Workflow,
    templates: &T,
    check_required: bool,
) -> Result<(), ValidationErrors> {
    let mut problems = Vec::new();
    let index = GraphIndex::build(workflow, &mut problems);
    for node in &workflow.nodes {
        if let Some(reason) = id_problem(&node.id) {
            problems.push(ValidationError::InvalidNodeId {
                node_id: node.id.clone(),
                reason,
            });
        }
    }

    // Node types and configs; templates looked up once per distinct type name.
    let mut by_type: HashMap<&str, Option<&NodeTemplate>> = HashMap::default();
    let node_templates: Vec<Option<&NodeTemplate>> = workflow
        .nodes
        .iter()
        .map(|node| {
            let template = *by_type
                .entry(node.node_type.as_str())
                .or_insert_with(|| templates.template(&node.node_type));
            match template {
                None => problems.push(ValidationError::UnknownNodeType {
                    node_id: node.id.clone(),
                    node_type: node.node_type.clone(),
                }),
                Some(_) => {
                    for (field, message) in templates.check_config(&node.node_type, &node.config) {
                        problems.push(ValidationError::InvalidConfig {
                            node_id: node.id.clone(),
                            field,
                            message,
                        });
                    }
                }
            }
            template
        })
        .collect();

    let mut template_handles: crate::FastSet<(usize, &str)> = crate::FastSet::default();
    for (h, handle) in workflow.handles.iter().enumerate() {
        match index.node_of_handle(h) {
            None => problems.push(ValidationError::OrphanHandle {
                handle_id: handle.id.clone(),
                node_id: handle.node_id.clone(),
            }),
            Some(node) => {
                let named = handle.template_handle_id.as_deref().and_then(|t| {
                    node_templates[node].and_then(|template| template.handle_template(t))
                });
                if let Some(named) = named
                    && named.handle_type != handle.handle_type
                {
                    problems.push(ValidationError::TemplateHandleOfOtherKind {
                        node_id: handle.node_id.clone(),
                        handle_id: handle.id.clone(),
                        handle_type: handle.handle_type,
                        template_handle_id: named.id.clone(),
                    });
                }
                // A repeated handle id is reported as such, not again here.
                if let Some(t) = handle.template_handle_id.as_deref()
                    && index.is_first_handle(h)
                    && !template_handles.insert((node, t))
                {
                    problems.push(ValidationError::DuplicateTemplateHandle {
                        node_id: handle.node_id.clone(),
                        handle_id: handle.id.clone(),
                        template_handle_id: t.to_owned(),
                    });
                }
            }
        }
    }

    // Edges: their ends, the node graph, and the edges entering each input.
    let ends: Vec<EdgeEnds> = workflow
        .edges
        .iter()
        .map(|edge| index.check_edge(edge, &mut problems))
        .collect();
    let links: Vec<(usize, usize)> = ends
        .iter()
        .filter_map(|e| e.source_node.zip(e.target_node))
        .collect();
    let incoming = Adjacency::new(
        workflow.handles.len(),
        ends.iter()
            .enumerate()
            .filter_map(|(i, e)| e.target_handle.map(|t| (t, i))),
    );

    // Inputs: duplicate edges, too many edges, required ones left open.
    for (h, handle) in workflow.handles.iter().enumerate() {
        if handle.handle_type != HandleType::Input || !index.is_first_handle(h) {
            continue;
        }
        let Some(node) = index.node_of_handle(h) else {
            continue;
        };
        let edges = incoming.of(h);
        if edges.len() > 1 {
            let distinct = without_duplicate_pairs(workflow, &ends, edges, &mut problems);
            if distinct.len() > 1 && !input_takes_many(handle, node_templates[node]) {
                problems.push(ValidationError::TooManyEdges {
                    node_id: handle.node_id.clone(),
                    handle_id: handle.id.clone(),
                    count: distinct.len(),
                    edge_ids: distinct
                        .iter()
                        .map(|&e| workflow.edges[e].id.clone())
                        .collect(),
                });
            }
        }
        let stood_in = || {
            let template = node_templates[node]?;
            let th = template.handle_template(handle.template_handle_id.as_deref()?)?;
            Some(th.is_satisfied_by(&workflow.nodes[node].config))
        };
        if check_required && handle.required && edges.is_empty() && stood_in() != Some(true) {
            problems.push(ValidationError::RequiredInputUnconnected {
                node_id: handle.node_id.clone(),
                handle_id: handle.id.clone(),
                label: handle.label.clone(),
            });
        }
    }

    for cycle in find_cycles(workflow.nodes.len(), &links) {
        problems.push(ValidationError::Cycle {
            node_ids: cycle
                .into_iter()
                .map(|n| workflow.nodes[n].id.clone())
                .collect(),
        });
    }

    if problems.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(problems))
    }
}

/// The edges (indices) entering one input, without those that repeat an earlier edge's source
/// handle; each repeat is reported as a [`ValidationError::DuplicateEdge`].
fn without_duplicate_pairs(
    workflow: &Workflow,
    ends: &[EdgeEnds],
    edges: &[usize],
    problems: &mut Vec<ValidationError>,
) -> Vec<usize> {
    let mut first_by_source: HashMap<usize, usize> =
        HashMap::with_capacity_and_hasher(edges.len(), Default::default());
    let mut distinct = Vec::with_capacity(edges.len());
    for &e in edges {
        if let Some(source) = ends[e].source_handle {
            if let Some(&first) = first_by_source.get(&source) {
                problems.push(ValidationError::DuplicateEdge {
                    edge_id: workflow.edges[e].id.clone(),
                    other_edge_id: workflow.edges[first].id.clone(),
                });
                continue;
            }
            first_by_source.insert(source, e);
        }
        distinct.push(e);
    }
    distinct
}

/// A directed graph in compressed sparse row form: for vertex `v`, its neighbours are
/// `targets[offsets[v]..offsets[v + 1]]`, in the order the links were given.
struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<usize>,
}

impl Adjacency {
    fn new(node_count: usize, links: impl Iterator<Item = (usize, usize)> + Clone) -> Self {
        let mut offsets = vec![0usize; node_count + 1];
        for (from, _) in links.clone() {
            offsets[from + 1] += 1;
        }
        for v in 0..node_count {
            offsets[v + 1] += offsets[v];
        }
        let mut fill = offsets.clone();
        let mut targets = vec![0usize; offsets[node_count]];
        for (from, to) in links {
            targets[fill[from]] = to;
            fill[from] += 1;
        }
        Adjacency { offsets, targets }
    }

    fn of(&self, v: usize) -> &[usize] {
        &self.targets[self.offsets[v]..self.offsets[v + 1]]
    }
}

/// Finds cycles among `node_count` nodes joined by `links` (from, to), in linear time.
///
/// Kahn's algorithm removes every node that is on no cycle and downstream of none. Every node
/// left over has a predecessor that is also left over, so walking predecessors from one of them
/// must revisit a node: the nodes between the two visits form a cycle. Everything reachable from
/// that cycle is then set aside, and the walk repeats from any leftover node not yet set aside,
/// so each independent cycle is reported once. Each cycle is returned in edge order, starting
/// at its node that comes first in the document.
fn find_cycles(node_count: usize, links: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let successors = Adjacency::new(node_count, links.iter().copied());
    let mut in_degree = vec![0usize; node_count];
    for &(_, to) in links {
        in_degree[to] += 1;
    }
    let mut sorted = vec![false; node_count];
    let mut queue: VecDeque<usize> = (0..node_count).filter(|&v| in_degree[v] == 0).collect();
    let mut sorted_count = 0;
    while let Some(v) = queue.pop_front() {
        sorted[v] = true;
        sorted_count += 1;
        for &w in successors.of(v) {
            in_degree[w] -= 1;
            if in_degree[w] == 0 {
                queue.push_back(w);
            }
        }
    }
    if sorted_count == node_count {
        return Vec::new();
    }

    let predecessors = Adjacency::new(node_count, links.iter().map(|&(from, to)| (to, from)));
    const OFF_WALK: usize = usize::MAX;
    let mut walk_position = vec![OFF_WALK; node_count];
    let mut set_aside = vec![false; node_count];
    let mut cycles = Vec::new();
    let mut walk = Vec::new();
    let mut frontier = Vec::new();
    for start in 0..node_count {
        if sorted[start] || set_aside[start] {
            continue;
        }
        walk.clear();
        let mut current = start;
        let cycle_start = loop {
            if walk_position[current] != OFF_WALK {
                break Some(walk_position[current]);
            }
            walk_position[current] = walk.len();
            walk.push(current);
            match predecessors.of(current).iter().find(|&&p| !sorted[p]) {
                Some(&p) => current = p,
                None => break None,
            }
        };
        for &v in &walk {
            walk_position[v] = OFF_WALK;
        }
        let Some(cycle_start) = cycle_start else {
            // Not reachable: every leftover node has a leftover predecessor. Set the walk
            // aside so the loop still ends.
            walk.iter().for_each(|&v| set_aside[v] = true);
            continue;
        };
        // The walk went against the edges: reverse it to follow them.
        let mut cycle: Vec<usize> = walk[cycle_start..].iter().rev().copied().collect();
        if let Some(first) = cycle
            .iter()
            .enumerate()
            .min_by_key(|&(_, &v)| v)
            .map(|(i, _)| i)
        {
            cycle.rotate_left(first);
        }
        frontier.clear();
        for &v in &cycle {
            if !set_aside[v] {
                set_aside[v] = true;
                frontier.push(v);
            }
        }
        while let Some(v) = frontier.pop() {
            for &w in successors.of(v) {
                if !set_aside[w] {
                    set_aside[w] = true;
                    frontier.push(w);
                }
            }
        }
        cycles.push(cycle);
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::find_cycles;

    #[test]
    fn no_cycle_in_a_dag() {
        assert!(find_cycles(4, &[(0, 1), (1, 2), (0, 2), (2, 3)]).is_empty());
    }

    #[test]
    fn self_loop_is_a_cycle_of_one() {
        assert_eq!(find_cycles(2, &[(0, 1), (1, 1)]), vec![vec![1]]);
    }

    #[test]
    fn finds_the_cycle_and_not_its_downstream_nodes() {
        // 0 -> 1 -> 2 -> 3 -> 1, 3 -> 4 -> 5
        let links = [(0, 1), (1, 2), (2, 3), (3, 1), (3, 4), (4, 5)];
        assert_eq!(find_cycles(6, &links), vec![vec![1, 2, 3]]);
    }

    #[test]
    fn reports_each_independent_cycle_once() {
        // two disjoint cycles, the second feeding a tail
        let links = [(0, 1), (1, 0), (2, 3), (3, 4), (4, 2), (4, 5)];
        assert_eq!(find_cycles(6, &links), vec![vec![0, 1], vec![2, 3, 4]]);
    }

    #[test]
    fn long_cycle_does_not_overflow_the_stack() {
        let n = 200_000;
        let links: Vec<(usize, usize)> = (0..n).map(|i| (i, (i + 1) % n)).collect();
        let cycles = find_cycles(n, &links);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n);
        assert_eq!(cycles[0][..3], [0, 1, 2]);
    }
}
