//! The command-line runner on the shipped workflows, through its library entry points: real
//! SQLite file, real asset directory, real ffmpeg; the output images are decoded and checked.

use clap::Parser;
use gatewai_core::RunStatus;
use gatewai_examples::Error;
use gatewai_examples::cli::{self, Cli, Command, RunArgs};
use image::{GenericImageView, Rgba};
use std::path::{Path, PathBuf};

fn workflow(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("workflows")
        .join(name)
}

fn run_args(dir: &Path, workflow_name: &str, extra: &[&str]) -> RunArgs {
    let wf = workflow(workflow_name);
    let db = dir.join("gatewai.db");
    let out = dir.join("out");
    let mut argv: Vec<String> = vec![
        "gatewai".into(),
        "run".into(),
        wf.display().to_string(),
        "--db".into(),
        db.display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--no-progress".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    match Cli::try_parse_from(argv).expect("arguments parse").command {
        Command::Run(args) => args,
        other => panic!("expected run, got {other:?}"),
    }
}

async fn run(args: &RunArgs) -> (cli::RunReport, String) {
    let mut out = Vec::new();
    let report = cli::run(args, &mut out).await.expect("run succeeds");
    (report, String::from_utf8(out).expect("utf-8 output"))
}

/// Mean colour of a rectangle.
fn mean(img: &image::DynamicImage, x0: u32, y0: u32, w: u32, h: u32) -> [f64; 3] {
    let mut sum = [0f64; 3];
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            let p = img.get_pixel(x, y);
            for c in 0..3 {
                sum[c] += f64::from(p[c]);
            }
        }
    }
    let n = f64::from(w * h);
    sum.map(|s| s / n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pipeline_writes_the_card_and_is_cached_the_second_time() {
    let dir = tempfile::tempdir().unwrap();
    let args = run_args(dir.path(), "image-pipeline.json", &[]);
    let (report, text) = run(&args).await;
    assert_eq!(report.status, RunStatus::Completed, "{text}");
    assert_eq!(report.executed.len(), 7, "{text}");
    assert!(report.cached.is_empty());
    assert_eq!(report.workflow_id, "image-pipeline");

    // The card: 320×360, background #1e1e2e, the processed photo at (32,32) 256×256, white
    // caption text underneath.
    let path = dir.path().join("out/image-pipeline/export.png");
    assert_eq!(report.written, vec![("export".to_owned(), path.clone())]);
    let card = image::open(&path).expect("a PNG was written");
    assert_eq!(card.dimensions(), (320, 360));
    for (x, y) in [
        (2, 2),
        (317, 2),
        (2, 357),
        (317, 357),
        (16, 200),
        (300, 150),
    ] {
        assert_eq!(
            card.get_pixel(x, y),
            Rgba([0x1e, 0x1e, 0x2e, 255]),
            "background at {x},{y}"
        );
    }
    // The photo region holds the crop (25%/10%, 60%×80% of the 800×600 source: x 200..680,
    // y 60..540) resized and blurred: its mean colour matches the source crop's, and not the
    // whole source's.
    let source = image::open(workflow("assets/photo.jpg")).unwrap();
    let expected = mean(&source, 200, 60, 480, 480);
    let whole = mean(&source, 0, 0, 800, 600);
    let got = mean(&card, 32, 32, 256, 256);
    for c in 0..3 {
        assert!(
            (got[c] - expected[c]).abs() < 6.0,
            "channel {c}: {got:?} vs {expected:?}"
        );
    }
    assert!(
        (0..3).map(|c| (whole[c] - expected[c]).abs()).sum::<f64>() > 20.0,
        "the test photo's crop must differ from the whole photo"
    );
    // The caption: white-ish pixels below the photo, none of them in the margin above it.
    let white = |x0: u32, y0: u32, x1: u32, y1: u32| {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let p = card.get_pixel(x, y);
                p[0] > 200 && p[1] > 200 && p[2] > 200
            })
            .count()
    };
    assert!(white(32, 296, 320, 360) > 200, "caption text drawn");
    assert_eq!(white(0, 0, 320, 30), 0);

    // The run is in the database with its node executions.
    let mut listing = Vec::new();
    cli::runs(
        &cli::RunsArgs {
            workflow: None,
            db: args.db.clone(),
            limit: 10,
        },
        &mut listing,
    )
    .await
    .unwrap();
    let listing = String::from_utf8(listing).unwrap();
    assert!(listing.contains(&report.run_id), "{listing}");
    assert!(listing.contains("COMPLETED"));

    // Unchanged: everything after the (volatile) File node comes from the cache, and the
    // output says so; the image written is the same.
    let first_bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (again, text) = run(&args).await;
    assert_eq!(again.status, RunStatus::Completed);
    let mut cached = again.cached.clone();
    cached.sort();
    assert_eq!(
        cached,
        ["blur", "caption", "compose", "crop", "export", "resize"],
        "{text}"
    );
    assert_eq!(again.executed, ["photo"]);
    assert!(text.contains("cached"), "{text}");
    assert!(
        text.contains("6 of 7 nodes served from the cache"),
        "{text}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), first_bytes);

    // A different caption through --input: the compositor runs again, the photo chain not.
    let args = run_args(
        dir.path(),
        "image-pipeline.json",
        &["--input", "caption=Hello"],
    );
    let (third, text) = run(&args).await;
    assert!(third.executed.contains(&"compose".to_owned()), "{text}");
    assert!(third.cached.contains(&"blur".to_owned()), "{text}");
    assert_ne!(std::fs::read(&path).unwrap(), first_bytes);

    // Two more runs in the history.
    let mut listing = Vec::new();
    let runs_args = cli::RunsArgs {
        workflow: Some(workflow("image-pipeline.json").display().to_string()),
        db: args.db.clone(),
        limit: 10,
    };
    cli::runs(&runs_args, &mut listing).await.unwrap();
    let listing = String::from_utf8(listing).unwrap();
    assert_eq!(listing.lines().count(), 4, "{listing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_run_settles_only_the_target_and_its_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let args = run_args(dir.path(), "image-pipeline.json", &["--only", "crop"]);
    let (report, text) = run(&args).await;
    assert_eq!(report.status, RunStatus::Completed, "{text}");
    let mut settled = report.executed.clone();
    settled.sort();
    assert_eq!(settled, ["crop", "photo"], "{text}");
    assert!(report.written.is_empty());
    assert!(text.contains("Image 480×480"), "{text}");

    let args = run_args(dir.path(), "image-pipeline.json", &["--only", "nope"]);
    let err = cli::run(&args, &mut Vec::new()).await.unwrap_err();
    assert!(err.to_string().contains("no node `nope`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_frame_workflow_extracts_crops_and_resizes() {
    let dir = tempfile::tempdir().unwrap();
    let args = run_args(dir.path(), "video-frame.json", &[]);
    let (report, text) = run(&args).await;
    assert_eq!(report.status, RunStatus::Completed, "{text}");
    let path = dir.path().join("out/video-frame/export.png");
    let thumb = image::open(&path).expect("a PNG was written");
    assert_eq!(thumb.dimensions(), (160, 160));
    // testsrc frames are colourful, not blank.
    let m = mean(&thumb, 0, 0, 160, 160);
    assert!(m.iter().any(|c| *c > 30.0), "{m:?}");
}

#[tokio::test]
async fn llm_workflow_without_a_key_fails_with_a_clear_message() {
    if std::env::var("GEMINI_API_KEY").is_ok_and(|k| !k.trim().is_empty()) {
        eprintln!("GEMINI_API_KEY is set; the missing-key message cannot be checked here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = run_args(dir.path(), "llm-haiku.json", &[]);
    let err = cli::run(&args, &mut Vec::new()).await.unwrap_err();
    assert!(matches!(err, Error::MissingApiKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("GEMINI_API_KEY"), "{message}");
    assert!(message.contains("`haiku`"), "{message}");
    assert!(!message.contains('\n'));
    // Nothing ran: no database was even created.
    assert!(!args.db.exists());
}

#[test]
fn validate_reports_every_problem_and_graph_prints_mermaid() {
    let dir = tempfile::tempdir().unwrap();
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workflow("image-pipeline.json")).unwrap())
            .unwrap();
    // Three problems: an unknown node type, an edge into a missing handle, a type mismatch
    // (Text into Crop's image input).
    doc["nodes"][3]["type"] = "Sharpen".into();
    doc["edges"][1]["targetHandleId"] = "resize:nowhere".into();
    doc["edges"][0]["sourceHandleId"] = "caption:text".into();
    doc["edges"][0]["source"] = "caption".into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&doc).unwrap()).unwrap();
    let args = cli::FileArgs { workflow: bad };
    let err = cli::validate(&args, &mut Vec::new()).unwrap_err();
    let Error::Invalid(problems) = &err else {
        panic!("expected every problem, got {err:?}")
    };
    let text = err.to_string();
    assert!(problems.len() >= 3, "{text}");
    assert!(text.contains("Sharpen"), "{text}");
    assert!(text.contains("nowhere"), "{text}");
    assert!(text.contains("caption"), "{text}");

    let mut ok = Vec::new();
    cli::validate(
        &cli::FileArgs {
            workflow: workflow("video-frame.json"),
        },
        &mut ok,
    )
    .unwrap();
    assert!(
        String::from_utf8(ok)
            .unwrap()
            .contains("valid (5 nodes, 4 edges)")
    );

    let mut chart = Vec::new();
    cli::graph(
        &cli::GraphArgs {
            workflow: workflow("image-pipeline.json"),
            markdown: true,
        },
        &mut chart,
    )
    .unwrap();
    let chart = String::from_utf8(chart).unwrap();
    assert!(chart.starts_with("```mermaid\nflowchart LR\n"), "{chart}");
    assert!(
        chart.contains("n_caption -->|\"Text → Caption\"| n_compose"),
        "{chart}"
    );
}
