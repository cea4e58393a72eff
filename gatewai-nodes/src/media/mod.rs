//! The still-image nodes: **File** (Gatewai's Import), **Crop**, **Resize**, **Blur**,
//! **Modulate** and **Compositor**.
//!
//! Images move between nodes as file assets. A node reads the bytes of its input asset (up to
//! [`ImageLimits::max_bytes`]: a larger file is an input error naming the asset, refused
//! without being read whole), decodes them under [`ImageLimits`] (a decompression bomb is an
//! input error, not an out-of-memory),
//! turned upright as their EXIF orientation says (a phone's portrait photo is cropped as it is
//! shown, not as it is stored; the stored asset's width and height are the upright ones too),
//! works on the pixels and stores the encoded result as a new asset (upright, with no EXIF). Decoding, pixel work and
//! encoding run on tokio's blocking pool.
//!
//! Output format: a JPEG input without transparency stays JPEG, at the quality the input was
//! saved with (estimated from its quantisation table, as ImageMagick does; 90 when unknown),
//! written with `jpeg-encoder`'s SIMD encoder (~2x faster than the image crate's here);
//! everything else becomes PNG with fast compression (~50x faster than the default level for a
//! larger file). Measured on this machine; see the `media` bench.

mod blur;
mod codec;
mod compositor;
pub(crate) mod config;
mod crop;
mod file;
mod modulate;
mod resize;

pub use blur::Blur;
pub use codec::{
    DEFAULT_JPEG_QUALITY, ImageLimits, OutputFormat, decode_image, encode_image, jpeg_quality,
};
pub use compositor::{Compositor, FONT_LICENSE};
pub use crop::{Crop, CropRect, crop_rect};
pub use file::File;
pub use modulate::Modulate;
pub use resize::{Resize, resize_image};

use crate::media_util::{read_input_media, store_bytes};
use gatewai_core::{DataType, Inputs, Item, NodeContext, NodeError, NodeRegistry, Outputs};
use image::DynamicImage;

/// Registers File, Crop, Resize, Blur, Modulate and Compositor with default limits and the
/// default fetch policy (no private addresses).
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    registry.register(File::new())?;
    registry.register(Crop::new())?;
    registry.register(Resize::new())?;
    registry.register(Blur::new())?;
    registry.register(Modulate::new())?;
    registry.register(Compositor::new())?;
    Ok(())
}

/// Runs `f` on tokio's blocking pool; a panic in it becomes an internal error.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::internal(format!("image work panicked: {e}")))?
}

/// The common shape of the single-input image tools: read the `image` input, decode it, apply
/// `op`, encode (JPEG stays JPEG, else PNG) and store the result on the `result` output.
pub(crate) async fn transform_input(
    ctx: &NodeContext,
    inputs: &Inputs,
    limits: ImageLimits,
    suffix: &str,
    op: impl FnOnce(DynamicImage) -> Result<DynamicImage, NodeError> + Send + 'static,
) -> Result<Outputs, NodeError> {
    let (asset, _, bytes) =
        read_input_media(ctx, inputs, "image", &[DataType::Image], limits.max_bytes).await?;
    let (encoded, format) = blocking(move || {
        let (image, source) = decode_image("image", &bytes, &limits)?;
        let image = op(image)?;
        let format = OutputFormat::for_result(source, &bytes, &image);
        Ok((encode_image(&image, format)?, format))
    })
    .await?;
    let name = format!(
        "{}-{suffix}.{}",
        file_stem(&asset.name, "image"),
        format.extension()
    );
    let stored = store_bytes(ctx, &name, encoded.into()).await?;
    Ok(Outputs::one("result", Item::file(DataType::Image, stored)))
}

/// A file name without directories and extension (`fallback` when nothing is left).
pub(crate) fn file_stem<'a>(name: &'a str, fallback: &'a str) -> &'a str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = match base.rsplit_once('.') {
        Some((s, _)) => s,
        None => base,
    };
    if stem.is_empty() { fallback } else { stem }
}
