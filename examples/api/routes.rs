//! The API's handlers.

use super::events::{Subscribe, event_name};
use super::{ApiJson, AppState, AuthUser, body_error, ownership, refuse_declared_over};
use crate::error::{Error, Result};
use crate::host;
use axum::Json;
use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use gatewai_core::{
    Item, NodeContext, NodeRegistry, RunOptions, RunTarget, TemplateSource, TriggerType, Workflow,
};
use gatewai_store::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use std::convert::Infallible;

/// The API routes (state is attached by [`super::router`]).
pub(super) fn routes(upload_limit: usize) -> Router<AppState> {
    Router::new()
        .route("/api/workflows", get(list_workflows).post(create_workflow))
        .route(
            "/api/workflows/{id}",
            get(get_workflow)
                .put(update_workflow)
                .delete(delete_workflow),
        )
        .route("/api/workflows/{id}/run", post(start_run))
        .route("/api/workflows/{id}/runs", get(run_history))
        .route("/api/runs/{id}/events", get(run_events))
        .route("/api/llm/execute", post(llm_execute))
        .route(
            "/api/assets",
            get(list_assets).post(axum::handler::Handler::layer(
                upload_asset,
                DefaultBodyLimit::max(upload_limit),
            )),
        )
        .route("/api/assets/{id}", get(download_asset))
        .route("/health", get(health))
}

/// The JSON 404 of unknown routes.
pub(super) async fn not_found(uri: axum::http::Uri) -> Error {
    Error::not_found("route", uri.path())
}

/// The JSON 405 of a known route asked with a method it does not have.
pub(super) async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Error {
    Error::MethodNotAllowed {
        method: gatewai_core::error::shown(&method.as_str()),
        path: gatewai_core::error::shown(&uri.path()),
    }
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `?limit=&offset=` of listings.
#[derive(Debug, Deserialize)]
struct PageQuery {
    limit: Option<u32>,
    offset: Option<u64>,
}

fn page(query: Result<Query<PageQuery>, QueryRejection>) -> Result<Page> {
    let Query(q) =
        query.map_err(|e| Error::bad_request(format!("bad query string: {}", e.body_text())))?;
    if q.limit == Some(0) {
        return Err(Error::bad_request("limit must be at least 1"));
    }
    Ok(Page::new(
        q.limit.unwrap_or(50).min(Page::MAX_LIMIT),
        q.offset.unwrap_or(0),
    ))
}

async fn list_workflows(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Vec<StoredWorkflow>>> {
    let page = page(query)?;
    Ok(Json(state.store().list_workflows(user.id(), page).await?))
}

/// Body of create and update: a name and a document (a Gatewai canvas or a React Flow
/// document; `data` is accepted for the workflow app's field name).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "data")]
    document: Option<Value>,
}

/// Checks a workflow name: 1 to 200 characters after trimming.
fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(Error::bad_request(
            "field `name`: must be 1 to 200 characters",
        ));
    }
    Ok(name.to_owned())
}

/// Reads a document of either kind and checks its structure (every problem: 422). Required
/// inputs may still be open while a canvas is edited; a run checks them.
fn read_document(document: Value, registry: &NodeRegistry) -> Result<Workflow> {
    let workflow =
        gatewai_core::import::read_document(document, registry).map_err(|e| match e {
            gatewai_core::Error::Import { message } => {
                Error::bad_request(format!("field `document`: {message}"))
            }
            other => other.into(),
        })?;
    gatewai_core::validate::validate_structure(&workflow, registry)?;
    Ok(workflow)
}

async fn create_workflow(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<WorkflowBody>,
) -> Result<(StatusCode, Json<StoredWorkflow>)> {
    let name = check_name(
        body.name
            .as_deref()
            .ok_or_else(|| Error::bad_request("field `name` is required"))?,
    )?;
    let document = match body.document {
        Some(document) => read_document(document, state.engine().registry())?,
        None => Workflow::default(),
    };
    let stored = state
        .store()
        .create_workflow(user.id(), NewWorkflow::new(name, document))
        .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

/// The caller's workflow, or 404.
async fn owned_workflow(state: &AppState, user: &AuthUser, id: &str) -> Result<StoredWorkflow> {
    state
        .store()
        .get_workflow(user.id(), id)
        .await?
        .ok_or_else(|| Error::not_found("workflow", id))
}

async fn get_workflow(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<StoredWorkflow>> {
    Ok(Json(owned_workflow(&state, &user, &id).await?))
}

async fn update_workflow(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<WorkflowBody>,
) -> Result<Json<StoredWorkflow>> {
    owned_workflow(&state, &user, &id).await?;
    let update = WorkflowUpdate {
        name: body.name.as_deref().map(check_name).transpose()?,
        document: body
            .document
            .map(|d| read_document(d, state.engine().registry()))
            .transpose()?,
    };
    Ok(Json(
        state
            .store()
            .update_workflow(user.id(), &id, update)
            .await?,
    ))
}

async fn delete_workflow(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    state.store().delete_workflow(user.id(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `POST /api/workflows/{id}/run`: empty for the whole workflow.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RunRequest {
    #[serde(default)]
    node_ids: Option<Vec<String>>,
}

async fn start_run(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RunRequest>,
) -> Result<(StatusCode, Json<Value>)> {
    if state.is_shutting_down() {
        return Err(Error::ShuttingDown);
    }
    let stored = owned_workflow(&state, &user, &id).await?;
    let target = match body.node_ids {
        None => RunTarget::All,
        Some(ids) if ids.is_empty() => {
            return Err(Error::bad_request(
                "field `nodeIds`: name at least one node, or leave it out to run everything",
            ));
        }
        Some(ids) => {
            let missing: Vec<String> = ids
                .iter()
                .filter(|n| stored.document.node(n).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(Error::bad_request(format!(
                    "field `nodeIds`: the workflow has no node {}",
                    gatewai_core::error::shown_list(&missing, ", ")
                )));
            }
            RunTarget::Nodes(ids)
        }
    };
    // The request, then the graph's problems (all of them, 422), then the assets the document names.
    gatewai_core::validate::validate(&stored.document, state.engine().registry())?;
    ownership::check_assets(state.store(), &stored.document, user.id()).await?;
    let run_id = uuid::Uuid::new_v4().to_string();
    state.hub().register(&run_id, user.id());
    let options = RunOptions {
        target,
        trigger: TriggerType::Manual,
        run_id: Some(run_id.clone()),
        workflow_id: Some(id.clone()),
        // Each user's runs share cached results only among themselves.
        cache_scope: Some(user.id().to_owned()),
        ..RunOptions::default()
    };
    let handle = match state.engine().start(stored.document, options) {
        Ok(handle) => handle,
        Err(e) => {
            state.hub().remove(&run_id);
            return Err(e.into());
        }
    };
    let cancel = handle.cancellation();
    let finisher = {
        let state = state.clone();
        let owner = user.id().to_owned();
        let workflow_id = id.clone();
        async move {
            match handle.wait().await {
                Ok(outcome) => {
                    host::settle_recording(state.recorder(), &outcome).await;
                    if let Err(e) =
                        write_back(&state, &owner, &workflow_id, &outcome.workflow).await
                    {
                        tracing::warn!(workflow_id = %workflow_id, error = %e, "cannot write run results back");
                    }
                }
                Err(e) => tracing::error!(error = %e, "run task failed"),
            }
        }
    };
    state.track_run(&run_id, cancel, finisher);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "runId": run_id, "workflowId": id })),
    ))
}

/// Writes a finished run's results into the stored canvas (which may have been edited
/// meanwhile: only node results change). A workflow deleted during the run is left alone.
async fn write_back(state: &AppState, owner: &str, id: &str, finished: &Workflow) -> Result<()> {
    let Some(mut stored) = state.store().get_workflow(owner, id).await? else {
        return Ok(());
    };
    host::merge_results(&mut stored.document, finished);
    let update = WorkflowUpdate {
        name: None,
        document: Some(stored.document),
    };
    match state.store().update_workflow(owner, id, update).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == gatewai_store::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn run_history(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Vec<RunHistoryEntry>>> {
    let page = page(query)?;
    match state.store().run_history(user.id(), &id, page).await {
        Ok(entries) => Ok(Json(entries)),
        Err(e) if e.kind() == gatewai_store::ErrorKind::NotFound => {
            Err(Error::not_found("workflow", id))
        }
        Err(e) => Err(e.into()),
    }
}

/// The run's events as server-sent events: what happened so far, then live events, ending
/// after `runFinished`. A run the server no longer keeps events of (finished long ago, or
/// before a restart) is answered with one `runRecord` event holding its stored record and node
/// executions.
async fn run_events(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    match state.hub().subscribe(&id, user.id()) {
        Subscribe::Found(subscription) => {
            let stream = futures::stream::unfold(subscription, |mut sub| async move {
                let event = sub.next().await?;
                let sse = Event::default()
                    .event(event_name(&event))
                    .id(event.seq.to_string())
                    .json_data(&*event)
                    .unwrap_or_else(|_| {
                        Event::default().event("error").data("unserializable event")
                    });
                Some((Ok::<_, Infallible>(sse), sub))
            });
            Ok(sse_response(stream))
        }
        Subscribe::Unknown => {
            let entry = state
                .store()
                .get_run_entry(user.id(), &id)
                .await?
                .ok_or_else(|| Error::not_found("run", &id))?;
            let event = Event::default()
                .event("runRecord")
                .json_data(&entry)
                .map_err(|e| Error::Config(format!("cannot serialize a run record: {e}")))?;
            let stream = futures::stream::iter([Ok::<_, Infallible>(event)]);
            Ok(sse_response(stream))
        }
    }
}

fn sse_response(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Body of `POST /api/llm/execute`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LlmRequest {
    prompt: String,
    #[serde(default)]
    system_prompt: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    temperature: Option<f64>,
}

/// One LLM call through the LLM node, outside any workflow.
async fn llm_execute(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<LlmRequest>,
) -> Result<Json<Value>> {
    if body.prompt.trim().is_empty() {
        return Err(Error::bad_request("field `prompt` must not be empty"));
    }
    let node = state
        .engine()
        .registry()
        .get("LLM")
        .ok_or_else(|| Error::Config("the LLM node is not registered".into()))?
        .clone();
    let mut config = serde_json::Map::new();
    if let Some(model) = &body.model {
        config.insert("model".into(), json!(model));
    }
    if let Some(provider) = &body.provider {
        config.insert("provider".into(), json!(provider));
    }
    if let Some(t) = body.temperature {
        config.insert("temperature".into(), json!(t));
    }
    let config = Value::Object(config);
    let problems = state.engine().registry().check_config("LLM", &config);
    if let Some((field, message)) = problems.into_iter().next() {
        return Err(Error::bad_request(format!("field `{field}`: {message}")));
    }
    let mut inputs = gatewai_core::Inputs::default().with("prompt", Item::text(&body.prompt));
    if let Some(system) = &body.system_prompt {
        inputs = inputs.with("system_prompt", Item::text(system));
    }
    let ctx = NodeContext::detached("llm-execute", "LLM", config, state.assets().clone());
    tracing::info!(user_id = %user.id(), "direct LLM call");
    let outputs = node.execute(&ctx, &inputs).await?;
    let text = outputs
        .get("result")
        .and_then(Item::as_text)
        .ok_or_else(|| Error::Config("the LLM node returned no text".into()))?;
    Ok(Json(json!({ "text": text })))
}

/// `GET /api/assets`: the caller's assets (their uploads and what their runs produced), the
/// most recently granted first, paged as the workflows are (`limit`, `offset`).
async fn list_assets(
    State(state): State<AppState>,
    user: AuthUser,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Json<Vec<gatewai_core::FileAsset>>> {
    let page = page(query)?;
    Ok(Json(state.store().list_assets(user.id(), page).await?))
}

/// `POST /api/assets`: the multipart field `file` stored as a file asset of the caller. A
/// body over the upload limit is a 413 (at once when its `Content-Length` is).
async fn upload_asset(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<gatewai_core::FileAsset>)> {
    let limit = state.config().upload_limit;
    refuse_declared_over(&headers, limit)?;
    let mut multipart = multipart.map_err(|e| {
        Error::bad_request(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        ))
    })?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| body_error(e.status(), limit, e.body_text()))?
            .ok_or_else(|| Error::bad_request("the form has no field `file`"))?;
        if field.name() != Some("file") {
            continue;
        }
        let name = field
            .file_name()
            .map(|n| n.chars().filter(|c| !c.is_control()).take(200).collect())
            .unwrap_or_else(|| "upload".to_owned());
        let bytes = field
            .bytes()
            .await
            .map_err(|e| body_error(e.status(), limit, e.body_text()))?;
        if bytes.is_empty() {
            return Err(Error::bad_request("field `file`: the file is empty"));
        }
        let ctx = NodeContext::detached("upload", "File", Value::Null, state.assets().clone());
        let asset = gatewai_nodes::media_util::store_bytes(&ctx, &name, bytes).await?;
        ownership::grant(state.store(), &asset, user.id()).await?;
        let asset = state
            .store()
            .get_asset_record(&asset.id)
            .await?
            .unwrap_or(asset);
        return Ok((StatusCode::CREATED, Json(asset)));
    }
}

/// `GET /api/assets/{id}`: the asset's bytes, for its owners only (404 for anyone else), or
/// the one byte range a `Range` header asks for (206; 416 for a range past the end), so that a
/// video player can seek. Its `ETag` lets a client revalidate what it holds (`If-None-Match`:
/// 304) and resume a download (`If-Range`).
async fn download_asset(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    method: axum::http::Method,
    headers: HeaderMap,
) -> Result<Response> {
    let asset = state
        .store()
        .get_owned_asset(user.id(), &id)
        .await?
        .ok_or_else(|| Error::not_found("asset", &id))?;
    let size = asset.size;
    let tag = entity_tag(&asset);
    let tag_header = tag.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
    let cache_control = HeaderValue::from_static("private, no-cache");
    if let (Some(tag), Some(value)) = (&tag, &tag_header)
        && none_match_fails(&headers, tag)
    {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        response.headers_mut().insert(header::ETAG, value.clone());
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, cache_control);
        return Ok(response);
    }
    // Only a GET reads a range (RFC 9110 §14.2): a HEAD describes the whole.
    let ranged = match method == axum::http::Method::GET {
        true => requested_range(&headers, size, tag.as_deref()),
        false => Ok(None),
    };
    let range = match ranged {
        Ok(range) => range,
        Err(Unsatisfiable) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            let value = HeaderValue::from_str(&format!("bytes */{size}"));
            if let Ok(value) = value {
                response.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    // Streamed as it is read: a large video is never held whole. Its length is declared
    // first, from its record; bytes that turn out to differ break the download.
    let (status, stream, length) = match &range {
        Some(range) => (
            StatusCode::PARTIAL_CONTENT,
            state.assets().read_range(&asset, range.clone()).await?,
            range.end - range.start,
        ),
        None => (
            StatusCode::OK,
            state.assets().read_stream(&asset).await?,
            size,
        ),
    };
    let body = axum::body::Body::from_stream(gatewai_core::assets::sized_stream(
        &asset.id, length, stream,
    ));
    let content_type = HeaderValue::from_str(&asset.mime_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
            (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, cache_control);
    if let Some(value) = tag_header {
        response.headers_mut().insert(header::ETAG, value);
    }
    if let Some(range) = range
        && let Ok(value) =
            HeaderValue::from_str(&format!("bytes {}-{}/{size}", range.start, range.end - 1))
    {
        response.headers_mut().insert(header::CONTENT_RANGE, value);
    }
    Ok(response)
}

/// An asset's entity tag: its id and size, quoted. An asset's bytes never change under its
/// id (an upload or a node's output is a new asset), so the tag is a strong validator; the size
/// makes a file replaced behind the store's back at another size a different entity. `None`
/// for an id with characters a tag cannot carry plainly.
fn entity_tag(asset: &gatewai_core::FileAsset) -> Option<String> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    (!asset.id.is_empty() && asset.id.bytes().all(plain))
        .then(|| format!("\"{}-{}\"", asset.id, asset.size))
}

/// Whether `If-None-Match` names `tag` (or is `*`): the client holds the asset already
/// (RFC 9110 §13.1.2, weak comparison).
fn none_match_fails(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// A `Range` header that no byte of the body satisfies (answered 416).
#[derive(Debug, PartialEq)]
struct Unsatisfiable;

/// The byte range a request's `Range` header asks of a `size`-byte body (RFC 9110 §14.2), as
/// offsets: `bytes=a-b`, `bytes=a-` or `bytes=-n` (the last `n` bytes). `None` (the whole body
/// is sent, as the RFC lets a server do) for no header, one that is not a single byte range
/// (several ranges, another unit, bad syntax), one with an `If-Range` that is not the body's
/// entity `tag` (strong comparison: a weak tag or a date never matches, as this server sends no
/// `Last-Modified`), and an empty body (no range of it can be sent, and the RFC counts a suffix
/// range of it as satisfiable).
fn requested_range(
    headers: &HeaderMap,
    size: u64,
    tag: Option<&str>,
) -> std::result::Result<Option<std::ops::Range<u64>>, Unsatisfiable> {
    if let Some(condition) = headers.get(header::IF_RANGE)
        && tag.is_none_or(|tag| condition.as_bytes() != tag.as_bytes())
    {
        return Ok(None);
    }
    if size == 0 {
        return Ok(None);
    }
    // One range, in a list whose empty elements do not count (RFC 9110 §5.6.1).
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (unit, list) = v.trim().split_once('=')?;
            let mut ranges = list.split(',').map(str::trim).filter(|r| !r.is_empty());
            let spec = ranges.next()?;
            (unit.trim().eq_ignore_ascii_case("bytes") && ranges.next().is_none()).then_some(spec)
        })
    else {
        return Ok(None);
    };
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    // A position of digits only; one beyond u64 stands for "past any end".
    let position = |text: &str| {
        let text = text.trim();
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (position(first), last.trim().is_empty()) {
        // The last `n` bytes.
        (None, false) if first.trim().is_empty() => match position(last) {
            Some(0) => Err(Unsatisfiable),
            Some(n) => Ok(Some(size - n.min(size)..size)),
            None => Ok(None),
        },
        (Some(start), true) if start >= size => Err(Unsatisfiable),
        (Some(start), true) => Ok(Some(start..size)),
        (Some(start), false) => match position(last) {
            Some(last) if last < start => Ok(None),
            Some(_) if start >= size => Err(Unsatisfiable),
            Some(last) => Ok(Some(start..last.saturating_add(1).min(size))),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(
        value: &str,
        size: u64,
    ) -> std::result::Result<Option<std::ops::Range<u64>>, Unsatisfiable> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, size, Some("\"a1-100\""))
    }

    #[test]
    fn byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(requested_range(&HeaderMap::new(), 100, None), Ok(None));
        // First and last positions (inclusive), open-ended, suffix.
        assert_eq!(range("bytes=0-0", 100), Ok(Some(0..1)));
        assert_eq!(range("bytes=10-19", 100), Ok(Some(10..20)));
        assert_eq!(range(" Bytes = 10 - 19 ", 100), Ok(Some(10..20)));
        assert_eq!(range("bytes=90-", 100), Ok(Some(90..100)));
        assert_eq!(range("bytes=-5", 100), Ok(Some(95..100)));
        // A last position past the end, or beyond u64, ends at the end; so does a suffix
        // longer than the body.
        assert_eq!(range("bytes=95-1000", 100), Ok(Some(95..100)));
        assert_eq!(
            range("bytes=95-99999999999999999999999", 100),
            Ok(Some(95..100))
        );
        assert_eq!(range("bytes=-1000", 100), Ok(Some(0..100)));
        // Nothing to send: 416.
        assert_eq!(range("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(range("bytes=100-200", 100), Err(Unsatisfiable));
        assert_eq!(
            range("bytes=99999999999999999999999-", 100),
            Err(Unsatisfiable)
        );
        assert_eq!(range("bytes=-0", 100), Err(Unsatisfiable));
        // An empty list element does not count.
        assert_eq!(range("bytes=0-5,", 100), Ok(Some(0..6)));
        assert_eq!(range("bytes= , -5", 100), Ok(Some(95..100)));
        // An empty body: the whole (nothing), whatever is asked.
        for asked in ["bytes=-5", "bytes=0-", "bytes=0-0"] {
            assert_eq!(range(asked, 0), Ok(None), "{asked}");
        }
        // Not a single byte range: the whole body.
        for ignored in [
            "bytes=0-1,5-6",
            "bytes=,",
            "items=0-5",
            "bytes=9-3",
            "bytes=a-b",
            "bytes=5",
            "bytes=-",
            "bytes=+1-2",
            "bytes=--5",
            "0-5",
        ] {
            assert_eq!(range(ignored, 100), Ok(None), "{ignored}");
        }
        // An If-Range: the range only when it is the body's tag (strong comparison).
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-5"));
        let tag = Some("\"a1-100\"");
        for (condition, ranged) in [
            ("\"a1-100\"", true),
            ("\"a1-99\"", false),
            ("W/\"a1-100\"", false),
            ("Tue, 24 Nov 2026 10:00:00 GMT", false),
        ] {
            headers.insert(header::IF_RANGE, HeaderValue::from_static(condition));
            let want = if ranged { Some(0..6) } else { None };
            assert_eq!(requested_range(&headers, 100, tag), Ok(want), "{condition}");
            assert_eq!(
                requested_range(&headers, 100, None),
                Ok(None),
                "{condition}"
            );
        }
    }

    #[test]
    fn entity_tags_name_the_asset_and_its_size_and_match_if_none_match() {
        let asset = gatewai_core::FileAsset {
            id: "3f2a-b_c.d".into(),
            size: 42,
            ..Default::default()
        };
        let tag = entity_tag(&asset).unwrap();
        assert_eq!(tag, "\"3f2a-b_c.d-42\"");
        for odd in ["", "a\"b", "a b", "名"] {
            let asset = gatewai_core::FileAsset {
                id: odd.into(),
                ..Default::default()
            };
            assert_eq!(entity_tag(&asset), None, "{odd}");
        }
        let held = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
            none_match_fails(&headers, &tag)
        };
        assert!(held("\"3f2a-b_c.d-42\""));
        assert!(held("W/\"3f2a-b_c.d-42\""));
        assert!(held("\"other\", \"3f2a-b_c.d-42\""));
        assert!(held("*"));
        assert!(!held("\"3f2a-b_c.d-41\""));
        assert!(!none_match_fails(&HeaderMap::new(), &tag));
    }
}
