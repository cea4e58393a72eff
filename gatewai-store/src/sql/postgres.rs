//! The PostgreSQL backend.

use super::*;
use crate::store::redact;
use sqlx::postgres::{PgPool, PgPoolOptions, Postgres};

/// Connections of the pool.
const CONNECTIONS: u32 = 10;

/// A store in a PostgreSQL database: JSON columns are `JSONB`, timestamps `TIMESTAMPTZ`;
/// concurrent writers are serialized by the database's row locks.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    read: PgPool,
    write: PgPool,
}

impl PostgresBackend {
    /// Connects to the database a `postgres://` URL names and applies the migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .connect(url)
            .await
            .map_err(|e| match e {
                sqlx::Error::Configuration(message) => Error::InvalidUrl {
                    url: redact(url),
                    message: message.to_string(),
                },
                other => Error::Database(other),
            })?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        tracing::debug!(url = %redact(url), "opened PostgreSQL store");
        Ok(PostgresBackend {
            read: pool.clone(),
            write: pool,
        })
    }
}

sql_backend!(PostgresBackend, Postgres, BackendKind::Postgres);
