//! Import of React Flow documents of the workflow-app kind.
