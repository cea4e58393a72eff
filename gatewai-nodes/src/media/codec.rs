//! Decoding under limits and encoding with the fast encoders.

use gatewai_core::{ErrorKind, NodeError};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
use std::io::Cursor;

/// Limits on the images a node reads and decodes, so that untrusted bytes cannot exhaust
/// memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// The largest input image file, in bytes, read from the asset store: a larger one is an
    /// input error naming the asset and the limit, refused without being read whole
    /// ([`read_asset`](crate::media_util::read_asset)). The Compositor's layer files are held
    /// to it together.
    pub max_bytes: u64,
    /// The most pixels (width × height) an image may have.
    pub max_pixels: u64,
    /// The longest side, in pixels.
    pub max_side: u32,
    /// The most bytes the decoder may allocate at once.
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    /// Files of 100 MiB ([`DEFAULT_MAX_MEDIA_BYTES`], the limit of the File node's imports),
    /// 100 megapixels, 30 000 pixels a side, 1 GiB of decoder allocations.
    ///
    /// [`DEFAULT_MAX_MEDIA_BYTES`]: crate::media_util::DEFAULT_MAX_MEDIA_BYTES
    fn default() -> Self {
        ImageLimits {
            max_bytes: crate::media_util::DEFAULT_MAX_MEDIA_BYTES,
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
    /// JPEG at a quality (1–100).
    Jpeg(u8),
}

/// The JPEG quality used when the source's cannot be estimated.
pub const DEFAULT_JPEG_QUALITY: u8 = 90;

/// Table 0 with 8-bit entries from a DQT segment's payload (which may hold several tables).
fn luma_table(segment: &[u8]) -> Option<&[u8]> {
    let mut j = 0;
    while j < segment.len() {
        let (precision, id) = (segment[j] >> 4, segment[j] & 0x0f);
        let size = if precision == 0 { 64 } else { 128 };
        if id == 0 && precision == 0 {
            return segment.get(j + 1..j + 1 + size);
        }
        j += 1 + size;
    }
    None
}

/// The IJG quality (1–100) a JPEG was most likely saved with, estimated from its luminance
/// quantisation table the way libjpeg scales the standard one; `None` when `bytes` are not a
/// JPEG or carry no 8-bit table.
pub fn jpeg_quality(bytes: &[u8]) -> Option<u8> {
    const STANDARD_LUMA: [u32; 64] = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
        56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
        104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ];
    if bytes.get(..2) != Some(&[0xff, 0xd8]) {
        return None;
    }
    // Walk the markers up to the first DQT holding table 0 with 8-bit entries.
    let mut i = 2;
    let table: &[u8] = loop {
        if bytes.get(i) != Some(&0xff) {
            return None;
        }
        let marker = *bytes.get(i + 1)?;
        let len = usize::from(u16::from_be_bytes([*bytes.get(i + 2)?, *bytes.get(i + 3)?]));
        let segment = bytes.get(i + 4..i + 2 + len)?;
        if marker == 0xdb
            && let Some(table) = luma_table(segment)
        {
            break table;
        }
        if marker == 0xda {
            return None;
        }
        i += 2 + len;
    };
    // Table entries in any order: compare sums (zig-zag order does not matter).
    let actual: u32 = table.iter().map(|v| u32::from(*v)).sum();
    (1..=100u32)
        .min_by_key(|q| {
            let scale = if *q < 50 { 5000 / q } else { 200 - 2 * q };
            let expected: u32 = STANDARD_LUMA
                .iter()
                .map(|v| ((v * scale + 50) / 100).clamp(1, 255))
                .sum();
            expected.abs_diff(actual)
        })
        .and_then(|q| u8::try_from(q).ok())
}

impl OutputFormat {
    /// JPEG at the source's quality (estimated from `source_bytes`, else
    /// [`DEFAULT_JPEG_QUALITY`]) when the source was JPEG and the result has no transparency;
    /// PNG otherwise.
    pub fn for_result(
        source: Option<ImageFormat>,
        source_bytes: &[u8],
        image: &DynamicImage,
    ) -> Self {
        if source == Some(ImageFormat::Jpeg) && !image.color().has_alpha() {
            OutputFormat::Jpeg(jpeg_quality(source_bytes).unwrap_or(DEFAULT_JPEG_QUALITY))
        } else {
            OutputFormat::Png
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Png => "png",
            OutputFormat::Jpeg(_) => "jpg",
        }
    }
}

/// Decodes `bytes` as an image under `limits`, turned upright as its EXIF orientation says
/// (a phone photo stored sideways with "rotate 90°" in its metadata comes out as it is shown,
/// as browsers show it): what a user crops or resizes on the canvas is what the node works on.
/// Unknown formats, corrupt or truncated data and images over the limits are input errors
/// naming `handle`. Returns the image and the format it was in.
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
    reader.limits(image_limits.clone());
    let refused = |e: ImageError| match e {
        ImageError::Limits(l) => NodeError::input(handle, format!("image too large: {l}")),
        ImageError::Unsupported(u) => NodeError::input(handle, format!("unsupported image: {u}")),
        other => NodeError::input(handle, format!("corrupt or truncated image: {other}")),
    };
    let mut decoder = reader.into_decoder().map_err(refused)?;
    // As `ImageReader::decode` does: the pixel buffer counts against the allocation limit.
    image_limits
        .reserve(decoder.total_bytes())
        .map_err(refused)?;
    // Unreadable metadata is no reason to refuse the pixels: they are shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(refused)?;
    image.apply_orientation(orientation);
    Ok((image, format))
}

/// An input error when `w`×`h` is empty or over the limits.
pub(crate) fn check_size(
    handle: &str,
    w: u32,
    h: u32,
    limits: &ImageLimits,
) -> Result<(), NodeError> {
    if w == 0 || h == 0 {
        return Err(NodeError::input(
            handle,
            format!("the image is {w}×{h} pixels"),
        ));
    }
    match over_limits(w, h, limits) {
        Some(size) => Err(NodeError::input(handle, format!("image too large: {size}"))),
        None => Ok(()),
    }
}

/// `w`×`h` and the limits it is over, for an error message; `None` when it is within them.
pub(crate) fn over_limits(w: u32, h: u32, limits: &ImageLimits) -> Option<String> {
    let pixels = u64::from(w) * u64::from(h);
    (w > limits.max_side || h > limits.max_side || pixels > limits.max_pixels).then(|| {
        format!(
            "{w}×{h} pixels (the limit is {} pixels, {} a side)",
            limits.max_pixels, limits.max_side
        )
    })
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
        OutputFormat::Jpeg(quality) => {
            let (w, h) = (image.width(), image.height());
            let (w16, h16) = match (u16::try_from(w), u16::try_from(h)) {
                (Ok(w), Ok(h)) => (w, h),
                // Past JPEG's 65 535-pixel side, fall back to PNG's encoder for the error text.
                _ => return encode_image(image, OutputFormat::Png),
            };
            let encoder = jpeg_encoder::Encoder::new(&mut out, quality.clamp(1, 100));
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
            OutputFormat::for_result(Some(ImageFormat::Jpeg), &[], &rgb),
            OutputFormat::Jpeg(DEFAULT_JPEG_QUALITY)
        );
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::Jpeg), &[], &rgba),
            OutputFormat::Png
        );
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::WebP), &[], &rgb),
            OutputFormat::Png
        );
        let jpeg = encode_image(&rgb, OutputFormat::Jpeg(90)).unwrap();
        assert_eq!(crate::media_util::detect_mime(&jpeg), Some("image/jpeg"));
        assert_eq!(
            OutputFormat::for_result(Some(ImageFormat::Jpeg), &jpeg, &rgb),
            OutputFormat::Jpeg(90)
        );
    }

    #[test]
    fn jpeg_quality_is_estimated_from_the_tables() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_fn(16, 16, |x, y| {
            Rgb([x as u8 * 16, y as u8 * 16, 99])
        }));
        for q in [30u8, 50, 75, 85, 95] {
            // Our encoder (jpeg-encoder) and the image crate's both write IJG-scaled tables.
            let ours = encode_image(&img, OutputFormat::Jpeg(q)).unwrap();
            assert_eq!(jpeg_quality(&ours), Some(q), "jpeg-encoder q{q}");
            let mut theirs = Vec::new();
            img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut theirs,
                q,
            ))
            .unwrap();
            assert_eq!(jpeg_quality(&theirs), Some(q), "image crate q{q}");
        }
        assert_eq!(jpeg_quality(b"not a jpeg"), None);
        assert_eq!(jpeg_quality(&[0xff, 0xd8, 0xff]), None);
    }

    /// A 32×16 JPEG, its top-left 8×8 block red and the rest blue, whose EXIF says "rotate
    /// 90° clockwise to show" (orientation 6), as phones store portrait photos.
    fn sideways_jpeg() -> Vec<u8> {
        let img = RgbImage::from_fn(32, 16, |x, y| match x < 8 && y < 8 {
            true => Rgb([255, 0, 0]),
            false => Rgb([0, 0, 255]),
        });
        // "Exif\0\0", a little-endian TIFF header, one IFD with one entry: Orientation
        // (0x0112), SHORT, count 1, value 6; no next IFD.
        let mut exif = b"Exif\0\0II\x2a\0\x08\0\0\0\x01\0".to_vec();
        exif.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut out, 95);
        encoder.add_app_segment(1, &exif).unwrap();
        encoder
            .encode(img.as_raw(), 32, 16, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        out
    }

    #[test]
    fn an_image_is_decoded_upright_as_its_exif_orientation_says() {
        let jpeg = sideways_jpeg();
        let (image, format) = decode_image("image", &jpeg, &ImageLimits::default()).unwrap();
        assert_eq!(format, Some(ImageFormat::Jpeg));
        // Turned a quarter clockwise: 16×32, the red block now at the top right.
        assert_eq!((image.width(), image.height()), (16, 32));
        let rgb = image.to_rgb8();
        let red = |x, y| {
            let p = rgb.get_pixel(x, y);
            p[0] > 200 && p[2] < 60
        };
        assert!(red(12, 4), "{:?}", rgb.get_pixel(12, 4));
        assert!(!red(4, 4) && !red(12, 20), "the rest stays blue");
        // The asset's recorded size is the upright one too.
        assert_eq!(crate::media_util::image_dimensions(&jpeg), Some((16, 32)));
        // Without the EXIF segment nothing turns.
        let plain = encode_image(
            &DynamicImage::ImageRgb8(RgbImage::new(32, 16)),
            OutputFormat::Jpeg(90),
        )
        .unwrap();
        let (image, _) = decode_image("image", &plain, &ImageLimits::default()).unwrap();
        assert_eq!((image.width(), image.height()), (32, 16));
        assert_eq!(crate::media_util::image_dimensions(&plain), Some((32, 16)));
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
