//! Rows as the databases return them, and their conversion into the model. A value that
//! cannot be read back (malformed JSON, an unknown status) is an
//! [`Error::Corrupt`](crate::Error::Corrupt) naming the table, row and column — never a panic.

use crate::error::{Error, Result};
use crate::model::{StoredWorkflow, User};
use chrono::{DateTime, Utc};
use gatewai_core::{FileAsset, Generation, NodeExecution, RunRecord, Workflow};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A JSON column read as its text, so that parsing it is ours to report. SQLite keeps JSON as
/// `TEXT`, PostgreSQL as `JSON`.
#[derive(Debug, Clone)]
pub(crate) struct RawJson(pub(crate) String);

/// A JSON value written as its text: `TEXT` in SQLite, `JSON` in PostgreSQL (kept as
/// written, only validated: for a value always written and read whole, cheaper than `JSONB`,
/// which the server parses into its binary form, and exact: `JSONB` refuses the escape
/// `\u0000` of a string's NUL character).
#[derive(Debug, Clone)]
pub(crate) struct JsonText(pub(crate) String);

#[cfg(feature = "sqlite")]
mod sqlite_json {
    use super::{JsonText, RawJson};
    use sqlx::encode::IsNull;
    use sqlx::sqlite::{Sqlite, SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
    use sqlx::{Decode, Encode, Type, error::BoxDynError};

    impl Type<Sqlite> for JsonText {
        fn type_info() -> SqliteTypeInfo {
            <String as Type<Sqlite>>::type_info()
        }
    }

    impl Encode<'_, Sqlite> for JsonText {
        fn encode(self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
            Encode::<Sqlite>::encode(self.0, buf)
        }

        fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
            Encode::<Sqlite>::encode_by_ref(&self.0, buf)
        }
    }

    impl Type<Sqlite> for RawJson {
        fn type_info() -> SqliteTypeInfo {
            <String as Type<Sqlite>>::type_info()
        }

        fn compatible(ty: &SqliteTypeInfo) -> bool {
            <String as Type<Sqlite>>::compatible(ty)
        }
    }

    impl<'r> Decode<'r, Sqlite> for RawJson {
        fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
            Ok(RawJson(<String as Decode<'r, Sqlite>>::decode(value)?))
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres_json {
    use super::{JsonText, RawJson};
    use serde_json::value::RawValue;
    use sqlx::encode::IsNull;
    use sqlx::postgres::types::Oid;
    use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef, Postgres};
    use sqlx::types::Json;
    use sqlx::{Decode, Encode, Type, error::BoxDynError};

    /// PostgreSQL's `json` type.
    const JSON_OID: Oid = Oid(114);

    impl Type<Postgres> for JsonText {
        fn type_info() -> PgTypeInfo {
            PgTypeInfo::with_oid(JSON_OID)
        }
    }

    impl Encode<'_, Postgres> for JsonText {
        fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
            // `json`'s binary format is its text.
            buf.extend_from_slice(self.0.as_bytes());
            Ok(IsNull::No)
        }
    }

    impl Type<Postgres> for RawJson {
        fn type_info() -> PgTypeInfo {
            <Json<()> as Type<Postgres>>::type_info()
        }

        fn compatible(ty: &PgTypeInfo) -> bool {
            <Json<()> as Type<Postgres>>::compatible(ty)
        }
    }

    impl<'r> Decode<'r, Postgres> for RawJson {
        fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
            let Json(raw) = <Json<&'r RawValue> as Decode<'r, Postgres>>::decode(value)?;
            Ok(RawJson(raw.get().to_owned()))
        }
    }
}

/// Parses a JSON column.
fn parse<T: DeserializeOwned>(
    table: &'static str,
    row: &str,
    column: &'static str,
    json: &RawJson,
) -> Result<T> {
    serde_json::from_str(&json.0)
        .map_err(|e| Error::corrupt(table, row, column, format!("malformed JSON: {e}")))
}

/// Parses an enum stored by its wire name (`"RUNNING"`, …).
fn parse_name<T: DeserializeOwned>(
    table: &'static str,
    row: &str,
    column: &'static str,
    name: &str,
) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| Error::corrupt(table, row, column, format!("unknown value `{name}`")))
}

/// Converts a stored integer, failing on a negative or out-of-range value.
fn unsigned<T: TryFrom<i64>>(
    table: &'static str,
    row: &str,
    column: &'static str,
    value: i64,
) -> Result<T> {
    T::try_from(value)
        .map_err(|_| Error::corrupt(table, row, column, format!("value {value} out of range")))
}

/// A `users` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A `workflows` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct WorkflowRow {
    id: String,
    owner_id: String,
    name: String,
    document: RawJson,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<WorkflowRow> for StoredWorkflow {
    type Error = Error;

    fn try_from(row: WorkflowRow) -> Result<Self> {
        let mut document: Workflow = parse("workflows", &row.id, "document", &row.document)?;
        document.id = Some(row.id.clone());
        document.name = Some(row.name.clone());
        Ok(StoredWorkflow {
            id: row.id,
            owner_id: row.owner_id,
            name: row.name,
            document,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A `workflow_runs` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow {
    id: String,
    workflow_id: Option<String>,
    trigger_type: String,
    status: String,
    error: Option<String>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    cache_scope: Option<String>,
    planned_nodes: Option<RawJson>,
}

impl RunRow {
    /// The run and the nodes it queued that have no execution row.
    pub(crate) fn into_parts(mut self) -> Result<(RunRecord, Vec<PlannedNode>)> {
        let planned = match self.planned_nodes.take() {
            Some(json) => parse("workflow_runs", &self.id, "planned_nodes", &json)?,
            None => Vec::new(),
        };
        Ok((RunRecord::try_from(self)?, planned))
    }
}

/// A node a run queued, kept in the run's `planned_nodes` until the node's execution row is
/// written.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlannedNode {
    pub(crate) node_id: Arc<str>,
    pub(crate) node_type: Arc<str>,
    pub(crate) label: Arc<str>,
    pub(crate) seq: i64,
}

impl PlannedNode {
    /// The queued execution it stands for.
    pub(crate) fn to_execution(&self, run_id: &str) -> NodeExecution {
        NodeExecution::queued(
            Arc::from(run_id),
            self.node_id.clone(),
            self.node_type.clone(),
            self.label.clone(),
        )
    }
}

/// A run's executions: its rows, plus a queued execution for each planned node without a
/// row, in queue order.
///
/// A planned node's row takes its position from the plan (the node's first event is its
/// queue event), and its type and label too when the row has none: a node whose start was
/// recorded in a later batch than its queue event got its row from the start alone, which
/// carries neither.
pub(crate) fn merge_planned(
    run_id: &str,
    planned: &[PlannedNode],
    rows: Vec<(i64, NodeExecution)>,
) -> Vec<NodeExecution> {
    if planned.is_empty() {
        return rows.into_iter().map(|(_, e)| e).collect();
    }
    let mut unrecorded: std::collections::HashMap<&str, &PlannedNode> =
        planned.iter().map(|p| (&*p.node_id, p)).collect();
    let mut all: Vec<(i64, NodeExecution)> = Vec::with_capacity(planned.len() + rows.len());
    for (seq, mut execution) in rows {
        match unrecorded.remove(&*execution.node_id) {
            Some(p) => {
                if execution.node_type.is_empty() {
                    execution.node_type = p.node_type.clone();
                    execution.label = p.label.clone();
                }
                all.push((p.seq, execution));
            }
            None => all.push((seq, execution)),
        }
    }
    all.extend(
        planned
            .iter()
            .filter(|p| unrecorded.contains_key(&*p.node_id))
            .map(|p| (p.seq, p.to_execution(run_id))),
    );
    all.sort_by(|(a, x), (b, y)| (a, &x.node_id).cmp(&(b, &y.node_id)));
    all.into_iter().map(|(_, e)| e).collect()
}

impl TryFrom<RunRow> for RunRecord {
    type Error = Error;

    fn try_from(row: RunRow) -> Result<Self> {
        const T: &str = "workflow_runs";
        Ok(RunRecord {
            trigger_type: parse_name(T, &row.id, "trigger_type", &row.trigger_type)?,
            status: parse_name(T, &row.id, "status", &row.status)?,
            id: row.id,
            workflow_id: row.workflow_id,
            error: row.error,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            cache_scope: row.cache_scope,
        })
    }
}

/// A `node_executions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ExecutionRow {
    pub(crate) run_id: String,
    node_id: String,
    pub(crate) seq: i64,
    node_type: String,
    node_label: String,
    status: String,
    input_data: Option<RawJson>,
    output_data: Option<RawJson>,
    error: Option<String>,
    cached: bool,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<i64>,
    attempts: i32,
    cache_key: Option<String>,
}

impl TryFrom<ExecutionRow> for NodeExecution {
    type Error = Error;

    fn try_from(row: ExecutionRow) -> Result<Self> {
        const T: &str = "node_executions";
        let key = format!("{}/{}", row.run_id, row.node_id);
        Ok(NodeExecution {
            status: parse_name(T, &key, "status", &row.status)?,
            input: row
                .input_data
                .as_ref()
                .map(|j| parse(T, &key, "input_data", j))
                .transpose()?,
            output: row
                .output_data
                .as_ref()
                .map(|j| parse(T, &key, "output_data", j))
                .transpose()?,
            duration_ms: row
                .duration_ms
                .map(|d| unsigned(T, &key, "duration_ms", d))
                .transpose()?,
            attempts: unsigned(T, &key, "attempts", i64::from(row.attempts))?,
            cache_key: row
                .cache_key
                .as_deref()
                .map(|hex| {
                    hex.parse()
                        .map_err(|e: String| Error::corrupt(T, &key, "cache_key", e))
                })
                .transpose()?,
            run_id: row.run_id.into(),
            node_id: row.node_id.into(),
            node_type: row.node_type.into(),
            label: row.node_label.into(),
            error: row.error,
            cached: row.cached,
            started_at: row.started_at,
            finished_at: row.finished_at,
        })
    }
}

/// A `cache_entries` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CacheRow {
    key: String,
    outputs: RawJson,
}

impl TryFrom<CacheRow> for Vec<Generation> {
    type Error = Error;

    fn try_from(row: CacheRow) -> Result<Self> {
        parse("cache_entries", &row.key, "outputs", &row.outputs)
    }
}

/// A `file_assets` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AssetRow {
    id: String,
    name: String,
    bucket: String,
    key: String,
    mime_type: String,
    size: i64,
    width: Option<i32>,
    height: Option<i32>,
    fps: Option<f64>,
    duration: Option<f64>,
    metadata: Option<RawJson>,
    extra: Option<RawJson>,
}

impl TryFrom<AssetRow> for FileAsset {
    type Error = Error;

    fn try_from(row: AssetRow) -> Result<Self> {
        const T: &str = "file_assets";
        let id = row.id.as_str();
        Ok(FileAsset {
            size: unsigned(T, id, "size", row.size)?,
            width: row
                .width
                .map(|w| unsigned(T, id, "width", i64::from(w)))
                .transpose()?,
            height: row
                .height
                .map(|h| unsigned(T, id, "height", i64::from(h)))
                .transpose()?,
            metadata: row
                .metadata
                .as_ref()
                .map(|j| parse(T, id, "metadata", j))
                .transpose()?,
            extra: row
                .extra
                .as_ref()
                .map(|j| parse(T, id, "extra", j))
                .transpose()?
                .unwrap_or_default(),
            name: row.name,
            bucket: row.bucket,
            key: row.key,
            mime_type: row.mime_type,
            fps: row.fps,
            duration: row.duration,
            signed_url: None,
            signed_url_exp: None,
            id: row.id,
        })
    }
}
