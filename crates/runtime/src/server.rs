//! The HTTP server: accepts connections (HTTP/1.1, hyper), answers host endpoints, routes
//! everything else to components, and shuts down gracefully.
//!
//! Request bodies are read fully, up to the body limit, before any guest runs: a larger body
//! gets a 413 without instantiating anything, and the guest never waits on a slow client
//! upload while holding an instance. Component requests beyond `max_concurrent_requests` get
//! a 429 with `Retry-After` at once instead of queueing without bound.
//!
//! Order of dispatch: host endpoints (`/health`, `/ready`, `/metrics`), the admin API
//! (`/admin/...`), then the manifest's routes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::access::{self, Entry};
use crate::app::App;
use crate::guest;
use crate::metrics::Rejection;
use crate::record::RequestRecord;
use crate::response::{self, Body};

/// Shared by every connection.
pub(crate) struct Shared {
    pub app: Arc<App>,
    pub body_limit: usize,
    /// Permits for component requests in flight.
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

/// Accepts connections until `shutdown` resolves, then lets open connections finish for up to
/// `grace`.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let service = service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(&shared, req, peer).await) }
        });
        let connection = http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for open connections");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "connections still open after the grace period; closing");
        }
    }
    Ok(())
}

async fn handle(shared: &Shared, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let app = &shared.app;
    app.metrics.request_started();
    let mut entry = Entry {
        started: std::time::Instant::now(),
        request_id: access::request_id(req.headers()),
        method: req.method().to_string(),
        route: "unmatched".to_owned(),
        component: "host".to_owned(),
        record: None,
        metrics: app.metrics.clone(),
        permit: None,
    };
    let response = dispatch(shared, req, peer, &mut entry).await;
    access::finish(entry, response)
}

async fn dispatch(
    shared: &Shared,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    entry: &mut Entry,
) -> Response<Body> {
    let app = &shared.app;
    let path = req.uri().path().to_owned();
    if let Some(response) = crate::endpoints::handle(app, req.method(), &path) {
        entry.route = path;
        return response;
    }
    if path == "/admin" || path.starts_with("/admin/") {
        entry.route = "/admin/...".to_owned();
        return crate::admin::handle(app, req).await;
    }
    let Some(route) = app.router.route(&path) else {
        return response::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {path}"),
        );
    };
    entry.route = route.route.as_str().to_owned();
    entry.component = route.component.to_owned();
    let Some(slot) = app.components.get(route.component) else {
        return response::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the route's component is not loaded",
        );
    };
    match shared.in_flight.clone().try_acquire_owned() {
        Ok(permit) => entry.permit = Some(permit),
        Err(_) => {
            app.metrics.rejected(Rejection::ConcurrencyLimit);
            let mut r = response::error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "the server is at its limit of concurrent requests; retry shortly",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, http::HeaderValue::from_static("1"));
            return r;
        }
    }
    // The component sees the same request id the client gets back.
    if let Ok(value) = http::HeaderValue::from_str(&entry.request_id) {
        req.headers_mut().insert(access::REQUEST_ID, value);
    }
    let request = match read_body(req, shared.body_limit).await {
        Ok(request) => request,
        Err(response) => {
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                app.metrics.rejected(Rejection::BodyTooLarge);
            }
            return response;
        }
    };
    let record = Arc::new(RequestRecord::default());
    entry.record = Some(record.clone());
    guest::handle(app, slot, &route, request, peer, record).await
}

/// Reads the whole body, refusing more than `limit` bytes with a 413.
pub(crate) async fn read_body(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Request<Full<Bytes>>, Response<Body>> {
    let too_large = || {
        response::error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!("the request body exceeds the limit of {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(Request::from_parts(parts, Full::new(collected.to_bytes()))),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(e) => Err(response::error(
            StatusCode::BAD_REQUEST,
            "bad_request_body",
            format!("could not read the request body: {e}"),
        )),
    }
}

/// Binds `addr` with a useful error.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))
}
