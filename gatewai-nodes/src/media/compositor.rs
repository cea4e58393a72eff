//! The **Compositor** node: image and text layers on a canvas.

use super::blocking;
use super::codec::{
    ImageLimits, OutputFormat, check_size, decode_image, encode_image, over_limits,
};
use super::config::{FieldError, field_error, number, number_in, pixels};
use super::resize::resize_image;
use crate::error::shown;
use crate::media_util::{ReadBudget, store_bytes};
use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use async_trait::async_trait;
use bytes::Bytes;
use gatewai_core::{
    DataType, ErrorKind, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError, NodeTemplate,
    Outputs,
};
use image::{DynamicImage, Rgba, RgbaImage};
use serde_json::{Value, json};

/// DejaVu Sans, the font text layers are drawn with (Bitstream Vera licence; see
/// [`FONT_LICENSE`]).
const FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// The licence of the font shipped for text layers (DejaVu Sans, Bitstream Vera licence).
pub const FONT_LICENSE: &str = include_str!("../../assets/LICENSE-DejaVu.txt");

/// How a layer's colours combine with what is under it (W3C compositing, separable modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlendMode {
    Normal,
    Multiply,
    Screen,
    Overlay,
    Darken,
    Lighten,
    Difference,
    Add,
}

impl BlendMode {
    fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "normal" | "source-over" | "" => BlendMode::Normal,
            "multiply" => BlendMode::Multiply,
            "screen" => BlendMode::Screen,
            "overlay" => BlendMode::Overlay,
            "darken" => BlendMode::Darken,
            "lighten" => BlendMode::Lighten,
            "difference" => BlendMode::Difference,
            "add" | "lighter" | "plus" => BlendMode::Add,
            _ => return None,
        })
    }

    /// B(cb, cs) for one channel in 0–1.
    fn mix(self, cb: f32, cs: f32) -> f32 {
        match self {
            BlendMode::Normal => cs,
            BlendMode::Multiply => cb * cs,
            BlendMode::Screen => cb + cs - cb * cs,
            BlendMode::Overlay => {
                if cb <= 0.5 {
                    2.0 * cb * cs
                } else {
                    1.0 - 2.0 * (1.0 - cb) * (1.0 - cs)
                }
            }
            BlendMode::Darken => cb.min(cs),
            BlendMode::Lighten => cb.max(cs),
            BlendMode::Difference => (cb - cs).abs(),
            BlendMode::Add => (cb + cs).min(1.0),
        }
    }
}

/// The settings of one layer (`layerUpdates[<input handle id>]`).
#[derive(Debug, Clone, PartialEq)]
struct LayerSettings {
    x: f64,
    y: f64,
    width: Option<u32>,
    height: Option<u32>,
    opacity: f64,
    blend: BlendMode,
    z_index: f64,
    font_size: f64,
    fill: Rgba<u8>,
}

impl LayerSettings {
    fn parse(key: &str, value: &Value, max_side: u32) -> Result<Self, Vec<FieldError>> {
        let at = |f: &str| format!("layerUpdates.{}.{f}", shown(&key));
        let mut problems = Vec::new();
        let mut keep = |r: Result<Option<f64>, FieldError>, field: &str| match r {
            Ok(v) => v,
            Err((_, m)) => {
                problems.push((at(field), m));
                None
            }
        };
        let x = keep(number(value, "x"), "x").unwrap_or(0.0);
        let y = keep(number(value, "y"), "y").unwrap_or(0.0);
        let opacity = keep(number_in(value, "opacity", 0.0..=1.0), "opacity").unwrap_or(1.0);
        let z_index = keep(number(value, "zIndex"), "zIndex").unwrap_or(0.0);
        let font_size =
            keep(number_in(value, "fontSize", 1.0..=1000.0), "fontSize").unwrap_or(48.0);
        let mut size = |field: &str| match pixels(value, field, max_side) {
            Ok(v) => v,
            Err((_, m)) => {
                problems.push((at(field), m));
                None
            }
        };
        let (width, height) = (size("width"), size("height"));
        let blend = match value.get("blendMode") {
            None | Some(Value::Null) => BlendMode::Normal,
            Some(Value::String(s)) => BlendMode::parse(s).unwrap_or_else(|| {
                problems.push((
                    at("blendMode"),
                    format!("unknown blend mode `{}` (normal, multiply, screen, overlay, darken, lighten, difference, add)", shown(s)),
                ));
                BlendMode::Normal
            }),
            Some(other) => {
                problems.push((at("blendMode"), format!("expected a name, got {}", shown(other))));
                BlendMode::Normal
            }
        };
        let fill = match value.get("fill").or_else(|| value.get("color")) {
            None | Some(Value::Null) => Rgba([0, 0, 0, 255]),
            Some(Value::String(s)) => parse_color(s).unwrap_or_else(|| {
                problems.push((
                    at("fill"),
                    format!("`{}` is not a #rgb, #rrggbb or #rrggbbaa colour", shown(s)),
                ));
                Rgba([0, 0, 0, 255])
            }),
            Some(other) => {
                problems.push((
                    at("fill"),
                    format!("expected a colour, got {}", shown(other)),
                ));
                Rgba([0, 0, 0, 255])
            }
        };
        if problems.is_empty() {
            Ok(LayerSettings {
                x,
                y,
                width,
                height,
                opacity,
                blend,
                z_index,
                font_size,
                fill,
            })
        } else {
            Err(problems)
        }
    }

    fn defaults() -> Self {
        LayerSettings {
            x: 0.0,
            y: 0.0,
            width: None,
            height: None,
            opacity: 1.0,
            blend: BlendMode::Normal,
            z_index: 0.0,
            font_size: 48.0,
            fill: Rgba([0, 0, 0, 255]),
        }
    }
}

/// `#rgb`, `#rrggbb` or `#rrggbbaa`.
fn parse_color(s: &str) -> Option<Rgba<u8>> {
    let hex = s.trim().strip_prefix('#')?;
    if !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    match hex.len() {
        3 => {
            let n = |i: usize| u8::from_str_radix(hex.get(i..=i)?, 16).ok().map(|v| v * 17);
            Some(Rgba([n(0)?, n(1)?, n(2)?, 255]))
        }
        6 => Some(Rgba([byte(0)?, byte(2)?, byte(4)?, 255])),
        8 => Some(Rgba([byte(0)?, byte(2)?, byte(4)?, byte(6)?])),
        _ => None,
    }
}

/// The canvas settings and every layer's settings, checked.
#[derive(Debug, Clone)]
struct CompositorConfig {
    width: u32,
    height: u32,
    background: Rgba<u8>,
    layers: serde_json::Map<String, Value>,
}

impl CompositorConfig {
    fn parse(config: &Value, max_side: u32) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut side = |field: &str| match pixels(config, field, max_side) {
            Ok(v) => v.unwrap_or(1024),
            Err(e) => {
                problems.push(e);
                1024
            }
        };
        let (width, height) = (side("width"), side("height"));
        let background = match config.get("backgroundColor") {
            None | Some(Value::Null) => Rgba([0, 0, 0, 0]),
            Some(Value::String(s)) => parse_color(s).unwrap_or_else(|| {
                problems.push((
                    "backgroundColor".to_owned(),
                    format!("`{}` is not a colour", shown(s)),
                ));
                Rgba([0, 0, 0, 0])
            }),
            Some(other) => {
                problems.push((
                    "backgroundColor".to_owned(),
                    format!("expected a colour, got {}", shown(other)),
                ));
                Rgba([0, 0, 0, 0])
            }
        };
        let layers = match config.get("layerUpdates") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => {
                problems.push((
                    "layerUpdates".to_owned(),
                    format!("expected an object, got {}", shown(other)),
                ));
                serde_json::Map::new()
            }
        };
        for (key, value) in &layers {
            if !value.is_object() {
                problems.push((
                    format!("layerUpdates.{}", shown(key)),
                    format!("expected an object, got {}", shown(value)),
                ));
            } else if let Err(p) = LayerSettings::parse(key, value, max_side) {
                problems.extend(p);
            }
        }
        if problems.is_empty() {
            Ok(CompositorConfig {
                width,
                height,
                background,
                layers,
            })
        } else {
            Err(problems)
        }
    }

    /// The settings of the layer on an input slot: by instance handle id, then template handle
    /// id, then label.
    fn layer(&self, keys: &[&str], max_side: u32) -> LayerSettings {
        keys.iter()
            .find_map(|k| self.layers.get(*k))
            .and_then(|v| LayerSettings::parse("", v, max_side).ok())
            .unwrap_or_else(LayerSettings::defaults)
    }
}

/// What a layer draws.
enum LayerContent {
    Image(Bytes),
    Text(String),
}

/// One layer ready to draw.
struct Layer {
    handle: String,
    settings: LayerSettings,
    content: LayerContent,
}

/// Draws `text` (lines split at `\n`) in `fill` at `font_size` pixels into an image just large
/// enough to hold it. Text that would need an image over `limits` is an input error naming
/// `handle`, found before any pixel is allocated.
fn render_text(
    text: &str,
    font_size: f64,
    fill: Rgba<u8>,
    handle: &str,
    limits: &ImageLimits,
) -> Result<RgbaImage, NodeError> {
    let font = FontRef::try_from_slice(FONT)
        .map_err(|e| NodeError::internal(format!("the shipped font is unreadable: {e}")))?;
    let scaled = font.as_scaled(PxScale::from(font_size as f32));
    let line_height = scaled.height() + scaled.line_gap();
    let lines: Vec<&str> = text.lines().collect();
    let line_width = |line: &str| {
        let mut width = 0.0f32;
        let mut previous = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                width += scaled.kern(p, id);
            }
            width += scaled.h_advance(id);
            previous = Some(id);
        }
        width
    };
    let width = lines
        .iter()
        .map(|l| line_width(l))
        .fold(0.0f32, f32::max)
        .ceil() as u32;
    let height = (line_height * lines.len().max(1) as f32).ceil() as u32;
    let (width, height) = (width.max(1), height.max(1));
    if let Some(size) = super::codec::over_limits(width, height, limits) {
        return Err(NodeError::input(
            handle,
            format!("the text at {font_size} px is too large to draw: {size}"),
        ));
    }
    let mut canvas = RgbaImage::from_pixel(width, height, Rgba([fill[0], fill[1], fill[2], 0]));
    for (row, line) in lines.iter().enumerate() {
        let baseline = scaled.ascent() + line_height * row as f32;
        let mut x = 0.0f32;
        let mut previous = None;
        for c in line.chars() {
            let id = scaled.glyph_id(c);
            if let Some(p) = previous {
                x += scaled.kern(p, id);
            }
            let glyph = id.with_scale_and_position(scaled.scale(), point(x, baseline));
            x += scaled.h_advance(id);
            previous = Some(id);
            if let Some(outline) = scaled.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + i64::from(gx);
                    let py = bounds.min.y as i64 + i64::from(gy);
                    if px >= 0
                        && py >= 0
                        && (px as u32) < canvas.width()
                        && (py as u32) < canvas.height()
                    {
                        let p = canvas.get_pixel_mut(px as u32, py as u32);
                        let a = (coverage.clamp(0.0, 1.0) * f32::from(fill[3])).round() as u8;
                        p[3] = p[3].max(a);
                    }
                });
            }
        }
    }
    Ok(canvas)
}

/// Draws `layer` onto `canvas` at (`x`, `y`) with `opacity` and `blend`.
fn draw_layer(
    canvas: &mut RgbaImage,
    layer: &RgbaImage,
    x: i64,
    y: i64,
    opacity: f32,
    blend: BlendMode,
) {
    let (cw, ch) = (i64::from(canvas.width()), i64::from(canvas.height()));
    for (lx, ly, src) in layer.enumerate_pixels() {
        // Saturating: a position far off the canvas (up to i64's limits) must not overflow.
        let (px, py) = (
            x.saturating_add(i64::from(lx)),
            y.saturating_add(i64::from(ly)),
        );
        if px < 0 || py < 0 || px >= cw || py >= ch {
            continue;
        }
        let alpha_s = f32::from(src[3]) / 255.0 * opacity;
        if alpha_s <= 0.0 {
            continue;
        }
        let dst = canvas.get_pixel_mut(px as u32, py as u32);
        let alpha_b = f32::from(dst[3]) / 255.0;
        let alpha_o = alpha_s + alpha_b * (1.0 - alpha_s);
        let mut out = [0u8; 4];
        for c in 0..3 {
            let cs = f32::from(src[c]) / 255.0;
            let cb = f32::from(dst[c]) / 255.0;
            let co = alpha_s * (1.0 - alpha_b) * cs
                + alpha_s * alpha_b * blend.mix(cb, cs)
                + (1.0 - alpha_s) * alpha_b * cb;
            out[c] = (co / alpha_o * 255.0).round().clamp(0.0, 255.0) as u8;
        }
        out[3] = (alpha_o * 255.0).round().clamp(0.0, 255.0) as u8;
        *dst = Rgba(out);
    }
}

/// The size a layer is drawn at: both given → exactly that; one given → the other keeps the
/// aspect; none → natural size.
fn layer_size(settings: &LayerSettings, w: u32, h: u32) -> (u32, u32) {
    let scaled = |n: u32, f: f64| ((f64::from(n) * f).round() as u32).max(1);
    match (settings.width, settings.height) {
        (Some(tw), Some(th)) => (tw, th),
        (Some(tw), None) => (tw, scaled(h, f64::from(tw) / f64::from(w))),
        (None, Some(th)) => (scaled(w, f64::from(th) / f64::from(h)), th),
        (None, None) => (w, h),
    }
}

fn composite(
    config: &CompositorConfig,
    mut layers: Vec<Layer>,
    limits: &ImageLimits,
) -> Result<Vec<u8>, NodeError> {
    layers.sort_by(|a, b| a.settings.z_index.total_cmp(&b.settings.z_index));
    let mut canvas = RgbaImage::from_pixel(config.width, config.height, config.background);
    for layer in layers {
        let s = &layer.settings;
        let pixels = match layer.content {
            LayerContent::Image(bytes) => {
                let (image, _) = decode_image(&layer.handle, &bytes, limits)?;
                let (w, h) = layer_size(s, image.width(), image.height());
                check_size(&layer.handle, w, h, limits)?;
                resize_image(&image, w, h)?.to_rgba8()
            }
            LayerContent::Text(text) => {
                let text = render_text(&text, s.font_size, s.fill, &layer.handle, limits)?;
                if s.width.is_some() || s.height.is_some() {
                    let (w, h) = layer_size(s, text.width(), text.height());
                    check_size(&layer.handle, w, h, limits)?;
                    resize_image(&DynamicImage::ImageRgba8(text), w, h)?.to_rgba8()
                } else {
                    text
                }
            }
        };
        draw_layer(
            &mut canvas,
            &pixels,
            s.x.round() as i64,
            s.y.round() as i64,
            s.opacity as f32,
            s.blend,
        );
    }
    encode_image(&DynamicImage::ImageRgba8(canvas), OutputFormat::Png)
}

/// The config error for a canvas of `size` over the limits. It names the side that was set
/// (the other is the default); both when both were, or neither (limits below the default).
fn canvas_too_large(config: &Value, size: &str) -> NodeError {
    let message = canvas_problem(size);
    match canvas_fields(config) {
        [field] => NodeError::config(field, message),
        _ => NodeError::new(
            ErrorKind::InvalidConfig,
            format!("config fields `width` and `height`: {message}"),
        ),
    }
}

/// What is wrong with a canvas of `size` over the limits.
fn canvas_problem(size: &str) -> String {
    format!("the canvas would be too large: {size}")
}

/// The config fields a canvas too large is blamed on: the one size the config set, or both
/// (when it set both, or neither and the default is too large for the node's limits).
fn canvas_fields(config: &Value) -> &'static [&'static str] {
    let set = |field| matches!(number(config, field), Ok(Some(_)));
    match (set("width"), set("height")) {
        (true, false) => &["width"],
        (false, true) => &["height"],
        _ => &["width", "height"],
    }
}

/// The **Compositor** node: a `width`×`height` canvas (default 1024×1024, transparent or
/// `backgroundColor`) with every connected input drawn on it as a layer, in `zIndex` order
/// (then handle order). Image inputs are image layers; Text inputs are drawn with DejaVu Sans.
/// Each layer's settings are in `layerUpdates`, keyed by its input handle id: `x`, `y`,
/// `width`, `height`, `opacity` (0–1), `blendMode` (normal, multiply, screen, overlay, darken,
/// lighten, difference, add), `zIndex`, and for text `fontSize` and `fill` (`#rrggbb[aa]`).
/// The result is a PNG.
#[derive(Debug)]
pub struct Compositor {
    template: NodeTemplate,
    limits: ImageLimits,
}

impl Compositor {
    /// The node with default limits.
    pub fn new() -> Self {
        Self::with_limits(ImageLimits::default())
    }

    /// The node with the given decoding limits (which also bound the canvas size).
    pub fn with_limits(limits: ImageLimits) -> Self {
        let template = NodeTemplate::new("Compositor", "Compositor", "Image")
            .description("Composes image and text layers on a canvas.")
            .transient()
            .aliases(&["compositor"])
            .variable_inputs(&[DataType::Image, DataType::Text])
            .handle(HandleTemplate::input("image", "Image", &[DataType::Image]))
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(json!({ "width": 1024, "height": 1024, "layerUpdates": {} }));
        Compositor { template, limits }
    }
}

impl Default for Compositor {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Compositor {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    /// Also checks the canvas against the node's image limits, so that a canvas too large is
    /// refused before the run, not when the node's turn comes.
    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        match CompositorConfig::parse(config, self.limits.max_side) {
            Err(problems) => problems,
            Ok(parsed) => over_limits(parsed.width, parsed.height, &self.limits)
                .map(|size| {
                    let message = canvas_problem(&size);
                    canvas_fields(config)
                        .iter()
                        .map(|field| ((*field).to_owned(), message.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let config = CompositorConfig::parse(ctx.raw_config(), self.limits.max_side)
            .map_err(|mut p| field_error(p.remove(0)))?;
        if let Some(size) = over_limits(config.width, config.height, &self.limits) {
            return Err(canvas_too_large(ctx.raw_config(), &size));
        }
        let mut layers = Vec::new();
        // The layers' files together are held to `max_bytes`.
        let mut budget = ReadBudget::new(self.limits.max_bytes);
        for slot in inputs.slots() {
            let mut keys: Vec<&str> = vec![&slot.handle_id];
            if let Some(t) = &slot.template_handle_id {
                keys.push(t);
            }
            keys.push(&slot.label);
            let settings = config.layer(&keys, self.limits.max_side);
            for item in &slot.values {
                let content = match (item.data_type, item.as_text(), item.as_asset()) {
                    (DataType::Text, Some(text), _) => LayerContent::Text(text.to_owned()),
                    (DataType::Image | DataType::File, _, Some(asset)) => {
                        LayerContent::Image(budget.read(ctx, &slot.handle_id, asset).await?)
                    }
                    (other, _, _) => {
                        return Err(NodeError::input(
                            &slot.handle_id,
                            format!("a layer must be Image or Text, got {other}"),
                        ));
                    }
                };
                layers.push(Layer {
                    handle: slot.handle_id.to_string(),
                    settings: settings.clone(),
                    content,
                });
            }
        }
        let limits = self.limits;
        let encoded = blocking(move || composite(&config, layers, &limits)).await?;
        let stored = store_bytes(ctx, "composite.png", encoded.into()).await?;
        Ok(Outputs::one("result", Item::file(DataType::Image, stored)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse() {
        assert_eq!(parse_color("#f00"), Some(Rgba([255, 0, 0, 255])));
        assert_eq!(parse_color("#00ff0080"), Some(Rgba([0, 255, 0, 128])));
        assert_eq!(parse_color("red"), None);
        assert_eq!(parse_color("#12345"), None);
    }

    #[test]
    fn blending_follows_the_compositing_formulas() {
        let mut canvas = RgbaImage::from_pixel(2, 1, Rgba([200, 100, 50, 255]));
        let red = RgbaImage::from_pixel(1, 1, Rgba([255, 0, 0, 255]));
        draw_layer(&mut canvas, &red, 0, 0, 0.5, BlendMode::Normal);
        assert_eq!(canvas.get_pixel(0, 0), &Rgba([228, 50, 25, 255]));
        assert_eq!(canvas.get_pixel(1, 0), &Rgba([200, 100, 50, 255]));
        draw_layer(&mut canvas, &red, 1, 0, 1.0, BlendMode::Multiply);
        assert_eq!(canvas.get_pixel(1, 0), &Rgba([200, 0, 0, 255]));
        // Onto transparency: the layer as it is, at its opacity.
        let mut clear = RgbaImage::new(1, 1);
        draw_layer(&mut clear, &red, 0, 0, 0.5, BlendMode::Multiply);
        assert_eq!(clear.get_pixel(0, 0), &Rgba([255, 0, 0, 128]));
    }

    #[test]
    fn text_is_drawn_in_its_colour() {
        let img = render_text(
            "Hi",
            32.0,
            Rgba([0, 0, 255, 255]),
            "text",
            &ImageLimits::default(),
        )
        .unwrap();
        assert!(img.width() > 10 && img.height() >= 32);
        let inked = img.pixels().filter(|p| p[3] > 200).count();
        assert!(inked > 20, "{inked} inked pixels");
        assert!(img.pixels().all(|p| p[0] == 0 && p[1] == 0 && p[2] == 255));
    }

    #[test]
    fn bad_layer_settings_name_their_field() {
        let problems = Compositor::new().check_config(&json!({
            "width": 0,
            "layerUpdates": {"h1": {"opacity": 2, "blendMode": "weird", "fill": "blue"}}
        }));
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "width",
                "layerUpdates.h1.opacity",
                "layerUpdates.h1.blendMode",
                "layerUpdates.h1.fill"
            ]
        );
    }
}
