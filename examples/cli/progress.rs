//! Live progress of a run on the terminal: a spinner (or a bar, once the node reports a
//! fraction) per running node, streamed LLM text, and one line per node as it settles.

use gatewai_core::{EventKind, ResultSource, RunEvent};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

/// How many characters of streamed text a spinner shows.
const STREAM_TAIL: usize = 70;

/// What a node settled as, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It executed.
    Executed,
    /// The result cache served it.
    Cached,
    /// It failed.
    Failed,
    /// It was skipped.
    Skipped,
    /// It was cancelled.
    Cancelled,
}

/// The live view of one run.
pub struct ProgressView {
    multi: MultiProgress,
    bars: HashMap<Arc<str>, ProgressBar>,
    types: HashMap<Arc<str>, Arc<str>>,
    streamed: HashMap<Arc<str>, String>,
    settled: Vec<(String, Settled)>,
    id_width: usize,
}

impl ProgressView {
    /// A view drawing on stderr when `draw` is set (and stderr is a terminal), or nothing but
    /// the settled lines otherwise. `id_width` aligns the node ids.
    pub fn new(draw: bool, id_width: usize) -> Self {
        let target = if draw {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        ProgressView {
            multi: MultiProgress::with_draw_target(target),
            bars: HashMap::new(),
            types: HashMap::new(),
            streamed: HashMap::new(),
            settled: Vec::new(),
            id_width,
        }
    }

    /// What each node settled as, in the order they settled.
    pub fn settled(&self) -> &[(String, Settled)] {
        &self.settled
    }

    /// The text a node streamed, if any.
    pub fn streamed_text(&self, node_id: &str) -> Option<&str> {
        self.streamed.get(node_id).map(String::as_str)
    }

    /// Updates the view with one event; settled nodes are written to `out` as a line.
    pub fn on_event(&mut self, event: &RunEvent, out: &mut dyn Write) {
        match &event.kind {
            EventKind::NodeQueued {
                node_id, node_type, ..
            } => {
                self.types.insert(node_id.clone(), node_type.clone());
            }
            EventKind::NodeStarted { node_id, attempt } => {
                let bar = self.bar(node_id);
                if *attempt > 1 {
                    bar.set_message(format!("attempt {attempt}"));
                }
            }
            EventKind::NodeProgress { node_id, progress } => {
                let bar = self.bar(node_id);
                if let Some(fraction) = progress.fraction {
                    if bar.length().is_none() {
                        bar.set_style(bar_style());
                        bar.set_length(1000);
                    }
                    bar.set_position((fraction * 1000.0) as u64);
                }
                if let Some(message) = &progress.message {
                    bar.set_message(message.clone());
                }
                if let Some(delta) = &progress.partial_text {
                    let text = self.streamed.entry(node_id.clone()).or_default();
                    text.push_str(delta);
                    let tail = tail(text, STREAM_TAIL);
                    bar.set_message(format!("“{tail}”"));
                }
            }
            EventKind::NodeCompleted {
                node_id,
                source,
                record,
                ..
            } => {
                let (how, settled) = match source {
                    ResultSource::Cached => ("cached".to_owned(), Settled::Cached),
                    ResultSource::Pinned => ("pinned".to_owned(), Settled::Cached),
                    ResultSource::Resumed => ("resumed".to_owned(), Settled::Cached),
                    ResultSource::Executed => (
                        format!("{} ms", record.duration_ms.unwrap_or(0)),
                        Settled::Executed,
                    ),
                };
                self.settle(node_id, "✓", &how, settled, out);
            }
            EventKind::NodeFailed {
                node_id,
                error,
                will_retry,
                attempt,
                ..
            } => {
                if *will_retry {
                    self.bar(node_id)
                        .set_message(format!("attempt {attempt} failed, retrying: {error}"));
                } else {
                    self.settle(
                        node_id,
                        "✗",
                        &format!("failed: {error}"),
                        Settled::Failed,
                        out,
                    );
                }
            }
            EventKind::NodeSkipped {
                node_id, reason, ..
            } => {
                self.settle(
                    node_id,
                    "-",
                    &format!("skipped: {reason}"),
                    Settled::Skipped,
                    out,
                );
            }
            EventKind::NodeCancelled { node_id, .. } => {
                self.settle(node_id, "✗", "cancelled", Settled::Cancelled, out);
            }
            _ => {}
        }
    }

    /// Clears whatever is still drawn.
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    fn bar(&mut self, node_id: &Arc<str>) -> ProgressBar {
        if let Some(bar) = self.bars.get(node_id) {
            return bar.clone();
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        let node_type = self.types.get(node_id).map(|t| &**t).unwrap_or("");
        bar.set_prefix(format!("{node_id:<w$} {node_type:<12}", w = self.id_width));
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bars.insert(node_id.clone(), bar.clone());
        bar
    }

    fn settle(
        &mut self,
        node_id: &Arc<str>,
        mark: &str,
        how: &str,
        settled: Settled,
        out: &mut dyn Write,
    ) {
        if let Some(bar) = self.bars.remove(node_id) {
            bar.finish_and_clear();
        }
        let node_type = self.types.get(node_id).map(|t| &**t).unwrap_or("");
        let line = format!(
            "  {mark} {node_id:<w$} {node_type:<12} {how}",
            w = self.id_width
        );
        self.multi.suspend(|| {
            let _ = writeln!(out, "{line}");
        });
        self.settled.push((node_id.to_string(), settled));
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {prefix} {elapsed:>4} {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("  {spinner} {prefix} [{bar:24}] {percent:>3}% {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// The last `n` characters of `text` on one line.
fn tail(text: &str, n: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let count = flat.chars().count();
    flat.chars().skip(count.saturating_sub(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatewai_core::{ExecutionStatus, NodeExecution, NodeResult, Progress};

    fn event(seq: u64, kind: EventKind) -> RunEvent {
        RunEvent {
            run_id: Arc::from("r1"),
            seq,
            at: chrono::Utc::now(),
            kind,
        }
    }

    fn record(node_id: &str, duration_ms: u64) -> Arc<NodeExecution> {
        Arc::new(NodeExecution {
            status: ExecutionStatus::Completed,
            duration_ms: Some(duration_ms),
            attempts: 1,
            ..NodeExecution::queued("r1".into(), node_id.into(), "LLM".into(), "".into())
        })
    }

    #[test]
    fn streamed_text_accumulates_and_settled_nodes_print_one_line_each() {
        let mut view = ProgressView::new(false, 6);
        let mut out = Vec::new();
        let llm: Arc<str> = Arc::from("llm");
        let text: Arc<str> = Arc::from("text");
        let events = [
            EventKind::NodeQueued {
                node_id: llm.clone(),
                node_type: Arc::from("LLM"),
                label: Arc::from("Haiku"),
            },
            EventKind::NodeStarted {
                node_id: llm.clone(),
                attempt: 1,
            },
            EventKind::NodeProgress {
                node_id: llm.clone(),
                progress: Progress {
                    fraction: None,
                    message: None,
                    partial_text: Some("Frozen river, ".into()),
                },
            },
            EventKind::NodeProgress {
                node_id: llm.clone(),
                progress: Progress {
                    fraction: None,
                    message: None,
                    partial_text: Some("a fox.".into()),
                },
            },
            EventKind::NodeCompleted {
                node_id: llm.clone(),
                source: ResultSource::Executed,
                result: Arc::new(NodeResult::default()),
                record: record("llm", 42),
            },
            EventKind::NodeCompleted {
                node_id: text.clone(),
                source: ResultSource::Cached,
                result: Arc::new(NodeResult::default()),
                record: record("text", 0),
            },
        ];
        for (seq, kind) in events.into_iter().enumerate() {
            view.on_event(&event(seq as u64, kind), &mut out);
        }
        view.finish();
        assert_eq!(view.streamed_text("llm"), Some("Frozen river, a fox."));
        assert_eq!(
            view.settled(),
            [
                ("llm".to_owned(), Settled::Executed),
                ("text".to_owned(), Settled::Cached)
            ]
        );
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].contains("llm") && lines[0].contains("LLM") && lines[0].ends_with("42 ms")
        );
        assert!(lines[1].contains("text") && lines[1].ends_with("cached"));
    }

    #[test]
    fn tail_is_one_line_of_the_last_chars() {
        assert_eq!(tail("ab\ncdé", 3), "cdé");
        assert_eq!(tail("ab", 10), "ab");
    }
}
