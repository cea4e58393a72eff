//! Node templates and workflow builders shared by the behaviour tests.
//!
//! Core knows no concrete node, so the tests define templates mirroring the built-in ones
//! (names, handle ids and aliases from the project's conventions), with import hooks that map the
//! workflow app's React Flow `data` onto Gatewai config fields.
#![allow(dead_code)]

use gatewai_core::model::{Edge, Extra, Node, Position, Workflow};
use gatewai_core::{DataType, HandleTemplate, NodeTemplate, TemplateSource};
use serde_json::{Map, Value, json};
use std::time::Duration;

use DataType::{Audio, Image, Text, Video};

/// The first of `names` present in `data` (snake_case and camelCase spellings of one field).
fn field<'a>(data: &'a Extra, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| data.get(*n))
}

/// `data` without the UI fields and without the fields a hook mapped (all spellings), so that
/// unknown fields are kept in the config.
fn rest(data: &Extra, mapped: &[&[&str]]) -> Map<String, Value> {
    data.iter()
        .filter(|(k, _)| {
            *k != "label"
                && *k != "status"
                && !mapped.iter().any(|names| names.contains(&k.as_str()))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Maps fields: each (config name, accepted data names); absent ones keep the default.
fn map_fields(data: &Extra, defaults: Value, fields: &[(&str, &[&str])]) -> Result<Value, String> {
    let mut config = rest(
        data,
        &fields.iter().map(|(_, names)| *names).collect::<Vec<_>>(),
    );
    if let Value::Object(defaults) = defaults {
        for (k, v) in defaults {
            config.insert(k, v);
        }
    }
    for (name, accepted) in fields {
        if let Some(value) = field(data, accepted) {
            config.insert((*name).to_owned(), value.clone());
        }
    }
    Ok(Value::Object(config))
}

const CROP_FIELDS: [(&str, &[&str]); 4] = [
    (
        "leftPercentage",
        &["x_percent", "xPercent", "leftPercentage"],
    ),
    ("topPercentage", &["y_percent", "yPercent", "topPercentage"]),
    (
        "widthPercentage",
        &["width_percent", "widthPercent", "widthPercentage"],
    ),
    (
        "heightPercentage",
        &["height_percent", "heightPercent", "heightPercentage"],
    ),
];

/// Templates mirroring the built-in node types.
pub fn templates() -> Vec<NodeTemplate> {
    vec![
        NodeTemplate::new("Text", "Text", "Inputs")
            .aliases(&["text"])
            .default_config(json!({"content": ""}))
            .handle(HandleTemplate::output("text", "Text", &[Text]).aliases(&["output"]))
            .import_hook(|data| {
                map_fields(data, json!({"content": ""}), &[("content", &["text", "value", "content"])])
            }),
        NodeTemplate::new("File", "File", "Inputs")
            .aliases(&["Import", "image", "upload_image", "video", "upload_video", "audio"])
            .handle(
                HandleTemplate::output("file", "File", &[Image, Video, Audio]).aliases(&["output"]),
            )
            .import_hook(|data| {
                let url = field(data, &["image", "video", "url"])
                    .cloned()
                    .or_else(|| data.get("file").and_then(|f| f.get("url")).cloned());
                let mut config = rest(data, &[&["image", "video", "url"]]);
                if let Some(url) = url {
                    config.insert("url".into(), url);
                }
                Ok(Value::Object(config))
            }),
        NodeTemplate::new("Crop", "Crop", "Image")
            .aliases(&["crop", "crop_image"])
            .transient()
            .default_config(json!({
                "leftPercentage": 0, "topPercentage": 0,
                "widthPercentage": 100, "heightPercentage": 100
            }))
            .handle(
                HandleTemplate::input("image", "Image", &[Image])
                    .required()
                    .aliases(&["image_url"]),
            )
            .handle(HandleTemplate::output("result", "Result", &[Image]).aliases(&["output"]))
            .import_hook(|data| {
                for (_, names) in CROP_FIELDS {
                    if let Some(v) = field(data, names) {
                        let ok = v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p));
                        if !ok {
                            return Err(format!("data field `{}` must be a percentage, got {v}", names[0]));
                        }
                    }
                }
                map_fields(
                    data,
                    json!({"leftPercentage": 0, "topPercentage": 0, "widthPercentage": 100, "heightPercentage": 100}),
                    &CROP_FIELDS,
                )
            }),
        NodeTemplate::new("ExtractFrame", "Extract Frame", "Video")
            .aliases(&["extractFrame", "extract_frame"])
            .handle(
                HandleTemplate::input("video", "Video", &[Video])
                    .required()
                    .aliases(&["video_url"]),
            )
            .handle(HandleTemplate::output("result", "Result", &[Image]).aliases(&["output"]))
            .import_hook(|data| map_fields(data, json!({"timestamp": 0}), &[("timestamp", &["timestamp", "time"])])),
        NodeTemplate::new("LLM", "LLM", "AI")
            .aliases(&["llm"])
            .terminal()
            .variable_inputs(&[Image])
            .default_config(json!({"model": "gemini-2.5-flash", "temperature": 0}))
            .handle(
                HandleTemplate::input("prompt", "Prompt", &[Text])
                    .required()
                    .aliases(&["user_message"]),
            )
            .handle(
                HandleTemplate::input("system_prompt", "System Prompt", &[Text])
                    .aliases(&["systemPrompt"]),
            )
            .handle(
                HandleTemplate::input("image", "Image", &[Image])
                    .multiple()
                    .aliases(&["images"]),
            )
            .handle(HandleTemplate::output("result", "Text", &[Text]).aliases(&["output"]))
            .import_hook(|data| {
                map_fields(
                    data,
                    json!({"model": "gemini-2.5-flash", "temperature": 0}),
                    &[
                        ("model", &["model"]),
                        ("temperature", &["temperature"]),
                        ("systemPrompt", &["systemPrompt", "system_prompt"]),
                        ("userMessage", &["userMessage", "user_message"]),
                    ],
                )
            }),
        NodeTemplate::new("Preview", "Preview", "Outputs")
            .aliases(&["preview"])
            .transient()
            .handle(HandleTemplate::input("input", "Input", &[Text, Image, Video, Audio]).required()),
        NodeTemplate::new("Export", "Export", "Outputs")
            .aliases(&["export", "output"])
            .terminal()
            .handle(HandleTemplate::input("input", "Input", &[Text, Image, Video, Audio]).required()),
        // Graph-shape helpers for the large-graph tests.
        NodeTemplate::new("Relay", "Relay", "Tools")
            .handle(HandleTemplate::input("in", "In", &[Text]).required())
            .handle(HandleTemplate::output("out", "Out", &[Text])),
        NodeTemplate::new("Join", "Join", "Tools")
            .handle(HandleTemplate::input("in", "In", &[Text]).required().multiple())
            .handle(HandleTemplate::output("out", "Out", &[Text])),
    ]
}

/// A template source that also checks configs, like a registry of real nodes: Crop's
/// percentages must be numbers in 0..=100, and an LLM's temperature in 0..=2.
pub struct CheckedTemplates(pub Vec<NodeTemplate>);

impl CheckedTemplates {
    pub fn new() -> Self {
        CheckedTemplates(templates())
    }
}

impl TemplateSource for CheckedTemplates {
    fn template(&self, node_type: &str) -> Option<&NodeTemplate> {
        self.0.template(node_type)
    }

    fn templates(&self) -> Vec<&NodeTemplate> {
        self.0.iter().collect()
    }

    fn check_config(&self, node_type: &str, config: &Value) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut range = |field: &str, min: f64, max: f64| match config.get(field) {
            None => {}
            Some(v) if v.as_f64().is_some_and(|x| (min..=max).contains(&x)) => {}
            Some(v) => problems.push((
                field.to_owned(),
                format!("must be a number in {min}..={max}, got {v}"),
            )),
        };
        match node_type {
            "Crop" => {
                for f in [
                    "leftPercentage",
                    "topPercentage",
                    "widthPercentage",
                    "heightPercentage",
                ] {
                    range(f, 0.0, 100.0);
                }
            }
            "LLM" => range("temperature", 0.0, 2.0),
            _ => {}
        }
        problems
    }
}

/// The handle id the builder gives node `node`'s handle made from template handle `th`.
pub fn hid(node: &str, th: &str) -> String {
    format!("{node}:{th}")
}

/// A workflow builder with readable, deterministic ids: handles are `{node}:{templateHandle}`.
pub struct Canvas {
    templates: Vec<NodeTemplate>,
    pub workflow: Workflow,
}

impl Canvas {
    pub fn new() -> Self {
        Canvas {
            templates: templates(),
            workflow: Workflow::default(),
        }
    }

    /// Adds a node of a known type with its template handles.
    pub fn node(mut self, id: &str, node_type: &str) -> Self {
        let template = self
            .templates
            .iter()
            .find(|t| t.node_type == node_type)
            .unwrap_or_else(|| panic!("test template {node_type}"));
        let mut node = Node::new(id, node_type);
        node.config = template.default_config.clone().unwrap_or(json!({}));
        self.workflow.nodes.push(node);
        for h in &template.template_handles {
            self.workflow
                .handles
                .push(h.instantiate(id, hid(id, &h.id)));
        }
        self
    }

    /// Adds an edge from `source`'s template handle `sh` to `target`'s template handle `th`.
    pub fn edge(mut self, id: &str, source: &str, sh: &str, target: &str, th: &str) -> Self {
        self.workflow.edges.push(edge(id, source, sh, target, th));
        self
    }

    pub fn build(self) -> Workflow {
        self.workflow
    }
}

/// An edge between builder handles.
pub fn edge(id: &str, source: &str, sh: &str, target: &str, th: &str) -> Edge {
    Edge {
        id: id.to_owned(),
        source: source.to_owned(),
        target: target.to_owned(),
        source_handle_id: hid(source, sh),
        target_handle_id: hid(target, th),
        extra: Extra::new(),
    }
}

/// A chain of `n` nodes: a Text node followed by `n - 1` Relays.
pub fn chain(n: usize) -> Workflow {
    let mut canvas = Canvas::new().node("n0", "Text");
    for i in 1..n {
        let (prev, this) = (format!("n{}", i - 1), format!("n{i}"));
        let sh = if i == 1 { "text" } else { "out" };
        canvas = canvas
            .node(&this, "Relay")
            .edge(&format!("e{i}"), &prev, sh, &this, "in");
    }
    canvas.build()
}

/// A layered DAG: `layers` layers of `width` nodes; the first layer Text nodes, every later node
/// a Join fed by two nodes of the layer before.
pub fn layered(layers: usize, width: usize) -> Workflow {
    let mut canvas = Canvas::new();
    let id = |l: usize, i: usize| format!("l{l}n{i}");
    for i in 0..width {
        canvas = canvas.node(&id(0, i), "Text");
    }
    for l in 1..layers {
        for i in 0..width {
            let this = id(l, i);
            let sh = if l == 1 { "text" } else { "out" };
            canvas = canvas
                .node(&this, "Join")
                .edge(&format!("{this}a"), &id(l - 1, i), sh, &this, "in")
                .edge(
                    &format!("{this}b"),
                    &id(l - 1, (i + 1) % width),
                    sh,
                    &this,
                    "in",
                );
        }
    }
    canvas.build()
}

/// Reads a fixture file.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The position at the origin.
pub fn origin() -> Position {
    Position::default()
}

/// How many times larger the second size of a linear-time check is.
pub const GROWTH: usize = 16;

/// How many times slower than linear growth the second size may be: linear work gives a ratio
/// of about [`GROWTH`] (16), a search per item about its square (256).
pub const MARGIN: f64 = 4.0;

/// How many times a linear-time check measures both sizes at most (see [`LinearCheck`]).
pub const TRIES: usize = 3;

/// The best times of a case at `n` and at [`GROWTH`]` * n` so far. A ratio, unlike a time
/// limit, holds on a machine of any speed; a case is measured again (up to [`TRIES`] times,
/// each size's fastest run counting) only while its ratio is past the limit, so that a moment
/// when the tests running beside it load the machine does not decide, and a passing check
/// costs one measurement.
pub struct LinearCheck {
    n: usize,
    best: [Duration; 2],
    tries: usize,
}

impl LinearCheck {
    /// A check of a case at `n` and [`GROWTH`]` * n`.
    pub fn new(n: usize) -> Self {
        LinearCheck {
            n,
            best: [Duration::MAX; 2],
            tries: 0,
        }
    }

    /// The sizes to measure next, or `None` once the ratio is within the limit (or the tries
    /// are spent).
    pub fn sizes(&self) -> Option<[usize; 2]> {
        (self.tries < TRIES && (self.tries == 0 || self.ratio() >= self.limit()))
            .then_some([self.n, GROWTH * self.n])
    }

    /// Notes the times of the two sizes `sizes` gave.
    pub fn took(&mut self, times: [Duration; 2]) {
        self.tries += 1;
        for (best, time) in self.best.iter_mut().zip(times) {
            *best = (*best).min(time);
        }
    }

    fn ratio(&self) -> f64 {
        self.best[1].as_secs_f64() / self.best[0].as_secs_f64().max(1e-6)
    }

    fn limit(&self) -> f64 {
        MARGIN * GROWTH as f64
    }

    /// Asserts that the case grew about linearly: its best time at [`GROWTH`]` * n` stays
    /// under [`MARGIN`]` * `[`GROWTH`] times its best time at `n`.
    pub fn assert(&self) {
        let ratio = self.ratio();
        assert!(
            ratio < self.limit(),
            "{:?} at {}, {:?} at {}: {ratio:.1}x for {GROWTH}x the size",
            self.best[0],
            self.n,
            self.best[1],
            GROWTH * self.n
        );
    }
}

/// Asserts that `case` (which returns the time it took at a size) takes about linear time in
/// its size (see [`LinearCheck`]).
pub fn assert_linear(n: usize, mut case: impl FnMut(usize) -> Duration) {
    let mut check = LinearCheck::new(n);
    while let Some(sizes) = check.sizes() {
        check.took(sizes.map(&mut case));
    }
    check.assert();
}
