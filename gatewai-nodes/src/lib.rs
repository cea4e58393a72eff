//! # gatewai-nodes
//!
//! The built-in node types of Gatewai, each behind a cargo feature so that a host pays only for
//! what it uses:
//!
//! | feature | node types |
//! |---|---|
//! | (always) | Preview, Export |
//! | `text` | Text, TextMerger, Note |
//! | `image` | Import (`File`), Crop, Resize, Blur, Modulate, Compositor |
//! | `video` | ExtractFrame, MediaCut (ffmpeg and ffprobe processes) |
//! | `llm` | LLM, ImageGen, TextToSpeech, SpeechToText (Gemini and OpenAI-compatible providers) |
//!
//! [`register_all`] adds every enabled node type to a registry.
#![warn(missing_docs)]

pub mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod media_util;
pub mod output;

#[cfg(feature = "image")]
pub mod media;

#[cfg(feature = "video")]
pub mod video;

#[cfg(feature = "text")]
pub mod text;

#[cfg(feature = "llm")]
pub mod ai;

pub use error::Error;

use gatewai_core::NodeRegistry;

/// Adds every node type enabled by this crate's features to `registry`. The AI nodes read
/// their provider settings from the environment (see [`ai`]); use the modules' own `register`
/// functions to configure them otherwise.
pub fn register_all(registry: &mut NodeRegistry) -> gatewai_core::Result<()> {
    output::register(registry)?;
    #[cfg(feature = "text")]
    text::register(registry)?;
    #[cfg(feature = "image")]
    media::register(registry)?;
    #[cfg(feature = "video")]
    video::register(registry)?;
    #[cfg(feature = "llm")]
    ai::register(registry)?;
    Ok(())
}
