//! The **Crop** node.

use super::codec::ImageLimits;
use super::config::{FieldError, field_error, number_in, rename_fields};
use super::transform_input;
use async_trait::async_trait;
use gatewai_core::{
    DataType, HandleTemplate, Inputs, Node, NodeContext, NodeError, NodeTemplate, Outputs,
};
use serde_json::{Value, json};

/// The config fields, in order, with their defaults.
const FIELDS: [(&str, f64); 4] = [
    ("leftPercentage", 0.0),
    ("topPercentage", 0.0),
    ("widthPercentage", 100.0),
    ("heightPercentage", 100.0),
];

/// A crop rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width (≥ 1).
    pub width: u32,
    /// Height (≥ 1).
    pub height: u32,
}

/// The four percentages of a config, checked (0–100, finite; width and height above 0); every
/// problem found.
fn percentages(config: &Value) -> Result<[f64; 4], Vec<FieldError>> {
    let mut values = [0.0; 4];
    let mut problems = Vec::new();
    for (i, (field, default)) in FIELDS.iter().enumerate() {
        match number_in(config, field, 0.0..=100.0) {
            Ok(v) => values[i] = v.unwrap_or(*default),
            Err(e) => problems.push(e),
        }
    }
    for (i, field) in [(2, "widthPercentage"), (3, "heightPercentage")] {
        if values[i] == 0.0 && !problems.iter().any(|(f, _)| f == field) {
            problems.push((
                field.to_owned(),
                "a zero-sized crop has no pixels".to_owned(),
            ));
        }
    }
    for (i, field, edge) in [
        (0, "leftPercentage", "right"),
        (1, "topPercentage", "bottom"),
    ] {
        if values[i] >= 100.0 && !problems.iter().any(|(f, _)| f == field) {
            problems.push((
                field.to_owned(),
                format!("a crop starting at 100% lies past the {edge} edge"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// The pixel rectangle of a crop config on a `width`×`height` image, with Gatewai's rule:
/// percentages become pixels by `floor(size × percent / 100)`, then the width is
/// `max(1, min(w, width − left))` and likewise the height, so a rectangle reaching past the
/// edge is clipped. A config error naming the field when the config is wrong or the crop starts
/// outside the image.
pub fn crop_rect(width: u32, height: u32, config: &Value) -> Result<CropRect, NodeError> {
    let [l, t, w, h] = percentages(config).map_err(|mut p| field_error(p.remove(0)))?;
    let px = |size: u32, percent: f64| (f64::from(size) * percent / 100.0).floor() as u32;
    let (left, top) = (px(width, l), px(height, t));
    if left >= width {
        return Err(NodeError::config(
            "leftPercentage",
            format!("{l}% starts past the right edge of a {width}-pixel-wide image"),
        ));
    }
    if top >= height {
        return Err(NodeError::config(
            "topPercentage",
            format!("{t}% starts past the bottom edge of a {height}-pixel-high image"),
        ));
    }
    Ok(CropRect {
        left,
        top,
        width: px(width, w).min(width - left).max(1),
        height: px(height, h).min(height - top).max(1),
    })
}

/// The **Crop** node: the part of the `image` input given by `leftPercentage`,
/// `topPercentage`, `widthPercentage` and `heightPercentage` (0–100; see [`crop_rect`]).
#[derive(Debug)]
pub struct Crop {
    template: NodeTemplate,
    limits: ImageLimits,
}

impl Crop {
    /// The node with default limits.
    pub fn new() -> Self {
        Self::with_limits(ImageLimits::default())
    }

    /// The node with the given decoding limits.
    pub fn with_limits(limits: ImageLimits) -> Self {
        let template = NodeTemplate::new("Crop", "Crop", "Image")
            .description("Crops an image to a rectangle given in percentages.")
            .transient()
            .aliases(&["crop", "crop_image"])
            .handle(
                HandleTemplate::input("image", "Image", &[DataType::Image])
                    .required()
                    .aliases(&["image_url"]),
            )
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(json!({
                "leftPercentage": 0,
                "topPercentage": 0,
                "widthPercentage": 100,
                "heightPercentage": 100,
            }))
            .import_hook(|data| {
                let config = Value::Object(rename_fields(
                    data,
                    &[
                        ("x_percent", "leftPercentage"),
                        ("xPercent", "leftPercentage"),
                        ("y_percent", "topPercentage"),
                        ("yPercent", "topPercentage"),
                        ("width_percent", "widthPercentage"),
                        ("widthPercent", "widthPercentage"),
                        ("height_percent", "heightPercentage"),
                        ("heightPercent", "heightPercentage"),
                    ],
                ));
                match percentages(&config) {
                    Ok(_) => Ok(config),
                    Err(p) => Err(p
                        .into_iter()
                        .map(|(f, m)| format!("{f}: {m}"))
                        .collect::<Vec<_>>()
                        .join("; ")),
                }
            });
        Crop { template, limits }
    }
}

impl Default for Crop {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Node for Crop {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        percentages(config).err().unwrap_or_default()
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        percentages(ctx.raw_config()).map_err(|mut p| field_error(p.remove(0)))?;
        let config = ctx.raw_config().clone();
        transform_input(ctx, inputs, self.limits, "crop", move |image| {
            let rect = crop_rect(image.width(), image.height(), &config)?;
            Ok(image.crop_imm(rect.left, rect.top, rect.width, rect.height))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(w: u32, h: u32, config: Value) -> Result<(u32, u32, u32, u32), String> {
        crop_rect(w, h, &config)
            .map(|r| (r.left, r.top, r.width, r.height))
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn percentages_floor_to_pixels_and_clip_at_the_edge() {
        let full = json!({});
        assert_eq!(rect(10, 8, full), Ok((0, 0, 10, 8)));
        let c = json!({"leftPercentage": 25, "topPercentage": 50, "widthPercentage": 50, "heightPercentage": 25});
        assert_eq!(rect(10, 8, c), Ok((2, 4, 5, 2)));
        // Past the edge: clipped to what is left.
        let c = json!({"leftPercentage": 70, "topPercentage": 90, "widthPercentage": 60, "heightPercentage": 60});
        assert_eq!(rect(10, 10, c), Ok((7, 9, 3, 1)));
        // Less than a pixel: at least one.
        let c = json!({"widthPercentage": 1, "heightPercentage": 1});
        assert_eq!(rect(10, 10, c), Ok((0, 0, 1, 1)));
    }

    #[test]
    fn bad_percentages_name_their_field() {
        for (config, field) in [
            (json!({"leftPercentage": -1}), "leftPercentage"),
            (json!({"topPercentage": 100.5}), "topPercentage"),
            (json!({"widthPercentage": "NaN"}), "widthPercentage"),
            (json!({"heightPercentage": "tall"}), "heightPercentage"),
            (json!({"widthPercentage": 0}), "widthPercentage"),
            (json!({"leftPercentage": 100}), "leftPercentage"),
        ] {
            let problems = Crop::new().check_config(&config);
            assert_eq!(problems.len(), 1, "{config}: {problems:?}");
            assert_eq!(problems[0].0, field);
            let err = rect(10, 10, config).unwrap_err();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn import_maps_the_workflow_apps_fields() {
        let crop = Crop::new();
        let hook = crop.template().import_hook.clone().unwrap();
        let data = json!({"label": "Crop", "x_percent": 10, "yPercent": 20, "width_percent": 30, "heightPercent": 40});
        let config = (hook.0)(data.as_object().unwrap()).unwrap();
        assert_eq!(
            config,
            json!({"leftPercentage": 10, "topPercentage": 20, "widthPercentage": 30, "heightPercentage": 40})
        );
        let bad = json!({"x_percent": 150});
        let err = (hook.0)(bad.as_object().unwrap()).unwrap_err();
        assert!(err.contains("leftPercentage"), "{err}");
    }
}
