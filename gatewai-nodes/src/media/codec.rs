//! Decoding under limits and encoding with the fast encoders.

use gatewai_core::{ErrorKind, NodeError};
use image::{DynamicImage, ImageError, ImageFormat, ImageReader};
use std::io::Cursor;

/// Limits on decoded images, so that untrusted bytes cannot exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The most pixels (width × height) an image may have.
    pub max_pixels: u64,
    /// The longest side, in pixels.
    pub max_side: u32,
    /// The most bytes the decoder may allocate at once.
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    /// 100 megapixels, 30 000 pixels a side, 1 GiB of decoder allocations.
    fn default() -> Self {
        ImageLimits {
            max_pixels: 100_000_000,
            max_side: 30_000,
            max_alloc: 1 << 30,
        }
    }
}

/// The encoding of a result image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// PNG, fast compression.
    Png,
    /// JPEG, quality 90.
    Jpeg,
}

impl OutputFormat {
    /// JPEG when the source was JPEG and the result has no transparency; PNG otherwise.
    pub fn for_result(source: Option<ImageFormat>, image: &DynamicImage) -> Self {
        if source == Some(ImageFormat::Jpeg) && !image.color().has_alpha() {
            OutputFormat::Jpeg
        } else {
            OutputFormat::Png
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg => "jpg",
        }
    }
}

/// Decodes `bytes` as an image under `limits`. Unknown formats, corrupt or truncated data and
/// images over the limits are input errors naming `handle`. Returns the image and the format it
/// was in.
pub fn decode_image(
    handle: &str,
    bytes: &[u8],
    limits: &ImageLimits,
) -> Result<(DynamicImage, Option<ImageFormat>), NodeError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| NodeError::input(handle, format!("cannot read the image: {e}")))?;
    let format = reader.format();
    if format.is_none() {
        return Err(NodeError::input(
            handle,
            "not an image in a supported format (PNG, JPEG, WebP, GIF)",
        ));
    }
    // Check the header's size before allocating anything for the pixels.
    let (w, h) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .and_then(|r| r.into_dimensions().map_err(std::io::Error::other))
        .map_err(|e| NodeError::input(handle, format!("corrupt image header: {e}")))?;
    check_size(handle, w, h, limits)?;
    let mut reader = reader;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let image = reader.decode().map_err(|e| match e {
        ImageError::Limits(l) => NodeError::input(handle, format!("image too large: {l}")),
        ImageError::Unsupported(u) => NodeError::input(handle, format!("unsupported image: {u}")),
        other => NodeError::input(handle, format!("corrupt or truncated image: {other}")),
    })?;
    Ok((image, format))
}

/// An input error when `w`×`h` is over the limits.
pub(crate) fn check_size(
    handle: &str,
    w: u32,
    h: u32,
    limits: &ImageLimits,
) -> Result<(), NodeError> {
    let pixels = u64::from(w) * u64::from(h);
    if w == 0 || h == 0 {
        return Err(NodeError::input(
            handle,
            format!("the image is {w}×{h} pixels"),
        ));
    }
    if w > limits.max_side || h > limits.max_side || pixels > limits.max_pixels {
        return Err(NodeError::input(
            handle,
            format!(
                "image too large: {w}×{h} pixels (the limit is {} pixels, {} a side)",
                limits.max_pixels, limits.max_side
            ),
        ));
    }
    Ok(())
}

/// Encodes `image` as `format`.
pub fn encode_image(image: &DynamicImage, format: OutputFormat) -> Result<Vec<u8>, NodeError> {
    let fail = |e: &dyn std::fmt::Display| {
        NodeError::new(
            ErrorKind::Internal,
            format!("cannot encode the result: {e}"),
        )
    };
    let mut out = Vec::new();
    match format {
        OutputFormat::Jpeg => {
            let (w, h) = (image.width(), image.height());
            let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
                (Ok(w), Ok(h)) => (w, h),
                // Past JPEG's 65 535-pixel side, fall back to PNG's encoder for the error text.
                _ => return encode_image(image, OutputFormat::Png),
            };
            let encoder = jpeg_encoder::Encoder::new(&mut out, 90);
            match image {
                DynamicImage::ImageLuma8(gray) => {
                    encoder.encode(gray.as_raw(), w16, h16, jpeg_encoder::ColorType::Luma)
                }
                DynamicImage::ImageRgb8(rgb) => {
                    encoder.encode(rgb.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
                }
                other => {
                    let rgb = other.to_rgb8();
                    encoder.encode(rgb.as_raw(), w16, h16, jpeg_encoder::ColorType::Rgb)
                }
            }
            .map_err(|e| fail(&e))?;
        }
        OutputFormat::Png => {
            let encoder = image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Adaptive,
            );
            // 16-bit and float images are written as 8-bit.
            let image = match image {
                DynamicImage::ImageLuma8(_)
                | DynamicImage::ImageLumaA8(_)
                | DynamicImage::ImageRgb8(_)
                | DynamicImage::ImageRgba8(_) => std::borrow::Cow::Borrowed(image),
                other if other.color().has_alpha() => {
                    std::borrow::Cow::Owned(DynamicImage::ImageRgba8(other.to_rgba8()))
                }
                other => std::borrow::Cow::Owned(DynamicImage::ImageRgb8(other.to_rgb8())),
            };
            image.write_with_encoder(encoder).map_err(|e| fail(&e))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    #[test]
    fn round_trips_png_pixels_exactly() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(7, 5, |x, y| {
            Rgb([x as u8 * 30, y as u8 * 40, 7])
        }));
        let png = encode_image(&img, OutputFormat::Png).unwrap();
        let (back, format) = decode_image("image", &png, &ImageLimits::default()).unwrap();
        assert_eq!(format, Some(ImageFormat::Png));
        assert_eq!(back.to_rgb8(), img.to_rgb8());
    }

    #[test]
    fn jpeg_stays_jpeg_unless_transparent() {
        let rgb = DynamicImage::ImageRgb8(RgbImage::new(2, 2));
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::new(2, 2));
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::Jpeg), &rgb),
            OutputFormat::Jpeg
        );
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::Jpeg), &rgba),
            OutputFormat::Png
        );
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::WebP), &rgb),
            OutputFormat::Png
        );
        let jpeg = encode_image(&rgb, OutputFormat::Jpeg).unwrap();
        assert_eq!(crate::media_util::detect_mime(&jpeg), Some("image/jpeg"));
    }

    #[test]
    fn oversized_headers_are_refused_before_decoding() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(20, 20));
        let png = encode_image(&img, OutputFormat::Png).unwrap();
        let small = ImageLimits {
            max_pixels: 100,
            ..ImageLimits::default()
        };
        let err = decode_image("image", &png, &small).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("too large"), "{err}");
    }
}
