//! The hosts' error type: one enum for the command-line runner and the server, with the HTTP
//! status and JSON body (`{ "error": "...", "details": ... }`) each variant maps to.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gatewai_core::{ErrorKind, NodeError, ValidationErrors};
use serde_json::{Value, json};
use std::path::PathBuf;

/// `Result` with the hosts' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the example hosts report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The workflow is invalid; every problem is listed (HTTP 422).
    #[error("invalid workflow ({n} problem{s}):\n{problems}", n = .0.len(), s = if .0.len() == 1 { "" } else { "s" }, problems = .0)]
    Invalid(ValidationErrors),
    /// A request or an argument is malformed: bad JSON, a missing field, a bad `--input`
    /// (HTTP 400).
    #[error("{message}")]
    BadRequest {
        /// What is wrong, naming the field at fault.
        message: String,
    },
    /// No credentials, or credentials that were not accepted (HTTP 401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The thing does not exist or is not the caller's (never told apart; HTTP 404).
    #[error("{entity} `{id}` not found")]
    NotFound {
        /// What was looked for (`"workflow"`, `"run"`, `"asset"`).
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The request body is larger than the route allows (HTTP 413).
    #[error("request body too large (the limit is {limit} bytes)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The route has no handler for the request's method (HTTP 405; axum adds the `Allow`
    /// header naming those it has).
    #[error("method {method} is not allowed on `{path}`")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The request's path, quoted briefly.
        path: String,
    },
    /// The server is shutting down and starts no new runs (HTTP 503).
    #[error("the server is shutting down")]
    ShuttingDown,
    /// A program the workflow needs is not installed.
    #[error(
        "`{program}` is not installed; install it with `apt-get install {package}` (Debian/Ubuntu) or `brew install {package}` (macOS)"
    )]
    MissingProgram {
        /// The program.
        program: &'static str,
        /// The package providing it.
        package: &'static str,
    },
    /// A node calls an AI provider whose API key is not set.
    #[error(
        "node `{node_id}` ({node_type}) calls {provider}, but {variable} is not set: export {variable}=<your key> and run again"
    )]
    MissingApiKey {
        /// The node.
        node_id: String,
        /// Its type.
        node_type: String,
        /// The provider (`"Gemini"`).
        provider: &'static str,
        /// The environment variable holding the key.
        variable: &'static str,
    },
    /// The engine or the model reported an error.
    #[error(transparent)]
    Core(gatewai_core::Error),
    /// A node called directly (the LLM endpoint) failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The store reported an error.
    #[error(transparent)]
    Store(#[from] gatewai_store::Error),
    /// Local file I/O failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something the host was configured with is wrong (a bad `DATABASE_URL`, a missing
    /// secret).
    #[error("configuration: {0}")]
    Config(String),
}

impl From<gatewai_core::Error> for Error {
    fn from(error: gatewai_core::Error) -> Self {
        match error {
            gatewai_core::Error::Invalid(problems) => Error::Invalid(problems),
            other => Error::Core(other),
        }
    }
}

impl From<ValidationErrors> for Error {
    fn from(problems: ValidationErrors) -> Self {
        Error::Invalid(problems)
    }
}

impl Error {
    /// A bad-request error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest {
            message: message.into(),
        }
    }

    /// A not-found error. The id is usually the request's own (a URL's path): it is quoted
    /// at most [`gatewai_core::error::MAX_SHOWN`] characters long, control characters escaped.
    pub fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            entity,
            id: gatewai_core::error::shown(&id.into()),
        }
    }

    /// An I/O error on a path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::MissingProgram { .. } | Error::MissingApiKey { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Core(e) => status_of_kind(e.kind()),
            Error::Node(e) => status_of_kind(e.kind()),
            Error::Store(e) => match e.kind() {
                gatewai_store::ErrorKind::NotFound => StatusCode::NOT_FOUND,
                gatewai_store::ErrorKind::Conflict => StatusCode::CONFLICT,
                gatewai_store::ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
                gatewai_store::ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Error::Io { .. } | Error::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{ "error": message, "details": ... }`. Validation errors list every
    /// problem in `details`; server-side failures (5xx) keep their internals out of the body.
    pub fn body(&self) -> Value {
        match self {
            Error::Invalid(problems) => json!({
                "error": format!("invalid workflow: {} problem{}", problems.len(), if problems.len() == 1 { "" } else { "s" }),
                "details": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            }),
            Error::PayloadTooLarge { limit } => json!({
                "error": self.to_string(),
                "details": { "limit": limit },
            }),
            Error::Core(gatewai_core::Error::Node { node_id, source }) => json!({
                "error": self.to_string(),
                "details": { "nodeId": node_id, "kind": source.kind().to_string() },
            }),
            Error::Node(e) => json!({
                "error": e.message(),
                "details": { "kind": e.kind().to_string() },
            }),
            Error::Io { .. } | Error::Config(_) => json!({
                "error": "internal server error",
                "details": Value::Null,
            }),
            Error::Store(e)
                if matches!(
                    e.kind(),
                    gatewai_store::ErrorKind::Internal
                        | gatewai_store::ErrorKind::Io
                        | gatewai_store::ErrorKind::Corrupt
                        | gatewai_store::ErrorKind::Unavailable
                ) =>
            {
                json!({ "error": "storage error", "details": Value::Null })
            }
            _ => json!({ "error": self.to_string(), "details": Value::Null }),
        }
    }
}

/// The HTTP status of a failure kind of the engine or a node.
fn status_of_kind(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidConfig | ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable | ErrorKind::Refused => StatusCode::BAD_GATEWAY,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Unauthorized | ErrorKind::Unsupported => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        (status, axum::Json(self.body())).into_response()
    }
}
