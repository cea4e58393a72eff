//! The SQL backends, SQLite and PostgreSQL, written once over sqlx: both speak the same SQL
//! (numbered `$n` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING`), and differ only in
//! their migrations (column types), connection set-up, the way each binds a list of ids
//! (`executions_of_runs`, and a prune's `delete_listed`: an array in PostgreSQL, a JSON array
//! in SQLite) and the way each
//! stores a batch of run events, the run recorder's hot path (`store_steps`: in SQLite,
//! multi-row statements with the transaction's `BEGIN` and `COMMIT` folded into the first and
//! last; in PostgreSQL, rows bound as column arrays in one transaction).

mod batch;
mod row;

use batch::{Arg, Step, batch_steps};

use row::{
    AssetRow, CacheRow, ExecutionRow, JsonText, PlannedNode, RunRow, UserRow, WorkflowRow,
    merge_planned,
};

/// SQL shared by both backends.
mod query {
    pub(super) const UPSERT_USER: &str = "INSERT INTO users (id, email, first_name, last_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) \
         ON CONFLICT (id) DO UPDATE SET email = excluded.email, first_name = excluded.first_name, \
         last_name = excluded.last_name, updated_at = excluded.updated_at \
         RETURNING id, email, first_name, last_name, created_at, updated_at";
    pub(super) const GET_USER: &str =
        "SELECT id, email, first_name, last_name, created_at, updated_at FROM users WHERE id = $1";
    pub(super) const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";

    pub(super) const INSERT_WORKFLOW: &str = "INSERT INTO workflows (id, owner_id, name, document, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5)";
    pub(super) const GET_WORKFLOW: &str = "SELECT id, owner_id, name, document, created_at, updated_at FROM workflows \
         WHERE id = $1 AND owner_id = $2";
    pub(super) const LIST_WORKFLOWS: &str = "SELECT id, owner_id, name, document, created_at, updated_at FROM workflows \
         WHERE owner_id = $1 ORDER BY updated_at DESC, id DESC LIMIT $2 OFFSET $3";
    pub(super) const UPDATE_WORKFLOW: &str = "UPDATE workflows SET name = COALESCE($3, name), document = COALESCE($4, document), \
         updated_at = $5 WHERE id = $1 AND owner_id = $2 \
         RETURNING id, owner_id, name, document, created_at, updated_at";
    pub(super) const DELETE_WORKFLOW: &str =
        "DELETE FROM workflows WHERE id = $1 AND owner_id = $2";
    pub(super) const USER_EXISTS: &str = "SELECT id FROM users WHERE id = $1";
    pub(super) const OWNED_WORKFLOW_EXISTS: &str =
        "SELECT id FROM workflows WHERE id = $1 AND owner_id = $2";

    pub(super) const SAVE_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, cache_scope) \
         SELECT $1, (SELECT w.id FROM workflows w WHERE w.id = $2), $3, $4, $5, $6, $7, $8, $9 WHERE TRUE \
         ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, trigger_type = excluded.trigger_type, \
         status = excluded.status, error = excluded.error, started_at = excluded.started_at, \
         finished_at = excluded.finished_at, cache_scope = excluded.cache_scope";
    pub(super) const UPDATE_RUN: &str = "UPDATE workflow_runs SET status = $2, error = $3, started_at = $4, finished_at = $5 \
         WHERE id = $1";
    pub(super) const START_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, cache_scope, planned_nodes) \
         SELECT $1, (SELECT w.id FROM workflows w WHERE w.id = $2), $3, $4, $5, $6, $7, $8, $9, $10 WHERE TRUE \
         ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, trigger_type = excluded.trigger_type, \
         status = excluded.status, error = excluded.error, started_at = excluded.started_at, \
         finished_at = excluded.finished_at, cache_scope = excluded.cache_scope, planned_nodes = excluded.planned_nodes";
    pub(super) const DELETE_RUN_EXECUTIONS: &str = "DELETE FROM node_executions WHERE run_id = $1";
    /// A resumed run keeps the completed executions of its earlier attempt: they are its
    /// resumable results until the new attempt records them again.
    pub(super) const DELETE_UNFINISHED_RUN_EXECUTIONS: &str =
        "DELETE FROM node_executions WHERE run_id = $1 AND status <> 'COMPLETED'";
    pub(super) const GET_RUN: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, cache_scope, planned_nodes \
         FROM workflow_runs WHERE id = $1";
    pub(super) const GET_OWNED_RUN: &str = "SELECT r.id, r.workflow_id, r.trigger_type, r.status, r.error, r.created_at, r.started_at, r.finished_at, r.cache_scope, r.planned_nodes \
         FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id WHERE r.id = $1 AND w.owner_id = $2";
    pub(super) const RUN_HISTORY: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, cache_scope, planned_nodes \
         FROM workflow_runs WHERE workflow_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3";
    pub(super) const INTERRUPTED_RUNS: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, cache_scope, planned_nodes \
         FROM workflow_runs WHERE status IN ('RUNNING', 'PENDING') ORDER BY created_at, id";
    pub(super) const MARK_RUN_INTERRUPTED: &str = "UPDATE workflow_runs SET status = 'FAILED', error = $2, finished_at = $3 \
         WHERE id = $1 AND status IN ('PENDING', 'RUNNING')";
    pub(super) const MARK_EXECUTIONS_INTERRUPTED: &str = "UPDATE node_executions SET status = 'FAILED', error = $2, finished_at = $3 \
         WHERE run_id = $1 AND status IN ('QUEUED', 'EXECUTING')";
    pub(super) const RUN_WORKFLOW: &str = "SELECT w.id, w.owner_id, w.name, w.document, w.created_at, w.updated_at \
         FROM workflows w JOIN workflow_runs r ON r.workflow_id = w.id WHERE r.id = $1";

    pub(super) const RUN_EXECUTIONS: &str = "SELECT run_id, node_id, seq, node_type, node_label, status, input_data, output_data, error, \
         cached, started_at, finished_at, duration_ms, attempts, cache_key FROM node_executions WHERE run_id = $1 ORDER BY seq, node_id";
    pub(super) const NEXT_EXECUTION_SEQ: &str =
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM node_executions WHERE run_id = $1";
    pub(super) const RUN_EXISTS: &str = "SELECT id FROM workflow_runs WHERE id = $1";

    /// The ended runs a retention deletes: ended before `$1` (NULL: none), or beyond the
    /// newest `$2` of their workflow (the runs of no workflow ranked together, as `PARTITION
    /// BY` does with NULLs).
    pub(super) const PRUNE_RUN_VICTIMS: &str = "SELECT id FROM (\
         SELECT id, COALESCE(finished_at, created_at) AS ended_at, \
         ROW_NUMBER() OVER (PARTITION BY workflow_id ORDER BY created_at DESC, id DESC) AS n \
         FROM workflow_runs WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED')) ranked \
         WHERE ended_at < $1 OR n > $2";
    /// The result-cache entries a retention deletes: written before `$1` (NULL: none), or
    /// beyond the newest `$2`.
    pub(super) const PRUNE_CACHE_VICTIMS: &str = "SELECT key FROM (\
         SELECT key, created_at, ROW_NUMBER() OVER (ORDER BY created_at DESC, key DESC) AS n \
         FROM cache_entries) ranked WHERE created_at < $1 OR n > $2";

    pub(super) const CACHE_GET: &str = "SELECT key, outputs FROM cache_entries WHERE key = $1";
    pub(super) const CACHE_PUT: &str = "INSERT INTO cache_entries (key, outputs, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET outputs = excluded.outputs, created_at = excluded.created_at";

    pub(super) const PUT_ASSET: &str = "INSERT INTO file_assets (id, name, bucket, key, mime_type, size, width, height, fps, duration, \
         metadata, extra, owner_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, bucket = excluded.bucket, key = excluded.key, \
         mime_type = excluded.mime_type, size = excluded.size, width = excluded.width, height = excluded.height, \
         fps = excluded.fps, duration = excluded.duration, metadata = excluded.metadata, extra = excluded.extra, \
         owner_id = excluded.owner_id";
    pub(super) const GET_ASSET: &str = "SELECT id, name, bucket, key, mime_type, size, width, height, fps, duration, metadata, extra \
         FROM file_assets WHERE id = $1";
    pub(super) const DELETE_ASSET: &str = "DELETE FROM file_assets WHERE id = $1";
    pub(super) const GET_OWNED_ASSET: &str = "SELECT a.id, a.name, a.bucket, a.key, a.mime_type, a.size, a.width, a.height, \
         a.fps, a.duration, a.metadata, a.extra FROM file_assets a \
         JOIN asset_owners o ON o.asset_id = a.id WHERE a.id = $1 AND o.user_id = $2";
    pub(super) const LIST_ASSETS: &str = "SELECT a.id, a.name, a.bucket, a.key, a.mime_type, a.size, a.width, a.height, \
         a.fps, a.duration, a.metadata, a.extra FROM asset_owners o \
         JOIN file_assets a ON a.id = o.asset_id WHERE o.user_id = $1 \
         ORDER BY o.created_at DESC, o.asset_id DESC LIMIT $2 OFFSET $3";
    /// Inserts a grant when the asset and the user exist and it is new (one row affected).
    pub(super) const GRANT_ASSET: &str = "INSERT INTO asset_owners (asset_id, user_id, created_at) \
         SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM file_assets WHERE id = $1) \
         AND EXISTS (SELECT 1 FROM users WHERE id = $2) \
         ON CONFLICT (asset_id, user_id) DO NOTHING";
    pub(super) const GRANT_EXISTS: &str =
        "SELECT user_id FROM asset_owners WHERE asset_id = $1 AND user_id = $2";
    pub(super) const ASSET_EXISTS: &str = "SELECT id FROM file_assets WHERE id = $1";
    pub(super) const REVOKE_ASSET: &str =
        "DELETE FROM asset_owners WHERE asset_id = $1 AND user_id = $2";
    pub(super) const ASSET_OWNERS: &str =
        "SELECT user_id FROM asset_owners WHERE asset_id = $1 ORDER BY created_at, user_id";
}

use crate::backend::{
    AssetRecordStore, Backend, BackendKind, CacheStore, RunStore, UserStore, WorkflowStore,
};
use crate::error::{Error, Result};
use crate::model::{
    NewUser, NewWorkflow, Page, RunHistoryEntry, StoredWorkflow, User, WorkflowUpdate,
};
use crate::write_plan::{normalize_execution, normalize_run, now, plan_batch};
use async_trait::async_trait;
use gatewai_core::{FileAsset, Generation, NodeExecution, RunEvent, RunRecord};
use std::sync::Arc;

/// A database error, with a unique-key violation reported as a conflict on `entity` `id`.
fn conflict_or(e: sqlx::Error, entity: &'static str, id: &str) -> Error {
    match &e {
        sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation => {
            Error::Conflict {
                entity,
                id: id.to_owned(),
            }
        }
        _ => Error::Database(e),
    }
}

/// Whether a statement failed on a foreign key (a row it names was deleted meanwhile).
fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// A value of a JSON column, serialized: bound as [`JsonText`], `TEXT` in SQLite and `JSON` in
/// PostgreSQL, which keeps the escape `\u0000` of a string's NUL character as written (the
/// `JSONB` these columns had refused it).
fn json_arg<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<JsonText> {
    serde_json::to_string(value)
        .map(JsonText)
        .map_err(|source| Error::Serialize { what, source })
}

/// Rows of a page: LIMIT and OFFSET as the databases take them.
fn limit_offset(page: Page) -> (i64, i64) {
    (
        i64::from(page.effective_limit()),
        i64::try_from(page.offset).unwrap_or(i64::MAX),
    )
}

fn to_i32(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Groups execution rows (ordered by run) by run id.
fn group_executions(
    rows: Vec<ExecutionRow>,
) -> Result<std::collections::HashMap<String, Vec<(i64, NodeExecution)>>> {
    let mut by_run: std::collections::HashMap<String, Vec<(i64, NodeExecution)>> =
        std::collections::HashMap::new();
    for row in rows {
        let (run_id, seq) = (row.run_id.clone(), row.seq);
        by_run
            .entry(run_id)
            .or_default()
            .push((seq, NodeExecution::try_from(row)?));
    }
    Ok(by_run)
}

/// Runs deleted per statement (each takes its node executions along) while pruning.
const PRUNE_RUNS_AT_ONCE: usize = 100;

/// Result-cache entries deleted per statement while pruning.
const PRUNE_CACHE_AT_ONCE: usize = 500;

/// Execution rows with their queue position.
fn with_seq(rows: Vec<ExecutionRow>) -> Result<Vec<(i64, NodeExecution)>> {
    rows.into_iter()
        .map(|row| Ok((row.seq, NodeExecution::try_from(row)?)))
        .collect()
}

/// Implements every store trait for a backend struct with `read` and `write` pools of one
/// sqlx database type. The SQL is the same for every database (but for the few statements
/// each backend runs its own way: see the module's documentation).
macro_rules! sql_backend {
    ($name:ident, $db:ty, $kind:expr) => {
        impl $name {
            /// Binds a statement's arguments.
            fn bind_args(
                into: &mut <$db as sqlx::Database>::Arguments,
                args: Vec<Arg<'_>>,
            ) -> Result<()> {
                use sqlx::Arguments as _;
                for arg in args {
                    match arg {
                        Arg::Str(v) => into.add(v),
                        Arg::OptStr(v) => into.add(v),
                        Arg::Time(v) => into.add(v),
                        Arg::OptTime(v) => into.add(v),
                        Arg::Json(v) => into.add(row::JsonText(v)),
                    }
                    .map_err(|e| Error::Database(sqlx::Error::Encode(e)))?;
                }
                Ok(())
            }

            /// A page of an owner's rows (`sql` takes the owner, the limit and the offset),
            /// each made a `T`: the owner-scoped listings.
            async fn owned_page<R, T>(
                &self,
                sql: &'static str,
                owner_id: &str,
                page: Page,
            ) -> Result<Vec<T>>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = Error>,
            {
                let (limit, offset) = limit_offset(page);
                sqlx::query_as::<$db, R>(sql)
                    .bind(owner_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.read)
                    .await?
                    .into_iter()
                    .map(T::try_from)
                    .collect()
            }

            async fn save_run_row(
                conn: &mut <$db as sqlx::Database>::Connection,
                run: &RunRecord,
            ) -> Result<()> {
                let run = normalize_run(run);
                sqlx::query::<$db>(query::SAVE_RUN)
                    .bind(&run.id)
                    .bind(&run.workflow_id)
                    .bind(trigger_name(run.trigger_type))
                    .bind(run.status.as_str())
                    .bind(&run.error)
                    .bind(run.created_at)
                    .bind(run.started_at)
                    .bind(run.finished_at)
                    .bind(&run.cache_scope)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// A run's executions: its rows and its planned nodes without one.
            async fn fetch_executions(
                conn: &mut <$db as sqlx::Database>::Connection,
                run_id: &str,
                planned: &[PlannedNode],
            ) -> Result<Vec<NodeExecution>> {
                let rows = sqlx::query_as::<$db, ExecutionRow>(query::RUN_EXECUTIONS)
                    .bind(run_id)
                    .fetch_all(&mut *conn)
                    .await?;
                Ok(merge_planned(run_id, planned, with_seq(rows)?))
            }

            /// A page of a workflow's runs, newest first.
            pub(super) async fn history_page(
                conn: &mut <$db as sqlx::Database>::Connection,
                workflow_id: &str,
                page: Page,
            ) -> Result<Vec<RunRow>> {
                let (limit, offset) = limit_offset(page);
                Ok(sqlx::query_as::<$db, RunRow>(query::RUN_HISTORY)
                    .bind(workflow_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *conn)
                    .await?)
            }

            /// The runs of a history page, each with its executions. The executions are read
            /// by the ids of these runs, not by paging the workflow's runs again: a run
            /// started since the page was read would shift that page, and the last run of this
            /// one would show none of its executions.
            pub(super) async fn history_entries(
                conn: &mut <$db as sqlx::Database>::Connection,
                runs: Vec<RunRow>,
            ) -> Result<Vec<RunHistoryEntry>> {
                let runs = runs
                    .into_iter()
                    .map(RunRow::into_parts)
                    .collect::<Result<Vec<_>>>()?;
                if runs.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<&str> = runs.iter().map(|(run, _)| run.id.as_str()).collect();
                let rows = Self::executions_of_runs(conn, &ids).await?;
                let mut executions = group_executions(rows)?;
                Ok(runs
                    .into_iter()
                    .map(|(run, planned)| {
                        let rows = executions.remove(&run.id).unwrap_or_default();
                        let executions = merge_planned(&run.id, &planned, rows);
                        RunHistoryEntry { run, executions }
                    })
                    .collect())
            }

            /// A run and its planned nodes.
            async fn fetch_run(
                conn: &mut <$db as sqlx::Database>::Connection,
                run_id: &str,
            ) -> Result<Option<(RunRecord, Vec<PlannedNode>)>> {
                sqlx::query_as::<$db, RunRow>(query::GET_RUN)
                    .bind(run_id)
                    .fetch_optional(&mut *conn)
                    .await?
                    .map(RunRow::into_parts)
                    .transpose()
            }

            async fn owned_workflow_exists(&self, owner_id: &str, id: &str) -> Result<bool> {
                Ok(sqlx::query::<$db>(query::OWNED_WORKFLOW_EXISTS)
                    .bind(id)
                    .bind(owner_id)
                    .fetch_optional(&self.read)
                    .await?
                    .is_some())
            }
        }

        #[async_trait]
        impl UserStore for $name {
            async fn upsert_user(&self, user: &NewUser) -> Result<User> {
                crate::argument::user(user)?;
                let row = sqlx::query_as::<$db, UserRow>(query::UPSERT_USER)
                    .bind(&user.id)
                    .bind(&user.email)
                    .bind(&user.first_name)
                    .bind(&user.last_name)
                    .bind(now())
                    .fetch_one(&self.write)
                    .await?;
                Ok(row.into())
            }

            async fn get_user(&self, id: &str) -> Result<Option<User>> {
                Ok(sqlx::query_as::<$db, UserRow>(query::GET_USER)
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(User::from))
            }

            async fn delete_user(&self, id: &str) -> Result<()> {
                let done = sqlx::query::<$db>(query::DELETE_USER)
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found("user", id));
                }
                Ok(())
            }
        }

        #[async_trait]
        impl WorkflowStore for $name {
            async fn create_workflow(
                &self,
                owner_id: &str,
                workflow: NewWorkflow,
            ) -> Result<StoredWorkflow> {
                let id = crate::argument::new_workflow(&workflow)?;
                let mut document = workflow.document;
                document.id = Some(id.clone());
                document.name = Some(workflow.name.clone());
                let json = json_arg("a workflow document", &document)?;
                let mut tx = self.write.begin().await?;
                if sqlx::query::<$db>(query::USER_EXISTS)
                    .bind(owner_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_none()
                {
                    return Err(Error::not_found("user", owner_id));
                }
                let now = now();
                sqlx::query::<$db>(query::INSERT_WORKFLOW)
                    .bind(&id)
                    .bind(owner_id)
                    .bind(&workflow.name)
                    .bind(json)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| conflict_or(e, "workflow", &id))?;
                tx.commit().await?;
                Ok(StoredWorkflow {
                    id,
                    owner_id: owner_id.to_owned(),
                    name: workflow.name,
                    document,
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn get_workflow(
                &self,
                owner_id: &str,
                id: &str,
            ) -> Result<Option<StoredWorkflow>> {
                sqlx::query_as::<$db, WorkflowRow>(query::GET_WORKFLOW)
                    .bind(id)
                    .bind(owner_id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(StoredWorkflow::try_from)
                    .transpose()
            }

            async fn list_workflows(
                &self,
                owner_id: &str,
                page: Page,
            ) -> Result<Vec<StoredWorkflow>> {
                self.owned_page::<WorkflowRow, _>(query::LIST_WORKFLOWS, owner_id, page)
                    .await
            }

            async fn update_workflow(
                &self,
                owner_id: &str,
                id: &str,
                update: WorkflowUpdate,
            ) -> Result<StoredWorkflow> {
                crate::argument::workflow_update(&update)?;
                let document = update
                    .document
                    .map(|mut d| {
                        d.id = Some(id.to_owned());
                        d.name = None;
                        json_arg("a workflow document", &d)
                    })
                    .transpose()?;
                sqlx::query_as::<$db, WorkflowRow>(query::UPDATE_WORKFLOW)
                    .bind(id)
                    .bind(owner_id)
                    .bind(update.name)
                    .bind(document)
                    .bind(now())
                    .fetch_optional(&self.write)
                    .await?
                    .map(StoredWorkflow::try_from)
                    .transpose()?
                    .ok_or_else(|| Error::not_found("workflow", id))
            }

            async fn delete_workflow(&self, owner_id: &str, id: &str) -> Result<()> {
                let done = sqlx::query::<$db>(query::DELETE_WORKFLOW)
                    .bind(id)
                    .bind(owner_id)
                    .execute(&self.write)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found("workflow", id));
                }
                Ok(())
            }
        }

        #[async_trait]
        impl RunStore for $name {
            async fn save_run(&self, run: &RunRecord) -> Result<()> {
                crate::argument::run(run)?;
                let mut conn = self.write.acquire().await?;
                Self::save_run_row(&mut conn, run).await
            }

            async fn update_run(&self, run: &RunRecord) -> Result<()> {
                let run = normalize_run(run);
                let done = sqlx::query::<$db>(query::UPDATE_RUN)
                    .bind(&run.id)
                    .bind(run.status.as_str())
                    .bind(&run.error)
                    .bind(run.started_at)
                    .bind(run.finished_at)
                    .execute(&self.write)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found("run", &run.id));
                }
                Ok(())
            }

            async fn get_run(&self, run_id: &str) -> Result<Option<RunRecord>> {
                sqlx::query_as::<$db, RunRow>(query::GET_RUN)
                    .bind(run_id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(RunRecord::try_from)
                    .transpose()
            }

            async fn save_node_execution(&self, execution: &NodeExecution) -> Result<()> {
                crate::argument::execution(execution)?;
                let execution = normalize_execution(execution);
                let mut tx = self.write.begin().await?;
                if sqlx::query::<$db>(query::RUN_EXISTS)
                    .bind(&*execution.run_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_none()
                {
                    return Err(Error::not_found("run", &*execution.run_id));
                }
                let seq: i64 = sqlx::query_scalar::<$db, i64>(query::NEXT_EXECUTION_SEQ)
                    .bind(&*execution.run_id)
                    .fetch_one(&mut *tx)
                    .await?;
                Self::write_executions(&mut tx, &[(seq, &execution)]).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn node_executions(&self, run_id: &str) -> Result<Vec<NodeExecution>> {
                let mut conn = self.read.acquire().await?;
                let planned = match Self::fetch_run(&mut conn, run_id).await? {
                    Some((_, planned)) => planned,
                    None => Vec::new(),
                };
                Self::fetch_executions(&mut conn, run_id, &planned).await
            }

            async fn get_run_entry(
                &self,
                owner_id: &str,
                run_id: &str,
            ) -> Result<Option<RunHistoryEntry>> {
                let mut conn = self.read.acquire().await?;
                let Some(row) = sqlx::query_as::<$db, RunRow>(query::GET_OWNED_RUN)
                    .bind(run_id)
                    .bind(owner_id)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(None);
                };
                let (run, planned) = row.into_parts()?;
                let executions = Self::fetch_executions(&mut conn, run_id, &planned).await?;
                Ok(Some(RunHistoryEntry { run, executions }))
            }

            async fn run_history(
                &self,
                owner_id: &str,
                workflow_id: &str,
                page: Page,
            ) -> Result<Vec<RunHistoryEntry>> {
                if !self.owned_workflow_exists(owner_id, workflow_id).await? {
                    return Err(Error::not_found("workflow", workflow_id));
                }
                let mut conn = self.read.acquire().await?;
                let runs = Self::history_page(&mut conn, workflow_id, page).await?;
                Self::history_entries(&mut conn, runs).await
            }

            async fn record_events(&self, events: &[RunEvent]) -> Result<()> {
                let writes = plan_batch(events);
                if writes.is_empty() {
                    return Ok(());
                }
                let steps = batch_steps(&writes)?;
                self.store_steps(steps).await?;
                // SQLite: checkpoints the log in the background now and then.
                self.wrote(writes.len());
                Ok(())
            }

            async fn find_interrupted_runs(&self) -> Result<Vec<RunRecord>> {
                sqlx::query_as::<$db, RunRow>(query::INTERRUPTED_RUNS)
                    .fetch_all(&self.read)
                    .await?
                    .into_iter()
                    .map(RunRecord::try_from)
                    .collect()
            }

            async fn mark_interrupted(&self, run_id: &str) -> Result<()> {
                let now = now();
                let mut tx = self.write.begin().await?;
                // Planned nodes without a row get one, so that every unfinished node is marked.
                let Some((run, planned)) = Self::fetch_run(&mut tx, run_id).await? else {
                    return Err(Error::not_found("run", run_id));
                };
                if run.status.is_terminal() {
                    return Err(Error::run_already_ended(run_id, Some(run.status)));
                }
                if !planned.is_empty() {
                    let rows = sqlx::query_as::<$db, ExecutionRow>(query::RUN_EXECUTIONS)
                        .bind(run_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let present: std::collections::HashSet<Arc<str>> = with_seq(rows)?
                        .into_iter()
                        .map(|(_, e)| e.node_id)
                        .collect();
                    let missing: Vec<(i64, NodeExecution)> = planned
                        .iter()
                        .filter(|p| !present.contains(&*p.node_id))
                        .map(|p| (p.seq, p.to_execution(run_id)))
                        .collect();
                    let refs: Vec<(i64, &NodeExecution)> =
                        missing.iter().map(|(seq, e)| (*seq, e)).collect();
                    Self::write_executions(&mut tx, &refs).await?;
                }
                let done = sqlx::query::<$db>(query::MARK_RUN_INTERRUPTED)
                    .bind(run_id)
                    .bind(crate::INTERRUPTED)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    // Another process ended the run after it was read above (PostgreSQL
                    // re-checks the `WHERE` on a row updated meanwhile); nothing is committed.
                    return Err(Error::run_already_ended(run_id, None));
                }
                sqlx::query::<$db>(query::MARK_EXECUTIONS_INTERRUPTED)
                    .bind(run_id)
                    .bind(crate::INTERRUPTED)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn run_workflow(&self, run_id: &str) -> Result<Option<StoredWorkflow>> {
                sqlx::query_as::<$db, WorkflowRow>(query::RUN_WORKFLOW)
                    .bind(run_id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(StoredWorkflow::try_from)
                    .transpose()
            }

            async fn prune_runs(&self, retention: &crate::model::Retention) -> Result<u64> {
                let retention = retention.normalized();
                self.prune_rows(
                    query::PRUNE_RUN_VICTIMS,
                    retention.runs_ended_before,
                    retention.runs_per_workflow,
                    Self::PRUNE_RUNS,
                    PRUNE_RUNS_AT_ONCE,
                )
                .await
            }
        }

        impl $name {
            /// Deletes the rows `victims` selects (their ids, given a time `$1` and a count
            /// `$2`) with `delete` (given a list of ids, bound as the backend binds one, as in
            /// `executions_of_runs`), `at_once` per statement, each committed on its own; how
            /// many went.
            async fn prune_rows(
                &self,
                victims: &'static str,
                before: Option<chrono::DateTime<chrono::Utc>>,
                keep: Option<u64>,
                delete: &'static str,
                at_once: usize,
            ) -> Result<u64> {
                let ids: Vec<(String,)> = sqlx::query_as::<$db, (String,)>(victims)
                    .bind(before)
                    .bind(keep.map_or(i64::MAX, to_i64))
                    .fetch_all(&self.read)
                    .await?;
                let mut deleted = 0;
                let ids: Vec<&str> = ids.iter().map(|(id,)| id.as_str()).collect();
                for chunk in ids.chunks(at_once) {
                    let rows = self.delete_listed(delete, chunk).await?;
                    deleted += rows;
                    // SQLite: the deletions count towards the background checkpoint too.
                    self.wrote(usize::try_from(rows).unwrap_or(usize::MAX));
                }
                Ok(deleted)
            }
        }

        #[async_trait]
        impl CacheStore for $name {
            async fn prune_cache(&self, retention: &crate::model::Retention) -> Result<u64> {
                let retention = retention.normalized();
                self.prune_rows(
                    query::PRUNE_CACHE_VICTIMS,
                    retention.cache_written_before,
                    retention.cache_entries,
                    Self::PRUNE_CACHE,
                    PRUNE_CACHE_AT_ONCE,
                )
                .await
            }

            async fn cache_get(
                &self,
                key: &gatewai_core::CacheKey,
            ) -> Result<Option<Vec<Generation>>> {
                sqlx::query_as::<$db, CacheRow>(query::CACHE_GET)
                    .bind(key.to_hex())
                    .fetch_optional(&self.read)
                    .await?
                    .map(Vec::<Generation>::try_from)
                    .transpose()
            }

            async fn cache_put(
                &self,
                key: &gatewai_core::CacheKey,
                outputs: &[Generation],
            ) -> Result<()> {
                sqlx::query::<$db>(query::CACHE_PUT)
                    .bind(key.to_hex())
                    .bind(json_arg("a result-cache entry", outputs)?)
                    .bind(now())
                    .execute(&self.write)
                    .await?;
                Ok(())
            }
        }

        #[async_trait]
        impl AssetRecordStore for $name {
            async fn put_asset_record(
                &self,
                asset: &FileAsset,
                owner_id: Option<&str>,
            ) -> Result<()> {
                crate::argument::asset(asset, owner_id)?;
                let metadata = asset
                    .metadata
                    .as_ref()
                    .map(|m| json_arg("an asset's metadata", m))
                    .transpose()?;
                let extra = (!asset.extra.is_empty())
                    .then(|| json_arg("an asset's extra fields", &asset.extra))
                    .transpose()?;
                let now = now();
                let mut tx = self.write.begin().await?;
                sqlx::query::<$db>(query::PUT_ASSET)
                    .bind(&asset.id)
                    .bind(&asset.name)
                    .bind(&asset.bucket)
                    .bind(&asset.key)
                    .bind(&asset.mime_type)
                    .bind(to_i64(asset.size))
                    .bind(asset.width.map(to_i32))
                    .bind(asset.height.map(to_i32))
                    .bind(asset.fps)
                    .bind(asset.duration)
                    .bind(metadata)
                    .bind(extra)
                    .bind(owner_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(owner) = owner_id {
                    // No such owner (or one deleted meanwhile): nothing is stored (dropping
                    // the transaction rolls it back).
                    let granted = sqlx::query::<$db>(query::GRANT_ASSET)
                        .bind(&asset.id)
                        .bind(owner)
                        .bind(now)
                        .execute(&mut *tx)
                        .await;
                    let missing = || Error::not_found("user", owner);
                    match granted {
                        Ok(done) if done.rows_affected() > 0 => {}
                        Ok(_) => {
                            sqlx::query::<$db>(query::GRANT_EXISTS)
                                .bind(&asset.id)
                                .bind(owner)
                                .fetch_optional(&mut *tx)
                                .await?
                                .ok_or_else(missing)?;
                        }
                        Err(e) if is_foreign_key_violation(&e) => return Err(missing()),
                        Err(e) => return Err(e.into()),
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_asset_record(&self, id: &str) -> Result<Option<FileAsset>> {
                if !crate::argument::may_be_stored(id) {
                    return Ok(None);
                }
                sqlx::query_as::<$db, AssetRow>(query::GET_ASSET)
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(FileAsset::try_from)
                    .transpose()
            }

            async fn get_owned_asset(&self, owner_id: &str, id: &str) -> Result<Option<FileAsset>> {
                if !crate::argument::may_be_stored(id) || !crate::argument::may_be_stored(owner_id)
                {
                    return Ok(None);
                }
                sqlx::query_as::<$db, AssetRow>(query::GET_OWNED_ASSET)
                    .bind(id)
                    .bind(owner_id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(FileAsset::try_from)
                    .transpose()
            }

            async fn list_assets(&self, owner_id: &str, page: Page) -> Result<Vec<FileAsset>> {
                if !crate::argument::may_be_stored(owner_id) {
                    return Ok(Vec::new());
                }
                self.owned_page::<AssetRow, _>(query::LIST_ASSETS, owner_id, page)
                    .await
            }

            async fn grant_asset(&self, asset_id: &str, user_id: &str) -> Result<bool> {
                crate::argument::grant(asset_id, user_id)?;
                // One statement, atomic on its own. When it inserts nothing (or a concurrent
                // delete of the asset or the user makes its foreign key fail), the state it
                // met is looked at again: granted already, the asset missing, or the user
                // missing; both there by then (created meanwhile) is another try.
                for _ in 0..3 {
                    let inserted = sqlx::query::<$db>(query::GRANT_ASSET)
                        .bind(asset_id)
                        .bind(user_id)
                        .bind(now())
                        .execute(&self.write)
                        .await;
                    match inserted {
                        Ok(done) if done.rows_affected() > 0 => return Ok(true),
                        Ok(_) => {}
                        Err(e) if is_foreign_key_violation(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let found =
                        |sql: &'static str, id: &str| sqlx::query::<$db>(sql).bind(id.to_owned());
                    let granted = sqlx::query::<$db>(query::GRANT_EXISTS)
                        .bind(asset_id)
                        .bind(user_id)
                        .fetch_optional(&self.write)
                        .await?;
                    if granted.is_some() {
                        return Ok(false);
                    }
                    if found(query::ASSET_EXISTS, asset_id)
                        .fetch_optional(&self.write)
                        .await?
                        .is_none()
                    {
                        return Err(Error::not_found("asset", asset_id));
                    }
                    if found(query::USER_EXISTS, user_id)
                        .fetch_optional(&self.write)
                        .await?
                        .is_none()
                    {
                        return Err(Error::not_found("user", user_id));
                    }
                }
                Err(Error::Conflict {
                    entity: "asset grant",
                    id: format!("{asset_id} to {user_id}"),
                })
            }

            async fn revoke_asset(&self, asset_id: &str, user_id: &str) -> Result<bool> {
                if !crate::argument::may_be_stored(asset_id)
                    || !crate::argument::may_be_stored(user_id)
                {
                    return Ok(false);
                }
                let done = sqlx::query::<$db>(query::REVOKE_ASSET)
                    .bind(asset_id)
                    .bind(user_id)
                    .execute(&self.write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn asset_owners(&self, asset_id: &str) -> Result<Vec<String>> {
                if !crate::argument::may_be_stored(asset_id) {
                    return Ok(Vec::new());
                }
                let rows: Vec<(String,)> = sqlx::query_as::<$db, (String,)>(query::ASSET_OWNERS)
                    .bind(asset_id)
                    .fetch_all(&self.read)
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn delete_asset_record(&self, id: &str) -> Result<bool> {
                if !crate::argument::may_be_stored(id) {
                    return Ok(false);
                }
                let done = sqlx::query::<$db>(query::DELETE_ASSET)
                    .bind(id)
                    .execute(&self.write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl Backend for $name {
            fn kind(&self) -> BackendKind {
                $kind
            }

            async fn close(&self) {
                self.write.close().await;
                self.read.close().await;
            }
        }
    };
}

/// The wire name of a trigger type (`"MANUAL"`, …).
fn trigger_name(trigger: gatewai_core::TriggerType) -> &'static str {
    use gatewai_core::TriggerType;
    match trigger {
        TriggerType::Manual => "MANUAL",
        TriggerType::Api => "API",
        TriggerType::Schedule => "SCHEDULE",
        TriggerType::Webhook => "WEBHOOK",
        TriggerType::Resume => "RESUME",
    }
}

#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBackend;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;

#[cfg(test)]
mod tests {
    use super::trigger_name;
    use crate::backend::{Backend, RunStore};
    use chrono::{Duration, Utc};
    use gatewai_core::{
        ErrorKind, EventKind, ExecutionStatus, NodeExecution, NodeResult, ResultSource, RunEvent,
        RunRecord, RunStatus, SkipReason, TriggerType,
    };
    use serde_json::json;
    use std::sync::Arc;

    #[cfg(feature = "memory")]
    /// Batches of every shape the recorder meets: a run start with its queued nodes; starts
    /// and retries of nodes queued earlier, a node completed without being seen starting, a
    /// node queued after the start batch; terminal records; the run's end.
    fn batches(run_id: &str) -> Vec<Vec<RunEvent>> {
        let run_id: Arc<str> = Arc::from(run_id);
        let t0 = Utc::now();
        let mut seq = 0;
        let mut event = |kind: EventKind| {
            seq += 1;
            RunEvent {
                run_id: run_id.clone(),
                seq: seq - 1,
                // Nanoseconds, which every backend keeps to the microsecond.
                at: t0 + Duration::nanoseconds(1_234_567 * i64::try_from(seq).unwrap()),
                kind,
            }
        };
        let run = |status: RunStatus, finished: bool| {
            Arc::new(RunRecord {
                id: run_id.to_string(),
                workflow_id: None,
                trigger_type: TriggerType::Api,
                status,
                error: None,
                created_at: t0,
                started_at: Some(t0),
                finished_at: finished.then(|| t0 + Duration::milliseconds(5)),
                cache_scope: None,
            })
        };
        let queued = |node: &str| EventKind::NodeQueued {
            node_id: Arc::from(node),
            node_type: Arc::from("Sum"),
            label: Arc::from(format!("Sum {node}")),
        };
        let started = |node: &str, attempt: u32| EventKind::NodeStarted {
            node_id: Arc::from(node),
            attempt,
        };
        let record = |node: &str, status: ExecutionStatus, output: bool| {
            Arc::new(NodeExecution {
                run_id: run_id.clone(),
                node_id: Arc::from(node),
                node_type: Arc::from("Sum"),
                label: Arc::from(format!("Sum {node}")),
                status,
                input: output.then(|| json!({"in": [1, "two", {"x": null}]}).into()),
                output: output.then(|| Arc::new(NodeResult::default())),
                error: (status == ExecutionStatus::Skipped).then(|| "upstream failed".into()),
                cached: node == "c",
                started_at: output.then(|| t0 + Duration::nanoseconds(1_500)),
                finished_at: output.then(|| t0 + Duration::nanoseconds(2_000_001)),
                duration_ms: output.then_some(2),
                attempts: u32::from(output),
                cache_key: output.then_some(gatewai_core::CacheKey([0xc5; 32])),
            })
        };
        let completed = |node: &str| EventKind::NodeCompleted {
            node_id: Arc::from(node),
            source: ResultSource::Executed,
            result: Arc::new(NodeResult::default()),
            record: record(node, ExecutionStatus::Completed, true),
        };
        vec![
            vec![
                event(EventKind::RunStarted {
                    run: run(RunStatus::Running, false),
                    node_count: 5,
                }),
                event(queued("a")),
                event(queued("b")),
                event(queued("c")),
                event(queued("d")),
            ],
            vec![
                event(started("a", 1)),
                event(started("b", 1)),
                event(EventKind::NodeFailed {
                    node_id: Arc::from("b"),
                    error: Arc::from("flaky"),
                    kind: ErrorKind::Unavailable,
                    attempt: 1,
                    will_retry: true,
                    record: None,
                }),
                event(started("b", 2)),
                event(completed("c")),
                event(queued("e")),
            ],
            vec![
                event(completed("a")),
                event(completed("b")),
                event(EventKind::NodeSkipped {
                    node_id: Arc::from("d"),
                    reason: SkipReason::NotTaken {
                        node_id: Arc::from("a"),
                    },
                    record: record("d", ExecutionStatus::Skipped, false),
                }),
                event(EventKind::RunFinished {
                    run: run(RunStatus::Completed, true),
                }),
            ],
        ]
    }

    #[cfg(feature = "memory")]
    /// Records the batches into `store` and into a memory store, comparing what each holds
    /// after every batch: the SQL writes (planned nodes, multi-row and column-array
    /// statements, progress updates) store what the memory backend's plain writes do.
    async fn records_every_batch_shape_like_memory(store: &dyn Backend) {
        let memory = crate::memory::MemoryBackend::new();
        let run_id = format!("run-{}", uuid::Uuid::new_v4());
        for (i, batch) in batches(&run_id).iter().enumerate() {
            store.record_events(batch).await.unwrap();
            memory.record_events(batch).await.unwrap();
            let stored = store.node_executions(&run_id).await.unwrap();
            let expected = memory.node_executions(&run_id).await.unwrap();
            assert_eq!(stored, expected, "after batch {i}");
            assert_eq!(
                store.get_run(&run_id).await.unwrap(),
                memory.get_run(&run_id).await.unwrap(),
                "after batch {i}"
            );
        }
        let stored = store.node_executions(&run_id).await.unwrap();
        let status: Vec<(&str, ExecutionStatus, u32)> = stored
            .iter()
            .map(|e| (&*e.node_id, e.status, e.attempts))
            .collect();
        assert_eq!(
            status,
            [
                ("a", ExecutionStatus::Completed, 1),
                ("b", ExecutionStatus::Completed, 1),
                ("c", ExecutionStatus::Completed, 1),
                ("d", ExecutionStatus::Skipped, 0),
                ("e", ExecutionStatus::Queued, 0),
            ]
        );
    }

    #[cfg(all(feature = "sqlite", feature = "memory"))]
    #[tokio::test]
    async fn sqlite_records_every_batch_shape_like_memory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = super::SqliteBackend::connect(&url).await.unwrap();
        records_every_batch_shape_like_memory(&store).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_a_batch_failing_half_way_leaves_nothing_and_the_store_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = super::SqliteBackend::connect(&url).await.unwrap();
        let run_id = format!("run-{}", uuid::Uuid::new_v4());
        let batches = batches(&run_id);
        // The run starts and queues its nodes, and in the same batch a node completes with a
        // record of a run that was never stored: its row breaks the foreign key, in the
        // batch's last statement, after the run's own row was written.
        let mut failing = batches[0].clone();
        let mut orphan = batches[1][4].clone();
        let EventKind::NodeCompleted { record, .. } = &mut orphan.kind else {
            panic!("batch 1 event 4 completes a node");
        };
        let mut broken = (**record).clone();
        broken.run_id = Arc::from("never-stored");
        *record = Arc::new(broken);
        failing.push(orphan);
        assert!(store.record_events(&failing).await.is_err());
        assert_eq!(store.get_run(&run_id).await.unwrap(), None, "rolled back");

        // The writer goes on (no transaction left open): the run stores completely.
        for batch in &batches {
            store.record_events(batch).await.unwrap();
        }
        assert_eq!(store.node_executions(&run_id).await.unwrap().len(), 5);
        let stored = store.get_run(&run_id).await.unwrap().unwrap();
        assert_eq!(stored.status, RunStatus::Completed);
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_history_reads_the_executions_of_the_runs_it_listed() {
        use crate::backend::{UserStore, WorkflowStore};
        use crate::model::{NewUser, NewWorkflow, Page};
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = super::SqliteBackend::connect(&url).await.unwrap();
        store
            .upsert_user(&NewUser::new("alice", "alice@example.com"))
            .await
            .unwrap();
        let wf = store
            .create_workflow(
                "alice",
                NewWorkflow::new("Busy", gatewai_core::Workflow::default()),
            )
            .await
            .unwrap();
        let t0 = Utc::now();
        let save = |id: &str, minutes: i64| {
            let at = t0 + Duration::minutes(minutes);
            let run = RunRecord {
                id: id.to_owned(),
                workflow_id: Some(wf.id.clone()),
                trigger_type: TriggerType::Api,
                status: RunStatus::Running,
                error: None,
                created_at: at,
                started_at: Some(at),
                finished_at: None,
                cache_scope: None,
            };
            let execution = NodeExecution {
                run_id: Arc::from(id),
                node_id: Arc::from("n0"),
                node_type: Arc::from("Sum"),
                label: Arc::from("Sum n0"),
                status: ExecutionStatus::Completed,
                input: None,
                output: Some(Arc::new(NodeResult::default())),
                error: None,
                cached: false,
                started_at: Some(at),
                finished_at: Some(at),
                duration_ms: Some(1),
                attempts: 1,
                cache_key: None,
            };
            let store = &store;
            async move {
                store.save_run(&run).await.unwrap();
                store.save_node_execution(&execution).await.unwrap();
            }
        };
        for i in 0..4 {
            save(&format!("run-{i}"), i).await;
        }
        // `run_history`'s two reads, with a run started between them (on a connection of
        // the test's: the store's readers cannot be paused between two statements).
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        let page = super::SqliteBackend::history_page(&mut conn, &wf.id, Page::first(2))
            .await
            .unwrap();
        save("run-new", 10).await;
        let entries = super::SqliteBackend::history_entries(&mut conn, page)
            .await
            .unwrap();
        let listed: Vec<(&str, Vec<&str>)> = entries
            .iter()
            .map(|e| {
                let of_runs = e.executions.iter().map(|x| &*x.run_id).collect();
                (e.run.id.as_str(), of_runs)
            })
            .collect();
        assert_eq!(
            listed,
            [("run-3", vec!["run-3"]), ("run-2", vec!["run-2"])],
            "each run listed with its own executions"
        );
        assert!(
            entries
                .iter()
                .flat_map(|e| &e.executions)
                .all(|e| e.status == ExecutionStatus::Completed)
        );
        let empty = super::SqliteBackend::history_entries(&mut conn, Vec::new())
            .await
            .unwrap();
        assert!(empty.is_empty());
        conn.close().await.unwrap();
        store.close().await;
    }

    #[cfg(all(feature = "postgres", feature = "memory"))]
    #[tokio::test]
    async fn postgres_records_every_batch_shape_like_memory() {
        let url = match std::env::var("GATEWAI_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true: GATEWAI_TEST_POSTGRES_URL must name a PostgreSQL server")
            }
            _ => {
                eprintln!("note: PostgreSQL test skipped (GATEWAI_TEST_POSTGRES_URL unset)");
                return;
            }
        };
        // A database of its own, dropped at the end.
        use sqlx::Connection;
        let name = format!("gatewai_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        let mut db_url = url::Url::parse(&url).unwrap();
        db_url.set_path(&name);
        let store = super::PostgresBackend::connect(db_url.as_str())
            .await
            .unwrap();
        records_every_batch_shape_like_memory(&store).await;
        store.close().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }

    #[test]
    fn trigger_names_match_serde() {
        for t in [
            TriggerType::Manual,
            TriggerType::Api,
            TriggerType::Schedule,
            TriggerType::Webhook,
            TriggerType::Resume,
        ] {
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::Value::String(trigger_name(t).into())
            );
        }
    }
}
