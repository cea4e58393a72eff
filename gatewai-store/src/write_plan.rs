//! Turns a batch of run events into the few writes that persist it: one per run change and
//! one per node (a node queued, started and completed within the batch is written once).

use chrono::{DateTime, SubsecRound, Utc};
use gatewai_core::{EventKind, ExecutionStatus, NodeExecution, RunEvent, RunRecord};
use std::collections::HashMap;

/// One write of a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// A run (re)starts: store it (keeping the `created_at` of an earlier attempt) and drop
    /// the executions an earlier attempt recorded (the new attempt records its own).
    StartRun(RunRecord),
    /// Store the run (insert, or replace the stored one keeping its `created_at`).
    SaveRun(RunRecord),
    /// Replace a node execution row with this record.
    Execution {
        /// Position in the run's event stream of the node's first event (orders a run's
        /// executions).
        seq: i64,
        /// The full record.
        record: NodeExecution,
    },
    /// Update an execution that is running, keeping the columns the update does not name
    /// (the row is created if it is missing).
    ExecutionProgress(ProgressUpdate),
}

/// A running execution's new status, start, attempt and last attempt's error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProgressUpdate {
    /// As for [`Write::Execution`].
    pub(crate) seq: i64,
    /// The run.
    pub(crate) run_id: String,
    /// The node.
    pub(crate) node_id: String,
    /// The new status.
    pub(crate) status: ExecutionStatus,
    /// When the current attempt started.
    pub(crate) started_at: DateTime<Utc>,
    /// The attempt.
    pub(crate) attempts: u32,
    /// The error of a failed attempt that will be retried.
    pub(crate) error: Option<String>,
}

/// The writes persisting a batch of events, in the order they must be applied.
pub(crate) fn plan_writes(events: &[RunEvent]) -> Vec<Write> {
    let mut writes: Vec<Write> = Vec::new();
    let mut by_node: HashMap<&str, usize> = HashMap::new();
    for event in events {
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        let run_id = &*event.run_id;
        match &event.kind {
            EventKind::RunStarted { run, .. } => writes.push(Write::StartRun(normalize_run(run))),
            EventKind::RunFinished { run } => writes.push(Write::SaveRun(normalize_run(run))),
            EventKind::NodeQueued {
                node_id,
                node_type,
                label,
            } => {
                let record = NodeExecution {
                    run_id: run_id.to_owned(),
                    node_id: node_id.to_string(),
                    node_type: node_type.to_string(),
                    label: label.to_string(),
                    status: ExecutionStatus::Queued,
                    input: None,
                    output: None,
                    error: None,
                    cached: false,
                    started_at: None,
                    finished_at: None,
                    duration_ms: None,
                    attempts: 0,
                };
                put(&mut writes, &mut by_node, node_id, |_| Write::Execution {
                    seq,
                    record,
                });
            }
            EventKind::NodeStarted { node_id, attempt } => {
                let at = event.at.trunc_subsecs(6);
                put(&mut writes, &mut by_node, node_id, |earlier| {
                    attempt_update(earlier, seq, run_id, node_id, at, *attempt, None)
                });
            }
            EventKind::NodeFailed {
                node_id,
                error,
                attempt,
                record,
                ..
            } => match record {
                Some(record) => {
                    let record = normalize_execution(record);
                    put(&mut writes, &mut by_node, node_id, |earlier| {
                        full(earlier, seq, record)
                    });
                }
                None => {
                    let at = event.at.trunc_subsecs(6);
                    put(&mut writes, &mut by_node, node_id, |earlier| {
                        attempt_update(
                            earlier,
                            seq,
                            run_id,
                            node_id,
                            at,
                            *attempt,
                            Some(error.to_string()),
                        )
                    });
                }
            },
            EventKind::NodeCompleted {
                node_id, record, ..
            }
            | EventKind::NodeSkipped {
                node_id, record, ..
            }
            | EventKind::NodeCancelled { node_id, record } => {
                let record = normalize_execution(record);
                put(&mut writes, &mut by_node, node_id, |earlier| {
                    full(earlier, seq, record)
                });
            }
            _ => {}
        }
    }
    writes
}

/// Replaces the node's earlier write in this batch (keeping its place), or appends.
fn put<'e>(
    writes: &mut Vec<Write>,
    by_node: &mut HashMap<&'e str, usize>,
    node_id: &'e str,
    make: impl FnOnce(Option<&Write>) -> Write,
) {
    match by_node.get(node_id) {
        Some(&i) => writes[i] = make(Some(&writes[i])),
        None => {
            by_node.insert(node_id, writes.len());
            writes.push(make(None));
        }
    }
}

fn earlier_seq(earlier: Option<&Write>, seq: i64) -> i64 {
    match earlier {
        Some(Write::Execution { seq, .. }) => *seq,
        Some(Write::ExecutionProgress(update)) => update.seq,
        _ => seq,
    }
}

fn full(earlier: Option<&Write>, seq: i64, record: NodeExecution) -> Write {
    Write::Execution {
        seq: earlier_seq(earlier, seq),
        record,
    }
}

fn attempt_update(
    earlier: Option<&Write>,
    seq: i64,
    run_id: &str,
    node_id: &str,
    at: DateTime<Utc>,
    attempt: u32,
    error: Option<String>,
) -> Write {
    match earlier {
        // Queued earlier in this batch: the full record, now executing.
        Some(Write::Execution { seq, record }) if !record.status.is_terminal() => {
            let mut record = record.clone();
            record.status = ExecutionStatus::Executing;
            if error.is_none() {
                record.started_at = Some(at);
            }
            record.attempts = attempt;
            record.error = error;
            Write::Execution { seq: *seq, record }
        }
        Some(Write::ExecutionProgress(earlier)) => Write::ExecutionProgress(ProgressUpdate {
            seq: earlier.seq,
            run_id: run_id.to_owned(),
            node_id: node_id.to_owned(),
            status: ExecutionStatus::Executing,
            started_at: if error.is_none() {
                at
            } else {
                earlier.started_at
            },
            attempts: attempt,
            error,
        }),
        _ => Write::ExecutionProgress(ProgressUpdate {
            seq,
            run_id: run_id.to_owned(),
            node_id: node_id.to_owned(),
            status: ExecutionStatus::Executing,
            started_at: at,
            attempts: attempt,
            error,
        }),
    }
}

/// Timestamps kept to the microsecond, the precision every backend stores.
pub(crate) fn normalize_run(run: &RunRecord) -> RunRecord {
    let mut run = run.clone();
    run.created_at = run.created_at.trunc_subsecs(6);
    run.started_at = run.started_at.map(|t| t.trunc_subsecs(6));
    run.finished_at = run.finished_at.map(|t| t.trunc_subsecs(6));
    run
}

/// Timestamps kept to the microsecond, the precision every backend stores.
pub(crate) fn normalize_execution(execution: &NodeExecution) -> NodeExecution {
    let mut execution = execution.clone();
    execution.started_at = execution.started_at.map(|t| t.trunc_subsecs(6));
    execution.finished_at = execution.finished_at.map(|t| t.trunc_subsecs(6));
    execution
}

/// Now, to the microsecond.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{NodeResult, RunStatus, TriggerType};
    use std::sync::Arc;

    fn event(seq: u64, kind: EventKind) -> RunEvent {
        RunEvent {
            run_id: Arc::from("r"),
            seq,
            at: Utc::now(),
            kind,
        }
    }

    fn run(status: RunStatus) -> Arc<RunRecord> {
        Arc::new(RunRecord {
            id: "r".into(),
            workflow_id: None,
            trigger_type: TriggerType::Manual,
            status,
            error: None,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
        })
    }

    fn queued(seq: u64, node: &str) -> RunEvent {
        event(
            seq,
            EventKind::NodeQueued {
                node_id: Arc::from(node),
                node_type: Arc::from("Sum"),
                label: Arc::from("Sum"),
            },
        )
    }

    fn started(seq: u64, node: &str, attempt: u32) -> RunEvent {
        event(
            seq,
            EventKind::NodeStarted {
                node_id: Arc::from(node),
                attempt,
            },
        )
    }

    fn completed(seq: u64, node: &str) -> RunEvent {
        let record = NodeExecution {
            run_id: "r".into(),
            node_id: node.into(),
            node_type: "Sum".into(),
            label: "Sum".into(),
            status: ExecutionStatus::Completed,
            input: None,
            output: Some(NodeResult::default()),
            error: None,
            cached: false,
            started_at: Some(Utc::now()),
            finished_at: Some(Utc::now()),
            duration_ms: Some(1),
            attempts: 1,
        };
        event(
            seq,
            EventKind::NodeCompleted {
                node_id: Arc::from(node),
                source: gatewai_core::ResultSource::Executed,
                result: Arc::new(NodeResult::default()),
                record: Arc::new(record),
            },
        )
    }

    #[test]
    fn a_batch_becomes_one_write_per_node_in_queue_order() {
        let events = vec![
            event(
                0,
                EventKind::RunStarted {
                    run: run(RunStatus::Running),
                    node_count: 2,
                },
            ),
            queued(1, "a"),
            queued(2, "b"),
            started(3, "b", 1),
            started(4, "a", 1),
            completed(5, "a"),
            event(
                6,
                EventKind::NodeProgress {
                    node_id: Arc::from("b"),
                    progress: gatewai_core::Progress {
                        fraction: Some(0.5),
                        message: None,
                        partial_text: None,
                    },
                },
            ),
            event(
                7,
                EventKind::RunFinished {
                    run: run(RunStatus::Completed),
                },
            ),
        ];
        let writes = plan_writes(&events);
        assert_eq!(writes.len(), 4, "{writes:#?}");
        assert!(matches!(&writes[0], Write::StartRun(r) if r.status == RunStatus::Running));
        match &writes[1] {
            Write::Execution { seq: 1, record } => {
                assert_eq!(record.node_id, "a");
                assert_eq!(record.status, ExecutionStatus::Completed);
            }
            other => panic!("{other:?}"),
        }
        match &writes[2] {
            Write::Execution { seq: 2, record } => {
                assert_eq!(record.node_id, "b");
                assert_eq!(record.status, ExecutionStatus::Executing);
                assert_eq!(record.attempts, 1);
                assert!(record.started_at.is_some());
                assert_eq!(record.node_type, "Sum");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&writes[3], Write::SaveRun(r) if r.status == RunStatus::Completed));
    }

    #[test]
    fn a_start_without_its_queue_event_is_a_progress_update() {
        let writes = plan_writes(&[
            started(3, "a", 1),
            event(
                4,
                EventKind::NodeFailed {
                    node_id: Arc::from("a"),
                    error: Arc::from("flaky"),
                    kind: gatewai_core::ErrorKind::Unavailable,
                    attempt: 1,
                    will_retry: true,
                    record: None,
                },
            ),
            started(5, "a", 2),
        ]);
        assert_eq!(writes.len(), 1);
        match &writes[0] {
            Write::ExecutionProgress(update) => {
                assert_eq!(update.seq, 3);
                assert_eq!(update.status, ExecutionStatus::Executing);
                assert_eq!(update.attempts, 2);
                assert_eq!(update.error, None);
            }
            other => panic!("{other:?}"),
        }
    }
}
