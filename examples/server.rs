//! The HTTP server: the workflow app's REST API with live run events.
//!
//! ```text
//! GATEWAI_AUTH_SECRET=change-me-to-a-long-secret cargo run --example server
//! curl -H 'Authorization: Bearer change-me-to-a-long-secret:alice' localhost:3000/api/workflows
//! ```
//!
//! Environment:
//! - `DATABASE_URL`: `sqlite://gatewai-server.db?mode=rwc` (default) or
//!   `postgres://user:password@host/db`;
//! - `GATEWAI_ASSETS_DIR`: where uploaded and produced media are kept (default
//!   `gatewai-server-assets`);
//! - `GATEWAI_AUTH_SECRET` (required, 16+ characters): bearer tokens are `<secret>:<user id>`;
//! - `GATEWAI_ADDR`: listen address (default `127.0.0.1:3000`);
//! - `GATEWAI_CORS_ORIGINS`: comma-separated origins allowed to call the API (or `*`);
//! - `GATEWAI_JSON_LIMIT`, `GATEWAI_UPLOAD_LIMIT`: body limits in bytes;
//! - `GATEWAI_KEEP_RUNS_DAYS`, `GATEWAI_KEEP_RUNS` (per workflow), `GATEWAI_KEEP_CACHE_DAYS`,
//!   `GATEWAI_KEEP_CACHE_ENTRIES`: retention of run history and result-cache entries, applied
//!   at start and hourly (unset: kept for ever; see [`gatewai_examples::retention`]);
//! - `GEMINI_API_KEY` / `OPENAI_API_KEY`: for the AI nodes and `/api/llm/execute`;
//! - `RUST_LOG`: log filter (default `info`).

use gatewai_examples::api::{self as server, AppState, ServerConfig, SharedSecretAuth};
use gatewai_examples::retention::{PRUNE_EVERY, RetentionSettings};
use gatewai_examples::{Error, Result, host};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<()> {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let database_url = env("DATABASE_URL", "sqlite://gatewai-server.db?mode=rwc");
    let assets_dir = env("GATEWAI_ASSETS_DIR", "gatewai-server-assets");
    let addr = env("GATEWAI_ADDR", "127.0.0.1:3000");
    let secret = std::env::var("GATEWAI_AUTH_SECRET").map_err(|_| {
        Error::Config(
            "set GATEWAI_AUTH_SECRET (16+ characters); clients send `Authorization: Bearer <secret>:<user id>`".into(),
        )
    })?;
    let auth = Arc::new(SharedSecretAuth::new(secret)?);
    let retention = RetentionSettings::from_env()?;
    let store = gatewai_store::Store::open(&database_url).await?;
    let assets = host::fs_assets(std::path::Path::new(&assets_dir), &store).await?;
    let state = AppState::new(
        store,
        assets,
        host::registry()?,
        auth,
        ServerConfig::from_env()?,
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|e| Error::io(&addr, e))?;
    tracing::info!(%addr, store = ?state.store().kind(), "listening");
    let pruner = retention.spawn(state.store().clone(), PRUNE_EVERY);
    let served = server::serve(listener, state, server::shutdown_signal()).await;
    if let Some(pruner) = pruner {
        pruner.abort();
    }
    served
}
