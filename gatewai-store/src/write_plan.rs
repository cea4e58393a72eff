//! Turns a batch of run events into the few writes that persist it: one per run change and
//! one per node (a node queued, started and completed within the batch is written once).
//!
//! [`plan_batch`] borrows what it can from the events (a terminal event's record is written
//! as it is, never copied); [`plan_writes`] gives owned, normalized writes for the memory
//! backend.

use chrono::{DateTime, SubsecRound, Utc};
use gatewai_core::{EventKind, ExecutionStatus, NodeExecution, RunEvent, RunRecord};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// One write of a batch, borrowing from the batch's events. Timestamps are as the events
/// carry them: whoever stores a write truncates them to the microsecond.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum BatchWrite<'e> {
    /// A run (re)starts: store it (keeping the `created_at` of an earlier attempt) and drop
    /// the executions an earlier attempt recorded (the new attempt records its own). A
    /// resumed run (trigger `Resume`) keeps the earlier attempt's completed executions: they
    /// hold the results it reuses, and stay resumable should it crash before recording them
    /// again. So a queued record (its node queued again) never replaces a completed one.
    StartRun(Cow<'e, RunRecord>),
    /// Store the run (insert, or replace the stored one keeping its `created_at`).
    SaveRun(Cow<'e, RunRecord>),
    /// Replace a node execution row with this record.
    Execution {
        /// Position in the run's event stream of the node's first event (orders a run's
        /// executions).
        seq: i64,
        /// The full record: a terminal event's own, or one this batch built.
        record: Cow<'e, NodeExecution>,
    },
    /// Update an execution that is running, keeping the columns the update does not name
    /// (the row is created if it is missing).
    ExecutionProgress(Progress<'e>),
}

/// A running execution's new status, start, attempt and last attempt's error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress<'e> {
    /// As for [`BatchWrite::Execution`].
    pub(crate) seq: i64,
    /// The run.
    pub(crate) run_id: &'e str,
    /// The node.
    pub(crate) node_id: &'e str,
    /// The new status.
    pub(crate) status: ExecutionStatus,
    /// When the current attempt started.
    pub(crate) started_at: DateTime<Utc>,
    /// The attempt.
    pub(crate) attempts: u32,
    /// The error of a failed attempt that will be retried.
    pub(crate) error: Option<Cow<'e, str>>,
}

/// One write of a batch, owned and with timestamps to the microsecond.
#[cfg(any(feature = "memory", test))]
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write {
    /// As [`BatchWrite::StartRun`].
    StartRun(RunRecord),
    /// As [`BatchWrite::SaveRun`].
    SaveRun(RunRecord),
    /// As [`BatchWrite::Execution`].
    Execution {
        /// Position in the run's event stream of the node's first event.
        seq: i64,
        /// The full record.
        record: NodeExecution,
    },
    /// As [`BatchWrite::ExecutionProgress`].
    ExecutionProgress(ProgressUpdate),
}

/// A running execution's new status, start, attempt and last attempt's error.
#[cfg(any(feature = "memory", test))]
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

#[cfg(any(feature = "memory", test))]
impl BatchWrite<'_> {
    /// The owned write, timestamps truncated to the microsecond.
    pub(crate) fn to_owned_write(&self) -> Write {
        match self {
            BatchWrite::StartRun(run) => Write::StartRun(normalize_run(run)),
            BatchWrite::SaveRun(run) => Write::SaveRun(normalize_run(run)),
            BatchWrite::Execution { seq, record } => Write::Execution {
                seq: *seq,
                record: normalize_execution(record),
            },
            BatchWrite::ExecutionProgress(p) => Write::ExecutionProgress(ProgressUpdate {
                seq: p.seq,
                run_id: p.run_id.to_owned(),
                node_id: p.node_id.to_owned(),
                status: p.status,
                started_at: p.started_at.trunc_subsecs(6),
                attempts: storable_attempts(p.attempts),
                error: p.error.as_deref().map(str::to_owned),
            }),
        }
    }
}

/// The writes persisting a batch of events, in the order they must be applied, owned and
/// normalized.
#[cfg(any(feature = "memory", test))]
pub(crate) fn plan_writes(events: &[RunEvent]) -> Vec<Write> {
    plan_batch(events)
        .iter()
        .map(BatchWrite::to_owned_write)
        .collect()
}

/// Whether a run's start keeps the completed executions an earlier attempt recorded (see
/// [`BatchWrite::StartRun`]): a resumed run's do; any other start drops them all.
pub(crate) fn keeps_completed_executions(run: &RunRecord) -> bool {
    run.trigger_type == gatewai_core::TriggerType::Resume
}

/// Whether an event is stored ([`plan_batch`] makes a write of it): progress is not.
pub(crate) fn is_recorded(event: &RunEvent) -> bool {
    !matches!(event.kind, EventKind::NodeProgress { .. })
}

/// The writes persisting a batch of events, in the order they must be applied.
pub(crate) fn plan_batch(events: &[RunEvent]) -> Vec<BatchWrite<'_>> {
    // A node's write is taken out of its slot while the node's next event makes a new one.
    let mut writes: Vec<Option<BatchWrite<'_>>> = Vec::with_capacity(events.len());
    let mut by_node: HashMap<&str, usize> = HashMap::with_capacity(events.len());
    for event in events {
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        let run_id = &event.run_id;
        match &event.kind {
            EventKind::RunStarted { run, .. } => {
                writes.push(Some(BatchWrite::StartRun(Cow::Borrowed(&**run))))
            }
            EventKind::RunFinished { run } => {
                writes.push(Some(BatchWrite::SaveRun(Cow::Borrowed(&**run))))
            }
            EventKind::NodeQueued {
                node_id,
                node_type,
                label,
            } => {
                let record = NodeExecution::queued(
                    Arc::clone(run_id),
                    node_id.clone(),
                    node_type.clone(),
                    label.clone(),
                );
                put(&mut writes, &mut by_node, node_id, |_| {
                    BatchWrite::Execution {
                        seq,
                        record: Cow::Owned(record),
                    }
                });
            }
            EventKind::NodeStarted { node_id, attempt } => {
                put(&mut writes, &mut by_node, node_id, |earlier| {
                    attempt_update(earlier, seq, run_id, node_id, event.at, *attempt, None)
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
                    put(&mut writes, &mut by_node, node_id, |earlier| {
                        full(earlier, seq, record)
                    });
                }
                None => {
                    put(&mut writes, &mut by_node, node_id, |earlier| {
                        attempt_update(
                            earlier,
                            seq,
                            run_id,
                            node_id,
                            event.at,
                            *attempt,
                            Some(error),
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
                put(&mut writes, &mut by_node, node_id, |earlier| {
                    full(earlier, seq, record)
                });
            }
            _ => {}
        }
    }
    writes.into_iter().flatten().map(storable_write).collect()
}

/// Free text as every backend stores it: each NUL character (which PostgreSQL's `text` cannot
/// hold) becomes U+FFFD, so that a provider's error or a node's label holding one is stored
/// rather than refused with the rest of its batch. Ids cannot hold one (validation and the
/// store's argument checks refuse it).
pub(crate) fn storable_text(text: &str) -> Cow<'_, str> {
    match text.contains('\0') {
        true => Cow::Owned(text.replace('\0', "\u{FFFD}")),
        false => Cow::Borrowed(text),
    }
}

/// [`storable_text`] for an owned optional text.
fn storable_error(error: &mut Option<String>) {
    if let Some(Cow::Owned(text)) = error.as_deref().map(storable_text) {
        *error = Some(text);
    }
}

/// [`storable_text`] for an execution's label and error.
fn storable_execution(execution: &mut Cow<'_, NodeExecution>) {
    if let Cow::Owned(label) = storable_text(&execution.label) {
        execution.to_mut().label = Arc::from(label);
    }
    if execution.error.as_deref().is_some_and(|e| e.contains('\0')) {
        storable_error(&mut execution.to_mut().error);
    }
}

/// A write with its free text storable (see [`storable_text`]); borrowed as it was when
/// there is nothing to change.
fn storable_write(write: BatchWrite<'_>) -> BatchWrite<'_> {
    fn storable_run(mut run: Cow<'_, RunRecord>) -> Cow<'_, RunRecord> {
        if run.error.as_deref().is_some_and(|e| e.contains('\0')) {
            storable_error(&mut run.to_mut().error);
        }
        run
    }
    match write {
        BatchWrite::StartRun(run) => BatchWrite::StartRun(storable_run(run)),
        BatchWrite::SaveRun(run) => BatchWrite::SaveRun(storable_run(run)),
        BatchWrite::Execution { seq, mut record } => {
            storable_execution(&mut record);
            BatchWrite::Execution { seq, record }
        }
        BatchWrite::ExecutionProgress(mut progress) => {
            if let Some(Cow::Owned(error)) = progress.error.as_deref().map(storable_text) {
                progress.error = Some(Cow::Owned(error));
            }
            BatchWrite::ExecutionProgress(progress)
        }
    }
}

/// Replaces the node's earlier write in this batch (keeping its place), or appends.
fn put<'e>(
    writes: &mut Vec<Option<BatchWrite<'e>>>,
    by_node: &mut HashMap<&'e str, usize>,
    node_id: &'e str,
    make: impl FnOnce(Option<BatchWrite<'e>>) -> BatchWrite<'e>,
) {
    match by_node.get(node_id) {
        Some(&i) => {
            let earlier = writes[i].take();
            writes[i] = Some(make(earlier));
        }
        None => {
            by_node.insert(node_id, writes.len());
            writes.push(Some(make(None)));
        }
    }
}

fn earlier_seq(earlier: Option<&BatchWrite<'_>>, seq: i64) -> i64 {
    match earlier {
        Some(BatchWrite::Execution { seq, .. }) => *seq,
        Some(BatchWrite::ExecutionProgress(update)) => update.seq,
        _ => seq,
    }
}

fn full<'e>(
    earlier: Option<BatchWrite<'e>>,
    seq: i64,
    record: &'e NodeExecution,
) -> BatchWrite<'e> {
    BatchWrite::Execution {
        seq: earlier_seq(earlier.as_ref(), seq),
        record: Cow::Borrowed(record),
    }
}

fn attempt_update<'e>(
    earlier: Option<BatchWrite<'e>>,
    seq: i64,
    run_id: &'e str,
    node_id: &'e str,
    at: DateTime<Utc>,
    attempt: u32,
    error: Option<&'e str>,
) -> BatchWrite<'e> {
    match earlier {
        // Queued earlier in this batch: the full record, now executing.
        Some(BatchWrite::Execution { seq, record }) if !record.status.is_terminal() => {
            let mut record = record.into_owned();
            record.status = ExecutionStatus::Executing;
            if error.is_none() {
                record.started_at = Some(at);
            }
            record.attempts = attempt;
            record.error = error.map(str::to_owned);
            BatchWrite::Execution {
                seq,
                record: Cow::Owned(record),
            }
        }
        Some(BatchWrite::ExecutionProgress(earlier)) => BatchWrite::ExecutionProgress(Progress {
            seq: earlier.seq,
            run_id,
            node_id,
            status: ExecutionStatus::Executing,
            started_at: if error.is_none() {
                at
            } else {
                earlier.started_at
            },
            attempts: attempt,
            error: error.map(Cow::Borrowed),
        }),
        _ => BatchWrite::ExecutionProgress(Progress {
            seq,
            run_id,
            node_id,
            status: ExecutionStatus::Executing,
            started_at: at,
            attempts: attempt,
            error: error.map(Cow::Borrowed),
        }),
    }
}

/// The run as every backend stores it: timestamps kept to the microsecond (the precision
/// every backend stores), its error [storable](storable_text).
pub(crate) fn normalize_run(run: &RunRecord) -> RunRecord {
    let mut run = run.clone();
    storable_error(&mut run.error);
    run.created_at = run.created_at.trunc_subsecs(6);
    run.started_at = run.started_at.map(|t| t.trunc_subsecs(6));
    run.finished_at = run.finished_at.map(|t| t.trunc_subsecs(6));
    run
}

/// The execution as every backend stores it: timestamps kept to the microsecond, its label
/// and error [storable](storable_text), its duration and attempts held to what the databases'
/// columns keep (`i64` and `i32`: a duration of 292 million years, 2 billion attempts).
pub(crate) fn normalize_execution(execution: &NodeExecution) -> NodeExecution {
    let mut execution = Cow::Borrowed(execution);
    storable_execution(&mut execution);
    let mut execution = execution.into_owned();
    execution.started_at = execution.started_at.map(|t| t.trunc_subsecs(6));
    execution.finished_at = execution.finished_at.map(|t| t.trunc_subsecs(6));
    execution.duration_ms = execution.duration_ms.map(|d| d.min(i64::MAX as u64));
    execution.attempts = storable_attempts(execution.attempts);
    execution
}

/// Attempts held to what the databases' `INTEGER` column keeps.
pub(crate) fn storable_attempts(attempts: u32) -> u32 {
    attempts.min(i32::MAX as u32)
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
            cache_scope: None,
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
            output: Some(Arc::new(NodeResult::default())),
            error: None,
            cached: false,
            started_at: Some(Utc::now()),
            finished_at: Some(Utc::now()),
            duration_ms: Some(1),
            attempts: 1,
            cache_key: None,
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
                assert_eq!(&*record.node_id, "a");
                assert_eq!(record.status, ExecutionStatus::Completed);
            }
            other => panic!("{other:?}"),
        }
        match &writes[2] {
            Write::Execution { seq: 2, record } => {
                assert_eq!(&*record.node_id, "b");
                assert_eq!(record.status, ExecutionStatus::Executing);
                assert_eq!(record.attempts, 1);
                assert!(record.started_at.is_some());
                assert_eq!(&*record.node_type, "Sum");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&writes[3], Write::SaveRun(r) if r.status == RunStatus::Completed));
    }

    #[test]
    fn a_terminal_record_is_borrowed_not_copied() {
        let events = [queued(1, "a"), started(2, "a", 1), completed(3, "a")];
        let writes = plan_batch(&events);
        assert_eq!(writes.len(), 1);
        match &writes[0] {
            BatchWrite::Execution {
                seq: 1,
                record: Cow::Borrowed(record),
            } => {
                let EventKind::NodeCompleted { record: own, .. } = &events[2].kind else {
                    unreachable!()
                };
                assert!(std::ptr::eq(*record, &**own));
            }
            other => panic!("{other:?}"),
        }
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
