//! The **File** node (Gatewai's Import): the source of media in a canvas.

use crate::error::shown;
use crate::fetch::{FetchPolicy, fetch, redact_url};
use crate::media_util::{data_type_for_mime, detect_mime, image_dimensions, store_media};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use gatewai_core::model::Data;
use gatewai_core::{
    CachePolicy, DataType, FileAsset, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError,
    NodeTemplate, Outputs, RunInput,
};
use serde_json::Value;

/// The **File** node: outputs an image, video or audio file asset on its `file` handle. The
/// media comes from, in order:
///
/// 1. the run input handed to the node ([`RunInput::Bytes`], [`RunInput::Url`],
///    [`RunInput::Asset`], or a [`RunInput::Text`] holding a URL);
/// 2. the config: `asset` (an existing file asset, by id), `url` (http(s), fetched under the
///    node's [`FetchPolicy`], or a `data:` URL) or `base64` (with an optional `name`);
/// 3. the node's stored result: an uploaded file asset (or a `processData.dataUrl`).
///
/// The mime type is detected from the bytes; the asset gets its size, width/height (images) and
/// fps/duration (video, with the `video` feature).
///
/// Media is held to the fetch policy's [`FetchPolicy::max_bytes`] (100 MiB by default) however
/// it comes: downloaded, decoded from a `data:` URL or `base64`, handed in as run-input bytes,
/// or read from the asset store (an `asset`, a [`RunInput::Asset`], an uploaded result; a
/// larger asset is refused without being read whole). Larger media is an input error naming
/// the field (`run input`, `url`, `base64`, `asset`, `result`), and the asset when it is one.
#[derive(Debug)]
pub struct File {
    template: NodeTemplate,
    policy: FetchPolicy,
}

impl File {
    /// The node with the default fetch policy (no private or loopback addresses).
    pub fn new() -> Self {
        Self::with_fetch_policy(FetchPolicy::default())
    }

    /// The node with the given fetch policy.
    pub fn with_fetch_policy(policy: FetchPolicy) -> Self {
        let template = NodeTemplate::new("File", "File", "Inputs")
            .description("An image, video or audio file: uploaded, from a URL or an asset.")
            .aliases(&[
                "Import",
                "image",
                "upload_image",
                "video",
                "upload_video",
                "audio",
            ])
            .handle(
                HandleTemplate::output(
                    "file",
                    "File",
                    &[DataType::Image, DataType::Video, DataType::Audio],
                )
                .aliases(&["output"]),
            )
            .import_hook(import_config);
        File { template, policy }
    }

    async fn import_url(
        &self,
        ctx: &NodeContext,
        field: &str,
        url: &str,
    ) -> Result<Outputs, NodeError> {
        let url = url.trim();
        if url.starts_with("data:") {
            let bytes = decode_data_url(field, url, self.policy.max_bytes)?;
            return stored(ctx, field, "upload", bytes).await;
        }
        let fetched = fetch(url, &self.policy)
            .await
            .map_err(|e| e.into_node_error(field))?;
        let name = fetched
            .url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .unwrap_or("download")
            .to_owned();
        stored(ctx, field, &name, fetched.bytes).await
    }
}

impl Default for File {
    fn default() -> Self {
        Self::new()
    }
}

/// Maps the workflow app's `image`/`video`/`audio` node data (`file {url, name, type}` or an
/// `image`/`video`/`audio` URL) onto the File config.
fn import_config(data: &serde_json::Map<String, Value>) -> Result<Value, String> {
    let mut config = super::config::rename_fields(data, &[]);
    if let Some(file) = config.remove("file") {
        match file {
            Value::Object(f) => {
                if let Some(url) = f.get("url").and_then(Value::as_str) {
                    config.entry("url").or_insert(Value::from(url));
                }
                if let Some(name) = f.get("name").and_then(Value::as_str) {
                    config.entry("name").or_insert(Value::from(name));
                }
            }
            Value::String(url) => {
                config.entry("url").or_insert(Value::from(url));
            }
            Value::Null => {}
            other => {
                return Err(format!(
                    "file: expected {{url, name, type}}, got {}",
                    shown(&other)
                ));
            }
        }
    }
    for field in ["image", "video", "audio", "src"] {
        match config.remove(field) {
            Some(Value::String(url)) => {
                config.entry("url").or_insert(Value::from(url));
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                return Err(format!("{field}: expected a URL, got {}", shown(&other)));
            }
        }
    }
    Ok(Value::Object(config))
}

/// Stores media bytes and makes the node's output.
async fn stored(
    ctx: &NodeContext,
    field: &str,
    name: &str,
    bytes: Bytes,
) -> Result<Outputs, NodeError> {
    let (asset, data_type) = store_media(ctx, field, name, bytes).await?;
    Ok(Outputs::one("file", Item::file(data_type, asset)))
}

/// Decodes a `data:` URL (base64 only).
fn decode_data_url(field: &str, url: &str, max_bytes: u64) -> Result<Bytes, NodeError> {
    let (head, payload) = url
        .split_once(',')
        .ok_or_else(|| NodeError::input(field, "a data: URL needs a comma before its data"))?;
    if !head.ends_with(";base64") {
        return Err(NodeError::input(
            field,
            "only base64 data: URLs are accepted (`data:<type>;base64,...`)",
        ));
    }
    decode_base64(field, payload, max_bytes)
}

/// An input error naming `field` when `len` bytes are over the `max_bytes` limit.
fn within_limit(field: &str, len: u64, max_bytes: u64) -> Result<(), NodeError> {
    if len > max_bytes {
        return Err(NodeError::input(
            field,
            format!("the data is larger than the {max_bytes}-byte limit"),
        ));
    }
    Ok(())
}

/// Decodes base64 (standard or URL-safe, padding optional, whitespace ignored).
fn decode_base64(field: &str, text: &str, max_bytes: u64) -> Result<Bytes, NodeError> {
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let trimmed = clean.trim_end_matches('=');
    // The decoded length, exactly, before anything is decoded: 3 bytes per 4 characters, and
    // 1 or 2 for a last group of 2 or 3 (a group of 1 is invalid, refused by the decoder).
    let len = trimmed.len() as u64;
    within_limit(field, len / 4 * 3 + (len % 4).saturating_sub(1), max_bytes)?;
    let decoded = if trimmed.contains(['-', '_']) {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed)
    };
    decoded
        .map(Bytes::from)
        .map_err(|e| NodeError::input(field, format!("invalid base64: {e}")))
}

/// An asset that is already in the store, checked and described from its bytes.
async fn existing(
    ctx: &NodeContext,
    field: &str,
    asset: &FileAsset,
    max_bytes: u64,
) -> Result<Outputs, NodeError> {
    let mut asset = match ctx.assets().get(&asset.id).await.map_err(NodeError::from)? {
        Some(stored) => stored,
        None => {
            return Err(NodeError::input(
                field,
                format!("asset `{}` is not in the asset store", shown(&asset.id)),
            ));
        }
    };
    let bytes = crate::media_util::read_asset(ctx, field, &asset, max_bytes).await?;
    let mime = detect_mime(&bytes);
    let data_type = mime.and_then(data_type_for_mime).ok_or_else(|| {
        NodeError::input(
            field,
            format!(
                "asset `{}` is not an image, video or audio file (detected {})",
                shown(&asset.id),
                mime.unwrap_or("an unknown type")
            ),
        )
    })?;
    asset.mime_type = mime.unwrap_or_default().to_owned();
    asset.size = bytes.len() as u64;
    match data_type {
        DataType::Image if asset.width.is_none() || asset.height.is_none() => {
            if let Some((w, h)) = image_dimensions(&bytes) {
                asset.width = Some(w);
                asset.height = Some(h);
            }
        }
        #[cfg(feature = "video")]
        DataType::Video | DataType::Audio if asset.duration.is_none() => {
            if let Ok(info) = crate::video::probe_bytes(ctx, &bytes).await {
                asset.width = asset.width.or(info.width);
                asset.height = asset.height.or(info.height);
                asset.fps = asset.fps.or(info.fps);
                asset.duration = info.duration;
            }
        }
        _ => {}
    }
    Ok(Outputs::one("file", Item::file(data_type, asset)))
}

#[async_trait]
impl Node for File {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn cache_policy(&self) -> CachePolicy {
        // The source may change between runs (a URL's content, an upload, a run input).
        CachePolicy::Volatile
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for field in ["url", "base64", "name"] {
            if let Some(v) = config.get(field)
                && !v.is_null()
                && !v.is_string()
            {
                problems.push((
                    field.to_owned(),
                    format!("expected a string, got {}", shown(v)),
                ));
            }
        }
        if let Some(url) = config.get("url").and_then(Value::as_str) {
            let url = url.trim();
            let ok = url.is_empty()
                || url.starts_with("data:")
                || url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !ok {
                problems.push((
                    "url".to_owned(),
                    format!("`{}` is not an http(s) or data: URL", redact_url(url)),
                ));
            }
        }
        if let Some(asset) = config.get("asset").filter(|v| !v.is_null())
            && serde_json::from_value::<FileAsset>(asset.clone()).is_err()
        {
            problems.push((
                "asset".to_owned(),
                "expected a file asset with an `id`".to_owned(),
            ));
        }
        problems
    }

    async fn execute(&self, ctx: &NodeContext, _inputs: &Inputs) -> Result<Outputs, NodeError> {
        if let Some(input) = ctx.run_input() {
            return match input {
                RunInput::Bytes { bytes, name } => {
                    within_limit("run input", bytes.len() as u64, self.policy.max_bytes)?;
                    stored(
                        ctx,
                        "run input",
                        name.as_deref().unwrap_or("upload"),
                        bytes.clone(),
                    )
                    .await
                }
                RunInput::Url(url) => self.import_url(ctx, "run input", url).await,
                RunInput::Text(text) => self.import_url(ctx, "run input", text).await,
                RunInput::Asset(asset) => {
                    existing(ctx, "run input", asset, self.policy.max_bytes).await
                }
            };
        }
        let config = ctx.raw_config();
        if let Some(asset) = config.get("asset").filter(|v| !v.is_null()) {
            let asset: FileAsset = serde_json::from_value(asset.clone())
                .map_err(|e| NodeError::config("asset", format!("not a file asset: {e}")))?;
            return existing(ctx, "asset", &asset, self.policy.max_bytes).await;
        }
        if let Some(url) = config.get("url").filter(|v| !v.is_null()) {
            let url = url.as_str().ok_or_else(|| {
                NodeError::config("url", format!("expected a string, got {}", shown(url)))
            })?;
            if !url.trim().is_empty() {
                return self.import_url(ctx, "url", url).await;
            }
        }
        if let Some(b64) = config.get("base64").filter(|v| !v.is_null()) {
            let text = b64.as_str().ok_or_else(|| {
                NodeError::config("base64", format!("expected a string, got {}", shown(b64)))
            })?;
            let bytes = if text.trim_start().starts_with("data:") {
                decode_data_url("base64", text.trim(), self.policy.max_bytes)?
            } else {
                decode_base64("base64", text, self.policy.max_bytes)?
            };
            let name = config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("upload");
            return stored(ctx, "base64", name, bytes).await;
        }
        if let Some(generation) = ctx.previous_result().and_then(|r| r.selected()) {
            for item in &generation.items {
                if let Data::File(file) = &item.data {
                    if let Some(asset) = &file.entity {
                        return existing(ctx, "result", asset, self.policy.max_bytes).await;
                    }
                    if let Some(url) = file
                        .process_data
                        .as_ref()
                        .and_then(|p| p.get("dataUrl"))
                        .and_then(Value::as_str)
                    {
                        let bytes = decode_data_url("result", url, self.policy.max_bytes)?;
                        return stored(ctx, "result", "upload", bytes).await;
                    }
                }
            }
        }
        Err(NodeError::config(
            "url",
            "no file: upload one, set `url` (http(s) or data:), `base64` or `asset`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn workflow_app_image_data_maps_onto_url_and_name() {
        let data = json!({"label": "Image", "file": {"url": "https://x/a.png", "name": "a.png", "type": "image/png"}});
        let config = import_config(data.as_object().unwrap()).unwrap();
        assert_eq!(config, json!({"url": "https://x/a.png", "name": "a.png"}));
        let data = json!({"label": "Image", "image": "https://x/b.jpg"});
        let config = import_config(data.as_object().unwrap()).unwrap();
        assert_eq!(config, json!({"url": "https://x/b.jpg"}));
        let data = json!({"image": 5});
        assert!(
            import_config(data.as_object().unwrap())
                .unwrap_err()
                .contains("image")
        );
    }

    #[test]
    fn base64_variants_decode() {
        let expected = Bytes::from_static(b"\xff\xfe\xfd");
        assert_eq!(decode_base64("f", "//79", 100).unwrap(), expected);
        assert_eq!(decode_base64("f", "__79", 100).unwrap(), expected);
        assert_eq!(decode_base64("f", "//7 9\n", 100).unwrap(), expected);
        assert!(decode_base64("f", "not base64!", 100).is_err());
        assert!(decode_base64("f", "AAAAAAAA", 3).is_err());
        assert!(decode_data_url("f", "data:text/plain,hello", 100).is_err());
        assert_eq!(
            decode_data_url("f", "data:image/png;base64,//79", 100).unwrap(),
            expected
        );
    }

    /// The limit holds for the decoded length exactly, padded or not.
    #[test]
    fn base64_is_held_to_its_limit_exactly() {
        use base64::Engine as _;
        for len in 0..=12usize {
            let bytes = vec![0xFFu8; len]; // `/` in standard base64, `_` in URL-safe
            let padded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
            for text in [&padded, &unpadded] {
                let at = decode_base64("f", text, len as u64).map(|b| b.to_vec());
                assert_eq!(at.ok(), Some(bytes.clone()), "{len} bytes as {text:?}");
                if len > 0 {
                    let under = decode_base64("f", text, len as u64 - 1);
                    assert!(
                        under.is_err(),
                        "{len} bytes as {text:?} under a limit of {}",
                        len - 1
                    );
                }
            }
        }
    }

    #[test]
    fn bad_config_names_the_field() {
        let problems = File::new().check_config(&json!({"url": "ftp://x/y", "name": 3}));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["name", "url"]);
    }
}
