//! Endpoints the host answers itself, before routing to components: `/health`, `/ready` and
//! `/metrics`. They take precedence over the manifest's routes.

use std::sync::atomic::Ordering;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::app::App;
use crate::response::{self, Body};

/// Answers `path` if it is a host endpoint.
pub(crate) fn handle(app: &App, method: &Method, path: &str) -> Option<Response<Body>> {
    let response = match path {
        "/health" => health(),
        "/ready" => ready(app),
        "/metrics" => metrics(app),
        _ => return None,
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{path} answers GET only"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(r);
    }
    Some(response)
}

/// Alive: the process serves HTTP.
fn health() -> Response<Body> {
    response::json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

/// Ready: every component is compiled and every model a component is granted is loaded.
fn ready(app: &App) -> Response<Body> {
    let components: Vec<_> = app
        .components
        .iter()
        .map(|(id, slot)| {
            let c = slot.current.load();
            serde_json::json!({
                "id": id,
                "version": slot.version.load(Ordering::SeqCst),
                "source": c.source.display().to_string(),
                "sha256": c.sha256,
                "load_ms": (c.load_time.as_secs_f64() * 1e3 * 100.0).round() / 100.0,
                "cache_hit": c.cache_hit,
                "loaded_at": crate::admin::unix_seconds(c.loaded_at),
            })
        })
        .collect();
    let missing: Vec<String> = app
        .manifest
        .requested_models()
        .into_iter()
        .filter(|m| app.models.resolve(m).is_none())
        .collect();
    let models: Vec<_> = app
        .models
        .iter()
        .map(|(name, handle)| {
            serde_json::json!({
                "name": name,
                "default": app.models.default_name() == Some(name),
                "path": handle.model_info().path.display().to_string(),
            })
        })
        .collect();
    let is_ready = missing.is_empty();
    response::json(
        if is_ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &serde_json::json!({
            "status": if is_ready { "ready" } else { "not_ready" },
            "application": app.manifest.application.name,
            "components": components,
            "models": models,
            "missing_models": missing,
        }),
    )
}

/// Prometheus text format; see [`crate::metrics`].
fn metrics(app: &App) -> Response<Body> {
    let text = app.metrics.render(
        app.models
            .iter()
            .map(|(name, handle)| (name, handle.stats())),
    );
    response::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    )
}
