//! Request bodies the handler left unread are read and discarded after the response, within
//! bounds, instead of being dropped.
//!
//! When a handler answers before it has read the whole request body (a 413 for a body over
//! its limit, a 401 for an upload without a valid token), the client is usually still
//! sending. hyper, given up on the body, closes the connection at once; the kernel answers the
//! bytes still arriving on the closed socket with a reset, and a reset can destroy the
//! response before the client has read it: the client sees "connection reset" or "broken
//! pipe" instead of the error the server sent (RFC 9112, section 9.6; hyperium/hyper#2384).
//! Well-built servers close such connections in stages, after reading and discarding what the
//! client still sends for a while (nginx's and Apache's "lingering close", Go's
//! `net/http`). [`linger_on_unread_body`] does the same: it keeps hold of the request body,
//! and once the handler has answered, reads and discards the rest of it in the background
//! while hyper writes the response. A body that ends within [`LINGER_BYTES`] and
//! [`LINGER_TIME`] leaves the connection open for the client's next request; one that does
//! not is left unread until [`LINGER_TIME`] is up (time for the client to read the response)
//! and the connection is closed, so a client cannot make the server read forever. A server
//! shutting down stops lingering at once: its graceful shutdown waits for open connections,
//! and must not wait [`LINGER_TIME`] for a client still sending a body nobody will read.

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use http_body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The most bytes of an unread request body read and discarded after the response.
pub(super) const LINGER_BYTES: u64 = 8 * 1024 * 1024;

/// How long a connection is kept, after its handler answered, for the rest of the request
/// body to arrive (and for the client to read the response).
pub(super) const LINGER_TIME: Duration = Duration::from_secs(5);

/// Middleware: the handler reads the request body through a handle this keeps; when the
/// handler has answered without reading it to its end (and holds it no more), the rest is
/// read and discarded in the background, within [`LINGER_BYTES`] and [`LINGER_TIME`], while
/// the response goes out.
///
/// A client that sent `Expect: 100-continue` and whose body the handler never asked for has
/// not sent it and will not (hyper sends no `100 Continue` after the response): its body is
/// dropped at once. `closing` is cancelled when the server shuts down: lingering ends then.
pub(super) async fn linger_on_unread_body(
    State(closing): State<CancellationToken>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let awaits_continue = expects_continue(&parts.headers);
    let (handle, kept) = SharedBody::new(body);
    let response = next
        .run(Request::from_parts(parts, Body::new(handle)))
        .await;
    // `None` while the handler (or its response) still holds the body: it is in use.
    if let Some(state) =
        Arc::into_inner(kept).map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
    {
        let unread = !state.ended && !state.body.is_end_stream();
        // A client waiting for `100 Continue` sends no body that nobody asked for.
        let coming = state.polled || !awaits_continue;
        if unread && coming && !closing.is_cancelled() {
            tokio::spawn(async move {
                tokio::select! {
                    () = discard(state.body) => {}
                    () = closing.cancelled() => {
                        tracing::debug!("shutting down: no more lingering on an unread request body");
                    }
                }
            });
        }
    }
    response
}

/// Whether the request waits for a `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and discards `body` until it ends, fails, passes [`LINGER_BYTES`] or
/// [`LINGER_TIME`] is up. Past [`LINGER_BYTES`], the body is held unread until
/// [`LINGER_TIME`] is up, so that the client, its sending stalled, reads the response before
/// the connection is closed.
async fn discard(body: Body) {
    let deadline = Instant::now() + LINGER_TIME;
    let mut stream = body.into_data_stream();
    let mut read: u64 = 0;
    let outcome = tokio::time::timeout_at(deadline, async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(chunk) => {
                    read = read.saturating_add(chunk.len() as u64);
                    if read > LINGER_BYTES {
                        return Discarded::TooLarge;
                    }
                }
                Err(e) => return Discarded::Failed(e),
            }
        }
        Discarded::Ended
    })
    .await;
    match outcome {
        Ok(Discarded::Ended) => {
            tracing::debug!(bytes = read, "discarded the unread rest of a request body");
        }
        Ok(Discarded::Failed(e)) => {
            tracing::debug!(bytes = read, error = %e, "the unread rest of a request body failed");
        }
        Ok(Discarded::TooLarge) => {
            tracing::debug!(
                bytes = read,
                "the unread rest of a request body is too large to discard; closing the connection"
            );
            tokio::time::sleep_until(deadline).await;
        }
        Err(_) => {
            tracing::debug!(
                bytes = read,
                "the unread rest of a request body took too long; closing the connection"
            );
        }
    }
}

/// How [`discard`] ended before its deadline.
enum Discarded {
    /// The body ended: the connection can serve the next request.
    Ended,
    /// The body failed (the client went away, or sent a malformed body).
    Failed(axum::Error),
    /// More than [`LINGER_BYTES`] were still coming.
    TooLarge,
}

/// A request body shared between the handler and [`linger_on_unread_body`].
struct SharedBody {
    state: Arc<Mutex<BodyState>>,
}

/// The body and what became of it.
struct BodyState {
    body: Body,
    /// The handler asked for some of it.
    polled: bool,
    /// The body ended (or failed): nothing is left to read.
    ended: bool,
}

impl SharedBody {
    /// The handler's handle on `body`, and the state it shares with the middleware.
    fn new(body: Body) -> (Self, Arc<Mutex<BodyState>>) {
        let state = Arc::new(Mutex::new(BodyState {
            body,
            polled: false,
            ended: false,
        }));
        (
            SharedBody {
                state: state.clone(),
            },
            state,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BodyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl HttpBody for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut state = self.lock();
        state.polled = true;
        let frame = Pin::new(&mut state.body).poll_frame(cx);
        if matches!(frame, Poll::Ready(None | Some(Err(_)))) {
            state.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        let state = self.lock();
        state.ended || state.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let state = self.lock();
        if state.ended {
            SizeHint::with_exact(0)
        } else {
            state.body.size_hint()
        }
    }
}
