//! The admin API, answered by the host: `GET /admin/components` lists each component's
//! version, digest and load time; `POST /admin/components/{name}` with a `.wasm` body swaps
//! that component in while serving.
//!
//! Every call needs `Authorization: Bearer <admin_token>` (the application variable
//! `admin_token`); without that variable the admin API is off.

use std::sync::atomic::Ordering;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::response::{self, Body};
use crate::swap::NewVersion;

/// Largest component upload accepted.
pub(crate) const UPLOAD_LIMIT: usize = 64 << 20;

/// Answers `/admin/...` requests.
pub(crate) async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let Some(token) = app.admin_token.as_deref() else {
        return response::error(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: set the `admin_token` application variable to enable it",
        );
    };
    if !authorized(&req, token) {
        let mut r = response::error(
            StatusCode::UNAUTHORIZED,
            "invalid_admin_token",
            "missing or wrong admin token (Authorization: Bearer <admin_token>)",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("valid"));
        return r;
    }
    let path = req.uri().path().to_owned();
    let name = path
        .strip_prefix("/admin/components")
        .map(|rest| rest.trim_matches('/').to_owned());
    match (req.method().clone(), name) {
        (Method::GET, Some(name)) if name.is_empty() => list(app),
        (Method::POST, Some(name)) if !name.is_empty() && !name.contains('/') => {
            upload(app, &name, req).await
        }
        (_, Some(_)) => response::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET /admin/components or POST /admin/components/{name}",
        ),
        (_, None) => response::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin endpoint {path}"),
        ),
    }
}

/// Compares digests, so the time taken does not reveal how much of the token matched.
fn authorized(req: &Request<Incoming>, token: &str) -> bool {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    Sha256::digest(given.trim().as_bytes()) == Sha256::digest(token.as_bytes())
}

fn list(app: &App) -> Response<Body> {
    response::json(
        StatusCode::OK,
        &serde_json::json!({ "components": components(app) }),
    )
}

/// Each component's current version: what `/ready` and `GET /admin/components` show.
pub(crate) fn components(app: &App) -> Vec<serde_json::Value> {
    app.components
        .iter()
        .map(|(id, slot)| {
            let c = slot.current.load();
            serde_json::json!({
                "id": id,
                "version": slot.version.load(Ordering::SeqCst),
                "source": c.source.display().to_string(),
                "sha256": c.sha256,
                "load_ms": millis(c.load_time),
                "cache_hit": c.cache_hit,
                "loaded_at": unix_seconds(c.loaded_at),
            })
        })
        .collect()
}

async fn upload(app: &App, name: &str, req: Request<Incoming>) -> Response<Body> {
    if !app.components.contains_key(name) {
        return response::error(
            StatusCode::NOT_FOUND,
            "unknown_component",
            format!("no component `{name}` in the manifest"),
        );
    }
    // The same reading (and 413 over the limit) as request bodies, with the upload's limit.
    let request = match crate::server::read_body(req, UPLOAD_LIMIT).await {
        Ok(request) => request,
        Err(response) => return response,
    };
    let Ok(body) = request.into_body().collect().await;
    let bytes = body.to_bytes();
    if bytes.is_empty() {
        return response::error(
            StatusCode::BAD_REQUEST,
            "empty_upload",
            "the request body must be the component's .wasm",
        );
    }
    match app
        .swap_component(name, NewVersion::Upload(bytes.to_vec()))
        .await
    {
        Ok(report) => response::json(
            StatusCode::OK,
            &serde_json::to_value(report).expect("serializable"),
        ),
        Err(e) => response::error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "component_rejected",
            format!("the new version was rejected and the old one keeps serving: {e:#}"),
        ),
    }
}

/// A duration in milliseconds, rounded to two decimals (as the admin API shows load times).
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

pub(crate) fn unix_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}
