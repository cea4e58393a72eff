//! The AI node types: LLM, ImageGen, TextToSpeech and SpeechToText.

use super::Providers;
use super::provider::{ImageRequest, Media, Part, Provider, SpeechRequest, TextRequest};
use super::wav;
use crate::media_util::{ReadBudget, detect_mime, store_bytes};
use crate::text::{json_kind, keep_unknown_fields};
use async_trait::async_trait;
use gatewai_core::model::Extra;
use gatewai_core::{
    CachePolicy, DataType, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError,
    NodeTemplate, Outputs, ResultMode,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::Arc;

/// The LLM node's default model (a current Gemini flash model).
pub const DEFAULT_LLM_MODEL: &str = "gemini-3-flash-preview";
/// The ImageGen node's default model.
pub const DEFAULT_IMAGE_MODEL: &str = "gemini-3.1-flash-image-preview";
/// The TextToSpeech node's default model.
pub const DEFAULT_TTS_MODEL: &str = "gemini-3.1-flash-tts-preview";
/// The SpeechToText node's default model.
pub const DEFAULT_STT_MODEL: &str = DEFAULT_LLM_MODEL;

/// The prompt SpeechToText sends when its Prompt input is not connected.
const DEFAULT_TRANSCRIBE_PROMPT: &str = "Generate a transcript of the speech.";

/// Runs a provider call until it ends or the run is cancelled; cancelling drops the call,
/// which closes its connection and stops a stream.
async fn until_cancelled<T>(
    ctx: &NodeContext,
    call: impl Future<Output = Result<T, NodeError>>,
) -> Result<T, NodeError> {
    tokio::select! {
        result = call => result,
        _ = ctx.cancelled() => Err(NodeError::cancelled()),
    }
}

/// The model of a config (`None` or empty: the default).
fn model_or(model: &Option<String>, default: &str) -> String {
    model
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or(default)
        .to_owned()
}

/// The text on `handle`, else the config fallback; empty strings count as missing.
fn text_or(
    inputs: &Inputs,
    handle: &str,
    fallback: &Option<String>,
) -> Result<Option<String>, NodeError> {
    Ok(inputs
        .text(handle)?
        .map(str::to_owned)
        .or_else(|| fallback.clone())
        .filter(|t| !t.trim().is_empty()))
}

/// The media on every input slot but `skip`, in handle order, each checked to be of `kind`
/// (`"image"` or `"audio"`) by the asset's mime type or, failing that, by its bytes, and at
/// most `max_bytes` long all together.
async fn media_inputs(
    ctx: &NodeContext,
    inputs: &Inputs,
    skip: &[&str],
    kind: &str,
    max_bytes: u64,
) -> Result<Vec<Media>, NodeError> {
    let mut media = Vec::new();
    // `max_bytes` bounds the node's media inputs together.
    let mut budget = ReadBudget::new(max_bytes);
    for slot in inputs.slots() {
        let key = slot
            .template_handle_id
            .as_deref()
            .unwrap_or(&slot.handle_id);
        if skip.contains(&key) {
            continue;
        }
        for item in &slot.values {
            media.push(media_of(ctx, &slot.handle_id, item, kind, &mut budget).await?);
        }
    }
    Ok(media)
}

/// The bytes (within `budget`) and mime type of one media item.
async fn media_of(
    ctx: &NodeContext,
    handle: &str,
    item: &Item,
    kind: &str,
    budget: &mut ReadBudget,
) -> Result<Media, NodeError> {
    let asset = item.as_asset().ok_or_else(|| {
        NodeError::input(
            handle,
            format!("expected an {kind} file, got {}", item.data_type),
        )
    })?;
    let bytes = budget.read(ctx, handle, asset).await?;
    if bytes.is_empty() {
        return Err(NodeError::input(handle, "the file is empty"));
    }
    let prefix = format!("{kind}/");
    let mime_type = if asset.mime_type.starts_with(&prefix) {
        asset.mime_type.clone()
    } else {
        match detect_mime(&bytes) {
            Some(m) if m.starts_with(&prefix) => m.to_owned(),
            detected => {
                return Err(NodeError::input(
                    handle,
                    format!(
                        "expected an {kind} file, got {}",
                        detected.unwrap_or(if asset.mime_type.is_empty() {
                            "an unknown type"
                        } else {
                            &asset.mime_type
                        })
                    ),
                ));
            }
        }
    };
    Ok(Media { mime_type, bytes })
}

/// Config problems shared by the AI nodes: `model` and `provider` strings, and the string
/// fields in `strings`.
fn check_common(config: &Value, strings: &[&str]) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for field in ["model", "provider"].iter().chain(strings) {
        match config.get(*field) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => problems.push((
                (*field).to_owned(),
                format!("must be a string, got {}", json_kind(other)),
            )),
        }
    }
    if let Some(Value::String(p)) = config.get("provider")
        && let Err(e) = super::ProviderKind::resolve(Some(p), "")
    {
        problems.push(("provider".into(), e.message().to_owned()));
    }
    problems
}

/// The keys of `data` copied into `config` by an import hook under their config names.
fn import_fields(data: &Extra, fields: &[(&str, &[&str])]) -> Extra {
    let mut config = Extra::new();
    let mut consumed: Vec<&str> = Vec::new();
    for (name, keys) in fields {
        consumed.extend_from_slice(keys);
        if let Some(v) = keys
            .iter()
            .find_map(|k| data.get(*k))
            .filter(|v| !v.is_null())
        {
            config.insert((*name).to_owned(), v.clone());
        }
    }
    keep_unknown_fields(data, &consumed, &mut config);
    config
}

// ---------------------------------------------------------------------------------------------

/// The **LLM** node: prompt, optional system prompt and images (on `image` and on variable
/// inputs, in handle order) in, text out. Streamed tokens go out as progress events whose
/// `partialText` is the newest delta (a client appends them); the full text is the result.
/// Each run appends a generation and selects it.
///
/// Config: `model` (default [`DEFAULT_LLM_MODEL`]), `provider`, `temperature` (0–2),
/// `maxOutputTokens`, and `systemPrompt` / `prompt`, used when the matching input carries no
/// value (the workflow app keeps typed-in prompts there).
pub struct LlmNode {
    template: NodeTemplate,
    providers: Providers,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LlmConfig {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(
        default,
        alias = "maxTokens",
        alias = "max_tokens",
        alias = "max_output_tokens"
    )]
    max_output_tokens: Option<u32>,
    #[serde(default, alias = "system_prompt")]
    system_prompt: Option<String>,
    #[serde(default, alias = "userMessage", alias = "user_message")]
    prompt: Option<String>,
}

impl LlmNode {
    /// The node type, calling `providers`.
    pub fn new(providers: Providers) -> Self {
        let template = NodeTemplate::new("LLM", "LLM", "AI")
            .description("Generates text with a large language model.")
            .aliases(&["llm"])
            .terminal()
            .handle(
                HandleTemplate::input("prompt", "Prompt", &[DataType::Text])
                    .required()
                    .config_fallback("prompt")
                    .aliases(&["user_message", "userMessage"]),
            )
            .handle(
                HandleTemplate::input("system_prompt", "System Prompt", &[DataType::Text])
                    .aliases(&["systemPrompt"]),
            )
            .handle(
                HandleTemplate::input("image", "Image", &[DataType::Image])
                    .multiple()
                    .aliases(&["images"]),
            )
            .handle(
                HandleTemplate::output("result", "Text", &[DataType::Text]).aliases(&["output"]),
            )
            .variable_inputs(&[DataType::Image])
            .default_config(json!({ "model": DEFAULT_LLM_MODEL, "temperature": 0 }))
            .import_hook(|data| {
                Ok(Value::Object(import_fields(
                    data,
                    &[
                        ("model", &["model"]),
                        ("provider", &["provider"]),
                        ("temperature", &["temperature"]),
                        (
                            "maxOutputTokens",
                            &["maxOutputTokens", "maxTokens", "max_tokens"],
                        ),
                        ("systemPrompt", &["systemPrompt", "system_prompt"]),
                        ("prompt", &["prompt", "userMessage", "user_message"]),
                    ],
                )))
            });
        LlmNode {
            template,
            providers,
        }
    }
}

#[async_trait]
impl Node for LlmNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }

    fn result_mode(&self) -> ResultMode {
        ResultMode::Append
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        let mut problems = check_common(config, &["systemPrompt", "prompt"]);
        match config.get("temperature") {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|t| (0.0..=2.0).contains(&t)) => {}
            Some(other) => problems.push((
                "temperature".into(),
                format!(
                    "must be a number from 0 to 2, got {}",
                    crate::error::shown(other)
                ),
            )),
        }
        let max = ["maxOutputTokens", "maxTokens", "max_tokens"]
            .iter()
            .find_map(|k| config.get(*k).map(|v| (*k, v)));
        match max {
            None | Some((_, Value::Null)) => {}
            Some((_, Value::Number(n)))
                if n.as_u64()
                    .is_some_and(|n| n > 0 && n <= u64::from(u32::MAX)) => {}
            Some((field, other)) => problems.push((
                field.to_owned(),
                format!(
                    "must be a positive integer, got {}",
                    crate::error::shown(other)
                ),
            )),
        }
        problems
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config: LlmConfig = ctx.config()?;
        if let Some(t) = config.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(NodeError::config(
                "temperature",
                format!("must be from 0 to 2, got {t}"),
            ));
        }
        let model = model_or(&config.model, DEFAULT_LLM_MODEL);
        let provider = self.providers.get(config.provider.as_deref(), &model)?;
        let prompt = text_or(inputs, "prompt", &config.prompt)?.ok_or_else(|| {
            NodeError::input(
                "prompt",
                "no prompt: connect the Prompt input or set config `prompt`",
            )
        })?;
        let system = text_or(inputs, "system_prompt", &config.system_prompt)?;
        let mut parts = vec![Part::Text(prompt)];
        let max_bytes = self.providers.max_input_bytes();
        for image in media_inputs(
            ctx,
            inputs,
            &["prompt", "system_prompt"],
            "image",
            max_bytes,
        )
        .await?
        {
            parts.push(Part::Media(image));
        }
        let request = TextRequest {
            model,
            system,
            parts,
            temperature: config.temperature,
            max_output_tokens: config.max_output_tokens,
        };
        let on_delta = |delta: &str| ctx.report_partial_text(delta);
        let text = until_cancelled(ctx, provider.generate_text(&request, &on_delta)).await?;
        Ok(Outputs::one("result", Item::text(text)))
    }
}

// ---------------------------------------------------------------------------------------------

/// The **ImageGen** node: prompt and reference images in, generated image(s) out (stored as
/// assets; several images become several generations). Each run appends.
///
/// Config: `model` (default [`DEFAULT_IMAGE_MODEL`]), `provider`, `aspectRatio` (`"W:H"`,
/// default `"1:1"`), `imageSize` (`"1K"`, `"2K"`, `"4K"`), `prompt` (used when the Prompt input
/// carries no value).
pub struct ImageGenNode {
    template: NodeTemplate,
    providers: Providers,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageGenConfig {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default, alias = "aspect_ratio")]
    aspect_ratio: Option<String>,
    #[serde(default, alias = "image_size")]
    image_size: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

fn check_aspect_ratio(value: &str) -> bool {
    value.split_once(':').is_some_and(|(w, h)| {
        w.parse::<u32>().is_ok_and(|w| w > 0) && h.parse::<u32>().is_ok_and(|h| h > 0)
    })
}

fn check_image_size(value: &str) -> bool {
    value
        .strip_suffix(['K', 'k'])
        .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| (1..=8).contains(&n)))
}

impl ImageGenNode {
    /// The node type, calling `providers`.
    pub fn new(providers: Providers) -> Self {
        let template = NodeTemplate::new("ImageGen", "Image Gen", "AI")
            .description("Generates an image from a prompt and reference images.")
            .aliases(&["imageGen", "image_gen"])
            .terminal()
            .handle(
                HandleTemplate::input("prompt", "Prompt", &[DataType::Text])
                    .required()
                    .config_fallback("prompt"),
            )
            .handle(
                HandleTemplate::input("reference_image", "Reference Image", &[DataType::Image])
                    .multiple(),
            )
            .handle(
                HandleTemplate::output("result", "Image", &[DataType::Image]).aliases(&["output"]),
            )
            .variable_inputs(&[DataType::Image])
            .default_config(json!({
                "model": DEFAULT_IMAGE_MODEL, "aspectRatio": "1:1", "imageSize": "1K"
            }))
            .import_hook(|data| {
                Ok(Value::Object(import_fields(
                    data,
                    &[
                        ("model", &["model"]),
                        ("provider", &["provider"]),
                        ("aspectRatio", &["aspectRatio", "aspect_ratio"]),
                        ("imageSize", &["imageSize", "image_size"]),
                        ("prompt", &["prompt"]),
                    ],
                )))
            });
        ImageGenNode {
            template,
            providers,
        }
    }
}

#[async_trait]
impl Node for ImageGenNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }

    fn result_mode(&self) -> ResultMode {
        ResultMode::Append
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        let mut problems = check_common(config, &["aspectRatio", "imageSize", "prompt"]);
        if let Some(Value::String(a)) = config.get("aspectRatio")
            && !check_aspect_ratio(a)
        {
            problems.push((
                "aspectRatio".into(),
                format!("`{}` is not a ratio like \"16:9\"", crate::error::shown(&a)),
            ));
        }
        if let Some(Value::String(s)) = config.get("imageSize")
            && !check_image_size(s)
        {
            problems.push((
                "imageSize".into(),
                format!(
                    "`{}` is not a size like \"1K\", \"2K\" or \"4K\"",
                    crate::error::shown(&s)
                ),
            ));
        }
        problems
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config: ImageGenConfig = ctx.config()?;
        let aspect_ratio = config.aspect_ratio.filter(|a| !a.is_empty());
        if let Some(a) = aspect_ratio.as_deref().filter(|a| !check_aspect_ratio(a)) {
            return Err(NodeError::config(
                "aspectRatio",
                format!("`{}` is not a ratio like \"16:9\"", crate::error::shown(&a)),
            ));
        }
        let image_size = config.image_size.filter(|s| !s.is_empty());
        if let Some(s) = image_size.as_deref().filter(|s| !check_image_size(s)) {
            return Err(NodeError::config(
                "imageSize",
                format!("`{}` is not a size like \"1K\"", crate::error::shown(&s)),
            ));
        }
        let model = model_or(&config.model, DEFAULT_IMAGE_MODEL);
        let provider = self.providers.get(config.provider.as_deref(), &model)?;
        let prompt = text_or(inputs, "prompt", &config.prompt)?.ok_or_else(|| {
            NodeError::input(
                "prompt",
                "no prompt: connect the Prompt input or set config `prompt`",
            )
        })?;
        let mut parts = vec![Part::Text(prompt)];
        let max_bytes = self.providers.max_input_bytes();
        for image in media_inputs(ctx, inputs, &["prompt"], "image", max_bytes).await? {
            parts.push(Part::Media(image));
        }
        let request = ImageRequest {
            model,
            parts,
            aspect_ratio,
            image_size,
        };
        let images = until_cancelled(ctx, provider.generate_image(&request)).await?;
        // Every image is checked before any is stored: a failed run leaves no asset behind.
        for image in &images {
            let mime = detect_mime(&image.bytes);
            if !mime.is_some_and(|m| m.starts_with("image/")) {
                return Err(NodeError::unavailable(format!(
                    "{} returned image data that is not an image (detected {})",
                    provider.name(),
                    mime.unwrap_or(crate::media_util::UNKNOWN_MIME)
                )));
            }
        }
        let mut outputs = Outputs::none();
        for (i, image) in images.into_iter().enumerate() {
            let asset =
                store_bytes(ctx, &format!("{}-{}", ctx.node_id(), i + 1), image.bytes).await?;
            if i > 0 {
                outputs = outputs.next_generation();
            }
            outputs = outputs.with("result", Item::file(DataType::Image, asset));
        }
        Ok(outputs)
    }
}

// ---------------------------------------------------------------------------------------------

/// The **TextToSpeech** node: prompt in, spoken audio out (Gemini's raw PCM is wrapped as a WAV
/// file asset).
///
/// Config: `model` (default [`DEFAULT_TTS_MODEL`]), `voiceName` (default `"Kore"`),
/// `languageCode` (default `"en-US"`), `prompt` (used when the input carries no value).
pub struct TextToSpeechNode {
    template: NodeTemplate,
    providers: Providers,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TtsConfig {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default, alias = "voice_name", alias = "voice")]
    voice_name: Option<String>,
    #[serde(default, alias = "language_code", alias = "language")]
    language_code: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

impl TextToSpeechNode {
    /// The node type, calling `providers`.
    pub fn new(providers: Providers) -> Self {
        let template = NodeTemplate::new("TextToSpeech", "Text to Speech", "AI")
            .description("Speaks a text.")
            .aliases(&["textToSpeech", "tts"])
            .terminal()
            .handle(
                HandleTemplate::input("prompt", "Prompt", &[DataType::Text])
                    .required()
                    .config_fallback("prompt"),
            )
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Audio]).aliases(&["output"]),
            )
            .default_config(json!({
                "model": DEFAULT_TTS_MODEL, "voiceName": "Kore", "languageCode": "en-US"
            }))
            .import_hook(|data| {
                Ok(Value::Object(import_fields(
                    data,
                    &[
                        ("model", &["model"]),
                        ("provider", &["provider"]),
                        ("voiceName", &["voiceName", "voice_name", "voice"]),
                        (
                            "languageCode",
                            &["languageCode", "language_code", "language"],
                        ),
                        ("prompt", &["prompt", "text"]),
                    ],
                )))
            });
        TextToSpeechNode {
            template,
            providers,
        }
    }
}

#[async_trait]
impl Node for TextToSpeechNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }

    fn result_mode(&self) -> ResultMode {
        ResultMode::Append
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        check_common(config, &["voiceName", "languageCode", "prompt"])
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config: TtsConfig = ctx.config()?;
        let model = model_or(&config.model, DEFAULT_TTS_MODEL);
        let provider = self.providers.get(config.provider.as_deref(), &model)?;
        let text = text_or(inputs, "prompt", &config.prompt)?.ok_or_else(|| {
            NodeError::input(
                "prompt",
                "no text to speak: connect the Prompt input or set config `prompt`",
            )
        })?;
        let request = SpeechRequest {
            model,
            text,
            voice_name: Some(config.voice_name.unwrap_or_else(|| "Kore".into()))
                .filter(|v| !v.is_empty()),
            language_code: Some(config.language_code.unwrap_or_else(|| "en-US".into()))
                .filter(|l| !l.is_empty()),
        };
        let audio = until_cancelled(ctx, provider.synthesize_speech(&request)).await?;
        let bytes = match wav::pcm_format(&audio.mime_type) {
            Some((rate, channels)) => wav::wav_from_pcm16(&audio.bytes, rate, channels)
                .map(Into::into)
                .unwrap_or_default(),
            None => audio.bytes.clone(),
        };
        // What is stored as an Audio output must be an audio file a player can read.
        if !detect_mime(&bytes).is_some_and(|m| m.starts_with("audio/")) {
            return Err(NodeError::unavailable(format!(
                "{} returned data that is not audio (mime type `{}`, {} bytes)",
                provider.name(),
                crate::error::shown(&audio.mime_type),
                audio.bytes.len()
            )));
        }
        let asset = store_bytes(ctx, &format!("{}.wav", ctx.node_id()), bytes).await?;
        Ok(Outputs::one("result", Item::file(DataType::Audio, asset)))
    }
}

// ---------------------------------------------------------------------------------------------

/// The **SpeechToText** node: audio (and an optional instruction) in, transcript out.
///
/// Config: `model` (default [`DEFAULT_STT_MODEL`]), `provider`, `prompt` (the instruction when
/// the Prompt input carries no value; default "Generate a transcript of the speech.").
pub struct SpeechToTextNode {
    template: NodeTemplate,
    providers: Providers,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SttConfig {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
}

impl SpeechToTextNode {
    /// The node type, calling `providers`.
    pub fn new(providers: Providers) -> Self {
        let template = NodeTemplate::new("SpeechToText", "Speech to Text", "AI")
            .description("Transcribes speech.")
            .aliases(&["speechToText", "stt"])
            .terminal()
            .handle(HandleTemplate::input("audio", "Audio", &[DataType::Audio]).required())
            .handle(HandleTemplate::input("prompt", "Prompt", &[DataType::Text]))
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Text]).aliases(&["output"]),
            )
            .default_config(json!({ "model": DEFAULT_STT_MODEL }))
            .import_hook(|data| {
                Ok(Value::Object(import_fields(
                    data,
                    &[
                        ("model", &["model"]),
                        ("provider", &["provider"]),
                        ("prompt", &["prompt"]),
                    ],
                )))
            });
        SpeechToTextNode {
            template,
            providers,
        }
    }
}

#[async_trait]
impl Node for SpeechToTextNode {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn cache_policy(&self) -> CachePolicy {
        CachePolicy::Volatile
    }

    fn result_mode(&self) -> ResultMode {
        ResultMode::Append
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        check_common(config, &["prompt"])
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config: SttConfig = ctx.config()?;
        let model = model_or(&config.model, DEFAULT_STT_MODEL);
        let provider: Arc<dyn Provider> = self.providers.get(config.provider.as_deref(), &model)?;
        let item = inputs.require("audio")?;
        let mut budget = ReadBudget::new(self.providers.max_input_bytes());
        let audio = media_of(ctx, "audio", item, "audio", &mut budget).await?;
        let instruction = text_or(inputs, "prompt", &config.prompt)?
            .unwrap_or_else(|| DEFAULT_TRANSCRIBE_PROMPT.to_owned());
        let request = TextRequest {
            model,
            system: None,
            parts: vec![Part::Text(instruction), Part::Media(audio)],
            temperature: None,
            max_output_tokens: None,
        };
        let on_delta = |delta: &str| ctx.report_partial_text(delta);
        let text = until_cancelled(ctx, provider.generate_text(&request, &on_delta)).await?;
        Ok(Outputs::one("result", Item::text(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn providers() -> Providers {
        Providers::new(&super::super::AiSettings::default()).unwrap()
    }

    #[test]
    fn llm_import_hook_maps_the_workflow_app_fields() {
        let node = LlmNode::new(providers());
        let hook = node.template().import_hook.clone().unwrap();
        let data: Extra = serde_json::from_value(json!({
            "label": "LLM", "model": "gemini-1.5-flash", "systemPrompt": "Be brief.",
            "userMessage": "Describe", "status": "idle", "extra": 1
        }))
        .unwrap();
        assert_eq!(
            (hook.0)(&data).unwrap(),
            json!({"model": "gemini-1.5-flash", "systemPrompt": "Be brief.", "prompt": "Describe", "extra": 1})
        );
        let data: Extra =
            serde_json::from_value(json!({"system_prompt": "S", "user_message": "U"})).unwrap();
        assert_eq!(
            (hook.0)(&data).unwrap(),
            json!({"systemPrompt": "S", "prompt": "U"})
        );
    }

    #[test]
    fn llm_check_config_names_bad_fields() {
        let node = LlmNode::new(providers());
        assert!(
            node.check_config(&json!({"model": "m", "temperature": 2}))
                .is_empty()
        );
        let problems = node.check_config(&json!({
            "temperature": 2.5, "maxOutputTokens": 0, "provider": "acme", "model": 3
        }));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec!["model", "provider", "temperature", "maxOutputTokens"]
        );
        assert_eq!(
            node.check_config(&json!({"temperature": "hot"}))[0].0,
            "temperature"
        );
        assert_eq!(
            node.check_config(&json!({"temperature": -0.1}))[0].0,
            "temperature"
        );
    }

    #[test]
    fn image_gen_check_config() {
        let node = ImageGenNode::new(providers());
        assert!(
            node.check_config(&json!({"aspectRatio": "16:9", "imageSize": "2K"}))
                .is_empty()
        );
        let problems = node.check_config(&json!({"aspectRatio": "wide", "imageSize": "huge"}));
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].0, "aspectRatio");
        assert_eq!(problems[1].0, "imageSize");
    }
}
