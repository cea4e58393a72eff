//! The Gemini client: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` with
//! the key in the `x-goog-api-key` header. Every call streams (text, images and speech alike);
//! the prompt's media go as `inline_data` parts with their real mime type, the system prompt as
//! `systemInstruction`.

use super::http::{self, Flow};
use super::provider::{ImageRequest, Media, Part, Provider, SpeechRequest, TextRequest, TextSink};
use super::{ApiKey, check_model_name};
use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use gatewai_core::{ErrorKind, NodeError};
use serde::Deserialize;
use serde_json::{Value, json};

const NAME: &str = "Gemini";

/// Finish reasons that mean the model refused (or was stopped for) the content.
const REFUSAL_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// A Gemini API client.
#[derive(Debug, Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    base_url: String,
    key: Option<ApiKey>,
}

impl GeminiClient {
    /// A client for `base_url` (e.g. `https://generativelanguage.googleapis.com`).
    pub fn new(http: reqwest::Client, base_url: &str, key: Option<ApiKey>) -> Self {
        GeminiClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
        }
    }

    /// The key, or an `Unauthorized` error naming the variable that should hold it.
    fn key(&self) -> Result<&ApiKey, NodeError> {
        self.key
            .as_ref()
            .filter(|k| !k.expose().is_empty())
            .ok_or_else(|| {
                NodeError::new(
                    ErrorKind::Unauthorized,
                    "no Gemini API key configured: set GEMINI_API_KEY (or AiSettings::gemini_key)",
                )
            })
    }

    /// Streams one `generateContent` call and collects what it produced.
    async fn stream(
        &self,
        model: &str,
        body: &Value,
        on_text: TextSink<'_>,
    ) -> Result<Collected, NodeError> {
        let key = self.key()?;
        let model = model.strip_prefix("models/").unwrap_or(model);
        check_model_name(model, false)?;
        let url = format!(
            "{}/v1beta/models/{model}:streamGenerateContent?alt=sse",
            self.base_url
        );
        let request = self
            .http
            .post(url)
            .header("x-goog-api-key", key.header_value()?)
            .json(body);
        tracing::debug!(provider = NAME, model, "streaming generateContent");
        let mut collected = Collected::default();
        http::post_sse(NAME, Some(key), request, |data| {
            collected.absorb(data, on_text)?;
            Ok(Flow::Continue)
        })
        .await?;
        tracing::debug!(
            provider = NAME,
            model,
            chunks = collected.chunks,
            text_chars = collected.text.len(),
            media = collected.media.len(),
            finish_reason = collected.finish_reason.as_deref().unwrap_or(""),
            "generateContent stream ended"
        );
        collected.check()?;
        Ok(collected)
    }
}

/// The request's `contents`: one user turn of text and `inline_data` parts.
fn contents(parts: &[Part]) -> Value {
    let parts: Vec<Value> = parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => json!({ "text": text }),
            Part::Media(media) => json!({
                "inline_data": { "mime_type": media.mime_type, "data": BASE64.encode(&media.bytes) }
            }),
        })
        .collect();
    json!([{ "role": "user", "parts": parts }])
}

#[async_trait]
impl Provider for GeminiClient {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn generate_text(
        &self,
        request: &TextRequest,
        on_delta: TextSink<'_>,
    ) -> Result<String, NodeError> {
        let mut body = json!({ "contents": contents(&request.parts) });
        if let Some(system) = request.system.as_deref().filter(|s| !s.is_empty()) {
            body["systemInstruction"] = json!({ "parts": [{ "text": system }] });
        }
        let mut generation = serde_json::Map::new();
        if let Some(t) = request.temperature {
            generation.insert("temperature".into(), json!(t));
        }
        if let Some(n) = request.max_output_tokens {
            generation.insert("maxOutputTokens".into(), json!(n));
        }
        if !generation.is_empty() {
            body["generationConfig"] = Value::Object(generation);
        }
        let collected = self.stream(&request.model, &body, on_delta).await?;
        if collected.text.is_empty() {
            return Err(collected.nothing_error("text"));
        }
        Ok(collected.text)
    }

    async fn generate_image(&self, request: &ImageRequest) -> Result<Vec<Media>, NodeError> {
        let mut image_config = serde_json::Map::new();
        if let Some(a) = &request.aspect_ratio {
            image_config.insert("aspectRatio".into(), json!(a));
        }
        if let Some(s) = &request.image_size {
            image_config.insert("imageSize".into(), json!(s));
        }
        let mut generation = json!({ "responseModalities": ["TEXT", "IMAGE"] });
        if !image_config.is_empty() {
            generation["imageConfig"] = Value::Object(image_config);
        }
        let body = json!({ "contents": contents(&request.parts), "generationConfig": generation });
        let mut collected = self.stream(&request.model, &body, &|_| {}).await?;
        let images: Vec<Media> = std::mem::take(&mut collected.media)
            .into_iter()
            .filter(|m| m.mime_type.starts_with("image/"))
            .map(Media::from)
            .collect();
        if images.is_empty() {
            return Err(collected.nothing_error("image"));
        }
        Ok(images)
    }

    async fn synthesize_speech(&self, request: &SpeechRequest) -> Result<Media, NodeError> {
        let mut speech = json!({});
        if let Some(voice) = &request.voice_name {
            speech["voiceConfig"] = json!({ "prebuiltVoiceConfig": { "voiceName": voice } });
        }
        if let Some(lang) = &request.language_code {
            speech["languageCode"] = json!(lang);
        }
        let body = json!({
            "contents": contents(&[Part::Text(request.text.clone())]),
            "generationConfig": { "responseModalities": ["AUDIO"], "speechConfig": speech }
        });
        let collected = self.stream(&request.model, &body, &|_| {}).await?;
        collected
            .media
            .into_iter()
            .find(|m| m.mime_type.starts_with("audio/"))
            .map(Media::from)
            .ok_or_else(|| {
                Collected {
                    finish_reason: collected.finish_reason,
                    ..Collected::default()
                }
                .nothing_error("audio")
            })
    }
}

/// One streamed `GenerateContentResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponseChunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    parts: Vec<ResponsePart>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    #[serde(default, alias = "inline_data")]
    inline_data: Option<InlineData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InlineData {
    #[serde(alias = "mime_type")]
    mime_type: String,
    data: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
    #[serde(default)]
    block_reason_message: Option<String>,
}

/// Inline data as it is collected: the pieces of a streamed clip are appended in place (a
/// `Vec`, not [`Media`]'s immutable `Bytes`, which would be copied whole for every piece).
#[derive(Debug)]
struct InlineMedia {
    mime_type: String,
    bytes: Vec<u8>,
}

impl From<InlineMedia> for Media {
    /// The collected bytes, moved (not copied) into the media.
    fn from(inline: InlineMedia) -> Media {
        Media {
            mime_type: inline.mime_type,
            bytes: inline.bytes.into(),
        }
    }
}

/// What a stream produced so far.
#[derive(Debug, Default)]
struct Collected {
    text: String,
    media: Vec<InlineMedia>,
    finish_reason: Option<String>,
    chunks: usize,
}

impl Collected {
    /// Takes in one SSE payload.
    fn absorb(&mut self, data: &str, on_text: TextSink<'_>) -> Result<(), NodeError> {
        let chunk: ResponseChunk = serde_json::from_str(data).map_err(|e| {
            http::bad_response(NAME, format!("stream chunk is not a response: {e}"))
        })?;
        self.chunks += 1;
        if let Some(error) = &chunk.error {
            // Only an HTTP error status keeps its meaning; any other code is a server failure.
            let status = error
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c))
                .unwrap_or(500);
            return Err(http::error_from_response(
                NAME,
                status,
                &Default::default(),
                data.as_bytes(),
                None,
            ));
        }
        if let Some(reason) = chunk
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref())
        {
            let detail = chunk
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason_message.as_deref())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!("Gemini blocked the prompt (blockReason {reason}){detail}"),
            ));
        }
        let Some(candidate) = chunk.candidates.into_iter().next() else {
            return Ok(());
        };
        for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
            if let Some(text) = part.text.filter(|t| !t.is_empty() && !part.thought) {
                on_text(&text);
                self.text.push_str(&text);
            }
            if let Some(inline) = part.inline_data {
                let bytes = BASE64.decode(inline.data.trim()).map_err(|e| {
                    http::bad_response(NAME, format!("inline data is not base64: {e}"))
                })?;
                match self.media.last_mut() {
                    // Streamed audio comes in pieces of one clip.
                    Some(last)
                        if inline.mime_type.starts_with("audio/")
                            && last.mime_type == inline.mime_type =>
                    {
                        last.bytes.extend_from_slice(&bytes);
                    }
                    _ => self.media.push(InlineMedia {
                        mime_type: inline.mime_type,
                        bytes,
                    }),
                }
            }
        }
        if let Some(reason) = candidate.finish_reason {
            self.finish_reason = Some(reason);
        }
        Ok(())
    }

    /// Errors that hold whatever was produced: an empty stream, a refusal.
    fn check(&self) -> Result<(), NodeError> {
        if self.chunks == 0 {
            return Err(http::bad_response(
                NAME,
                "the stream ended without a response",
            ));
        }
        if let Some(reason) = self
            .finish_reason
            .as_deref()
            .filter(|r| REFUSAL_REASONS.contains(r))
        {
            return Err(NodeError::new(
                ErrorKind::Refused,
                format!("Gemini stopped the response (finishReason {reason})"),
            ));
        }
        Ok(())
    }

    /// The error for a response without the expected output.
    fn nothing_error(&self, what: &str) -> NodeError {
        let reason = self.finish_reason.as_deref().unwrap_or("none");
        if reason == "MAX_TOKENS" {
            return NodeError::config(
                "maxOutputTokens",
                format!("Gemini hit the token limit before producing any {what}"),
            );
        }
        NodeError::new(
            ErrorKind::Unavailable,
            format!("Gemini returned no {what} (finishReason {reason})"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_collect_text_skip_thoughts_and_join_audio() {
        let mut c = Collected::default();
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |t: &str| seen.lock().unwrap().push(t.to_owned());
        c.absorb(r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"thinking","thought":true},{"text":"Hel"}]}}]}"#, &sink).unwrap();
        c.absorb(r#"{"candidates":[{"content":{"parts":[{"text":"lo"}]},"finishReason":"STOP"}],"usageMetadata":{"totalTokenCount":3}}"#, &sink).unwrap();
        c.absorb(r#"{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"audio/L16;codec=pcm;rate=24000","data":"AAE="}}]}}]}"#, &sink).unwrap();
        c.absorb(r#"{"candidates":[{"content":{"parts":[{"inlineData":{"mimeType":"audio/L16;codec=pcm;rate=24000","data":"AgM="}}]}}]}"#, &sink).unwrap();
        assert_eq!(c.text, "Hello");
        assert_eq!(*seen.lock().unwrap(), vec!["Hel", "lo"]);
        assert_eq!(c.media.len(), 1);
        assert_eq!(&c.media[0].bytes[..], &[0, 1, 2, 3]);
        assert!(c.check().is_ok());
    }

    #[test]
    fn blocked_prompts_and_safety_stops_are_refusals() {
        let mut c = Collected::default();
        let e = c
            .absorb(
                r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}"#,
                &|_| {},
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Refused);
        assert!(e.message().contains("PROHIBITED_CONTENT"));
        let mut c = Collected::default();
        c.absorb(
            r#"{"candidates":[{"content":{"parts":[{"text":"partial"}]},"finishReason":"SAFETY"}]}"#,
            &|_| {},
        )
        .unwrap();
        assert_eq!(c.check().unwrap_err().kind(), ErrorKind::Refused);
    }
}
