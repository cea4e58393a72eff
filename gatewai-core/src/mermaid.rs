//! Export of a workflow as Mermaid flowchart text: a picture of the graph that a README (GitHub
//! renders Mermaid blocks) or a web page can show.
//!
//! ```text
//! flowchart LR
//!     n_photo["Product photo<br/>File"]
//!     n_crop_1["Square crop<br/>Crop"]
//!     n_photo -->|"File → Image"| n_crop_1
//! ```

use crate::model::Workflow;
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// The workflow as a Mermaid `flowchart LR`: one box per node labelled with its name and type,
/// one arrow per edge labelled with its source and target handle labels (`"Result → Image"`).
///
/// Node ids are sanitised into Mermaid identifiers (`n_` followed by the id's letters, digits and
/// underscores, other characters becoming `_`, made unique with a numeric suffix); quotes and
/// angle brackets in labels are written as Mermaid entities so any name parses. Edges naming a
/// node that does not exist are left out.
pub fn to_mermaid(workflow: &Workflow) -> String {
    let mut out = String::from("flowchart LR\n");
    let mut ids: HashMap<&str, String> = HashMap::with_capacity(workflow.nodes.len());
    let mut taken = Identifiers::default();
    for node in &workflow.nodes {
        if ids.contains_key(node.id.as_str()) {
            continue;
        }
        let id = taken.unique_id(&node.id);
        let name = if node.name.is_empty() {
            &node.id
        } else {
            &node.name
        };
        // Writing into a String cannot fail.
        let _ = writeln!(
            out,
            "    {id}[\"{}<br/>{}\"]",
            escape(name),
            escape(&node.node_type)
        );
        ids.insert(node.id.as_str(), id);
    }
    let labels: HashMap<&str, &str> = workflow
        .handles
        .iter()
        .map(|h| {
            let label = if h.label.is_empty() { &h.id } else { &h.label };
            (h.id.as_str(), label.as_str())
        })
        .collect();
    for edge in &workflow.edges {
        let (Some(source), Some(target)) =
            (ids.get(edge.source.as_str()), ids.get(edge.target.as_str()))
        else {
            continue;
        };
        let label = |handle_id: &str| escape(labels.get(handle_id).copied().unwrap_or(handle_id));
        let _ = writeln!(
            out,
            "    {source} -->|\"{} → {}\"| {target}",
            label(&edge.source_handle_id),
            label(&edge.target_handle_id)
        );
    }
    out
}

/// The Mermaid identifiers given so far.
#[derive(Default)]
struct Identifiers {
    taken: HashSet<String>,
    /// For each sanitised id given more than once, the suffix to try next: many ids that
    /// sanitise alike (a document is untrusted input) each take one try, not one per id
    /// before them.
    next_suffix: HashMap<String, usize>,
}

impl Identifiers {
    /// A Mermaid identifier for a node id, not given before.
    fn unique_id(&mut self, node_id: &str) -> String {
        let base: String = std::iter::once('n')
            .chain(std::iter::once('_'))
            .chain(node_id.chars().map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            }))
            .collect();
        if self.taken.insert(base.clone()) {
            return base;
        }
        let suffix = self.next_suffix.entry(base.clone()).or_insert(2);
        loop {
            let id = format!("{base}_{suffix}");
            *suffix += 1;
            if self.taken.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// Escapes text for a quoted Mermaid label.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sanitised_and_unique() {
        let mut taken = Identifiers::default();
        assert_eq!(taken.unique_id("a-b"), "n_a_b");
        assert_eq!(taken.unique_id("a b"), "n_a_b_2");
        assert_eq!(taken.unique_id("end"), "n_end");
        assert_eq!(taken.unique_id("a_b_3"), "n_a_b_3");
        assert_eq!(taken.unique_id("a.b"), "n_a_b_4");
    }

    #[test]
    fn escapes_quotes_and_brackets() {
        assert_eq!(escape(r#"say "hi" <b>"#), "say #quot;hi#quot; #lt;b#gt;");
    }
}
