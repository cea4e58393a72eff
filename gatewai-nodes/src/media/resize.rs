//! The **Resize** node, and the Lanczos3 resize (`fast_image_resize`, ~10x faster than the image
//! crate's on this machine) the Compositor shares.

use super::codec::ImageLimits;
use super::config::{FieldError, boolean, field_error, pixels};
use super::transform_input;
use async_trait::async_trait;
use fast_image_resize::images::Image as FirImage;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Node, NodeContext, NodeError, NodeTemplate, Outputs,
};
use image::{DynamicImage, RgbImage, RgbaImage};
use serde_json::{Value, json};

/// Resizes `image` to exactly `width`×`height` with Lanczos3 (alpha-aware for images with
/// transparency).
pub fn resize_image(
    image: &DynamicImage,
    width: u32,
    height: u32,
) -> Result<DynamicImage, NodeError> {
    if image.width() == width && image.height() == height {
        return Ok(image.clone());
    }
    let fail = |e: &dyn std::fmt::Display| NodeError::internal(format!("resize failed: {e}"));
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    let mut resizer = Resizer::new();
    if image.color().has_alpha() {
        let src = image.to_rgba8();
        let (sw, sh) = src.dimensions();
        let src =
            FirImage::from_vec_u8(sw, sh, src.into_raw(), PixelType::U8x4).map_err(|e| fail(&e))?;
        let mut dst = FirImage::new(width, height, PixelType::U8x4);
        resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| fail(&e))?;
        RgbaImage::from_raw(width, height, dst.into_vec())
            .map(DynamicImage::ImageRgba8)
            .ok_or_else(|| fail(&"buffer size mismatch"))
    } else {
        let src = image.to_rgb8();
        let (sw, sh) = src.dimensions();
        let src =
            FirImage::from_vec_u8(sw, sh, src.into_raw(), PixelType::U8x3).map_err(|e| fail(&e))?;
        let mut dst = FirImage::new(width, height, PixelType::U8x3);
        resizer
            .resize(&src, &mut dst, &options)
            .map_err(|e| fail(&e))?;
        RgbImage::from_raw(width, height, dst.into_vec())
            .map(DynamicImage::ImageRgb8)
            .ok_or_else(|| fail(&"buffer size mismatch"))
    }
}

/// A Resize config, checked.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ResizeConfig {
    width: Option<u32>,
    height: Option<u32>,
    maintain_aspect: bool,
}

impl ResizeConfig {
    fn parse(config: &Value, max_side: u32) -> Result<Self, Vec<FieldError>> {
        let width = pixels(config, "width", max_side);
        let height = pixels(config, "height", max_side);
        let maintain = boolean(config, "maintainAspect");
        match (width, height, maintain) {
            (Ok(width), Ok(height), Ok(maintain)) => Ok(ResizeConfig {
                width,
                height,
                maintain_aspect: maintain.unwrap_or(true),
            }),
            (w, h, m) => Err([w.err(), h.err(), m.err()].into_iter().flatten().collect()),
        }
    }

    /// The target size for a `w`×`h` image: one side given scales the other to keep the aspect;
    /// both given with `maintainAspect` fits inside the box; without it, exactly that size.
    fn target(&self, w: u32, h: u32) -> (u32, u32) {
        let scaled = |n: u32, factor: f64| ((f64::from(n) * factor).round() as u32).max(1);
        match (self.width, self.height) {
            (None, None) => (w, h),
            (Some(tw), None) => (tw, scaled(h, f64::from(tw) / f64::from(w))),
            (None, Some(th)) => (scaled(w, f64::from(th) / f64::from(h)), th),
            (Some(tw), Some(th)) if self.maintain_aspect => {
                let factor = (f64::from(tw) / f64::from(w)).min(f64::from(th) / f64::from(h));
                (scaled(w, factor).min(tw), scaled(h, factor).min(th))
            }
            (Some(tw), Some(th)) => (tw, th),
        }
    }
}

/// The **Resize** node: scales the `image` input to `width`×`height` (either may be left out);
/// `maintainAspect` (default true) keeps the proportions, fitting inside the box when both are
/// given. With neither given, the image passes through unchanged.
#[derive(Debug)]
pub struct Resize {
    template: NodeTemplate,
    limits: ImageLimits,
}

impl Resize {
    /// The node with default limits.
    pub fn new() -> Self {
        Self::with_limits(ImageLimits::default())
    }

    /// The node with the given decoding limits (which also bound the target size).
    pub fn with_limits(limits: ImageLimits) -> Self {
        let template = NodeTemplate::new("Resize", "Resize", "Image")
            .description("Resizes an image.")
            .transient()
            .aliases(&["resize"])
            .handle(HandleTemplate::input("image", "Image", &[DataType::Image]).required())
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(json!({ "maintainAspect": true }))
            .import_hook(|data| {
                Ok(Value::Object(super::config::rename_fields(
                    data,
                    &[("maintain_aspect", "maintainAspect")],
                )))
            });
        Resize { template, limits }
    }
}

impl Default for Resize {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Resize {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        ResizeConfig::parse(config, self.limits.max_side)
            .err()
            .unwrap_or_default()
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config = ResizeConfig::parse(ctx.raw_config(), self.limits.max_side)
            .map_err(|mut p| field_error(p.remove(0)))?;
        if config.width.is_none() && config.height.is_none() {
            let item = inputs.require("image")?;
            if item.data_type != DataType::Image || item.as_asset().is_none() {
                return Err(NodeError::input(
                    "image",
                    format!("expected Image, got {}", item.data_type),
                ));
            }
            return Ok(Outputs::one("result", item.clone()));
        }
        let limits = self.limits;
        transform_input(ctx, inputs, limits, "resized", move |image| {
            let (w, h) = config.target(image.width(), image.height());
            // The error names the size that was set (`height` when only it was).
            let field = if config.width.is_some() {
                "width"
            } else {
                "height"
            };
            if let Some(size) = super::codec::over_limits(w, h, &limits) {
                return Err(NodeError::config(
                    field,
                    format!("the result would be too large: {size}"),
                ));
            }
            resize_image(&image, w, h)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(config: Value, w: u32, h: u32) -> (u32, u32) {
        ResizeConfig::parse(&config, 30_000).unwrap().target(w, h)
    }

    #[test]
    fn target_sizes() {
        assert_eq!(target(json!({"width": 50}), 100, 40), (50, 20));
        assert_eq!(target(json!({"height": 10}), 100, 40), (25, 10));
        assert_eq!(
            target(json!({"width": 50, "height": 50}), 100, 40),
            (50, 20)
        );
        assert_eq!(
            target(
                json!({"width": 50, "height": 50, "maintainAspect": false}),
                100,
                40
            ),
            (50, 50)
        );
        assert_eq!(target(json!({}), 100, 40), (100, 40));
    }

    #[test]
    fn bad_sizes_name_their_field() {
        let node = Resize::new();
        let problems = node.check_config(&json!({"width": 0, "height": 2.5, "maintainAspect": 3}));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["width", "height", "maintainAspect"]);
        assert!(node.check_config(&json!({"width": 10})).is_empty());
    }

    #[test]
    fn resizing_a_solid_image_keeps_its_colour() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(40, 30, image::Rgb([10, 200, 30])));
        let out = resize_image(&img, 13, 7).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), (13, 7));
        assert!(out.pixels().all(|p| p.0 == [10, 200, 30]));
    }
}
