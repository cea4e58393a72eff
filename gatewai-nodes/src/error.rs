//! The crate's error type, and how messages quote untrusted values ([`shown`], core's own,
//! re-exported here).

pub use gatewai_core::error::{MAX_SHOWN, shown, shown_up_to};

/// Errors of the built-in nodes' helpers (fetching, decoding, providers). Nodes turn them into
/// [`gatewai_core::NodeError`]s with the right kind.
///
/// The URLs the fetch errors hold are redacted (`fetch::redact_url`): no credentials, and no
/// query or fragment values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A catch-all while the crate grows.
    #[error("{0}")]
    Other(String),
    /// A URL that cannot be fetched as given (bad syntax, not http(s), no host).
    #[error("cannot fetch `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A URL whose host is (or resolves to) a private, loopback, link-local or otherwise
    /// non-public address, refused by the fetch policy.
    #[error("refused to fetch `{url}`: {ip} is not a public address")]
    BlockedAddress {
        /// The URL (the redirect hop that was refused).
        url: String,
        /// The address that is not allowed.
        ip: std::net::IpAddr,
    },
    /// A download larger than the fetch policy allows.
    #[error("`{url}` is larger than the {max_bytes}-byte limit")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        max_bytes: u64,
    },
    /// A server answered with an error status.
    #[error("`{url}` answered HTTP {status}")]
    HttpStatus {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// A connection, DNS or transfer failure.
    #[error("cannot fetch `{url}`: {message}")]
    Network {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A fetch ran past the policy's timeout.
    #[error("fetching `{url}` took longer than {seconds} s")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout in seconds.
        seconds: f64,
    },
    /// A chain of redirects longer than the policy allows.
    #[error("`{url}`: more than {max} redirects")]
    TooManyRedirects {
        /// The URL first asked for.
        url: String,
        /// The limit.
        max: usize,
    },
}

impl Error {
    /// What kind of failure this is (for retry policies and error reports).
    pub fn kind(&self) -> gatewai_core::ErrorKind {
        use gatewai_core::ErrorKind;
        match self {
            Error::Other(_) => ErrorKind::Internal,
            Error::BadUrl { .. }
            | Error::BlockedAddress { .. }
            | Error::TooLarge { .. }
            | Error::TooManyRedirects { .. } => ErrorKind::InvalidInput,
            Error::HttpStatus { status, .. } => match status {
                401 | 403 => ErrorKind::Unauthorized,
                404 | 410 => ErrorKind::NotFound,
                429 => ErrorKind::RateLimited,
                500..=599 => ErrorKind::Unavailable,
                _ => ErrorKind::InvalidInput,
            },
            Error::Network { .. } => ErrorKind::Unavailable,
            Error::Timeout { .. } => ErrorKind::Timeout,
        }
    }

    /// A node error of the right kind naming the config field or handle (`what`) at fault.
    pub fn into_node_error(self, what: &str) -> gatewai_core::NodeError {
        let kind = self.kind();
        gatewai_core::NodeError::new(kind, format!("`{what}`: {self}")).with_source(self)
    }
}
