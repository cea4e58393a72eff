//! The provider abstraction the AI nodes call: one small trait, [`Provider`], with what the
//! nodes need (streamed text, images, speech), and the request and media types it speaks.

use async_trait::async_trait;
use bytes::Bytes;
use gatewai_core::{ErrorKind, NodeError};

/// A part of a prompt: text or inline media (an image, an audio clip) with its mime type.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text.
    Text(String),
    /// Media bytes with their real mime type.
    Media(Media),
}

/// Media bytes with their mime type (an input image, a generated image, synthesized audio).
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// The mime type (`image/png`, `audio/L16;codec=pcm;rate=24000`, …).
    pub mime_type: String,
    /// The bytes.
    pub bytes: Bytes,
}

/// A text generation request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextRequest {
    /// The model name.
    pub model: String,
    /// The system prompt (Gemini's `systemInstruction`, OpenAI's `system` message).
    pub system: Option<String>,
    /// The user turn: text and media parts, in order.
    pub parts: Vec<Part>,
    /// Sampling temperature (0–2).
    pub temperature: Option<f64>,
    /// Upper bound of generated tokens.
    pub max_output_tokens: Option<u32>,
}

/// An image generation request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageRequest {
    /// The model name.
    pub model: String,
    /// The prompt followed by reference images.
    pub parts: Vec<Part>,
    /// Aspect ratio (`"1:1"`, `"16:9"`, …).
    pub aspect_ratio: Option<String>,
    /// Image size (`"1K"`, `"2K"`, `"4K"`).
    pub image_size: Option<String>,
}

/// A speech synthesis request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpeechRequest {
    /// The model name.
    pub model: String,
    /// The text to speak.
    pub text: String,
    /// A prebuilt voice (`"Kore"`, …).
    pub voice_name: Option<String>,
    /// A BCP-47 language code (`"en-US"`).
    pub language_code: Option<String>,
}

/// Receives streamed text as it arrives (each call gets the newest delta).
pub type TextSink<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// A generative-AI provider. Implementations must not log or return their API key anywhere.
///
/// Errors are [`NodeError`]s whose kind says whether a retry may help (rate limits and outages
/// are retryable and carry the provider's suggested delay).
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The provider's display name (for messages).
    fn name(&self) -> &'static str;

    /// Generates text, streaming: `on_delta` gets each new piece; the full text is returned.
    async fn generate_text(
        &self,
        request: &TextRequest,
        on_delta: TextSink<'_>,
    ) -> Result<String, NodeError>;

    /// Generates one or more images.
    async fn generate_image(&self, request: &ImageRequest) -> Result<Vec<Media>, NodeError> {
        Err(unsupported(self.name(), "image generation", &request.model))
    }

    /// Synthesizes speech.
    async fn synthesize_speech(&self, request: &SpeechRequest) -> Result<Media, NodeError> {
        Err(unsupported(self.name(), "speech synthesis", &request.model))
    }
}

fn unsupported(provider: &str, what: &str, model: &str) -> NodeError {
    NodeError::new(
        ErrorKind::Unsupported,
        format!(
            "{provider} provider does not support {what} (model `{}`); use a Gemini model",
            crate::error::shown(&model)
        ),
    )
}
