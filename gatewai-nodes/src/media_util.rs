//! Helpers shared by the built-in nodes for media bytes: mime detection from the bytes (never
//! from a name), the data type of a mime type, storing bytes as a [`FileAsset`] with its
//! dimensions filled in, and reading the bytes of an asset that arrived on an input handle,
//! up to a byte limit ([`DEFAULT_MAX_MEDIA_BYTES`] unless a node is configured otherwise).

use bytes::Bytes;
use gatewai_core::{DataType, ErrorKind, FileAsset, Inputs, NewAsset, NodeContext, NodeError};

/// The mime type of `bytes`, detected from their magic numbers; `None` when unrecognised.
pub fn detect_mime(bytes: &[u8]) -> Option<&'static str> {
    infer::get(bytes).map(|kind| kind.mime_type())
}

/// The media data type a mime type belongs to (`image/*` → Image, `video/*` → Video,
/// `audio/*` → Audio); `None` for anything else.
pub fn data_type_for_mime(mime: &str) -> Option<DataType> {
    match mime.split('/').next().unwrap_or("") {
        "image" => Some(DataType::Image),
        "video" => Some(DataType::Video),
        "audio" => Some(DataType::Audio),
        _ => None,
    }
}

/// The most bytes of one media file a built-in node takes in by default (100 MiB), however it
/// comes: downloaded (`fetch::FetchPolicy::max_bytes`), handed in as run-input bytes, `data:`
/// URLs or base64 (the File node, to the same limit), or read from the asset store (the File
/// node's stored assets, again to its fetch policy's limit; `media::ImageLimits::max_bytes`,
/// `video::FfmpegTools::max_input_bytes`, `ai::AiSettings::max_input_bytes`). Each of those is
/// configurable apart. (Each sits behind a cargo feature, hence no links here.)
pub const DEFAULT_MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;

/// The mime type stored for bytes whose type cannot be recognised.
pub const UNKNOWN_MIME: &str = "application/octet-stream";

/// Stores `bytes` through the context's asset store. The mime type is detected from the bytes
/// (unrecognised bytes are stored as `application/octet-stream`); images get their width and
/// height from the header (with the `image` feature; no full decode), and video and audio their
/// fps and duration from ffprobe (with the `video` feature; left empty when ffprobe cannot tell).
pub async fn store_bytes(
    ctx: &NodeContext,
    name: &str,
    bytes: Bytes,
) -> Result<FileAsset, NodeError> {
    let mime = detect_mime(&bytes).unwrap_or(UNKNOWN_MIME);
    let mut asset = NewAsset {
        name: name.to_owned(),
        mime_type: mime.to_owned(),
        ..NewAsset::default()
    };
    match data_type_for_mime(mime) {
        Some(DataType::Image) => {
            if let Some((w, h)) = image_dimensions(&bytes) {
                asset.width = Some(w);
                asset.height = Some(h);
            }
        }
        Some(DataType::Video | DataType::Audio) => {
            #[cfg(feature = "video")]
            match crate::video::probe_bytes(ctx, &bytes).await {
                Ok(info) => {
                    asset.width = info.width;
                    asset.height = info.height;
                    asset.fps = info.fps;
                    asset.duration = info.duration;
                }
                Err(e) => tracing::debug!(error = %e, "ffprobe could not describe stored media"),
            }
        }
        _ => {}
    }
    // The content hash lets the engine's result cache key downstream nodes by the bytes, not
    // by the fresh asset id: re-importing the same file still hits the cache.
    asset.metadata = Some(serde_json::json!({ "contentHash": content_hash(&bytes) }));
    asset.bytes = bytes;
    ctx.assets().put(asset).await.map_err(NodeError::from)
}

/// The blake3 hash of `bytes`, in hex: what `store_bytes` records as `metadata.contentHash`.
pub fn content_hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Stores `bytes` like [`store_bytes`] but only when they are an image, a video or an audio
/// file; returns the asset and its data type. Anything else is an input error naming `what`
/// (a handle or config field).
pub async fn store_media(
    ctx: &NodeContext,
    what: &str,
    name: &str,
    bytes: Bytes,
) -> Result<(FileAsset, DataType), NodeError> {
    if bytes.is_empty() {
        return Err(NodeError::input(what, "the file is empty"));
    }
    let mime = detect_mime(&bytes);
    let data_type = mime.and_then(data_type_for_mime).ok_or_else(|| {
        NodeError::input(
            what,
            format!(
                "not an image, video or audio file (detected {})",
                mime.unwrap_or("an unknown type")
            ),
        )
    })?;
    let asset = store_bytes(ctx, name, bytes).await?;
    Ok((asset, data_type))
}

/// Width and height from an image's header, without decoding its pixels: as the image is
/// shown, upright (an EXIF orientation that turns it a quarter swaps them).
#[cfg(feature = "image")]
pub fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    use image::ImageDecoder;
    let mut decoder = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?
        .into_decoder()
        .ok()?;
    let (w, h) = decoder.dimensions();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    match swaps_sides(orientation) {
        true => Some((h, w)),
        false => Some((w, h)),
    }
}

/// Whether `orientation` turns an image a quarter, swapping its width and height.
#[cfg(feature = "image")]
fn swaps_sides(orientation: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation;
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

/// Width and height from an image's header (always `None` without the `image` feature).
#[cfg(not(feature = "image"))]
pub fn image_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    let _ = bytes;
    None
}

/// A byte budget several reads of one node share: the node's input files together are held to
/// one limit (a node fed many files holds no more than one file of the limit's size would take).
#[cfg(any(feature = "image", feature = "llm"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBudget {
    max_bytes: u64,
    used: u64,
}

#[cfg(any(feature = "image", feature = "llm"))]
impl ReadBudget {
    /// A budget of `max_bytes` for all of a node's reads.
    pub(crate) fn new(max_bytes: u64) -> Self {
        ReadBudget { max_bytes, used: 0 }
    }

    /// Reads `asset` ([`read_asset`]) within what is left of the budget. A file its record
    /// says is larger than what is left, once an earlier read took some, is refused unread,
    /// naming it, the bytes taken and the limit; any file is read no further than what is left.
    pub(crate) async fn read(
        &mut self,
        ctx: &NodeContext,
        handle: &str,
        asset: &FileAsset,
    ) -> Result<Bytes, NodeError> {
        let left = self.max_bytes.saturating_sub(self.used);
        if self.used > 0 && asset.size > left {
            return Err(NodeError::input(
                handle,
                format!(
                    "{} is {} bytes: with the {} bytes of the node's other inputs, over the \
                     {}-byte limit for all of them",
                    named(asset),
                    asset.size,
                    self.used,
                    self.max_bytes
                ),
            ));
        }
        let bytes = read_asset(ctx, handle, asset, left).await?;
        self.used = self.used.saturating_add(bytes.len() as u64);
        Ok(bytes)
    }
}

/// Reads the bytes of an asset through the context's asset store, if there are at most
/// `max_bytes` of them ([`AssetStore::read_limited`]: a larger asset is refused without being
/// read whole). A missing asset, or one over the limit, is an input error naming `handle` and
/// the asset (and the limit); the latter's source is core's
/// [`AssetTooLarge`](gatewai_core::Error::AssetTooLarge).
///
/// [`AssetStore::read_limited`]: gatewai_core::AssetStore::read_limited
pub async fn read_asset(
    ctx: &NodeContext,
    handle: &str,
    asset: &FileAsset,
    max_bytes: u64,
) -> Result<Bytes, NodeError> {
    ctx.assets()
        .read_limited(asset, max_bytes)
        .await
        .map_err(|e| match e {
            gatewai_core::Error::AssetTooLarge {
                max_bytes, size, ..
            } => {
                let what = match size {
                    Some(size) => format!("is {size} bytes, over the {max_bytes}-byte limit"),
                    None => format!("is larger than the {max_bytes}-byte limit"),
                };
                NodeError::input(handle, format!("{} {what}", named(asset))).with_source(e)
            }
            e => {
                let err = NodeError::from(e);
                match err.kind() {
                    ErrorKind::NotFound => NodeError::input(
                        handle,
                        format!(
                            "asset `{}` not found in the asset store",
                            crate::error::shown(&asset.id)
                        ),
                    ),
                    _ => err,
                }
            }
        })
}

/// An asset as a message names it: `` asset `<id>` `` and its name when it has one, both
/// quoted with [`shown`](crate::error::shown).
pub(crate) fn named(asset: &FileAsset) -> String {
    let id = crate::error::shown(&asset.id);
    match asset.name.trim() {
        "" => format!("asset `{id}`"),
        name => format!("asset `{id}` (`{}`)", crate::error::shown(&name)),
    }
}

/// The media asset on input `handle` and its bytes (at most `max_bytes` of them, see
/// [`read_asset`]), checked against the accepted data types. A missing value, a non-file
/// value, or a file of another type (judged by the item's type and, for the generic `File`
/// type, by the asset's mime type) is an input error naming the handle.
pub async fn read_input_media(
    ctx: &NodeContext,
    inputs: &Inputs,
    handle: &str,
    accepted: &[DataType],
    max_bytes: u64,
) -> Result<(FileAsset, DataType, Bytes), NodeError> {
    let item = inputs.require(handle)?;
    let asset = item.as_asset().ok_or_else(|| {
        NodeError::input(handle, format!("expected a file, got {}", item.data_type))
    })?;
    let data_type = match item.data_type {
        DataType::File => data_type_for_mime(&asset.mime_type).unwrap_or(DataType::File),
        t => t,
    };
    if !accepted.contains(&data_type) {
        let names: Vec<&str> = accepted.iter().map(|t| t.as_str()).collect();
        return Err(NodeError::input(
            handle,
            format!("expected {}, got {data_type}", names.join(" or ")),
        ));
    }
    let bytes = read_asset(ctx, handle, asset, max_bytes).await?;
    if bytes.is_empty() {
        return Err(NodeError::input(handle, "the file is empty"));
    }
    Ok((asset.clone(), data_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_types_map_onto_data_types() {
        assert_eq!(data_type_for_mime("image/png"), Some(DataType::Image));
        assert_eq!(data_type_for_mime("video/mp4"), Some(DataType::Video));
        assert_eq!(data_type_for_mime("audio/mpeg"), Some(DataType::Audio));
        assert_eq!(data_type_for_mime("application/pdf"), None);
    }

    #[test]
    fn mime_comes_from_the_bytes() {
        let png_magic = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(detect_mime(png_magic), Some("image/png"));
        assert_eq!(detect_mime(b"just some text"), None);
    }
}
