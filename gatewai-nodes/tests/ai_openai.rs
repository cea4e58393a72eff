//! The OpenAI-compatible provider against a local server speaking the chat-completions format.
#![cfg(feature = "llm")]

mod ai_support;

use ai_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatewai_core::{
    AssetStore, DataType, ErrorKind, Inputs, Item, MemoryAssetStore, NewAsset, Node, NodeContext,
    NodeError,
};
use gatewai_nodes::ai::{AiSettings, LlmNode, Providers};
use serde_json::{Value, json};
use std::sync::Arc;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn sse_done(chunks: &[Value]) -> ResponseTemplate {
    let mut body = sse(chunks);
    body.push_str("data: [DONE]\n\n");
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

async fn run_llm(
    settings: AiSettings,
    config: Value,
    inputs: Inputs,
    store: Arc<MemoryAssetStore>,
) -> Result<Option<String>, NodeError> {
    let node = LlmNode::new(Providers::new(&settings).unwrap());
    let ctx = NodeContext::detached("n1", "LLM", config, store);
    let outputs = node.execute(&ctx, &inputs).await?;
    Ok(outputs
        .get("result")
        .and_then(Item::as_text)
        .map(str::to_owned))
}

#[tokio::test]
async fn streams_chat_completions_with_image_parts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .respond_with(sse_done(&[
            json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
            openai_chunk(Some("A small "), None),
            openai_chunk(Some("square."), None),
            openai_chunk(None, Some("stop")),
        ]))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryAssetStore::new());
    let image_bytes = png(2, 2);
    let image = store
        .put(NewAsset {
            name: "sq.png".into(),
            mime_type: "image/png".into(),
            bytes: image_bytes.clone().into(),
            ..NewAsset::default()
        })
        .await
        .unwrap();
    let inputs = Inputs::default()
        .with("prompt", Item::text("What is this?"))
        .with("system_prompt", Item::text("Answer in three words."))
        .with("image", Item::file(DataType::Image, image));
    let text = run_llm(
        settings(&server.uri()),
        json!({"model": "gpt-test", "provider": "openai", "temperature": 1.5, "maxOutputTokens": 50}),
        inputs,
        store,
    )
    .await
    .unwrap();
    assert_eq!(text.as_deref(), Some("A small square."));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "model": "gpt-test",
            "stream": true,
            "temperature": 1.5,
            "max_completion_tokens": 50,
            "messages": [
                {"role": "system", "content": "Answer in three words."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", BASE64.encode(&image_bytes))}}
                ]}
            ]
        })
    );
}

#[tokio::test]
async fn the_model_name_picks_the_provider_and_a_v1_base_url_is_not_doubled() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_done(&[openai_chunk(Some("hi"), Some("stop"))]))
        .mount(&server)
        .await;
    // `gpt-` goes to the OpenAI-compatible server without a `provider` field; a base URL
    // ending in /v1 (as Ollama documents it) works, and a local server needs no key.
    let local = AiSettings {
        openai_base_url: format!("{}/v1", server.uri()),
        openai_key: None,
        ..settings(&server.uri())
    };
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    let text = run_llm(
        local,
        json!({"model": "gpt-4o-mini"}),
        inputs,
        Arc::new(MemoryAssetStore::new()),
    )
    .await
    .unwrap();
    assert_eq!(text.as_deref(), Some("hi"));
    let requests = server.received_requests().await.unwrap();
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn errors_refusals_and_missing_keys() {
    // 401 with the key echoed: not retryable, message quoted, key redacted.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "error": {"message": format!("Incorrect API key provided: {OPENAI_KEY}."), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}
        })))
        .mount(&server)
        .await;
    let inputs = || Inputs::default().with("prompt", Item::text("hello"));
    let store = || Arc::new(MemoryAssetStore::new());
    let e = run_llm(
        settings(&server.uri()),
        json!({"model": "gpt-test"}),
        inputs(),
        store(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("Incorrect API key provided"), "{e}");
    assert!(!format!("{e} {e:?}").contains(OPENAI_KEY));

    // 429 with Retry-After.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}})),
        )
        .mount(&server)
        .await;
    let e = run_llm(
        settings(&server.uri()),
        json!({"model": "gpt-test"}),
        inputs(),
        store(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(1)));

    // content_filter and an explicit refusal.
    for chunks in [
        vec![
            openai_chunk(Some("Sure"), None),
            openai_chunk(None, Some("content_filter")),
        ],
        vec![
            json!({"choices": [{"index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": "stop"}]}),
        ],
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(sse_done(&chunks))
            .mount(&server)
            .await;
        let e = run_llm(
            settings(&server.uri()),
            json!({"model": "gpt-test"}),
            inputs(),
            store(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused, "{e}");
    }

    // A stream without any content.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_done(&[openai_chunk(None, Some("stop"))]))
        .mount(&server)
        .await;
    let e = run_llm(
        settings(&server.uri()),
        json!({"model": "gpt-test"}),
        inputs(),
        store(),
    )
    .await
    .unwrap_err();
    assert!(e.message().contains("no text"), "{e}");

    // api.openai.com without a key: a clear error before any request.
    let no_key = AiSettings {
        openai_key: None,
        ..AiSettings::default()
    };
    let e = run_llm(no_key, json!({"model": "gpt-test"}), inputs(), store())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("OPENAI_API_KEY"));
}

#[tokio::test]
async fn image_gen_uses_the_images_api() {
    use gatewai_nodes::ai::ImageGenNode;
    let server = MockServer::start().await;
    let generated = png(6, 4);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(header(
            "authorization",
            format!("Bearer {OPENAI_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_700_000_000,
            "data": [{"b64_json": BASE64.encode(&generated)}],
            "usage": {"total_tokens": 10}
        })))
        .mount(&server)
        .await;
    let store = Arc::new(MemoryAssetStore::new());
    let node = ImageGenNode::new(Providers::new(&settings(&server.uri())).unwrap());
    let ctx = NodeContext::detached(
        "g",
        "ImageGen",
        json!({"model": "gpt-image-1", "aspectRatio": "16:9"}),
        store.clone(),
    );
    let inputs = Inputs::default().with("prompt", Item::text("a lighthouse"));
    let outputs = node.execute(&ctx, &inputs).await.unwrap();
    let asset = outputs.get("result").unwrap().as_asset().unwrap();
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(store.read(asset).await.unwrap().to_vec(), generated);
    let body: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        body,
        json!({"model": "gpt-image-1", "prompt": "a lighthouse", "n": 1, "size": "1536x1024"})
    );
}
