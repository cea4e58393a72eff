//! The crate's error type, and how messages quote untrusted values ([`shown`]).

use std::fmt;

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
