//! The Gemini provider and the AI nodes against a local server speaking Gemini's wire format.
#![cfg(feature = "llm")]

mod ai_support;

use ai_support::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatewai_core::{
    AssetStore, DataType, ErrorKind, Inputs, Item, MemoryAssetStore, NewAsset, Node, NodeContext,
};
use gatewai_nodes::ai::{
    AiSettings, ImageGenNode, LlmNode, Part, Provider, Providers, SpeechToTextNode, TextRequest,
    TextToSpeechNode,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const STREAM_PATH: &str = "/v1beta/models/gemini-test:streamGenerateContent";

fn sse_response(chunks: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(sse(chunks), "text/event-stream")
}

fn json_body(request: &Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

async fn mount_stream(server: &MockServer, chunks: &[Value]) {
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", GEMINI_KEY))
        .respond_with(sse_response(chunks))
        .mount(server)
        .await;
}

fn assets() -> Arc<MemoryAssetStore> {
    Arc::new(MemoryAssetStore::new())
}

fn ctx(node_type: &str, config: Value, assets: &Arc<MemoryAssetStore>) -> NodeContext {
    NodeContext::detached("n1", node_type, config, assets.clone())
}

async fn put(
    assets: &Arc<MemoryAssetStore>,
    name: &str,
    mime: &str,
    bytes: Vec<u8>,
) -> gatewai_core::FileAsset {
    assets
        .put(NewAsset {
            name: name.into(),
            mime_type: mime.into(),
            bytes: bytes.into(),
            ..NewAsset::default()
        })
        .await
        .unwrap()
}

fn providers(server: &MockServer) -> Providers {
    Providers::new(&settings(&server.uri())).unwrap()
}

#[tokio::test]
async fn llm_streams_and_sends_the_documented_request() {
    let server = MockServer::start().await;
    mount_stream(
        &server,
        &[
            gemini_text("A red ", None),
            gemini_text("fox ", None),
            gemini_text("runs.", Some("STOP")),
        ],
    )
    .await;
    let store = assets();
    let png_bytes = png(3, 2);
    let image = put(&store, "fox.png", "image/png", png_bytes.clone()).await;
    let node = LlmNode::new(providers(&server));
    let inputs = Inputs::default()
        .with("prompt", Item::text("Describe the image"))
        .with("system_prompt", Item::text("You are terse."))
        .with("image", Item::file(DataType::Image, image));
    let config = json!({"model": "gemini-test", "temperature": 0.4, "maxOutputTokens": 256});
    let outputs = node
        .execute(&ctx("LLM", config, &store), &inputs)
        .await
        .unwrap();
    assert_eq!(outputs.get("result"), Some(&Item::text("A red fox runs.")));

    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.url.path(), STREAM_PATH);
    assert_eq!(request.url.query(), Some("alt=sse"));
    assert_eq!(request.headers.get("x-goog-api-key").unwrap(), GEMINI_KEY);
    assert!(!request.url.as_str().contains(GEMINI_KEY));
    assert_eq!(
        request.headers.get("content-type").unwrap(),
        "application/json"
    );
    let body = json_body(request);
    assert_eq!(
        body,
        json!({
            "contents": [{
                "role": "user",
                "parts": [
                    {"text": "Describe the image"},
                    {"inline_data": {"mime_type": "image/png", "data": BASE64.encode(&png_bytes)}}
                ]
            }],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "generationConfig": {"temperature": 0.4, "maxOutputTokens": 256}
        })
    );
}

#[tokio::test]
async fn deltas_arrive_in_order_when_the_network_splits_lines_anywhere() {
    let body = sse(&[
        gemini_text("one ", None),
        gemini_text("two ", None),
        gemini_text("three", Some("STOP")),
    ]);
    // Seven-byte pieces split `data:` lines, JSON and the `\r\n` pairs.
    let pieces: Vec<Vec<u8>> = body.as_bytes().chunks(7).map(<[u8]>::to_vec).collect();
    let server = raw_sse_server(pieces, Duration::from_millis(1), false).await;
    let provider: Arc<dyn Provider> = Providers::new(&settings(&server.url))
        .unwrap()
        .get(None, "gemini-test")
        .unwrap();
    let deltas = Mutex::new(Vec::new());
    let sink = |d: &str| deltas.lock().unwrap().push(d.to_owned());
    let request = TextRequest {
        model: "gemini-test".into(),
        parts: vec![Part::Text("count".into())],
        ..TextRequest::default()
    };
    let text = provider.generate_text(&request, &sink).await.unwrap();
    assert_eq!(text, "one two three");
    assert_eq!(*deltas.lock().unwrap(), vec!["one ", "two ", "three"]);
    let request = String::from_utf8(server.request.lock().unwrap().clone()).unwrap();
    assert!(
        request.starts_with(
            "POST /v1beta/models/gemini-test:streamGenerateContent?alt=sse HTTP/1.1\r\n"
        )
    );
    assert!(request.to_ascii_lowercase().contains(&format!(
        "x-goog-api-key: {}",
        GEMINI_KEY.to_ascii_lowercase()
    )));
}

#[tokio::test]
async fn the_image_mime_type_comes_from_the_asset_or_the_bytes() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("ok", Some("STOP"))]).await;
    let store = assets();
    // Stored without a mime type: detected from the bytes.
    let image = put(&store, "x", "", png(2, 2)).await;
    let node = LlmNode::new(providers(&server));
    let inputs = Inputs::default()
        .with("prompt", Item::text("p"))
        .with("image", Item::file(DataType::Image, image));
    node.execute(
        &ctx("LLM", json!({"model": "gemini-test"}), &store),
        &inputs,
    )
    .await
    .unwrap();
    let body = json_body(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        body["contents"][0]["parts"][1]["inline_data"]["mime_type"],
        "image/png"
    );
    // Not an image at all: an input error naming the handle, and no request.
    let text_file = put(&store, "notes.txt", "text/plain", b"hello".to_vec()).await;
    let inputs = Inputs::default()
        .with("prompt", Item::text("p"))
        .with("image", Item::file(DataType::Image, text_file));
    let e = node
        .execute(
            &ctx("LLM", json!({"model": "gemini-test"}), &store),
            &inputs,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("input `image`"), "{e}");
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// Media over the AI nodes' `max_input_bytes` is an input error naming the handle, the asset
/// and the limit, with no request made; media of exactly the limit is sent.
#[tokio::test]
async fn media_over_the_input_limit_is_refused_before_any_request() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("ok", Some("STOP"))]).await;
    let store = assets();
    let image_bytes = png(2, 2);
    let image = put(&store, "big.png", "image/png", image_bytes.clone()).await;
    let wav = b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\xc0\x5d\0\0\x80\xbb\0\0\x02\0\x10\0data\0\0\0\0".to_vec();
    let audio = put(&store, "big.wav", "audio/wav", wav.clone()).await;
    let limited = |max_input_bytes: usize| {
        Providers::new(&AiSettings {
            max_input_bytes: max_input_bytes as u64,
            ..settings(&server.uri())
        })
        .unwrap()
    };
    let check =
        |e: gatewai_core::NodeError, handle: &str, asset: &gatewai_core::FileAsset, max: usize| {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            for part in [
                format!("input `{handle}`"),
                format!("asset `{}` (`{}`)", asset.id, asset.name),
                format!("over the {max}-byte limit"),
            ] {
                assert!(e.message().contains(&part), "{part:?} not in {e}");
            }
        };
    let config = json!({"model": "gemini-test"});
    let with_image = Inputs::default()
        .with("prompt", Item::text("p"))
        .with("image", Item::file(DataType::Image, image.clone()));
    let e = LlmNode::new(limited(image_bytes.len() - 1))
        .execute(&ctx("LLM", config.clone(), &store), &with_image)
        .await
        .unwrap_err();
    check(e, "image", &image, image_bytes.len() - 1);
    let reference = Inputs::default().with("prompt", Item::text("p")).with(
        "reference_image",
        Item::file(DataType::Image, image.clone()),
    );
    let e = ImageGenNode::new(limited(image_bytes.len() - 1))
        .execute(&ctx("ImageGen", config.clone(), &store), &reference)
        .await
        .unwrap_err();
    check(e, "reference_image", &image, image_bytes.len() - 1);
    let with_audio = Inputs::default().with("audio", Item::file(DataType::Audio, audio.clone()));
    let e = SpeechToTextNode::new(limited(wav.len() - 1))
        .execute(&ctx("SpeechToText", config.clone(), &store), &with_audio)
        .await
        .unwrap_err();
    check(e, "audio", &audio, wav.len() - 1);
    assert!(server.received_requests().await.unwrap().is_empty());
    // Exactly the limit: sent.
    LlmNode::new(limited(image_bytes.len()))
        .execute(&ctx("LLM", config, &store), &with_image)
        .await
        .unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

/// The limit holds for a node's media inputs together: two images that each fit are refused
/// when both would go past it (naming the second, unread, and the limit), before any request;
/// both of exactly the limit together are sent.
#[tokio::test]
async fn a_nodes_media_inputs_are_held_to_the_limit_together() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("ok", Some("STOP"))]).await;
    let store = assets();
    let bytes = png(2, 2);
    let first = put(&store, "first.png", "image/png", bytes.clone()).await;
    let second = put(&store, "second.png", "image/png", bytes.clone()).await;
    let limited = |max_input_bytes: usize| {
        Providers::new(&AiSettings {
            max_input_bytes: max_input_bytes as u64,
            ..settings(&server.uri())
        })
        .unwrap()
    };
    let config = json!({"model": "gemini-test"});
    let both = Inputs::default()
        .with("prompt", Item::text("p"))
        .with("image", Item::file(DataType::Image, first.clone()))
        .with("image", Item::file(DataType::Image, second.clone()));
    let alone = Inputs::default()
        .with("prompt", Item::text("p"))
        .with("image", Item::file(DataType::Image, second.clone()));
    let limit = 2 * bytes.len() - 1;
    LlmNode::new(limited(limit))
        .execute(&ctx("LLM", config.clone(), &store), &alone)
        .await
        .expect("one image fits");
    let sent = server.received_requests().await.unwrap().len();
    let e = LlmNode::new(limited(limit))
        .execute(&ctx("LLM", config.clone(), &store), &both)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    for part in [
        "input `image`".to_owned(),
        format!("asset `{}` (`second.png`)", second.id),
        format!("with the {} bytes of the node's other inputs", bytes.len()),
        format!("over the {limit}-byte limit"),
    ] {
        assert!(e.message().contains(&part), "{part:?} not in {e}");
    }
    assert_eq!(server.received_requests().await.unwrap().len(), sent);
    LlmNode::new(limited(2 * bytes.len()))
        .execute(&ctx("LLM", config, &store), &both)
        .await
        .expect("both fit the limit exactly");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), sent + 1);
    let parts = &json_body(&requests[sent])["contents"][0]["parts"];
    assert_eq!(
        parts.as_array().unwrap().len(),
        3,
        "the prompt and both images"
    );
}

#[tokio::test]
async fn config_prompts_fill_in_for_unconnected_inputs() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("ok", Some("STOP"))]).await;
    let node = LlmNode::new(providers(&server));
    let config =
        json!({"model": "gemini-test", "prompt": "typed prompt", "systemPrompt": "typed system"});
    node.execute(&ctx("LLM", config, &assets()), &Inputs::default())
        .await
        .unwrap();
    let body = json_body(&server.received_requests().await.unwrap()[0]);
    assert_eq!(body["contents"][0]["parts"][0]["text"], "typed prompt");
    assert_eq!(
        body["systemInstruction"]["parts"][0]["text"],
        "typed system"
    );
    assert!(body.get("generationConfig").is_none());

    let e = node
        .execute(
            &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
            &Inputs::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.message().contains("prompt"));
}

async fn llm_error(server: &MockServer, response: ResponseTemplate) -> gatewai_core::NodeError {
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(response)
        .mount(server)
        .await;
    let node = LlmNode::new(providers(server));
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    node.execute(
        &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
        &inputs,
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn rate_limits_and_outages_are_retryable_with_the_providers_delay() {
    let server = MockServer::start().await;
    let body = gemini_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}]),
    );
    let e = llm_error(&server, ResponseTemplate::new(429).set_body_json(body)).await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.is_retryable());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    assert!(e.message().contains("Resource has been exhausted"), "{e}");

    let server = MockServer::start().await;
    let body = gemini_error(503, "UNAVAILABLE", "The model is overloaded.", json!([]));
    let e = llm_error(
        &server,
        ResponseTemplate::new(503)
            .insert_header("Retry-After", "3")
            .set_body_json(body),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
    assert!(e.message().contains("The model is overloaded."));

    for status in [500, 504] {
        let server = MockServer::start().await;
        let e = llm_error(&server, ResponseTemplate::new(status)).await;
        assert!(e.is_retryable(), "{status}: {e}");
    }
}

#[tokio::test]
async fn client_errors_are_final_and_quote_the_provider() {
    let cases = [
        (
            400,
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
            ),
            ErrorKind::Unauthorized,
            "API key not valid",
        ),
        (
            403,
            gemini_error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers.",
                json!([]),
            ),
            ErrorKind::Unauthorized,
            "unregistered callers",
        ),
        (
            404,
            gemini_error(
                404,
                "NOT_FOUND",
                "models/gemini-test is not found for API version v1beta, or is not supported for generateContent.",
                json!([]),
            ),
            ErrorKind::NotFound,
            "models/gemini-test is not found",
        ),
        (
            400,
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "Invalid value at 'generation_config.temperature'",
                json!([]),
            ),
            ErrorKind::InvalidInput,
            "generation_config.temperature",
        ),
    ];
    for (status, body, kind, quoted) in cases {
        let server = MockServer::start().await;
        let e = llm_error(&server, ResponseTemplate::new(status).set_body_json(body)).await;
        assert_eq!(e.kind(), kind, "{status}: {e}");
        assert!(!e.is_retryable());
        assert!(e.message().contains(quoted), "{e}");
        assert!(!format!("{e} {e:?}").contains(GEMINI_KEY));
    }
}

#[tokio::test]
async fn blocked_prompts_safety_stops_and_empty_answers_are_errors() {
    let server = MockServer::start().await;
    let blocked = json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH"}]},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5}
    });
    let e = llm_error(&server, sse_response(&[blocked])).await;
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.message().contains("blockReason SAFETY"), "{e}");

    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        sse_response(&[
            gemini_text("Once upon", None),
            gemini_text("", Some("SAFETY")),
        ]),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::Refused);
    assert!(e.message().contains("SAFETY"));

    for reason in ["RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"] {
        let server = MockServer::start().await;
        let chunk = json!({"candidates": [{"finishReason": reason, "index": 0}]});
        let e = llm_error(&server, sse_response(&[chunk])).await;
        assert_eq!(e.kind(), ErrorKind::Refused, "{reason}");
    }

    // No candidates at all, and a candidate without parts: errors, not empty strings.
    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        sse_response(&[json!({"usageMetadata": {"promptTokenCount": 5}})]),
    )
    .await;
    assert!(e.message().contains("no text"), "{e}");
    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        sse_response(&[json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}]})]),
    )
    .await;
    assert!(e.message().contains("no text (finishReason STOP)"), "{e}");
    // Out of tokens before any text: a config error naming the field.
    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        sse_response(&[json!({"candidates": [{"finishReason": "MAX_TOKENS"}]})]),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.message().contains("maxOutputTokens"));
    // An error sent inside the stream.
    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        sse_response(&[
            gemini_text("Hal", None),
            gemini_error(
                503,
                "UNAVAILABLE",
                "The model is overloaded mid-stream.",
                json!([]),
            ),
        ]),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.message().contains("overloaded mid-stream"), "{e}");
    // A body that is not a stream of responses.
    let server = MockServer::start().await;
    let e = llm_error(
        &server,
        ResponseTemplate::new(200).set_body_raw("data: <html>\n\n", "text/event-stream"),
    )
    .await;
    assert!(e.message().contains("unexpected response"), "{e}");
}

#[tokio::test]
async fn a_missing_key_fails_before_any_request() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("never", Some("STOP"))]).await;
    let providers = Providers::new(&AiSettings {
        gemini_key: None,
        ..settings(&server.uri())
    })
    .unwrap();
    let node = LlmNode::new(providers);
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    let e = node
        .execute(
            &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
            &inputs,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("GEMINI_API_KEY"), "{e}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(STREAM_PATH))
        .respond_with(
            sse_response(&[gemini_text("late", Some("STOP"))]).set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let providers = Providers::new(&AiSettings {
        request_timeout: Duration::from_millis(300),
        ..settings(&server.uri())
    })
    .unwrap();
    let node = LlmNode::new(providers);
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    let started = std::time::Instant::now();
    let e = node
        .execute(
            &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
            &inputs,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn image_gen_sends_image_config_and_stores_the_image() {
    let server = MockServer::start().await;
    let generated = png(8, 4);
    mount_stream(
        &server,
        &[
            gemini_text("Here is your image.", None),
            gemini_inline("image/png", &BASE64.encode(&generated), Some("STOP")),
        ],
    )
    .await;
    let store = assets();
    let reference = png(2, 2);
    let reference_asset = put(&store, "ref.png", "image/png", reference.clone()).await;
    let node = ImageGenNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("a fox")).with(
        "reference_image",
        Item::file(DataType::Image, reference_asset),
    );
    let config = json!({"model": "gemini-test", "aspectRatio": "16:9", "imageSize": "2K"});
    let outputs = node
        .execute(&ctx("ImageGen", config, &store), &inputs)
        .await
        .unwrap();
    let asset = outputs.get("result").unwrap().as_asset().unwrap().clone();
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(store.read(&asset).await.unwrap().to_vec(), generated);

    let body = json_body(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [
                {"text": "a fox"},
                {"inline_data": {"mime_type": "image/png", "data": BASE64.encode(&reference)}}
            ]}],
            "generationConfig": {
                "responseModalities": ["TEXT", "IMAGE"],
                "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}
            }
        })
    );
}

#[tokio::test]
async fn image_gen_without_an_image_is_an_error() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("I cannot draw that.", Some("STOP"))]).await;
    let node = ImageGenNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("a fox"));
    let e = node
        .execute(
            &ctx("ImageGen", json!({"model": "gemini-test"}), &assets()),
            &inputs,
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("no image"), "{e}");
}

#[tokio::test]
async fn text_to_speech_wraps_streamed_pcm_as_wav() {
    let server = MockServer::start().await;
    let pcm: Vec<u8> = (0..480u16).flat_map(|s| s.to_le_bytes()).collect();
    let (first, second) = pcm.split_at(400);
    let mime = "audio/L16;codec=pcm;rate=24000";
    mount_stream(
        &server,
        &[
            gemini_inline(mime, &BASE64.encode(first), None),
            gemini_inline(mime, &BASE64.encode(second), Some("STOP")),
        ],
    )
    .await;
    let store = assets();
    let node = TextToSpeechNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("Say cheerfully: hello"));
    let config = json!({"model": "gemini-test", "voiceName": "Puck", "languageCode": "de-DE"});
    let outputs = node
        .execute(&ctx("TextToSpeech", config, &store), &inputs)
        .await
        .unwrap();
    let item = outputs.get("result").unwrap();
    assert_eq!(item.data_type, DataType::Audio);
    let asset = item.as_asset().unwrap();
    assert!(asset.mime_type.contains("wav"), "{}", asset.mime_type);
    let wav = store.read(asset).await.unwrap();
    assert_eq!(&wav[0..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(wav[24..28].try_into().unwrap()), 24_000);
    assert_eq!(&wav[44..], &pcm[..]);

    let body = json_body(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        body,
        json!({
            "contents": [{"role": "user", "parts": [{"text": "Say cheerfully: hello"}]}],
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {
                    "voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}},
                    "languageCode": "de-DE"
                }
            }
        })
    );
}

#[tokio::test]
async fn speech_to_text_sends_the_audio_inline() {
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("hello world", Some("STOP"))]).await;
    let store = assets();
    let wav = b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0\xc0\x5d\0\0\x80\xbb\0\0\x02\0\x10\0data\0\0\0\0".to_vec();
    let audio = put(&store, "a.wav", "audio/wav", wav.clone()).await;
    let node = SpeechToTextNode::new(providers(&server));
    let inputs = Inputs::default().with("audio", Item::file(DataType::Audio, audio));
    let outputs = node
        .execute(
            &ctx("SpeechToText", json!({"model": "gemini-test"}), &store),
            &inputs,
        )
        .await
        .unwrap();
    assert_eq!(outputs.get("result"), Some(&Item::text("hello world")));
    let body = json_body(&server.received_requests().await.unwrap()[0]);
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "Generate a transcript of the speech."},
            {"inline_data": {"mime_type": "audio/wav", "data": BASE64.encode(&wav)}}
        ])
    );
}

/// Runs against the real Gemini API when `GEMINI_API_KEY` is set; skips otherwise.
#[tokio::test]
async fn real_gemini_api_when_a_key_is_set() {
    if std::env::var("GEMINI_API_KEY").map_or(true, |k| k.trim().is_empty()) {
        eprintln!("skipped: GEMINI_API_KEY is not set, not calling the real Gemini API");
        return;
    }
    let providers = Providers::new(&AiSettings::from_env()).unwrap();
    let node = LlmNode::new(providers);
    let inputs = Inputs::default().with("prompt", Item::text("Reply with the single word: pong"));
    let outputs = node
        .execute(&ctx("LLM", json!({"temperature": 0}), &assets()), &inputs)
        .await
        .unwrap();
    let text = outputs
        .get("result")
        .unwrap()
        .as_text()
        .unwrap()
        .to_lowercase();
    assert!(text.contains("pong"), "{text}");
}

#[tokio::test]
async fn variable_image_inputs_follow_the_image_input_in_handle_order() {
    use gatewai_core::InputSlot;
    let server = MockServer::start().await;
    mount_stream(&server, &[gemini_text("two images", Some("STOP"))]).await;
    let store = assets();
    let first = png(1, 1);
    let second = png(2, 1);
    let a = put(&store, "a.png", "image/png", first.clone()).await;
    let b = put(&store, "b.png", "image/png", second.clone()).await;
    let slot = |id: &str, template: Option<&str>, item: Item| InputSlot {
        handle_id: id.into(),
        template_handle_id: template.map(Into::into),
        label: id.into(),
        multiple: false,
        values: vec![item],
    };
    let inputs = Inputs::new(vec![
        slot("h-prompt", Some("prompt"), Item::text("compare")),
        slot("h-image", Some("image"), Item::file(DataType::Image, a)),
        slot("h-var", None, Item::file(DataType::Image, b)),
    ]);
    let node = LlmNode::new(providers(&server));
    node.execute(
        &ctx("LLM", json!({"model": "gemini-test"}), &store),
        &inputs,
    )
    .await
    .unwrap();
    let body = json_body(&server.received_requests().await.unwrap()[0]);
    let parts = &body["contents"][0]["parts"];
    assert_eq!(parts[0]["text"], "compare");
    assert_eq!(parts[1]["inline_data"]["data"], BASE64.encode(&first));
    assert_eq!(parts[2]["inline_data"]["data"], BASE64.encode(&second));
    assert_eq!(parts.as_array().unwrap().len(), 3);
}

/// TextToSpeech on a provider streaming one inline part of `data` as `mime`: the node's
/// error, and the asset store it ran with.
async fn text_to_speech_failure(
    mime: &str,
    data: &[u8],
) -> (gatewai_core::NodeError, Arc<MemoryAssetStore>) {
    let server = MockServer::start().await;
    mount_stream(
        &server,
        &[gemini_inline(mime, &BASE64.encode(data), Some("STOP"))],
    )
    .await;
    let store = assets();
    let node = TextToSpeechNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    let e = node
        .execute(
            &ctx("TextToSpeech", json!({"model": "gemini-test"}), &store),
            &inputs,
        )
        .await
        .unwrap_err();
    (e, store)
}

#[tokio::test]
async fn text_to_speech_refuses_audio_that_is_not_audio() {
    // Bytes no player can read, under a mime type that is not raw PCM (or raw PCM whose
    // parameters make no sense): an error, not an Audio output of unknown bytes.
    for mime in ["audio/mpeg", "audio/L16;rate=0", "audio/ogg"] {
        let (e, store) = text_to_speech_failure(mime, b"not audio at all").await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{mime}: {e}");
        assert!(e.message().contains("not audio"), "{mime}: {e}");
        assert!(store.is_empty(), "{mime}: nothing is stored");
    }
}

#[tokio::test]
async fn text_to_speech_refuses_pcm_formats_a_wav_header_cannot_hold() {
    // Sample rates and channel counts from the provider's mime type once overflowed the WAV
    // header's fields (a panic in debug builds, a corrupt file in release).
    for mime in [
        "audio/L16;codec=pcm;rate=4000000000",
        "audio/L16;rate=24000;channels=65535",
        "audio/pcm;rate=2147483648;channels=2",
    ] {
        let (e, store) = text_to_speech_failure(mime, &[1, 0, 2, 0]).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{mime}: {e}");
        assert!(e.message().contains(mime), "{mime}: {e}");
        assert!(store.is_empty(), "{mime}: nothing is stored");
    }
}

#[tokio::test]
async fn image_gen_stores_nothing_when_an_image_is_not_an_image() {
    // One good image and one that is not: the run fails and leaves no asset behind (the good
    // one included, as no output refers to it).
    let server = MockServer::start().await;
    mount_stream(
        &server,
        &[
            gemini_inline("image/png", &BASE64.encode(png(2, 2)), None),
            gemini_inline("image/png", &BASE64.encode(b"garbage"), Some("STOP")),
        ],
    )
    .await;
    let store = assets();
    let node = ImageGenNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("a fox"));
    let e = node
        .execute(
            &ctx("ImageGen", json!({"model": "gemini-test"}), &store),
            &inputs,
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.message().contains("not an image"), "{e}");
    assert!(store.is_empty(), "{} assets left behind", store.len());
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_the_key_stays_home() {
    // A provider (or whatever answers at its base URL) redirecting elsewhere: following it would
    // send the prompt and the `x-goog-api-key` header (which reqwest does not strip across
    // hosts) to the other address, be it another host or a private one.
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse_response(&[gemini_text("stolen", Some("STOP"))]))
        .mount(&elsewhere)
        .await;
    let server = MockServer::start().await;
    for status in [301, 302, 307, 308] {
        server.reset().await;
        let target = format!("{}{STREAM_PATH}?alt=sse", elsewhere.uri());
        let e = llm_error(
            &server,
            ResponseTemplate::new(status).insert_header("Location", target.as_str()),
        )
        .await;
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{status}: {e}");
        assert!(e.message().contains("redirect"), "{status}: {e}");
        assert!(!e.message().contains(GEMINI_KEY), "{status}: {e}");
    }
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the redirect was followed"
    );
}

#[tokio::test]
async fn an_endless_response_is_cut_off_at_the_size_limit() {
    // A provider (or something in its place) streaming without end: text deltas that the node
    // would collect forever, or a JSON body that never closes. Each is refused once it passes
    // the response limit (256 MiB), long before the 300 MiB the server would send.
    let delta = format!("data: {}\r\n\r\n", gemini_text(&"x".repeat(64 << 10), None));
    for (content_type, chunk) in [
        ("text/event-stream", delta.into_bytes()),
        ("application/json", vec![b' '; 64 << 10]),
    ] {
        let (url, sent) = repeating_server(content_type, chunk, 300 << 20).await;
        let node = LlmNode::new(Providers::new(&settings(&url)).unwrap());
        let inputs = Inputs::default().with("prompt", Item::text("hello"));
        let result = node
            .execute(
                &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
                &inputs,
            )
            .await;
        // (Not `unwrap_err`: an Ok would print hundreds of megabytes of text.)
        let Err(e) = result else {
            panic!("{content_type}: the endless response was accepted");
        };
        assert!(e.message().contains("larger than"), "{content_type}: {e}");
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            sent < 290 << 20,
            "{content_type}: the client read {sent} bytes"
        );
    }
}

#[tokio::test]
async fn long_streamed_speech_is_joined_without_recopying_it() {
    // Speech streams as many small PCM pieces of one clip. Each piece once re-copied the
    // whole clip so far: 40 000 pieces of 1 KiB meant ~800 GB of copying. Joined in place it
    // takes moments.
    let pieces = 40_000usize;
    let piece: Vec<u8> = (0..512u16).flat_map(|s| s.to_le_bytes()).collect();
    let chunk = gemini_inline(
        "audio/L16;codec=pcm;rate=24000",
        &BASE64.encode(&piece),
        None,
    );
    let server = MockServer::start().await;
    mount_stream(&server, &vec![chunk; pieces]).await;
    let store = assets();
    let node = TextToSpeechNode::new(providers(&server));
    let inputs = Inputs::default().with("prompt", Item::text("a long story"));
    let config = json!({"model": "gemini-test"});
    let outputs = tokio::time::timeout(
        Duration::from_secs(60),
        node.execute(&ctx("TextToSpeech", config, &store), &inputs),
    )
    .await
    .expect("the pieces are joined within a minute")
    .unwrap();
    let asset = outputs.get("result").unwrap().as_asset().unwrap().clone();
    let wav = store.read(&asset).await.unwrap();
    assert_eq!(wav.len(), 44 + pieces * piece.len());
    assert_eq!(&wav[44..44 + piece.len()], &piece[..]);
}

#[tokio::test]
async fn an_error_chunk_with_an_odd_code_is_a_provider_failure() {
    // An `error` object inside the stream whose `code` is no HTTP error status (a 3xx, a
    // success, a number past u16) once went through `as u16` (70000 became 4464) and was
    // reported as a client error or a redirect. Like the OpenAI client, such a code counts as
    // a server failure, quoting the provider's message.
    for code in [json!(302), json!(200), json!(70000), json!(-1), json!("x")] {
        let server = MockServer::start().await;
        let chunk =
            json!({"error": {"code": code, "message": "backend exploded", "status": "INTERNAL"}});
        let e = llm_error(&server, sse_response(&[chunk])).await;
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{code}: {e}");
        assert!(e.message().contains("backend exploded"), "{code}: {e}");
        assert!(!e.message().contains("redirect"), "{code}: {e}");
    }
    // A real error status inside the stream keeps its meaning.
    let server = MockServer::start().await;
    let chunk =
        json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}});
    let e = llm_error(&server, sse_response(&[chunk])).await;
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
}

#[tokio::test]
async fn a_long_stream_line_in_small_pieces_is_read_in_linear_time() {
    // A generated 4K image arrives base64-encoded in one SSE line of tens of megabytes, in
    // whatever pieces the network delivers. The parser once searched the line from its start
    // again for every piece: 16 MiB in 16 KiB pieces took 40 s here (quadratic).
    let text = "y".repeat(24 << 20);
    let event = format!("data: {}\r\n\r\n", gemini_text(&text, Some("STOP")));
    let pieces: Vec<Vec<u8>> = event
        .as_bytes()
        .chunks(16 << 10)
        .map(<[u8]>::to_vec)
        .collect();
    let server = raw_sse_server(pieces, Duration::ZERO, false).await;
    let node = LlmNode::new(Providers::new(&settings(&server.url)).unwrap());
    let inputs = Inputs::default().with("prompt", Item::text("hello"));
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        node.execute(
            &ctx("LLM", json!({"model": "gemini-test"}), &assets()),
            &inputs,
        ),
    )
    .await
    .expect("a 24 MiB line is read within 20 s");
    let Ok(outputs) = result else {
        panic!("{}", result.unwrap_err());
    };
    assert_eq!(
        outputs.get("result").unwrap().as_text().map(str::len),
        Some(text.len())
    );
}
