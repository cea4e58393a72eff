//! The HTTP server: the workflow app's REST API over an engine and a store.
//!
//! | Method | Path | |
//! |---|---|---|
//! | GET | /api/workflows | the caller's workflows |
//! | POST | /api/workflows | create `{ name, document }` |
//! | GET / PUT / DELETE | /api/workflows/{id} | read, update (validated), delete |
//! | POST | /api/workflows/{id}/run | start a run (whole, or `{ "nodeIds": [...] }`); 202 with the run id |
//! | GET | /api/workflows/{id}/runs | run history with node executions |
//! | GET | /api/runs/{id}/events | the run's events as server-sent events, live |
//! | POST | /api/llm/execute | one direct LLM call |
//! | GET | /api/assets | the caller's assets (uploads and what their runs produced), newest grant first (`limit`, `offset`) |
//! | POST | /api/assets | upload a file (multipart field `file`) |
//! | GET | /api/assets/{id} | download an asset (owner only; streamed, with its `Content-Length` from the record: bytes that differ from it break the download; one `Range: bytes=…` answered 206, or 416 past the end; an `ETag` for `If-None-Match` (304) and `If-Range`) |
//!
//! [`router`] builds the axum router from an [`AppState`]; [`serve`] runs it until ctrl-c or
//! SIGTERM, then cancels running runs (recorded as CANCELLED) and stops.
//!
//! A body over its route's limit is refused with a 413 (`details.limit` names the limit): at
//! once when its `Content-Length` says so, else when the limit is reached. Whatever a handler
//! leaves of a request body is read and discarded after the response (within bounds), so that
//! a client still sending it reads the response rather than a reset connection.

pub mod auth;
pub mod events;
mod linger;
pub mod ownership;
mod routes;

pub use auth::{AuthUser, Authenticator, Identity, SharedSecretAuth};
pub use events::RunHub;

use crate::error::{Error, Result};
use crate::host;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use bytes::Bytes;
use gatewai_core::{AssetStore, Engine, NodeRegistry};
use gatewai_store::prelude::*;
use serde::de::DeserializeOwned;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Settings of the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest JSON body accepted, in bytes.
    pub json_limit: usize,
    /// Largest upload accepted by `POST /api/assets`, in bytes.
    pub upload_limit: usize,
    /// Origins a browser may call the API from (`["*"]` for any; empty for none).
    pub cors_origins: Vec<String>,
    /// How long shutdown waits for cancelled runs to be recorded.
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            json_limit: 2 * 1024 * 1024,
            upload_limit: 50 * 1024 * 1024,
            cors_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Settings from the environment: `GATEWAI_JSON_LIMIT`, `GATEWAI_UPLOAD_LIMIT` (bytes) and
    /// `GATEWAI_CORS_ORIGINS` (comma-separated origins, or `*`); unset ones keep the defaults.
    pub fn from_env() -> Result<Self> {
        let mut config = ServerConfig::default();
        let number = |name: &str| -> Result<Option<usize>> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| Error::Config(format!("{name} must be a number of bytes"))),
                Err(_) => Ok(None),
            }
        };
        if let Some(n) = number("GATEWAI_JSON_LIMIT")? {
            config.json_limit = n;
        }
        if let Some(n) = number("GATEWAI_UPLOAD_LIMIT")? {
            config.upload_limit = n;
        }
        if let Ok(origins) = std::env::var("GATEWAI_CORS_ORIGINS") {
            config.cors_origins = origins
                .split(',')
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect();
        }
        Ok(config)
    }
}

/// What every handler shares: the store, the engine, the run hub, the authenticator and the
/// runs in flight. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    store: Store,
    engine: Engine,
    recorder: Arc<RunRecorder>,
    assets: Arc<dyn AssetStore>,
    hub: Arc<RunHub>,
    auth: Arc<dyn Authenticator>,
    config: ServerConfig,
    known_users: Mutex<HashSet<String>>,
    running: Mutex<HashMap<String, CancellationToken>>,
    tasks: TaskTracker,
    shutting_down: AtomicBool,
    /// Cancelled when shutdown begins: connections stop lingering on unread request bodies.
    closing: CancellationToken,
}

impl AppState {
    /// Composes the state: an engine running `registry`'s nodes over `store` (result cache,
    /// run recorder) and `assets`, with the run hub as an observer. Runs a previous process
    /// left RUNNING are marked FAILED ("interrupted").
    pub async fn new(
        store: Store,
        assets: Arc<dyn AssetStore>,
        registry: NodeRegistry,
        auth: Arc<dyn Authenticator>,
        config: ServerConfig,
    ) -> Result<Self> {
        for run in store.find_interrupted_runs().await? {
            tracing::warn!(run_id = %run.id, "marking a run left running by an earlier process as interrupted");
            store.mark_interrupted(&run.id).await?;
        }
        let hub = Arc::new(RunHub::new(256));
        let grants = Arc::new(ownership::AssetGrants::new(store.clone(), hub.clone()));
        let (engine, recorder) =
            host::engine(registry, &store, assets.clone(), vec![grants, hub.clone()])?;
        Ok(AppState {
            inner: Arc::new(StateInner {
                store,
                engine,
                recorder,
                assets,
                hub,
                auth,
                config,
                known_users: Mutex::new(HashSet::new()),
                running: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                shutting_down: AtomicBool::new(false),
                closing: CancellationToken::new(),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The engine's run recorder.
    pub fn recorder(&self) -> &Arc<RunRecorder> {
        &self.inner.recorder
    }

    /// The asset store.
    pub fn assets(&self) -> &Arc<dyn AssetStore> {
        &self.inner.assets
    }

    /// The run hub.
    pub fn hub(&self) -> &Arc<RunHub> {
        &self.inner.hub
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &Arc<dyn Authenticator> {
        &self.inner.auth
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// How many runs are in flight.
    pub fn running_runs(&self) -> usize {
        lock(&self.inner.running).len()
    }

    /// Makes sure the identified user exists in the store (once per process and user).
    pub async fn ensure_user(&self, identity: &Identity) -> Result<()> {
        if lock(&self.inner.known_users).contains(&identity.user_id) {
            return Ok(());
        }
        let email = identity
            .email
            .clone()
            .unwrap_or_else(|| format!("{}@users.invalid", identity.user_id));
        self.inner
            .store
            .upsert_user(&NewUser::new(identity.user_id.clone(), email))
            .await?;
        lock(&self.inner.known_users).insert(identity.user_id.clone());
        Ok(())
    }

    /// Whether shutdown has begun (no new runs start).
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Tracks a started run: its cancellation, and the task finishing it.
    fn track_run(
        &self,
        run_id: &str,
        cancel: CancellationToken,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        lock(&self.inner.running).insert(run_id.to_owned(), cancel);
        let state = self.clone();
        let run_id = run_id.to_owned();
        self.inner.tasks.spawn(async move {
            task.await;
            lock(&state.inner.running).remove(&run_id);
        });
    }

    /// Stops starting runs, cancels the running ones and waits (up to the configured grace)
    /// until each is finished and recorded as CANCELLED. Connections stop lingering on
    /// unread request bodies at once (see `linger`), so that the server's graceful shutdown
    /// does not wait for clients still sending them.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.inner.closing.cancel();
        let running: Vec<CancellationToken> = lock(&self.inner.running).values().cloned().collect();
        if !running.is_empty() {
            tracing::info!(runs = running.len(), "cancelling running runs");
        }
        for cancel in running {
            cancel.cancel();
        }
        self.inner.tasks.close();
        if tokio::time::timeout(self.inner.config.shutdown_grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("runs still finishing after the shutdown grace period");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The API router over `state`: routes, body limits, CORS, request tracing, JSON 404s, and
/// the unread rest of request bodies discarded after the response.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    routes::routes(config.upload_limit)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.json_limit))
        .layer(cors_layer(&config.cors_origins))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            state.inner.closing.clone(),
            linger::linger_on_unread_body,
        ))
        .with_state(state)
}

/// CORS for the configured origins (none: no CORS headers; `*`: any origin).
fn cors_layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(3600))
}

/// Serves the API on `listener` until `signal` resolves, then shuts down gracefully: running
/// runs are cancelled and recorded, open event streams end with their runs, and the server
/// stops.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(state.clone());
    let addr = listener.local_addr().ok();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            signal.await;
            tracing::info!("shutting down");
            state.shutdown().await;
        })
        .await
        .map_err(|e| match addr {
            Some(addr) => Error::io(addr.to_string(), e),
            None => Error::io("listener", e),
        })
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// A JSON body: a 413 when it is over the limit (at once when its `Content-Length` is), a 400
/// naming the problem when it is not valid JSON or does not have the expected shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        let limit = state.config().json_limit;
        refuse_declared_over(req.headers(), limit)?;
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| body_error(rejection.status(), limit, rejection.body_text()))?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A 413 for a body whose `Content-Length` is over `limit`, before any of it is read (the
/// rest is discarded after the response; see [`linger`]).
pub(crate) fn refuse_declared_over(headers: &HeaderMap, limit: usize) -> Result<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > u64::try_from(limit).unwrap_or(u64::MAX) => {
            Err(Error::PayloadTooLarge { limit })
        }
        _ => Ok(()),
    }
}

/// The error for a body that could not be read.
pub(crate) fn body_error(status: axum::http::StatusCode, limit: usize, text: String) -> Error {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge { limit }
    } else {
        Error::bad_request(format!("cannot read the request body: {text}"))
    }
}

/// Parses a JSON body; an empty body is `{}` (so optional bodies may be left out).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    serde_json::from_slice(bytes).map_err(|e| {
        let what = if e.is_syntax() || e.is_eof() {
            "the body is not valid JSON"
        } else {
            "the body does not have the expected shape"
        };
        // serde quotes an unknown field or a value of the wrong type whole (a body may hold
        // megabytes of it): briefly, control characters escaped.
        Error::bad_request(format!(
            "{what}: {}",
            gatewai_core::error::shown_up_to(&e, 400)
        ))
    })
}
