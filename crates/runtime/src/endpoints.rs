//! Endpoints the host answers itself, before routing to components: `/health`, `/ready` and
//! `/metrics`. They take precedence over the manifest's routes.

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
    let components = crate::admin::components(app);
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
