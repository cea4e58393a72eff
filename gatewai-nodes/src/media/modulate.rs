//! The **Modulate** node.

use super::codec::ImageLimits;
use super::config::{FieldError, field_error, number_in};
use super::transform_input;
use async_trait::async_trait;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Node, NodeContext, NodeError, NodeTemplate, Outputs,
};
use image::{DynamicImage, Rgba};
use serde_json::{Value, json};

/// A Modulate config: a hue rotation in degrees and three multipliers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Modulation {
    hue: f64,
    saturation: f64,
    lightness: f64,
    brightness: f64,
}

impl Modulation {
    fn parse(config: &Value) -> Result<Self, Vec<FieldError>> {
        let hue = number_in(config, "hue", -360.0..=360.0);
        let factor = |field: &str| number_in(config, field, 0.0..=10.0);
        match (
            hue,
            factor("saturation"),
            factor("lightness"),
            factor("brightness"),
        ) {
            (Ok(h), Ok(s), Ok(l), Ok(b)) => Ok(Modulation {
                hue: h.unwrap_or(0.0),
                saturation: s.unwrap_or(1.0),
                lightness: l.unwrap_or(1.0),
                brightness: b.unwrap_or(1.0),
            }),
            (h, s, l, b) => Err([h.err(), s.err(), l.err(), b.err()]
                .into_iter()
                .flatten()
                .collect()),
        }
    }

    fn is_identity(&self) -> bool {
        self.hue.rem_euclid(360.0) == 0.0
            && self.saturation == 1.0
            && self.lightness == 1.0
            && self.brightness == 1.0
    }

    /// One pixel: RGB × brightness, then in HSL the hue rotated, S × saturation and
    /// L × lightness (each clamped to 0–1). Alpha is kept.
    fn apply(&self, p: Rgba<u8>) -> Rgba<u8> {
        let [r, g, b, a] = p.0;
        let bright = |c: u8| (f64::from(c) / 255.0 * self.brightness).clamp(0.0, 1.0);
        let (h, s, l) = rgb_to_hsl(bright(r), bright(g), bright(b));
        let h = (h + self.hue).rem_euclid(360.0);
        let s = (s * self.saturation).clamp(0.0, 1.0);
        let l = (l * self.lightness).clamp(0.0, 1.0);
        let (r, g, b) = hsl_to_rgb(h, s, l);
        let byte = |c: f64| (c * 255.0).round().clamp(0.0, 255.0) as u8;
        Rgba([byte(r), byte(g), byte(b), a])
    }
}

fn rgb_to_hsl(r: f64, g: f64, b: f64) -> (f64, f64, f64) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let l = (max + min) / 2.0;
    let d = max - min;
    if d == 0.0 {
        return (0.0, 0.0, l);
    }
    let s = d / (1.0 - (2.0 * l - 1.0).abs());
    let h = if max == r {
        60.0 * ((g - b) / d).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / d + 2.0)
    } else {
        60.0 * ((r - g) / d + 4.0)
    };
    (h, s, l)
}

fn hsl_to_rgb(h: f64, s: f64, l: f64) -> (f64, f64, f64) {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let hp = h / 60.0;
    let x = c * (1.0 - (hp.rem_euclid(2.0) - 1.0).abs());
    let (r, g, b) = match hp as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    (r + m, g + m, b + m)
}

/// Applies a modulation to every pixel.
fn modulate_image(image: DynamicImage, m: Modulation) -> DynamicImage {
    if m.is_identity() {
        return image;
    }
    let alpha = image.color().has_alpha();
    let mut rgba = image.to_rgba8();
    for p in rgba.pixels_mut() {
        *p = m.apply(*p);
    }
    let out = DynamicImage::ImageRgba8(rgba);
    if alpha {
        out
    } else {
        DynamicImage::ImageRgb8(out.to_rgb8())
    }
}

/// The **Modulate** node: `hue` (degrees, −360–360), `saturation`, `lightness` and
/// `brightness` (multipliers, 0–10; 1 = unchanged) applied to the `image` input.
#[derive(Debug)]
pub struct Modulate {
    template: NodeTemplate,
    limits: ImageLimits,
}

impl Modulate {
    /// The node with default limits.
    pub fn new() -> Self {
        Self::with_limits(ImageLimits::default())
    }

    /// The node with the given decoding limits.
    pub fn with_limits(limits: ImageLimits) -> Self {
        let template = NodeTemplate::new("Modulate", "Modulate", "Image")
            .description("Changes an image's hue, saturation, lightness and brightness.")
            .transient()
            .aliases(&["modulate"])
            .handle(HandleTemplate::input("image", "Image", &[DataType::Image]).required())
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(json!({ "hue": 0, "saturation": 1, "lightness": 1, "brightness": 1 }));
        Modulate { template, limits }
    }
}

impl Default for Modulate {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Modulate {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        Modulation::parse(config).err().unwrap_or_default()
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let m = Modulation::parse(ctx.raw_config()).map_err(|mut p| field_error(p.remove(0)))?;
        transform_input(ctx, inputs, self.limits, "modulated", move |image| {
            Ok(modulate_image(image, m))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(config: Value) -> Modulation {
        Modulation::parse(&config).unwrap()
    }

    #[test]
    fn pixels_change_as_specified() {
        let red = Rgba([255, 0, 0, 200]);
        assert_eq!(m(json!({"hue": 120})).apply(red), Rgba([0, 255, 0, 200]));
        assert_eq!(m(json!({"hue": -120})).apply(red), Rgba([0, 0, 255, 200]));
        assert_eq!(
            m(json!({"saturation": 0})).apply(red),
            Rgba([128, 128, 128, 200])
        );
        assert_eq!(
            m(json!({"brightness": 0.5})).apply(Rgba([200, 100, 50, 255])),
            Rgba([100, 50, 25, 255])
        );
        assert_eq!(
            m(json!({"lightness": 0})).apply(Rgba([200, 100, 50, 255])),
            Rgba([0, 0, 0, 255])
        );
        let p = Rgba([12, 34, 56, 78]);
        assert_eq!(m(json!({})).apply(p), p);
    }

    #[test]
    fn bad_values_name_their_field() {
        let problems = Modulate::new().check_config(&json!({"hue": "x", "brightness": -1}));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["hue", "brightness"]);
    }
}
