//! # gatewai-examples
//!
//! The hosts a new user meets first, built from the library crates:
//!
//! - [`cli`]: the command-line runner (`cargo run --release --example gatewai -- run
//!   examples/workflows/image-pipeline.json`): validate, run with live progress, print results,
//!   write outputs; run history and Mermaid graphs.
//! - [`api`]: the HTTP server (`cargo run --example server`): the workflow app's REST API
//!   with live run events over SSE, on SQLite or PostgreSQL.
//! - [`host`]: what both share (the engine composed with a store, workflow files, checks).
//! - [`retention`]: how long the server keeps run history and result-cache entries.
#![warn(missing_docs)]

pub mod api;
pub mod cli;
pub mod error;
pub mod host;
pub mod retention;

pub use error::{Error, Result};
