//! HTTP plumbing shared by the providers: sending a request, mapping HTTP failures onto
//! [`NodeError`] kinds (with the provider's message and suggested retry delay), and reading a
//! server-sent-events body.

use super::ApiKey;
use super::sse::SseParser;
use futures::StreamExt;
use gatewai_core::{ErrorKind, NodeError};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

/// Longest SSE line accepted (a generated 4K image arrives base64-encoded in one line).
const MAX_SSE_LINE: usize = 64 << 20;
/// Most bytes of a whole success body, streamed or not (a few 4K images, base64-encoded): past
/// it a response is refused rather than collected without end.
const MAX_RESPONSE: usize = 256 << 20;
/// Most bytes of an error body read.
const MAX_ERROR_BODY: usize = 64 << 10;
/// Most characters of a provider message quoted in an error.
const MAX_QUOTED: usize = 600;

/// Whether to keep reading a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read on.
    Continue,
    /// The provider said the stream is complete (`[DONE]`).
    Stop,
}

/// Sends `request` and hands every SSE `data` payload to `on_data`. A JSON (non-SSE) success
/// body is handed over as one payload (each element, if it is an array). HTTP failures become
/// [`NodeError`]s through [`error_from_response`]; a body past [`MAX_RESPONSE`] bytes is an
/// error too.
pub(crate) async fn post_sse(
    provider: &'static str,
    key: Option<&ApiKey>,
    request: reqwest::RequestBuilder,
    mut on_data: impl FnMut(&str) -> Result<Flow, NodeError>,
) -> Result<(), NodeError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(provider, e))?;
    let status = response.status();
    let headers = response.headers().clone();
    if !status.is_success() {
        let body = read_limited(response, MAX_ERROR_BODY).await;
        return Err(error_from_response(
            provider,
            status.as_u16(),
            &headers,
            &body,
            key,
        ));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let too_large = || {
        bad_response(
            provider,
            format!("the response is larger than {MAX_RESPONSE} bytes"),
        )
    };
    let mut stream = response.bytes_stream();
    if content_type.starts_with("application/json") {
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport_error(provider, e))?;
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        return match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Array(items)) => {
                for item in items {
                    if on_data(&item.to_string())? == Flow::Stop {
                        break;
                    }
                }
                Ok(())
            }
            Ok(_) => on_data(&String::from_utf8_lossy(&body)).map(|_| ()),
            Err(e) => Err(bad_response(provider, format!("body is not JSON: {e}"))),
        };
    }
    let mut parser = SseParser::new(MAX_SSE_LINE);
    let mut received = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| transport_error(provider, e))?;
        received += chunk.len();
        if received > MAX_RESPONSE {
            return Err(too_large());
        }
        let events = parser.push(&chunk).map_err(|e| {
            bad_response(
                provider,
                format!("a stream line is longer than {} bytes", e.0),
            )
        })?;
        for event in events {
            if on_data(&event.data)? == Flow::Stop {
                return Ok(());
            }
        }
    }
    for event in parser.finish() {
        if on_data(&event.data)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

async fn read_limited(response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    body
}

/// A network-level failure (connect, timeout, reset). The URL is left out of the message.
pub(crate) fn transport_error(provider: &'static str, error: reqwest::Error) -> NodeError {
    let error = error.without_url();
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Unavailable
    };
    let mut message = format!("{provider} request failed: {error}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    NodeError::new(kind, message)
}

/// A response that does not have the shape the provider documents. The message (often
/// serde's, which quotes the value it could not read) is quoted up to [`MAX_QUOTED`]
/// characters like the provider's own words.
pub(crate) fn bad_response(provider: &'static str, message: impl std::fmt::Display) -> NodeError {
    NodeError::new(
        ErrorKind::Unavailable,
        format!(
            "{provider} sent an unexpected response: {}",
            crate::error::shown_up_to(&message, MAX_QUOTED)
        ),
    )
}

/// Maps an HTTP failure onto a [`NodeError`]: 429 is `RateLimited`, 500/502/503/504
/// `Unavailable`, 408 `Timeout` (all retryable, with the delay from `Retry-After` or Google's
/// `RetryInfo.retryDelay`); 401/403 (and Gemini's 400 `API_KEY_INVALID`) `Unauthorized`, 404
/// `NotFound`, a redirect (3xx, never followed) `InvalidConfig`, other 4xx `InvalidInput`. The provider's message is quoted, with the key
/// redacted should the provider echo it.
pub(crate) fn error_from_response(
    provider: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    key: Option<&ApiKey>,
) -> NodeError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(error_object);
    let detail = api_error_detail(error, body);
    let key_rejected = detail.contains("API_KEY_INVALID") || detail.contains("API key not valid");
    let kind = match status {
        429 => ErrorKind::RateLimited,
        500 | 502 | 503 | 504 => ErrorKind::Unavailable,
        408 => ErrorKind::Timeout,
        401 | 403 => ErrorKind::Unauthorized,
        400 if key_rejected => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        300..=399 => ErrorKind::InvalidConfig,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::InvalidInput,
    };
    let hint = match kind {
        ErrorKind::Unauthorized => " (check the API key)",
        ErrorKind::NotFound => " (check the model name)",
        ErrorKind::InvalidConfig => {
            " (a redirect, which is not followed: check the provider's base URL)"
        }
        _ => "",
    };
    let message = redact(
        &format!("{provider} API error {status}{hint}: {detail}"),
        key,
    );
    let mut node_error = NodeError::new(kind, message);
    if kind.is_retryable()
        && let Some(delay) = retry_after_header(headers).or_else(|| error.and_then(retry_info))
    {
        node_error = node_error.with_retry_after(delay);
    }
    node_error
}

/// The `error` object of an error body: `{error: {...}}`, or `[{error: {...}}]` as Gemini's
/// non-SSE stream endpoint sends it.
pub(crate) fn error_object(body: &Value) -> Option<&Value> {
    match body {
        Value::Array(items) => items.first().and_then(error_object),
        Value::Object(map) => map.get("error").filter(|e| e.is_object()),
        _ => None,
    }
}

/// `STATUS: message` (plus any `reason` in the details) from an API error object, or the body
/// text when it is not JSON.
pub(crate) fn api_error_detail(error: Option<&Value>, body: &[u8]) -> String {
    let Some(error) = error else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        return if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            truncate(text)
        };
    };
    let message = error.get("message").and_then(Value::as_str).unwrap_or("");
    let status = error
        .get("status")
        .or_else(|| error.get("type"))
        .and_then(Value::as_str);
    let mut detail = match status {
        Some(s) if !s.is_empty() => format!("{s}: {message}"),
        _ => message.to_owned(),
    };
    let reasons: Vec<&str> = error
        .get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("reason").and_then(Value::as_str))
        .collect();
    if !reasons.is_empty() {
        detail.push_str(&format!(" [{}]", reasons.join(", ")));
    }
    truncate(&detail)
}

fn truncate(text: &str) -> String {
    crate::error::shown_up_to(&text, MAX_QUOTED)
}

/// Replaces the API key, should it appear, by `***`.
pub(crate) fn redact(text: &str, key: Option<&ApiKey>) -> String {
    match key {
        Some(key) if !key.expose().is_empty() => text.replace(key.expose(), "***"),
        _ => text.to_owned(),
    }
}

/// `Retry-After: <seconds>` (fractions accepted).
fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: f64 = value.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

/// Google's `google.rpc.RetryInfo` detail: `retryDelay` as a protobuf duration (`"2s"`,
/// `"1.5s"`, `"45.837906927s"`).
fn retry_info(error: &Value) -> Option<Duration> {
    error
        .get("details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| parse_proto_duration(d.get("retryDelay")?.as_str()?))
}

/// Parses a protobuf JSON duration (`"1.5s"`).
pub(crate) fn parse_proto_duration(text: &str) -> Option<Duration> {
    let seconds: f64 = text.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn gemini_error(code: u16, status: &str, message: &str, details: Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "error": {"code": code, "message": message, "status": status, "details": details}
        }))
        .unwrap()
    }

    #[test]
    fn rate_limit_takes_the_delay_from_retry_info() {
        let body = gemini_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota.",
            serde_json::json!([
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}
            ]),
        );
        let e = error_from_response("Gemini", 429, &HeaderMap::new(), &body, None);
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.is_retryable());
        assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
        assert!(e.message().contains("RESOURCE_EXHAUSTED: You exceeded"));
    }

    #[test]
    fn retry_after_header_wins_and_5xx_are_retryable() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let e = error_from_response("Gemini", 503, &headers, b"overloaded", None);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.message().contains("overloaded"));
        for status in [500, 502, 504] {
            assert!(error_from_response("X", status, &HeaderMap::new(), b"", None).is_retryable());
        }
    }

    #[test]
    fn client_errors_are_not_retryable_and_say_why() {
        let bad_key = gemini_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            serde_json::json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
        );
        let e = error_from_response("Gemini", 400, &HeaderMap::new(), &bad_key, None);
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(!e.is_retryable());
        assert!(e.message().contains("API key not valid"), "{e}");
        let not_found = gemini_error(
            404,
            "NOT_FOUND",
            "models/nope is not found for API version v1beta",
            Value::Null,
        );
        let e = error_from_response("Gemini", 404, &HeaderMap::new(), &not_found, None);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("models/nope is not found"));
        let e = error_from_response("Gemini", 400, &HeaderMap::new(), b"[]", None);
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn an_echoed_key_is_redacted() {
        let key = ApiKey::new("sk-secret-123");
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-123.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = error_from_response("OpenAI", 401, &HeaderMap::new(), body, Some(&key));
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(!e.message().contains("sk-secret-123"));
        assert!(e.message().contains("Incorrect API key provided: ***"));
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_proto_duration("45.837906927s"),
            Some(Duration::from_secs_f64(45.837906927))
        );
        assert_eq!(parse_proto_duration("2"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
    }
}
