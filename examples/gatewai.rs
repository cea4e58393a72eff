//! The command-line runner.
//!
//! ```text
//! cargo run --release --example gatewai -- run examples/workflows/image-pipeline.json
//! cargo run --release --example gatewai -- validate examples/workflows/video-frame.json
//! cargo run --release --example gatewai -- runs
//! cargo run --release --example gatewai -- graph examples/workflows/image-pipeline.json
//! ```

use clap::Parser;
use gatewai_examples::cli::{Cli, execute};
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GATEWAI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(execute(&cli, &mut stdout)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
