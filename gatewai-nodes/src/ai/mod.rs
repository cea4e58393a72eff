//! AI nodes — **LLM**, **ImageGen**, **TextToSpeech**, **SpeechToText** — on Gemini and on
//! OpenAI-compatible chat-completions servers, over reqwest with rustls.
//!
//! # Providers
//! - **Gemini** ([`GeminiClient`]): `models/{model}:streamGenerateContent?alt=sse` — every call
//!   streams — with the key in the `x-goog-api-key` header.
//! - **OpenAI-compatible** ([`OpenAiClient`]): `/v1/chat/completions` with `stream: true` and
//!   `Authorization: Bearer`, for text (with images); `/v1/images/generations` for ImageGen
//!   without reference images. Speech goes through Gemini only.
//!
//! Which provider a node uses: its config's `provider` (`"gemini"`, the default, or `"openai"`)
//! when set; otherwise the model name decides — names starting with `gpt-` (`gpt-image-1`
//! too), `chatgpt-`, `o1`, `o3`, `o4`, `dall-e` or `openai/` go to the OpenAI-compatible
//! server, every other name to Gemini.
//!
//! # Keys and settings
//! [`register`] reads [`AiSettings::from_env`]: `GEMINI_API_KEY`, `OPENAI_API_KEY`, and
//! optionally `GEMINI_BASE_URL`, `OPENAI_BASE_URL`. [`register_with`] takes explicit settings
//! (tests point them at a local server). A missing key is an `Unauthorized` error naming the
//! variable, before any request. Keys live in [`ApiKey`], which prints as `***`; they are sent
//! only in headers (never in URLs) and redacted from any provider message that echoes them.
//!
//! # Errors
//! HTTP 429 → `RateLimited`, 500/502/503/504 → `Unavailable` (both retryable by the engine's
//! retry policy, with `retry_after` from `Retry-After` or Gemini's `RetryInfo.retryDelay`);
//! 401/403 → `Unauthorized`, 404 → `NotFound`, other 4xx → `InvalidInput`, each quoting the
//! provider's message. Redirects are not followed (the key and the prompt would go along): a
//! 3xx answer is `InvalidConfig`, pointing at the base URL. A blocked prompt or a SAFETY-like finish reason is `Refused`; a response
//! without text is an error; a request past its timeout is `Timeout`.

pub mod gemini;
mod http;
mod nodes;
pub mod openai;
pub mod provider;
mod sse;
mod wav;

pub use gemini::GeminiClient;
pub use nodes::{
    DEFAULT_IMAGE_MODEL, DEFAULT_LLM_MODEL, DEFAULT_STT_MODEL, DEFAULT_TTS_MODEL, ImageGenNode,
    LlmNode, SpeechToTextNode, TextToSpeechNode,
};
pub use openai::OpenAiClient;
pub use provider::{ImageRequest, Media, Part, Provider, SpeechRequest, TextRequest};

use gatewai_core::{ErrorKind, NodeError, NodeRegistry};
use reqwest::header::HeaderValue;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The default Gemini API base URL.
pub const GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// An API key. Its `Debug` and `Display` print `***`, so it never lands in logs, events or
/// errors by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself (for the request header only).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// The key as a header value marked sensitive.
    pub(crate) fn header_value(&self) -> Result<HeaderValue, NodeError> {
        sensitive_header(self.0.clone())
    }

    /// `Bearer <key>` as a header value marked sensitive.
    pub(crate) fn bearer(&self) -> Result<HeaderValue, NodeError> {
        sensitive_header(format!("Bearer {}", self.0))
    }
}

fn sensitive_header(value: String) -> Result<HeaderValue, NodeError> {
    let mut value = HeaderValue::try_from(value).map_err(|_| {
        NodeError::new(
            ErrorKind::Unauthorized,
            "the API key holds characters that cannot go in an HTTP header",
        )
    })?;
    value.set_sensitive(true);
    Ok(value)
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the AI nodes find their providers.
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// Gemini base URL (default [`GEMINI_BASE_URL`]).
    pub gemini_base_url: String,
    /// Gemini API key.
    pub gemini_key: Option<ApiKey>,
    /// OpenAI-compatible base URL (default [`openai::OPENAI_BASE_URL`]).
    pub openai_base_url: String,
    /// OpenAI-compatible API key (optional for servers other than api.openai.com).
    pub openai_key: Option<ApiKey>,
    /// Timeout of a whole request, streaming included.
    pub request_timeout: Duration,
    /// Longest silence while reading a response (between stream chunks).
    pub read_timeout: Duration,
    /// Timeout of establishing a connection.
    pub connect_timeout: Duration,
    /// The most media (images, audio), in bytes, one node reads from the asset store to send
    /// to a provider, all its media inputs together
    /// ([`DEFAULT_MAX_MEDIA_BYTES`](crate::media_util::DEFAULT_MAX_MEDIA_BYTES), 100 MiB, by
    /// default): a file that would take it over is an input error naming the asset and the
    /// limit, refused without being read whole and before any request is made.
    pub max_input_bytes: u64,
}

impl Default for AiSettings {
    fn default() -> Self {
        AiSettings {
            gemini_base_url: GEMINI_BASE_URL.to_owned(),
            gemini_key: None,
            openai_base_url: openai::OPENAI_BASE_URL.to_owned(),
            openai_key: None,
            request_timeout: Duration::from_secs(600),
            read_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(15),
            max_input_bytes: crate::media_util::DEFAULT_MAX_MEDIA_BYTES,
        }
    }
}

impl AiSettings {
    /// Settings from the environment: `GEMINI_API_KEY`, `OPENAI_API_KEY`, `GEMINI_BASE_URL`,
    /// `OPENAI_BASE_URL` (unset or empty variables keep the defaults).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        AiSettings {
            gemini_base_url: var("GEMINI_BASE_URL").unwrap_or(defaults.gemini_base_url),
            gemini_key: var("GEMINI_API_KEY").map(|k| ApiKey::new(k.trim())),
            openai_base_url: var("OPENAI_BASE_URL").unwrap_or(defaults.openai_base_url),
            openai_key: var("OPENAI_API_KEY").map(|k| ApiKey::new(k.trim())),
            ..defaults
        }
    }
}

/// Which provider a node talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Google's Gemini API.
    Gemini,
    /// An OpenAI-compatible chat-completions server.
    OpenAi,
}

impl ProviderKind {
    /// The provider for a node: `provider` from the config when given (`"gemini"` or
    /// `"openai"`), else by model-name prefix (see the module docs).
    pub fn resolve(provider: Option<&str>, model: &str) -> Result<Self, NodeError> {
        match provider.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) if p.eq_ignore_ascii_case("gemini") || p.eq_ignore_ascii_case("google") => {
                Ok(ProviderKind::Gemini)
            }
            Some(p) if p.eq_ignore_ascii_case("openai") => Ok(ProviderKind::OpenAi),
            Some(other) => Err(NodeError::config(
                "provider",
                format!(
                    "unknown provider `{}` (expected \"gemini\" or \"openai\")",
                    crate::error::shown(&other)
                ),
            )),
            None => {
                let m = model.to_ascii_lowercase();
                let openai = ["gpt-", "chatgpt-", "o1", "o3", "o4", "dall-e", "openai/"]
                    .iter()
                    .any(|p| m.starts_with(p));
                Ok(if openai {
                    ProviderKind::OpenAi
                } else {
                    ProviderKind::Gemini
                })
            }
        }
    }
}

/// The configured providers, shared by the AI nodes.
#[derive(Debug, Clone)]
pub struct Providers {
    gemini: Arc<GeminiClient>,
    openai: Arc<OpenAiClient>,
    max_input_bytes: u64,
}

impl Providers {
    /// Builds the HTTP client and both provider clients.
    pub fn new(settings: &AiSettings) -> gatewai_core::Result<Self> {
        let http = reqwest::Client::builder()
            // A redirect is answered as an error, never followed: following it would send the
            // prompt, and the `x-goog-api-key` header (which reqwest keeps across hosts), to
            // wherever it points, a private address included.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.request_timeout)
            .read_timeout(settings.read_timeout)
            .connect_timeout(settings.connect_timeout)
            .user_agent(concat!("gatewai-nodes/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| gatewai_core::Error::Config(format!("AI HTTP client: {e}")))?;
        Ok(Providers {
            gemini: Arc::new(GeminiClient::new(
                http.clone(),
                &settings.gemini_base_url,
                settings.gemini_key.clone(),
            )),
            openai: Arc::new(OpenAiClient::new(
                http,
                &settings.openai_base_url,
                settings.openai_key.clone(),
            )),
            max_input_bytes: settings.max_input_bytes,
        })
    }

    /// The most media bytes one node sends to these providers, its media inputs together
    /// ([`AiSettings::max_input_bytes`]).
    pub fn max_input_bytes(&self) -> u64 {
        self.max_input_bytes
    }

    /// The provider for a node's `provider` config and model.
    pub fn get(&self, provider: Option<&str>, model: &str) -> Result<Arc<dyn Provider>, NodeError> {
        Ok(match ProviderKind::resolve(provider, model)? {
            ProviderKind::Gemini => self.gemini.clone(),
            ProviderKind::OpenAi => self.openai.clone(),
        })
    }
}

/// Registers LLM, ImageGen, TextToSpeech and SpeechToText with settings from the environment.
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    register_with(registry, AiSettings::from_env())
}

/// Registers LLM, ImageGen, TextToSpeech and SpeechToText with the given settings.
pub fn register_with(
    registry: &mut NodeRegistry,
    settings: AiSettings,
) -> gatewai_core::Result<()> {
    let providers = Providers::new(&settings)?;
    registry.register(LlmNode::new(providers.clone()))?;
    registry.register(ImageGenNode::new(providers.clone()))?;
    registry.register(TextToSpeechNode::new(providers.clone()))?;
    registry.register(SpeechToTextNode::new(providers))?;
    Ok(())
}

/// Checks that a model name is safe to put in a URL path (Gemini) or a body (OpenAI).
pub(crate) fn check_model_name(model: &str, allow_slash: bool) -> Result<(), NodeError> {
    let ok = !model.is_empty()
        && model.len() <= 200
        && model.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | ':')
                || (allow_slash && c == '/')
        });
    if ok {
        Ok(())
    } else {
        Err(NodeError::config(
            "model",
            format!(
                "`{}` is not a valid model name",
                crate::error::shown(&model)
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let key = ApiKey::new("AIza-very-secret");
        assert_eq!(format!("{key}"), "***");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        let settings = AiSettings {
            gemini_key: Some(key),
            ..AiSettings::default()
        };
        assert!(!format!("{settings:?}").contains("very-secret"));
        assert!(format!("{:?}", ApiKey::new("k").header_value().unwrap()).contains("Sensitive"));
    }

    #[test]
    fn provider_follows_config_then_model_prefix() {
        use ProviderKind::*;
        assert_eq!(
            ProviderKind::resolve(None, "gemini-3-flash-preview").unwrap(),
            Gemini
        );
        assert_eq!(ProviderKind::resolve(None, "gpt-4o-mini").unwrap(), OpenAi);
        assert_eq!(ProviderKind::resolve(None, "o3-mini").unwrap(), OpenAi);
        assert_eq!(
            ProviderKind::resolve(Some("openai"), "llama3.2").unwrap(),
            OpenAi
        );
        assert_eq!(
            ProviderKind::resolve(Some("gemini"), "gpt-x").unwrap(),
            Gemini
        );
        let e = ProviderKind::resolve(Some("anthropic"), "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig);
        assert!(e.message().contains("provider"));
    }

    #[test]
    fn model_names_are_checked() {
        assert!(check_model_name("gemini-2.5-flash", false).is_ok());
        assert!(check_model_name("../../etc", false).is_err());
        assert!(check_model_name("a?key=x", false).is_err());
        assert!(check_model_name("meta-llama/Llama-3.1-8B", true).is_ok());
        assert!(check_model_name("", true).is_err());
    }
}
