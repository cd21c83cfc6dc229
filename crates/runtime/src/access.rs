//! Request identity and the access log: every request gets an `x-request-id` (the client's,
//! when it is sane, else a fresh UUID) that the component sees and the response carries, and
//! one structured log line plus its request metrics when the response has ended — after the
//! last byte of a stream, or when the client went away.
//!
//! The log line carries ids, route pattern, status, timings, token counts and the guardrail
//! action; never bodies, query strings or headers, so no personal data reaches the logs.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};

use crate::metrics::{Metrics, RequestSummary};
use crate::record::RequestRecord;
use crate::response::{Body, BodyError};

pub(crate) const REQUEST_ID: &str = "x-request-id";
/// The header a component sets to report its guardrail decision.
pub(crate) const ACTION: &str = "x-kefu-action";

/// The client's request id if it is short printable ASCII, else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// What the access log needs to know about a request besides its response.
pub(crate) struct Entry {
    pub started: Instant,
    pub request_id: String,
    pub method: String,
    pub route: String,
    pub component: String,
    pub record: Option<Arc<RequestRecord>>,
    pub metrics: Arc<Metrics>,
    /// Held until the response ends (the concurrency limit's permit).
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Sets `x-request-id` on `response` and logs it when its body ends.
pub(crate) fn finish(entry: Entry, mut response: Response<Body>) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(&entry.request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let action = response
        .headers()
        .get(ACTION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    response.map(|inner| {
        Logged {
            inner,
            entry: Some(entry),
            status,
            action,
            outcome: "client_gone",
        }
        .boxed_unsync()
    })
}

struct Logged {
    inner: Body,
    entry: Option<Entry>,
    status: u16,
    action: Option<String>,
    /// How the body ended, as logged: `complete`, `failed`, or `client_gone` (dropped early).
    outcome: &'static str,
}

impl Logged {
    fn log(&mut self) {
        let Some(entry) = self.entry.take() else {
            return;
        };
        let seconds = entry.started.elapsed().as_secs_f64();
        entry.metrics.observe_request(&RequestSummary {
            route: &entry.route,
            component: &entry.component,
            status: self.status,
            seconds,
            action: self.action.as_deref(),
        });
        let totals = entry.record.map(|r| r.totals()).unwrap_or_default();
        tracing::info!(
            target: "kefu::access",
            request_id = %entry.request_id,
            method = %entry.method,
            route = %entry.route,
            component = %entry.component,
            status = self.status,
            outcome = self.outcome,
            duration_ms = (seconds * 1e4).round() / 10.0,
            ttft_ms = totals.ttft.map(|t| (t * 1e4).round() / 10.0),
            prompt_tokens = totals.prompt_tokens,
            completion_tokens = totals.completion_tokens,
            action = self.action.as_deref(),
            "request"
        );
    }
}

impl hyper::body::Body for Logged {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                self.outcome = "complete";
                self.log();
            }
            Poll::Ready(Some(Err(_))) => {
                self.outcome = "failed";
                self.log();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // A body hyper never polled to its end: empty bodies, or the client left.
        if hyper::body::Body::is_end_stream(&self.inner) {
            self.outcome = "complete";
        }
        self.log();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_when_sane() {
        let mut h = HeaderMap::new();
        h.insert(REQUEST_ID, "abc-123_x.y:z".parse().unwrap());
        assert_eq!(request_id(&h), "abc-123_x.y:z");
        h.insert(REQUEST_ID, "has space".parse().unwrap());
        let generated = request_id(&h);
        assert_eq!(generated.len(), 32);
        assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
        h.insert(REQUEST_ID, "x".repeat(129).parse().unwrap());
        assert_ne!(request_id(&h), "x".repeat(129));
    }
}
