//! ExtractFrame and MediaCut on videos made with ffmpeg in the test, and the File node's video
//! metadata.
#![cfg(feature = "video")]

mod common;

use common::*;
use gatewai_core::{DataType, ErrorKind, Inputs, Item, Node, NodeError, Outputs, RunInput};
use gatewai_nodes::media::File;
use gatewai_nodes::video::{ExtractFrame, FfmpegTools, MediaCut};
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

async fn video_asset(h: &Harness) -> gatewai_core::FileAsset {
    let dir = tempfile::tempdir().unwrap();
    h.put("colours.mp4", "video/mp4", colour_video(dir.path()))
        .await
}

/// ExtractFrame (default tools) on `video` at `timestamp`.
async fn extract_at(
    h: &Harness,
    video: &gatewai_core::FileAsset,
    timestamp: &str,
) -> Result<Outputs, NodeError> {
    h.run(
        &ExtractFrame::new(),
        json!({ "timestamp": timestamp }),
        "video",
        Item::file(DataType::Video, video.clone()),
    )
    .await
}

async fn frame_colour(h: &Harness, video: &gatewai_core::FileAsset, timestamp: &str) -> String {
    let out = extract_at(h, video, timestamp)
        .await
        .unwrap_or_else(|e| panic!("{timestamp}: {e}"));
    let (asset, frame) = h.output_image(&out, "result").await;
    assert_eq!(asset.mime_type, "image/png");
    assert_eq!(frame.dimensions(), (64, 48));
    let centre = frame.get_pixel(32, 24);
    // The whole frame is one colour.
    assert!(frame.pixels().all(|p| dominant(p) == dominant(centre)));
    dominant(centre).to_owned()
}

/// ExtractFrame's error at `timestamp`, checked to be its config's fault: its message.
async fn timestamp_error(h: &Harness, video: &gatewai_core::FileAsset, timestamp: &str) -> String {
    let err = extract_at(h, video, timestamp).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{timestamp}: {err}");
    err.message().to_owned()
}

#[tokio::test]
async fn extract_frame_takes_the_frame_at_seconds_clock_times_and_percentages() {
    let h = Harness::new();
    let video = video_asset(&h).await;
    for (timestamp, colour) in [
        ("0", "red"),
        ("0.5", "red"),
        ("1.5", "green"),
        ("00:00:02.5", "blue"),
        ("0:01.2", "green"),
        ("10%", "red"),
        ("50%", "green"),
        ("90%", "blue"),
        ("100%", "blue"),
    ] {
        assert_eq!(
            frame_colour(&h, &video, timestamp).await,
            colour,
            "{timestamp}"
        );
    }
    // A JSON number of seconds works too.
    let out = h
        .run(
            &ExtractFrame::new(),
            json!({ "timestamp": 2.2 }),
            "video",
            Item::file(DataType::Video, video),
        )
        .await
        .unwrap();
    let (_, frame) = h.output_image(&out, "result").await;
    assert_eq!(dominant(frame.get_pixel(1, 1)), "blue");
}

#[tokio::test]
async fn extract_frame_refuses_bad_timestamps_and_non_videos() {
    let h = Harness::new();
    let video = video_asset(&h).await;
    let node = ExtractFrame::new();
    for bad in ["abc", "-1", "150%", "1:99"] {
        assert_eq!(
            node.check_config(&json!({ "timestamp": bad }))[0].0,
            "timestamp"
        );
        let message = timestamp_error(&h, &video, bad).await;
        assert!(message.contains("timestamp"), "{message}");
    }
    // Past the end (3 s): a config error, never an empty image.
    for past in ["3", "5", "00:01:00"] {
        let message = timestamp_error(&h, &video, past).await;
        assert!(message.contains("past the end"), "{message}");
    }
    // A PNG that claims to be a video.
    let png = encode(&pattern(8, 8), image::ImageFormat::Png);
    let fake = h.put("clip.mp4", "video/mp4", png).await;
    let err = h
        .run(
            &node,
            json!({ "timestamp": "0" }),
            "video",
            Item::file(DataType::Video, fake),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("not a video"), "{err}");
    // Garbage bytes.
    let junk = h.put("clip.mp4", "video/mp4", vec![7u8; 4096]).await;
    let err = h
        .run(
            &node,
            json!({ "timestamp": "0" }),
            "video",
            Item::file(DataType::Video, junk),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("not a video"), "{err}");
    // A truncated MP4 (the header is there, the frames are not).
    let dir = tempfile::tempdir().unwrap();
    let mut mp4 = colour_video(dir.path());
    mp4.truncate(mp4.len() / 3);
    let cut = h.put("cut.mp4", "video/mp4", mp4).await;
    let err = h
        .run(
            &node,
            json!({ "timestamp": "2.5" }),
            "video",
            Item::file(DataType::Video, cut),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidInput | ErrorKind::InvalidConfig
        ),
        "{err}"
    );
    // An image on the video handle.
    let err = h
        .run(&node, json!({}), "video", Item::text("not a file"))
        .await
        .unwrap_err();
    assert!(err.message().contains("`video`"), "{err}");
}

#[tokio::test]
async fn a_missing_ffmpeg_names_the_package() {
    let h = Harness::new();
    let video = video_asset(&h).await;
    let tools = FfmpegTools {
        ffmpeg: PathBuf::from("/nonexistent/ffmpeg"),
        ffprobe: PathBuf::from("/nonexistent/ffprobe"),
        ..FfmpegTools::default()
    };
    let err = h
        .run(
            &ExtractFrame::with_tools(tools),
            json!({ "timestamp": "1" }),
            "video",
            Item::file(DataType::Video, video),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("Debian package `ffmpeg`"), "{err}");
}

#[tokio::test]
async fn ffmpeg_is_killed_on_cancellation_and_timeout() {
    let h = Harness::new();
    let video = video_asset(&h).await;
    let ctx = h.ctx("ExtractFrame", json!({ "timestamp": "1" }));
    ctx.cancellation().cancel();
    let inputs = Inputs::default().with("video", Item::file(DataType::Video, video.clone()));
    let err = ExtractFrame::new()
        .execute(&ctx, &inputs)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    let tools = FfmpegTools {
        timeout: Duration::from_millis(1),
        ..FfmpegTools::default()
    };
    let ctx = h.ctx("ExtractFrame", json!({ "timestamp": "1" }));
    let err = ExtractFrame::with_tools(tools)
        .execute(&ctx, &inputs)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[tokio::test]
async fn imported_videos_carry_fps_and_duration() {
    let h = Harness::new();
    let dir = tempfile::tempdir().unwrap();
    let ctx = h.ctx("File", json!({})).with_run_input(RunInput::Bytes {
        bytes: colour_video(dir.path()).into(),
        name: Some("colours.mp4".into()),
    });
    let out = File::new().execute(&ctx, &Inputs::default()).await.unwrap();
    let item = out.get("file").unwrap();
    assert_eq!(item.data_type, DataType::Video);
    let asset = item.as_asset().unwrap();
    assert_eq!(asset.mime_type, "video/mp4");
    assert_eq!(asset.fps, Some(10.0));
    assert!(
        (asset.duration.unwrap() - 3.0).abs() < 0.05,
        "{:?}",
        asset.duration
    );
    assert_eq!((asset.width, asset.height), (Some(64), Some(48)));
}

#[tokio::test]
async fn media_cut_cuts_video_and_audio() {
    let h = Harness::new();
    let video = video_asset(&h).await;
    let out = h
        .run(
            &MediaCut::new(),
            json!({"startSec": 1, "endSec": 2}),
            "media",
            Item::file(DataType::Video, video.clone()),
        )
        .await
        .unwrap();
    let item = out.get("result").unwrap();
    assert_eq!(item.data_type, DataType::Video);
    let cut = item.as_asset().unwrap().clone();
    assert_eq!(cut.mime_type, "video/mp4");
    assert!(
        (cut.duration.unwrap() - 1.0).abs() < 0.15,
        "{:?}",
        cut.duration
    );
    // The cut is the green second.
    assert_eq!(frame_colour(&h, &cut, "50%").await, "green");
    // To the end.
    let out = h
        .run(
            &MediaCut::new(),
            json!({"startSec": 2, "endSec": null}),
            "media",
            Item::file(DataType::Video, video.clone()),
        )
        .await
        .unwrap();
    let cut = out.get("result").unwrap().as_asset().unwrap().clone();
    assert_eq!(frame_colour(&h, &cut, "0").await, "blue");
    // Audio.
    let dir = tempfile::tempdir().unwrap();
    let wav = h.put("sine.wav", "audio/wav", sine_wav(dir.path())).await;
    let out = h
        .run(
            &MediaCut::new(),
            json!({"startSec": "0.5", "endSec": 1.5}),
            "media",
            Item::file(DataType::Audio, wav.clone()),
        )
        .await
        .unwrap();
    let item = out.get("result").unwrap();
    assert_eq!(item.data_type, DataType::Audio);
    let asset = item.as_asset().unwrap();
    assert!(asset.mime_type.starts_with("audio/"), "{}", asset.mime_type);
    assert!(
        (asset.duration.unwrap() - 1.0).abs() < 0.05,
        "{:?}",
        asset.duration
    );
    // Bad ranges.
    let err = h
        .run(
            &MediaCut::new(),
            json!({"startSec": 2, "endSec": 1}),
            "media",
            Item::file(DataType::Audio, wav.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(err.message().contains("endSec"), "{err}");
    let err = h
        .run(
            &MediaCut::new(),
            json!({"startSec": 10}),
            "media",
            Item::file(DataType::Audio, wav),
        )
        .await
        .unwrap_err();
    assert!(err.message().contains("startSec"), "{err}");
    let png = encode(&pattern(8, 8), image::ImageFormat::Png);
    let fake = h.put("a.mp4", "video/mp4", png).await;
    let err = h
        .run(
            &MediaCut::new(),
            json!({}),
            "media",
            Item::file(DataType::Video, fake),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.message().contains("not a video or audio"), "{err}");
}

#[tokio::test]
async fn media_cut_with_an_end_past_the_media_cuts_to_its_end() {
    // An end past the media's end cuts to the end, however far past: beyond what ffmpeg's
    // `-t` can express it once failed as an input error blaming the media.
    let h = Harness::new();
    let video = video_asset(&h).await;
    for end in [json!(100), json!(1e13), json!(1e300)] {
        let out = h
            .run(
                &MediaCut::new(),
                json!({"startSec": 2, "endSec": end}),
                "media",
                Item::file(DataType::Video, video.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("endSec {end}: {e}"));
        let cut = out.get("result").unwrap().as_asset().unwrap().clone();
        assert!(
            (cut.duration.unwrap() - 1.0).abs() < 0.15,
            "endSec {end}: {:?}",
            cut.duration
        );
    }
}

#[tokio::test]
async fn media_cut_of_a_range_without_frames_is_an_error_and_stores_nothing() {
    // The colour video's last frame starts at 2.9 s; ffmpeg cuts 2.95 s onwards (or a range
    // shorter than a frame or a sample) into a container holding no frame, which was stored
    // and output as if it were the cut.
    let h = Harness::new();
    let video = video_asset(&h).await;
    let dir = tempfile::tempdir().unwrap();
    let wav = h.put("sine.wav", "audio/wav", sine_wav(dir.path())).await;
    for (config, item) in [
        (
            json!({"startSec": 2.95}),
            Item::file(DataType::Video, video.clone()),
        ),
        (
            json!({"startSec": 1, "endSec": 1.0000001}),
            Item::file(DataType::Video, video.clone()),
        ),
        (
            json!({"startSec": 1, "endSec": 1.0000001}),
            Item::file(DataType::Audio, wav.clone()),
        ),
    ] {
        let before = h.store.len();
        let err = h
            .run(&MediaCut::new(), config.clone(), "media", item)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{config}: {err}");
        assert!(err.message().contains("startSec"), "{config}: {err}");
        assert_eq!(h.store.len(), before, "{config}: an asset was stored");
    }
}

/// Runs each (node, input handle, config) on the video `media`: each must fail naming its
/// handle, with what ffprobe or ffmpeg `said`, and with no temporary path in the message.
async fn fails_without_temporary_paths(
    h: &Harness,
    nodes: [(&dyn Node, &str, serde_json::Value); 2],
    media: &gatewai_core::FileAsset,
    said: &str,
) {
    let tmp = std::env::temp_dir().to_string_lossy().into_owned();
    for (node, handle, config) in nodes {
        let item = Item::file(DataType::Video, media.clone());
        let err = h.run(node, config, handle, item).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.message().contains(&format!("`{handle}`")), "{err}");
        assert!(err.message().contains(said), "{err}");
        assert!(!err.message().contains(&tmp), "{err}");
    }
}

/// ffprobe and ffmpeg name the temporary files the nodes hand them ("/tmp/…/input: Invalid
/// data found when processing input"): errors say what is wrong with the input, never where
/// the node kept it.
#[tokio::test]
async fn ffmpeg_errors_do_not_show_temporary_paths() {
    let h = Harness::new();
    let tmp = std::env::temp_dir().to_string_lossy().into_owned();
    // An MP4 header and then garbage: detected as a video, refused by ffprobe.
    let mut junk = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    junk.extend((0..5000u32).map(|i| (i * 7 % 251) as u8));
    let fake = h.put("clip.mp4", "video/mp4", junk.clone()).await;
    let nodes: [(&dyn Node, &str, serde_json::Value); 2] = [
        (&ExtractFrame::new(), "video", json!({ "timestamp": "0" })),
        (&MediaCut::new(), "media", json!({ "startSec": 0 })),
    ];
    fails_without_temporary_paths(&h, nodes, &fake, "Invalid data").await;
    // The public probe of a file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, &junk).unwrap();
    let err = FfmpegTools::default()
        .probe(None, "video", &path)
        .await
        .unwrap_err();
    assert!(!err.message().contains(&tmp), "{err}");
    // ffmpeg's own failures: a stand-in ffmpeg that fails naming its arguments, as ffmpeg does
    // when it cannot open a file.
    let script = dir.path().join("ffmpeg");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"$*: No such file or directory\" >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // Another test's process may briefly hold the new file open ("text file busy"): wait until
    // it runs.
    for _ in 0..50 {
        match std::process::Command::new(&script).output() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            _ => break,
        }
    }
    let tools = FfmpegTools {
        ffmpeg: script,
        ..FfmpegTools::default()
    };
    let video = video_asset(&h).await;
    let extract = ExtractFrame::with_tools(tools.clone());
    let cut = MediaCut::with_tools(tools);
    let nodes: [(&dyn Node, &str, serde_json::Value); 2] = [
        (&extract, "video", json!({ "timestamp": "1" })),
        (&cut, "media", json!({ "startSec": 1 })),
    ];
    fails_without_temporary_paths(&h, nodes, &video, "No such file").await;
}

/// A time past what ffmpeg can seek to (its times are 64-bit microseconds), or past the
/// video's end, is the config field's fault, also when ffprobe cannot tell the media's duration
/// to compare it with.
#[tokio::test]
async fn times_past_the_end_or_ffmpeg_s_range_name_their_field_when_the_duration_is_unknown() {
    let h = Harness::new();
    let bytes = colour_video_without_duration();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("piped.mkv");
    std::fs::write(&path, &bytes).unwrap();
    let info = FfmpegTools::default()
        .probe(None, "video", &path)
        .await
        .unwrap();
    assert!(info.has_video && info.duration.is_none(), "{info:?}");
    let video = h.put("piped.mkv", "video/x-matroska", bytes).await;
    let (extract, cut) = (ExtractFrame::new(), MediaCut::new());
    let huge_timestamps = [
        json!(1e300),
        json!("1e308"),
        json!("99999999999999999999:00"),
        json!(1e13),
    ];
    let mut cases: Vec<(&dyn Node, &str, serde_json::Value, &str)> = huge_timestamps
        .into_iter()
        .map(|t| {
            (
                &extract as &dyn Node,
                "video",
                json!({ "timestamp": t }),
                "timestamp",
            )
        })
        .collect();
    cases.push((&cut, "media", json!({ "startSec": 1e300 }), "startSec"));
    for (node, handle, config, field) in cases {
        assert_eq!(node.check_config(&config)[0].0, field, "{config}");
        let err = h
            .run(
                node,
                config.clone(),
                handle,
                Item::file(DataType::Video, video.clone()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{config}: {err}");
        assert!(err.message().contains(&format!("`{field}`")), "{err}");
    }
    // A time within reach still works; one past the end (which ffprobe could not tell) finds
    // no frame, and says so rather than hand back another frame.
    assert_eq!(frame_colour(&h, &video, "1.5").await, "green");
    assert_eq!(frame_colour(&h, &video, "2.85").await, "blue");
    for past in ["3.5", "10", "1000"] {
        let message = timestamp_error(&h, &video, past).await;
        assert!(
            message.contains("no frame") && message.contains("unknown time"),
            "{message}"
        );
    }
    // An end out of reach cuts to the end, as an end past a known duration does.
    let out = h
        .run(
            &cut,
            json!({ "startSec": 2, "endSec": 1e300 }),
            "media",
            Item::file(DataType::Video, video),
        )
        .await
        .unwrap();
    let asset = out.get("result").unwrap().as_asset().unwrap();
    let duration = asset.duration.unwrap();
    assert!((duration - 1.0).abs() < 0.15, "{duration}");
}
