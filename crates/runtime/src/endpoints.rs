//! Endpoints the host answers itself, before routing to components: `/health`, `/ready` and
//! `/metrics`. They take precedence over the manifest's routes.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::app::App;
use crate::guest::GuestCounters;
use crate::response::{self, Body};

/// Answers `path` if it is a host endpoint.
pub(crate) fn handle(
    app: &App,
    counters: &GuestCounters,
    method: &Method,
    path: &str,
) -> Option<Response<Body>> {
    let response = match path {
        "/health" => health(),
        "/ready" => ready(app),
        "/metrics" => metrics(app, counters),
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
            let loaded_at = c
                .loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            serde_json::json!({
                "id": id,
                "source": c.source.display().to_string(),
                "sha256": c.sha256,
                "load_ms": (c.load_time.as_secs_f64() * 1e3 * 100.0).round() / 100.0,
                "cache_hit": c.cache_hit,
                "loaded_at": loaded_at,
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

/// A few gauges in Prometheus text format (the full metrics set comes later).
fn metrics(app: &App, counters: &GuestCounters) -> Response<Body> {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    gauge(
        "kefu_up",
        "1 while the server runs.",
        &[(String::new(), 1.0)],
    );
    gauge(
        "kefu_guest_instances",
        "Component instances serving requests now.",
        &[(String::new(), counters.live.load(Ordering::Relaxed) as f64)],
    );
    let stats: Vec<_> = app
        .models
        .iter()
        .map(|(name, h)| (format!("{{model=\"{}\"}}", escape(name)), h.stats()))
        .collect();
    gauge(
        "kefu_engine_queued_requests",
        "Generations waiting for a sequence.",
        &stats
            .iter()
            .map(|(l, s)| (l.clone(), s.queued as f64))
            .collect::<Vec<_>>(),
    );
    gauge(
        "kefu_engine_live_sequences",
        "Generations being decoded.",
        &stats
            .iter()
            .map(|(l, s)| (l.clone(), s.live_sequences as f64))
            .collect::<Vec<_>>(),
    );
    response::text(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        out,
    )
}

/// Escapes a Prometheus label value.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
