use super::Extra;
use serde::{Deserialize, Serialize};

/// A file kept in an asset store (Gatewai's `FileAsset`). Media moves between nodes as a
/// reference to one of these, never as inline bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct FileAsset {
    /// Unique id of the asset.
    pub id: String,
    /// Display / file name.
    #[serde(default)]
    pub name: String,
    /// Bucket (or store namespace) the blob lives in.
    #[serde(default)]
    pub bucket: String,
    /// Key of the blob inside its bucket.
    #[serde(default)]
    pub key: String,
    /// The real mime type, detected from the bytes.
    #[serde(default)]
    pub mime_type: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Width in pixels (images and video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels (images and video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Frames per second (video).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
    /// Duration in seconds (video and audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// A URL the client may fetch the blob from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_url: Option<String>,
    /// When `signed_url` expires (as the document had it, usually RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_url_exp: Option<String>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Fields this crate does not interpret (createdAt, userId, …), kept as they came.
    #[serde(flatten)]
    pub extra: Extra,
}

impl FileAsset {
    /// The top-level mime kind (`"image"`, `"video"`, `"audio"`, …).
    pub fn mime_kind(&self) -> &str {
        self.mime_type.split('/').next().unwrap_or("")
    }
}
