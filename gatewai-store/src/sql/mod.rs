//! The SQL backends, SQLite and PostgreSQL, written once over sqlx: both speak the same SQL
//! (numbered `$n` parameters, `ON CONFLICT … DO UPDATE`, `RETURNING`), and differ only in
//! their migrations (column types) and connection set-up.

mod row;

use row::{
    AssetRow, CacheRow, ExecutionRow, PlannedNode, RunRow, UserRow, WorkflowRow, merge_planned,
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

    pub(super) const SAVE_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at) \
         SELECT $1, (SELECT w.id FROM workflows w WHERE w.id = $2), $3, $4, $5, $6, $7, $8 WHERE TRUE \
         ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, trigger_type = excluded.trigger_type, \
         status = excluded.status, error = excluded.error, started_at = excluded.started_at, \
         finished_at = excluded.finished_at";
    pub(super) const UPDATE_RUN: &str = "UPDATE workflow_runs SET status = $2, error = $3, started_at = $4, finished_at = $5 \
         WHERE id = $1";
    pub(super) const START_RUN: &str = "INSERT INTO workflow_runs (id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, planned_nodes) \
         SELECT $1, (SELECT w.id FROM workflows w WHERE w.id = $2), $3, $4, $5, $6, $7, $8, $9 WHERE TRUE \
         ON CONFLICT (id) DO UPDATE SET workflow_id = excluded.workflow_id, trigger_type = excluded.trigger_type, \
         status = excluded.status, error = excluded.error, started_at = excluded.started_at, \
         finished_at = excluded.finished_at, planned_nodes = excluded.planned_nodes";
    pub(super) const DELETE_RUN_EXECUTIONS: &str = "DELETE FROM node_executions WHERE run_id = $1";
    pub(super) const GET_RUN: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, planned_nodes \
         FROM workflow_runs WHERE id = $1";
    pub(super) const GET_OWNED_RUN: &str = "SELECT r.id, r.workflow_id, r.trigger_type, r.status, r.error, r.created_at, r.started_at, r.finished_at, r.planned_nodes \
         FROM workflow_runs r JOIN workflows w ON w.id = r.workflow_id WHERE r.id = $1 AND w.owner_id = $2";
    pub(super) const RUN_HISTORY: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, planned_nodes \
         FROM workflow_runs WHERE workflow_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3";
    pub(super) const INTERRUPTED_RUNS: &str = "SELECT id, workflow_id, trigger_type, status, error, created_at, started_at, finished_at, planned_nodes \
         FROM workflow_runs WHERE status IN ('RUNNING', 'PENDING') ORDER BY created_at, id";
    pub(super) const MARK_RUN_INTERRUPTED: &str =
        "UPDATE workflow_runs SET status = 'FAILED', error = $2, finished_at = $3 WHERE id = $1";
    pub(super) const MARK_EXECUTIONS_INTERRUPTED: &str = "UPDATE node_executions SET status = 'FAILED', error = $2, finished_at = $3 \
         WHERE run_id = $1 AND status IN ('QUEUED', 'EXECUTING')";
    pub(super) const RUN_WORKFLOW: &str = "SELECT w.id, w.owner_id, w.name, w.document, w.created_at, w.updated_at \
         FROM workflows w JOIN workflow_runs r ON r.workflow_id = w.id WHERE r.id = $1";

    pub(super) const RUN_EXECUTIONS: &str = "SELECT run_id, node_id, seq, node_type, node_label, status, input_data, output_data, error, \
         cached, started_at, finished_at, duration_ms, attempts FROM node_executions WHERE run_id = $1 ORDER BY seq, node_id";
    pub(super) const HISTORY_EXECUTIONS: &str = "SELECT e.run_id, e.node_id, e.seq, e.node_type, e.node_label, e.status, e.input_data, \
         e.output_data, e.error, e.cached, e.started_at, e.finished_at, e.duration_ms, e.attempts \
         FROM node_executions e JOIN (SELECT id FROM workflow_runs WHERE workflow_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3) r ON r.id = e.run_id ORDER BY e.run_id, e.seq, e.node_id";
    pub(super) const INSERT_EXECUTIONS: &str = "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status, \
         input_data, output_data, error, cached, started_at, finished_at, duration_ms, attempts) ";
    pub(super) const ON_CONFLICT_REPLACE_EXECUTION: &str = " ON CONFLICT (run_id, node_id) DO UPDATE SET node_type = excluded.node_type, \
         node_label = excluded.node_label, status = excluded.status, input_data = excluded.input_data, \
         output_data = excluded.output_data, error = excluded.error, cached = excluded.cached, \
         started_at = excluded.started_at, finished_at = excluded.finished_at, \
         duration_ms = excluded.duration_ms, attempts = excluded.attempts";
    pub(super) const INSERT_QUEUED_EXECUTIONS: &str =
        "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status) ";
    pub(super) const ON_CONFLICT_RESET_EXECUTION: &str = " ON CONFLICT (run_id, node_id) DO UPDATE SET node_type = excluded.node_type, \
         node_label = excluded.node_label, status = excluded.status, input_data = NULL, output_data = NULL, \
         error = NULL, cached = FALSE, started_at = NULL, finished_at = NULL, duration_ms = NULL, attempts = 0";
    pub(super) const INSERT_EXECUTION_PROGRESS: &str = "INSERT INTO node_executions (run_id, node_id, seq, node_type, node_label, status, \
         error, started_at, attempts) ";
    pub(super) const ON_CONFLICT_PROGRESS: &str = " ON CONFLICT (run_id, node_id) DO UPDATE SET status = excluded.status, \
         error = excluded.error, started_at = excluded.started_at, attempts = excluded.attempts";
    pub(super) const NEXT_EXECUTION_SEQ: &str =
        "SELECT COALESCE(MAX(seq) + 1, 0) FROM node_executions WHERE run_id = $1";
    pub(super) const RUN_EXISTS: &str = "SELECT id FROM workflow_runs WHERE id = $1";

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
}

use crate::backend::{
    AssetRecordStore, Backend, BackendKind, CacheStore, RunStore, UserStore, WorkflowStore,
};
use crate::error::{Error, Result};
use crate::model::{
    NewUser, NewWorkflow, Page, RunHistoryEntry, StoredWorkflow, User, WorkflowUpdate,
};
use crate::write_plan::{
    ProgressUpdate, Write, normalize_execution, normalize_run, now, plan_writes,
};
use async_trait::async_trait;
use gatewai_core::{CacheKey, FileAsset, Generation, NodeExecution, RunEvent, RunRecord};
use sqlx::types::Json;

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

/// Node execution rows per statement (14 parameters each: 14,000 parameters stays under
/// SQLite's limit of 32,766 and PostgreSQL's of 65,535).
const ROWS_PER_STATEMENT: usize = 1000;

/// A step of applying a batch: a run row, or the node rows between two run rows.
enum Step<'w> {
    /// A run (re)starts; the nodes it queued in the same batch go into its row.
    StartRun {
        run: &'w RunRecord,
        planned: Vec<PlannedNode>,
    },
    Run(&'w RunRecord),
    Nodes(NodeWrites<'w>),
}

/// Node rows to write, by kind of statement.
#[derive(Default)]
struct NodeWrites<'w> {
    /// Executions just queued: only their identity, the other columns reset.
    queued: Vec<(i64, &'w NodeExecution)>,
    /// Executions written whole.
    full: Vec<(i64, &'w NodeExecution)>,
    /// Running executions' progress.
    progress: Vec<&'w ProgressUpdate>,
}

impl NodeWrites<'_> {
    fn is_empty(&self) -> bool {
        self.queued.is_empty() && self.full.is_empty() && self.progress.is_empty()
    }
}

/// Whether an execution record says no more than "queued" (written with fewer columns).
fn is_just_queued(record: &NodeExecution) -> bool {
    record.status == gatewai_core::ExecutionStatus::Queued
        && record.input.is_none()
        && record.output.is_none()
        && record.error.is_none()
        && !record.cached
        && record.started_at.is_none()
        && record.finished_at.is_none()
        && record.duration_ms.is_none()
        && record.attempts == 0
}

/// Groups a batch's writes into steps; a batch has at most one write per node, so the node
/// writes between two run writes can go in any order.
fn steps(writes: &[Write]) -> Vec<Step<'_>> {
    // A batch that starts a run keeps the nodes it queues in the run's row (one row written
    // instead of one per node).
    let starts_run = writes.iter().any(|w| matches!(w, Write::StartRun(_)));
    let mut planned = Vec::new();
    let mut steps = Vec::new();
    let mut nodes = NodeWrites::default();
    for write in writes {
        let starts_step = matches!(write, Write::StartRun(_) | Write::SaveRun(_));
        if starts_step && !nodes.is_empty() {
            steps.push(Step::Nodes(std::mem::take(&mut nodes)));
        }
        match write {
            Write::StartRun(run) => steps.push(Step::StartRun {
                run,
                planned: Vec::new(),
            }),
            Write::SaveRun(run) => steps.push(Step::Run(run)),
            Write::Execution { seq, record } if is_just_queued(record) && starts_run => planned
                .push(PlannedNode {
                    node_id: record.node_id.clone(),
                    node_type: record.node_type.clone(),
                    label: record.label.clone(),
                    seq: *seq,
                }),
            Write::Execution { seq, record } if is_just_queued(record) => {
                nodes.queued.push((*seq, record))
            }
            Write::Execution { seq, record } => nodes.full.push((*seq, record)),
            Write::ExecutionProgress(update) => nodes.progress.push(update),
        }
    }
    if !nodes.is_empty() {
        steps.push(Step::Nodes(nodes));
    }
    for step in &mut steps {
        if let Step::StartRun { planned: p, .. } = step {
            *p = std::mem::take(&mut planned);
        }
    }
    steps
}

/// A JSON column's value, serialized up front so that binding it cannot fail.
fn raw_json<T: serde::Serialize>(
    value: Option<&T>,
) -> Result<Option<Box<serde_json::value::RawValue>>> {
    value
        .map(|v| {
            serde_json::value::to_raw_value(v).map_err(|source| Error::Serialize {
                what: "a node execution",
                source,
            })
        })
        .transpose()
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

/// Execution rows with their queue position.
fn with_seq(rows: Vec<ExecutionRow>) -> Result<Vec<(i64, NodeExecution)>> {
    rows.into_iter()
        .map(|row| Ok((row.seq, NodeExecution::try_from(row)?)))
        .collect()
}

/// Implements every store trait for a backend struct with `read` and `write` pools of one
/// sqlx database type. The SQL is the same for every database.
macro_rules! sql_backend {
    ($name:ident, $db:ty, $kind:expr) => {
        impl $name {
            /// Inserts or replaces node executions, many rows per statement.
            async fn save_executions(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[(i64, &NodeExecution)],
            ) -> Result<()> {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let json = chunk
                        .iter()
                        .map(|(_, r)| {
                            Ok((raw_json(r.input.as_ref())?, raw_json(r.output.as_ref())?))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let mut statement = sqlx::QueryBuilder::<$db>::new(query::INSERT_EXECUTIONS);
                    statement.push_values(
                        chunk.iter().zip(json),
                        |mut row, ((seq, r), (input, output))| {
                            row.push_bind(&r.run_id)
                                .push_bind(&r.node_id)
                                .push_bind(*seq)
                                .push_bind(&r.node_type)
                                .push_bind(&r.label)
                                .push_bind(r.status.as_str())
                                .push_bind(input.map(Json))
                                .push_bind(output.map(Json))
                                .push_bind(&r.error)
                                .push_bind(r.cached)
                                .push_bind(r.started_at)
                                .push_bind(r.finished_at)
                                .push_bind(r.duration_ms.map(to_i64))
                                .push_bind(to_i32(r.attempts));
                        },
                    );
                    statement.push(query::ON_CONFLICT_REPLACE_EXECUTION);
                    statement.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Inserts or resets just-queued node executions, many rows per statement.
            async fn save_queued(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[(i64, &NodeExecution)],
            ) -> Result<()> {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut statement =
                        sqlx::QueryBuilder::<$db>::new(query::INSERT_QUEUED_EXECUTIONS);
                    statement.push_values(chunk, |mut row, (seq, r)| {
                        row.push_bind(&r.run_id)
                            .push_bind(&r.node_id)
                            .push_bind(*seq)
                            .push_bind(&r.node_type)
                            .push_bind(&r.label)
                            .push_bind(r.status.as_str());
                    });
                    statement.push(query::ON_CONFLICT_RESET_EXECUTION);
                    statement.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// Updates running node executions, many rows per statement.
            async fn save_progress(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[&ProgressUpdate],
            ) -> Result<()> {
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let mut statement =
                        sqlx::QueryBuilder::<$db>::new(query::INSERT_EXECUTION_PROGRESS);
                    statement.push_values(chunk, |mut row, u| {
                        row.push_bind(&u.run_id)
                            .push_bind(&u.node_id)
                            .push_bind(u.seq)
                            .push_bind("")
                            .push_bind("")
                            .push_bind(u.status.as_str())
                            .push_bind(&u.error)
                            .push_bind(u.started_at)
                            .push_bind(to_i32(u.attempts));
                    });
                    statement.push(query::ON_CONFLICT_PROGRESS);
                    statement.build().execute(&mut *conn).await?;
                }
                Ok(())
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
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Applies a batch's writes, node writes grouped into multi-row statements.
            async fn apply(
                conn: &mut <$db as sqlx::Database>::Connection,
                writes: &[Write],
            ) -> Result<()> {
                for step in steps(writes) {
                    match step {
                        Step::StartRun { run, planned } => {
                            sqlx::query::<$db>(query::DELETE_RUN_EXECUTIONS)
                                .bind(&run.id)
                                .execute(&mut *conn)
                                .await?;
                            let planned =
                                serde_json::value::to_raw_value(&planned).map_err(|source| {
                                    Error::Serialize {
                                        what: "a run's planned nodes",
                                        source,
                                    }
                                })?;
                            sqlx::query::<$db>(query::START_RUN)
                                .bind(&run.id)
                                .bind(&run.workflow_id)
                                .bind(trigger_name(run.trigger_type))
                                .bind(run.status.as_str())
                                .bind(&run.error)
                                .bind(run.created_at)
                                .bind(run.started_at)
                                .bind(run.finished_at)
                                .bind(Json(planned))
                                .execute(&mut *conn)
                                .await?;
                        }
                        Step::Run(run) => Self::save_run_row(conn, run).await?,
                        Step::Nodes(nodes) => {
                            Self::save_queued(conn, &nodes.queued).await?;
                            Self::save_executions(conn, &nodes.full).await?;
                            Self::save_progress(conn, &nodes.progress).await?;
                        }
                    }
                }
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
                crate::argument::non_empty("user id", &user.id)?;
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
                let id = crate::argument::new_id(workflow.id)?;
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
                let mut document = workflow.document;
                document.id = Some(id.clone());
                document.name = Some(workflow.name.clone());
                sqlx::query::<$db>(query::INSERT_WORKFLOW)
                    .bind(&id)
                    .bind(owner_id)
                    .bind(&workflow.name)
                    .bind(Json(&document))
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
                let (limit, offset) = limit_offset(page);
                sqlx::query_as::<$db, WorkflowRow>(query::LIST_WORKFLOWS)
                    .bind(owner_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.read)
                    .await?
                    .into_iter()
                    .map(StoredWorkflow::try_from)
                    .collect()
            }

            async fn update_workflow(
                &self,
                owner_id: &str,
                id: &str,
                update: WorkflowUpdate,
            ) -> Result<StoredWorkflow> {
                let document = update.document.map(|mut d| {
                    d.id = Some(id.to_owned());
                    d.name = None;
                    d
                });
                sqlx::query_as::<$db, WorkflowRow>(query::UPDATE_WORKFLOW)
                    .bind(id)
                    .bind(owner_id)
                    .bind(update.name)
                    .bind(document.as_ref().map(Json))
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
                crate::argument::non_empty("run id", &run.id)?;
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
                let execution = normalize_execution(execution);
                let mut tx = self.write.begin().await?;
                if sqlx::query::<$db>(query::RUN_EXISTS)
                    .bind(&execution.run_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_none()
                {
                    return Err(Error::not_found("run", &execution.run_id));
                }
                let seq: i64 = sqlx::query_scalar::<$db, i64>(query::NEXT_EXECUTION_SEQ)
                    .bind(&execution.run_id)
                    .fetch_one(&mut *tx)
                    .await?;
                Self::save_executions(&mut tx, &[(seq, &execution)]).await?;
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
                let (limit, offset) = limit_offset(page);
                let runs = sqlx::query_as::<$db, RunRow>(query::RUN_HISTORY)
                    .bind(workflow_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.read)
                    .await?;
                let rows = sqlx::query_as::<$db, ExecutionRow>(query::HISTORY_EXECUTIONS)
                    .bind(workflow_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.read)
                    .await?;
                let mut executions = group_executions(rows)?;
                runs.into_iter()
                    .map(|row| {
                        let (run, planned) = row.into_parts()?;
                        let rows = executions.remove(&run.id).unwrap_or_default();
                        let executions = merge_planned(&run.id, &planned, rows);
                        Ok(RunHistoryEntry { run, executions })
                    })
                    .collect()
            }

            async fn record_events(&self, events: &[RunEvent]) -> Result<()> {
                let writes = plan_writes(events);
                if writes.is_empty() {
                    return Ok(());
                }
                let mut tx = self.write.begin().await?;
                Self::apply(&mut tx, &writes).await?;
                tx.commit().await?;
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
                let Some((_, planned)) = Self::fetch_run(&mut tx, run_id).await? else {
                    return Err(Error::not_found("run", run_id));
                };
                if !planned.is_empty() {
                    let rows = sqlx::query_as::<$db, ExecutionRow>(query::RUN_EXECUTIONS)
                        .bind(run_id)
                        .fetch_all(&mut *tx)
                        .await?;
                    let present: std::collections::HashSet<String> = with_seq(rows)?
                        .into_iter()
                        .map(|(_, e)| e.node_id)
                        .collect();
                    let missing: Vec<(i64, NodeExecution)> = planned
                        .iter()
                        .filter(|p| !present.contains(&p.node_id))
                        .map(|p| (p.seq, p.to_execution(run_id)))
                        .collect();
                    let refs: Vec<(i64, &NodeExecution)> =
                        missing.iter().map(|(seq, e)| (*seq, e)).collect();
                    Self::save_executions(&mut tx, &refs).await?;
                }
                let done = sqlx::query::<$db>(query::MARK_RUN_INTERRUPTED)
                    .bind(run_id)
                    .bind(crate::INTERRUPTED)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if done.rows_affected() == 0 {
                    return Err(Error::not_found("run", run_id));
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
        }

        #[async_trait]
        impl CacheStore for $name {
            async fn cache_get(&self, key: &CacheKey) -> Result<Option<Vec<Generation>>> {
                sqlx::query_as::<$db, CacheRow>(query::CACHE_GET)
                    .bind(key.to_hex())
                    .fetch_optional(&self.read)
                    .await?
                    .map(Vec::<Generation>::try_from)
                    .transpose()
            }

            async fn cache_put(&self, key: &CacheKey, outputs: &[Generation]) -> Result<()> {
                sqlx::query::<$db>(query::CACHE_PUT)
                    .bind(key.to_hex())
                    .bind(Json(outputs))
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
                crate::argument::non_empty("asset id", &asset.id)?;
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
                    .bind(asset.metadata.as_ref().map(Json))
                    .bind((!asset.extra.is_empty()).then_some(Json(&asset.extra)))
                    .bind(owner_id)
                    .bind(now())
                    .execute(&self.write)
                    .await?;
                Ok(())
            }

            async fn get_asset_record(&self, id: &str) -> Result<Option<FileAsset>> {
                sqlx::query_as::<$db, AssetRow>(query::GET_ASSET)
                    .bind(id)
                    .fetch_optional(&self.read)
                    .await?
                    .map(FileAsset::try_from)
                    .transpose()
            }

            async fn delete_asset_record(&self, id: &str) -> Result<bool> {
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
    use gatewai_core::TriggerType;

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
