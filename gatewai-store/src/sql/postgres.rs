//! The PostgreSQL backend.

use super::*;
use crate::store::redact;
use crate::write_plan::Progress;
use chrono::SubsecRound;
use sqlx::postgres::{PgArguments, PgConnection, PgPool, PgPoolOptions, Postgres};

/// Connections of the pool.
const CONNECTIONS: u32 = 10;

/// A store in a PostgreSQL database: JSON columns are `JSON` (kept as written: the store reads
/// and writes them whole, and `JSONB` refuses the `\u0000` of a string's NUL character),
/// timestamps `TIMESTAMPTZ`; concurrent writers are serialized by the database's row locks.
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

/// Inserts or replaces node executions of one run (`$1`), a column of values per parameter;
/// a queued record never replaces a completed one (a resumed run queues again the nodes whose
/// earlier results it reuses, see `BatchWrite::StartRun`).
const UPSERT_EXECUTIONS: &str = "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status, \
     input_data, output_data, error, cached, started_at, finished_at, duration_ms, attempts, cache_key) \
     SELECT $1, u.n, u.q, u.t, u.l, u.s, u.i::json, u.o::json, u.e, u.c, u.a, u.f, u.d, u.k, u.h \
     FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
     $9::text[], $10::bool[], $11::timestamptz[], $12::timestamptz[], $13::int8[], $14::int4[], \
     $15::text[]) AS u(n, q, t, l, s, i, o, e, c, a, f, d, k, h) \
     ON CONFLICT (run_id, node_id) DO UPDATE SET node_type = excluded.node_type, \
     node_label = excluded.node_label, status = excluded.status, input_data = excluded.input_data, \
     output_data = excluded.output_data, error = excluded.error, cached = excluded.cached, \
     started_at = excluded.started_at, finished_at = excluded.finished_at, \
     duration_ms = excluded.duration_ms, attempts = excluded.attempts, \
     cache_key = excluded.cache_key \
     WHERE node_executions.status <> 'COMPLETED' OR excluded.status <> 'QUEUED'";

/// The node executions of the runs whose ids `$1` (an array) holds, by run and queue order.
const RUNS_EXECUTIONS: &str = "SELECT run_id, node_id, seq, node_type, node_label, status, \
     input_data, output_data, error, cached, started_at, finished_at, duration_ms, attempts, \
     cache_key FROM node_executions WHERE run_id = ANY($1::text[]) ORDER BY run_id, seq, node_id";

/// Updates running executions of one run (`$1`), keeping the columns it does not name; a
/// missing row is created (with an empty type and label until the node's full record is
/// written).
const UPSERT_PROGRESS: &str = "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status, \
     error, started_at, attempts) \
     SELECT $1, u.n, u.q, '', '', u.s, u.e, u.a, u.k \
     FROM UNNEST($2::text[], $3::int8[], $4::text[], $5::text[], $6::timestamptz[], $7::int4[]) \
     AS u(n, q, s, e, a, k) \
     ON CONFLICT (run_id, node_id) DO UPDATE SET status = excluded.status, \
     error = excluded.error, started_at = excluded.started_at, attempts = excluded.attempts";

/// A JSON column's value as text (the statement casts it to `JSON`).
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|source| Error::Serialize {
        what: "a node execution",
        source,
    })
}

impl PostgresBackend {
    /// Notes rows committed by the recorder: nothing to do (the server checkpoints).
    fn wrote(&self, _rows: usize) {}

    /// Stores a batch's steps, in order, in one transaction.
    async fn store_steps(&self, steps: Vec<Step<'_>>) -> Result<()> {
        let mut tx = self.write.begin().await?;
        for step in steps {
            match step {
                Step::Statement(piece) => {
                    let mut args = PgArguments::default();
                    Self::bind_args(&mut args, piece.args)?;
                    sqlx::query_with::<Postgres, _>(piece.sql, args)
                        .execute(&mut *tx)
                        .await?;
                }
                Step::Executions(rows) => Self::write_executions(&mut tx, &rows).await?,
                Step::Progress(rows) => Self::write_progress(&mut tx, &rows).await?,
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts or replaces node executions: one statement per run, its rows bound as one
    /// array per column (one round trip and one cached prepared statement whatever the row
    /// count; no per-row parameters for the server to plan).
    async fn write_executions(
        conn: &mut PgConnection,
        rows: &[(i64, &NodeExecution)],
    ) -> Result<()> {
        for rows in rows.chunk_by(|(_, a), (_, b)| a.run_id == b.run_id) {
            let n = rows.len();
            let (mut ids, mut seqs, mut types, mut labels, mut statuses) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut inputs, mut outputs, mut errors, mut cached) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            let (mut started, mut finished, mut durations, mut attempts, mut keys) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for (seq, r) in rows {
                ids.push(&*r.node_id);
                seqs.push(*seq);
                types.push(&*r.node_type);
                labels.push(&*r.label);
                statuses.push(r.status.as_str());
                inputs.push(r.input.as_ref().map(json_text).transpose()?);
                outputs.push(r.output.as_deref().map(json_text).transpose()?);
                errors.push(r.error.as_deref());
                cached.push(r.cached);
                started.push(r.started_at.map(|t| t.trunc_subsecs(6)));
                finished.push(r.finished_at.map(|t| t.trunc_subsecs(6)));
                durations.push(r.duration_ms.map(to_i64));
                attempts.push(to_i32(r.attempts));
                keys.push(r.cache_key.map(|k| k.to_hex()));
            }
            sqlx::query(UPSERT_EXECUTIONS)
                .bind(&*rows[0].1.run_id)
                .bind(ids)
                .bind(seqs)
                .bind(types)
                .bind(labels)
                .bind(statuses)
                .bind(inputs)
                .bind(outputs)
                .bind(errors)
                .bind(cached)
                .bind(started)
                .bind(finished)
                .bind(durations)
                .bind(attempts)
                .bind(keys)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Ended runs whose ids `$1` (an array) holds, for a prune: a run that started again
    /// meanwhile (a resume under the same id) is not ended, and stays.
    const PRUNE_RUNS: &str = "DELETE FROM workflow_runs \
         WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND id = ANY($1::text[])";

    /// Result-cache entries whose keys `$1` (an array) holds, for a prune.
    const PRUNE_CACHE: &str = "DELETE FROM cache_entries WHERE key = ANY($1::text[])";

    /// Runs `delete` (one of the prune statements) on `ids`; how many rows went.
    async fn delete_listed(&self, delete: &'static str, ids: &[&str]) -> Result<u64> {
        Ok(sqlx::query::<Postgres>(delete)
            .bind(ids)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// The node executions of the runs `run_ids`, by run and queue order.
    async fn executions_of_runs(
        conn: &mut PgConnection,
        run_ids: &[&str],
    ) -> Result<Vec<ExecutionRow>> {
        Ok(sqlx::query_as::<Postgres, ExecutionRow>(RUNS_EXECUTIONS)
            .bind(run_ids)
            .fetch_all(&mut *conn)
            .await?)
    }

    /// Updates running executions, as [`Self::write_executions`].
    async fn write_progress(conn: &mut PgConnection, rows: &[&Progress<'_>]) -> Result<()> {
        for rows in rows.chunk_by(|a, b| a.run_id == b.run_id) {
            sqlx::query(UPSERT_PROGRESS)
                .bind(rows[0].run_id)
                .bind(rows.iter().map(|p| p.node_id).collect::<Vec<_>>())
                .bind(rows.iter().map(|p| p.seq).collect::<Vec<_>>())
                .bind(rows.iter().map(|p| p.status.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|p| p.error.as_deref()).collect::<Vec<_>>())
                .bind(
                    rows.iter()
                        .map(|p| p.started_at.trunc_subsecs(6))
                        .collect::<Vec<_>>(),
                )
                .bind(rows.iter().map(|p| to_i32(p.attempts)).collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

sql_backend!(PostgresBackend, Postgres, BackendKind::Postgres);
