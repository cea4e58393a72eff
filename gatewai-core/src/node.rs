//! The pluggable node: the [`Node`] trait, the [`NodeContext`] a node runs with, its resolved
//! [`Inputs`] and the [`Outputs`] it produces.

use crate::assets::AssetStore;
use crate::error::{ErrorKind, NodeError};
use crate::event::{EventKind, EventSink, Progress};
use crate::model::{DataType, FileAsset, Item, NodeResult, NodeTemplate};
use async_trait::async_trait;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A node type the engine can run. One small trait; everything else composes around it.
///
/// Implementations must be cheap to share (`Arc<dyn Node>`); per-run state lives in the
/// [`NodeContext`].
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// The node type's template: its type name, handles, and flags.
    fn template(&self) -> &NodeTemplate;

    /// Version of the node's behaviour; bump it to invalidate cached results.
    fn version(&self) -> u32 {
        1
    }

    /// Whether the output is a pure function of (config, inputs) and may be served from cache.
    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Pure
    }

    /// How a new result is written into the node's stored result.
    fn result_mode(&self) -> ResultMode {
        ResultMode::Replace
    }

    /// Whether nodes of this type execute at all (a canvas annotation does not).
    fn is_executable(&self) -> bool {
        true
    }

    /// Whether the node's result is a final output of the run (Export): the engine reports the
    /// selected generation's values in [`RunOutcome::exports`](crate::RunOutcome).
    fn is_run_output(&self) -> bool {
        false
    }

    /// Checks a node's config; every problem as (field, message). Called by validation, so a
    /// bad config is reported before any node runs.
    fn check_config(&self, config: &serde_json::Value) -> Vec<(String, String)> {
        let _ = config;
        Vec::new()
    }

    /// Runs the node on resolved inputs.
    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError>;
}

/// Whether a node's output may be served from the result cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CachePolicy {
    /// The output is a pure function of (node type + version, config, inputs).
    #[default]
    Pure,
    /// The output may differ each run (a random seed, "now", a fetch the user wants fresh).
    Volatile,
}

/// How a new result is merged into the node's stored result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResultMode {
    /// The new generations replace the old ones (image tools).
    #[default]
    Replace,
    /// The new generations are appended and the last one selected (AI nodes), so a user can
    /// flip back to an earlier answer.
    Append,
}

/// A value handed to a source node for one run (Gatewai's API run: inputs by node id).
// One per source node and run: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum RunInput {
    /// A text value.
    Text(String),
    /// Raw bytes of a file, with an optional name.
    Bytes {
        /// The bytes.
        bytes: Bytes,
        /// A file name, if known.
        name: Option<String>,
    },
    /// A URL to fetch.
    Url(String),
    /// An existing file asset.
    Asset(FileAsset),
}

/// One input handle of a node with the values that arrived on it.
#[derive(Debug, Clone)]
pub struct InputSlot {
    /// The instance handle id.
    pub handle_id: Arc<str>,
    /// The handle template it was created from (`None` for variable inputs).
    pub template_handle_id: Option<Arc<str>>,
    /// The handle's label.
    pub label: Arc<str>,
    /// Whether the handle takes many edges.
    pub multiple: bool,
    /// The values, in edge order (at most one for a single-edge input).
    pub values: Vec<Item>,
}

impl InputSlot {
    fn answers_to(&self, key: &str) -> bool {
        self.template_handle_id.as_deref() == Some(key)
            || &*self.handle_id == key
            || self.label.eq_ignore_ascii_case(key)
    }
}

/// A node's inputs, resolved per input handle, in handle order.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Most nodes have one input handle: its slot lives inline.
    slots: SmallVec<[InputSlot; 1]>,
}

impl Inputs {
    /// Inputs from slots (used by the engine and by tests that call a node directly).
    pub fn new(slots: Vec<InputSlot>) -> Self {
        Inputs {
            slots: SmallVec::from_vec(slots),
        }
    }

    /// Inputs from slots gathered without a heap allocation for the first one.
    pub(crate) fn from_slots(slots: SmallVec<[InputSlot; 1]>) -> Self {
        Inputs { slots }
    }

    /// A single-valued input with the given key (template handle id, handle id and label are
    /// all set to `key`).
    pub fn with(mut self, key: &str, item: Item) -> Self {
        let key: Arc<str> = Arc::from(key);
        match self.slots.iter_mut().find(|s| s.answers_to(&key)) {
            Some(slot) => {
                slot.multiple = true;
                slot.values.push(item);
            }
            None => self.slots.push(InputSlot {
                handle_id: key.clone(),
                template_handle_id: Some(key.clone()),
                label: key,
                multiple: false,
                values: vec![item],
            }),
        }
        self
    }

    /// The slots in handle order.
    pub fn slots(&self) -> &[InputSlot] {
        &self.slots
    }

    /// The slot matching `key`: a template handle id, an instance handle id, or a label.
    pub fn slot(&self, key: &str) -> Option<&InputSlot> {
        self.slots.iter().find(|s| s.answers_to(key))
    }

    /// The first value on the input matching `key`.
    pub fn get(&self, key: &str) -> Option<&Item> {
        self.slot(key).and_then(|s| s.values.first())
    }

    /// All values on the input matching `key` (empty when none).
    pub fn all(&self, key: &str) -> &[Item] {
        self.slot(key).map_or(&[], |s| &s.values)
    }

    /// The first value on `key`, or an input error naming it.
    pub fn require(&self, key: &str) -> Result<&Item, NodeError> {
        self.get(key)
            .ok_or_else(|| NodeError::input(key, "no value arrived"))
    }

    /// The text on `key`, if any; an input error when the value is not text.
    pub fn text(&self, key: &str) -> Result<Option<&str>, NodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => item.as_text().map(Some).ok_or_else(|| {
                NodeError::input(key, format!("expected Text, got {}", item.data_type))
            }),
        }
    }

    /// The file asset on `key`, if any; an input error when the value is not a file.
    pub fn asset(&self, key: &str) -> Result<Option<(&FileAsset, DataType)>, NodeError> {
        match self.get(key) {
            None => Ok(None),
            Some(item) => item
                .as_asset()
                .map(|a| Some((a, item.data_type)))
                .ok_or_else(|| {
                    NodeError::input(key, format!("expected a file, got {}", item.data_type))
                }),
        }
    }

    /// Every value of every slot, in handle order then edge order.
    pub fn values(&self) -> impl Iterator<Item = &Item> {
        self.slots.iter().flat_map(|s| s.values.iter())
    }
}

/// What a node produced: one or more generations, each a set of (output handle, value).
///
/// Handles are named by template handle id, instance handle id or label; the engine maps them
/// onto the node's instance handles.
#[derive(Debug, Clone, Default)]
pub struct Outputs {
    /// Every (handle, value) of every generation, in order (a single value inline: most nodes
    /// produce one, and it then costs no allocation of its own).
    pub(crate) items: SmallVec<[(Cow<'static, str>, Item); 1]>,
    /// Where generations after the first start in `items` (none for one generation, so the
    /// common single-generation output allocates at most `items`, and nothing for one value).
    pub(crate) starts: Vec<usize>,
    /// How many generations there are (0: none at all).
    pub(crate) count: usize,
}

impl Outputs {
    /// No outputs (a node that leaves every output empty, e.g. a router sending nothing).
    pub fn none() -> Self {
        Outputs::default()
    }

    /// One generation with one value.
    pub fn one(handle: impl Into<Cow<'static, str>>, item: Item) -> Self {
        Outputs {
            items: smallvec::smallvec![(handle.into(), item)],
            starts: Vec::new(),
            count: 1,
        }
    }

    /// Adds a value to the last generation (starting one if there is none).
    pub fn with(mut self, handle: impl Into<Cow<'static, str>>, item: Item) -> Self {
        self.count = self.count.max(1);
        self.items.push((handle.into(), item));
        self
    }

    /// Starts a new generation (for nodes that produce several candidates at once).
    pub fn next_generation(mut self) -> Self {
        if self.count > 0 {
            self.starts.push(self.items.len());
        }
        self.count += 1;
        self
    }

    /// How many generations there are.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is no generation at all.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The generations as (handle, value) lists, in order.
    pub fn generations(&self) -> impl Iterator<Item = &[(Cow<'static, str>, Item)]> {
        (0..self.count).map(|g| &self.items[self.bounds(g)])
    }

    /// The range of generation `g` in `items`.
    pub(crate) fn bounds(&self, g: usize) -> std::ops::Range<usize> {
        let total = self.items.len();
        let start = match g {
            0 => 0,
            _ => self.starts.get(g - 1).copied().unwrap_or(total),
        };
        let end = self.starts.get(g).copied().unwrap_or(total);
        start..end.max(start)
    }

    /// The first value for `handle` in the first generation.
    pub fn get(&self, handle: &str) -> Option<&Item> {
        self.generations()
            .next()?
            .iter()
            .find(|(h, _)| h == handle)
            .map(|(_, i)| i)
    }
}

/// Everything a node can reach while it runs: its config, the cancellation signal, a progress
/// reporter, the asset store, its previous result, a run input, and its tracing span.
///
/// A context the engine makes is a pointer to the run plus the node's place in it: making one
/// copies nothing of the node's data. It keeps the whole run's state alive while it exists, so
/// a node (or a [`NodeDispatcher`](crate::engine::NodeDispatcher)) should not keep it past its
/// execution: clone what a background task needs (the cancellation token, the asset store).
#[derive(Clone)]
pub struct NodeContext {
    pub(crate) scope: Scope,
    pub(crate) span: tracing::Span,
    pub(crate) attempt: u32,
}

/// Where a context's data lives.
#[derive(Clone)]
pub(crate) enum Scope {
    /// A node of a running run: the run's state and the node's index in it.
    Run(Arc<dyn RunScope>, u32),
    /// A context made outside an engine.
    Detached(Arc<Detached>),
}

/// What a run shows the contexts of its nodes (implemented by the engine's run state).
pub(crate) trait RunScope: Send + Sync + 'static {
    fn run_id(&self) -> &str;
    fn node_id(&self, node: u32) -> &Arc<str>;
    fn node_type(&self, node: u32) -> &str;
    fn config(&self, node: u32) -> &serde_json::Value;
    fn previous_result(&self, node: u32) -> Option<&NodeResult>;
    fn run_input(&self, node: u32) -> Option<&RunInput>;
    fn cancellation(&self) -> &CancellationToken;
    fn assets(&self) -> &Arc<dyn AssetStore>;
    fn events(&self) -> Option<&EventSink>;
}

/// The data of a context made outside an engine.
#[derive(Clone)]
pub(crate) struct Detached {
    run_id: Arc<str>,
    node_id: Arc<str>,
    node_type: Arc<str>,
    config: serde_json::Value,
    previous_result: Option<NodeResult>,
    run_input: Option<RunInput>,
    cancel: CancellationToken,
    assets: Arc<dyn AssetStore>,
    /// Where progress goes (a run's context copied by a `with_*` builder keeps its run's).
    events: Option<EventSink>,
}

impl NodeContext {
    /// A context for calling a node directly, outside an engine (tests, one-off calls).
    pub fn detached(
        node_id: &str,
        node_type: &str,
        config: serde_json::Value,
        assets: Arc<dyn AssetStore>,
    ) -> Self {
        NodeContext {
            scope: Scope::Detached(Arc::new(Detached {
                run_id: Arc::from("detached"),
                node_id: Arc::from(node_id),
                node_type: Arc::from(node_type),
                config,
                previous_result: None,
                run_input: None,
                cancel: CancellationToken::new(),
                assets,
                events: None,
            })),
            span: tracing::Span::none(),
            attempt: 1,
        }
    }

    /// Changes the context's data, as a detached copy (a context of a run is copied first).
    fn with_detached(mut self, change: impl FnOnce(&mut Detached)) -> Self {
        let mut detached = match self.scope {
            Scope::Detached(detached) => Arc::unwrap_or_clone(detached),
            Scope::Run(run, node) => Detached {
                run_id: Arc::from(run.run_id()),
                node_id: run.node_id(node).clone(),
                node_type: Arc::from(run.node_type(node)),
                config: run.config(node).clone(),
                previous_result: run.previous_result(node).cloned(),
                run_input: run.run_input(node).cloned(),
                cancel: run.cancellation().clone(),
                assets: run.assets().clone(),
                events: run.events().cloned(),
            },
        };
        change(&mut detached);
        self.scope = Scope::Detached(Arc::new(detached));
        self
    }

    /// Sets the previous result (for a detached context).
    pub fn with_previous_result(self, result: NodeResult) -> Self {
        self.with_detached(|d| d.previous_result = Some(result))
    }

    /// Sets the run input (for a detached context).
    pub fn with_run_input(self, input: RunInput) -> Self {
        self.with_detached(|d| d.run_input = Some(input))
    }

    /// Uses this cancellation token (for a detached context).
    pub fn with_cancel(self, cancel: CancellationToken) -> Self {
        self.with_detached(|d| d.cancel = cancel)
    }

    /// The run's id.
    pub fn run_id(&self) -> &str {
        match &self.scope {
            Scope::Run(run, _) => run.run_id(),
            Scope::Detached(d) => &d.run_id,
        }
    }

    /// The node's id.
    pub fn node_id(&self) -> &str {
        self.node_id_arc()
    }

    fn node_id_arc(&self) -> &Arc<str> {
        match &self.scope {
            Scope::Run(run, node) => run.node_id(*node),
            Scope::Detached(d) => &d.node_id,
        }
    }

    /// The node's type name.
    pub fn node_type(&self) -> &str {
        match &self.scope {
            Scope::Run(run, node) => run.node_type(*node),
            Scope::Detached(d) => &d.node_type,
        }
    }

    /// The raw config.
    pub fn raw_config(&self) -> &serde_json::Value {
        match &self.scope {
            Scope::Run(run, node) => run.config(*node),
            Scope::Detached(d) => &d.config,
        }
    }

    /// The config deserialised into the node's own config struct; a config error naming the
    /// field when it does not fit. A null config deserialises from `{}`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, NodeError> {
        let config = self.raw_config();
        let parsed = if config.is_null() {
            T::deserialize(serde_json::Value::Object(Default::default()))
        } else {
            T::deserialize(config)
        };
        parsed.map_err(|e| {
            NodeError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "config: {}",
                    crate::error::shown_up_to(&e, crate::error::MAX_SERDE_SHOWN)
                ),
            )
        })
    }

    /// The node's stored result before this run.
    pub fn previous_result(&self) -> Option<&NodeResult> {
        match &self.scope {
            Scope::Run(run, node) => run.previous_result(*node),
            Scope::Detached(d) => d.previous_result.as_ref(),
        }
    }

    /// The value handed to this (source) node for this run, if any.
    pub fn run_input(&self) -> Option<&RunInput> {
        match &self.scope {
            Scope::Run(run, node) => run.run_input(*node),
            Scope::Detached(d) => d.run_input.as_ref(),
        }
    }

    /// The cancellation signal of the run.
    pub fn cancellation(&self) -> &CancellationToken {
        match &self.scope {
            Scope::Run(run, _) => run.cancellation(),
            Scope::Detached(d) => &d.cancel,
        }
    }

    /// Whether the run was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation().is_cancelled()
    }

    /// Resolves when the run is cancelled.
    pub async fn cancelled(&self) {
        self.cancellation().cancelled().await
    }

    /// The asset store.
    pub fn assets(&self) -> &Arc<dyn AssetStore> {
        match &self.scope {
            Scope::Run(run, _) => run.assets(),
            Scope::Detached(d) => &d.assets,
        }
    }

    /// The node's tracing span.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Which attempt this is (1 for the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Reports progress: a fraction in 0..=1 and/or a message.
    pub fn report_progress(&self, fraction: Option<f32>, message: Option<String>) {
        self.emit_progress(Progress {
            fraction: fraction.map(|f| f.clamp(0.0, 1.0)),
            message,
            partial_text: None,
        });
    }

    /// Reports streamed partial text (an LLM's tokens so far, or the latest chunk).
    pub fn report_partial_text(&self, text: impl Into<String>) {
        self.emit_progress(Progress {
            fraction: None,
            message: None,
            partial_text: Some(text.into()),
        });
    }

    fn emit_progress(&self, progress: Progress) {
        let events = match &self.scope {
            Scope::Run(run, _) => run.events(),
            Scope::Detached(d) => d.events.as_ref(),
        };
        if let Some(events) = events {
            events.emit(EventKind::NodeProgress {
                node_id: self.node_id_arc().clone(),
                progress,
            });
        }
    }
}

impl std::fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeContext")
            .field("run_id", &self.run_id())
            .field("node_id", &self.node_id())
            .field("node_type", &self.node_type())
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(outputs: &Outputs) -> Vec<Vec<String>> {
        outputs
            .generations()
            .map(|g| g.iter().map(|(h, _)| h.to_string()).collect())
            .collect()
    }

    #[test]
    fn outputs_keep_their_generations_apart() {
        assert!(Outputs::none().is_empty());
        assert_eq!(shape(&Outputs::none()), Vec::<Vec<String>>::new());
        assert_eq!(shape(&Outputs::one("a", Item::integer(1))), [["a"]]);
        let several = Outputs::none()
            .with("a", Item::integer(1))
            .with("b", Item::integer(2))
            .next_generation()
            .with("a", Item::integer(3))
            .next_generation();
        assert_eq!(several.len(), 3);
        assert_eq!(shape(&several), vec![vec!["a", "b"], vec!["a"], vec![]]);
        assert_eq!(several.get("b").and_then(Item::as_f64), Some(2.0));
        let empty_first = Outputs::none()
            .next_generation()
            .with("x", Item::integer(1));
        assert_eq!(shape(&empty_first), [["x"]]);
    }
}
