//! Editing operations on a workflow value, each keeping it valid or returning a typed error.
//!
//! Every operation either applies its change completely or leaves the workflow untouched and
//! returns [`Error::Invalid`] holding the [`ValidationError`]s that say why. "Valid" here means
//! structurally valid ([`validate_structure`]): an editor may leave required inputs open while a
//! canvas is being built; [`validate`](crate::validate()) reports them before a run.
//!
//! ```
//! use gatewai_core::edit::{self, Connection};
//! use gatewai_core::model::Position;
//! use gatewai_core::{DataType, HandleTemplate, NodeTemplate, Workflow};
//!
//! let templates = vec![
//!     NodeTemplate::new("Text", "Text", "Inputs")
//!         .handle(HandleTemplate::output("text", "Text", &[DataType::Text])),
//!     NodeTemplate::new("Upper", "Upper", "Tools")
//!         .handle(HandleTemplate::input("text", "Text", &[DataType::Text]).required())
//!         .handle(HandleTemplate::output("result", "Result", &[DataType::Text])),
//! ];
//! let mut workflow = Workflow::default();
//! let text = edit::add_node(&mut workflow, &templates, "Text", Position::default()).unwrap();
//! let upper = edit::add_node(&mut workflow, &templates, "Upper", Position::default()).unwrap();
//! let connection = Connection::between(&workflow, &text, "text", &upper, "text").unwrap();
//! let edge = edit::connect(&mut workflow, &templates, &connection).unwrap();
//! assert!(gatewai_core::validate(&workflow, &templates).is_ok());
//! edit::disconnect(&mut workflow, &edge).unwrap();
//! ```

use crate::error::{Error, Result, ValidationError, ValidationErrors};
use crate::model::{DataType, Edge, Extra, Handle, HandleType, Node, Position, Workflow};
use crate::registry::TemplateSource;
use crate::validate::{GraphIndex, input_takes_many, validate_structure};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The prefix of ids a client made up; [`bulk_update`] replaces them with fresh ids.
pub const TEMP_ID_PREFIX: &str = "temp-";

/// A fresh unique id (a UUID v4).
pub fn fresh_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn invalid(problems: Vec<ValidationError>) -> Error {
    Error::Invalid(ValidationErrors(problems))
}

/// Adds a node of type `node_type` (a type name or alias) at `position`: a fresh id, the
/// template's display name, its default config (an empty object when it has none), and one
/// handle per handle template. Returns the new node's id.
///
/// Errors: [`ValidationError::UnregisteredNodeType`] when no template answers to
/// `node_type`; [`ValidationError::InvalidConfig`] when the type rejects its own default
/// config.
pub fn add_node<T: TemplateSource + ?Sized>(
    workflow: &mut Workflow,
    templates: &T,
    node_type: &str,
    position: Position,
) -> Result<String> {
    let Some(template) = templates.resolve(node_type) else {
        return Err(invalid(vec![ValidationError::UnregisteredNodeType {
            node_type: node_type.to_owned(),
        }]));
    };
    let node_id = fresh_id();
    let config = template
        .default_config
        .clone()
        .unwrap_or_else(|| serde_json::Value::Object(Extra::new()));
    check_config(templates, &node_id, &template.node_type, &config)?;
    let handles = template
        .template_handles
        .iter()
        .map(|h| h.instantiate(&node_id, fresh_id()));
    workflow.handles.extend(handles);
    workflow.nodes.push(Node {
        name: template.display_name.clone(),
        position,
        config,
        ..Node::new(node_id.clone(), template.node_type.clone())
    });
    Ok(node_id)
}

fn check_config<T: TemplateSource + ?Sized>(
    templates: &T,
    node_id: &str,
    node_type: &str,
    config: &serde_json::Value,
) -> Result<()> {
    let problems: Vec<ValidationError> = templates
        .check_config(node_type, config)
        .into_iter()
        .map(|(field, message)| ValidationError::InvalidConfig {
            node_id: node_id.to_owned(),
            field,
            message,
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid(problems))
    }
}

fn node_not_found(node_id: &str) -> Error {
    invalid(vec![ValidationError::NodeNotFound {
        node_id: node_id.to_owned(),
    }])
}

/// Adds a user-defined ("variable") handle to a node whose type allows it: an input when
/// `handle_type` is [`HandleType::Input`] (the template's `variableInputs` /
/// `variableInputDataTypes`), an output likewise. The handle goes after the node's other
/// handles of that type; its label is `label`, or the first data type and its position
/// (`"Image 3"`). Returns the new handle's id.
///
/// Errors: [`ValidationError::NodeNotFound`], [`ValidationError::UnknownNodeType`], and
/// [`ValidationError::VariableHandleNotAllowed`] when the type allows no such handles, or not of
/// one of `data_types` (or `data_types` is empty).
pub fn add_variable_handle<T: TemplateSource + ?Sized>(
    workflow: &mut Workflow,
    templates: &T,
    node_id: &str,
    handle_type: HandleType,
    data_types: &[DataType],
    label: Option<&str>,
) -> Result<String> {
    let node = workflow
        .node(node_id)
        .ok_or_else(|| node_not_found(node_id))?;
    let Some(template) = templates.template(&node.node_type) else {
        return Err(invalid(vec![ValidationError::UnknownNodeType {
            node_id: node_id.to_owned(),
            node_type: node.node_type.clone(),
        }]));
    };
    let (allowed, allowed_types, kind) = match handle_type {
        HandleType::Input => (
            template.variable_inputs,
            &template.variable_input_data_types,
            "input",
        ),
        HandleType::Output => (
            template.variable_outputs,
            &template.variable_output_data_types,
            "output",
        ),
    };
    let not_allowed = |message: String| {
        invalid(vec![ValidationError::VariableHandleNotAllowed {
            node_id: node_id.to_owned(),
            node_type: node.node_type.clone(),
            message,
        }])
    };
    if !allowed {
        return Err(not_allowed(format!("the type takes no variable {kind}s")));
    }
    let Some(&first_type) = data_types.first() else {
        return Err(not_allowed(format!("a variable {kind} needs a data type")));
    };
    if let Some(bad) = data_types.iter().find(|t| !allowed_types.contains(t)) {
        let allowed_list: Vec<&str> = allowed_types.iter().map(|t| t.as_str()).collect();
        return Err(not_allowed(format!(
            "variable {kind}s of type {bad} are not allowed (allowed: {})",
            allowed_list.join(", ")
        )));
    }
    let siblings = workflow
        .handles_of(node_id)
        .filter(|h| h.handle_type == handle_type);
    let (count, max_order) = siblings.fold((0, -1), |(n, max), h| (n + 1, max.max(h.order)));
    let handle = Handle {
        id: fresh_id(),
        handle_type,
        data_types: data_types.to_vec(),
        label: label.map_or_else(|| format!("{first_type} {}", count + 1), str::to_owned),
        // After the others; an order that cannot grow ties, and the handle comes after them
        // as the last one listed.
        order: max_order.saturating_add(1),
        required: false,
        template_handle_id: None,
        node_id: node_id.to_owned(),
        description: None,
        multiple: None,
        extra: Extra::new(),
    };
    let id = handle.id.clone();
    workflow.handles.push(handle);
    Ok(id)
}

/// Merges `patch` into `target` as a JSON merge patch (RFC 7396): objects merge key by key
/// (deeply), a `null` in the patch removes the key, anything else replaces the target value.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(Extra::new());
    }
    if let serde_json::Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(
                    target.entry(key.clone()).or_insert(serde_json::Value::Null),
                    value,
                );
            }
        }
    }
}

/// Updates a node's config by merging `patch` into it ([`merge_patch`]), then has the node type
/// check the result.
///
/// Errors: [`ValidationError::NodeNotFound`]; [`ValidationError::InvalidConfig`] for every
/// field the type rejects (the config then stays as it was).
pub fn update_config<T: TemplateSource + ?Sized>(
    workflow: &mut Workflow,
    templates: &T,
    node_id: &str,
    patch: &serde_json::Value,
) -> Result<()> {
    let node = workflow
        .node_mut(node_id)
        .ok_or_else(|| node_not_found(node_id))?;
    let mut config = node.config.clone();
    merge_patch(&mut config, patch);
    check_config(templates, node_id, &node.node_type, &config)?;
    node.config = config;
    Ok(())
}

/// Deletes a node with its handles and every edge joined to it.
///
/// Errors: [`ValidationError::NodeNotFound`].
pub fn delete_node(workflow: &mut Workflow, node_id: &str) -> Result<()> {
    let before = workflow.nodes.len();
    workflow.nodes.retain(|n| n.id != node_id);
    if workflow.nodes.len() == before {
        return Err(node_not_found(node_id));
    }
    workflow.handles.retain(|h| h.node_id != node_id);
    workflow
        .edges
        .retain(|e| e.source != node_id && e.target != node_id);
    Ok(())
}

/// The two ends of an edge to be made by [`connect`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connection {
    /// Source node id.
    pub source: String,
    /// Output handle (instance handle id) on the source node.
    pub source_handle_id: String,
    /// Target node id.
    pub target: String,
    /// Input handle (instance handle id) on the target node.
    pub target_handle_id: String,
}

impl Connection {
    /// A connection between instance handles.
    pub fn new(
        source: impl Into<String>,
        source_handle_id: impl Into<String>,
        target: impl Into<String>,
        target_handle_id: impl Into<String>,
    ) -> Self {
        Connection {
            source: source.into(),
            source_handle_id: source_handle_id.into(),
            target: target.into(),
            target_handle_id: target_handle_id.into(),
        }
    }

    /// A connection between two nodes' handles named by their template handle ids (`"result"`,
    /// `"prompt"`), looked up in `workflow`.
    ///
    /// Errors: [`ValidationError::HandleNotFound`] naming `node:templateHandleId` when a node
    /// has no such handle (or does not exist).
    pub fn between(
        workflow: &Workflow,
        source: &str,
        source_template_handle: &str,
        target: &str,
        target_template_handle: &str,
    ) -> Result<Self> {
        let find = |node: &str, template_handle: &str| {
            workflow
                .handles_of(node)
                .find(|h| h.template_handle_id.as_deref() == Some(template_handle))
                .map(|h| h.id.clone())
                .ok_or_else(|| {
                    invalid(vec![ValidationError::HandleNotFound {
                        handle_id: format!("{node}:{template_handle}"),
                    }])
                })
        };
        Ok(Connection::new(
            source,
            find(source, source_template_handle)?,
            target,
            find(target, target_template_handle)?,
        ))
    }
}

/// Connects an output handle to an input handle with a new edge; returns the edge's id.
///
/// Errors (all that apply, at once): [`ValidationError::MissingNode`] /
/// [`ValidationError::MissingHandle`] for a missing end, [`ValidationError::WrongDirection`]
/// (from an input or into an output), [`ValidationError::IncompatibleTypes`],
/// [`ValidationError::DuplicateEdge`] (the pair is already joined),
/// [`ValidationError::TooManyEdges`] (a second edge into a single-edge input) and
/// [`ValidationError::Cycle`] (the target already reaches the source).
pub fn connect<T: TemplateSource + ?Sized>(
    workflow: &mut Workflow,
    templates: &T,
    connection: &Connection,
) -> Result<String> {
    let edge = Edge {
        id: fresh_id(),
        source: connection.source.clone(),
        target: connection.target.clone(),
        source_handle_id: connection.source_handle_id.clone(),
        target_handle_id: connection.target_handle_id.clone(),
        extra: Extra::new(),
    };
    let index = GraphIndex::new(workflow);
    let mut problems = Vec::new();
    let ends = index.check_edge(&edge, &mut problems);
    if let Some(target_handle) = ends.target_handle {
        let into_target: Vec<&Edge> = workflow
            .edges
            .iter()
            .filter(|e| e.target_handle_id == edge.target_handle_id && e.target == edge.target)
            .collect();
        if let Some(same) = into_target
            .iter()
            .find(|e| e.source_handle_id == edge.source_handle_id && e.source == edge.source)
        {
            problems.push(ValidationError::DuplicateEdge {
                edge_id: edge.id.clone(),
                other_edge_id: same.id.clone(),
            });
        } else if !into_target.is_empty() {
            let handle = &workflow.handles[target_handle];
            let template = index
                .node(&edge.target)
                .and_then(|n| templates.template(&n.node_type));
            if !input_takes_many(handle, template) {
                let mut edge_ids: Vec<String> = into_target.iter().map(|e| e.id.clone()).collect();
                edge_ids.push(edge.id.clone());
                problems.push(ValidationError::TooManyEdges {
                    node_id: edge.target.clone(),
                    handle_id: edge.target_handle_id.clone(),
                    count: edge_ids.len(),
                    edge_ids,
                });
            }
        }
    }
    if ends.source_node.is_some()
        && ends.target_node.is_some()
        && let Some(path) = path_between(workflow, &edge.target, &edge.source)
    {
        problems.push(ValidationError::Cycle { node_ids: path });
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let id = edge.id.clone();
    workflow.edges.push(edge);
    Ok(id)
}

/// The node ids on a path from `from` to `to` along the workflow's edges (both ends included;
/// just `[from]` when they are the same node), found breadth-first in linear time.
fn path_between(workflow: &Workflow, from: &str, to: &str) -> Option<Vec<String>> {
    if from == to {
        return Some(vec![from.to_owned()]);
    }
    let mut successors: HashMap<&str, Vec<&str>> = HashMap::new();
    for edge in &workflow.edges {
        successors
            .entry(edge.source.as_str())
            .or_default()
            .push(edge.target.as_str());
    }
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    let mut seen = HashSet::from([from]);
    while let Some(v) = queue.pop_front() {
        for &w in successors.get(v).map(Vec::as_slice).unwrap_or_default() {
            if !seen.insert(w) {
                continue;
            }
            parent.insert(w, v);
            if w == to {
                let mut path = vec![to.to_owned()];
                let mut at = to;
                while let Some(&p) = parent.get(at) {
                    path.push(p.to_owned());
                    at = p;
                }
                path.reverse();
                return Some(path);
            }
            queue.push_back(w);
        }
    }
    None
}

/// Removes an edge.
///
/// Errors: [`ValidationError::EdgeNotFound`].
pub fn disconnect(workflow: &mut Workflow, edge_id: &str) -> Result<()> {
    let before = workflow.edges.len();
    workflow.edges.retain(|e| e.id != edge_id);
    if workflow.edges.len() == before {
        return Err(invalid(vec![ValidationError::EdgeNotFound {
            edge_id: edge_id.to_owned(),
        }]));
    }
    Ok(())
}

/// Gatewai's bulk-update payload: the canvas's nodes, handles and edges, replacing the
/// workflow's. Ids a client made up start with [`TEMP_ID_PREFIX`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkUpdate {
    /// The new nodes.
    #[serde(default)]
    pub nodes: Vec<Node>,
    /// The new handles.
    #[serde(default)]
    pub handles: Vec<Handle>,
    /// The new edges.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// The fresh ids [`bulk_update`] gave to client (`temp-`) ids, per kind of item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FreshIds {
    /// Node ids: client id → fresh id.
    pub nodes: HashMap<String, String>,
    /// Handle ids: client id → fresh id.
    pub handles: HashMap<String, String>,
    /// Edge ids: client id → fresh id.
    pub edges: HashMap<String, String>,
}

/// Replaces the workflow's nodes, handles and edges with those of `update` (Gatewai's bulk
/// update). Every id starting with `temp-` gets a fresh id, and every reference to it —
/// `handle.nodeId`, an edge's `source` / `target` / `sourceHandleId` / `targetHandleId` — is
/// rewritten. The result must pass [`validate_structure`]; otherwise the workflow stays
/// unchanged and every problem is returned. Returns the client ids' fresh ids.
pub fn bulk_update<T: TemplateSource + ?Sized>(
    workflow: &mut Workflow,
    templates: &T,
    update: BulkUpdate,
) -> Result<FreshIds> {
    let BulkUpdate {
        mut nodes,
        mut handles,
        mut edges,
    } = update;
    let mut fresh = FreshIds::default();
    for node in &mut nodes {
        replace_temp_id(&mut node.id, &mut fresh.nodes);
    }
    for handle in &mut handles {
        replace_temp_id(&mut handle.id, &mut fresh.handles);
    }
    for edge in &mut edges {
        replace_temp_id(&mut edge.id, &mut fresh.edges);
    }
    for handle in &mut handles {
        rewrite_reference(&mut handle.node_id, &fresh.nodes);
    }
    for edge in &mut edges {
        rewrite_reference(&mut edge.source, &fresh.nodes);
        rewrite_reference(&mut edge.target, &fresh.nodes);
        rewrite_reference(&mut edge.source_handle_id, &fresh.handles);
        rewrite_reference(&mut edge.target_handle_id, &fresh.handles);
    }
    let candidate = Workflow {
        id: None,
        name: None,
        nodes,
        handles,
        edges,
        extra: Extra::new(),
    };
    validate_structure(&candidate, templates)?;
    workflow.nodes = candidate.nodes;
    workflow.handles = candidate.handles;
    workflow.edges = candidate.edges;
    Ok(fresh)
}

/// Gives a `temp-` id its fresh id (the same one for every item sharing the client id, so a
/// duplicate stays a duplicate and is reported).
fn replace_temp_id(id: &mut String, fresh: &mut HashMap<String, String>) {
    if id.starts_with(TEMP_ID_PREFIX) {
        *id = fresh.entry(id.clone()).or_insert_with(fresh_id).clone();
    }
}

fn rewrite_reference(reference: &mut String, fresh: &HashMap<String, String>) {
    if let Some(new) = fresh.get(reference.as_str()) {
        reference.clone_from(new);
    }
}
