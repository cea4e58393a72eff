//! The SQLite backend.

use super::*;
use crate::store::redact;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections (WAL lets them read while the writer writes).
const READERS: u32 = 4;

/// A store in a SQLite file: WAL journal (readers never wait for the writer), `synchronous =
/// NORMAL` (a commit survives a process crash; a power cut may lose the last commits),
/// foreign keys on, and all writes through a single connection, so that writers queue in the
/// process instead of failing with "database is locked".
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    read: SqlitePool,
    write: SqlitePool,
}

impl SqliteBackend {
    /// Opens (with `mode=rwc`, creates) the database a `sqlite://` URL names and applies the
    /// migrations. `sqlite::memory:` opens a private in-memory database.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::InvalidUrl {
                url: redact(url),
                message: e.to_string(),
            })?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1);
        if in_memory {
            // The database lives as long as its one connection: never recycle it.
            writer = writer.idle_timeout(None).max_lifetime(None);
        }
        let write = writer.connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let read = if in_memory {
            // Every connection to `:memory:` is a database of its own: share the one.
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await?
        };
        tracing::debug!(url = %redact(url), "opened SQLite store");
        Ok(SqliteBackend { read, write })
    }
}

sql_backend!(SqliteBackend, Sqlite, BackendKind::Sqlite);
