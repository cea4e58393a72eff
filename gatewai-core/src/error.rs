//! The crate's errors: [`Error`] for everything the engine and the model report, [`NodeError`]
//! for what a node's execution returns, and [`ValidationError`] for one problem in a workflow.

use crate::model::{DataTypeSet, HandleType};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `gatewai-core`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow is invalid; every problem found is listed.
    #[error("invalid workflow ({n} problem{s}):\n{errors}", n = .0.len(), s = if .0.len() == 1 { "" } else { "s" }, errors = .0)]
    Invalid(ValidationErrors),
    /// A document could not be read as a workflow (bad JSON, unknown node type on import, …).
    #[error("cannot import workflow: {message}")]
    Import {
        /// What is wrong, naming the node or field at fault.
        message: String,
    },
    /// A node failed.
    #[error("node {node_id}: {source}")]
    Node {
        /// The node at fault.
        node_id: String,
        /// Its error.
        source: NodeError,
    },
    /// An asset store operation failed.
    #[error("asset {key}: {message}")]
    Asset {
        /// The asset id or key at fault.
        key: String,
        /// What went wrong.
        message: String,
        /// What kind of failure it is.
        kind: ErrorKind,
    },
    /// An asset is larger than a reader allows ([`AssetStore::read_limited`]): it was refused
    /// before more than `max_bytes` of it were held in memory. Not retryable (the asset will
    /// not shrink); its kind is [`ErrorKind::InvalidInput`].
    ///
    /// [`AssetStore::read_limited`]: crate::AssetStore::read_limited
    #[error("asset `{id}`{} is larger than the {max_bytes}-byte limit", size.map(|n| format!(" ({n} bytes)")).unwrap_or_default())]
    AssetTooLarge {
        /// The asset's id (one the store knows: an unknown id is not found, not too large).
        id: String,
        /// The limit, in bytes.
        max_bytes: u64,
        /// The asset's size, when the store knew it before reading (its record, the file's
        /// metadata, the object's); `None` when reading itself ran past the limit.
        size: Option<u64>,
    },
    /// A result cache operation failed.
    #[error("result cache: {0}")]
    Cache(String),
    /// A run was cancelled.
    #[error("run cancelled")]
    Cancelled,
    /// An observer could not handle a batch of a run's events (a run recorder could not
    /// store them). The run goes on; its outcome lists these
    /// ([`RunOutcome::observer_errors`](crate::RunOutcome::observer_errors)).
    #[error("observer: {message}")]
    Observer {
        /// What went wrong, naming the run and what was lost.
        message: String,
        /// What kind of failure it is.
        kind: ErrorKind,
    },
    /// The engine was configured wrongly (e.g. a node type registered twice).
    #[error("engine configuration: {0}")]
    Config(String),
    /// Several independent errors at once.
    #[error("{} errors: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<Error>),
    /// An error shared by several consumers (every downstream node of a failure gets the same).
    #[error(transparent)]
    Shared(Arc<Error>),
}

impl Error {
    /// What kind of failure this is, for retry policies.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::InvalidInput,
            Error::Import { .. } => ErrorKind::InvalidInput,
            Error::Node { source, .. } => source.kind(),
            Error::Asset { kind, .. } => *kind,
            Error::AssetTooLarge { .. } => ErrorKind::InvalidInput,
            Error::Cache(_) => ErrorKind::Internal,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Observer { kind, .. } => *kind,
            Error::Config(_) => ErrorKind::InvalidConfig,
            Error::Many(errors) => errors.first().map_or(ErrorKind::Internal, Error::kind),
            Error::Shared(inner) => inner.kind(),
        }
    }

    /// An observer's error.
    pub fn observer(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Observer {
            message: message.into(),
            kind,
        }
    }

    /// An asset larger than a reader's limit of `max_bytes`, of `size` bytes when known.
    pub fn asset_too_large(id: impl Into<String>, max_bytes: u64, size: Option<u64>) -> Self {
        Error::AssetTooLarge {
            id: id.into(),
            max_bytes,
            size,
        }
    }

    /// An asset error.
    pub fn asset(key: impl Into<String>, kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Asset {
            key: key.into(),
            message: message.into(),
            kind,
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(errors: ValidationErrors) -> Self {
        Error::Invalid(errors)
    }
}

impl From<ValidationError> for Error {
    fn from(error: ValidationError) -> Self {
        Error::Invalid(ValidationErrors(vec![error]))
    }
}

/// The kind of a failure, so that a retry policy can decide without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The node's config is wrong (a field out of range, a bad model name). Not retryable.
    InvalidConfig,
    /// An input value is wrong (wrong type, corrupt file, zero-sized crop). Not retryable.
    InvalidInput,
    /// A remote service is overloaded or down (HTTP 500/503/504, connection reset). Retryable.
    Unavailable,
    /// A remote service rate-limited us (HTTP 429). Retryable.
    RateLimited,
    /// The node ran past its timeout. Retryable.
    Timeout,
    /// The run was cancelled. Not retryable.
    Cancelled,
    /// Credentials are missing or rejected (HTTP 401/403). Not retryable.
    Unauthorized,
    /// Something named does not exist (an asset, a model). Not retryable.
    NotFound,
    /// A provider refused the content (a blocked prompt, a safety stop). Not retryable.
    Refused,
    /// A required program or feature is missing (e.g. ffmpeg). Not retryable.
    Unsupported,
    /// Local I/O failed. Not retryable.
    Io,
    /// A bug or an unexpected state (a panicking node). Not retryable.
    Internal,
}

impl ErrorKind {
    /// Whether an operation that failed this way may succeed when tried again.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Timeout
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::InvalidConfig => "invalid config",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::RateLimited => "rate limited",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::NotFound => "not found",
            ErrorKind::Refused => "refused",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "i/o",
            ErrorKind::Internal => "internal",
        };
        f.write_str(s)
    }
}

/// The error a node's execution returns: a kind (which says whether a retry may help), a
/// message naming the field or handle at fault, and optionally how long to wait before a retry.
#[derive(Debug, Clone)]
pub struct NodeError {
    kind: ErrorKind,
    message: String,
    retry_after: Option<Duration>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl NodeError {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NodeError {
            kind,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A config error naming the field at fault.
    pub fn config(field: &str, message: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidConfig,
            format!("config field `{field}`: {message}"),
        )
    }

    /// An input error naming the handle at fault.
    pub fn input(handle: &str, message: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidInput,
            format!("input `{handle}`: {message}"),
        )
    }

    /// A transient failure that a retry may fix.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    /// An internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// The run was cancelled while the node ran.
    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, "cancelled")
    }

    /// Sets how long a retry should wait at least (from `Retry-After` and the like).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether a retry may help.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The minimum delay before a retry, if the failure said so.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.kind)
    }
}

impl std::error::Error for NodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for NodeError {
    fn from(error: Error) -> Self {
        match error {
            Error::Node { source, .. } => source,
            other => NodeError::new(other.kind(), other.to_string()),
        }
    }
}

/// One problem in a workflow, naming the node, handle or edge at fault. Prints as one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// No template is registered for the node's type.
    #[error("node `{node_id}`: unknown node type `{node_type}`")]
    UnknownNodeType {
        /// The node.
        node_id: String,
        /// Its type.
        node_type: String,
    },
    /// A node of a type no template answers to was asked for (adding a node to a document);
    /// a node already in a document is named by [`ValidationError::UnknownNodeType`].
    #[error("unknown node type `{node_type}`")]
    UnregisteredNodeType {
        /// The type asked for.
        node_type: String,
    },
    /// A node id is empty or holds a control character (a NUL, a line break, …): ids name
    /// nodes in records, logs and URLs, where such characters cannot go.
    #[error("node id {node_id:?} is not a valid id: {reason}")]
    InvalidNodeId {
        /// The id, as it is.
        node_id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A run option naming an id (the run's, the stored workflow's, the cache scope) holds
    /// one that is empty or has a control character.
    #[error("run option `{option}` is not a valid id: {reason}")]
    InvalidRunOption {
        /// The option.
        option: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two nodes share an id.
    #[error("node id `{node_id}` is used by more than one node")]
    DuplicateNodeId {
        /// The id.
        node_id: String,
    },
    /// Two handles share an id.
    #[error("handle id `{handle_id}` is used by more than one handle")]
    DuplicateHandleId {
        /// The id.
        handle_id: String,
    },
    /// A second handle of one node names the same handle of the node's template: which of
    /// the two a value on that template handle belongs to is undecidable (a variable handle,
    /// which the user adds, names none).
    #[error(
        "node `{node_id}`: handle `{handle_id}` is a second instance of template handle `{template_handle_id}`"
    )]
    DuplicateTemplateHandle {
        /// The node.
        node_id: String,
        /// The second handle naming the template handle.
        handle_id: String,
        /// The template handle both name.
        template_handle_id: String,
    },
    /// A handle names a template handle of the other kind (an input naming an output of the
    /// node's type, or the reverse): values would land on the wrong side of the node.
    #[error(
        "node `{node_id}`: handle `{handle_id}` is an {handle_type:?} but names template handle `{template_handle_id}`, which is not"
    )]
    TemplateHandleOfOtherKind {
        /// The node.
        node_id: String,
        /// The handle.
        handle_id: String,
        /// Whether the handle is an input or an output.
        handle_type: crate::model::HandleType,
        /// The template handle it names.
        template_handle_id: String,
    },
    /// Two edges share an id.
    #[error("edge id `{edge_id}` is used by more than one edge")]
    DuplicateEdgeId {
        /// The id.
        edge_id: String,
    },
    /// Two edges join the same pair of handles.
    #[error("edge `{edge_id}` duplicates edge `{other_edge_id}` (same source and target handles)")]
    DuplicateEdge {
        /// The later edge.
        edge_id: String,
        /// The earlier edge.
        other_edge_id: String,
    },
    /// A handle belongs to a node that does not exist.
    #[error("handle `{handle_id}` belongs to missing node `{node_id}`")]
    OrphanHandle {
        /// The handle.
        handle_id: String,
        /// The missing node.
        node_id: String,
    },
    /// An edge names a node that does not exist.
    #[error("edge `{edge_id}`: {end} node `{node_id}` does not exist")]
    MissingNode {
        /// The edge.
        edge_id: String,
        /// `"source"` or `"target"`.
        end: &'static str,
        /// The missing node.
        node_id: String,
    },
    /// An edge names a handle that does not exist or is not on the named node.
    #[error("edge `{edge_id}`: {end} handle `{handle_id}` does not exist on node `{node_id}`")]
    MissingHandle {
        /// The edge.
        edge_id: String,
        /// `"source"` or `"target"`.
        end: &'static str,
        /// The node the handle should be on.
        node_id: String,
        /// The handle.
        handle_id: String,
    },
    /// An edge leaves an input handle or enters an output handle.
    #[error(
        "edge `{edge_id}`: {end} handle `{handle_id}` on node `{node_id}` is an {actual:?} handle"
    )]
    WrongDirection {
        /// The edge.
        edge_id: String,
        /// `"source"` or `"target"`.
        end: &'static str,
        /// The node.
        node_id: String,
        /// The handle.
        handle_id: String,
        /// The handle's actual type.
        actual: HandleType,
    },
    /// The source produces no type the target accepts.
    #[error(
        "edge `{edge_id}`: output `{source_handle_id}` of node `{source_node}` produces {produced}, but input `{target_handle_id}` of node `{target_node}` accepts {accepted}"
    )]
    IncompatibleTypes {
        /// The edge.
        edge_id: String,
        /// Source node.
        source_node: String,
        /// Source handle.
        source_handle_id: String,
        /// Target node.
        target_node: String,
        /// Target handle.
        target_handle_id: String,
        /// What the source produces.
        produced: DataTypeSet,
        /// What the target accepts.
        accepted: DataTypeSet,
    },
    /// More than one edge enters an input that takes one.
    #[error("input `{handle_id}` of node `{node_id}` takes one edge but has {count}: {}", .edge_ids.join(", "))]
    TooManyEdges {
        /// The node.
        node_id: String,
        /// The input handle.
        handle_id: String,
        /// How many edges enter it.
        count: usize,
        /// Their ids.
        edge_ids: Vec<String>,
    },
    /// The graph has a cycle.
    #[error("cycle through nodes {}", .node_ids.join(" -> "))]
    Cycle {
        /// The nodes on the cycle, in order.
        node_ids: Vec<String>,
    },
    /// A required input has no edge.
    #[error("required input `{label}` (`{handle_id}`) of node `{node_id}` is not connected")]
    RequiredInputUnconnected {
        /// The node.
        node_id: String,
        /// The input handle.
        handle_id: String,
        /// Its label.
        label: String,
    },
    /// The node's type rejects its config.
    #[error("node `{node_id}`: config field `{field}`: {message}")]
    InvalidConfig {
        /// The node.
        node_id: String,
        /// The field at fault (a JSON pointer-ish path, or the field name).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A pinned result handed in for a run does not fit its node.
    #[error("node `{node_id}`: pinned result: {message}")]
    InvalidPinnedResult {
        /// The node.
        node_id: String,
        /// What does not fit.
        message: String,
    },
    /// A resumed result handed in without a key ([`crate::RunOptions::resumed`]) does not fit
    /// its node: what it passes on (its selected generation) sits on a handle the node lacks,
    /// or is of a type its output does not carry; or its selection is out of range. The node
    /// changed since the result was recorded, or the record was altered. Leaving it out
    /// executes the node again. (A result with its key is used only while the key matches.)
    #[error("node `{node_id}`: resumed result: {message}")]
    InvalidResumedResult {
        /// The node.
        node_id: String,
        /// What does not fit.
        message: String,
    },
    /// An edit named a node that does not exist.
    #[error("node `{node_id}` does not exist")]
    NodeNotFound {
        /// The node id.
        node_id: String,
    },
    /// An edit named a handle that does not exist.
    #[error("handle `{handle_id}` does not exist")]
    HandleNotFound {
        /// The handle id.
        handle_id: String,
    },
    /// An edit named an edge that does not exist.
    #[error("edge `{edge_id}` does not exist")]
    EdgeNotFound {
        /// The edge id.
        edge_id: String,
    },
    /// A variable handle was added to a node type that does not allow it, or of a type it
    /// does not allow.
    #[error("node `{node_id}` (type `{node_type}`): {message}")]
    VariableHandleNotAllowed {
        /// The node.
        node_id: String,
        /// Its type.
        node_type: String,
        /// What is not allowed.
        message: String,
    },
}

/// Every problem found in a workflow, in the order found. Prints one problem per line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    /// How many problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems.
    pub fn iter(&self) -> std::slice::Iter<'_, ValidationError> {
        self.0.iter()
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "- {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl IntoIterator for ValidationErrors {
    type Item = ValidationError;
    type IntoIter = std::vec::IntoIter<ValidationError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
