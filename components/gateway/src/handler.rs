//! The HTTP entry point: routing, authentication, and driving one generation to a JSON or
//! streamed response. Policy lives in the pure modules; this file only wires them to
//! `wasi:http` and `wasi:nn`.
//!
//! Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /v1/models/{id}`.
//!
//! A streamed response starts only after the first `compute` succeeded, so errors found
//! before any text exists (unknown model, context too long, overload) still get their proper
//! status. When a write to the client fails, the generation is dropped, which cancels it on
//! the host.

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

use crate::api::{self, ChatCompletion, KefuMeta, ModelList, ModelObject, Usage};
use crate::auth::{self, AuthOutcome};
use crate::config::{self, Config};
use crate::errors::ApiError;
use crate::nn::client::Generation;
use crate::nn::{Done, Step};
use crate::sse::{self, ChunkWriter};
use crate::template;

const JSON: &str = "application/json";

/// What a route produced.
enum Outcome {
    Json { status: u16, body: String },
    Stream(StreamJob),
}

/// A generation that has produced its first step and waits to be streamed.
struct StreamJob {
    generation: Generation,
    first: Step,
    writer: ChunkWriter,
    include_usage: bool,
    requested_model: String,
}

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    match dispatch(request).await {
        Ok(Outcome::Json { status, body }) => send(out, status, JSON, &[], body).await,
        Ok(Outcome::Stream(job)) => stream(out, job).await,
        Err(error) => send_error(out, &error).await,
    }
}

async fn dispatch(request: IncomingRequest) -> Result<Outcome, ApiError> {
    let method = request.method();
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".into());
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query.as_str(), |(p, _)| p)
        .trim_end_matches('/');

    enum Route<'a> {
        Chat,
        Models,
        Model(&'a str),
    }
    let (route, allowed) = match path {
        "/v1/chat/completions" => (Route::Chat, Method::Post),
        "/v1/models" => (Route::Models, Method::Get),
        p => match p.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => (Route::Model(id), Method::Get),
            _ => return Err(ApiError::unknown_route(&method.to_string(), path)),
        },
    };
    if method != allowed {
        let allow = if allowed == Method::Post {
            "POST"
        } else {
            "GET"
        };
        return Err(ApiError::method_not_allowed(
            &method.to_string(),
            path,
            allow,
        ));
    }

    let (config, warnings) = config::load().map_err(|e| {
        eprintln!("kefu-gateway: configuration error: {e}");
        ApiError::internal(format!("The server is misconfigured: {e}."))
    })?;
    let authorization = header(&request, "authorization");
    match auth::check(
        authorization.as_deref(),
        &config.api_keys,
        config.auth_disabled,
    ) {
        AuthOutcome::Allowed => {}
        outcome => {
            for warning in &warnings {
                eprintln!("kefu-gateway: {warning}");
            }
            return Err(ApiError::invalid_api_key(match outcome {
                AuthOutcome::Missing => {
                    "Missing API key: send it as `Authorization: Bearer <key>`."
                }
                _ => "Incorrect API key provided.",
            }));
        }
    }

    match route {
        Route::Chat => chat_completions(request, &config).await,
        Route::Models => Ok(json(200, &ModelList::new(&config.models, unix_time()))),
        Route::Model(id) => {
            let granted = config.resolve_model(id).is_some();
            if granted {
                Ok(json(200, &ModelObject::new(id, unix_time())))
            } else {
                Err(ApiError::model_not_found(id))
            }
        }
    }
}

async fn chat_completions(request: IncomingRequest, config: &Config) -> Result<Outcome, ApiError> {
    let body = read_body(request, api::MAX_BODY_BYTES).await?;
    let chat = api::parse_chat_request(&body)?;
    let model = config
        .resolve_model(&chat.model)
        .ok_or_else(|| ApiError::model_not_found(&chat.model))?
        .to_owned();
    let prompt = template::render(
        config.template,
        config.system_prompt.as_deref(),
        &chat.messages,
    );

    let (mut generation, first) =
        Generation::start(&model, &prompt, &chat.options).map_err(|e| nn_error(&e, &chat.model))?;
    let id = completion_id();
    let created = unix_time();

    if chat.stream {
        return Ok(Outcome::Stream(StreamJob {
            generation,
            first,
            writer: ChunkWriter { id, created, model },
            include_usage: chat.include_usage,
            requested_model: chat.model,
        }));
    }

    let mut content = String::new();
    let mut step = first;
    let done = loop {
        content.push_str(&step.text);
        if let Some(done) = step.done {
            break done;
        }
        step = generation
            .next_step()
            .map_err(|e| nn_error(&e, &chat.model))?;
    };
    drop(generation);
    let completion = ChatCompletion::new(
        id,
        created,
        model,
        content,
        done.finish_reason.clone(),
        usage(&done),
        KefuMeta::answer(),
    );
    Ok(json(200, &completion))
}

/// Streams a started generation as SSE; returns when it ends or the client is gone.
async fn stream(out: ResponseOutparam, job: StreamJob) {
    let StreamJob {
        mut generation,
        first,
        writer,
        include_usage,
        requested_model,
    } = job;
    let response = OutgoingResponse::new(headers(&[
        ("content-type", sse::CONTENT_TYPE),
        ("cache-control", "no-cache"),
    ]));
    response
        .set_status_code(200)
        .expect("200 is a valid status");
    let mut body = response.take_body();
    out.set(response);

    // Any failed write means the client hung up: dropping `generation` cancels it.
    if body.send(writer.role()).await.is_err() {
        return;
    }
    let mut step = first;
    loop {
        if !step.text.is_empty() && body.send(writer.content(&step.text)).await.is_err() {
            return;
        }
        if let Some(done) = step.done {
            drop(generation);
            let usage = include_usage.then(|| usage(&done));
            let finish = writer.finish(&done.finish_reason, KefuMeta::answer(), usage);
            if body.send(finish).await.is_ok() {
                let _ = body.send(sse::DONE.to_vec()).await;
            }
            return;
        }
        step = match generation.next_step() {
            Ok(step) => step,
            Err(e) => {
                drop(generation);
                let error = nn_error(&e, &requested_model);
                let _ = body.send(sse::error(&error)).await;
                return;
            }
        };
    }
}

fn nn_error(error: &crate::nn::NnError, requested_model: &str) -> ApiError {
    let api_error = ApiError::from_nn(error, requested_model);
    if api_error.status >= 500 {
        eprintln!("kefu-gateway: generation failed: {error}");
    }
    api_error
}

fn usage(done: &Done) -> Usage {
    Usage::new(
        done.prompt_tokens,
        done.completion_tokens,
        done.cached_prompt_tokens,
    )
}

/// Reads the whole body, refusing more than `limit` bytes.
async fn read_body(request: IncomingRequest, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(length) = header(&request, "content-length")
        && length.trim().parse::<u64>().is_ok_and(|n| n > limit as u64)
    {
        return Err(ApiError::body_too_large(limit));
    }
    let mut chunks = request.into_body_stream();
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::invalid_request(
                "invalid_body",
                format!(
                    "The request body could not be read: {}.",
                    e.to_debug_string()
                ),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::body_too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The first value of header `name` (lowercase), if it is valid UTF-8.
fn header(request: &IncomingRequest, name: &str) -> Option<String> {
    let values = request.headers().get(name);
    values
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

fn headers(pairs: &[(&str, &str)]) -> Fields {
    let list: Vec<(String, Vec<u8>)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
    Fields::from_list(&list).expect("static header names and values are valid")
}

fn json(status: u16, value: &impl serde::Serialize) -> Outcome {
    Outcome::Json {
        status,
        body: serde_json::to_string(value).expect("response serialises"),
    }
}

async fn send(
    out: ResponseOutparam,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: String,
) {
    let mut pairs = vec![("content-type", content_type)];
    pairs.extend_from_slice(extra);
    let response = OutgoingResponse::new(headers(&pairs));
    response
        .set_status_code(status)
        .expect("status codes used here are valid");
    // A failure here means the client is gone; there is no one left to tell.
    let _ = out.set_with_body(response, body.into_bytes()).await;
}

async fn send_error(out: ResponseOutparam, error: &ApiError) {
    let retry_after = error.retry_after.map(|s| s.to_string());
    let mut extra = Vec::new();
    if let Some(seconds) = retry_after.as_deref() {
        extra.push(("retry-after", seconds));
    }
    if error.status == 401 {
        extra.push(("www-authenticate", "Bearer"));
    }
    if let Some(allow) = error.allow {
        extra.push(("allow", allow));
    }
    send(out, error.status, JSON, &extra, error.to_json()).await;
}

/// `chatcmpl-` and 24 random hex digits.
fn completion_id() -> String {
    let bytes = wasi::random::random::get_random_bytes(12);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("chatcmpl-{hex}")
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
