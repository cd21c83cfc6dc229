//! Response bodies and the JSON error shape every host-generated error uses.
//!
//! Errors follow OpenAI's shape, `{"error": {"message", "type", "code"}}`, so clients of the
//! chat API parse host errors (413, 404, 500 from a trapped guest) the same way as the
//! gateway component's own.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// Errors a response body may end with.
pub(crate) type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the server sends.
pub(crate) type Body = UnsyncBoxBody<Bytes, BodyError>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A response with a complete body of the given content type.
pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    text(status, "application/json", value.to_string())
}

/// A JSON error in OpenAI's shape. `type` is `invalid_request_error` for 4xx statuses and
/// `server_error` otherwise.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    let kind = if status.is_client_error() {
        "invalid_request_error"
    } else {
        "server_error"
    };
    json(
        status,
        &serde_json::json!({
            "error": { "message": message.into(), "type": kind, "code": code }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn error_shape() {
        let r = error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "too big",
        );
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["message"], "too big");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "request_too_large");
    }
}
