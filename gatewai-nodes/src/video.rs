//! The ffmpeg-based nodes: **ExtractFrame** (one frame of a video as a PNG) and **MediaCut**
//! (a time range of a video or audio file).
//!
//! Both run the `ffmpeg` and `ffprobe` programs of Debian's `ffmpeg` package as processes with
//! argument lists (never through a shell). The media is written to a temporary file first, not
//! piped (MP4s with their index at the end cannot be read from a pipe). A process is killed when
//! the node's timeout passes or the run is cancelled.

use crate::media::config::{FieldError, number};
use crate::media::file_stem;
use crate::media_util::{read_input_media, store_bytes};
use async_trait::async_trait;
use gatewai_core::{
    DataType, ErrorKind, HandleTemplate, Inputs, Item, Node, NodeContext, NodeError, NodeRegistry,
    NodeTemplate, Outputs,
};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Where the ffmpeg programs are, how long one invocation may take, and how large an input
/// the nodes read.
#[derive(Debug, Clone, PartialEq)]
pub struct FfmpegTools {
    /// The `ffmpeg` program (a name looked up on `PATH`, or a path).
    pub ffmpeg: PathBuf,
    /// The `ffprobe` program.
    pub ffprobe: PathBuf,
    /// The longest one invocation may run before it is killed.
    pub timeout: Duration,
    /// The largest input media file, in bytes, a node reads from the asset store
    /// ([`DEFAULT_MAX_MEDIA_BYTES`](crate::media_util::DEFAULT_MAX_MEDIA_BYTES), 100 MiB, the
    /// limit of the File node's imports, by default): a larger one is an input error naming
    /// the asset and the limit, refused without being read whole.
    pub max_input_bytes: u64,
}

impl Default for FfmpegTools {
    fn default() -> Self {
        FfmpegTools {
            ffmpeg: PathBuf::from("ffmpeg"),
            ffprobe: PathBuf::from("ffprobe"),
            timeout: Duration::from_secs(300),
            max_input_bytes: crate::media_util::DEFAULT_MAX_MEDIA_BYTES,
        }
    }
}

/// What ffprobe says about a media file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// Width of the first video stream.
    pub width: Option<u32>,
    /// Height of the first video stream.
    pub height: Option<u32>,
    /// Frame rate of the first video stream.
    pub fps: Option<f64>,
    /// Duration in seconds (of the container, else of the longest stream).
    pub duration: Option<f64>,
    /// Whether there is a video stream (a still-image "stream" such as cover art excluded).
    pub has_video: bool,
    /// Whether there is an audio stream.
    pub has_audio: bool,
}

impl FfmpegTools {
    /// Runs `program` with `args`, killing it on timeout or cancellation. A missing program is
    /// an `Unsupported` error naming the Debian package; a non-zero exit is returned as the
    /// process output for the caller to judge.
    async fn run(
        &self,
        ctx: Option<&NodeContext>,
        program: &Path,
        args: &[OsString],
    ) -> Result<std::process::Output, NodeError> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NodeError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "`{}` is not installed (install the Debian package `ffmpeg`)",
                        program.display()
                    ),
                )
            } else {
                NodeError::new(
                    ErrorKind::Io,
                    format!("cannot start `{}`: {e}", program.display()),
                )
            }
        })?;
        // Dropping the `wait_with_output` future drops the child, which kills it.
        let output = child.wait_with_output();
        let cancelled = async {
            match ctx {
                Some(ctx) => ctx.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = output => result.map_err(|e| NodeError::new(
                ErrorKind::Io,
                format!("`{}` failed: {e}", program.display()),
            )),
            () = cancelled => Err(NodeError::cancelled()),
            () = tokio::time::sleep(self.timeout) => Err(NodeError::new(
                ErrorKind::Timeout,
                format!("`{}` ran longer than {:?} and was killed", program.display(), self.timeout),
            )),
        }
    }

    /// Describes a media file with ffprobe. A file ffprobe cannot read is an input error naming
    /// `handle`; what ffprobe said is in it, with `path` shown as `input`.
    pub async fn probe(
        &self,
        ctx: Option<&NodeContext>,
        handle: &str,
        path: &Path,
    ) -> Result<MediaInfo, NodeError> {
        let args: Vec<OsString> = vec![
            "-v".into(),
            "error".into(),
            "-print_format".into(),
            "json".into(),
            "-show_format".into(),
            "-show_streams".into(),
            path.into(),
        ];
        let output = self.run(ctx, &self.ffprobe, &args).await?;
        if !output.status.success() {
            return Err(NodeError::input(
                handle,
                format!(
                    "not a readable video or audio file (ffprobe: {})",
                    last_line(&output.stderr, &[(path, "input")])
                ),
            ));
        }
        let json: Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            NodeError::internal(format!("ffprobe printed something that is not JSON: {e}"))
        })?;
        Ok(parse_probe(&json))
    }
}

fn parse_probe(json: &Value) -> MediaInfo {
    let mut info = MediaInfo::default();
    let streams = json
        .get("streams")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let mut longest_stream: Option<f64> = None;
    for stream in streams {
        let kind = stream.get("codec_type").and_then(Value::as_str);
        let attached_pic = stream
            .pointer("/disposition/attached_pic")
            .and_then(Value::as_i64)
            == Some(1);
        if let Some(d) = stream
            .get("duration")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<f64>().ok())
        {
            longest_stream = Some(longest_stream.map_or(d, |l: f64| l.max(d)));
        }
        match kind {
            Some("video") if !attached_pic && !info.has_video => {
                info.has_video = true;
                info.width = stream
                    .get("width")
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok());
                info.height = stream
                    .get("height")
                    .and_then(Value::as_u64)
                    .and_then(|v| u32::try_from(v).ok());
                info.fps = ["avg_frame_rate", "r_frame_rate"]
                    .iter()
                    .filter_map(|k| stream.get(*k).and_then(Value::as_str))
                    .find_map(parse_rate);
            }
            Some("audio") => info.has_audio = true,
            _ => {}
        }
    }
    info.duration = json
        .pointer("/format/duration")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|d| d.is_finite() && *d > 0.0)
        .or(longest_stream);
    info
}

/// "30000/1001" → 29.97; "0/0" → None.
fn parse_rate(rate: &str) -> Option<f64> {
    let (n, d) = rate.split_once('/')?;
    let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
    (d > 0.0 && n > 0.0).then(|| n / d)
}

/// The last line a program wrote to `stderr`, for an error message, with each of `files` (the
/// temporary files the program was given) replaced by what it is (`input`, `output`): the user
/// learns what went wrong with their media, not where the node kept it.
fn last_line(stderr: &[u8], files: &[(&Path, &str)]) -> String {
    let mut text = String::from_utf8_lossy(stderr).into_owned();
    for (path, shown) in files {
        text = text.replace(&*path.to_string_lossy(), shown);
    }
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// Describes in-memory media with ffprobe (through a temporary file); used to fill in the fps
/// and duration of stored video and audio assets.
pub async fn probe_bytes(ctx: &NodeContext, bytes: &[u8]) -> Result<MediaInfo, NodeError> {
    let tools = FfmpegTools::default();
    let dir = temp_dir()?;
    let path = dir.path().join("media");
    write_file(&path, bytes).await?;
    tools.probe(Some(ctx), "media", &path).await
}

fn temp_dir() -> Result<tempfile::TempDir, NodeError> {
    tempfile::Builder::new()
        .prefix("gatewai-media-")
        .tempdir()
        .map_err(|e| NodeError::new(ErrorKind::Io, format!("cannot create a temporary dir: {e}")))
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    tokio::fs::write(path, bytes).await.map_err(|e| {
        NodeError::new(
            ErrorKind::Io,
            format!("cannot write the media to a temporary file: {e}"),
        )
    })
}

/// The latest time ffmpeg can seek to or cut at, in seconds: it counts time in 64-bit
/// microseconds. A later time is a config error naming its field, whether or not the media's
/// duration is known.
pub const MAX_SECONDS: f64 = (i64::MAX / 1_000_000) as f64;

/// The message for a time past [`MAX_SECONDS`].
fn beyond_reach() -> String {
    format!("a time beyond {MAX_SECONDS} s (about 292 000 years) is past what ffmpeg can seek to")
}

/// A point in a media file: seconds, or a percentage of its duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timestamp {
    /// Seconds from the start.
    Seconds(f64),
    /// A percentage (0–100) of the duration.
    Percent(f64),
}

impl Timestamp {
    /// Parses `"12.5"`, `"00:01:02.5"`, `"01:02"` or `"50%"` (surrounding spaces allowed), or a
    /// JSON number of seconds (at most [`MAX_SECONDS`]). A message saying what is wrong
    /// otherwise.
    pub fn parse(value: &Value) -> Result<Timestamp, String> {
        let ts = match value {
            Value::Number(n) => Timestamp::Seconds(n.as_f64().ok_or_else(|| {
                format!("`{}` is not a number of seconds", crate::error::shown(n))
            })?),
            Value::String(s) => Self::parse_str(s)?,
            Value::Null => Timestamp::Seconds(0.0),
            other => {
                return Err(format!(
                    "expected seconds (\"12.5\"), a clock time (\"00:01:02.5\") or a percentage (\"50%\"), got {}",
                    crate::error::shown(other)
                ));
            }
        };
        match ts {
            Timestamp::Seconds(s) if !s.is_finite() || s < 0.0 => {
                Err(format!("{s} seconds is not a time in the media"))
            }
            Timestamp::Seconds(s) if s > MAX_SECONDS => Err(beyond_reach()),
            Timestamp::Percent(p) if !p.is_finite() || !(0.0..=100.0).contains(&p) => {
                Err(format!("{p}% is outside 0–100%"))
            }
            ok => Ok(ok),
        }
    }

    fn parse_str(text: &str) -> Result<Timestamp, String> {
        let s = text.trim();
        let bad = || {
            format!(
                "`{}` is not seconds (\"12.5\"), a clock time (\"00:01:02.5\") or a percentage (\"50%\")",
                crate::error::shown(&text)
            )
        };
        if s.is_empty() {
            return Ok(Timestamp::Seconds(0.0));
        }
        if let Some(p) = s.strip_suffix('%') {
            return p
                .trim()
                .parse::<f64>()
                .map(Timestamp::Percent)
                .map_err(|_| bad());
        }
        if s.contains(':') {
            let parts: Vec<&str> = s.split(':').collect();
            if parts.len() > 3 {
                return Err(bad());
            }
            let mut seconds = 0.0;
            for (i, part) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let ok = !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_digit() || (last && c == '.'));
                if !ok {
                    return Err(bad());
                }
                let v: f64 = part.parse().map_err(|_| bad())?;
                if i > 0 && v >= 60.0 {
                    return Err(format!(
                        "`{}`: minutes and seconds must be below 60",
                        crate::error::shown(&text)
                    ));
                }
                seconds = seconds * 60.0 + v;
            }
            return Ok(Timestamp::Seconds(seconds));
        }
        // Plain seconds; reject "inf"/"nan" spellings that f64 parsing accepts.
        if !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E'))
        {
            return Err(bad());
        }
        s.parse::<f64>().map(Timestamp::Seconds).map_err(|_| bad())
    }
}

/// The **ExtractFrame** node: the frame of the `video` input at config `timestamp` (seconds,
/// clock time or percentage of the duration), as a PNG image.
#[derive(Debug)]
pub struct ExtractFrame {
    template: NodeTemplate,
    tools: FfmpegTools,
}

impl ExtractFrame {
    /// The node with the default tools (`ffmpeg`/`ffprobe` on `PATH`, 5 minute timeout).
    pub fn new() -> Self {
        Self::with_tools(FfmpegTools::default())
    }

    /// The node with the given tools.
    pub fn with_tools(tools: FfmpegTools) -> Self {
        let template = NodeTemplate::new("ExtractFrame", "Extract Frame", "Video")
            .description("Takes one frame of a video as a PNG image.")
            .transient()
            .aliases(&["extractFrame", "extract_frame"])
            .handle(
                HandleTemplate::input("video", "Video", &[DataType::Video])
                    .required()
                    .aliases(&["video_url"]),
            )
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Image]).aliases(&["output"]),
            )
            .default_config(serde_json::json!({ "timestamp": "0" }))
            .import_hook(|data| {
                let mut config = data.clone();
                config.remove("label");
                config.remove("status");
                let ts = data.get("timestamp").cloned().unwrap_or(Value::Null);
                Timestamp::parse(&ts).map_err(|m| format!("timestamp: {m}"))?;
                config.insert("timestamp".into(), ts);
                Ok(Value::Object(config))
            });
        ExtractFrame { template, tools }
    }
}

impl Default for ExtractFrame {
    fn default() -> Self {
        Self::new()
    }
}

fn config_field<'a>(config: &'a Value, field: &str) -> Option<&'a Value> {
    config.get(field).filter(|v| !v.is_null())
}

#[async_trait]
impl Node for ExtractFrame {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        match Timestamp::parse(config_field(config, "timestamp").unwrap_or(&Value::Null)) {
            Ok(_) => Vec::new(),
            Err(m) => vec![("timestamp".to_owned(), m)],
        }
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let timestamp =
            Timestamp::parse(config_field(ctx.raw_config(), "timestamp").unwrap_or(&Value::Null))
                .map_err(|m| NodeError::config("timestamp", m))?;
        let (asset, _, bytes) = read_input_media(
            ctx,
            inputs,
            "video",
            &[DataType::Video],
            self.tools.max_input_bytes,
        )
        .await?;
        let mime = crate::media_util::detect_mime(&bytes);
        if mime.and_then(crate::media_util::data_type_for_mime) != Some(DataType::Video) {
            return Err(NodeError::input(
                "video",
                format!(
                    "`{}` is not a video (detected {})",
                    crate::error::shown(&asset.name),
                    mime.unwrap_or("an unknown type")
                ),
            ));
        }
        let dir = temp_dir()?;
        let input = dir.path().join("input");
        write_file(&input, &bytes).await?;
        drop(bytes);
        let info = self.tools.probe(Some(ctx), "video", &input).await?;
        if !info.has_video {
            return Err(NodeError::input(
                "video",
                format!(
                    "`{}` is not a video (it has no video stream)",
                    crate::error::shown(&asset.name)
                ),
            ));
        }
        let seconds = frame_time(timestamp, &info)?;
        let output = dir.path().join("frame.png");
        let args: Vec<OsString> = vec![
            "-nostdin".into(),
            "-v".into(),
            "error".into(),
            "-ss".into(),
            format!("{seconds:.6}").into(),
            "-i".into(),
            input.clone().into(),
            "-map".into(),
            "0:v:0".into(),
            "-frames:v".into(),
            "1".into(),
            "-f".into(),
            "image2".into(),
            "-c:v".into(),
            "png".into(),
            "-y".into(),
            output.clone().into(),
        ];
        let result = self.tools.run(Some(ctx), &self.tools.ffmpeg, &args).await?;
        if !result.status.success() {
            return Err(NodeError::input(
                "video",
                format!(
                    "ffmpeg could not decode a frame at {seconds} s: {}",
                    last_line(&result.stderr, &[(&input, "input"), (&output, "output")])
                ),
            ));
        }
        // ffmpeg exits 0 and writes nothing when the seek lands at or past the end.
        let frame = tokio::fs::read(&output).await.unwrap_or_default();
        if frame.is_empty() {
            return Err(NodeError::config(
                "timestamp",
                format!(
                    "no frame at {seconds} s (the video lasts {})",
                    info.duration
                        .map_or_else(|| "an unknown time".to_owned(), |d| format!("{d} s"))
                ),
            ));
        }
        let name = format!(
            "{}-frame-{seconds:.3}s.png",
            file_stem(&asset.name, "media")
        );
        let stored = store_bytes(ctx, &name, frame.into()).await?;
        Ok(Outputs::one("result", Item::file(DataType::Image, stored)))
    }
}

/// The time to seek to. Percentages of the full duration are kept one frame inside the end
/// (so "100%" is the last frame); seconds past the end are a config error.
fn frame_time(timestamp: Timestamp, info: &MediaInfo) -> Result<f64, NodeError> {
    let frame = info.fps.map_or(0.04, |f| 1.0 / f);
    match (timestamp, info.duration) {
        (Timestamp::Seconds(s), Some(d)) if s >= d => Err(NodeError::config(
            "timestamp",
            format!("{s} s is past the end of the video ({d} s)"),
        )),
        (Timestamp::Seconds(s), _) => Ok(s),
        (Timestamp::Percent(p), Some(d)) => Ok((p / 100.0 * d).min((d - frame).max(0.0))),
        (Timestamp::Percent(_), None) => Err(NodeError::config(
            "timestamp",
            "a percentage needs the video's duration, which ffprobe could not tell",
        )),
    }
}

/// The **MediaCut** node: the part of the `media` input (video or audio) between config
/// `startSec` and `endSec` (null, or past the media's end = to the end), re-encoded so the cut
/// is frame-exact.
#[derive(Debug)]
pub struct MediaCut {
    template: NodeTemplate,
    tools: FfmpegTools,
}

impl MediaCut {
    /// The node with the default tools.
    pub fn new() -> Self {
        Self::with_tools(FfmpegTools::default())
    }

    /// The node with the given tools.
    pub fn with_tools(tools: FfmpegTools) -> Self {
        let template = NodeTemplate::new("MediaCut", "Media Cut", "Video")
            .description("Cuts a time range out of a video or audio file.")
            .aliases(&["mediaCut", "media_cut"])
            .handle(
                HandleTemplate::input("media", "Media", &[DataType::Video, DataType::Audio])
                    .required(),
            )
            .handle(
                HandleTemplate::output("result", "Result", &[DataType::Video, DataType::Audio])
                    .aliases(&["output"]),
            )
            .default_config(serde_json::json!({ "startSec": 0, "endSec": null }))
            .import_hook(|data| {
                let mut config = data.clone();
                config.remove("label");
                config.remove("status");
                for (snake, camel) in [("start_sec", "startSec"), ("end_sec", "endSec")] {
                    if let Some(v) = config.remove(snake) {
                        config.entry(camel).or_insert(v);
                    }
                }
                Ok(Value::Object(config))
            });
        MediaCut { template, tools }
    }
}

impl Default for MediaCut {
    fn default() -> Self {
        Self::new()
    }
}

/// `startSec`/`endSec` of a MediaCut config, checked (a start past [`MAX_SECONDS`] is an error;
/// an end past it cuts to the end).
fn cut_range(config: &Value) -> Result<(f64, Option<f64>), FieldError> {
    let seconds = |field: &str| match number(config, field)? {
        Some(s) if s < 0.0 => Err((
            field.to_owned(),
            format!("{s} s is negative; expected seconds ≥ 0"),
        )),
        other => Ok(other),
    };
    let start = seconds("startSec")?.unwrap_or(0.0);
    if start > MAX_SECONDS {
        return Err(("startSec".to_owned(), beyond_reach()));
    }
    let end = seconds("endSec")?;
    if let Some(end) = end
        && end <= start
    {
        return Err((
            "endSec".to_owned(),
            format!("{end} s is not after startSec ({start} s)"),
        ));
    }
    Ok((start, end))
}

/// The file extension (which picks ffmpeg's muxer and default encoders) for a cut of `mime`.
fn cut_extension(mime: &str, data_type: DataType) -> &'static str {
    match (data_type, mime) {
        (DataType::Audio, "audio/mpeg") => "mp3",
        (DataType::Audio, "audio/x-wav" | "audio/wav") => "wav",
        (DataType::Audio, "audio/ogg") => "ogg",
        (DataType::Audio, "audio/x-flac" | "audio/flac") => "flac",
        (DataType::Audio, _) => "m4a",
        (_, "video/webm") => "webm",
        (_, "video/x-matroska") => "mkv",
        _ => "mp4",
    }
}

#[async_trait]
impl Node for MediaCut {
    fn template(&self) -> &NodeTemplate {
        &self.template
    }

    fn check_config(&self, config: &Value) -> Vec<(String, String)> {
        cut_range(config).err().into_iter().collect()
    }

    async fn execute(&self, ctx: &NodeContext, inputs: &Inputs) -> Result<Outputs, NodeError> {
        let (start, end) =
            cut_range(ctx.raw_config()).map_err(|(f, m)| NodeError::config(&f, m))?;
        let (asset, data_type, bytes) = read_input_media(
            ctx,
            inputs,
            "media",
            &[DataType::Video, DataType::Audio],
            self.tools.max_input_bytes,
        )
        .await?;
        let mime = crate::media_util::detect_mime(&bytes)
            .filter(|m| {
                crate::media_util::data_type_for_mime(m).is_some_and(|t| t != DataType::Image)
            })
            .ok_or_else(|| {
                NodeError::input(
                    "media",
                    format!(
                        "`{}` is not a video or audio file",
                        crate::error::shown(&asset.name)
                    ),
                )
            })?;
        let dir = temp_dir()?;
        let input = dir.path().join("input");
        write_file(&input, &bytes).await?;
        drop(bytes);
        let info = self.tools.probe(Some(ctx), "media", &input).await?;
        let usable = match data_type {
            DataType::Video => info.has_video,
            _ => info.has_audio,
        };
        if !usable {
            return Err(NodeError::input(
                "media",
                format!(
                    "`{}` has no {} stream",
                    crate::error::shown(&asset.name),
                    data_type.as_str().to_lowercase()
                ),
            ));
        }
        if let Some(d) = info.duration
            && start >= d
        {
            return Err(NodeError::config(
                "startSec",
                format!("{start} s is past the end of the media ({d} s)"),
            ));
        }
        // An end at or past the media's end cuts to the end (however far past: ffmpeg's `-t`
        // cannot express every finite number), and so does an end past what ffmpeg can express
        // when the duration is unknown.
        let end = end.filter(|e| info.duration.is_none_or(|d| *e < d) && *e - start <= MAX_SECONDS);
        let ext = cut_extension(mime, data_type);
        let output = dir.path().join(format!("cut.{ext}"));
        let mut args: Vec<OsString> = vec![
            "-nostdin".into(),
            "-v".into(),
            "error".into(),
            "-ss".into(),
            format!("{start:.6}").into(),
            "-i".into(),
            input.clone().into(),
        ];
        if let Some(end) = end {
            args.push("-t".into());
            args.push(format!("{:.6}", end - start).into());
        }
        if data_type == DataType::Audio {
            args.push("-vn".into());
        }
        args.extend(["-y".into(), output.clone().into()]);
        let result = self.tools.run(Some(ctx), &self.tools.ffmpeg, &args).await?;
        if !result.status.success() {
            return Err(NodeError::input(
                "media",
                format!(
                    "ffmpeg could not cut the media: {}",
                    last_line(&result.stderr, &[(&input, "input"), (&output, "output")])
                ),
            ));
        }
        let cut = tokio::fs::read(&output).await.unwrap_or_default();
        // For a range holding no frame (or no sample) ffmpeg writes a valid but empty container:
        // a cut counts only when ffprobe finds its stream and a duration in it.
        let has_media = !cut.is_empty()
            && match self.tools.probe(Some(ctx), "media", &output).await {
                Ok(cut_info) => {
                    cut_info.duration.is_some()
                        && match data_type {
                            DataType::Video => cut_info.has_video,
                            _ => cut_info.has_audio,
                        }
                }
                Err(e) if e.kind() == ErrorKind::InvalidInput => false,
                Err(e) => return Err(e),
            };
        if !has_media {
            return Err(NodeError::config(
                "startSec",
                format!(
                    "the range from {start} s to {} holds no {} (the media lasts {})",
                    end.map_or_else(|| "the end".to_owned(), |e| format!("{e} s")),
                    match data_type {
                        DataType::Video => "video frame",
                        _ => "audio",
                    },
                    info.duration
                        .map_or_else(|| "an unknown time".to_owned(), |d| format!("{d} s"))
                ),
            ));
        }
        let name = format!("{}-cut.{ext}", file_stem(&asset.name, "media"));
        let stored = store_bytes(ctx, &name, cut.into()).await?;
        Ok(Outputs::one("result", Item::file(data_type, stored)))
    }
}

/// Registers ExtractFrame and MediaCut with the default tools.
pub fn register(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    registry.register(ExtractFrame::new())?;
    registry.register(MediaCut::new())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_parse() {
        assert_eq!(
            Timestamp::parse(&json!("12.5")),
            Ok(Timestamp::Seconds(12.5))
        );
        assert_eq!(Timestamp::parse(&json!(3)), Ok(Timestamp::Seconds(3.0)));
        assert_eq!(
            Timestamp::parse(&json!("00:01:02.5")),
            Ok(Timestamp::Seconds(62.5))
        );
        assert_eq!(
            Timestamp::parse(&json!("01:02")),
            Ok(Timestamp::Seconds(62.0))
        );
        assert_eq!(
            Timestamp::parse(&json!(" 50% ")),
            Ok(Timestamp::Percent(50.0))
        );
        for bad in [
            json!("abc"),
            json!("inf"),
            json!("NaN"),
            json!("-1"),
            json!("150%"),
            json!("1:75"),
            json!("1::2"),
            json!(true),
        ] {
            assert!(Timestamp::parse(&bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn import_keeps_a_valid_timestamp_and_rejects_garbage() {
        let node = ExtractFrame::new();
        let hook = node.template().import_hook.clone().unwrap();
        let data = json!({"label": "Frame", "timestamp": "50%", "status": "idle"});
        let config = (hook.0)(data.as_object().unwrap()).unwrap();
        assert_eq!(config, json!({"timestamp": "50%"}));
        let data = json!({"timestamp": 12.5});
        assert_eq!(
            (hook.0)(data.as_object().unwrap()).unwrap(),
            json!({"timestamp": 12.5})
        );
        let data = json!({"timestamp": "soon"});
        let err = (hook.0)(data.as_object().unwrap()).unwrap_err();
        assert!(err.contains("timestamp"), "{err}");
    }

    #[test]
    fn frame_rates_parse() {
        assert_eq!(parse_rate("25/1"), Some(25.0));
        assert_eq!(parse_rate("0/0"), None);
    }

    #[test]
    fn cut_ranges_are_checked() {
        assert_eq!(
            cut_range(&json!({"startSec": 1, "endSec": null})),
            Ok((1.0, None))
        );
        assert_eq!(
            cut_range(&json!({"startSec": 3, "endSec": 2}))
                .unwrap_err()
                .0,
            "endSec"
        );
        assert_eq!(
            cut_range(&json!({"startSec": -1})).unwrap_err().0,
            "startSec"
        );
    }
}
