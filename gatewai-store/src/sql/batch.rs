//! A batch of run events as the steps that store it: statements for the run row, and the
//! batch's node execution rows, which each backend writes its fastest way (SQLite: multi-row
//! statements of a few fixed sizes, each prepared once per connection; PostgreSQL: one
//! statement per batch, its rows bound as one array per column).

#[cfg(doc)]
use super::row::PlannedNode;
use super::trigger_name;
use crate::error::{Error, Result};
use crate::write_plan::{BatchWrite, Progress, keeps_completed_executions};
use chrono::{DateTime, SubsecRound, Utc};
use gatewai_core::{ExecutionStatus, NodeExecution, RunRecord};

/// An argument of a batch's statement.
#[derive(Debug)]
pub(super) enum Arg<'a> {
    /// Text.
    Str(&'a str),
    /// Text or NULL.
    OptStr(Option<&'a str>),
    /// A timestamp.
    Time(DateTime<Utc>),
    /// A timestamp or NULL.
    OptTime(Option<DateTime<Utc>>),
    /// A JSON value, bound as text (see [`JsonText`](super::row::JsonText)).
    Json(String),
}

/// One statement of a batch with its arguments, numbered `$1`, `$2`, … in the SQL.
#[derive(Debug)]
pub(super) struct Piece<'a> {
    /// The statement.
    pub(super) sql: &'static str,
    /// Its arguments, in order.
    pub(super) args: Vec<Arg<'a>>,
}

/// A step of storing a batch.
#[derive(Debug)]
pub(super) enum Step<'a> {
    /// A statement.
    Statement(Piece<'a>),
    /// Node execution rows to insert or replace whole (queued ones included: their other
    /// columns are NULL).
    Executions(Vec<(i64, &'a NodeExecution)>),
    /// Running executions to update, keeping the columns an update does not name.
    Progress(Vec<&'a Progress<'a>>),
}

/// A [`PlannedNode`] as it is written, borrowed from the batch.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct PlannedEntry<'a> {
    node_id: &'a str,
    node_type: &'a str,
    label: &'a str,
    seq: i64,
}

/// Whether an execution record says no more than "queued".
fn is_just_queued(record: &NodeExecution) -> bool {
    record.status == ExecutionStatus::Queued
        && record.input.is_none()
        && record.output.is_none()
        && record.error.is_none()
        && !record.cached
        && record.started_at.is_none()
        && record.finished_at.is_none()
        && record.duration_ms.is_none()
        && record.attempts == 0
}

/// The steps persisting a batch's writes, in order. A batch has at most one write per node,
/// so the node writes between two run writes go into one step per kind.
pub(super) fn batch_steps<'a>(writes: &'a [BatchWrite<'a>]) -> Result<Vec<Step<'a>>> {
    // A batch that starts a run keeps the nodes it queues in the run's row (one row written
    // instead of one per node); a node's own row, once written, supersedes its entry.
    let starts_run = writes.iter().any(|w| matches!(w, BatchWrite::StartRun(_)));
    let mut planned = Vec::new();
    if starts_run {
        for write in writes {
            if let BatchWrite::Execution { seq, record } = write
                && is_just_queued(record)
            {
                planned.push(PlannedEntry {
                    node_id: &record.node_id,
                    node_type: &record.node_type,
                    label: &record.label,
                    seq: *seq,
                });
            }
        }
    }
    let mut steps = Vec::new();
    let mut full: Vec<(i64, &NodeExecution)> = Vec::new();
    let mut progress: Vec<&Progress<'_>> = Vec::new();
    for write in writes {
        match write {
            BatchWrite::StartRun(run) => {
                flush_nodes(&mut steps, &mut full, &mut progress);
                let sql = if keeps_completed_executions(run) {
                    super::query::DELETE_UNFINISHED_RUN_EXECUTIONS
                } else {
                    super::query::DELETE_RUN_EXECUTIONS
                };
                steps.push(Step::Statement(Piece {
                    sql,
                    args: vec![Arg::Str(&run.id)],
                }));
                let planned =
                    serde_json::to_string(&std::mem::take(&mut planned)).map_err(|source| {
                        Error::Serialize {
                            what: "a run's planned nodes",
                            source,
                        }
                    })?;
                let mut args = run_args(run);
                args.push(Arg::Json(planned));
                steps.push(Step::Statement(Piece {
                    sql: super::query::START_RUN,
                    args,
                }));
            }
            BatchWrite::SaveRun(run) => {
                flush_nodes(&mut steps, &mut full, &mut progress);
                steps.push(Step::Statement(Piece {
                    sql: super::query::SAVE_RUN,
                    args: run_args(run),
                }));
            }
            BatchWrite::Execution { record, .. } if starts_run && is_just_queued(record) => {}
            BatchWrite::Execution { seq, record } => full.push((*seq, record)),
            BatchWrite::ExecutionProgress(update) => progress.push(update),
        }
    }
    flush_nodes(&mut steps, &mut full, &mut progress);
    Ok(steps)
}

/// The arguments of `SAVE_RUN` (and the first nine of `START_RUN`).
fn run_args(run: &RunRecord) -> Vec<Arg<'_>> {
    vec![
        Arg::Str(&run.id),
        Arg::OptStr(run.workflow_id.as_deref()),
        Arg::Str(trigger_name(run.trigger_type)),
        Arg::Str(run.status.as_str()),
        Arg::OptStr(run.error.as_deref()),
        Arg::Time(run.created_at.trunc_subsecs(6)),
        Arg::OptTime(run.started_at.map(|t| t.trunc_subsecs(6))),
        Arg::OptTime(run.finished_at.map(|t| t.trunc_subsecs(6))),
        Arg::OptStr(run.cache_scope.as_deref()),
    ]
}

/// Turns the node writes gathered so far into steps.
fn flush_nodes<'a>(
    steps: &mut Vec<Step<'a>>,
    full: &mut Vec<(i64, &'a NodeExecution)>,
    progress: &mut Vec<&'a Progress<'a>>,
) {
    if !full.is_empty() {
        steps.push(Step::Executions(std::mem::take(full)));
    }
    if !progress.is_empty() {
        steps.push(Step::Progress(std::mem::take(progress)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::row::PlannedNode;
    use std::sync::Arc;

    #[test]
    fn a_planned_entry_reads_back_as_a_planned_node() {
        let entry = PlannedEntry {
            node_id: "n1",
            node_type: "Sum",
            label: "Sum \"one\"",
            seq: 7,
        };
        let json = serde_json::to_string(&[entry]).unwrap();
        let read: Vec<PlannedNode> = serde_json::from_str(&json).unwrap();
        assert_eq!(
            read,
            [PlannedNode {
                node_id: Arc::from("n1"),
                node_type: Arc::from("Sum"),
                label: Arc::from("Sum \"one\""),
                seq: 7,
            }]
        );
    }
}
