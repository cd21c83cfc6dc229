//! API errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with their
//! HTTP status, and the mapping from wasi-nn error codes onto them.
//!
//! Rule: a client's mistake is never a 5xx. Only host faults and protocol violations map to
//! 500; an overloaded host is a 429 with `Retry-After`.

use serde::Serialize;

use crate::nn::{NnError, NnErrorCode};

/// One error response, ready to be sent (JSON body, or an SSE event mid-stream).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// OpenAI's `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// OpenAI's machine-readable `code`, e.g. `model_not_found`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// The request parameter at fault, if any (`messages[0].role`).
    pub param: Option<String>,
    /// Seconds for a `Retry-After` header, if the client should retry.
    pub retry_after: Option<u32>,
    /// The method for an `Allow` header (405 only).
    pub allow: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl ApiError {
    fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
            allow: None,
        }
    }

    /// 400 `invalid_request_error` with the given code.
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message)
    }

    /// 400 about one request parameter.
    pub fn invalid_param(
        code: &'static str,
        param: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let mut error = Self::invalid_request(code, message);
        error.param = Some(param.into());
        error
    }

    /// 401: missing or unknown API key.
    pub fn invalid_api_key(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", "invalid_api_key", message)
    }

    /// 404 for a model the client may not use; never says whether it exists elsewhere.
    pub fn model_not_found(model: &str) -> Self {
        let mut error = Self::new(
            404,
            "invalid_request_error",
            "model_not_found",
            format!("The model `{model}` does not exist or you do not have access to it."),
        );
        error.param = Some("model".into());
        error
    }

    /// 404 for something the request names (not a model) that does not exist.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, "invalid_request_error", code, message)
    }

    /// 429: the API key used up its quota of `limit` requests a minute; retry after
    /// `retry_after` seconds (the next window).
    pub fn quota_exceeded(limit: u32, retry_after: u32) -> Self {
        let mut error = Self::new(
            429,
            "requests",
            "rate_limit_exceeded",
            format!(
                "Rate limit reached: this API key may make {limit} chat requests per minute. \
                 Retry after {retry_after} s."
            ),
        );
        error.retry_after = Some(retry_after);
        error
    }

    /// 404 for an unknown path.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            "unknown_url",
            format!("Unrecognized request URL ({method} {path})."),
        )
    }

    /// 405 for a known path with the wrong method; `allow` is the one it takes.
    pub fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> Self {
        let mut error = Self::new(
            405,
            "invalid_request_error",
            "method_not_allowed",
            format!("Method {method} is not allowed on {path}; use {allow}."),
        );
        error.allow = Some(allow);
        error
    }

    /// 413: the body exceeds `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            413,
            "invalid_request_error",
            "request_too_large",
            format!("The request body exceeds the limit of {limit} bytes."),
        )
    }

    /// 429: the host is saturated; retry shortly.
    pub fn overloaded(message: impl Into<String>) -> Self {
        let mut error = Self::new(429, "rate_limit_exceeded", "server_overloaded", message);
        error.retry_after = Some(1);
        error
    }

    /// 500: a fault on the server's side (host, configuration, protocol).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", "internal_error", message)
    }

    /// The JSON body.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Body {
            error: Inner {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        })
        .expect("error body serialises")
    }

    /// Maps a wasi-nn error of generating with `model` (the name the client asked for).
    pub fn from_nn(error: &NnError, model: &str) -> Self {
        let message = |fallback: &str| {
            if error.data.trim().is_empty() {
                fallback.to_owned()
            } else {
                error.data.clone()
            }
        };
        match error.code {
            NnErrorCode::Timeout => Self::overloaded(message(
                "The server is overloaded; retry after the time in the Retry-After header.",
            )),
            NnErrorCode::TooLarge => {
                let mut e = Self::invalid_request(
                    "context_length_exceeded",
                    message("The prompt and max_tokens exceed the model's context length."),
                );
                e.param = Some("messages".into());
                e
            }
            NnErrorCode::InvalidArgument => {
                Self::invalid_request("invalid_argument", message("Invalid generation argument."))
            }
            // `security`: the component was not granted the model. Answer like an unknown
            // model so a client cannot probe which models exist.
            NnErrorCode::NotFound | NnErrorCode::Security => Self::model_not_found(model),
            NnErrorCode::InvalidEncoding
            | NnErrorCode::RuntimeError
            | NnErrorCode::UnsupportedOperation
            | NnErrorCode::Unknown => Self::internal(message("Generation failed.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nn(code: NnErrorCode, data: &str) -> NnError {
        NnError {
            code,
            data: data.into(),
        }
    }

    #[test]
    fn json_shape_matches_openai() {
        let e = ApiError::invalid_param("invalid_type", "stream", "`stream` must be a boolean.");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {
                "message": "`stream` must be a boolean.",
                "type": "invalid_request_error",
                "param": "stream",
                "code": "invalid_type"
            }})
        );
    }

    #[test]
    fn nn_codes_map_to_statuses() {
        let e = ApiError::from_nn(&nn(NnErrorCode::Timeout, "queue full"), "m");
        assert_eq!(
            (e.status, e.code, e.retry_after),
            (429, "server_overloaded", Some(1))
        );
        assert_eq!(e.message, "queue full");

        let e = ApiError::quota_exceeded(3, 17);
        assert_eq!(
            (e.status, e.kind, e.code, e.retry_after),
            (429, "requests", "rate_limit_exceeded", Some(17))
        );

        let e = ApiError::from_nn(&nn(NnErrorCode::TooLarge, ""), "m");
        assert_eq!((e.status, e.code), (400, "context_length_exceeded"));
        assert!(!e.message.is_empty());

        let e = ApiError::from_nn(&nn(NnErrorCode::InvalidArgument, "bad options"), "m");
        assert_eq!((e.status, e.message.as_str()), (400, "bad options"));

        for code in [NnErrorCode::NotFound, NnErrorCode::Security] {
            let e = ApiError::from_nn(&nn(code, "not granted: secret-model"), "secret-model");
            assert_eq!((e.status, e.code), (404, "model_not_found"));
            assert!(!e.message.contains("granted"), "{}", e.message);
        }

        for code in [
            NnErrorCode::RuntimeError,
            NnErrorCode::InvalidEncoding,
            NnErrorCode::UnsupportedOperation,
            NnErrorCode::Unknown,
        ] {
            let e = ApiError::from_nn(&nn(code, "boom"), "m");
            assert_eq!(
                (e.status, e.code, e.message.as_str()),
                (500, "internal_error", "boom")
            );
        }
    }
}
