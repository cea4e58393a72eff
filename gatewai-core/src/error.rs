//! The crate's errors: [`Error`] for everything the engine and the model report, [`NodeError`]
//! for what a node's execution returns, and [`ValidationError`] for one problem in a workflow.

use crate::model::{DataTypeSet, HandleType};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most characters of an untrusted value (a config value, a URL) a message quotes.
pub const MAX_SHOWN: usize = 200;

/// `value` as `Display` writes it, for a message: at most [`MAX_SHOWN`] characters, then `…`.
/// A config value or a URL comes from untrusted input and may be megabytes long; the value is
/// never written out further than the limit (a huge JSON array costs no more than a short one).
/// Control characters are escaped (`\n`, `\u{1b}`), so that untrusted text cannot start a new
/// log line or move a terminal's cursor.
pub fn shown(value: &impl fmt::Display) -> String {
    shown_up_to(value, MAX_SHOWN)
}

/// [`shown`] with a limit of `max` characters (an escaped control character counts as the
/// characters of its escape).
pub fn shown_up_to(value: &impl fmt::Display, max: usize) -> String {
    /// Keeps the first `max` characters, control characters escaped, and stops the writer
    /// after them.
    struct Limited {
        out: String,
        left: usize,
        cut: bool,
    }
    impl Limited {
        fn push(&mut self, c: char) -> fmt::Result {
            if self.left == 0 {
                self.cut = true;
                return Err(fmt::Error);
            }
            self.out.push(c);
            self.left -= 1;
            Ok(())
        }
    }
    impl fmt::Write for Limited {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for c in s.chars() {
                if c.is_control() {
                    for escaped in c.escape_default() {
                        self.push(escaped)?;
                    }
                } else {
                    self.push(c)?;
                }
            }
            Ok(())
        }
    }
    let mut limited = Limited {
        out: String::new(),
        left: max,
        cut: false,
    };
    // An error here is the limit stopping the writer.
    let _ = fmt::write(&mut limited, format_args!("{value}"));
    if limited.cut {
        limited.out.push('…');
    }
    limited.out
}

/// The most characters of a serde error a message quotes: serde's message quotes the value it
/// could not read, which a document or a config can make megabytes long.
pub(crate) const MAX_SERDE_SHOWN: usize = 400;

/// The most items of an untrusted list (ids on a cycle, edges into one input) a message names.
pub const MAX_LISTED: usize = 20;

/// `items` for a message, joined by `separator`: each [`shown`], at most [`MAX_LISTED`] of
/// them, then how many more there are.
pub fn shown_list(items: &[String], separator: &str) -> String {
    let shown: Vec<String> = items.iter().take(MAX_LISTED).map(shown).collect();
    let mut out = shown.join(separator);
    if items.len() > MAX_LISTED {
        out.push_str(&format!("{separator}… ({} more)", items.len() - MAX_LISTED));
    }
    out
}

/// The most problems one message lists (the error values themselves keep them all).
pub const MAX_PROBLEMS_LISTED: usize = 50;

/// Problems (messages already written) for one message, joined by `separator`: at most
/// [`MAX_PROBLEMS_LISTED`] of them, then how many more there are.
pub(crate) fn listed(problems: &[String], separator: &str) -> String {
    let mut out = problems[..problems.len().min(MAX_PROBLEMS_LISTED)].join(separator);
    if problems.len() > MAX_PROBLEMS_LISTED {
        out.push_str(&format!(
            "{separator}… ({} more problems)",
            problems.len() - MAX_PROBLEMS_LISTED
        ));
    }
    out
}

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
    #[error("node {node_id}: {source}", node_id = crate::error::shown(.node_id))]
    Node {
        /// The node at fault.
        node_id: String,
        /// Its error.
        source: NodeError,
    },
    /// An asset store operation failed.
    #[error("asset {key}: {message}", key = crate::error::shown(.key))]
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
    #[error("node `{node_id}`: unknown node type `{node_type}`", node_id = crate::error::shown(.node_id), node_type = crate::error::shown(.node_type))]
    UnknownNodeType {
        /// The node.
        node_id: String,
        /// Its type.
        node_type: String,
    },
    /// A node of a type no template answers to was asked for (adding a node to a document);
    /// a node already in a document is named by [`ValidationError::UnknownNodeType`].
    #[error("unknown node type `{node_type}`", node_type = crate::error::shown(.node_type))]
    UnregisteredNodeType {
        /// The type asked for.
        node_type: String,
    },
    /// A node id is empty or holds a control character (a NUL, a line break, …): ids name
    /// nodes in records, logs and URLs, where such characters cannot go.
    #[error("node id `{node_id}` is not a valid id: {reason}", node_id = crate::error::shown(.node_id))]
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
    #[error("node id `{node_id}` is used by more than one node", node_id = crate::error::shown(.node_id))]
    DuplicateNodeId {
        /// The id.
        node_id: String,
    },
    /// Two handles share an id.
    #[error("handle id `{handle_id}` is used by more than one handle", handle_id = crate::error::shown(.handle_id))]
    DuplicateHandleId {
        /// The id.
        handle_id: String,
    },
    /// A second handle of one node names the same handle of the node's template: which of
    /// the two a value on that template handle belongs to is undecidable (a variable handle,
    /// which the user adds, names none).
    #[error("node `{node_id}`: handle `{handle_id}` is a second instance of template handle `{template_handle_id}`", node_id = crate::error::shown(.node_id), handle_id = crate::error::shown(.handle_id), template_handle_id = crate::error::shown(.template_handle_id))]
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
    #[error("node `{node_id}`: handle `{handle_id}` is an {handle_type:?} but names template handle `{template_handle_id}`, which is not", node_id = crate::error::shown(.node_id), handle_id = crate::error::shown(.handle_id), template_handle_id = crate::error::shown(.template_handle_id))]
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
    #[error("edge id `{edge_id}` is used by more than one edge", edge_id = crate::error::shown(.edge_id))]
    DuplicateEdgeId {
        /// The id.
        edge_id: String,
    },
    /// Two edges join the same pair of handles.
    #[error("edge `{edge_id}` duplicates edge `{other_edge_id}` (same source and target handles)", edge_id = crate::error::shown(.edge_id), other_edge_id = crate::error::shown(.other_edge_id))]
    DuplicateEdge {
        /// The later edge.
        edge_id: String,
        /// The earlier edge.
        other_edge_id: String,
    },
    /// A handle belongs to a node that does not exist.
    #[error("handle `{handle_id}` belongs to missing node `{node_id}`", handle_id = crate::error::shown(.handle_id), node_id = crate::error::shown(.node_id))]
    OrphanHandle {
        /// The handle.
        handle_id: String,
        /// The missing node.
        node_id: String,
    },
    /// An edge names a node that does not exist.
    #[error("edge `{edge_id}`: {end} node `{node_id}` does not exist", edge_id = crate::error::shown(.edge_id), node_id = crate::error::shown(.node_id))]
    MissingNode {
        /// The edge.
        edge_id: String,
        /// `"source"` or `"target"`.
        end: &'static str,
        /// The missing node.
        node_id: String,
    },
    /// An edge names a handle that does not exist or is not on the named node.
    #[error("edge `{edge_id}`: {end} handle `{handle_id}` does not exist on node `{node_id}`", edge_id = crate::error::shown(.edge_id), handle_id = crate::error::shown(.handle_id), node_id = crate::error::shown(.node_id))]
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
    #[error("edge `{edge_id}`: {end} handle `{handle_id}` on node `{node_id}` is an {actual:?} handle", edge_id = crate::error::shown(.edge_id), handle_id = crate::error::shown(.handle_id), node_id = crate::error::shown(.node_id))]
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
    #[error("edge `{edge_id}`: output `{source_handle_id}` of node `{source_node}` produces {produced}, but input `{target_handle_id}` of node `{target_node}` accepts {accepted}", edge_id = crate::error::shown(.edge_id), source_handle_id = crate::error::shown(.source_handle_id), source_node = crate::error::shown(.source_node), target_handle_id = crate::error::shown(.target_handle_id), target_node = crate::error::shown(.target_node))]
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
    #[error("input `{handle_id}` of node `{node_id}` takes one edge but has {count}: {}", crate::error::shown_list(.edge_ids, ", "), handle_id = crate::error::shown(.handle_id), node_id = crate::error::shown(.node_id))]
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
    #[error("cycle through nodes {}", crate::error::shown_list(.node_ids, " -> "))]
    Cycle {
        /// The nodes on the cycle, in order.
        node_ids: Vec<String>,
    },
    /// A required input has no edge.
    #[error("required input `{label}` (`{handle_id}`) of node `{node_id}` is not connected", label = crate::error::shown(.label), handle_id = crate::error::shown(.handle_id), node_id = crate::error::shown(.node_id))]
    RequiredInputUnconnected {
        /// The node.
        node_id: String,
        /// The input handle.
        handle_id: String,
        /// Its label.
        label: String,
    },
    /// The node's type rejects its config.
    #[error("node `{node_id}`: config field `{field}`: {message}", node_id = crate::error::shown(.node_id), field = crate::error::shown(.field))]
    InvalidConfig {
        /// The node.
        node_id: String,
        /// The field at fault (a JSON pointer-ish path, or the field name).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A pinned result handed in for a run does not fit its node.
    #[error("node `{node_id}`: pinned result: {message}", node_id = crate::error::shown(.node_id))]
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
    #[error("node `{node_id}`: resumed result: {message}", node_id = crate::error::shown(.node_id))]
    InvalidResumedResult {
        /// The node.
        node_id: String,
        /// What does not fit.
        message: String,
    },
    /// An edit named a node that does not exist.
    #[error("node `{node_id}` does not exist", node_id = crate::error::shown(.node_id))]
    NodeNotFound {
        /// The node id.
        node_id: String,
    },
    /// An edit named a handle that does not exist.
    #[error("handle `{handle_id}` does not exist", handle_id = crate::error::shown(.handle_id))]
    HandleNotFound {
        /// The handle id.
        handle_id: String,
    },
    /// An edit named an edge that does not exist.
    #[error("edge `{edge_id}` does not exist", edge_id = crate::error::shown(.edge_id))]
    EdgeNotFound {
        /// The edge id.
        edge_id: String,
    },
    /// A variable handle was added to a node type that does not allow it, or of a type it
    /// does not allow.
    #[error("node `{node_id}` (type `{node_type}`): {message}", node_id = crate::error::shown(.node_id), node_type = crate::error::shown(.node_type))]
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

/// One problem per line, at most [`MAX_PROBLEMS_LISTED`] of them, then how many more (the
/// value keeps every problem).
impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(MAX_PROBLEMS_LISTED).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "- {e}")?;
        }
        if self.0.len() > MAX_PROBLEMS_LISTED {
            write!(
                f,
                "\n- … ({} more problems)",
                self.0.len() - MAX_PROBLEMS_LISTED
            )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_stop_at_the_limit() {
        assert_eq!(shown(&"short"), "short");
        assert_eq!(shown_up_to(&"abcdef", 6), "abcdef");
        assert_eq!(shown_up_to(&"abcdefg", 6), "abcdef…");
        // Characters, not bytes: no multi-byte character is split.
        assert_eq!(shown_up_to(&"ééééé", 3), "ééé…");
        // Control characters escaped: no new log line, no terminal escape.
        assert_eq!(shown(&"a\nb\r\tc\u{1b}[31m"), "a\\nb\\r\\tc\\u{1b}[31m");
        assert_eq!(shown_up_to(&"ab\ncd", 3), "ab\\…");
        let huge = serde_json::Value::Array(vec![serde_json::json!(123456789); 100_000]);
        let text = shown(&huge);
        assert_eq!(text.chars().count(), MAX_SHOWN + 1);
        assert!(text.starts_with("[123456789,123456789,") && text.ends_with('…'));
    }

    #[test]
    fn shown_lists_stop_at_the_limit() {
        let ids: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
        assert_eq!(shown_list(&ids[..2], " -> "), "n0 -> n1");
        let listed = shown_list(&ids, ", ");
        assert!(listed.starts_with("n0, n1, ") && listed.ends_with("n19, … (5 more)"));
        assert_eq!(
            shown_list(&["x".repeat(300)], ", ").chars().count(),
            MAX_SHOWN + 1
        );
    }

    /// The writer stops at the limit: a value written piece by piece is not written out.
    #[test]
    fn a_long_value_is_not_written_past_the_limit() {
        struct Pieces(std::cell::Cell<usize>);
        impl fmt::Display for Pieces {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for _ in 0..1_000_000 {
                    self.0.set(self.0.get() + 1);
                    f.write_str("xy")?;
                }
                Ok(())
            }
        }
        let pieces = Pieces(std::cell::Cell::new(0));
        assert_eq!(shown_up_to(&pieces, 7), "xyxyxyx…");
        assert_eq!(pieces.0.get(), 4, "pieces written");
    }
}
