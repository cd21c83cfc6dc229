//! Test guest that probes the host's `wasi:nn`.
//!
//! The model name is the path segment after `nn` (so the component may sit under any route
//! prefix, e.g. `/granted/nn/:model`):
//!
//! - `GET .../nn/:model`: `load-by-name(model)`; answers 200 with body `ok`, or 200 with the
//!   wasi-nn error code (`not-found`, `security`, ...). Used to check that a component not
//!   granted a model cannot load it.
//! - `GET .../nn/:model/generate?prompt=..&max_tokens=N`: streams a generation with kefu's
//!   chunk convention as `text/plain`, each chunk written as it arrives, followed by
//!   `\n[done] {done json}\n`. A failure before the first chunk answers 502 with the error
//!   code as body; a failure after it appends `\n[error] code: data\n`. `prompt` is
//!   percent-decoded and sent as is (default: a short ChatML-wrapped question); `max_tokens`
//!   defaults to 16.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit",
        world: "kefu:gateway/gateway",
        generate_all,
    });
}

use bindings::wasi::nn::errors::{Error, ErrorCode};
use bindings::wasi::nn::graph::load_by_name;
use bindings::wasi::nn::tensor::{Tensor, TensorType};

const DEFAULT_PROMPT: &str =
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    let path_and_query = request.path_with_query().unwrap_or_default();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query.as_str(), ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some(at) = segments.iter().position(|s| *s == "nn") else {
        return respond(out, 404, "expected a path .../nn/:model[/generate]\n").await;
    };
    let model = percent_decode(segments.get(at + 1).copied().unwrap_or_default());
    match segments.get(at + 2).copied() {
        None => {
            let body = match load_by_name(&model) {
                Ok(_graph) => "ok".to_owned(),
                Err(e) => report(&e),
            };
            respond(out, 200, &body).await;
        }
        Some("generate") => generate(out, &model, query).await,
        Some(_) => respond(out, 404, "unknown action\n").await,
    }
}

async fn generate(out: ResponseOutparam, model: &str, query: &str) {
    let param = |name: &str| {
        query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
    };
    let prompt = param("prompt").unwrap_or_else(|| DEFAULT_PROMPT.to_owned());
    let max_tokens: u32 = param("max_tokens")
        .and_then(|v| v.parse().ok())
        .unwrap_or(16);
    let options = format!("{{\"max_tokens\":{max_tokens}}}");

    let started = load_by_name(model).and_then(|graph| {
        let ctx = graph.init_execution_context()?;
        let first = ctx.compute(vec![
            ("prompt".to_owned(), u8_tensor(prompt.as_bytes())),
            ("options".to_owned(), u8_tensor(options.as_bytes())),
        ])?;
        Ok((graph, ctx, first))
    });
    let (graph, ctx, mut outputs) = match started {
        Ok(started) => started,
        Err(e) => return respond(out, 502, &report(&e)).await,
    };

    let response = OutgoingResponse::new(headers("text/plain; charset=utf-8"));
    let _ = response.set_status_code(200);
    let mut body = response.take_body();
    out.set(response);
    loop {
        let mut done = None;
        for (name, tensor) in outputs {
            if name == "done" {
                done = Some(tensor.data());
            } else if name == "text" && body.send(tensor.data()).await.is_err() {
                // Client gone: dropping the context cancels the generation.
                return;
            }
        }
        if let Some(done) = done {
            let mut trailer = b"\n[done] ".to_vec();
            trailer.extend_from_slice(&done);
            trailer.push(b'\n');
            let _ = body.send(trailer).await;
            break;
        }
        outputs = match ctx.compute(Vec::new()) {
            Ok(outputs) => outputs,
            Err(e) => {
                let _ = body
                    .send(format!("\n[error] {}\n", report(&e)).into_bytes())
                    .await;
                break;
            }
        };
    }
    drop(ctx);
    drop(graph);
}

fn u8_tensor(data: &[u8]) -> Tensor {
    Tensor::new(&[data.len() as u32], TensorType::U8, data)
}

/// The WIT spelling of the error code, then the host's message on stderr.
fn report(error: &Error) -> String {
    let code = match error.code() {
        ErrorCode::InvalidArgument => "invalid-argument",
        ErrorCode::InvalidEncoding => "invalid-encoding",
        ErrorCode::Timeout => "timeout",
        ErrorCode::RuntimeError => "runtime-error",
        ErrorCode::UnsupportedOperation => "unsupported-operation",
        ErrorCode::TooLarge => "too-large",
        ErrorCode::NotFound => "not-found",
        ErrorCode::Security => "security",
        ErrorCode::Unknown => "unknown",
    };
    eprintln!("nn-probe: {code}: {}", error.data());
    code.to_owned()
}

fn headers(content_type: &str) -> Fields {
    Fields::from_list(&[("content-type".to_owned(), content_type.as_bytes().to_vec())])
        .expect("valid header")
}

async fn respond(out: ResponseOutparam, status: u16, body: &str) {
    let response = OutgoingResponse::new(headers("text/plain; charset=utf-8"));
    let _ = response.set_status_code(status);
    let _ = out.set_with_body(response, body.as_bytes().to_vec()).await;
}

/// `%XX` escapes and `+` as space; invalid escapes are kept literally.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
