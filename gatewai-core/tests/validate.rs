//! Validation through the public API: one test per problem kind, all problems at once, and
//! graphs of 100,000 nodes.

mod common;

use common::{Canvas, CheckedTemplates, chain, edge, hid, layered, templates};
use gatewai_core::model::{Extra, Handle, Workflow};
use gatewai_core::validate::validate_structure;
use gatewai_core::{DataType, DataTypeSet, HandleType, ValidationError, validate};
use serde_json::json;
use std::time::Instant;

/// The problems `validate` reports for `workflow` against the checked test templates.
fn problems(workflow: &Workflow) -> Vec<ValidationError> {
    match validate(workflow, &CheckedTemplates::new()) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.into_iter().collect(),
    }
}

/// Asserts that `workflow` has exactly the one problem `expected`, and that it prints as one
/// line naming every place in `names`.
fn assert_single(workflow: &Workflow, expected: ValidationError, names: &[&str]) {
    let found = problems(workflow);
    assert_eq!(found, vec![expected]);
    let line = found[0].to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    for name in names {
        assert!(line.contains(name), "`{line}` should name `{name}`");
    }
}

/// Text → Crop would be incompatible; this is the valid base: File → Crop → Preview.
fn base() -> Canvas {
    Canvas::new()
        .node("photo", "File")
        .node("crop", "Crop")
        .node("view", "Preview")
        .edge("e1", "photo", "file", "crop", "image")
        .edge("e2", "crop", "result", "view", "input")
}

#[test]
fn a_valid_workflow_passes() {
    assert_eq!(problems(&base().build()), vec![]);
    assert!(validate(&Workflow::default(), &templates()).is_ok());
}

#[test]
fn unknown_node_type() {
    let mut w = base().build();
    w.nodes[2].node_type = "Sparkle".into();
    assert_single(
        &w,
        ValidationError::UnknownNodeType {
            node_id: "view".into(),
            node_type: "Sparkle".into(),
        },
        &["view", "Sparkle"],
    );
}

#[test]
fn duplicate_node_id() {
    let mut w = base().build();
    let mut copy = w.nodes[0].clone();
    copy.name = "another photo".into();
    w.nodes.push(copy.clone());
    w.nodes.push(copy);
    // Reported once however many times the id repeats.
    assert_single(
        &w,
        ValidationError::DuplicateNodeId {
            node_id: "photo".into(),
        },
        &["photo"],
    );
}

#[test]
fn a_node_id_that_is_empty_or_holds_a_control_character() {
    for (id, reason) in [
        ("bad\u{0}id", "control character"),
        ("line\nbreak", "control character"),
        ("", "empty"),
    ] {
        let w = base().node(id, "Text").build();
        let found = problems(&w);
        assert!(
            matches!(&found[..], [ValidationError::InvalidNodeId { node_id, .. }] if node_id == id),
            "{id:?}: {found:?}"
        );
        // The message names the id escaped, on one line.
        let line = found[0].to_string();
        assert!(
            line.contains(&format!("`{}`", gatewai_core::error::shown(&id)))
                && line.contains(reason),
            "{line}"
        );
        assert!(!line.contains('\n') && !line.contains('\0'), "{line}");
    }
    // Other odd but harmless characters are fine.
    assert_eq!(problems(&base().node("ünï côdé-1", "Text").build()), vec![]);
}

#[test]
fn duplicate_handle_id() {
    let mut w = base().build();
    let copy = w.handles[0].clone();
    w.handles.push(copy);
    assert_single(
        &w,
        ValidationError::DuplicateHandleId {
            handle_id: "photo:file".into(),
        },
        &["photo:file"],
    );
}

#[test]
fn two_handles_naming_one_template_handle() {
    let mut w = base().build();
    // The second of two: which one a value on `file` belongs to is undecidable.
    let mut second = w.handles[0].clone();
    second.id = "photo:file2".into();
    w.handles.push(second.clone());
    assert_single(
        &w,
        ValidationError::DuplicateTemplateHandle {
            node_id: "photo".into(),
            handle_id: "photo:file2".into(),
            template_handle_id: "file".into(),
        },
        &["photo", "photo:file2", "`file`"],
    );
    // A variable handle names no template handle: any number of them is fine.
    second.template_handle_id = None;
    *w.handles.last_mut().unwrap() = second.clone();
    second.id = "photo:file3".into();
    w.handles.push(second);
    assert_eq!(problems(&w), vec![]);
}

#[test]
fn a_handle_naming_a_template_handle_of_the_other_kind() {
    let mut w = base().build();
    // Crop's output `result` is named by an input the node has beside its image input:
    // a value for `result` would land on the input side of the node.
    let mut input = w
        .handles
        .iter()
        .find(|h| h.id == "crop:image")
        .unwrap()
        .clone();
    input.id = "crop:extra".into();
    input.template_handle_id = Some("result".into());
    input.required = false;
    w.handles.retain(|h| h.id != "crop:result");
    w.edges.retain(|e| e.id != "e2");
    w.nodes.retain(|n| n.id != "view");
    w.handles.retain(|h| h.node_id != "view");
    w.handles.push(input);
    assert_single(
        &w,
        ValidationError::TemplateHandleOfOtherKind {
            node_id: "crop".into(),
            handle_id: "crop:extra".into(),
            handle_type: HandleType::Input,
            template_handle_id: "result".into(),
        },
        &["crop", "crop:extra", "`result`"],
    );
}

#[test]
fn duplicate_edge_id() {
    let mut w = base().build();
    w.edges[1].id = "e1".into();
    assert_single(
        &w,
        ValidationError::DuplicateEdgeId {
            edge_id: "e1".into(),
        },
        &["e1"],
    );
}

#[test]
fn duplicate_edge_between_the_same_handles() {
    let mut w = base().build();
    w.edges
        .push(edge("e1-again", "photo", "file", "crop", "image"));
    // The duplicate is not also counted as a second edge into the single-edge input.
    assert_single(
        &w,
        ValidationError::DuplicateEdge {
            edge_id: "e1-again".into(),
            other_edge_id: "e1".into(),
        },
        &["e1-again", "e1"],
    );
}

#[test]
fn orphan_handle() {
    let mut w = base().build();
    w.handles.push(Handle {
        id: "stray".into(),
        handle_type: HandleType::Output,
        data_types: vec![DataType::Text],
        label: "Stray".into(),
        order: 0,
        required: false,
        template_handle_id: None,
        node_id: "gone".into(),
        description: None,
        multiple: None,
        extra: Extra::new(),
    });
    assert_single(
        &w,
        ValidationError::OrphanHandle {
            handle_id: "stray".into(),
            node_id: "gone".into(),
        },
        &["stray", "gone"],
    );
}

#[test]
fn edge_to_a_missing_node() {
    let mut w = base().build();
    w.edges[1].target = "nowhere".into();
    let found = problems(&w);
    assert!(found.contains(&ValidationError::MissingNode {
        edge_id: "e2".into(),
        end: "target",
        node_id: "nowhere".into(),
    }));
    // The preview's input is now open too; nothing else.
    assert_eq!(found.len(), 2, "{found:?}");
    let line = found[0].to_string();
    assert!(line.contains("e2") && line.contains("nowhere") && !line.contains('\n'));
}

#[test]
fn edge_to_a_missing_handle() {
    let mut w = base().build();
    w.edges[0].source_handle_id = "photo:nothing".into();
    assert_single(
        &w,
        ValidationError::MissingHandle {
            edge_id: "e1".into(),
            end: "source",
            node_id: "photo".into(),
            handle_id: "photo:nothing".into(),
        },
        &["e1", "photo", "photo:nothing"],
    );
}

#[test]
fn edge_to_a_handle_on_another_node() {
    let mut w = base().node("other", "File").build();
    // The handle exists, but belongs to `other`, not to the edge's source `photo`.
    w.edges[0].source_handle_id = hid("other", "file");
    assert_single(
        &w,
        ValidationError::MissingHandle {
            edge_id: "e1".into(),
            end: "source",
            node_id: "photo".into(),
            handle_id: "other:file".into(),
        },
        &["e1", "photo", "other:file"],
    );
}

#[test]
fn edge_from_an_input() {
    let mut w = base().node("crop2", "Crop").build();
    w.edges
        .push(edge("back", "crop2", "image", "view", "input"));
    w.edges.retain(|e| e.id != "e2");
    let found = problems(&w);
    assert!(found.contains(&ValidationError::WrongDirection {
        edge_id: "back".into(),
        end: "source",
        node_id: "crop2".into(),
        handle_id: "crop2:image".into(),
        actual: HandleType::Input,
    }));
    let line = found[0].to_string();
    assert!(line.contains("back") && line.contains("crop2:image") && line.contains("Input"));
}

#[test]
fn edge_into_an_output() {
    let mut w = base().build();
    w.edges
        .push(edge("into-out", "photo", "file", "crop", "result"));
    assert_single(
        &w,
        ValidationError::WrongDirection {
            edge_id: "into-out".into(),
            end: "target",
            node_id: "crop".into(),
            handle_id: "crop:result".into(),
            actual: HandleType::Output,
        },
        &["into-out", "crop", "crop:result", "Output"],
    );
}

#[test]
fn incompatible_data_types() {
    let mut w = base().node("words", "Text").build();
    w.edges[0] = edge("e1", "words", "text", "crop", "image");
    assert_single(
        &w,
        ValidationError::IncompatibleTypes {
            edge_id: "e1".into(),
            source_node: "words".into(),
            source_handle_id: "words:text".into(),
            target_node: "crop".into(),
            target_handle_id: "crop:image".into(),
            produced: DataTypeSet::of(&[DataType::Text]),
            accepted: DataTypeSet::of(&[DataType::Image]),
        },
        &["e1", "words", "crop:image", "Text", "Image"],
    );
}

#[test]
fn file_output_is_compatible_with_any_media_input() {
    let mut w = base().build();
    w.handles[0].data_types = vec![DataType::File];
    assert_eq!(problems(&w), vec![]);
}

#[test]
fn two_edges_into_a_single_edge_input() {
    let w = base()
        .node("photo2", "File")
        .edge("e3", "photo2", "file", "crop", "image")
        .build();
    assert_single(
        &w,
        ValidationError::TooManyEdges {
            node_id: "crop".into(),
            handle_id: "crop:image".into(),
            count: 2,
            edge_ids: vec!["e1".into(), "e3".into()],
        },
        &["crop", "crop:image", "e1", "e3"],
    );
}

#[test]
fn many_edges_into_an_input_whose_template_takes_many() {
    let w = Canvas::new()
        .node("a", "File")
        .node("b", "File")
        .node("c", "File")
        .node("words", "Text")
        .node("llm", "LLM")
        .edge("e0", "words", "text", "llm", "prompt")
        .edge("e1", "a", "file", "llm", "image")
        .edge("e2", "b", "file", "llm", "image")
        .edge("e3", "c", "file", "llm", "image")
        .build();
    assert_eq!(problems(&w), vec![]);
}

#[test]
fn the_handle_multiple_flag_overrides_the_template() {
    let mut w = base()
        .node("photo2", "File")
        .edge("e3", "photo2", "file", "crop", "image")
        .build();
    let crop_image = w.handles.iter().position(|h| h.id == "crop:image").unwrap();
    w.handles[crop_image].multiple = Some(true);
    assert_eq!(problems(&w), vec![]);

    let mut w = Canvas::new()
        .node("a", "File")
        .node("b", "File")
        .node("words", "Text")
        .node("llm", "LLM")
        .edge("e0", "words", "text", "llm", "prompt")
        .edge("e1", "a", "file", "llm", "image")
        .edge("e2", "b", "file", "llm", "image")
        .build();
    let llm_image = w.handles.iter().position(|h| h.id == "llm:image").unwrap();
    w.handles[llm_image].multiple = Some(false);
    assert!(matches!(
        problems(&w).as_slice(),
        [ValidationError::TooManyEdges { count: 2, .. }]
    ));
}

#[test]
fn cycle_names_the_nodes_on_it() {
    let w = Canvas::new()
        .node("start", "Text")
        .node("a", "Join")
        .node("b", "Relay")
        .node("c", "Relay")
        .node("after", "Relay")
        .edge("e0", "start", "text", "a", "in")
        .edge("e1", "a", "out", "b", "in")
        .edge("e2", "b", "out", "c", "in")
        .edge("e3", "c", "out", "a", "in")
        .edge("e4", "c", "out", "after", "in")
        .build();
    assert_single(
        &w,
        ValidationError::Cycle {
            node_ids: vec!["a".into(), "b".into(), "c".into()],
        },
        &["a -> b -> c"],
    );
}

#[test]
fn a_self_loop_is_a_cycle() {
    let w = Canvas::new()
        .node("start", "Text")
        .node("loop", "Join")
        .edge("e0", "start", "text", "loop", "in")
        .edge("e1", "loop", "out", "loop", "in")
        .build();
    assert_single(
        &w,
        ValidationError::Cycle {
            node_ids: vec!["loop".into()],
        },
        &["loop"],
    );
}

#[test]
fn required_input_unconnected() {
    let mut w = base().build();
    w.edges.truncate(1);
    assert_single(
        &w,
        ValidationError::RequiredInputUnconnected {
            node_id: "view".into(),
            handle_id: "view:input".into(),
            label: "Input".into(),
        },
        &["view", "view:input", "Input"],
    );
    // Structure-only validation (what editing keeps) allows it.
    assert!(validate_structure(&w, &CheckedTemplates::new()).is_ok());
}

#[test]
fn config_rejected_by_the_node_type() {
    let mut w = base().build();
    w.nodes[1].config = json!({"leftPercentage": 150, "topPercentage": 0, "widthPercentage": 100, "heightPercentage": 100});
    assert_single(
        &w,
        ValidationError::InvalidConfig {
            node_id: "crop".into(),
            field: "leftPercentage".into(),
            message: "must be a number in 0..=100, got 150".into(),
        },
        &["crop", "leftPercentage", "150"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut w = Canvas::new()
        .node("words", "Text")
        .node("photo", "File")
        .node("crop", "Crop")
        .node("crop", "Crop") // duplicate node id (and its handles)
        .node("llm", "LLM")
        .node("a", "Relay")
        .node("b", "Relay")
        .edge("bad-types", "words", "text", "crop", "image")
        .edge("ok", "photo", "file", "crop", "image")
        .edge("ghost", "photo", "file", "missing", "in")
        .edge("ab", "a", "out", "b", "in")
        .edge("ba", "b", "out", "a", "in")
        .build();
    w.nodes
        .push(gatewai_core::WorkflowNode::new("odd", "Sparkle"));
    w.nodes[4].config = json!({"temperature": 9});
    let found = problems(&w);
    let has = |pred: &dyn Fn(&ValidationError) -> bool| found.iter().any(pred);
    assert!(has(
        &|e| matches!(e, ValidationError::DuplicateNodeId { node_id } if node_id == "crop")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::DuplicateHandleId { handle_id } if handle_id == "crop:image")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownNodeType { node_id, .. } if node_id == "odd")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::InvalidConfig { node_id, field, .. } if node_id == "llm" && field == "temperature")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::IncompatibleTypes { edge_id, .. } if edge_id == "bad-types")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::TooManyEdges { handle_id, .. } if handle_id == "crop:image")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::MissingNode { edge_id, .. } if edge_id == "ghost")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::Cycle { node_ids } if node_ids == &["a", "b"])
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::RequiredInputUnconnected { node_id, handle_id, .. } if node_id == "llm" && handle_id == "llm:prompt")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::DuplicateHandleId { handle_id } if handle_id == "crop:result")
    ));
    assert_eq!(found.len(), 10, "{found:#?}");
    // The whole list prints one problem per line.
    let text = gatewai_core::Error::from(gatewai_core::ValidationErrors(found)).to_string();
    assert_eq!(text.lines().count(), 11, "{text}");
}

#[test]
fn a_chain_of_100_000_nodes_validates() {
    let w = chain(100_000);
    assert_eq!(w.edges.len(), 99_999);
    let started = Instant::now();
    assert!(validate(&w, &templates()).is_ok());
    eprintln!(
        "100k chain validated in {:?} (debug build)",
        started.elapsed()
    );
}

#[test]
fn a_layered_dag_of_100_000_nodes_validates() {
    let w = layered(100, 1_000);
    assert_eq!((w.nodes.len(), w.edges.len()), (100_000, 198_000));
    let started = Instant::now();
    assert!(validate(&w, &templates()).is_ok());
    eprintln!(
        "100k layered DAG validated in {:?} (debug build)",
        started.elapsed()
    );
}

#[test]
fn a_cycle_deep_in_a_100_000_node_chain_is_found() {
    let mut w = chain(100_000);
    // Close the last 50,000 relays into a loop: n50000 -> ... -> n99999 -> n50000.
    // n50000's input already has an edge, so make it a Join first.
    w.nodes[50_000].node_type = "Join".into();
    let join_in = w.handles.iter().position(|h| h.id == "n50000:in").unwrap();
    w.handles[join_in].template_handle_id = Some("in".into());
    w.edges.push(edge("back", "n99999", "out", "n50000", "in"));
    let found = problems(&w);
    let [ValidationError::Cycle { node_ids }] = found.as_slice() else {
        panic!("expected one cycle, got {found:?}");
    };
    assert_eq!(node_ids.len(), 50_000);
    assert_eq!(node_ids.first().map(String::as_str), Some("n50000"));
    assert_eq!(node_ids.last().map(String::as_str), Some("n99999"));
}

#[test]
fn an_image_output_into_a_video_input_is_incompatible() {
    let w = base()
        .node("frame", "ExtractFrame")
        .edge("e3", "crop", "result", "frame", "video")
        .build();
    assert!(matches!(
        problems(&w).as_slice(),
        [ValidationError::IncompatibleTypes { edge_id, .. }] if edge_id == "e3"
    ));
}

#[test]
fn a_config_fallback_stands_in_for_an_unconnected_required_input() {
    use gatewai_core::{DataType, HandleTemplate, NodeTemplate, model::Handle};
    let templates = vec![
        NodeTemplate::new("Chat", "Chat", "AI").handle(
            HandleTemplate::input("prompt", "Prompt", &[DataType::Text])
                .required()
                .config_fallback("prompt"),
        ),
    ];
    let with_config = |config: serde_json::Value| {
        let mut w = Workflow::default();
        let mut node = gatewai_core::WorkflowNode::new("chat", "Chat");
        node.config = config;
        w.nodes.push(node);
        let th = &templates[0].template_handles[0];
        w.handles.push(Handle {
            id: "chat:prompt".into(),
            handle_type: th.handle_type,
            data_types: th.data_types.clone(),
            label: th.label.clone(),
            order: 0,
            required: true,
            template_handle_id: Some("prompt".into()),
            node_id: "chat".into(),
            description: None,
            multiple: None,
            extra: Default::default(),
        });
        w
    };
    assert!(
        validate(
            &with_config(json!({"prompt": "a haiku about foxes"})),
            &templates
        )
        .is_ok()
    );
    for empty in [json!({}), json!({"prompt": "  "}), json!({"prompt": null})] {
        let problems = validate(&with_config(empty.clone()), &templates).unwrap_err();
        assert!(
            matches!(problems.0.as_slice(), [ValidationError::RequiredInputUnconnected { handle_id, .. }] if handle_id == "chat:prompt"),
            "{empty}: {problems}"
        );
    }
}

/// Ids are untrusted: a message quotes at most 200 characters of one, a cycle names at most 20
/// nodes, and the list of problems prints at most 50 (the error value keeps them all).
#[test]
fn messages_quote_long_ids_and_long_lists_briefly() {
    let long = "y".repeat(100_000);
    let mut w = base().build();
    w.nodes[2].node_type = long.clone();
    let line = problems(&w)[0].to_string();
    assert!(
        line.len() < 500 && line.contains(&format!("`{}…`", "y".repeat(200))),
        "{line}"
    );

    let cycle: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let line = ValidationError::Cycle { node_ids: cycle }.to_string();
    assert!(line.contains("c19") && !line.contains("c20"), "{line}");
    assert!(line.ends_with("… (10 more)"), "{line}");

    let mut w = base().build();
    let text = w.nodes[0].clone();
    for i in 0..120 {
        let mut node = text.clone();
        node.id = format!("u{i}");
        node.node_type = "Nope".into();
        w.nodes.push(node);
    }
    let all = problems(&w);
    assert_eq!(all.len(), 120);
    let printed = gatewai_core::ValidationErrors(all).to_string();
    assert_eq!(printed.lines().count(), 51, "{printed}");
    assert!(printed.ends_with("- … (70 more problems)"), "{printed}");
}
