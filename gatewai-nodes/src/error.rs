//! The crate's error type.

/// Errors of the built-in nodes' helpers (fetching, decoding, providers). Nodes turn them into
/// [`gatewai_core::NodeError`]s with the right kind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A catch-all while the crate grows.
    #[error("{0}")]
    Other(String),
}
