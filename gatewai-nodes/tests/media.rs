//! The still-image nodes called directly, checked pixel by pixel.
#![cfg(feature = "image")]

mod common;

use common::*;
use gatewai_core::{
    DataType, ErrorKind, Generation, InputSlot, Inputs, Item, Node, NodeResult, RunInput,
};
use gatewai_nodes::media::{Blur, Compositor, Crop, File, ImageLimits, Modulate, Resize};
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::json;
use std::sync::Arc;

#[tokio::test]
async fn crop_takes_exactly_the_requested_pixels() {
    let h = Harness::new();
    let source = pattern(10, 8);
    let asset = h.put_image(&source, ImageFormat::Png).await;
    let config = json!({"leftPercentage": 25, "topPercentage": 50, "widthPercentage": 50, "heightPercentage": 25});
    let out = h
        .run(&Crop::new(), config, "image", image_item(asset))
        .await
        .unwrap();
    let (asset, cropped) = h.output_image(&out, "result").await;
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(cropped.dimensions(), (5, 2));
    for (x, y, p) in cropped.enumerate_pixels() {
        assert_eq!(p, source.get_pixel(x + 2, y + 4), "pixel {x},{y}");
    }
}

#[tokio::test]
async fn crop_past_the_edge_is_clipped_and_tiny_crops_keep_one_pixel() {
    let h = Harness::new();
    let source = pattern(10, 10);
    let asset = h.put_image(&source, ImageFormat::Png).await;
    let config = json!({"leftPercentage": 70, "topPercentage": 90, "widthPercentage": 60, "heightPercentage": 60});
    let out = h
        .run(&Crop::new(), config, "image", image_item(asset.clone()))
        .await
        .unwrap();
    let (_, cropped) = h.output_image(&out, "result").await;
    assert_eq!(cropped.dimensions(), (3, 1));
    for (x, y, p) in cropped.enumerate_pixels() {
        assert_eq!(p, source.get_pixel(x + 7, y + 9));
    }
    let config = json!({"leftPercentage": 55, "topPercentage": 33.3, "widthPercentage": 0.5, "heightPercentage": 0.5});
    let out = h
        .run(&Crop::new(), config, "image", image_item(asset))
        .await
        .unwrap();
    let (_, cropped) = h.output_image(&out, "result").await;
    assert_eq!(cropped.dimensions(), (1, 1));
    assert_eq!(cropped.get_pixel(0, 0), source.get_pixel(5, 3));
}

#[tokio::test]
async fn a_jpeg_stays_a_jpeg() {
    let h = Harness::new();
    let source = RgbaImage::from_pixel(64, 48, Rgba([40, 120, 200, 255]));
    let asset = h.put_image(&source, ImageFormat::Jpeg).await;
    let out = h
        .run(
            &Crop::new(),
            json!({"widthPercentage": 50}),
            "image",
            image_item(asset),
        )
        .await
        .unwrap();
    let (asset, cropped) = h.output_image(&out, "result").await;
    assert_eq!(asset.mime_type, "image/jpeg");
    assert!(asset.name.ends_with(".jpg"), "{}", asset.name);
    // The image crate saved the input at quality 75; the crop keeps it.
    let written = h.read(&asset).await;
    assert_eq!(gatewai_nodes::media::jpeg_quality(&written), Some(75));
    assert_eq!(cropped.dimensions(), (32, 48));
    for p in cropped.pixels() {
        for (c, want) in [40i32, 120, 200].iter().enumerate() {
            assert!((i32::from(p[c]) - want).abs() <= 3, "{p:?}");
        }
    }
}

#[tokio::test]
async fn bad_crops_are_config_errors_naming_the_field() {
    let h = Harness::new();
    let asset = h.put_image(&pattern(4, 4), ImageFormat::Png).await;
    for (config, field) in [
        (json!({"widthPercentage": 0}), "widthPercentage"),
        (json!({"heightPercentage": 0}), "heightPercentage"),
        (json!({"leftPercentage": 101}), "leftPercentage"),
        (json!({"topPercentage": "NaN"}), "topPercentage"),
        (json!({"leftPercentage": 100}), "leftPercentage"),
    ] {
        assert_eq!(Crop::new().check_config(&config)[0].0, field);
        let err = h
            .run(&Crop::new(), config, "image", image_item(asset.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(err.message().contains(field), "{err}");
    }
}

#[tokio::test]
async fn bad_image_inputs_are_input_errors_naming_the_handle() {
    let h = Harness::new();
    let crop = Crop::new();
    // Text on an image handle.
    let err = h
        .run(&crop, json!({}), "image", Item::text("a fox"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("`image`"), "{err}");
    // A video where an image belongs.
    let video = h.put("v.mp4", "video/mp4", vec![1u8, 2, 3]).await;
    let err = h
        .run(
            &crop,
            json!({}),
            "image",
            Item::file(DataType::Video, video),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("expected Image"), "{err}");
    // Truncated PNG.
    let png = encode(&pattern(32, 32), ImageFormat::Png);
    let truncated = h
        .put("t.png", "image/png", png[..png.len() / 2].to_vec())
        .await;
    let err = h
        .run(&crop, json!({}), "image", image_item(truncated))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("corrupt or truncated"), "{err}");
    // Not an image at all, though it says it is.
    let text = h.put("x.png", "image/png", b"hello there".to_vec()).await;
    let err = h
        .run(&crop, json!({}), "image", image_item(text))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("not an image"), "{err}");
    // An empty file.
    let empty = h.put("e.png", "image/png", Vec::new()).await;
    let err = h
        .run(&crop, json!({}), "image", image_item(empty))
        .await
        .unwrap_err();
    assert!(err.message().contains("empty"), "{err}");
    // An asset missing from the store.
    let mut ghost = h.put_image(&pattern(2, 2), ImageFormat::Png).await;
    ghost.id = "no-such-asset".into();
    let err = h
        .run(&crop, json!({}), "image", image_item(ghost))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("no-such-asset"), "{err}");
    // Nothing connected.
    let ctx = h.ctx("Crop", json!({}));
    let err = crop.execute(&ctx, &Inputs::default()).await.unwrap_err();
    assert!(err.message().contains("`image`"), "{err}");
}

#[tokio::test]
async fn decompression_bombs_are_refused() {
    let h = Harness::new();
    // A header claiming 100 000 × 100 000 pixels: refused before any allocation.
    let bomb = h
        .put("bomb.png", "image/png", png_claiming(100_000, 100_000))
        .await;
    let err = h
        .run(&Crop::new(), json!({}), "image", image_item(bomb))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("too large"), "{err}");
    // A real, highly compressible 4000 × 4000 image (64 MB of pixels in a small file) against
    // a node limited to 4 megapixels.
    let big = RgbaImage::new(4000, 4000);
    let bytes = encode(&big, ImageFormat::Png);
    assert!(bytes.len() < 1_000_000, "{} bytes", bytes.len());
    let asset = h.put("big.png", "image/png", bytes).await;
    let limited = Crop::with_limits(ImageLimits {
        max_pixels: 4_000_000,
        ..ImageLimits::default()
    });
    let err = h
        .run(&limited, json!({}), "image", image_item(asset))
        .await
        .unwrap_err();
    assert!(err.message().contains("too large"), "{err}");
}

#[tokio::test]
async fn resize_scales_solid_regions_exactly_and_keeps_the_aspect() {
    let h = Harness::new();
    // Four solid 20×20 quadrants.
    let colours = [
        Rgba([255, 0, 0, 255]),
        Rgba([0, 255, 0, 255]),
        Rgba([0, 0, 255, 255]),
        Rgba([255, 255, 0, 255]),
    ];
    let quadrants = RgbaImage::from_fn(40, 40, |x, y| colours[(x / 20 + 2 * (y / 20)) as usize]);
    let asset = h.put_image(&quadrants, ImageFormat::Png).await;
    let out = h
        .run(
            &Resize::new(),
            json!({"width": 20}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    let (_, small) = h.output_image(&out, "result").await;
    assert_eq!(small.dimensions(), (20, 20));
    // Away from the quadrant borders, the colours are exact.
    for (x, y) in [
        (0, 0),
        (3, 3),
        (19, 0),
        (16, 3),
        (0, 19),
        (3, 16),
        (19, 19),
        (16, 16),
    ] {
        assert_eq!(
            small.get_pixel(x, y),
            &colours[(x / 10 + 2 * (y / 10)) as usize],
            "{x},{y}"
        );
    }
    let out = h
        .run(
            &Resize::new(),
            json!({"width": 30, "height": 10, "maintainAspect": false}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        h.output_image(&out, "result").await.1.dimensions(),
        (30, 10)
    );
    let out = h
        .run(
            &Resize::new(),
            json!({"width": 30, "height": 10}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    assert_eq!(
        h.output_image(&out, "result").await.1.dimensions(),
        (10, 10)
    );
    // Nothing to do: the same asset passes through.
    let out = h
        .run(
            &Resize::new(),
            json!({}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    assert_eq!(out.get("result").unwrap().as_asset().unwrap().id, asset.id);
    let err = h
        .run(
            &Resize::new(),
            json!({"width": -3}),
            "image",
            image_item(asset),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("width"), "{err}");
}

#[tokio::test]
async fn resize_past_the_limits_names_the_field_that_was_set() {
    // A 1000×1 strip scaled to 1000 pixels high would be 1 000 000 pixels wide: the error is
    // about `height`, the only size given, not about a `width` the config never set.
    let h = Harness::new();
    let strip = h.put_image(&pattern(1000, 1), ImageFormat::Png).await;
    let err = h
        .run(
            &Resize::new(),
            json!({"height": 1000}),
            "image",
            image_item(strip.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("`height`"), "{err}");
    assert!(err.message().contains("too large"), "{err}");
    let tower = h.put_image(&pattern(1, 1000), ImageFormat::Png).await;
    let err = h
        .run(
            &Resize::new(),
            json!({"width": 1000}),
            "image",
            image_item(tower),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("`width`"), "{err}");
}

#[tokio::test]
async fn blur_softens_an_edge_and_nothing_else() {
    let h = Harness::new();
    let edge = RgbaImage::from_fn(60, 10, |x, _| {
        if x < 30 {
            Rgba([0, 0, 0, 255])
        } else {
            Rgba([255, 255, 255, 255])
        }
    });
    let asset = h.put_image(&edge, ImageFormat::Png).await;
    let out = h
        .run(
            &Blur::new(),
            json!({"size": 0}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    assert_eq!(h.output_image(&out, "result").await.1, edge);
    let out = h
        .run(
            &Blur::new(),
            json!({"size": 4}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    let (_, blurred) = h.output_image(&out, "result").await;
    let row: Vec<u8> = (0..60).map(|x| blurred.get_pixel(x, 5)[0]).collect();
    assert_eq!(row[0], 0);
    assert_eq!(row[59], 255);
    assert!(row[29] > 0 && row[29] < 255, "{row:?}");
    assert!(row[30] > 0 && row[30] < 255, "{row:?}");
    assert!(row.windows(2).all(|w| w[0] <= w[1]), "{row:?}");
    let err = h
        .run(
            &Blur::new(),
            json!({"size": 101}),
            "image",
            image_item(asset),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("size"), "{err}");
}

#[tokio::test]
async fn modulate_rotates_hue_pixel_exactly() {
    let h = Harness::new();
    let red = RgbaImage::from_pixel(3, 3, Rgba([255, 0, 0, 255]));
    let asset = h.put_image(&red, ImageFormat::Png).await;
    let out = h
        .run(
            &Modulate::new(),
            json!({"hue": 120}),
            "image",
            image_item(asset.clone()),
        )
        .await
        .unwrap();
    let (_, green) = h.output_image(&out, "result").await;
    assert!(green.pixels().all(|p| p.0 == [0, 255, 0, 255]));
    let out = h
        .run(
            &Modulate::new(),
            json!({"brightness": 0.5, "saturation": 1, "lightness": 1}),
            "image",
            image_item(asset),
        )
        .await
        .unwrap();
    let (_, dark) = h.output_image(&out, "result").await;
    assert!(
        dark.pixels().all(|p| p.0 == [128, 0, 0, 255]),
        "{:?}",
        dark.get_pixel(0, 0)
    );
}

#[tokio::test]
async fn compositor_places_layers_by_z_order_opacity_and_blend() {
    let h = Harness::new();
    let red = h
        .put_image(
            &RgbaImage::from_pixel(4, 4, Rgba([255, 0, 0, 255])),
            ImageFormat::Png,
        )
        .await;
    let blue = h
        .put_image(
            &RgbaImage::from_pixel(2, 2, Rgba([0, 0, 255, 255])),
            ImageFormat::Png,
        )
        .await;
    let inputs = Inputs::new(vec![
        InputSlot {
            handle_id: Arc::from("h-red"),
            template_handle_id: Some(Arc::from("image")),
            label: Arc::from("Image"),
            multiple: false,
            values: vec![image_item(red)],
        },
        InputSlot {
            handle_id: Arc::from("h-blue"),
            template_handle_id: None,
            label: Arc::from("Image 2"),
            multiple: false,
            values: vec![image_item(blue)],
        },
        InputSlot {
            handle_id: Arc::from("h-text"),
            template_handle_id: None,
            label: Arc::from("Text"),
            multiple: false,
            values: vec![Item::text("Hi")],
        },
    ]);
    let config = json!({
        "width": 60,
        "height": 40,
        "backgroundColor": "#ffffff",
        "layerUpdates": {
            // Drawn last despite coming first: zIndex 2.
            "h-red": {"x": 2, "y": 3, "zIndex": 2},
            // Half transparent, scaled to 4×4, under the red square's corner.
            "h-blue": {"x": 4, "y": 5, "width": 4, "height": 4, "opacity": 0.5, "zIndex": 1},
            "h-text": {"x": 20, "y": 0, "fontSize": 30, "fill": "#00ff00", "blendMode": "multiply"}
        }
    });
    let ctx = h.ctx("Compositor", config);
    let out = Compositor::new().execute(&ctx, &inputs).await.unwrap();
    let (asset, canvas) = h.output_image(&out, "result").await;
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(canvas.dimensions(), (60, 40));
    assert_eq!(canvas.get_pixel(0, 0), &Rgba([255, 255, 255, 255]));
    // The red square, on top of the blue one where they overlap.
    for (x, y) in [(2, 3), (5, 6), (5, 5)] {
        assert_eq!(canvas.get_pixel(x, y), &Rgba([255, 0, 0, 255]), "{x},{y}");
    }
    // Blue at half opacity over white, where red does not cover it.
    for (x, y) in [(7, 8), (6, 7), (4, 8)] {
        assert_eq!(
            canvas.get_pixel(x, y),
            &Rgba([128, 128, 255, 255]),
            "{x},{y}"
        );
    }
    // Green text multiplied onto white is green; nothing else but white and green there.
    let text_area: Vec<_> = (20..60)
        .flat_map(|x| (0..40).map(move |y| (x, y)))
        .map(|(x, y)| *canvas.get_pixel(x, y))
        .collect();
    assert!(text_area.iter().any(|p| p.0 == [0, 255, 0, 255]));
    assert!(text_area.iter().all(|p| p[1] == 255 && p[0] == p[2]));
    // A layer of the wrong type.
    let inputs = Inputs::default().with("image", Item::number(3.0));
    let err = Compositor::new()
        .execute(&h.ctx("Compositor", json!({})), &inputs)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("`image`"), "{err}");
}

#[tokio::test]
async fn compositor_layers_placed_far_off_the_canvas_are_left_out() {
    let h = Harness::new();
    let red = h
        .put_image(
            &RgbaImage::from_pixel(3, 3, Rgba([255, 0, 0, 255])),
            ImageFormat::Png,
        )
        .await;
    // Positions past i64's range (saturated by the float-to-int cast) once overflowed when a
    // layer pixel's offset was added.
    for (x, y) in [(1e19, 0.0), (0.0, 1e19), (-1e19, -1e19), (9.3e18, 1.0)] {
        let config = json!({
            "width": 4, "height": 4, "backgroundColor": "#ffffff",
            "layerUpdates": {"image": {"x": x, "y": y}}
        });
        let out = h
            .run(&Compositor::new(), config, "image", image_item(red.clone()))
            .await
            .unwrap_or_else(|e| panic!("x {x}, y {y}: {e}"));
        let (_, canvas) = h.output_image(&out, "result").await;
        assert!(
            canvas.pixels().all(|p| p.0 == [255, 255, 255, 255]),
            "x {x}, y {y}: the layer lies outside the canvas"
        );
    }
}

#[tokio::test]
async fn compositor_text_layers_are_held_to_the_size_limits() {
    let h = Harness::new();
    let small = Compositor::with_limits(ImageLimits {
        max_pixels: 10_000,
        max_side: 1_000,
        ..ImageLimits::default()
    });
    let text_layer = |size: serde_json::Value| json!({"width": 10, "height": 10, "layerUpdates": {"text": size}});
    // Drawn at its natural size the text is over the pixel limit; so is a text stretched to
    // a width the limit allows on a side but not in area.
    for (node, config, text) in [
        (
            &small,
            text_layer(json!({"fontSize": 200})),
            "Hello".to_owned(),
        ),
        (
            &small,
            text_layer(json!({"fontSize": 10, "width": 1000})),
            "Hi".to_owned(),
        ),
        (
            &small,
            text_layer(json!({"fontSize": 10, "height": 1000})),
            "Hi".to_owned(),
        ),
        // Default limits: 40 glyphs at 1000 px are wider than 30 000 pixels.
        (
            &Compositor::new(),
            text_layer(json!({"fontSize": 1000})),
            "W".repeat(40),
        ),
    ] {
        let err = h
            .run(node, config.clone(), "text", Item::text(text))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{config}: {err}");
        assert!(err.message().contains("`text`"), "{config}: {err}");
        assert!(err.message().contains("too large"), "{config}: {err}");
    }
    // Within the limits text is drawn as before.
    let out = h
        .run(
            &small,
            text_layer(json!({"fontSize": 10})),
            "text",
            Item::text("Hi"),
        )
        .await
        .unwrap();
    h.output_image(&out, "result").await;
}

#[tokio::test]
async fn file_imports_uploads_data_urls_base64_and_assets() {
    use base64::Engine as _;
    let h = Harness::new();
    let png = encode(&pattern(6, 5), ImageFormat::Png);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let file = File::new();
    let check = |out: gatewai_core::Outputs| {
        let item = out.get("file").unwrap().clone();
        assert_eq!(item.data_type, DataType::Image);
        let asset = item.as_asset().unwrap().clone();
        assert_eq!(asset.mime_type, "image/png");
        assert_eq!((asset.width, asset.height), (Some(6), Some(5)));
        assert_eq!(asset.size, png.len() as u64);
        asset
    };
    // A data: URL in the config.
    let ctx = h.ctx(
        "File",
        json!({"url": format!("data:image/png;base64,{b64}")}),
    );
    check(file.execute(&ctx, &Inputs::default()).await.unwrap());
    // Plain base64 with a name (the name does not decide the type).
    let ctx = h.ctx("File", json!({"base64": b64, "name": "photo.jpg"}));
    let asset = check(file.execute(&ctx, &Inputs::default()).await.unwrap());
    assert_eq!(asset.name, "photo.jpg");
    // Uploaded bytes as a run input.
    let ctx = h.ctx("File", json!({})).with_run_input(RunInput::Bytes {
        bytes: png.clone().into(),
        name: Some("up.png".into()),
    });
    let uploaded = check(file.execute(&ctx, &Inputs::default()).await.unwrap());
    // An existing asset (stored with a wrong mime type and no size) by config.
    let lying = h
        .put("weird.bin", "application/octet-stream", png.clone())
        .await;
    let ctx = h.ctx("File", json!({"asset": lying}));
    let asset = check(file.execute(&ctx, &Inputs::default()).await.unwrap());
    assert_eq!(asset.id, lying.id);
    // The node's stored result (a file uploaded earlier).
    let previous = NodeResult::single(Generation {
        items: vec![image_item(uploaded.clone()).on("h-file")],
    });
    let ctx = h.ctx("File", json!({})).with_previous_result(previous);
    let asset = check(file.execute(&ctx, &Inputs::default()).await.unwrap());
    assert_eq!(asset.id, uploaded.id);
}

#[tokio::test]
async fn file_refuses_what_is_not_media() {
    let h = Harness::new();
    let file = File::new();
    let run = |config: serde_json::Value| {
        let ctx = h.ctx("File", config);
        let file = &file;
        async move { file.execute(&ctx, &Inputs::default()).await.unwrap_err() }
    };
    let err = run(json!({"base64": "aGVsbG8gd29ybGQ="})).await;
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.message().contains("not an image, video or audio"),
        "{err}"
    );
    let err = run(json!({"base64": "***"})).await;
    assert!(err.message().contains("base64"), "{err}");
    let err = run(json!({"url": "data:text/plain,hi"})).await;
    assert!(err.message().contains("base64"), "{err}");
    let err = run(json!({"asset": {"id": "missing"}})).await;
    assert!(err.message().contains("missing"), "{err}");
    let err = run(json!({})).await;
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = run(json!({"url": "http://127.0.0.1:9/a.png"})).await;
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("not a public address"), "{err}");
    assert!(err.message().contains("`url`"), "{err}");
}

/// Bytes handed to the File node as a run input are held to the same limit as its downloads,
/// `data:` URLs and base64 (the fetch policy's `max_bytes`): an input error naming the run
/// input, and nothing stored.
#[tokio::test]
async fn file_run_input_bytes_over_the_size_limit_are_refused() {
    let h = Harness::new();
    let png = encode(&pattern(40, 40), ImageFormat::Png);
    let limit = png.len() as u64 - 1;
    let file = File::with_fetch_policy(gatewai_nodes::fetch::FetchPolicy {
        max_bytes: limit,
        ..Default::default()
    });
    let upload = |bytes: Vec<u8>| {
        h.ctx("File", json!({})).with_run_input(RunInput::Bytes {
            bytes: bytes.into(),
            name: Some("big.png".into()),
        })
    };
    let err = file
        .execute(&upload(png.clone()), &Inputs::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.message().contains("`run input`"), "{err}");
    assert!(
        err.message().contains(&format!("{limit}-byte limit")),
        "{err}"
    );
    assert!(h.store.is_empty(), "nothing is stored");
    // At the limit it is taken.
    let file = File::with_fetch_policy(gatewai_nodes::fetch::FetchPolicy {
        max_bytes: png.len() as u64,
        ..Default::default()
    });
    let out = file
        .execute(&upload(png), &Inputs::default())
        .await
        .unwrap();
    assert_eq!(out.get("file").unwrap().data_type, DataType::Image);
}

/// A canvas over the pixel limit is one config error naming the side that was set (both when
/// both were), not an input error wrapped in a config error that always blames `width`.
#[tokio::test]
async fn compositor_canvas_over_the_limits_names_the_side_at_fault() {
    let h = Harness::new();
    // The default 1024×1024 canvas fits; 1024×1500 does not.
    let small = Compositor::with_limits(ImageLimits {
        max_pixels: 1_100_000,
        max_side: 2_000,
        ..ImageLimits::default()
    });
    let default = Compositor::new();
    for (node, config, named, not_named) in [
        (
            &small,
            json!({"height": 1500}),
            "config field `height`:",
            Some("`width`"),
        ),
        (
            &small,
            json!({"width": 1500, "height": null}),
            "config field `width`:",
            Some("`height`"),
        ),
        (
            &small,
            json!({"width": 1500, "height": 1500}),
            "`width` and `height`",
            None,
        ),
        (
            &default,
            json!({"width": 20000, "height": 20000}),
            "`width` and `height`",
            None,
        ),
    ] {
        // Refused before the run (the config check names the same fields), and at run time.
        let problems = node.check_config(&config);
        assert!(!problems.is_empty(), "{config}");
        for (field, problem) in &problems {
            assert!(named.contains(&format!("`{field}`")), "{config}: {field}");
            assert!(problem.contains("too large"), "{config}: {problem}");
        }
        if let Some(other) = not_named {
            assert!(
                problems.iter().all(|(f, _)| !other.contains(f.as_str())),
                "{config}: {problems:?}"
            );
        }
        let ctx = h.ctx("Compositor", config.clone());
        let err = node.execute(&ctx, &Inputs::default()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{config}: {err}");
        assert!(err.message().contains(named), "{config}: {err}");
        if let Some(other) = not_named {
            assert!(!err.message().contains(other), "{config}: {err}");
        }
        // One flat error: no input error inside, one field list.
        assert!(!err.message().contains("input `"), "{config}: {err}");
        assert_eq!(
            err.message().matches("config field").count(),
            1,
            "{config}: {err}"
        );
        assert!(err.message().contains("too large"), "{config}: {err}");
    }
}
