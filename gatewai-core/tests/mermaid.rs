//! Mermaid export through the public API.

mod common;

use common::{Canvas, templates};
use gatewai_core::import::parse_document;
use gatewai_core::mermaid::to_mermaid;

#[test]
fn a_small_workflow_as_mermaid() {
    let mut w = Canvas::new()
        .node("photo-1", "File")
        .node("crop", "Crop")
        .node("end", "Preview")
        .edge("e1", "photo-1", "file", "crop", "image")
        .edge("e2", "crop", "result", "end", "input")
        .build();
    w.nodes[0].name = r#"The "hero" shot"#.into();
    w.nodes[1].name = "Square <1:1>".into();
    assert_eq!(
        to_mermaid(&w),
        concat!(
            "flowchart LR\n",
            "    n_photo_1[\"The #quot;hero#quot; shot<br/>File\"]\n",
            "    n_crop[\"Square #lt;1:1#gt;<br/>Crop\"]\n",
            "    n_end[\"Preview<br/>Preview\"]\n",
            "    n_photo_1 -->|\"File → Image\"| n_crop\n",
            "    n_crop -->|\"Result → Input\"| n_end\n",
        )
    );
}

#[test]
fn colliding_sanitised_ids_stay_distinct_and_dangling_edges_are_left_out() {
    let mut w = Canvas::new()
        .node("a-b", "Text")
        .node("a.b", "Relay")
        .edge("e1", "a-b", "text", "a.b", "in")
        .edge("e2", "a.b", "out", "ghost", "in")
        .build();
    w.nodes[1].name = String::new();
    let text = to_mermaid(&w);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "flowchart LR",
            "    n_a_b[\"Text<br/>Text\"]",
            "    n_a_b_2[\"a.b<br/>Relay\"]",
            "    n_a_b -->|\"Text → In\"| n_a_b_2",
        ]
    );
}

#[test]
fn the_product_marketing_kit_as_mermaid() {
    let w = parse_document(
        &common::fixture("product_marketing_kit.reactflow.json"),
        &templates(),
    )
    .unwrap();
    let text = to_mermaid(&w);
    assert_eq!(text.lines().count(), 1 + 16 + 20);
    assert!(
        text.contains("    n_product_photo -->|\"File → Image\"| n_crop_square\n"),
        "{text}"
    );
    assert!(
        text.contains("    n_brand_voice -->|\"Text → System Prompt\"| n_headline\n"),
        "{text}"
    );
    // Every label is quoted, so no raw quote or bracket can break the syntax.
    for line in text.lines().skip(1) {
        assert_eq!(line.matches('"').count(), 2, "{line}");
    }
}

#[test]
fn many_ids_that_sanitise_alike_take_linear_time_and_stay_distinct() {
    common::assert_linear(1_250, |n| {
        // `n` distinct ids, every one `n__` once sanitised (a document is untrusted input).
        let mut w = gatewai_core::Workflow::default();
        for i in 0..n as u32 {
            let id = char::from_u32(0x4e00 + i).unwrap().to_string();
            w.nodes.push(gatewai_core::WorkflowNode::new(id, "Text"));
        }
        // A node whose id is what a suffix would make.
        w.nodes.push(gatewai_core::WorkflowNode::new("__3", "Text"));
        let started = std::time::Instant::now();
        let text = to_mermaid(&w);
        let elapsed = started.elapsed();
        let ids: std::collections::HashSet<&str> = text
            .lines()
            .skip(1)
            .map(|line| line.trim_start().split('[').next().unwrap())
            .collect();
        assert_eq!(
            ids.len(),
            w.nodes.len(),
            "every node has its own identifier"
        );
        assert!(ids.contains("n__") && ids.contains("n___2") && ids.contains("n___3_2"));
        elapsed
    });
}
