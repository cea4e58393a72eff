//! Helpers shared by the media, video and fetch tests.
#![allow(dead_code)]

use bytes::Bytes;
use gatewai_core::{
    AssetStore, DataType, FileAsset, Inputs, Item, MemoryAssetStore, NewAsset, Node, NodeContext,
    NodeError, Outputs,
};
use image::{DynamicImage, ImageFormat, RgbaImage};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

/// A memory asset store and contexts over it.
pub struct Harness {
    pub store: Arc<MemoryAssetStore>,
}

impl Harness {
    pub fn new() -> Self {
        Harness {
            store: Arc::new(MemoryAssetStore::new()),
        }
    }

    pub fn ctx(&self, node_type: &str, config: serde_json::Value) -> NodeContext {
        NodeContext::detached("node-1", node_type, config, self.store.clone())
    }

    /// Stores bytes as an asset, with a mime type as given (not detected: tests lie on purpose).
    pub async fn put(&self, name: &str, mime: &str, bytes: impl Into<Bytes>) -> FileAsset {
        self.store
            .put(NewAsset {
                name: name.to_owned(),
                mime_type: mime.to_owned(),
                bytes: bytes.into(),
                ..NewAsset::default()
            })
            .await
            .unwrap()
    }

    pub async fn put_image(&self, image: &RgbaImage, format: ImageFormat) -> FileAsset {
        let bytes = encode(image, format);
        let mime = match format {
            ImageFormat::Jpeg => "image/jpeg",
            _ => "image/png",
        };
        self.put(&format!("in.{}", format.extensions_str()[0]), mime, bytes)
            .await
    }

    pub async fn read(&self, asset: &FileAsset) -> Bytes {
        self.store.read(asset).await.unwrap()
    }

    /// Runs `node` with one input item on `handle`.
    pub async fn run(
        &self,
        node: &dyn Node,
        config: serde_json::Value,
        handle: &str,
        item: Item,
    ) -> Result<Outputs, NodeError> {
        let ctx = self.ctx(&node.template().node_type, config);
        node.execute(&ctx, &Inputs::default().with(handle, item))
            .await
    }

    /// The asset on output `handle`, checked to be an image, decoded.
    pub async fn output_image(&self, outputs: &Outputs, handle: &str) -> (FileAsset, RgbaImage) {
        let item = outputs.get(handle).expect("an output");
        assert_eq!(item.data_type, DataType::Image);
        let asset = item.as_asset().expect("a file asset").clone();
        let bytes = self.read(&asset).await;
        let image = image::load_from_memory(&bytes).unwrap().to_rgba8();
        assert_eq!(asset.width, Some(image.width()));
        assert_eq!(asset.height, Some(image.height()));
        assert_eq!(asset.size, bytes.len() as u64);
        (asset, image)
    }
}

pub fn encode(image: &RgbaImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    match format {
        ImageFormat::Jpeg => DynamicImage::ImageRgba8(image.clone())
            .to_rgb8()
            .write_to(&mut out, format)
            .unwrap(),
        _ => image.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

/// A test pattern where every pixel differs: (x·20, y·30, x+y, 255).
pub fn pattern(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([(x * 20) as u8, (y * 30) as u8, (x + y) as u8, 255])
    })
}

pub fn image_item(asset: FileAsset) -> Item {
    Item::file(DataType::Image, asset)
}

/// Runs a program with arguments and panics with its stderr when it fails; its output.
pub fn run_program(program: &str, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// ffmpeg making a 3-second 64×48 H.264 video at 10 fps: red for the first second, green for
/// the second, blue for the third (ffmpeg's lavfi colour sources), written as `output` says.
fn make_colour_video(output: &[&str]) -> std::process::Output {
    let graph = "color=c=red:s=64x48:r=10:d=1[a];color=c=lime:s=64x48:r=10:d=1[b];\
                 color=c=blue:s=64x48:r=10:d=1[c];[a][b][c]concat=n=3:v=1:a=0[v]";
    let mut args = vec![
        "-v",
        "error",
        "-y",
        "-filter_complex",
        graph,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
    ];
    args.extend_from_slice(output);
    run_program("ffmpeg", &args)
}

/// The colour video as an MP4 (index first).
pub fn colour_video(dir: &Path) -> Vec<u8> {
    let path = dir.join("colours.mp4");
    make_colour_video(&["-movflags", "+faststart", path.to_str().unwrap()]);
    std::fs::read(path).unwrap()
}

/// The colour video as Matroska written to a pipe: a container without a duration, so ffprobe
/// cannot tell how long the video is.
pub fn colour_video_without_duration() -> Vec<u8> {
    make_colour_video(&["-f", "matroska", "pipe:1"]).stdout
}

/// A 3-second mono 440 Hz sine WAV.
pub fn sine_wav(dir: &Path) -> Vec<u8> {
    let path = dir.join("sine.wav");
    run_program(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=3:sample_rate=8000",
            path.to_str().unwrap(),
        ],
    );
    std::fs::read(path).unwrap()
}

/// Which of red, green and blue dominates a pixel.
pub fn dominant(p: &image::Rgba<u8>) -> &'static str {
    let [r, g, b, _] = p.0;
    if r > 150 && g < 80 && b < 80 {
        "red"
    } else if g > 150 && r < 80 && b < 80 {
        "green"
    } else if b > 150 && r < 80 && g < 80 {
        "blue"
    } else {
        "mixed"
    }
}

/// CRC-32 (PNG's), for hand-made PNG chunks.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header claims `w`×`h` pixels but which carries almost no data.
pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        c.extend_from_slice(&body);
        c.extend_from_slice(&crc32(&body).to_be_bytes());
        c
    };
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(chunk(b"IEND", &[]));
    png
}

/// Adds a node with one handle per handle template, ids `<node>:<template handle id>`.
pub fn add(
    wf: &mut gatewai_core::Workflow,
    registry: &gatewai_core::NodeRegistry,
    id: &str,
    node_type: &str,
    config: serde_json::Value,
) {
    let template = registry.get(node_type).unwrap().template().clone();
    for h in &template.template_handles {
        wf.handles.push(h.instantiate(id, format!("{id}:{}", h.id)));
    }
    let mut node = gatewai_core::WorkflowNode::new(id, node_type);
    node.config = config;
    wf.nodes.push(node);
}

pub fn link(wf: &mut gatewai_core::Workflow, from: &str, out: &str, to: &str, input: &str) {
    wf.edges.push(gatewai_core::Edge {
        id: format!("{from}->{to}"),
        source: from.to_owned(),
        target: to.to_owned(),
        source_handle_id: format!("{from}:{out}"),
        target_handle_id: format!("{to}:{input}"),
        extra: Default::default(),
    });
}
