//! Media speed: decode → crop → encode of a 4000×3000 JPEG and PNG with the Crop node's code
//! path, against ImageMagick's `convert` doing the same crop on the same file in the same run;
//! and the encoder and resize choices (image crate defaults against the fast paths we use) on a
//! 1920×1080 image.
//!
//! ImageMagick must be the real one (`/usr/bin/convert` from Debian's `imagemagick`); when it is
//! missing, its half is skipped with a note.

use criterion::{Criterion, criterion_group, criterion_main};
use gatewai_nodes::media::{
    ImageLimits, OutputFormat, crop_rect, decode_image, encode_image, resize_image,
};
use image::{DynamicImage, ImageFormat, RgbImage};
use std::hint::black_box;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The crop every contender does: the middle half in each direction.
const CROP: [f64; 4] = [25.0, 25.0, 50.0, 50.0];

/// A photo-like test image: smooth gradients with mild noise (xorshift, fixed seed).
fn photo(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 9) as i32 - 4;
        let c = |v: u32| (v as i32 + noise).clamp(0, 255) as u8;
        image::Rgb([c(x * 255 / w), c(y * 255 / h), c(((x + y) / 16) % 256)])
    })
}

fn encode_with_image(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// The Crop node's pixel path: decode under limits, crop, encode (JPEG stays JPEG, else PNG).
fn ours(bytes: &[u8]) -> Vec<u8> {
    let limits = ImageLimits::default();
    let (image, source) = decode_image("image", bytes, &limits).expect("decode");
    let config = serde_json::json!({
        "leftPercentage": CROP[0], "topPercentage": CROP[1],
        "widthPercentage": CROP[2], "heightPercentage": CROP[3],
    });
    let rect = crop_rect(image.width(), image.height(), &config).expect("rect");
    let cropped = image.crop_imm(rect.left, rect.top, rect.width, rect.height);
    let format = OutputFormat::for_result(source, bytes, &cropped);
    encode_image(&cropped, format).expect("encode")
}

/// The real ImageMagick `convert`, if installed (the one in /usr/local/bin may be a stand-in).
fn imagemagick() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/convert");
    let out = Command::new(&path).arg("-version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .contains("ImageMagick")
        .then_some(path)
}

fn magick_crop(convert: &Path, input: &Path, output: &Path) {
    let geometry = "2000x1500+1000+750";
    let status = Command::new(convert)
        .arg(input)
        .args(["-crop", geometry, "+repage"])
        .arg(output)
        .status()
        .expect("run convert");
    assert!(status.success(), "convert failed");
}

/// Median wall time of `runs` calls.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// Median wall times of `a` and `b`, run alternately `runs` times each.
fn interleaved(runs: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let mut times_a = Vec::with_capacity(runs);
    let mut times_b = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        a();
        times_a.push(start.elapsed());
        let start = Instant::now();
        b();
        times_b.push(start.elapsed());
    }
    times_a.sort();
    times_b.sort();
    (times_a[runs / 2], times_b[runs / 2])
}

fn crop_against_imagemagick(c: &mut Criterion) {
    let img = photo(4000, 3000);
    let dir = tempfile::tempdir().expect("tempdir");
    let files = [
        (
            "jpeg",
            encode_with_image(&img, ImageFormat::Jpeg),
            "in.jpg",
            "out.jpg",
        ),
        (
            "png",
            encode_with_image(&img, ImageFormat::Png),
            "in.png",
            "out.png",
        ),
    ];
    let convert = imagemagick();
    if convert.is_none() {
        println!("note: ImageMagick (/usr/bin/convert) is missing; its half is skipped");
    }
    let mut group = c.benchmark_group("crop_4000x3000");
    group.sample_size(10);
    for (kind, bytes, input, output) in &files {
        let input = dir.path().join(input);
        let output = dir.path().join(output);
        std::fs::write(&input, bytes).expect("write input");
        // Sanity: both produce a 2000×1500 image.
        let ours_out = ours(bytes);
        let decoded = image::load_from_memory(&ours_out).expect("our output decodes");
        assert_eq!((decoded.width(), decoded.height()), (2000, 1500));
        group.bench_function(format!("gatewai_{kind}"), |b| {
            b.iter(|| black_box(ours(black_box(bytes))))
        });
        let ours_time = median(7, || {
            black_box(ours(bytes));
        });
        let limits = ImageLimits::default();
        let (decoded, source) = decode_image("image", bytes, &limits).expect("decode");
        let decode_time = median(5, || {
            black_box(decode_image("image", bytes, &limits).expect("decode"));
        });
        let cropped = decoded.crop_imm(1000, 750, 2000, 1500);
        let format = OutputFormat::for_result(source, bytes, &cropped);
        let encode_time = median(5, || {
            black_box(encode_image(&cropped, format).expect("encode"));
        });
        println!(
            "crop {kind} 4000x3000, gatewai breakdown: decode {:.1} ms, encode 2000x1500 {:.1} ms",
            decode_time.as_secs_f64() * 1e3,
            encode_time.as_secs_f64() * 1e3
        );
        if let Some(convert) = &convert {
            magick_crop(convert, &input, &output);
            let theirs = image::open(&output).expect("convert output decodes");
            assert_eq!((theirs.width(), theirs.height()), (2000, 1500));
            group.bench_function(format!("imagemagick_{kind}"), |b| {
                b.iter(|| magick_crop(convert, &input, &output))
            });
            // Interleaved so both see the same machine load (the box is shared).
            let (ours_time, their_time) = interleaved(
                9,
                || {
                    black_box(ours(bytes));
                },
                || magick_crop(convert, &input, &output),
            );
            println!(
                "crop {kind} 4000x3000: gatewai {:.1} ms, imagemagick convert {:.1} ms, ratio {:.2}x (input {} KB, our output {} KB, theirs {} KB)",
                ours_time.as_secs_f64() * 1e3,
                their_time.as_secs_f64() * 1e3,
                their_time.as_secs_f64() / ours_time.as_secs_f64(),
                bytes.len() / 1024,
                ours_out.len() / 1024,
                std::fs::metadata(&output)
                    .map(|m| m.len() / 1024)
                    .unwrap_or(0),
            );
        } else {
            println!(
                "crop {kind} 4000x3000: gatewai {:.1} ms (no ImageMagick to compare)",
                ours_time.as_secs_f64() * 1e3
            );
        }
    }
    group.finish();
}

/// The choices behind the encoders and the resize: image crate defaults against what we use.
fn encoder_choices(c: &mut Criterion) {
    let img = DynamicImage::ImageRgb8(photo(1920, 1080));
    let mut group = c.benchmark_group("encode_1920x1080");
    group.sample_size(10);
    let png_default = |img: &DynamicImage| {
        let mut out = Vec::new();
        let enc = image::codecs::png::PngEncoder::new_with_quality(
            &mut out,
            image::codecs::png::CompressionType::Default,
            image::codecs::png::FilterType::Adaptive,
        );
        img.write_with_encoder(enc).expect("png");
        out
    };
    let jpeg_image_crate = |img: &DynamicImage| {
        let mut out = Vec::new();
        let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
        img.write_with_encoder(enc).expect("jpeg");
        out
    };
    group.bench_function("png_image_default", |b| b.iter(|| png_default(&img)));
    group.bench_function("png_fast_ours", |b| {
        b.iter(|| encode_image(&img, OutputFormat::Png).expect("png"))
    });
    group.bench_function("jpeg_image_crate_q90", |b| {
        b.iter(|| jpeg_image_crate(&img))
    });
    group.bench_function("jpeg_encoder_simd_q90_ours", |b| {
        b.iter(|| encode_image(&img, OutputFormat::Jpeg(90)).expect("jpeg"))
    });
    group.bench_function("resize_lanczos3_image_crate", |b| {
        b.iter(|| img.resize_exact(960, 540, image::imageops::FilterType::Lanczos3))
    });
    group.bench_function("resize_lanczos3_fast_image_resize_ours", |b| {
        b.iter(|| resize_image(&img, 960, 540).expect("resize"))
    });
    group.finish();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (a, b) = (
        median(5, || drop(png_default(&img))),
        median(5, || drop(encode_image(&img, OutputFormat::Png))),
    );
    let (sa, sb) = (
        png_default(&img).len(),
        encode_image(&img, OutputFormat::Png).map_or(0, |v| v.len()),
    );
    println!(
        "png 1920x1080: default {:.1} ms ({} KB), fast {:.1} ms ({} KB): {:.1}x faster, {:+.0}% size",
        ms(a),
        sa / 1024,
        ms(b),
        sb / 1024,
        ms(a) / ms(b),
        (sb as f64 / sa as f64 - 1.0) * 100.0
    );
    let (a, b) = (
        median(5, || drop(jpeg_image_crate(&img))),
        median(5, || drop(encode_image(&img, OutputFormat::Jpeg(90)))),
    );
    println!(
        "jpeg q90 1920x1080: image crate {:.1} ms, jpeg-encoder {:.1} ms: {:.1}x faster",
        ms(a),
        ms(b),
        ms(a) / ms(b)
    );
    let (a, b) = (
        median(5, || {
            drop(img.resize_exact(960, 540, image::imageops::FilterType::Lanczos3))
        }),
        median(5, || drop(resize_image(&img, 960, 540))),
    );
    println!(
        "lanczos3 1920x1080 -> 960x540: image crate {:.1} ms, fast_image_resize {:.1} ms: {:.1}x faster",
        ms(a),
        ms(b),
        ms(a) / ms(b)
    );
}

criterion_group!(benches, crop_against_imagemagick, encoder_choices);
criterion_main!(benches);
