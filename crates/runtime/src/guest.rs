//! Running one HTTP request through a component: a fresh store, instantiation from the
//! component's `ProxyPre`, the `wasi:http/incoming-handler` call, and turning failures into
//! JSON errors.
//!
//! The guest runs in its own task so it can keep streaming the body after the response head
//! has gone out. The task's lifetime follows the client: if the client goes away before the
//! body is complete, the task is aborted, which drops the store and with it any running
//! generation. A guest that fails before responding gets a 500 (503 when the instance pool is
//! exhausted); one that fails mid-stream gets its response cut off with an error, so the
//! client sees an incomplete message rather than a clean end.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::app::{App, ComponentSlot};
use crate::limits::MemoryLimitExceeded;
use crate::metrics::Rejection;
use crate::record::RequestRecord;
use crate::response::{self, Body, BodyError};
use crate::router::RouteMatch;
use crate::state::GuestState;

/// Why a guest's request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// A Wasm trap: panic, unreachable, out-of-bounds access, a trapping import...
    Trap,
    /// The request's fuel ran out.
    CpuLimit,
    /// A memory growth past the limit.
    MemoryLimit,
    /// The wall-clock request timeout passed.
    Timeout,
    /// No instance slot was free.
    Busy,
    /// The component returned without responding, or answered with an error code.
    NoResponse,
}

impl FailureKind {
    fn status(self) -> StatusCode {
        match self {
            FailureKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(self) -> &'static str {
        match self {
            FailureKind::Trap => "component_trap",
            FailureKind::CpuLimit => "component_cpu_limit",
            FailureKind::MemoryLimit => "component_memory_limit",
            FailureKind::Timeout => "component_timeout",
            FailureKind::Busy => "server_busy",
            FailureKind::NoResponse => "component_no_response",
        }
    }

    fn message(self) -> &'static str {
        match self {
            FailureKind::Trap => "the request handler failed",
            FailureKind::CpuLimit => "the request handler used up its CPU time limit",
            FailureKind::MemoryLimit => "the request handler exceeded its memory limit",
            FailureKind::Timeout => "the request handler exceeded its time limit",
            FailureKind::Busy => "the server is at its concurrent request limit; retry later",
            FailureKind::NoResponse => "the request handler did not produce a response",
        }
    }
}

/// How a guest task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Completed,
    Failed(FailureKind),
}

/// Counts a live instance in the `kefu_guest_instances` gauge while it exists.
struct LiveGuard(prometheus::IntGauge);

impl LiveGuard {
    fn new(gauge: &prometheus::IntGauge) -> LiveGuard {
        gauge.inc();
        LiveGuard(gauge.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves `request` (body already read and size-checked) with the component in `slot`.
pub(crate) async fn handle(
    app: &Arc<App>,
    slot: &ComponentSlot,
    route: &RouteMatch<'_>,
    request: Request<Full<Bytes>>,
    client: SocketAddr,
    record: Arc<RequestRecord>,
) -> Response<Body> {
    let loaded = slot.current.load_full();
    let component = loaded.config.id.clone();
    let request = with_spin_headers(request, route, client);

    let state = match GuestState::new(
        loaded.config.clone(),
        &app.limits,
        app.metrics.clone(),
        record,
    ) {
        Ok(state) => state,
        Err(e) => return setup_failed(&component, &e),
    };
    let mut store = Store::new(&app.engine, state);
    store.limiter(|s| &mut s.limiter);
    let fuel = store
        .set_fuel(app.limits.fuel)
        .and_then(|()| store.fuel_async_yield_interval(Some(app.limits.fuel_yield_interval)));
    let (response_tx, response_rx) = oneshot::channel();
    let resources = fuel.and_then(|()| {
        let mut http = store.data_mut().http();
        let req = http.new_incoming_request(Scheme::Http, request)?;
        let out = http.new_response_outparam(response_tx)?;
        Ok((req, out))
    });
    let (req, out) = match resources {
        Ok(r) => r,
        Err(e) => return setup_failed(&component, &e),
    };

    let (outcome_tx, outcome_rx) = oneshot::channel();
    let timeout = app.limits.request_timeout;
    let fuel_budget = app.limits.fuel;
    let live = LiveGuard::new(app.metrics.guest_instances());
    let task_component = component.clone();
    let task = tokio::spawn(async move {
        let _live = live;
        let run = async {
            let proxy = match loaded.pre.instantiate_async(&mut store).await {
                Ok(proxy) => proxy,
                Err(e) => return Err((true, e)),
            };
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| (false, e))
        };
        let outcome = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(())) => {
                // Fuel used tells how close real requests come to the CPU budget.
                let fuel_used = fuel_budget.saturating_sub(store.get_fuel().unwrap_or(0));
                tracing::debug!(component = %task_component, fuel_used, "request handled");
                Outcome::Completed
            }
            Ok(Err((instantiating, e))) => {
                let kind = classify(&e, instantiating, store.data().limiter.exceeded);
                tracing::warn!(
                    component = %task_component,
                    kind = kind.code(),
                    error = ?e,
                    "request handler failed"
                );
                Outcome::Failed(kind)
            }
            Err(_) => {
                tracing::warn!(component = %task_component, ?timeout, "request handler timed out");
                Outcome::Failed(FailureKind::Timeout)
            }
        };
        // Report before the store (and with it the response body's sender) is dropped, so
        // the body sees the outcome when its stream ends.
        let _ = outcome_tx.send(outcome);
        drop(store);
    });
    let abort = AbortOnDrop(Some(task.abort_handle()));

    match response_rx.await {
        Ok(Ok(response)) => response.map(|body| {
            GuestBody {
                inner: body,
                outcome: outcome_rx,
                abort,
                complete: false,
            }
            .boxed_unsync()
        }),
        Ok(Err(code)) => {
            tracing::warn!(%component, ?code, "request handler responded with an error code");
            failure_response(app, FailureKind::NoResponse)
        }
        Err(_) => {
            // The guest finished or failed without setting a response.
            let kind = match outcome_rx.await {
                Ok(Outcome::Failed(kind)) => kind,
                Ok(Outcome::Completed) | Err(_) => FailureKind::NoResponse,
            };
            drop(abort);
            failure_response(app, kind)
        }
    }
}

/// The store or its request resources could not be made: the host's fault, not the guest's.
fn setup_failed(component: &str, error: &impl std::fmt::Display) -> Response<Body> {
    tracing::error!(%component, error = %format!("{error:#}"), "preparing the guest failed");
    response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "component_setup",
        "the request handler could not be prepared",
    )
}

fn failure_response(app: &App, kind: FailureKind) -> Response<Body> {
    let mut response = response::error(kind.status(), kind.code(), kind.message());
    if kind == FailureKind::Busy {
        app.metrics.rejected(Rejection::InstancePool);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Names the cause of a failed instantiation or call.
fn classify(error: &wasmtime::Error, instantiating: bool, memory_exceeded: bool) -> FailureKind {
    if memory_exceeded || error.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return FailureKind::MemoryLimit;
    }
    if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
        return match trap {
            wasmtime::Trap::OutOfFuel => FailureKind::CpuLimit,
            _ => FailureKind::Trap,
        };
    }
    if instantiating
        && error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
    {
        return FailureKind::Busy;
    }
    FailureKind::Trap
}

/// Adds Spin's request headers (`spin-full-url`, `spin-path-info`, `spin-matched-route`, ...)
/// after removing any a client sent, so a guest can trust them.
fn with_spin_headers(
    request: Request<Full<Bytes>>,
    route: &RouteMatch<'_>,
    client: SocketAddr,
) -> Request<Full<Bytes>> {
    let (mut parts, body) = request.into_parts();
    let spoofed: Vec<HeaderName> = parts
        .headers
        .keys()
        .filter(|k| k.as_str().starts_with("spin-"))
        .cloned()
        .collect();
    for name in spoofed {
        parts.headers.remove(name);
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            parts.headers.insert(name, value);
        }
    };
    set("spin-full-url", &format!("http://{host}{path_and_query}"));
    set("spin-path-info", &route.path_info);
    set("spin-matched-route", route.route.as_str());
    set("spin-raw-component-route", route.route.as_str());
    set("spin-component-route", route.route.base());
    set("spin-base-path", "/");
    set("spin-client-addr", &client.to_string());
    for (name, value) in &route.params {
        set(
            &format!("spin-path-match-{}", name.to_ascii_lowercase()),
            value,
        );
    }
    // wasi:http needs an absolute authority; hyper gives origin-form URIs.
    if parts.uri.authority().is_none()
        && let Ok(uri) = format!("http://{host}{path_and_query}").parse()
    {
        parts.uri = uri;
    }
    Request::from_parts(parts, body)
}

/// Aborts the guest task when dropped, unless disarmed.
struct AbortOnDrop(Option<AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.abort();
        }
    }
}

/// A guest's streamed response body. Ends with an error if the guest failed mid-stream;
/// dropped before its end (the client left), it aborts the guest.
struct GuestBody {
    inner: HyperOutgoingBody,
    outcome: oneshot::Receiver<Outcome>,
    abort: AbortOnDrop,
    complete: bool,
}

impl hyper::body::Body for GuestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.complete = true;
                // A guest that is still running after ending its body may finish on its own.
                this.abort.0 = None;
                match this.outcome.try_recv() {
                    Ok(Outcome::Failed(kind)) => {
                        Poll::Ready(Some(Err(
                            format!("{}: {}", kind.code(), kind.message()).into()
                        )))
                    }
                    _ => Poll::Ready(None),
                }
            }
            Poll::Ready(Some(Err(e))) => {
                this.complete = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.complete
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuel_exhaustion_is_a_cpu_limit() {
        let e = wasmtime::Error::new(wasmtime::Trap::OutOfFuel);
        assert_eq!(classify(&e, false, false), FailureKind::CpuLimit);
        let e = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(classify(&e, false, false), FailureKind::Trap);
        assert_eq!(classify(&e, false, true), FailureKind::MemoryLimit);
        let e = wasmtime::Error::new(MemoryLimitExceeded {
            limit: 1,
            wanted: 2,
        });
        assert_eq!(classify(&e, false, false), FailureKind::MemoryLimit);
    }
}
