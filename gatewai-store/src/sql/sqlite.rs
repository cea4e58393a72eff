//! The SQLite backend.

use super::batch::Piece;
use super::*;
use crate::store::redact;
use crate::write_plan::Progress;
use chrono::{DateTime, Datelike, SecondsFormat, SubsecRound, Timelike, Utc};
use gatewai_core::{CacheKey, ExecutionStatus};
use sqlx::Arguments as _;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use std::borrow::Cow;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Reader connections (WAL lets them read while the writer writes).
const READERS: u32 = 4;

/// Rows the recorder commits between two background checkpoints (~0.5 MB of log).
const CHECKPOINT_EVERY_ROWS: usize = 2_000;
/// Prepared statements the writer connection keeps.
const WRITER_STATEMENTS: usize = 256;
/// Log pages past which the writer checkpoints in its own commit (SQLite's default is
/// 1,000): a backstop for when the background checkpoints do not keep up.
const WRITER_AUTOCHECKPOINT: u32 = 8_000;

/// A store in a SQLite file: WAL journal (readers never wait for the writer), `synchronous =
/// NORMAL` (a commit survives a process crash; a power cut may lose the last commits),
/// foreign keys on, and all writes through a single connection, so that writers queue in the
/// process instead of failing with "database is locked".
///
/// The log is copied back into the database (checkpointed) by a task on a reader connection
/// every few thousand recorded rows rather than inside a commit: SQLite would otherwise run
/// the checkpoint, and its two `fsync`s, in the commit that fills the log, and the run that
/// commit records would wait for the disk. A commit stays durable either way (the log is).
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    read: SqlitePool,
    write: SqlitePool,
    /// `None` for an in-memory database (no log).
    checkpointer: Option<Arc<Checkpointer>>,
}

/// Starts background checkpoints.
#[derive(Debug)]
struct Checkpointer {
    /// The reader connections: in WAL mode a checkpoint runs beside the writer.
    pool: SqlitePool,
    /// Rows committed since the last checkpoint started.
    rows: AtomicUsize,
    /// Whether a checkpoint is running.
    running: Arc<AtomicBool>,
}

/// Clears a flag when dropped: a checkpoint that ends, fails or is dropped with its runtime
/// lets the next one start.
struct ClearOnDrop(Arc<AtomicBool>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Checkpointer {
    /// Notes `rows` rows committed; starts a checkpoint once enough are, unless one is
    /// running (or there is no runtime to run it on: the writer then checkpoints itself, past
    /// [`WRITER_AUTOCHECKPOINT`]).
    fn wrote(&self, rows: usize) {
        if self.rows.fetch_add(rows, Ordering::Relaxed) + rows < CHECKPOINT_EVERY_ROWS
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let done = ClearOnDrop(Arc::clone(&self.running));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.rows.store(0, Ordering::Relaxed);
        let pool = self.pool.clone();
        runtime.spawn(async move {
            let _done = done;
            // PASSIVE: copies what it can without waiting for readers or the writer.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %e, "background WAL checkpoint did not run");
            }
        });
    }
}

/// The URL without its `busy_timeout=<ms>` parameter (ours, not sqlx's), and the timeout
/// (default [`BUSY_TIMEOUT`]).
fn take_busy_timeout(url: &str) -> Result<(String, Duration)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), BUSY_TIMEOUT));
    };
    let mut timeout = BUSY_TIMEOUT;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("busy_timeout", ms)) => {
                let ms: u64 = ms.parse().map_err(|_| Error::InvalidUrl {
                    url: redact(url),
                    message: format!("busy_timeout `{ms}` is not a number of milliseconds"),
                })?;
                timeout = Duration::from_millis(ms);
            }
            _ => rest.push(pair),
        }
    }
    let url = match rest.is_empty() {
        true => base.to_owned(),
        false => format!("{base}?{}", rest.join("&")),
    };
    Ok((url, timeout))
}

impl SqliteBackend {
    /// Opens (with `mode=rwc`, creates) the database a `sqlite://` URL names and applies the
    /// migrations. `sqlite::memory:` opens a private in-memory database.
    pub async fn connect(url: &str) -> Result<Self> {
        let (sqlx_url, busy_timeout) = take_busy_timeout(url)?;
        let options = SqliteConnectOptions::from_str(&sqlx_url)
            .map_err(|e| Error::InvalidUrl {
                url: redact(url),
                message: e.to_string(),
            })?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let mut writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1);
        if in_memory {
            // The database lives as long as its one connection: never recycle it.
            writer = writer.idle_timeout(None).max_lifetime(None);
        }
        let write = writer
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", WRITER_AUTOCHECKPOINT.to_string())
                    // The recorder's statements (multi-row statements of a few sizes, each
                    // alone, opening or closing a batch's transaction) stay prepared.
                    .statement_cache_capacity(WRITER_STATEMENTS),
            )
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&write).await?;
        let (read, checkpointer) = if in_memory {
            // Every connection to `:memory:` is a database of its own: share the one.
            (write.clone(), None)
        } else {
            let read = SqlitePoolOptions::new()
                .max_connections(READERS)
                .connect_with(options)
                .await?;
            let checkpointer = Checkpointer {
                pool: read.clone(),
                rows: AtomicUsize::new(0),
                running: Arc::new(AtomicBool::new(false)),
            };
            (read, Some(Arc::new(checkpointer)))
        };
        tracing::debug!(url = %redact(url), "opened SQLite store");
        Ok(SqliteBackend {
            read,
            write,
            checkpointer,
        })
    }

    /// Whether the database lives in memory (in its one connection).
    fn in_memory(&self) -> bool {
        self.checkpointer.is_none()
    }

    /// Notes `rows` rows committed by the recorder (see [`Checkpointer`]).
    fn wrote(&self, rows: usize) {
        if let Some(checkpointer) = &self.checkpointer {
            checkpointer.wrote(rows);
        }
    }
}

/// The sizes of the multi-row statements writing node executions, largest first. A batch's
/// rows go through statements of these sizes only, so that each is prepared once per
/// connection and then served from sqlx's statement cache.
const CHUNKS: [usize; 9] = [256, 128, 64, 32, 16, 8, 4, 2, 1];
/// The size of a batch's first statement at most: small, so that the next statements'
/// arguments are being built while the database writes the first rows.
const FIRST_CHUNK: usize = 32;

/// The sizes of the statements writing `n` rows: growing from [`FIRST_CHUNK`] to the largest
/// of [`CHUNKS`], then what is left as a sum of [`CHUNKS`].
fn chunk_sizes(n: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let (mut left, mut cap) = (n, FIRST_CHUNK);
    while left > 0 {
        let size = CHUNKS
            .iter()
            .copied()
            .find(|&c| c <= left.min(cap))
            .unwrap_or(1);
        sizes.push(size);
        left -= size;
        cap = (cap * 2).min(CHUNKS[0]);
    }
    sizes
}

/// A multi-row statement inserting `rows` rows into `table`: the first of `columns` is the
/// run, bound once (the statement's first parameter); the rows give the others, except
/// those of `literals`, which every row shares. Parameters are all anonymous (`?`): sqlx
/// binds those in order, but looks every numbered one up by name, which costs quadratic
/// time in a statement of thousands.
fn multi_row_sql(
    table: &str,
    columns: &[&str],
    literals: &[(&str, &str)],
    rows: usize,
    tail: &str,
) -> String {
    let values: Vec<&str> = columns[1..]
        .iter()
        .copied()
        .filter(|c| !literals.iter().any(|(l, _)| l == c))
        .collect();
    let mut sql = format!("INSERT INTO {table} ({}) SELECT ?", columns.join(", "));
    for column in &columns[1..] {
        sql.push_str(", ");
        match literals.iter().find(|(l, _)| l == column) {
            Some((_, literal)) => sql.push_str(literal),
            None => {
                let i = values.iter().position(|v| v == column).unwrap_or(0);
                sql.push_str(&format!("column{}", i + 1));
            }
        }
    }
    sql.push_str(" FROM (VALUES ");
    let row = format!("({})", vec!["?"; values.len()].join(", "));
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&row);
    }
    // `WHERE TRUE` tells SQLite's parser that the `ON CONFLICT` of the tail is the upsert's.
    sql.push_str(") WHERE TRUE");
    sql.push_str(tail);
    sql
}

/// The statements of [`CHUNKS`] sizes, made once.
fn chunk_statements(make: impl Fn(usize) -> String) -> Vec<String> {
    CHUNKS.iter().map(|&n| make(n)).collect()
}

/// The statement of `all` (see [`chunk_statements`]) for `rows` rows.
fn chunk_statement(all: &'static [String], rows: usize) -> &'static str {
    let i = CHUNKS
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(CHUNKS.len() - 1);
    &all[i]
}

/// The statement inserting or replacing `rows` node executions of one run (a queued record
/// never replaces a completed one, see `BatchWrite::StartRun`), `rows` one of
/// [`CHUNKS`].
fn upsert_executions_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        chunk_statements(|n| {
            multi_row_sql(
                "node_executions",
                &[
                    "run_id",
                    "node_id",
                    "seq",
                    "node_type",
                    "node_label",
                    "status",
                    "input_data",
                    "output_data",
                    "error",
                    "cached",
                    "started_at",
                    "finished_at",
                    "duration_ms",
                    "attempts",
                    "cache_key",
                ],
                &[],
                n,
                " ON CONFLICT (run_id, node_id) DO UPDATE SET node_type = excluded.node_type, \
                 node_label = excluded.node_label, status = excluded.status, \
                 input_data = excluded.input_data, output_data = excluded.output_data, \
                 error = excluded.error, cached = excluded.cached, \
                 started_at = excluded.started_at, finished_at = excluded.finished_at, \
                 duration_ms = excluded.duration_ms, attempts = excluded.attempts, \
                 cache_key = excluded.cache_key \
                 WHERE node_executions.status <> 'COMPLETED' OR excluded.status <> 'QUEUED'",
            )
        })
    });
    chunk_statement(all, rows)
}

/// The statement updating `rows` running executions of one run, `rows` one of [`CHUNKS`]; a
/// missing row is created (with an empty type and label until the node's full record is
/// written).
fn upsert_progress_sql(rows: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let all = SQL.get_or_init(|| {
        chunk_statements(|n| {
            multi_row_sql(
                "node_executions",
                &[
                    "run_id",
                    "node_id",
                    "seq",
                    "node_type",
                    "node_label",
                    "status",
                    "error",
                    "started_at",
                    "attempts",
                ],
                &[("node_type", "''"), ("node_label", "''")],
                n,
                " ON CONFLICT (run_id, node_id) DO UPDATE SET status = excluded.status, \
                 error = excluded.error, started_at = excluded.started_at, \
                 attempts = excluded.attempts",
            )
        })
    });
    chunk_statement(all, rows)
}

/// A timestamp to the microsecond, written as sqlx writes one into SQLite (RFC 3339 with
/// `+00:00`, a fraction of 0, 3 or 6 digits).
struct SqlTime(DateTime<Utc>);

impl SqlTime {
    /// The text, written without the formatting machinery (a recorder writes two per node).
    fn to_text(&self) -> String {
        let t = self.0.trunc_subsecs(6);
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            // Years chrono writes with a sign, and leap seconds: chrono's own writing.
            return t.to_rfc3339_opts(SecondsFormat::AutoSi, false);
        }
        fn digits(text: &mut String, value: u32, width: u32) {
            for i in (0..width).rev() {
                text.push(char::from(b'0' + ((value / 10u32.pow(i)) % 10) as u8));
            }
        }
        let mut text = String::with_capacity(32);
        digits(&mut text, year.unsigned_abs(), 4);
        for (separator, value) in [
            ('-', t.month()),
            ('-', t.day()),
            ('T', t.hour()),
            (':', t.minute()),
            (':', t.second()),
        ] {
            text.push(separator);
            digits(&mut text, value, 2);
        }
        if nanos != 0 && nanos % 1_000_000 == 0 {
            text.push('.');
            digits(&mut text, nanos / 1_000_000, 3);
        } else if nanos != 0 {
            text.push('.');
            digits(&mut text, nanos / 1_000, 6);
        }
        text.push_str("+00:00");
        text
    }
}

fn add<'t, T>(args: &mut SqliteArguments, value: T) -> Result<()>
where
    T: sqlx::Encode<'t, Sqlite> + sqlx::Type<Sqlite>,
{
    args.add(value)
        .map_err(|e| Error::Database(sqlx::Error::Encode(e)))
}

/// Makes text arguments with one allocation each (sqlx shares an `Arc<str>` with the
/// statement instead of copying it), through buffers reused from row to row.
#[derive(Default)]
struct Texts {
    json: Vec<u8>,
    statuses: Vec<(ExecutionStatus, Arc<str>)>,
}

impl Texts {
    /// A JSON column's value.
    fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> Result<Arc<str>> {
        let serialize = |source| Error::Serialize {
            what: "a node execution",
            source,
        };
        self.json.clear();
        serde_json::to_writer(&mut self.json, value).map_err(serialize)?;
        let text =
            std::str::from_utf8(&self.json).map_err(|e| serialize(serde::ser::Error::custom(e)))?;
        Ok(Arc::from(text))
    }

    /// A timestamp, as sqlx writes one (see [`SqlTime`]).
    fn time(&mut self, t: DateTime<Utc>) -> Arc<str> {
        Arc::from(SqlTime(t).to_text().as_str())
    }

    /// A cache key, as its hex digits.
    fn key(&mut self, key: CacheKey) -> Arc<str> {
        Arc::from(key.to_hex())
    }

    /// A status, shared by the rows of a statement.
    fn status(&mut self, status: ExecutionStatus) -> Arc<str> {
        if let Some((_, text)) = self.statuses.iter().find(|(s, _)| *s == status) {
            return Arc::clone(text);
        }
        let text: Arc<str> = Arc::from(status.as_str());
        self.statuses.push((status, Arc::clone(&text)));
        text
    }
}

/// The arguments of [`upsert_executions_sql`] for `rows` of `run`. Ids are shared, not
/// copied; each snapshot is serialized once, straight into the text the database stores.
fn execution_args(run: &Arc<str>, rows: &[(i64, &NodeExecution)]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    args.reserve(1 + rows.len() * 14, 0);
    add(&mut args, Arc::clone(run))?;
    let mut texts = Texts::default();
    for (seq, r) in rows {
        add(&mut args, Arc::clone(&r.node_id))?;
        add(&mut args, *seq)?;
        add(&mut args, Arc::clone(&r.node_type))?;
        add(&mut args, Arc::clone(&r.label))?;
        add(&mut args, texts.status(r.status))?;
        add(
            &mut args,
            r.input.as_ref().map(|v| texts.json(v)).transpose()?,
        )?;
        add(
            &mut args,
            r.output.as_deref().map(|v| texts.json(v)).transpose()?,
        )?;
        add(&mut args, r.error.as_deref())?;
        add(&mut args, r.cached)?;
        add(&mut args, r.started_at.map(|t| texts.time(t)))?;
        add(&mut args, r.finished_at.map(|t| texts.time(t)))?;
        add(&mut args, r.duration_ms.map(to_i64))?;
        add(&mut args, to_i32(r.attempts))?;
        add(&mut args, r.cache_key.map(|k| texts.key(k)))?;
    }
    Ok(args)
}

/// The arguments of [`upsert_progress_sql`] for `rows` of `run`.
fn progress_args(run: &Arc<str>, rows: &[&Progress<'_>]) -> Result<SqliteArguments> {
    let mut args = SqliteArguments::default();
    args.reserve(1 + rows.len() * 6, 0);
    add(&mut args, Arc::clone(run))?;
    let mut texts = Texts::default();
    for p in rows {
        add(&mut args, p.node_id)?;
        add(&mut args, p.seq)?;
        add(&mut args, texts.status(p.status))?;
        add(&mut args, p.error.as_deref())?;
        add(&mut args, texts.time(p.started_at))?;
        add(&mut args, to_i32(p.attempts))?;
    }
    Ok(args)
}

/// One statement of a batch, with what its arguments are built from.
enum Job<'a> {
    Piece(Piece<'a>),
    Executions(Arc<str>, Vec<(i64, &'a NodeExecution)>),
    Progress(Arc<str>, Vec<&'a Progress<'a>>),
}

impl Job<'_> {
    /// The statement and its arguments.
    fn build(self) -> Result<(&'static str, SqliteArguments)> {
        match self {
            Job::Piece(piece) => {
                let mut args = SqliteArguments::default();
                SqliteBackend::bind_args(&mut args, piece.args)?;
                Ok((piece.sql, args))
            }
            Job::Executions(run, rows) => Ok((
                upsert_executions_sql(rows.len()),
                execution_args(&run, &rows)?,
            )),
            Job::Progress(run, rows) => {
                Ok((upsert_progress_sql(rows.len()), progress_args(&run, &rows)?))
            }
        }
    }
}

/// A batch's steps as statements: node rows one run at a time, in statements of
/// [`chunk_sizes`].
fn jobs(steps: Vec<Step<'_>>) -> Vec<Job<'_>> {
    fn chunked<'a, R: Copy>(rows: &[R], mut job: impl FnMut(Vec<R>) -> Job<'a>) -> Vec<Job<'a>> {
        let mut start = 0;
        chunk_sizes(rows.len())
            .into_iter()
            .map(|size| {
                let chunk = rows[start..start + size].to_vec();
                start += size;
                job(chunk)
            })
            .collect()
    }
    let mut jobs = Vec::new();
    for step in steps {
        match step {
            Step::Statement(piece) => jobs.push(Job::Piece(piece)),
            Step::Executions(rows) => {
                for rows in rows.chunk_by(|(_, a), (_, b)| a.run_id == b.run_id) {
                    let run = Arc::clone(&rows[0].1.run_id);
                    jobs.extend(chunked(rows, |chunk| {
                        Job::Executions(Arc::clone(&run), chunk)
                    }));
                }
            }
            Step::Progress(rows) => {
                for rows in rows.chunk_by(|a, b| a.run_id == b.run_id) {
                    let run: Arc<str> = Arc::from(rows[0].run_id);
                    jobs.extend(chunked(rows, |chunk| {
                        Job::Progress(Arc::clone(&run), chunk)
                    }));
                }
            }
        }
    }
    jobs
}

/// Statement `i` of a batch of `count`: a lone statement is a transaction by itself; in a
/// longer batch the first statement begins the transaction and the last commits it, so that
/// `BEGIN` and `COMMIT` cost no round trip of their own to sqlx's worker thread.
fn in_transaction(sql: &'static str, i: usize, count: usize) -> Cow<'static, str> {
    match (count, i) {
        (1, _) => Cow::Borrowed(sql),
        (_, 0) => Cow::Owned(format!("BEGIN IMMEDIATE; {sql}")),
        (_, i) if i + 1 == count => Cow::Owned(format!("{sql}; COMMIT")),
        _ => Cow::Borrowed(sql),
    }
}

/// A batch's statements, ready to run: the first one built, the others built one at a time.
struct Statements<'a> {
    next: Option<(&'static str, SqliteArguments)>,
    rest: std::vec::IntoIter<Job<'a>>,
    count: usize,
}

impl<'a> Statements<'a> {
    /// Builds the first of `jobs` (so a batch that cannot be built touches no connection).
    fn new(jobs: Vec<Job<'a>>) -> Result<Self> {
        let count = jobs.len();
        let mut rest = jobs.into_iter();
        let next = rest.next().map(Job::build).transpose()?;
        Ok(Statements { next, rest, count })
    }

    /// Runs the statements in order on `conn`, each statement's arguments built while the
    /// database (on sqlx's worker thread) runs the statement before. `transaction`: the first
    /// and last statements begin and commit the batch's transaction (see [`in_transaction`]).
    async fn run(mut self, conn: &mut SqliteConnection, transaction: bool) -> Result<()> {
        for i in 0..self.count {
            let Some((sql, args)) = self.next.take() else {
                break;
            };
            let sql = match transaction {
                true => in_transaction(sql, i, self.count),
                false => Cow::Borrowed(sql),
            };
            let write =
                sqlx::query_with::<Sqlite, _>(sqlx::AssertSqlSafe(sql), args).execute(&mut *conn);
            let build = async { self.rest.next().map(Job::build).transpose() };
            let (written, built) = tokio::join!(write, build);
            written?;
            self.next = built?;
        }
        Ok(())
    }
}

/// The writer connection a batch holds. A batch of several statements that fails, or whose
/// future is dropped half-way, may leave its transaction open: the connection goes back to the
/// pool only after a `ROLLBACK` (which the connection's worker runs after any statement still
/// running: it takes commands in order).
struct BatchConnection {
    conn: Option<PoolConnection<Sqlite>>,
    /// Whether the batch opens a transaction (several statements).
    transaction: bool,
    /// The database lives only in this connection: it is never closed.
    in_memory: bool,
}

impl BatchConnection {
    /// Returns the connection to the pool as it is (the batch committed, or never began).
    fn release(mut self) {
        drop(self.conn.take());
    }

    /// Rolls back what the batch left open, then returns the connection to the pool.
    async fn roll_back(mut self) {
        if let Some(conn) = self.conn.take() {
            roll_back(conn, self.in_memory).await;
        }
    }
}

/// Rolls back a connection's open transaction (if any) and releases the connection. If the
/// `ROLLBACK` fails (no transaction was open, or SQLite already rolled back after an I/O or
/// full-disk error), a file database's connection is closed instead, which rolls back
/// whatever might remain; an in-memory database's is kept (closing it would lose the data).
async fn roll_back(mut conn: PoolConnection<Sqlite>, in_memory: bool) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
        tracing::debug!(error = %e, "rolling back a batch did not run");
        if !in_memory {
            conn.close_on_drop();
        }
    }
}

impl Drop for BatchConnection {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.transaction {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(roll_back(conn, self.in_memory));
            }
            // No runtime to roll back on (it is shutting down): closing rolls back.
            Err(_) if !self.in_memory => conn.close_on_drop(),
            Err(_) => {}
        }
    }
}

/// The node executions of the runs whose ids `$1` holds, by run and queue order. SQLite has no
/// array parameter: the ids are bound as one JSON array, which `json_each` unfolds (one
/// statement, prepared once, whatever their count).
const RUNS_EXECUTIONS: &str = "SELECT run_id, node_id, seq, node_type, node_label, status, \
     input_data, output_data, error, cached, started_at, finished_at, duration_ms, attempts, \
     cache_key FROM node_executions WHERE run_id IN (SELECT value FROM json_each($1)) \
     ORDER BY run_id, seq, node_id";

impl SqliteBackend {
    /// Stores a batch's steps atomically, each statement's arguments built while the database
    /// runs the statement before. A batch of one statement (most batches of a busy run: one
    /// node's transition) is one round trip to the database's thread, where an explicit
    /// transaction cost three.
    async fn store_steps(&self, steps: Vec<Step<'_>>) -> Result<()> {
        let statements = Statements::new(jobs(steps))?;
        let count = statements.count;
        if count == 0 {
            return Ok(());
        }
        let mut held = BatchConnection {
            conn: Some(self.write.acquire().await?),
            transaction: count > 1,
            in_memory: self.in_memory(),
        };
        let Some(conn) = held.conn.as_deref_mut() else {
            return Ok(());
        };
        match statements.run(conn, true).await {
            Ok(()) => {
                held.release();
                Ok(())
            }
            // Undo what the batch wrote (a lone statement undid itself).
            Err(failure) if count > 1 => {
                held.roll_back().await;
                Err(failure)
            }
            Err(failure) => {
                held.release();
                Err(failure)
            }
        }
    }

    /// Inserts or replaces node executions, in multi-row statements (one run's at a time).
    async fn write_executions(
        conn: &mut SqliteConnection,
        rows: &[(i64, &NodeExecution)],
    ) -> Result<()> {
        let steps = vec![Step::Executions(rows.to_vec())];
        Statements::new(jobs(steps))?.run(conn, false).await
    }

    /// Ended runs whose ids the JSON array `$1` holds, for a prune: a run that started again
    /// meanwhile (a resume under the same id) is not ended, and stays.
    const PRUNE_RUNS: &str = "DELETE FROM workflow_runs \
         WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') \
         AND id IN (SELECT value FROM json_each($1))";

    /// Result-cache entries whose keys the JSON array `$1` holds, for a prune.
    const PRUNE_CACHE: &str =
        "DELETE FROM cache_entries WHERE key IN (SELECT value FROM json_each($1))";

    /// Runs `delete` (one of the prune statements) on `ids`; how many rows went.
    async fn delete_listed(&self, delete: &'static str, ids: &[&str]) -> Result<u64> {
        let ids = serde_json::to_string(ids).map_err(|source| Error::Serialize {
            what: "the ids of a prune",
            source,
        })?;
        Ok(sqlx::query::<Sqlite>(delete)
            .bind(ids)
            .execute(&self.write)
            .await?
            .rows_affected())
    }

    /// The node executions of the runs `run_ids`, by run and queue order.
    async fn executions_of_runs(
        conn: &mut SqliteConnection,
        run_ids: &[&str],
    ) -> Result<Vec<ExecutionRow>> {
        let ids = serde_json::to_string(run_ids).map_err(|source| Error::Serialize {
            what: "the run ids of a history page",
            source,
        })?;
        Ok(sqlx::query_as::<Sqlite, ExecutionRow>(RUNS_EXECUTIONS)
            .bind(ids)
            .fetch_all(&mut *conn)
            .await?)
    }
}

sql_backend!(SqliteBackend, Sqlite, BackendKind::Sqlite);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn busy_timeout_is_taken_out_of_the_url() {
        let (url, t) = take_busy_timeout("sqlite://a.db?mode=rwc&busy_timeout=250").unwrap();
        assert_eq!(
            (url.as_str(), t),
            ("sqlite://a.db?mode=rwc", Duration::from_millis(250))
        );
        let (url, t) = take_busy_timeout("sqlite://a.db?busy_timeout=0").unwrap();
        assert_eq!((url.as_str(), t), ("sqlite://a.db", Duration::ZERO));
        let (url, t) = take_busy_timeout("sqlite://a.db?mode=rwc").unwrap();
        assert_eq!((url.as_str(), t), ("sqlite://a.db?mode=rwc", BUSY_TIMEOUT));
        let err = take_busy_timeout("sqlite://a.db?busy_timeout=soon").unwrap_err();
        assert!(err.to_string().contains("busy_timeout `soon`"), "{err}");
    }

    #[tokio::test]
    async fn enough_rows_start_one_background_checkpoint_at_a_time() {
        use crate::backend::UserStore;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = SqliteBackend::connect(&url).await.unwrap();
        store
            .upsert_user(&crate::model::NewUser::new("u", "u@example.com"))
            .await
            .unwrap();
        let checkpointer = store.checkpointer.as_ref().unwrap();
        store.wrote(CHECKPOINT_EVERY_ROWS - 1);
        assert!(!checkpointer.running.load(Ordering::Acquire));
        store.wrote(1);
        assert!(checkpointer.running.load(Ordering::Acquire));
        assert_eq!(checkpointer.rows.load(Ordering::Relaxed), 0);
        // A second one waits for the first.
        store.wrote(CHECKPOINT_EVERY_ROWS);
        assert_eq!(
            checkpointer.rows.load(Ordering::Relaxed),
            CHECKPOINT_EVERY_ROWS
        );
        for _ in 0..500 {
            if !checkpointer.running.load(Ordering::Acquire) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!checkpointer.running.load(Ordering::Acquire));
        assert!(
            SqliteBackend::connect("sqlite::memory:")
                .await
                .unwrap()
                .checkpointer
                .is_none()
        );
    }

    /// A batch's first statement ran (it began the transaction and wrote), then the batch was
    /// dropped: the writer's next transaction begins (none is left open), the dropped write is
    /// gone, and the database is still there.
    async fn dropped_batch_leaves_no_transaction_open(url: &str) {
        let backend = SqliteBackend::connect(url).await.unwrap();
        let mut held = BatchConnection {
            conn: Some(backend.write.acquire().await.unwrap()),
            transaction: true,
            in_memory: backend.in_memory(),
        };
        let conn = held.conn.as_deref_mut().unwrap();
        let first = in_transaction(
            "INSERT INTO users (id, email, created_at, updated_at) VALUES ('u', 'u@x', 't', 't')",
            0,
            2,
        );
        assert!(first.starts_with("BEGIN IMMEDIATE; "));
        sqlx::query(sqlx::AssertSqlSafe(first))
            .execute(conn)
            .await
            .unwrap();
        drop(held);
        let mut conn = backend.write.acquire().await.unwrap();
        sqlx::query("BEGIN IMMEDIATE; COMMIT")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&backend.read)
            .await
            .unwrap();
        assert_eq!(users, 0);
    }

    #[tokio::test]
    async fn a_batch_dropped_half_way_leaves_no_transaction_open() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        dropped_batch_leaves_no_transaction_open(&url).await;
    }

    #[tokio::test]
    async fn a_batch_dropped_half_way_keeps_an_in_memory_database() {
        dropped_batch_leaves_no_transaction_open("sqlite::memory:").await;
    }

    #[test]
    fn a_lone_statement_is_its_own_transaction_and_a_longer_batch_folds_one_in() {
        assert_eq!(in_transaction("S", 0, 1), "S");
        assert_eq!(in_transaction("S", 0, 3), "BEGIN IMMEDIATE; S");
        assert_eq!(in_transaction("S", 1, 3), "S");
        assert_eq!(in_transaction("S", 2, 3), "S; COMMIT");
    }

    #[test]
    fn chunks_grow_then_cover_the_rest() {
        assert_eq!(chunk_sizes(0), Vec::<usize>::new());
        assert_eq!(chunk_sizes(1), vec![1]);
        assert_eq!(chunk_sizes(21), vec![16, 4, 1]);
        assert_eq!(chunk_sizes(40), vec![32, 8]);
        let sizes = chunk_sizes(1001);
        assert_eq!(sizes.iter().sum::<usize>(), 1001);
        assert_eq!(&sizes[..4], &[32, 64, 128, 256]);
        assert!(sizes.iter().all(|n| CHUNKS.contains(n)));
    }

    #[test]
    fn rows_share_the_run_parameter() {
        assert_eq!(
            multi_row_sql("t", &["r", "a", "b", "c"], &[("b", "''")], 2, ";"),
            "INSERT INTO t (r, a, b, c) SELECT ?, column1, '', column2 \
             FROM (VALUES (?, ?), (?, ?)) WHERE TRUE;"
        );
    }

    #[test]
    fn times_are_written_as_sqlx_writes_them() {
        for t in [
            Utc.with_ymd_and_hms(2026, 11, 23, 21, 4, 5).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 120_000_000).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap(),
            Utc.timestamp_opt(1_790_000_000, 1_000).unwrap(),
            Utc.with_ymd_and_hms(12026, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(33, 2, 3, 4, 5, 6).unwrap(),
        ] {
            let t = t.trunc_subsecs(6);
            assert_eq!(
                SqlTime(t).to_text(),
                t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
            );
        }
    }
}
