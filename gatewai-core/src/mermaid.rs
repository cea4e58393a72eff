//! Export of a workflow as Mermaid flowchart text.
