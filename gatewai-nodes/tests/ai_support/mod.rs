//! Shared pieces of the AI node tests: provider wire shapes, settings pointing at a local
//! server, workflow building.
#![allow(dead_code)]

use gatewai_core::edit::{self, Connection};
use gatewai_core::model::Position;
use gatewai_core::{NodeRegistry, RunEvent, Workflow};
use gatewai_nodes::ai::{AiSettings, ApiKey};
use serde_json::{Value, json};
use std::time::Duration;

/// The Gemini key the tests use; it must never show up in errors or events.
pub const GEMINI_KEY: &str = "AIzaTEST-secret-key-0123456789";
/// The OpenAI key the tests use.
pub const OPENAI_KEY: &str = "sk-test-secret-key-9876543210";

/// Settings pointing both providers at `base` (a wiremock server's URI) with the test keys.
pub fn settings(base: &str) -> AiSettings {
    AiSettings {
        gemini_base_url: base.to_owned(),
        gemini_key: Some(ApiKey::new(GEMINI_KEY)),
        openai_base_url: base.to_owned(),
        openai_key: Some(ApiKey::new(OPENAI_KEY)),
        request_timeout: Duration::from_secs(20),
        read_timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..AiSettings::default()
    }
}

/// A registry with every node type of the enabled features, the AI nodes on `settings`.
pub fn registry(settings: AiSettings) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    gatewai_nodes::output::register(&mut registry).unwrap();
    gatewai_nodes::text::register(&mut registry).unwrap();
    #[cfg(feature = "image")]
    gatewai_nodes::media::register(&mut registry).unwrap();
    gatewai_nodes::ai::register_with(&mut registry, settings).unwrap();
    registry
}

/// An SSE body of `chunks`, each as one `data:` event (Gemini ends events with `\r\n\r\n`).
pub fn sse(chunks: &[Value]) -> String {
    chunks
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
        .collect()
}

/// A Gemini `GenerateContentResponse` chunk carrying `text`.
pub fn gemini_text(text: &str, finish: Option<&str>) -> Value {
    let mut candidate = json!({
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0
    });
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "totalTokenCount": 12},
        "modelVersion": "gemini-test"
    })
}

/// A Gemini `GenerateContentResponse` chunk carrying inline data.
pub fn gemini_inline(mime: &str, base64: &str, finish: Option<&str>) -> Value {
    let mut candidate = json!({
        "content": {"role": "model", "parts": [{"inlineData": {"mimeType": mime, "data": base64}}]},
        "index": 0
    });
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    json!({ "candidates": [candidate] })
}

/// A Gemini error body.
pub fn gemini_error(code: u16, status: &str, message: &str, details: Value) -> Value {
    json!({"error": {"code": code, "message": message, "status": status, "details": details}})
}

/// An OpenAI chat-completion chunk carrying `content`.
pub fn openai_chunk(content: Option<&str>, finish: Option<&str>) -> Value {
    let mut delta = json!({});
    if let Some(c) = content {
        delta["content"] = json!(c);
    }
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

/// A PNG of `w`×`h` pixels; pixel (x, y) is (x, y, 7).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Adds a node of `node_type` with `config` merged over the defaults; returns its id.
pub fn add(wf: &mut Workflow, registry: &NodeRegistry, node_type: &str, config: Value) -> String {
    let id = edit::add_node(wf, registry, node_type, Position::default()).unwrap();
    let node = wf.node_mut(&id).unwrap();
    edit::merge_patch(&mut node.config, &config);
    id
}

/// Connects `source`'s output `out` to `target`'s input `input` (template handle ids).
pub fn connect(
    wf: &mut Workflow,
    registry: &NodeRegistry,
    source: &str,
    out: &str,
    target: &str,
    input: &str,
) {
    let c = Connection::between(wf, source, out, target, input).unwrap();
    edit::connect(wf, registry, &c).unwrap();
}

/// Every event as JSON text, for leak checks.
pub fn events_text(events: &[RunEvent]) -> String {
    events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + &format!("{e:?}"))
        .collect()
}

/// A one-connection HTTP server on 127.0.0.1 that answers with an SSE body sent in `pieces`
/// (one chunked-encoding chunk each, `pause` apart), then either ends the body or, with
/// `hold`, keeps the connection open until the client closes it.
pub struct RawServer {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The request as received (head and body).
    pub request: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Fires when the client closed the connection (only with `hold`).
    pub closed: tokio::sync::oneshot::Receiver<std::time::Instant>,
    /// Fires when every piece was written.
    pub sent: tokio::sync::oneshot::Receiver<()>,
}

/// Starts a [`RawServer`].
pub async fn raw_sse_server(pieces: Vec<Vec<u8>>, pause: Duration, hold: bool) -> RawServer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let request = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (closed_tx, closed) = tokio::sync::oneshot::channel();
    let (sent_tx, sent) = tokio::sync::oneshot::channel();
    let recorded = request.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut tmp = [0u8; 8192];
        // Read the head, then the body by Content-Length.
        loop {
            let n = socket.read(&mut tmp).await.unwrap();
            buf.extend_from_slice(&tmp[..n]);
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < end + 4 + length {
                    let n = socket.read(&mut tmp).await.unwrap();
                    buf.extend_from_slice(&tmp[..n]);
                }
                break;
            }
        }
        *recorded.lock().unwrap() = buf;
        socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        for piece in pieces {
            let chunk = [
                format!("{:x}\r\n", piece.len()).into_bytes(),
                piece,
                b"\r\n".to_vec(),
            ]
            .concat();
            if socket.write_all(&chunk).await.is_err() {
                return;
            }
            socket.flush().await.unwrap();
            tokio::time::sleep(pause).await;
        }
        let _ = sent_tx.send(());
        if hold {
            // Wait for the client to hang up.
            loop {
                match socket.read(&mut tmp).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = closed_tx.send(std::time::Instant::now());
        } else {
            let _ = socket.write_all(b"0\r\n\r\n").await;
            let _ = socket.flush().await;
        }
    });
    RawServer {
        url,
        request,
        closed,
        sent,
    }
}

/// A one-connection HTTP server on 127.0.0.1 answering 200 with `content_type` and `chunk`
/// repeated (chunked encoding) until `max_bytes` went out or the client hung up; `sent` counts
/// the body bytes written.
pub async fn repeating_server(
    content_type: &str,
    chunk: Vec<u8>,
    max_bytes: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = sent.clone();
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // Read the request head (the body is small and ignored).
        let mut buf = Vec::new();
        let mut tmp = [0u8; 8192];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match socket.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
        if socket.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let framed = [
            format!("{:x}\r\n", chunk.len()).into_bytes(),
            chunk.clone(),
            b"\r\n".to_vec(),
        ]
        .concat();
        while counter.load(Ordering::SeqCst) < max_bytes {
            if socket.write_all(&framed).await.is_err() {
                return;
            }
            counter.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        let _ = socket.write_all(b"0\r\n\r\n").await;
    });
    (url, sent)
}
