//! The **Blur** node.

use super::codec::ImageLimits;
use super::config::{field_error, number_in};
use super::transform_input;
use async_trait::async_trait;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Node, NodeContext, NodeError, NodeTemplate, Outputs,
};
use image::DynamicImage;
use serde_json::{Value, json};

/// Blurs `image` with an almost-Gaussian blur (three box passes) of radius `size` pixels
/// (σ = size / 2); 0 leaves it unchanged.
pub(crate) fn blur_image(image: DynamicImage, size: f64) -> DynamicImage {
    if size <= 0.0 {
        return image;
    }
    let sigma = (size / 2.0) as f32;
    if image.color().has_alpha() {
        DynamicImage::ImageRgba8(image::imageops::fast_blur(&image.to_rgba8(), sigma))
    } else {
        DynamicImage::ImageRgb8(image::imageops::fast_blur(&image.to_rgb8(), sigma))
    }
}

/// The **Blur** node: blurs the `image` input by `size` (0–100, the radius in pixels).
#[derive(Debug)]
pub struct Blur {
    template: NodeTemplate,
    limits: ImageLimits,
}

impl Blur {
    /// The node with default limits.
    pub fn new() -> Self {
        Self::with_limits(ImageLimits::default())
    }

    /// The node with the given decoding limits.
    pub fn with_limits(limits: ImageLimits) -> Self {
        let template = NodeTemplate::new("Blur", "Blur", "Image")
            .description("Blurs an image.")
            .transient()
            .aliases(&["blur"])
            .handle(HandleTemplate::input("image", "Image", &[DataType::Image]).required())
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(json!({ "size": 0 }))
            .import_hook(|data| {
                Ok(Value::Object(super::config::rename_fields(
                    data,
                    &[("blur", "size"), ("radius", "size")],
                )))
            });
        Blur { template, limits }
    }
}

impl Default for Blur {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Blur {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        number_in(config, "size", 0.0..=100.0)
            .err()
            .into_iter()
            .collect()
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let size = number_in(ctx.raw_config(), "size", 0.0..=100.0)
            .map_err(field_error)?
            .unwrap_or(0.0);
        transform_input(ctx, inputs, self.limits, "blurred", move |image| {
            Ok(blur_image(image, size))
        })
        .await
    }
}
