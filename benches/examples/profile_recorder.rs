//! Replays the event batches of recorded 1,000-node runs into a SQLite store (or the store
//! `STORE_URL` names), for profilers:
//! `cargo run --release -p gatewai-benches --example profile_recorder -- 100`. The batches
//! are captured first (one run per repetition: each replay stores a run of its own);
//! `BATCHES=n` regroups each run's events into `n` batches, as a recorder slower than the
//! engine receives them (by default, as an observer that keeps up received them).
//! `NO_KEYS=1` captures records without cache keys (a recorder asks the engine for them).
//! `FLOOR=1` writes each run's final records (every completed node's; the bench graph has no
//! other) the plainest way instead, as a floor for the recorder: one transaction per run,
//! multi-row `INSERT`s into a table of the same columns and key with no other index or
//! constraint, in a SQLite file with the store's journal settings (WAL, `synchronous =
//! NORMAL`), the JSON serialized as the store serializes it; no run row, no upsert, no earlier
//! states of a node. `FLOOR=c` writes the same rows below sqlx, through SQLite's C interface
//! on sqlx's connection (one prepared single-row `INSERT`, bound, stepped and reset per row).
//! For either floor, `SCHEMA=nokey` leaves out the table's primary key, `SCHEMA=norowid` makes
//! it a `WITHOUT ROWID` table, and `PRAGMAS="wal_autocheckpoint=0"` (say) sets more pragmas;
//! after the writes, a checkpoint of the log is timed apart (what `wal_autocheckpoint=0` left
//! to do).

use gatewai_benches::{Dag, observed_engine};
use gatewai_core::{Observer, RunEvent, RunOptions};
use gatewai_store::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keeps a copy of every batch; asks for cache keys as a run recorder does, unless told not to.
#[derive(Default)]
struct Capture(Mutex<Vec<Vec<RunEvent>>>, bool);

#[async_trait::async_trait]
impl Observer for Capture {
    fn needs_cache_keys(&self) -> bool {
        !self.1
    }

    async fn on_events(&self, events: &[RunEvent]) -> gatewai_core::Result<()> {
        self.0.lock().expect("lock").push(events.to_vec());
        Ok(())
    }
}

fn main() {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let regroup: usize = std::env::var("BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    // `STORE_URL` replays into another store (a PostgreSQL database, say) instead.
    let url = std::env::var("STORE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}?mode=rwc", dir.path().join("p.db").display()));
    let store = rt.block_on(Store::open(&url)).expect("open");
    let wf = Dag::layered(10, 100, 3, 7).workflow();
    let capture = Arc::new(Capture(
        Mutex::default(),
        std::env::var_os("NO_KEYS").is_some(),
    ));
    let engine = observed_engine(capture.clone());
    let cpu_at_start = cpu_ms().unwrap_or(0.0);
    let started = Instant::now();
    let runs: Vec<Vec<Vec<RunEvent>>> = (0..reps)
        .map(|_| {
            rt.block_on(engine.run(wf.clone(), RunOptions::default()))
                .expect("run");
            let batches = std::mem::take(&mut *capture.0.lock().expect("lock"));
            if regroup == 0 {
                return batches;
            }
            let all: Vec<RunEvent> = batches.into_iter().flatten().collect();
            let size = all.len().div_ceil(regroup);
            all.chunks(size).map(<[RunEvent]>::to_vec).collect()
        })
        .collect();
    // For `perf record -D`: the replay starts after this.
    eprintln!(
        "captured {reps} runs in {:.0} ms ({} ms of the process's CPU time)",
        started.elapsed().as_secs_f64() * 1e3,
        cpu_ms().map_or("?".to_owned(), |cpu| format!("{:.0}", cpu - cpu_at_start)),
    );
    let batches: usize = runs.iter().map(Vec::len).sum();
    if let Some(floor) = std::env::var_os("FLOOR") {
        let path = dir.path().join("floor.db");
        let floor = match floor.to_str() {
            Some("c") => rt.block_on(write_floor_c(&runs, &path)),
            Some("1") => rt.block_on(write_floor(&runs, &path)),
            _ => panic!("FLOOR is `1` (sqlx) or `c` (SQLite's C interface), not {floor:?}"),
        };
        println!(
            "floor: {:.2} ms per 1,001-node run (each run's final records, one transaction), \
             then {:.2} ms per run to checkpoint the log",
            floor.writes, floor.checkpoint
        );
        return;
    }
    let start = Instant::now();
    for run in &runs {
        rt.block_on(async {
            for batch in run {
                store.record_events(batch).await.expect("record");
            }
        });
    }
    let per_run = start.elapsed().as_secs_f64() * 1e3 / reps as f64;
    println!(
        "replay: {per_run:.2} ms per 1,001-node run ({:.1} batches per run)",
        batches as f64 / reps as f64
    );
}

/// The process's user and system CPU time so far, in milliseconds (Linux's `/proc`, at its
/// clock's 10 ms resolution).
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) * 10.0)
}

/// Each run's final records.
fn final_records(runs: &[Vec<Vec<RunEvent>>]) -> Vec<Vec<Arc<gatewai_core::NodeExecution>>> {
    runs.iter()
        .map(|run| {
            run.iter()
                .flatten()
                .filter_map(|event| match &event.kind {
                    gatewai_core::EventKind::NodeCompleted { record, .. } => Some(record.clone()),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// The floors' table: the store's node execution columns and key, nothing else.
const FLOOR_TABLE: &str = "CREATE TABLE floor_executions (run_id TEXT NOT NULL, \
    node_id TEXT NOT NULL, seq INTEGER, node_type TEXT, node_label TEXT, status TEXT, \
    input_data TEXT, output_data TEXT, error TEXT, cached INTEGER, started_at TEXT, \
    finished_at TEXT, duration_ms INTEGER, attempts INTEGER, cache_key TEXT, PRIMARY KEY (run_id, node_id))";

/// Opens the floors' database with the store's journal settings and creates their table:
/// `SCHEMA=nokey` leaves out the primary key (`SCHEMA=key`, the default, keeps it), `SCHEMA=norowid` makes it a `WITHOUT ROWID`
/// table; `PRAGMAS="a=1;b=2"` sets more pragmas (`wal_autocheckpoint=0`, say).
async fn open_floor(path: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .connect()
        .await
        .expect("open the floor's database");
    // Before the table, so that settings of the file (`page_size`, say) take effect.
    for pragma in std::env::var("PRAGMAS").unwrap_or_default().split(';') {
        if !pragma.trim().is_empty() {
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {pragma}")))
                .execute(&mut conn)
                .await
                .expect("pragma");
        }
    }
    let key = ", PRIMARY KEY (run_id, node_id))";
    let table = match std::env::var("SCHEMA").as_deref() {
        Ok("nokey") => FLOOR_TABLE.replace(key, ")"),
        Ok("norowid") => format!("{FLOOR_TABLE} WITHOUT ROWID"),
        Ok("key") | Err(_) => FLOOR_TABLE.to_owned(),
        Ok(other) => panic!("SCHEMA is `key`, `nokey` or `norowid`, not `{other}`"),
    };
    sqlx::query(sqlx::AssertSqlSafe(table))
        .execute(&mut conn)
        .await
        .expect("create the floor's table");
    conn
}

/// Runs `sql` on `db`; SQLite's result code.
///
/// # Safety
/// `db` is an open handle that nothing else uses meanwhile.
unsafe fn exec(db: *mut libsqlite3_sys::sqlite3, sql: &str) -> std::ffi::c_int {
    let sql = std::ffi::CString::new(sql).expect("SQL without NUL");
    // SAFETY: as the caller promises; the SQL is NUL-terminated and outlives the call.
    unsafe {
        libsqlite3_sys::sqlite3_exec(
            db,
            sql.as_ptr(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

/// A statement prepared on a borrowed handle; finalized when dropped, a panic included (a
/// statement left unfinalized makes sqlx's worker fail to close the connection).
struct Prepared(*mut libsqlite3_sys::sqlite3_stmt);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: the statement was prepared, its handle is still open (the handle's lock
        // outlives this guard), and it is not used again.
        let rc = unsafe { libsqlite3_sys::sqlite3_finalize(self.0) };
        if rc != libsqlite3_sys::SQLITE_OK && !std::thread::panicking() {
            panic!("finalizing the floor's statement: SQLite error {rc}");
        }
    }
}

/// An open transaction on a borrowed handle; rolled back when dropped uncommitted.
struct Transaction(*mut libsqlite3_sys::sqlite3);

impl Transaction {
    /// Begins a transaction on `db`.
    ///
    /// # Safety
    /// As [`exec`], for the transaction's life.
    unsafe fn begin(db: *mut libsqlite3_sys::sqlite3) -> Self {
        // SAFETY: as the caller promises.
        assert_eq!(unsafe { exec(db, "BEGIN") }, libsqlite3_sys::SQLITE_OK);
        Transaction(db)
    }

    fn commit(self) {
        // SAFETY: as promised to `begin`.
        assert_eq!(unsafe { exec(self.0, "COMMIT") }, libsqlite3_sys::SQLITE_OK);
        std::mem::forget(self);
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: as promised to `begin`. The result does not matter: the statement failed
        // or a panic is unwinding.
        unsafe { exec(self.0, "ROLLBACK") };
    }
}

/// As [`write_floor`], through SQLite's C interface on sqlx's connection: one prepared
/// single-row `INSERT`, bound, stepped and reset per record.
async fn write_floor_c(runs: &[Vec<Vec<RunEvent>>], path: &std::path::Path) -> Floor {
    use libsqlite3_sys as ffi;
    use std::ffi::{CString, c_int};
    let mut conn = open_floor(path).await;
    let records = final_records(runs);
    // No `.await` from here on: the handle is ours until `handle` drops, after `stmt`.
    let mut handle = conn.lock_handle().await.expect("lock the handle");
    let db = handle.as_raw_handle().as_ptr();
    let insert = CString::new(
        "INSERT INTO floor_executions (run_id, node_id, seq, node_type, node_label, status, \
         input_data, output_data, error, cached, started_at, finished_at, duration_ms, \
         attempts, cache_key) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    )
    .expect("sql");
    let mut raw = std::ptr::null_mut();
    // SAFETY: `db` is the open handle sqlx lent us; `raw` receives the statement, which
    // `stmt` finalizes.
    let rc =
        unsafe { ffi::sqlite3_prepare_v2(db, insert.as_ptr(), -1, &mut raw, std::ptr::null_mut()) };
    assert_eq!(rc, ffi::SQLITE_OK);
    let stmt = Prepared(raw);
    // SAFETY (every bind below): `stmt` is live, the index in range, and SQLITE_TRANSIENT
    // makes SQLite copy the bytes before the call returns.
    let text = |i: c_int, s: Option<&str>| unsafe {
        let rc = match s {
            Some(s) => ffi::sqlite3_bind_text(
                stmt.0,
                i,
                s.as_ptr().cast(),
                c_int::try_from(s.len()).expect("a text under 2 GiB"),
                ffi::SQLITE_TRANSIENT(),
            ),
            None => ffi::sqlite3_bind_null(stmt.0, i),
        };
        assert_eq!(rc, ffi::SQLITE_OK);
    };
    let int = |i: c_int, v: Option<i64>| unsafe {
        let rc = match v {
            Some(v) => ffi::sqlite3_bind_int64(stmt.0, i, v),
            None => ffi::sqlite3_bind_null(stmt.0, i),
        };
        assert_eq!(rc, ffi::SQLITE_OK);
    };
    // As sqlx writes a time into SQLite (the other floor's).
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false))
    };
    let start = Instant::now();
    for (r, run) in records.iter().enumerate() {
        let run_id = format!("floor-{r}");
        // SAFETY: `db` is ours (see `handle`).
        let transaction = unsafe { Transaction::begin(db) };
        for (seq, e) in run.iter().enumerate() {
            text(1, Some(&run_id));
            text(2, Some(&e.node_id));
            int(3, Some(seq as i64));
            text(4, Some(&e.node_type));
            text(5, Some(&e.label));
            text(6, Some(e.status.as_str()));
            let input = e
                .input
                .as_ref()
                .map(|i| serde_json::to_string(i).expect("inputs"));
            text(7, input.as_deref());
            let output = e
                .output
                .as_ref()
                .map(|o| serde_json::to_string(o).expect("result"));
            text(8, output.as_deref());
            text(9, e.error.as_deref());
            int(10, Some(e.cached as i64));
            text(11, time(e.started_at).as_deref());
            text(12, time(e.finished_at).as_deref());
            int(13, e.duration_ms.map(|d| d as i64));
            int(14, Some(e.attempts as i64));
            text(15, e.cache_key.map(|k| k.to_hex()).as_deref());
            // SAFETY: `stmt` is live and fully bound.
            unsafe {
                assert_eq!(ffi::sqlite3_step(stmt.0), ffi::SQLITE_DONE);
                assert_eq!(ffi::sqlite3_reset(stmt.0), ffi::SQLITE_OK);
            }
        }
        transaction.commit();
    }
    let writes = start.elapsed();
    let start = Instant::now();
    // SAFETY: `db` is ours (see `handle`).
    let rc = unsafe { exec(db, "PRAGMA wal_checkpoint(TRUNCATE)") };
    assert_eq!(rc, ffi::SQLITE_OK);
    Floor::new(writes, start.elapsed(), runs.len())
}

/// What a floor took, in milliseconds per run.
struct Floor {
    /// The runs' writes (their commits included).
    writes: f64,
    /// The checkpoint of what the writes left in the log, after them.
    checkpoint: f64,
}

impl Floor {
    fn new(writes: std::time::Duration, checkpoint: std::time::Duration, runs: usize) -> Self {
        let per_run = |d: std::time::Duration| d.as_secs_f64() * 1e3 / runs as f64;
        Floor {
            writes: per_run(writes),
            checkpoint: per_run(checkpoint),
        }
    }
}

/// Writes each run's final records into a fresh table the plainest way (see the module docs),
/// then checkpoints the log.
async fn write_floor(runs: &[Vec<Vec<RunEvent>>], path: &std::path::Path) -> Floor {
    use sqlx::{Connection, QueryBuilder, Sqlite};
    let mut conn = open_floor(path).await;
    // Each run's final records, gathered before the clock starts.
    let records = final_records(runs);
    // SQLite's default limit is 32,766 parameters a statement; 15 a row.
    const ROWS: usize = 2000;
    let start = Instant::now();
    for (r, run) in records.iter().enumerate() {
        let run_id = format!("floor-{r}");
        let mut tx = conn.begin().await.expect("begin");
        for (c, chunk) in run.chunks(ROWS).enumerate() {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO floor_executions (run_id, node_id, seq, node_type, node_label, \
                 status, input_data, output_data, error, cached, started_at, finished_at, \
                 duration_ms, attempts, cache_key) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut row, (seq, e)| {
                row.push_bind(run_id.as_str())
                    .push_bind(&*e.node_id)
                    .push_bind((c * ROWS + seq) as i64)
                    .push_bind(&*e.node_type)
                    .push_bind(&*e.label)
                    .push_bind(e.status.as_str())
                    .push_bind(
                        e.input
                            .as_ref()
                            .map(|i| serde_json::to_string(i).expect("inputs as JSON")),
                    )
                    .push_bind(
                        e.output
                            .as_ref()
                            .map(|o| serde_json::to_string(o).expect("result as JSON")),
                    )
                    .push_bind(e.error.as_deref())
                    .push_bind(e.cached)
                    .push_bind(e.started_at)
                    .push_bind(e.finished_at)
                    .push_bind(e.duration_ms.map(|d| d as i64))
                    .push_bind(e.attempts as i64)
                    .push_bind(e.cache_key.map(|k| k.to_hex()));
            });
            insert.build().execute(&mut *tx).await.expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    let writes = start.elapsed();
    let start = Instant::now();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("checkpoint");
    Floor::new(writes, start.elapsed(), runs.len())
}
