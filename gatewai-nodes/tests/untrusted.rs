//! Generated untrusted input, through the public API: mutated workflow documents (the canvas,
//! React Flow and native shapes), mutated configs of every built-in node type on real inputs,
//! and mutated AI provider replies. Whatever comes in, the answer is a value or a typed error:
//! never a panic and never a hang.
//!
//! A panic hook counts every panic of the process, so that a panic the engine turns into a
//! failed node ("node panicked"), or one on tokio's blocking pool, fails the case too. The tests
//! of this file take turns (one lock), so that a case sees only its own panics.
//!
//! The cases are the same on every run (a fixed seed), so CI is repeatable. To explore more:
//! `GATEWAI_FUZZ_CASES=2000` runs more cases per property, `GATEWAI_FUZZ_SEED=random` draws a
//! fresh seed. A failure prints the smallest input proptest found that still fails.

mod ai_support;

use ai_support::{gemini_inline, gemini_text, openai_chunk, png, sse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatewai_core::model::{HandleType, Position};
use gatewai_core::{
    DataType, Engine, Inputs, Item, MemoryAssetStore, NodeContext, NodeRegistry, RetryPolicy,
    RunOptions, Workflow, edit, import,
};
use gatewai_nodes::ai::{AiSettings, ApiKey};
use gatewai_nodes::fetch::FetchPolicy;
use gatewai_testkit::fuzz_runner as runner;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Panics, cases, runner

/// Every panic of the process since the last [`take_panics`]: message and place.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The tests of this file run one at a time (they share [`PANICS`]).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(info.to_string());
            previous(info);
        }));
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fails when an error message quotes one of the generated long values (runs of 70,000 `x`)
/// beyond the 400 characters a message quotes of an untrusted value (200 for a value, 400 for
/// a serde error around one).
fn check_message(message: &str) -> Result<(), TestCaseError> {
    check_message_up_to(message, 400)
}

/// [`check_message`] with a limit of `max` characters.
fn check_message_up_to(message: &str, max: usize) -> Result<(), TestCaseError> {
    prop_assert!(!message.is_empty(), "an empty error message");
    let long = "x".repeat(max + 1);
    if let Some(at) = message.find(&long) {
        let start = message.floor_char_boundary(at.saturating_sub(120));
        return Err(TestCaseError::fail(format!(
            "an error message of {} bytes quotes a long value whole: …{}…",
            message.len(),
            &message[start..message.floor_char_boundary(at + 40)]
        )));
    }
    Ok(())
}

fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Runs `check` on every case; fails on a failed check and on any panic during a case.
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let result = runner(cases).run(&strategy, |case| {
        take_panics();
        let checked = check(case);
        let panics = take_panics();
        checked?;
        prop_assert!(panics.is_empty(), "panicked: {panics:#?}");
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------------
// JSON mutations

/// One change at a place in a JSON document (the place picked among all its values, in
/// pre-order, by `at`).
#[derive(Debug, Clone)]
enum Change {
    /// The value there becomes this one.
    Replace(Value),
    /// The value there goes (from its object or array).
    Remove,
    /// The value there becomes a copy of another value of the document (ids cross-wired,
    /// a node's config where an edge was, …).
    CopyFrom(Index),
    /// An array element is doubled (duplicate ids, edges, handles).
    Duplicate,
}

#[derive(Debug, Clone)]
struct Edit {
    at: Index,
    change: Change,
}

/// Field names the documents and configs use, so generated objects look like them.
const FIELDS: &[&str] = &[
    "id",
    "type",
    "name",
    "config",
    "data",
    "handles",
    "edges",
    "nodes",
    "source",
    "target",
    "sourceHandleId",
    "targetHandleId",
    "sourceHandle",
    "targetHandle",
    "nodeId",
    "templateId",
    "result",
    "outputs",
    "items",
    "selectedOutputIndex",
    "outputHandleId",
    "dataTypes",
    "type",
    "label",
    "order",
    "required",
    "content",
    "model",
    "prompt",
    "provider",
    "url",
    "assetId",
    "entity",
    "width",
    "height",
    "leftPercentage",
    "topPercentage",
    "widthPercentage",
    "heightPercentage",
    "size",
    "timestamp",
    "startSec",
    "endSec",
    "layerUpdates",
    "x",
    "y",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(100),
            json!(1e6),
            json!(i64::MIN),
            json!(i64::MAX),
            json!(u64::MAX),
            json!(9_007_199_254_740_993u64),
            json!(4_294_967_296u64),
            json!(0.5),
            json!(-0.0),
            json!(1e-300),
            json!(1e308),
            json!(-1e308),
        ]),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "",
            " ",
            "\0",
            "\u{1b}[2J",
            "a\nb",
            "../../etc/passwd",
            "/etc/passwd",
            "C:\\Windows",
            "http://127.0.0.1:1/x",
            "http://[::1]:1/x",
            "file:///etc/passwd",
            "data:image/png;base64,AAAA",
            "data:,",
            "data:image/png;base64,!!!",
            "javascript:alert(1)",
            "🦊",
            "\u{202e}",
            "NaN",
            "1e999",
            "-1",
            "true",
            "null",
            "Text",
            "Image",
            "Video",
            "Audio",
            "File",
            "Input",
            "Output",
            "text",
            "image",
            "llm",
            "export",
            "gpt-4o-mini",
            "gemini-test",
            "openai",
            "gemini",
        ])
        .prop_map(Value::from),
        prop::collection::vec(any::<char>(), 0..12).prop_map(|c| Value::from(String::from_iter(c))),
        (1usize..4).prop_map(|n| Value::from("x".repeat(n * 70_000))),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..5).prop_map(|fields| {
                Value::Object(
                    fields
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v))
                        .collect::<Map<String, Value>>(),
                )
            }),
        ]
    })
}

fn edits(max: usize) -> impl Strategy<Value = Vec<Edit>> {
    let change = prop_oneof![
        4 => any_json().prop_map(Change::Replace),
        2 => Just(Change::Remove),
        2 => any::<Index>().prop_map(Change::CopyFrom),
        1 => Just(Change::Duplicate),
    ];
    prop::collection::vec(
        (any::<Index>(), change).prop_map(|(at, change)| Edit { at, change }),
        0..=max,
    )
}

/// The JSON pointers of every value under `value` (not `value` itself), in pre-order.
fn pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let escape = |k: &str| k.replace('~', "~0").replace('/', "~1");
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", escape(k));
                out.push(p.clone());
                pointers(v, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(v, &p, out);
            }
        }
        _ => {}
    }
}

/// Applies `edits` to the values under `root` (a pointer; "" for the whole document).
fn mutate(doc: &mut Value, root: &str, edits: &[Edit]) {
    for edit in edits {
        let Some(base) = doc.pointer(root) else {
            return;
        };
        let mut places = vec![root.to_owned()];
        pointers(base, root, &mut places);
        if places.len() == 1 && !matches!(edit.change, Change::Replace(_)) {
            continue;
        }
        let place = edit.at.get(&places).clone();
        match &edit.change {
            Change::Replace(v) => {
                if let Some(slot) = doc.pointer_mut(&place) {
                    *slot = v.clone();
                }
            }
            Change::CopyFrom(from) => {
                let all = {
                    let mut all = Vec::new();
                    pointers(doc, "", &mut all);
                    all
                };
                if let Some(v) = all
                    .get(from.index(all.len().max(1)))
                    .and_then(|p| doc.pointer(p))
                {
                    let v = v.clone();
                    if let Some(slot) = doc.pointer_mut(&place) {
                        *slot = v;
                    }
                }
            }
            Change::Remove | Change::Duplicate => {
                let Some((parent, key)) = place.rsplit_once('/') else {
                    continue;
                };
                let key = key.replace("~1", "/").replace("~0", "~");
                match doc.pointer_mut(parent) {
                    Some(Value::Object(map)) if matches!(edit.change, Change::Remove) => {
                        map.remove(&key);
                    }
                    Some(Value::Array(items)) => {
                        if let Ok(i) = key.parse::<usize>()
                            && i < items.len()
                        {
                            if matches!(edit.change, Change::Remove) {
                                items.remove(i);
                            } else {
                                let copy = items[i].clone();
                                items.insert(i, copy);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A host: built-in nodes, a local stand-in for the web and the AI providers

/// A local server: GET (any path) answers a small PNG; POST to the OpenAI path a streamed chat
/// completion; any other POST a streamed Gemini answer.
async fn stand_in() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/media.wav"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(wav(), "audio/wav"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(png(6, 4), "image/png"))
        .mount(&server)
        .await;
    let mut openai = sse(&[openai_chunk(Some("a reply"), Some("stop"))]);
    openai.push_str("data: [DONE]\n\n");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(openai, "text/event-stream"))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            sse(&[gemini_text("a reply", Some("STOP"))]),
            "text/event-stream",
        ))
        .mount(&server)
        .await;
    server
}

/// A WAV file: a tenth of a second of a 440 Hz tone, 8 kHz, 16-bit mono.
fn wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..800)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 8000.0).sin() * 8000.0) as i16)
        .collect();
    let data = samples.len() as u32 * 2;
    let mut out = Vec::new();
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&8000u32.to_le_bytes());
    out.extend_from_slice(&16000u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

fn ai_settings(base: &str) -> AiSettings {
    AiSettings {
        gemini_base_url: base.to_owned(),
        gemini_key: Some(ApiKey::new("test-key")),
        openai_base_url: base.to_owned(),
        openai_key: Some(ApiKey::new("test-key")),
        request_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..AiSettings::default()
    }
}

/// Every built-in node type of the enabled features; the AI providers and the File node's
/// fetches go to `base` (loopback only).
fn registry(base: &str) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::output::register(&mut registry).unwrap();
    gatewai_nodes::text::register(&mut registry).unwrap();
    gatewai_nodes::media::register(&mut registry).unwrap();
    registry.replace(gatewai_nodes::media::File::with_fetch_policy(
        FetchPolicy::allow_private(),
    ));
    #[cfg(feature = "video")]
    gatewai_nodes::video::register(&mut registry).unwrap();
    gatewai_nodes::ai::register_with(&mut registry, ai_settings(base)).unwrap();
    registry
}

struct Host {
    rt: tokio::runtime::Runtime,
    server: MockServer,
    engine: Engine,
    /// What the cases reached, so that a test can check it went deep enough.
    reached: Mutex<Reached>,
}

/// How far the cases went.
#[derive(Debug, Default)]
struct Reached {
    /// Runs refused before any node ran.
    refused: usize,
    /// Runs that ran.
    ran: usize,
    /// Nodes that completed, by node type.
    completed: std::collections::BTreeMap<String, usize>,
    /// Nodes that failed, by node type.
    failed: std::collections::BTreeMap<String, usize>,
}

impl Host {
    fn new() -> Host {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt.block_on(stand_in());
        let engine = Engine::builder()
            .registry(registry(&server.uri()))
            .assets(Arc::new(MemoryAssetStore::new()))
            .retry_policy(RetryPolicy::none())
            .default_timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Host {
            rt,
            server,
            engine,
            reached: Mutex::default(),
        }
    }

    /// Every http(s) URL of `doc` made to point at the stand-in (no test leaves loopback).
    fn localise(&self, doc: &mut Value) {
        match doc {
            Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
                *s = format!("{}/media.png", self.server.uri());
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.localise(v)),
            Value::Object(map) => map.values_mut().for_each(|v| self.localise(v)),
            _ => {}
        }
    }

    /// Validates and runs `workflow`: an outcome or a typed error, in time, and records that
    /// print; the workflow written back serialises.
    fn run(&self, workflow: Workflow) -> Result<(), TestCaseError> {
        let problems = gatewai_core::validate(&workflow, self.engine.registry());
        let ran = self.rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(60),
                self.engine.run(workflow, RunOptions::default()),
            )
            .await
        });
        let Ok(ran) = ran else {
            return Err(TestCaseError::fail("the run did not end within 60 s"));
        };
        let mut reached = self.reached.lock().unwrap();
        match ran {
            Ok(outcome) => {
                prop_assert!(problems.is_ok(), "an invalid workflow ran: {problems:?}");
                reached.ran += 1;
                for execution in &outcome.executions {
                    let by_type = match &execution.error {
                        Some(error) => {
                            check_message(error)?;
                            &mut reached.failed
                        }
                        None => &mut reached.completed,
                    };
                    *by_type.entry(execution.node_type.to_string()).or_default() += 1;
                }
                serde_json::to_string(&outcome.workflow).map_err(|e| {
                    TestCaseError::fail(format!("the outcome's workflow does not serialise: {e}"))
                })?;
            }
            Err(e) => {
                check_message(&e.to_string())?;
                reached.refused += 1;
            }
        }
        Ok(())
    }

    /// What the cases reached so far.
    fn reached(&self) -> std::sync::MutexGuard<'_, Reached> {
        self.reached.lock().unwrap()
    }
}

fn fixtures() -> Vec<Value> {
    let texts = [
        include_str!("../../gatewai-core/tests/fixtures/campaign.canvas.json"),
        include_str!("../../gatewai-core/tests/fixtures/product_marketing_kit.reactflow.json"),
        include_str!("../../gatewai-core/tests/fixtures/story_frames.reactflow.json"),
        include_str!("../../examples/workflows/llm-haiku.json"),
        include_str!("../../examples/workflows/image-pipeline.json"),
    ];
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

/// Reads a document the way a host does: an import format, else the native shape.
fn read(text: &str, registry: &NodeRegistry) -> Result<Option<Workflow>, TestCaseError> {
    match import::parse_document(text, registry) {
        Ok(workflow) => Ok(Some(workflow)),
        Err(e) => {
            check_message(&e.to_string())?;
            Ok(serde_json::from_str::<Workflow>(text).ok())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The properties

/// Mutated documents of every shape read, validate and run to an outcome or a typed error.
#[test]
fn mutated_documents_run_or_fail_cleanly() {
    let _serial = serial();
    let host = Host::new();
    let documents: Vec<Value> = fixtures()
        .into_iter()
        .map(|mut d| {
            host.localise(&mut d);
            d
        })
        .collect();
    // The unchanged documents read (a mutation that breaks everything proves nothing).
    for doc in &documents {
        assert!(
            read(&doc.to_string(), host.engine.registry())
                .unwrap()
                .is_some()
        );
    }
    run_cases(96, (any::<Index>(), edits(4)), |(which, edits)| {
        let mut doc = which.get(&documents).clone();
        mutate(&mut doc, "", &edits);
        host.localise(&mut doc);
        match read(&doc.to_string(), host.engine.registry())? {
            Some(workflow) => host.run(workflow),
            None => Ok(()),
        }
    });
    eprintln!("reached: {:#?}", host.reached());
}

/// Cut or corrupted document text is a typed import error.
#[test]
fn corrupted_document_text_is_an_import_error() {
    let _serial = serial();
    let registry = registry("http://127.0.0.1:9");
    let texts: Vec<String> = fixtures().iter().map(Value::to_string).collect();
    run_cases(
        256,
        (
            any::<Index>(),
            prop::collection::vec((any::<Index>(), any::<u8>()), 0..4),
            any::<Index>(),
        ),
        |(which, flips, cut)| {
            let mut bytes = which.get(&texts).clone().into_bytes();
            for (at, byte) in flips {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            bytes.truncate(cut.index(bytes.len() + 1));
            let text = String::from_utf8_lossy(&bytes);
            read(&text, &registry).map(drop)
        },
    );
}

/// Every node type, given a mutated config and real inputs of each type it takes, validates
/// and runs to an outcome or a typed error.
#[test]
fn every_node_type_takes_mutated_configs() {
    let _serial = serial();
    let host = Host::new();
    let registry = host.engine.registry();
    let types: Vec<String> = registry
        .type_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let base = host.server.uri();
    run_cases(160, (any::<Index>(), edits(3)), |(which, edits)| {
        let node_type = which.get(&types);
        let mut wf = Workflow::default();
        // Sources: a Text node, a PNG and a WAV (both fetched from the stand-in).
        let mut add = |node_type: &str, config: Option<Value>| {
            let id = edit::add_node(&mut wf, registry, node_type, Position::default()).unwrap();
            if let Some(config) = config {
                wf.node_mut(&id).unwrap().config = config;
            }
            id
        };
        let text = add("Text", Some(json!({"content": "a fox at dawn"})));
        let image = add("File", Some(json!({"url": format!("{base}/media.png")})));
        let audio = add("File", Some(json!({"url": format!("{base}/media.wav")})));
        let id = add(node_type, None);
        // Each input fed by the source whose type fits it.
        let template = registry.get(node_type).unwrap().template().clone();
        for input in template
            .template_handles
            .iter()
            .filter(|h| h.handle_type == HandleType::Input)
        {
            let types = &input.data_types;
            let source = if types.contains(&DataType::Text) {
                (&text, "text")
            } else if types.contains(&DataType::Audio) && !types.contains(&DataType::Image) {
                (&audio, "file")
            } else {
                (&image, "file")
            };
            let c = edit::Connection::between(&wf, source.0, source.1, &id, &input.id).unwrap();
            edit::connect(&mut wf, registry, &c).unwrap();
        }
        let mut doc = serde_json::to_value(&wf).unwrap();
        let at = wf.nodes.iter().position(|n| n.id == id).unwrap();
        mutate(&mut doc, &format!("/nodes/{at}/config"), &edits);
        host.localise(&mut doc);
        let wf: Workflow = serde_json::from_value(doc).unwrap();
        host.run(wf)
    });
    eprintln!("reached: {:#?}", host.reached());
}

/// One AI node's call against a provider reply.
#[derive(Debug, Clone, Copy)]
enum Call {
    GeminiLlm,
    GeminiImage,
    GeminiSpeech,
    OpenAiLlm,
}

/// AI nodes given mutated provider replies (status, body, stream framing) end with outputs or
/// a typed error.
#[test]
fn mutated_provider_replies_are_outputs_or_typed_errors() {
    let _serial = serial();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(MockServer::start());
    let registry = registry(&server.uri());
    let image = BASE64.encode(png(3, 2));
    let pcm = BASE64.encode([0u8, 1, 2, 3, 4, 5, 6, 7]);
    let call = prop::sample::select(vec![
        Call::GeminiLlm,
        Call::GeminiImage,
        Call::GeminiSpeech,
        Call::OpenAiLlm,
    ]);
    let status = prop::sample::select(vec![200u16, 200, 200, 400, 401, 429, 500, 503]);
    let framing = prop::sample::select(vec!["sse", "json", "cut"]);
    run_cases(
        128,
        (call, status, framing, edits(4)),
        |(call, status, framing, edits)| {
            let (node_type, config, reply) = match call {
                Call::GeminiLlm => (
                    "LLM",
                    json!({"model": "gemini-test"}),
                    json!([gemini_text("a ", None), gemini_text("reply", Some("STOP"))]),
                ),
                Call::GeminiImage => (
                    "ImageGen",
                    json!({"model": "gemini-test"}),
                    json!([gemini_inline("image/png", &image, Some("STOP"))]),
                ),
                Call::GeminiSpeech => (
                    "TextToSpeech",
                    json!({"model": "gemini-test"}),
                    json!([gemini_inline(
                        "audio/L16;codec=pcm;rate=24000",
                        &pcm,
                        Some("STOP")
                    )]),
                ),
                Call::OpenAiLlm => (
                    "LLM",
                    json!({"model": "gpt-4o-mini"}),
                    json!([
                        openai_chunk(Some("a reply"), None),
                        openai_chunk(None, Some("stop"))
                    ]),
                ),
            };
            let mut reply = if status == 200 {
                reply
            } else {
                json!([{"error": {"code": status, "message": "no", "status": "UNAVAILABLE"}}])
            };
            mutate(&mut reply, "", &edits);
            let chunks = reply
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![reply.clone()]);
            let body = match framing {
                "sse" => sse(&chunks),
                "json" => reply.to_string(),
                _ => {
                    let full = sse(&chunks);
                    full[..full.floor_char_boundary(full.len() / 2)].to_owned()
                }
            };
            let node = registry.get(node_type).unwrap().clone();
            let outcome = rt.block_on(async {
                server.reset().await;
                Mock::given(method("POST"))
                    .respond_with(
                        ResponseTemplate::new(status).set_body_raw(body, "text/event-stream"),
                    )
                    .mount(&server)
                    .await;
                let ctx = NodeContext::detached(
                    "n1",
                    node_type,
                    config,
                    Arc::new(MemoryAssetStore::new()),
                );
                let inputs = Inputs::default().with("prompt", Item::text("a fox"));
                tokio::time::timeout(Duration::from_secs(30), node.execute(&ctx, &inputs)).await
            });
            let Ok(outcome) = outcome else {
                return Err(TestCaseError::fail("the call did not end within 30 s"));
            };
            // A provider's own words are quoted up to 600 characters.
            if let Err(e) = outcome {
                check_message_up_to(&e.to_string(), 600)?;
            }
            Ok(())
        },
    );
}
