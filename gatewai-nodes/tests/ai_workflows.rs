//! AI nodes in workflows run by the engine, against local servers speaking the providers'
//! wire formats: streaming progress, appended generations, retries, cancellation, key hygiene.
#![cfg(feature = "llm")]

mod ai_support;

use ai_support::*;
use gatewai_core::{
    Engine, ErrorKind, EventKind, ExecutionStatus, NodeResult, RetryPolicy, RunEvent, RunOptions,
    RunOutcome, RunStatus, Workflow,
};
use gatewai_nodes::ai::AiSettings;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const STREAM_PATH: &str = "/v1beta/models/gemini-test:streamGenerateContent";

fn engine(settings: AiSettings, retry: RetryPolicy) -> Engine {
    Engine::builder()
        .registry(registry(settings))
        .retry_policy(retry)
        .build()
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

async fn run(engine: &Engine, wf: Workflow) -> (RunOutcome, Vec<RunEvent>) {
    let mut handle = engine
        .start(
            wf,
            RunOptions {
                stream_events: true,
                ..RunOptions::default()
            },
        )
        .unwrap();
    let mut stream = handle.events().unwrap();
    let outcome = handle.wait().await.unwrap();
    let mut events = Vec::new();
    while let Ok(e) = stream.try_recv() {
        events.push(e);
    }
    (outcome, events)
}

fn selected_text(result: &NodeResult) -> String {
    result.selected().unwrap().items[0]
        .to_item()
        .as_text()
        .unwrap()
        .to_owned()
}

fn partial_texts(events: &[RunEvent], node: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.node_id() == Some(node))
        .filter_map(|e| match &e.kind {
            EventKind::NodeProgress { progress, .. } => progress.partial_text.clone(),
            _ => None,
        })
        .collect()
}

fn stream_of(chunks: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(sse(chunks), "text/event-stream")
}

/// Text + Text → TextMerger → LLM → LLM.
fn chain(engine: &Engine) -> (Workflow, String, String) {
    let reg = engine.registry();
    let mut wf = Workflow::default();
    let a = add(&mut wf, reg, "Text", json!({"content": "a red fox"}));
    let b = add(&mut wf, reg, "Text", json!({"content": "in the snow"}));
    let merge = add(&mut wf, reg, "TextMerger", json!({"join": " "}));
    let first = add(&mut wf, reg, "LLM", json!({"model": "gemini-test"}));
    let second = add(
        &mut wf,
        reg,
        "LLM",
        json!({"model": "gemini-test", "systemPrompt": "Summarise in one word."}),
    );
    connect(&mut wf, reg, &a, "text", &merge, "text");
    connect(&mut wf, reg, &b, "text", &merge, "text_2");
    connect(&mut wf, reg, &merge, "result", &first, "prompt");
    connect(&mut wf, reg, &first, "result", &second, "prompt");
    (wf, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_merger_feeds_a_chain_of_llms_that_stream_and_append() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .and(body_string_contains("\"text\":\"a red fox in the snow\""))
        .respond_with(stream_of(&[
            gemini_text("A fox ", None),
            gemini_text("stands in ", None),
            gemini_text("snow.", Some("STOP")),
        ]))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .and(body_string_contains("\"text\":\"A fox stands in snow.\""))
        .and(body_string_contains("Summarise in one word."))
        .respond_with(stream_of(&[gemini_text("Fox.", Some("STOP"))]))
        .mount(&server)
        .await;
    let engine = engine(settings(&server.uri()), RetryPolicy::none());
    let (wf, first, second) = chain(&engine);

    let (outcome, events) = run(&engine, wf).await;
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.run.error
    );
    assert_eq!(
        selected_text(&outcome.results[first.as_str()]),
        "A fox stands in snow."
    );
    assert_eq!(selected_text(&outcome.results[second.as_str()]), "Fox.");
    assert_eq!(
        partial_texts(&events, &first),
        ["A fox ", "stands in ", "snow."]
    );
    assert_eq!(partial_texts(&events, &second), ["Fox."]);
    assert_eq!(server.received_requests().await.unwrap().len(), 2);

    // Running again appends a generation to each LLM and selects it.
    let (again, _) = run(&engine, outcome.workflow.clone()).await;
    assert_eq!(again.run.status, RunStatus::Completed);
    for node in [&first, &second] {
        let result = again.workflow.node(node).unwrap().result.as_ref().unwrap();
        assert_eq!(result.outputs.len(), 2, "{node}");
        assert_eq!(result.selected_output_index, 1);
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_outages_are_retried_after_the_providers_delay() {
    for (status, response) in [
        (
            429,
            ResponseTemplate::new(429).set_body_json(gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded.",
                json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "0.4s"}]),
            )),
        ),
        (
            503,
            ResponseTemplate::new(503)
                .insert_header("Retry-After", "0.4")
                .set_body_json(gemini_error(503, "UNAVAILABLE", "The model is overloaded.", json!([]))),
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(STREAM_PATH))
            .respond_with(response)
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path(STREAM_PATH))
            .respond_with(stream_of(&[gemini_text("fine now", Some("STOP"))]))
            .with_priority(2)
            .mount(&server)
            .await;
        let engine = engine(settings(&server.uri()), fast_retries());
        let reg = engine.registry();
        let mut wf = Workflow::default();
        let text = add(&mut wf, reg, "Text", json!({"content": "hello"}));
        let llm = add(&mut wf, reg, "LLM", json!({"model": "gemini-test"}));
        connect(&mut wf, reg, &text, "text", &llm, "prompt");
        let started = Instant::now();
        let (outcome, events) = run(&engine, wf).await;
        assert_eq!(outcome.run.status, RunStatus::Completed, "{status}");
        assert!(started.elapsed() >= Duration::from_millis(400), "{status}: retried too early");
        assert_eq!(selected_text(&outcome.results[llm.as_str()]), "fine now");
        let execution = outcome.executions.iter().find(|e| *e.node_id == *llm).unwrap();
        assert_eq!(execution.attempts, 2);
        let retried = events.iter().any(|e| {
            matches!(&e.kind, EventKind::NodeFailed { will_retry: true, kind, .. }
                if matches!(kind, ErrorKind::RateLimited | ErrorKind::Unavailable))
        });
        assert!(retried, "{status}");
        assert_eq!(server.received_requests().await.unwrap().len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_fails_once_skips_downstream_and_never_leaks() {
    let server = MockServer::start().await;
    // A provider that echoes the key back in its message.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(gemini_error(
            400,
            "INVALID_ARGUMENT",
            &format!("API key not valid: {GEMINI_KEY}"),
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
        )))
        .mount(&server)
        .await;
    let engine = engine(settings(&server.uri()), fast_retries());
    let (wf, first, second) = chain(&engine);
    let (outcome, events) = run(&engine, wf).await;
    assert_eq!(outcome.run.status, RunStatus::Failed);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "not retried"
    );
    let exec = |id: &str| {
        outcome
            .executions
            .iter()
            .find(|e| &*e.node_id == id)
            .unwrap()
    };
    assert_eq!(exec(&first).status, ExecutionStatus::Failed);
    assert_eq!(exec(&first).attempts, 1);
    assert!(
        exec(&first)
            .error
            .as_deref()
            .unwrap()
            .contains("API key not valid")
    );
    assert_eq!(exec(&second).status, ExecutionStatus::Skipped);

    let everything = format!(
        "{}{}{}{:?}",
        events_text(&events),
        serde_json::to_string(&outcome.executions).unwrap(),
        serde_json::to_string(&outcome.run).unwrap(),
        outcome.workflow
    );
    assert!(everything.contains("API key not valid"));
    assert!(!everything.contains(GEMINI_KEY), "the key leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_closes_the_stream_promptly() {
    // The server sends one chunk, then stalls with the connection open.
    let first = sse(&[gemini_text("The beginning", None)]);
    let mut server = raw_sse_server(vec![first.into_bytes()], Duration::ZERO, true).await;
    let engine = Engine::builder()
        .registry(registry(settings(&server.url)))
        .cancel_grace(Duration::from_secs(10))
        .build()
        .unwrap();
    let reg = engine.registry();
    let mut wf = Workflow::default();
    let text = add(
        &mut wf,
        reg,
        "Text",
        json!({"content": "tell me a long story"}),
    );
    let llm = add(&mut wf, reg, "LLM", json!({"model": "gemini-test"}));
    connect(&mut wf, reg, &text, "text", &llm, "prompt");
    let mut handle = engine
        .start(
            wf,
            RunOptions {
                stream_events: true,
                ..RunOptions::default()
            },
        )
        .unwrap();
    let mut events = handle.events().unwrap();
    // Wait for the streamed first chunk to reach the run's events.
    let partial = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.recv().await {
            if let EventKind::NodeProgress { progress, .. } = &e.kind
                && let Some(t) = &progress.partial_text
            {
                return t.clone();
            }
        }
        String::new()
    })
    .await
    .unwrap();
    assert_eq!(partial, "The beginning");
    let cancelled_at = Instant::now();
    handle.cancel();
    let closed_at = tokio::time::timeout(Duration::from_secs(3), &mut server.closed)
        .await
        .expect("the client kept the stream open after cancel")
        .unwrap();
    assert!(closed_at.duration_since(cancelled_at) < Duration::from_secs(1));
    let outcome = handle.wait().await.unwrap();
    assert_eq!(outcome.run.status, RunStatus::Cancelled);
    let exec = outcome
        .executions
        .iter()
        .find(|e| *e.node_id == *llm)
        .unwrap();
    assert_eq!(exec.status, ExecutionStatus::Cancelled);
    assert!(cancelled_at.elapsed() < Duration::from_secs(3));
}

#[cfg(feature = "image")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_gen_feeds_crop() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    let generated = png(8, 4);
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-image-test:streamGenerateContent",
        ))
        .and(body_string_contains("a tiny gradient"))
        .respond_with(stream_of(&[gemini_inline(
            "image/png",
            &base64::engine::general_purpose::STANDARD.encode(&generated),
            Some("STOP"),
        )]))
        .mount(&server)
        .await;
    let engine = engine(settings(&server.uri()), RetryPolicy::none());
    let reg = engine.registry();
    let mut wf = Workflow::default();
    let text = add(&mut wf, reg, "Text", json!({"content": "a tiny gradient"}));
    let gen_id = add(
        &mut wf,
        reg,
        "ImageGen",
        json!({"model": "gemini-image-test"}),
    );
    let crop = add(
        &mut wf,
        reg,
        "Crop",
        json!({"leftPercentage": 50, "topPercentage": 50, "widthPercentage": 50, "heightPercentage": 50}),
    );
    connect(&mut wf, reg, &text, "text", &gen_id, "prompt");
    connect(&mut wf, reg, &gen_id, "result", &crop, "image");
    let (outcome, _) = run(&engine, wf).await;
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.executions
    );
    let generated_asset = outcome.results[gen_id.as_str()].selected().unwrap().items[0]
        .to_item()
        .as_asset()
        .unwrap()
        .clone();
    assert_eq!(
        (generated_asset.width, generated_asset.height),
        (Some(8), Some(4))
    );
    let cropped = outcome.results[crop.as_str()].selected().unwrap().items[0]
        .to_item()
        .as_asset()
        .unwrap()
        .clone();
    assert_eq!((cropped.width, cropped.height), (Some(4), Some(2)));
    let bytes = engine.assets().read(&cropped).await.unwrap();
    let img = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (4, 2));
    assert_eq!(img.get_pixel(0, 0).0, [4, 2, 7]);
    assert_eq!(img.get_pixel(3, 1).0, [7, 3, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_app_llm_nodes_import_and_run_with_their_typed_prompts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(stream_of(&[gemini_text("Terse.", Some("STOP"))]))
        .mount(&server)
        .await;
    let engine = engine(settings(&server.uri()), RetryPolicy::none());
    let doc = json!({
        "nodes": [
            {"id": "t", "type": "text", "position": {"x": 0, "y": 0},
             "data": {"label": "Text", "text": "Describe a fox"}},
            {"id": "l", "type": "llm", "position": {"x": 300, "y": 0},
             "data": {"label": "LLM", "model": "gemini-test", "systemPrompt": "Be terse.",
                      "userMessage": "", "status": "idle"}}
        ],
        "edges": [
            {"id": "e", "source": "t", "sourceHandle": "output", "target": "l", "targetHandle": "user_message"}
        ]
    });
    let wf = gatewai_core::import::read_document(doc, engine.registry()).unwrap();
    assert_eq!(wf.node("l").unwrap().node_type, "LLM");
    let (outcome, _) = run(&engine, wf).await;
    assert_eq!(
        outcome.run.status,
        RunStatus::Completed,
        "{:?}",
        outcome.executions
    );
    assert_eq!(selected_text(&outcome.results["l"]), "Terse.");
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(body["contents"][0]["parts"][0]["text"], "Describe a fox");
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "Be terse.");
}
