//! The OpenAI-compatible chat-completions client: `POST {base}/v1/chat/completions` with
//! `stream: true`, `Authorization: Bearer <key>`, images as `image_url` content parts holding
//! `data:` URLs. Works with OpenAI and with local servers that speak the same API (Ollama,
//! vLLM, llama.cpp): give their base URL (`http://localhost:11434` or `…/v1`). The token limit
//! goes as `max_completion_tokens` (OpenAI's current name; `max_tokens` is deprecated there).

use super::http::{self, Flow};
use super::provider::{ImageRequest, Media, Part, Provider, TextRequest, TextSink};
use super::{ApiKey, check_model_name};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatewai_core::{ErrorKind, NodeError};
use serde::Deserialize;
use serde_json::{Value, json};

const NAME: &str = "OpenAI-compatible";

/// The default base URL.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com";

/// An OpenAI-compatible chat-completions client.
#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    endpoint: String,
    images_endpoint: String,
    key: Option<ApiKey>,
    key_required: bool,
}

impl OpenAiClient {
    /// A client for `base_url` (`https://api.openai.com`, `http://localhost:11434/v1`, …). A key
    /// is required for api.openai.com; other servers may run without one.
    pub fn new(http: reqwest::Client, base_url: &str, key: Option<ApiKey>) -> Self {
        let base = base_url.trim_end_matches('/');
        let v1 = if base.ends_with("/v1") {
            base.to_owned()
        } else {
            format!("{base}/v1")
        };
        OpenAiClient {
            http,
            endpoint: format!("{v1}/chat/completions"),
            images_endpoint: format!("{v1}/images/generations"),
            key_required: base.contains("api.openai.com"),
            key,
        }
    }

    fn key(&self) -> Result<Option<&ApiKey>, NodeError> {
        match self.key.as_ref().filter(|k| !k.expose().is_empty()) {
            Some(key) => Ok(Some(key)),
            None if self.key_required => Err(NodeError::new(
                ErrorKind::Unauthorized,
                "no OpenAI API key configured: set OPENAI_API_KEY (or AiSettings::openai_key)",
            )),
            None => Ok(None),
        }
    }
}

/// The chat messages: an optional system message and one user message of content parts.
fn messages(request: &TextRequest) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    let content: Vec<Value> = request
        .parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => json!({ "type": "text", "text": text }),
            Part::Media(media) => json!({
                "type": "image_url",
                "image_url": {
                    "url": format!("data:{};base64,{}", media.mime_type, BASE64.encode(&media.bytes))
                }
            }),
        })
        .collect();
    messages.push(json!({ "role": "user", "content": content }));
    Value::Array(messages)
}

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    delta: Option<Delta>,
    /// A non-streaming answer (a server that ignored `stream: true`).
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[async_trait]
impl Provider for OpenAiClient {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn generate_text(
        &self,
        request: &TextRequest,
        on_delta: TextSink<'_>,
    ) -> Result<String, NodeError> {
        let key = self.key()?;
        check_model_name(&request.model, true)?;
        if request
            .parts
            .iter()
            .any(|p| matches!(p, Part::Media(m) if !m.mime_type.starts_with("image/")))
        {
            return Err(NodeError::new(
                ErrorKind::Unsupported,
                "the OpenAI-compatible chat API takes images only; use a Gemini model for audio",
            ));
        }
        let mut body = json!({
            "model": request.model,
            "messages": messages(request),
            "stream": true,
        });
        if let Some(t) = request.temperature {
            body["temperature"] = json!(t);
        }
        if let Some(n) = request.max_output_tokens {
            body["max_completion_tokens"] = json!(n);
        }
        let mut builder = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = key {
            builder = builder.header(reqwest::header::AUTHORIZATION, key.bearer()?);
        }
        let mut text = String::new();
        let mut finish: Option<String> = None;
        let mut refusal = String::new();
        let mut chunks = 0usize;
        http::post_sse(NAME, key, builder, |data| {
            if data.trim() == "[DONE]" {
                return Ok(Flow::Stop);
            }
            let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
                http::bad_response(NAME, format!("stream chunk is not a completion chunk: {e}"))
            })?;
            chunks += 1;
            if chunk.error.is_some() {
                let status = chunk
                    .error
                    .as_ref()
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_u64)
                    .filter(|c| (400..600).contains(c))
                    .unwrap_or(500) as u16;
                return Err(http::error_from_response(
                    NAME,
                    status,
                    &Default::default(),
                    data.as_bytes(),
                    key,
                ));
            }
            for choice in chunk.choices.into_iter().take(1) {
                if let Some(delta) = choice.delta.or(choice.message) {
                    if let Some(piece) = delta.content.filter(|c| !c.is_empty()) {
                        on_delta(&piece);
                        text.push_str(&piece);
                    }
                    if let Some(r) = delta.refusal {
                        refusal.push_str(&r);
                    }
                }
                if let Some(reason) = choice.finish_reason {
                    finish = Some(reason);
                }
            }
            Ok(Flow::Continue)
        })
        .await?;
        tracing::debug!(
            provider = NAME,
            model = %request.model,
            chunks,
            text_chars = text.len(),
            finish_reason = finish.as_deref().unwrap_or(""),
            "chat completion stream ended"
        );
        if chunks == 0 {
            return Err(http::bad_response(
                NAME,
                "the stream ended without a response",
            ));
        }
        if !refusal.is_empty() || finish.as_deref() == Some("content_filter") {
            let detail = if refusal.is_empty() {
                "finish_reason content_filter".to_owned()
            } else {
                refusal
            };
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!("the model refused: {detail}"),
            ));
        }
        if text.is_empty() {
            let reason = finish.as_deref().unwrap_or("none");
            if reason == "length" {
                return Err(NodeError::config(
                    "maxOutputTokens",
                    "the model hit the token limit before producing any text",
                ));
            }
            return Err(NodeError::new(
                ErrorKind::Unavailable,
                format!("{NAME} server returned no text (finish_reason {reason})"),
            ));
        }
        Ok(text)
    }

    /// `POST /v1/images/generations` (text to image; reference images need the multipart
    /// edits endpoint and are refused). The aspect ratio picks the nearest OpenAI size.
    async fn generate_image(&self, request: &ImageRequest) -> Result<Vec<Media>, NodeError> {
        let key = self.key()?;
        check_model_name(&request.model, true)?;
        let mut prompt = String::new();
        for part in &request.parts {
            match part {
                Part::Text(t) => prompt.push_str(t),
                Part::Media(_) => {
                    return Err(NodeError::new(
                        ErrorKind::Unsupported,
                        "reference images are not supported with the OpenAI-compatible images API; use a Gemini model",
                    ));
                }
            }
        }
        let mut body = json!({
            "model": request.model,
            "prompt": prompt,
            "n": 1,
            "size": openai_image_size(request.aspect_ratio.as_deref()),
        });
        if request.model.starts_with("dall-e") {
            body["response_format"] = json!("b64_json");
        }
        let mut builder = self.http.post(&self.images_endpoint).json(&body);
        if let Some(key) = key {
            builder = builder.header(reqwest::header::AUTHORIZATION, key.bearer()?);
        }
        let mut images = Vec::new();
        http::post_sse(NAME, key, builder, |data| {
            let response: Value = serde_json::from_str(data)
                .map_err(|e| http::bad_response(NAME, format!("images response: {e}")))?;
            for item in response["data"].as_array().into_iter().flatten() {
                let Some(b64) = item["b64_json"].as_str() else {
                    return Err(http::bad_response(NAME, "an image without `b64_json`"));
                };
                let bytes = BASE64
                    .decode(b64.trim())
                    .map_err(|e| http::bad_response(NAME, format!("`b64_json`: {e}")))?;
                images.push(Media {
                    mime_type: "application/octet-stream".to_owned(),
                    bytes: bytes.into(),
                });
            }
            Ok(Flow::Continue)
        })
        .await?;
        if images.is_empty() {
            return Err(http::bad_response(NAME, "the response holds no image"));
        }
        Ok(images)
    }
}

/// The OpenAI image size nearest an aspect ratio: square, landscape or portrait.
fn openai_image_size(aspect_ratio: Option<&str>) -> &'static str {
    let ratio = aspect_ratio
        .and_then(|a| a.split_once(':'))
        .and_then(|(w, h)| Some(w.parse::<f64>().ok()? / h.parse::<f64>().ok()?));
    match ratio {
        Some(r) if r > 1.2 => "1536x1024",
        Some(r) if r < 0.83 => "1024x1536",
        Some(_) => "1024x1024",
        None => "auto",
    }
}
