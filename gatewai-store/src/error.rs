//! The crate's error type.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The row does not exist, or belongs to another owner (never told apart, so that a caller
    /// cannot probe for other users' ids). The message quotes the id briefly, control
    /// characters escaped (it is often a request's own); `id` keeps it whole.
    #[error("{entity} `{}` not found", gatewai_core::error::shown(id))]
    NotFound {
        /// What was looked for (`"workflow"`, `"run"`, `"user"`, …).
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// A row with this id already exists.
    #[error("{entity} `{}` already exists", gatewai_core::error::shown(id))]
    Conflict {
        /// What was created (`"workflow"`, `"run"`, …).
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The store URL could not be understood.
    #[error("invalid store URL `{url}`: {message}")]
    InvalidUrl {
        /// The URL (with any password replaced by `***`).
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The URL names a backend this build does not include.
    #[error("store backend `{scheme}` needs the `{feature}` feature of gatewai-store")]
    BackendDisabled {
        /// The URL scheme.
        scheme: String,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// A stored value cannot be read back (malformed JSON, an unknown status name, …).
    #[error("{table} row `{row}`, column `{column}`: {message}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's id.
        row: String,
        /// The column.
        column: &'static str,
        /// What is wrong with the value.
        message: String,
    },
    /// An argument is invalid (an empty id, a page limit of 0, …).
    #[error("invalid {field}: {message}")]
    InvalidInput {
        /// The argument or field at fault.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An asset key that could escape the store's root or is otherwise not a key this store
    /// made (`..`, an absolute path, odd characters).
    #[error("asset key `{key}` rejected: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// An asset is larger than a bounded read allows
    /// ([`AssetStore::read_limited`](gatewai_core::AssetStore::read_limited)); refused before
    /// more than `max_bytes` of it were read. Becomes core's
    /// [`AssetTooLarge`](gatewai_core::Error::AssetTooLarge) through the `AssetStore` trait.
    #[error("asset `{id}`{} is larger than the {max_bytes}-byte limit", size.map(|n| format!(" ({n} bytes)")).unwrap_or_default())]
    AssetTooLarge {
        /// The asset's id.
        id: String,
        /// The limit, in bytes.
        max_bytes: u64,
        /// Its size when known before reading (its record, the file's or object's metadata);
        /// `None` when reading ran past the limit.
        size: Option<u64>,
    },
    /// A value could not be serialized for storage.
    #[error("cannot serialize {what}: {source}")]
    Serialize {
        /// What was being serialized.
        what: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
    /// Local file I/O failed.
    #[error("i/o on `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The database reported an error.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A schema migration failed.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[error("schema migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The object store reported an error.
    #[cfg(feature = "s3")]
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

/// The kind of an [`Error`], to map it to a response (404, 409, 400, 503, 500) without
/// matching on variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The thing does not exist (or is not the caller's).
    NotFound,
    /// The thing already exists.
    Conflict,
    /// The caller passed something invalid.
    InvalidInput,
    /// Stored data cannot be read back.
    Corrupt,
    /// The database or object store is unreachable or busy; a retry may help.
    Unavailable,
    /// This build or backend cannot do it.
    Unsupported,
    /// Local I/O failed.
    Io,
    /// Anything else.
    Internal,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::InvalidUrl { .. }
            | Error::InvalidInput { .. }
            | Error::InvalidKey { .. }
            | Error::AssetTooLarge { .. } => ErrorKind::InvalidInput,
            Error::BackendDisabled { .. } => ErrorKind::Unsupported,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Serialize { .. } => ErrorKind::Internal,
            Error::Io { .. } => ErrorKind::Io,
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Error::Database(e) => database_kind(e),
            #[cfg(any(feature = "sqlite", feature = "postgres"))]
            Error::Migrate(_) => ErrorKind::Internal,
            #[cfg(feature = "s3")]
            Error::ObjectStore(e) => match e {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                object_store::Error::AlreadyExists { .. } => ErrorKind::Conflict,
                object_store::Error::NotSupported { .. } | object_store::Error::NotImplemented => {
                    ErrorKind::Unsupported
                }
                _ => ErrorKind::Unavailable,
            },
        }
    }

    /// A not-found error.
    pub(crate) fn not_found(entity: &'static str, id: impl Into<String>) -> Self {
        Error::NotFound {
            entity,
            id: id.into(),
        }
    }

    /// A run that already ended (`status`, when known), where only a run left running can
    /// be resumed or marked interrupted.
    pub(crate) fn run_already_ended(run_id: &str, status: Option<gatewai_core::RunStatus>) -> Self {
        let ended = status.map_or_else(String::new, |s| format!(" {}", s.as_str()));
        Error::InvalidInput {
            field: "run_id",
            message: format!(
                "run `{run_id}` already ended{ended}: only a run left running can be resumed or marked interrupted"
            ),
        }
    }

    /// A stored value that cannot be read back.
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn corrupt(
        table: &'static str,
        row: impl Into<String>,
        column: &'static str,
        message: impl std::fmt::Display,
    ) -> Self {
        Error::Corrupt {
            table,
            row: row.into(),
            column,
            message: message.to_string(),
        }
    }

    /// The matching `gatewai-core` error, for the asset stores.
    #[cfg(any(feature = "fs", feature = "s3"))]
    pub(crate) fn into_core_asset_error(self, key: &str) -> gatewai_core::Error {
        if let Error::AssetTooLarge {
            id,
            max_bytes,
            size,
        } = self
        {
            return gatewai_core::Error::asset_too_large(id, max_bytes, size);
        }
        let kind = match self.kind() {
            ErrorKind::NotFound => gatewai_core::ErrorKind::NotFound,
            ErrorKind::InvalidInput => gatewai_core::ErrorKind::InvalidInput,
            ErrorKind::Unavailable => gatewai_core::ErrorKind::Unavailable,
            ErrorKind::Unsupported => gatewai_core::ErrorKind::Unsupported,
            ErrorKind::Io => gatewai_core::ErrorKind::Io,
            _ => gatewai_core::ErrorKind::Internal,
        };
        gatewai_core::Error::asset(key, kind, self.to_string())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn database_kind(e: &sqlx::Error) -> ErrorKind {
    match e {
        sqlx::Error::RowNotFound => ErrorKind::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        sqlx::Error::Configuration(_) => ErrorKind::InvalidInput,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::Corrupt,
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => ErrorKind::Conflict,
            sqlx::error::ErrorKind::ForeignKeyViolation => ErrorKind::NotFound,
            sqlx::error::ErrorKind::NotNullViolation | sqlx::error::ErrorKind::CheckViolation => {
                ErrorKind::InvalidInput
            }
            _ if db.message().contains("locked") || db.message().contains("busy") => {
                ErrorKind::Unavailable
            }
            _ if is_postgres_transient(db.as_ref()) => ErrorKind::Unavailable,
            _ if is_sqlite_io_failure(db.as_ref()) => ErrorKind::Io,
            _ => ErrorKind::Internal,
        },
        _ => ErrorKind::Internal,
    }
}

/// Whether a database error is PostgreSQL saying that the same statement may succeed later:
/// a connection failure (class 08), a serialization failure or deadlock (40001, 40P01), a
/// lock not available in time (55P03), the server shutting down or starting (57P01–57P03),
/// too many connections or resources short (53000, 53300), or a read-only transaction (25006,
/// a primary turned standby during a failover).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn is_postgres_transient(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    code.len() == 5
        && (code.starts_with("08")
            || matches!(
                &*code,
                "40001"
                    | "40P01"
                    | "55P03"
                    | "57P01"
                    | "57P02"
                    | "57P03"
                    | "53000"
                    | "53300"
                    | "25006"
            ))
}

/// Whether a database error is SQLite failing to open, read or write its file (CANTOPEN,
/// IOERR, FULL, READONLY). SQLite's result codes are short decimal numbers (extended codes
/// carry the primary one in their low byte); PostgreSQL's SQLSTATEs are five characters.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn is_sqlite_io_failure(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    code.len() < 5
        && code
            .parse::<i32>()
            .is_ok_and(|c| matches!(c & 0xff, 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id a caller sent is quoted briefly and escaped in the message, and kept whole in the
    /// error for code that matches on it.
    #[test]
    fn messages_quote_ids_briefly() {
        let id = format!("{}\nforged", "x".repeat(5_000));
        for error in [
            Error::not_found("workflow", id.clone()),
            Error::Conflict {
                entity: "workflow",
                id: id.clone(),
            },
        ] {
            let message = error.to_string();
            assert!(message.len() < 300, "{} characters", message.len());
            assert!(!message.contains('\n'), "{message}");
            match error {
                Error::NotFound { id: kept, .. } | Error::Conflict { id: kept, .. } => {
                    assert_eq!(kept, id)
                }
                _ => unreachable!(),
            }
        }
    }
}
