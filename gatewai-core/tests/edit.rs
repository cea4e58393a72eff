//! Editing operations through the public API: each one's success and each of its rejections.

mod common;

use common::{Canvas, CheckedTemplates, edge, hid, origin, templates};
use gatewai_core::edit::{self, BulkUpdate, Connection, merge_patch};
use gatewai_core::model::{Extra, Handle, Position, Workflow};
use gatewai_core::{
    DataType, Error, HandleType, NodeTemplate, ValidationError, WorkflowNode, validate,
};
use serde_json::json;

/// The validation problems of an edit's error (panics on any other error).
fn rejected<T: std::fmt::Debug>(result: gatewai_core::Result<T>) -> Vec<ValidationError> {
    match result {
        Err(Error::Invalid(errors)) => errors.into_iter().collect(),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

/// The instance handle of `node` made from template handle `th`.
fn handle_of(w: &Workflow, node: &str, th: &str) -> String {
    w.handles_of(node)
        .find(|h| h.template_handle_id.as_deref() == Some(th))
        .map(|h| h.id.clone())
        .unwrap_or_else(|| panic!("{node} has no {th} handle"))
}

/// File → Crop → Preview, built through the editing API.
fn edited_pipeline(t: &CheckedTemplates) -> (Workflow, [String; 3]) {
    let mut w = Workflow::default();
    let photo = edit::add_node(&mut w, t, "File", origin()).unwrap();
    let crop = edit::add_node(&mut w, t, "crop_image", Position { x: 200.0, y: 0.0 }).unwrap();
    let view = edit::add_node(&mut w, t, "Preview", origin()).unwrap();
    for (s, sh, d, dh) in [
        (&photo, "file", &crop, "image"),
        (&crop, "result", &view, "input"),
    ] {
        let c = Connection::between(&w, s, sh, d, dh).unwrap();
        edit::connect(&mut w, t, &c).unwrap();
    }
    (w, [photo, crop, view])
}

#[test]
fn add_node_creates_the_node_and_its_handles_from_the_template() {
    let t = CheckedTemplates::new();
    let mut w = Workflow::default();
    let id = edit::add_node(&mut w, &t, "llm", Position { x: 10.0, y: 20.0 }).unwrap();
    assert!(uuid_like(&id), "{id}");
    let node = w.node(&id).unwrap();
    assert_eq!(node.node_type, "LLM", "alias resolved to the type name");
    assert_eq!(node.name, "LLM");
    assert_eq!(node.position, Position { x: 10.0, y: 20.0 });
    assert_eq!(
        node.config,
        json!({"model": "gemini-2.5-flash", "temperature": 0})
    );
    let handles: Vec<(&str, HandleType, bool)> = w
        .handles_of(&id)
        .map(|h| {
            (
                h.template_handle_id.as_deref().unwrap(),
                h.handle_type,
                h.required,
            )
        })
        .collect();
    assert_eq!(
        handles,
        vec![
            ("prompt", HandleType::Input, true),
            ("system_prompt", HandleType::Input, false),
            ("image", HandleType::Input, false),
            ("result", HandleType::Output, false),
        ]
    );
    assert!(w.handles.iter().all(|h| uuid_like(&h.id)));
    // A second node gets different ids.
    let other = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    assert_ne!(id, other);
    assert_eq!(w.handles.len(), 8);
    // The result is structurally valid (the prompts are open, which a run would report).
    assert!(gatewai_core::validate::validate_structure(&w, &t).is_ok());
}

#[test]
fn add_node_without_a_default_config_gets_an_empty_object() {
    let mut w = Workflow::default();
    let id = edit::add_node(&mut w, &templates(), "Preview", origin()).unwrap();
    assert_eq!(w.node(&id).unwrap().config, json!({}));
}

#[test]
fn add_node_rejects_an_unknown_type() {
    let mut w = Workflow::default();
    let problems = rejected(edit::add_node(&mut w, &templates(), "Sparkle", origin()));
    // No node was made, so none is named: the type is.
    assert!(matches!(problems.as_slice(),
        [ValidationError::UnregisteredNodeType { node_type }] if node_type == "Sparkle"));
    assert_eq!(problems[0].to_string(), "unknown node type `Sparkle`");
    assert_eq!(w, Workflow::default());
}

#[test]
fn add_node_rejects_a_default_config_the_type_rejects() {
    let mut t = CheckedTemplates::new();
    let crop = t.0.iter_mut().find(|t| t.node_type == "Crop").unwrap();
    crop.default_config = Some(json!({"widthPercentage": 400}));
    let mut w = Workflow::default();
    let problems = rejected(edit::add_node(&mut w, &t, "Crop", origin()));
    assert!(matches!(problems.as_slice(),
        [ValidationError::InvalidConfig { field, .. }] if field == "widthPercentage"));
    assert!(w.nodes.is_empty() && w.handles.is_empty());
}

#[test]
fn add_variable_input_handle() {
    let t = CheckedTemplates::new();
    let mut w = Workflow::default();
    let llm = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    let h = edit::add_variable_handle(
        &mut w,
        &t,
        &llm,
        HandleType::Input,
        &[DataType::Image],
        None,
    )
    .unwrap();
    let handle = w.handle(&h).unwrap();
    assert_eq!(handle.node_id, llm);
    assert_eq!(handle.handle_type, HandleType::Input);
    assert_eq!(handle.data_types, vec![DataType::Image]);
    assert_eq!(handle.label, "Image 4");
    assert_eq!(
        handle.order, 3,
        "after prompt, system prompt and image (orders 0..=2)"
    );
    assert_eq!(handle.template_handle_id, None);
    let named = edit::add_variable_handle(
        &mut w,
        &t,
        &llm,
        HandleType::Input,
        &[DataType::Image],
        Some("Logo"),
    )
    .unwrap();
    assert_eq!(w.handle(&named).unwrap().label, "Logo");
    assert_eq!(w.handle(&named).unwrap().order, 4);
    // The new input can be connected.
    let photo = edit::add_node(&mut w, &t, "File", origin()).unwrap();
    let c = Connection::new(&photo, handle_of(&w, &photo, "file"), &llm, &h);
    edit::connect(&mut w, &t, &c).unwrap();
}

#[test]
fn a_variable_handle_goes_last_even_after_the_largest_order() {
    let t = CheckedTemplates::new();
    let mut w = Workflow::default();
    let llm = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    // A document may carry any order.
    let image = handle_of(&w, &llm, "image");
    w.handles.iter_mut().find(|h| h.id == image).unwrap().order = i32::MAX;
    let h = edit::add_variable_handle(
        &mut w,
        &t,
        &llm,
        HandleType::Input,
        &[DataType::Image],
        None,
    )
    .unwrap();
    let added = w.handle(&h).unwrap();
    assert_eq!(added.order, i32::MAX, "not before the others");
    assert_eq!(
        w.handles.last().unwrap().id,
        h,
        "after the others of its order"
    );
}

#[test]
fn add_variable_handle_rejections() {
    let t = CheckedTemplates::new();
    let mut w = Workflow::default();
    let llm = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    let crop = edit::add_node(&mut w, &t, "Crop", origin()).unwrap();
    let before = w.clone();

    let not_allowed = |problems: Vec<ValidationError>, node: &str, fragment: &str| {
        let [
            ValidationError::VariableHandleNotAllowed {
                node_id, message, ..
            },
        ] = problems.as_slice()
        else {
            panic!("{problems:?}")
        };
        assert_eq!(node_id, node);
        assert!(message.contains(fragment), "{message}");
    };
    // A type without variable inputs.
    not_allowed(
        rejected(edit::add_variable_handle(
            &mut w,
            &t,
            &crop,
            HandleType::Input,
            &[DataType::Image],
            None,
        )),
        &crop,
        "no variable inputs",
    );
    // A data type the template does not allow.
    not_allowed(
        rejected(edit::add_variable_handle(
            &mut w,
            &t,
            &llm,
            HandleType::Input,
            &[DataType::Text],
            None,
        )),
        &llm,
        "of type Text",
    );
    // No data type at all.
    not_allowed(
        rejected(edit::add_variable_handle(
            &mut w,
            &t,
            &llm,
            HandleType::Input,
            &[],
            None,
        )),
        &llm,
        "needs a data type",
    );
    // Variable outputs are not allowed on an LLM.
    not_allowed(
        rejected(edit::add_variable_handle(
            &mut w,
            &t,
            &llm,
            HandleType::Output,
            &[DataType::Text],
            None,
        )),
        &llm,
        "no variable outputs",
    );
    // A missing node.
    assert_eq!(
        rejected(edit::add_variable_handle(
            &mut w,
            &t,
            "gone",
            HandleType::Input,
            &[DataType::Image],
            None
        )),
        vec![ValidationError::NodeNotFound {
            node_id: "gone".into()
        }]
    );
    assert_eq!(w, before);
}

#[test]
fn add_variable_output_handle_when_the_type_allows_it() {
    let mut t = templates();
    let mut splitter = NodeTemplate::new("Splitter", "Splitter", "Tools");
    splitter.variable_outputs = true;
    splitter.variable_output_data_types = vec![DataType::Text];
    t.push(splitter);
    let mut w = Workflow::default();
    let id = edit::add_node(&mut w, &t, "Splitter", origin()).unwrap();
    let h = edit::add_variable_handle(&mut w, &t, &id, HandleType::Output, &[DataType::Text], None)
        .unwrap();
    assert_eq!(w.handle(&h).unwrap().label, "Text 1");
    assert_eq!(w.handle(&h).unwrap().order, 0);
}

#[test]
fn update_config_merges_deeply() {
    let mut w = Workflow::default();
    let t = CheckedTemplates::new();
    let llm = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    edit::update_config(
        &mut w,
        &t,
        &llm,
        &json!({"options": {"topK": 3, "seed": 1}}),
    )
    .unwrap();
    edit::update_config(
        &mut w,
        &t,
        &llm,
        &json!({"temperature": 0.7, "options": {"seed": null, "topP": 0.9}}),
    )
    .unwrap();
    assert_eq!(
        w.node(&llm).unwrap().config,
        json!({"model": "gemini-2.5-flash", "temperature": 0.7, "options": {"topK": 3, "topP": 0.9}})
    );
}

#[test]
fn merge_patch_follows_rfc_7396() {
    // Examples from RFC 7396, appendix A.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (mut target, patch, expected) in cases {
        merge_patch(&mut target, &patch);
        assert_eq!(target, expected, "patch {patch}");
    }
}

#[test]
fn update_config_rejections_leave_the_config_unchanged() {
    let t = CheckedTemplates::new();
    let (mut w, [_, crop, _]) = edited_pipeline(&t);
    let before = w.node(&crop).unwrap().config.clone();
    let problems = rejected(edit::update_config(
        &mut w,
        &t,
        &crop,
        &json!({"leftPercentage": -5, "topPercentage": "top"}),
    ));
    let fields: Vec<&str> = problems
        .iter()
        .map(|p| match p {
            ValidationError::InvalidConfig { node_id, field, .. } if *node_id == crop => {
                field.as_str()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(fields, ["leftPercentage", "topPercentage"]);
    assert_eq!(w.node(&crop).unwrap().config, before);
    assert_eq!(
        rejected(edit::update_config(&mut w, &t, "gone", &json!({}))),
        vec![ValidationError::NodeNotFound {
            node_id: "gone".into()
        }]
    );
}

#[test]
fn delete_node_removes_its_handles_and_edges() {
    let t = CheckedTemplates::new();
    let (mut w, [photo, crop, view]) = edited_pipeline(&t);
    assert_eq!((w.nodes.len(), w.handles.len(), w.edges.len()), (3, 4, 2));
    edit::delete_node(&mut w, &crop).unwrap();
    assert_eq!(
        w.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(),
        [&photo, &view]
    );
    assert_eq!(w.handles.len(), 2);
    assert!(w.handles.iter().all(|h| h.node_id != crop));
    assert!(w.edges.is_empty());
    assert!(gatewai_core::validate::validate_structure(&w, &t).is_ok());
    assert_eq!(
        rejected(edit::delete_node(&mut w, &crop)),
        vec![ValidationError::NodeNotFound {
            node_id: crop.clone()
        }]
    );
}

#[test]
fn connect_makes_a_valid_workflow() {
    let t = CheckedTemplates::new();
    let (w, [photo, crop, view]) = edited_pipeline(&t);
    assert!(validate(&w, &t).is_ok());
    let e = &w.edges[0];
    assert!(uuid_like(&e.id));
    assert_eq!(
        (e.source.as_str(), e.target.as_str()),
        (photo.as_str(), crop.as_str())
    );
    assert_eq!(w.edges[1].target, view);
}

#[test]
fn connect_many_edges_into_a_multiple_input() {
    let t = CheckedTemplates::new();
    let mut w = Workflow::default();
    let llm = edit::add_node(&mut w, &t, "LLM", origin()).unwrap();
    for _ in 0..3 {
        let photo = edit::add_node(&mut w, &t, "File", origin()).unwrap();
        let c = Connection::between(&w, &photo, "file", &llm, "image").unwrap();
        edit::connect(&mut w, &t, &c).unwrap();
    }
    assert_eq!(w.edges.len(), 3);
}

/// A workflow of the builder (readable ids) for connect's rejections.
fn fixture() -> Workflow {
    Canvas::new()
        .node("words", "Text")
        .node("photo", "File")
        .node("photo2", "File")
        .node("crop", "Crop")
        .node("a", "Relay")
        .node("b", "Relay")
        .node("c", "Relay")
        .edge("e1", "photo", "file", "crop", "image")
        .edge("ab", "a", "out", "b", "in")
        .edge("bc", "b", "out", "c", "in")
        .build()
}

fn connect_rejected(c: Connection) -> Vec<ValidationError> {
    let mut w = fixture();
    let problems = rejected(edit::connect(&mut w, &CheckedTemplates::new(), &c));
    assert_eq!(
        w,
        fixture(),
        "a rejected connect leaves the workflow unchanged"
    );
    problems
}

fn conn(s: &str, sh: &str, d: &str, dh: &str) -> Connection {
    Connection::new(s, hid(s, sh), d, hid(d, dh))
}

#[test]
fn connect_rejects_incompatible_types() {
    let problems = connect_rejected(conn("words", "text", "crop", "image"));
    // Crop's image input is also taken already: both problems are reported.
    assert!(
        matches!(&problems[0], ValidationError::IncompatibleTypes { source_node, target_node, .. }
        if source_node == "words" && target_node == "crop"),
        "{problems:?}"
    );
    assert!(
        matches!(&problems[1], ValidationError::TooManyEdges { .. }),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 2);
}

#[test]
fn connect_rejects_a_second_edge_into_a_single_edge_input() {
    let problems = connect_rejected(conn("photo2", "file", "crop", "image"));
    let [
        ValidationError::TooManyEdges {
            node_id,
            handle_id,
            count,
            edge_ids,
        },
    ] = problems.as_slice()
    else {
        panic!("{problems:?}")
    };
    assert_eq!(
        (node_id.as_str(), handle_id.as_str(), *count),
        ("crop", "crop:image", 2)
    );
    assert_eq!(edge_ids[0], "e1");
}

#[test]
fn connect_rejects_the_same_pair_twice() {
    let problems = connect_rejected(conn("photo", "file", "crop", "image"));
    assert!(
        matches!(problems.as_slice(),
        [ValidationError::DuplicateEdge { other_edge_id, .. }] if other_edge_id == "e1"),
        "{problems:?}"
    );
}

#[test]
fn connect_rejects_a_cycle() {
    let problems = connect_rejected(conn("c", "out", "a", "in"));
    assert!(
        matches!(problems.as_slice(),
        [ValidationError::Cycle { node_ids }] if node_ids == &["a", "b", "c"]),
        "{problems:?}"
    );
    let problems = connect_rejected(conn("a", "out", "a", "in"));
    assert!(
        matches!(problems.as_slice(),
        [ValidationError::Cycle { node_ids }] if node_ids == &["a"]),
        "{problems:?}"
    );
}

#[test]
fn connect_rejects_the_wrong_direction() {
    let problems = connect_rejected(conn("crop", "image", "a", "out"));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(matches!(
        &problems[0],
        ValidationError::WrongDirection {
            end: "source",
            actual: HandleType::Input,
            ..
        }
    ));
    assert!(matches!(
        &problems[1],
        ValidationError::WrongDirection {
            end: "target",
            actual: HandleType::Output,
            ..
        }
    ));
}

#[test]
fn connect_rejects_missing_ends() {
    let problems = connect_rejected(conn("ghost", "out", "a", "in"));
    assert!(
        matches!(problems.as_slice(),
        [ValidationError::MissingNode { end: "source", node_id, .. }] if node_id == "ghost"),
        "{problems:?}"
    );
    let problems = connect_rejected(Connection::new("words", "words:nope", "a", hid("b", "in")));
    assert!(
        matches!(&problems[0], ValidationError::MissingHandle { end: "source", handle_id, .. } if handle_id == "words:nope")
    );
    assert!(
        matches!(&problems[1], ValidationError::MissingHandle { end: "target", node_id, handle_id, .. }
        if node_id == "a" && handle_id == "b:in"),
        "a handle on another node: {problems:?}"
    );
    assert!(Connection::between(&fixture(), "words", "nope", "a", "in").is_err());
}

#[test]
fn disconnect_removes_the_edge() {
    let mut w = fixture();
    edit::disconnect(&mut w, "ab").unwrap();
    assert_eq!(
        w.edges.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["e1", "bc"]
    );
    assert_eq!(
        rejected(edit::disconnect(&mut w, "ab")),
        vec![ValidationError::EdgeNotFound {
            edge_id: "ab".into()
        }]
    );
    // b's input is free again, so a -> b can be connected anew.
    edit::connect(&mut w, &templates(), &conn("a", "out", "b", "in")).unwrap();
}

fn temp_handle(
    id: &str,
    node: &str,
    handle_type: HandleType,
    th: &str,
    types: &[DataType],
) -> Handle {
    Handle {
        id: id.into(),
        handle_type,
        data_types: types.to_vec(),
        label: th.into(),
        order: 0,
        required: false,
        template_handle_id: Some(th.into()),
        node_id: node.into(),
        description: None,
        multiple: None,
        extra: Extra::new(),
    }
}

/// The fixture plus a new Text node and a new Relay connected to it, all with client ids.
fn update_with_temp_ids() -> BulkUpdate {
    let w = fixture();
    let mut update = BulkUpdate {
        nodes: w.nodes,
        handles: w.handles,
        edges: w.edges,
    };
    update.nodes.push(WorkflowNode::new("temp-1", "Text"));
    update.nodes.push(WorkflowNode::new("temp-2", "Relay"));
    update.handles.push(temp_handle(
        "temp-h1",
        "temp-1",
        HandleType::Output,
        "text",
        &[DataType::Text],
    ));
    update.handles.push(temp_handle(
        "temp-h2",
        "temp-2",
        HandleType::Input,
        "in",
        &[DataType::Text],
    ));
    update.handles.push(temp_handle(
        "temp-h3",
        "temp-2",
        HandleType::Output,
        "out",
        &[DataType::Text],
    ));
    update.edges.push(gatewai_core::model::Edge {
        id: "temp-e1".into(),
        source: "temp-1".into(),
        target: "temp-2".into(),
        source_handle_id: "temp-h1".into(),
        target_handle_id: "temp-h2".into(),
        extra: Extra::new(),
    });
    // An existing node fed by the new one: references from kept items to temp items.
    update.edges.retain(|e| e.id != "ab");
    update.edges.push(gatewai_core::model::Edge {
        id: "temp-e2".into(),
        source: "temp-2".into(),
        target: "b".into(),
        source_handle_id: "temp-h3".into(),
        target_handle_id: hid("b", "in"),
        extra: Extra::new(),
    });
    update
}

#[test]
fn bulk_update_gives_temp_ids_fresh_ids_and_rewrites_references() {
    let t = CheckedTemplates::new();
    let mut w = fixture();
    w.name = Some("kept".into());
    let fresh = edit::bulk_update(&mut w, &t, update_with_temp_ids()).unwrap();
    assert_eq!(w.name.as_deref(), Some("kept"));
    assert_eq!(fresh.nodes.len(), 2);
    assert_eq!(fresh.handles.len(), 3);
    assert_eq!(fresh.edges.len(), 2);
    let (n1, n2) = (&fresh.nodes["temp-1"], &fresh.nodes["temp-2"]);
    assert!(uuid_like(n1) && uuid_like(n2) && n1 != n2);
    assert!(
        !serde_json::to_string(&w).unwrap().contains("temp-"),
        "every temp id replaced"
    );
    // References follow.
    assert_eq!(w.handle(&fresh.handles["temp-h2"]).unwrap().node_id, *n2);
    let e1 = w
        .edges
        .iter()
        .find(|e| e.id == fresh.edges["temp-e1"])
        .unwrap();
    assert_eq!((&e1.source, &e1.target), (n1, n2));
    assert_eq!(
        (&e1.source_handle_id, &e1.target_handle_id),
        (&fresh.handles["temp-h1"], &fresh.handles["temp-h2"])
    );
    let e2 = w
        .edges
        .iter()
        .find(|e| e.id == fresh.edges["temp-e2"])
        .unwrap();
    assert_eq!((&e2.source, e2.target.as_str()), (n2, "b"));
    // Ids that were not temporary are kept.
    assert!(w.node("words").is_some() && w.edges.iter().any(|e| e.id == "bc"));
    assert!(gatewai_core::validate::validate_structure(&w, &t).is_ok());
}

#[test]
fn bulk_update_that_does_not_validate_changes_nothing() {
    let t = CheckedTemplates::new();
    let mut w = fixture();
    let mut update = update_with_temp_ids();
    // Close a loop through the new nodes: b -> c -> temp-2 is taken (single input) and makes a cycle.
    update.edges.push(gatewai_core::model::Edge {
        id: "temp-e3".into(),
        source: "c".into(),
        target: "temp-2".into(),
        source_handle_id: hid("c", "out"),
        target_handle_id: "temp-h2".into(),
        extra: Extra::new(),
    });
    update
        .edges
        .push(edge("bad", "words", "text", "crop", "image"));
    let problems = rejected(edit::bulk_update(&mut w, &t, update));
    assert_eq!(w, fixture());
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, ValidationError::Cycle { .. })),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, ValidationError::TooManyEdges { .. }))
    );
    assert!(problems.iter().any(
        |p| matches!(p, ValidationError::IncompatibleTypes { edge_id, .. } if edge_id == "bad")
    ));
    // The cycle is named with the fresh id of the temp node, not the client id.
    let cycle = problems.iter().find_map(|p| match p {
        ValidationError::Cycle { node_ids } => Some(node_ids.clone()),
        _ => None,
    });
    assert!(cycle.unwrap().iter().all(|id| !id.starts_with("temp-")));
}

#[test]
fn bulk_update_payload_reads_gatewai_json() {
    let json = json!({
        "nodes": [{"id": "temp-a", "name": "Words", "type": "Text", "position": {"x": 1.0, "y": 2.0}, "config": {"content": "hi"}}],
        "handles": [{"id": "temp-b", "type": "Output", "dataTypes": ["Text"], "label": "Text", "order": 0, "required": false, "templateHandleId": "text", "nodeId": "temp-a"}],
        "edges": []
    });
    let update: BulkUpdate = serde_json::from_value(json).unwrap();
    let mut w = Workflow::default();
    let fresh = edit::bulk_update(&mut w, &templates(), update).unwrap();
    assert_eq!(w.handles[0].node_id, fresh.nodes["temp-a"]);
    assert_eq!(w.nodes[0].config, json!({"content": "hi"}));
}

/// Whether `id` looks like a UUID v4 (8-4-4-4-12 hex digits, version 4).
fn uuid_like(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && id.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
        && parts[2].starts_with('4')
}
