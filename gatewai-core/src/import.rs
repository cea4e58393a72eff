//! Reading workflow documents: Gatewai canvas documents (our native format) and React Flow
//! documents of the workflow-app kind.
//!
//! A React Flow document is `{ nodes: [{ id, type, position, data }], edges: [{ id, source,
//! sourceHandle, target, targetHandle }], viewport? }`. The import is generic; what is
//! particular to a node type is declared by its [`NodeTemplate`]:
//!
//! - the node's `type` is resolved with [`TemplateSource::resolve`] (a template type name, or
//!   one of the template's `aliases`);
//! - the node gets one handle per handle template, with the deterministic id
//!   `{nodeId}:{templateHandleId}`;
//! - an edge's `sourceHandle` / `targetHandle` is matched against the template handle ids, their
//!   `aliases` and their labels, ignoring case, `_`, `-` and spaces (so `system_prompt`,
//!   `systemPrompt` and `System Prompt` are the same); a missing one means the node's first
//!   output / input;
//! - the node's `data` becomes its `config` through the template's
//!   [`import_hook`](NodeTemplate::import_hook), or, without a hook, as it is minus the UI fields
//!   `label` and `status`; `data.label` becomes the node's name.
//!
//! Fields the import does not interpret are kept: a node's unknown top-level fields in its
//! `extra`, an edge's in its `extra`, the document's (`viewport`, …) in the workflow's `extra`.

use crate::error::{Error, MAX_SERDE_SHOWN, Result, listed, shown, shown_up_to};
use crate::model::{
    Edge, Extra, Handle, HandleTemplate, HandleType, Node, NodeTemplate, Position, Workflow,
};
use crate::registry::TemplateSource;
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;

/// The kinds of document [`read_document`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentKind {
    /// A Gatewai canvas document (`nodes` with `config`, `handles`, `edges` between handles).
    Canvas,
    /// A React Flow document of the workflow-app kind (`nodes` with `data`).
    ReactFlow,
}

/// Which kind of document `document` is: a canvas when it has `handles`, or nodes with
/// `config`, or edges with `sourceHandleId`; React Flow when its nodes have `data`, or its edges
/// `sourceHandle` / `targetHandle`; a canvas when there is nothing to tell by (an empty
/// document). `None` when it is not a JSON object.
pub fn detect_kind(document: &Value) -> Option<DocumentKind> {
    let object = document.as_object()?;
    let items = |key: &str| {
        object
            .get(key)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
    };
    let any_has = |key: &str, field: &str| items(key).iter().any(|item| item.get(field).is_some());
    if object.contains_key("handles")
        || any_has("nodes", "config")
        || any_has("edges", "sourceHandleId")
    {
        return Some(DocumentKind::Canvas);
    }
    if any_has("nodes", "data")
        || any_has("edges", "sourceHandle")
        || any_has("edges", "targetHandle")
    {
        return Some(DocumentKind::ReactFlow);
    }
    Some(DocumentKind::Canvas)
}

/// Parses JSON text as a workflow document of either kind ([`read_document`]).
///
/// Errors: [`Error::Import`] for malformed JSON (with line and column) and everything
/// [`read_document`] rejects.
pub fn parse_document<T: TemplateSource + ?Sized>(json: &str, templates: &T) -> Result<Workflow> {
    let document: Value = serde_json::from_str(json).map_err(|e| Error::Import {
        message: format!("not valid JSON: {e}"),
    })?;
    read_document(document, templates)
}

/// Reads a workflow document of either kind, detected with [`detect_kind`]: a Gatewai canvas
/// document as it is, a React Flow document through [`import_react_flow`].
///
/// Errors: [`Error::Import`] when the document is not an object or does not have the shape of
/// its kind, naming each node, handle or edge at fault.
pub fn read_document<T: TemplateSource + ?Sized>(
    document: Value,
    templates: &T,
) -> Result<Workflow> {
    match detect_kind(&document) {
        None => Err(Error::Import {
            message: "a workflow document must be a JSON object".to_owned(),
        }),
        Some(DocumentKind::Canvas) => read_canvas(document),
        Some(DocumentKind::ReactFlow) => import_react_flow(document, templates),
    }
}

fn read_canvas(document: Value) -> Result<Workflow> {
    Workflow::deserialize(&document).map_err(|e| {
        // Serde's error names a field, not the node, handle or edge it is on: read each item
        // again to name every one at fault.
        let mut problems = Vec::new();
        item_problems::<Node>(&document, "nodes", &mut problems);
        item_problems::<Handle>(&document, "handles", &mut problems);
        item_problems::<Edge>(&document, "edges", &mut problems);
        if problems.is_empty() {
            problems.push(shown_up_to(&e, MAX_SERDE_SHOWN));
        }
        Error::Import {
            message: format!("not a Gatewai canvas document: {}", listed(&problems, "; ")),
        }
    })
}

/// Records a problem for each item of the array `key` of `document` that does not read as an
/// `I`, naming it by its id or position.
fn item_problems<'a, I: Deserialize<'a>>(
    document: &'a Value,
    key: &str,
    problems: &mut Vec<String>,
) {
    let Some(items) = document.get(key).and_then(Value::as_array) else {
        return;
    };
    for (position, item) in items.iter().enumerate() {
        if let Err(e) = I::deserialize(item) {
            problems.push(format!(
                "{}: {}",
                item_name(key, position, item),
                shown_up_to(&e, MAX_SERDE_SHOWN)
            ));
        }
    }
}

/// An item of the array `key` named for a problem: `node `id`` by its id, else `node #3` by
/// its position.
fn item_name(key: &str, position: usize, item: &Value) -> String {
    let kind = key.trim_end_matches('s');
    match item.get("id").and_then(Value::as_str) {
        Some(id) => format!("{kind} `{}`", shown(&id)),
        None => format!("{kind} #{position}"),
    }
}

/// A React Flow node as the workflow app stores it.
#[derive(Deserialize)]
struct FlowNode {
    id: String,
    #[serde(rename = "type", default)]
    node_type: Option<String>,
    #[serde(default)]
    position: Position,
    #[serde(default)]
    width: Option<f64>,
    #[serde(default)]
    height: Option<f64>,
    #[serde(default)]
    data: Option<Extra>,
    #[serde(flatten)]
    extra: Extra,
}

/// A React Flow edge as the workflow app stores it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlowEdge {
    #[serde(default)]
    id: Option<String>,
    source: String,
    target: String,
    #[serde(default)]
    source_handle: Option<String>,
    #[serde(default)]
    target_handle: Option<String>,
    #[serde(flatten)]
    extra: Extra,
}

/// The id of the handle an imported node gets for a handle template.
pub fn imported_handle_id(node_id: &str, template_handle_id: &str) -> String {
    format!("{node_id}:{template_handle_id}")
}

/// Fields of a React Flow node's `data` that only the UI uses; dropped from the config when the
/// template has no import hook.
const UI_FIELDS: [&str; 2] = ["label", "status"];

/// Imports a React Flow document of the workflow-app kind (see the [module docs](self)).
///
/// Errors: [`Error::Import`] listing every problem found — a node or edge that does not have
/// React Flow's shape, an unknown node type (naming the node id and the type), data the
/// template's import hook rejects, an edge naming a missing node or a handle the node's type
/// does not have.
pub fn import_react_flow<T: TemplateSource + ?Sized>(
    document: Value,
    templates: &T,
) -> Result<Workflow> {
    let Value::Object(mut document) = document else {
        return Err(Error::Import {
            message: "a React Flow document must be a JSON object".to_owned(),
        });
    };
    let mut problems = Vec::new();
    let flow_nodes = take_items::<FlowNode>(&mut document, "nodes", &mut problems);
    let flow_edges = take_items::<FlowEdge>(&mut document, "edges", &mut problems);

    let mut workflow = Workflow::default();
    let mut node_templates: HashMap<String, &NodeTemplate> = HashMap::new();
    for flow_node in flow_nodes {
        let Some(type_name) = flow_node.node_type.as_deref() else {
            problems.push(format!("node `{}` has no type", shown(&flow_node.id)));
            continue;
        };
        let Some(template) = templates.resolve(type_name) else {
            problems.push(format!(
                "node `{}`: unknown node type `{}`",
                shown(&flow_node.id),
                shown(&type_name)
            ));
            continue;
        };
        match import_node(flow_node, template) {
            Ok((node, handles)) => {
                node_templates.insert(node.id.clone(), template);
                workflow.handles.extend(handles);
                workflow.nodes.push(node);
            }
            Err(problem) => problems.push(problem),
        }
    }

    for flow_edge in flow_edges {
        match import_edge(flow_edge, &node_templates) {
            Ok(edge) => workflow.edges.push(edge),
            Err(problem) => problems.push(problem),
        }
    }

    if !problems.is_empty() {
        return Err(Error::Import {
            message: listed(&problems, "; "),
        });
    }
    if let Some(Value::String(id)) = document.remove("id") {
        workflow.id = Some(id);
    }
    if let Some(Value::String(name)) = document.remove("name") {
        workflow.name = Some(name);
    }
    workflow.extra = document;
    Ok(workflow)
}

/// Removes the array `key` from `document` and reads each item, recording a problem for each
/// that does not read (naming it by its id or position).
fn take_items<I: serde::de::DeserializeOwned>(
    document: &mut Extra,
    key: &str,
    problems: &mut Vec<String>,
) -> Vec<I> {
    let items = match document.remove(key) {
        None | Some(Value::Null) => return Vec::new(),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(format!("`{key}` must be an array"));
            return Vec::new();
        }
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(position, item)| {
            let name = item_name(key, position, &item);
            serde_json::from_value(item)
                .map_err(|e| problems.push(format!("{name}: {}", shown_up_to(&e, MAX_SERDE_SHOWN))))
                .ok()
        })
        .collect()
}

fn import_node(
    flow_node: FlowNode,
    template: &NodeTemplate,
) -> std::result::Result<(Node, Vec<Handle>), String> {
    let data = flow_node.data.unwrap_or_default();
    let name = data
        .get("label")
        .and_then(Value::as_str)
        .map_or_else(|| template.display_name.clone(), str::to_owned);
    let config = match &template.import_hook {
        Some(hook) => (hook.0)(&data).map_err(|message| {
            format!(
                "node `{}` (type `{}`): {message}",
                shown(&flow_node.id),
                template.node_type
            )
        })?,
        None => {
            let mut config = data;
            for field in UI_FIELDS {
                config.remove(field);
            }
            Value::Object(config)
        }
    };
    let handles = template
        .template_handles
        .iter()
        .map(|h| h.instantiate(&flow_node.id, imported_handle_id(&flow_node.id, &h.id)))
        .collect();
    let node = Node {
        name,
        position: flow_node.position,
        width: flow_node.width,
        height: flow_node.height,
        config,
        extra: flow_node.extra,
        ..Node::new(flow_node.id, template.node_type.clone())
    };
    Ok((node, handles))
}

fn import_edge(
    flow_edge: FlowEdge,
    node_templates: &HashMap<String, &NodeTemplate>,
) -> std::result::Result<Edge, String> {
    let id = flow_edge.id.clone().unwrap_or_else(|| {
        format!(
            "reactflow__edge-{}{}-{}{}",
            flow_edge.source,
            flow_edge.source_handle.as_deref().unwrap_or_default(),
            flow_edge.target,
            flow_edge.target_handle.as_deref().unwrap_or_default()
        )
    });
    let end = |end: &str, node_id: &str, requested: Option<&str>, direction: HandleType| {
        let template = node_templates.get(node_id).ok_or_else(|| {
            format!(
                "edge `{}`: {end} node `{}` does not exist",
                shown(&id),
                shown(&node_id)
            )
        })?;
        match_handle(template, direction, requested)
            .map(|h| imported_handle_id(node_id, &h.id))
            .ok_or_else(|| {
                let kind = match direction {
                    HandleType::Input => "input",
                    HandleType::Output => "output",
                };
                let known: Vec<&str> = template
                    .template_handles
                    .iter()
                    .filter(|h| h.handle_type == direction)
                    .map(|h| h.id.as_str())
                    .collect();
                match requested.filter(|r| !r.is_empty()) {
                    Some(r) => format!(
                        "edge `{}`: {end} node `{}` (type `{}`) has no {kind} `{}` (its {kind}s: {})",
                        shown(&id),
                        shown(&node_id),
                        template.node_type,
                        shown(&r),
                        known.join(", ")
                    ),
                    None => format!(
                        "edge `{}`: {end} node `{}` (type `{}`) has no {kind}",
                        shown(&id),
                        shown(&node_id),
                        template.node_type
                    ),
                }
            })
    };
    let source_handle_id = end(
        "source",
        &flow_edge.source,
        flow_edge.source_handle.as_deref(),
        HandleType::Output,
    )?;
    let target_handle_id = end(
        "target",
        &flow_edge.target,
        flow_edge.target_handle.as_deref(),
        HandleType::Input,
    )?;
    Ok(Edge {
        id,
        source: flow_edge.source,
        target: flow_edge.target,
        source_handle_id,
        target_handle_id,
        extra: flow_edge.extra,
    })
}

/// The handle template of `direction` that `requested` names (by id, alias or label, ignoring
/// case, `_`, `-` and spaces), or the first one by order when nothing is requested.
fn match_handle<'t>(
    template: &'t NodeTemplate,
    direction: HandleType,
    requested: Option<&str>,
) -> Option<&'t HandleTemplate> {
    let mut candidates = template
        .template_handles
        .iter()
        .filter(move |h| h.handle_type == direction);
    let Some(requested) = requested.filter(|r| !r.is_empty()) else {
        return candidates.min_by_key(|h| h.order);
    };
    let key = handle_key(requested);
    let by_name = |h: &&HandleTemplate| {
        handle_key(&h.id) == key || h.aliases.iter().any(|a| handle_key(a) == key)
    };
    candidates
        .clone()
        .find(by_name)
        .or_else(|| candidates.find(|h| handle_key(&h.label) == key))
}

/// A handle name reduced to its lowercase letters and digits: `system_prompt`, `systemPrompt`
/// and `System Prompt` all become `systemprompt`.
fn handle_key(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn handle_keys_ignore_case_and_separators() {
        assert_eq!(handle_key("system_prompt"), handle_key("systemPrompt"));
        assert_eq!(handle_key("System Prompt"), "systemprompt");
        assert_ne!(handle_key("image"), handle_key("images"));
    }

    #[test]
    fn detects_document_kinds() {
        assert_eq!(
            detect_kind(&json!({"nodes": [], "handles": [], "edges": []})),
            Some(DocumentKind::Canvas)
        );
        assert_eq!(
            detect_kind(&json!({"nodes": [{"id": "a", "type": "text", "data": {}}]})),
            Some(DocumentKind::ReactFlow)
        );
        assert_eq!(
            detect_kind(&json!({"nodes": [], "edges": [{"source": "a", "sourceHandle": "x"}]})),
            Some(DocumentKind::ReactFlow)
        );
        assert_eq!(detect_kind(&json!({})), Some(DocumentKind::Canvas));
        assert_eq!(detect_kind(&json!([1, 2])), None);
    }
}
