//! The HTTP entry point: routing, authentication, the guard's plan, and driving one
//! generation to a JSON or streamed response. Policy lives in the pure modules and in
//! `kefu-guard`; this file only wires them to `wasi:http`, `wasi:nn` and the `/kb` mount.
//!
//! Routes: `POST /v1/chat/completions`, `POST /v1/feedback`, `GET /v1/models`,
//! `GET /v1/models/{id}`.
//!
//! State lives in the key-value store `default` (granted in spin.toml): every finished chat
//! completion is recorded under `completion:<id>` before its last byte is sent (so feedback
//! can follow at once), feedback under `feedback:<id>`, and per-key quota counters under
//! `quota:<digest>`. Recording and quota counting are best effort: when the store fails, the
//! chat still gets its answer and the failure is logged (without content).
//!
//! Replies that need no model (refuse, hand-off, `extractive` answers) and buffered
//! generations (`auto` mode, see [`crate::guardrails`]) are sent whole, as JSON or as a
//! complete event stream. A live stream (`generative` mode) starts only after the first
//! `compute` succeeded, so errors found before any text exists (unknown model, context too
//! long, overload) still get their proper status. When a write to the client fails, the
//! generation is dropped, which cancels it on the host.

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Fields, IncomingRequest, Method, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

use kefu_feedback::{CompletionRecord, completion_key, feedback_key};
use kefu_guard::{Final, Guard, GuardConfig, Knowledge, Plan};

use crate::api::{self, ChatCompletion, KefuMeta, ModelList, ModelObject, Usage};
use crate::auth::{self, AuthOutcome};
use crate::config::{self, Config};
use crate::errors::ApiError;
use crate::feedback;
use crate::guardrails::{self, TrimStream};
use crate::nn::client::Generation;
use crate::nn::{Done, Step};
use crate::quota::{self, Decision};
use crate::records::{self, Meta};
use crate::sse::{self, ChunkWriter};

const JSON: &str = "application/json";
/// Reports the guardrail's decision to the host (metrics and the access log).
const ACTION_HEADER: &str = "x-kefu-action";

/// What a route produced.
enum Outcome {
    Json {
        status: u16,
        body: String,
        /// The guardrail's decision, for the `x-kefu-action` header (chat completions).
        action: Option<&'static str>,
    },
    /// A complete event stream (the text was known before the response started), and the
    /// guardrail's decision.
    Events(Vec<u8>, &'static str),
    Stream(Box<StreamJob>),
}

/// A generation that has produced its first step and waits to be streamed live; the guard's
/// inputs travel along so the last chunk can carry its verdict.
struct StreamJob {
    generation: Generation,
    first: Step,
    writer: ChunkWriter,
    include_usage: bool,
    requested_model: String,
    knowledge: Knowledge,
    guard_config: GuardConfig,
    plan: Plan,
}

/// The key-value store the gateway keeps its records in.
fn open_store() -> Result<Store, String> {
    Store::open(kefu_feedback::STORE)
        .map_err(|e| format!("key-value store `{}`: {e:?}", kefu_feedback::STORE))
}

#[http_component]
async fn handle(request: IncomingRequest, out: ResponseOutparam) {
    match dispatch(request).await {
        Ok(Outcome::Json {
            status,
            body,
            action,
        }) => {
            let extra: Vec<_> = action.map(|a| (ACTION_HEADER, a)).into_iter().collect();
            send(out, status, JSON, &extra, body.into_bytes()).await
        }
        Ok(Outcome::Events(body, action)) => {
            let extra = [("cache-control", "no-cache"), (ACTION_HEADER, action)];
            send(out, 200, sse::CONTENT_TYPE, &extra, body).await
        }
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
        Feedback,
        Models,
        Model(&'a str),
    }
    let (route, allowed) = match path {
        "/v1/chat/completions" => (Route::Chat, Method::Post),
        "/v1/feedback" => (Route::Feedback, Method::Post),
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
        Route::Chat => {
            if let Some(limit) = config.quota_per_minute {
                enforce_quota(authorization.as_deref(), limit)?;
            }
            chat_completions(request, &config).await
        }
        Route::Feedback => post_feedback(request, &config).await,
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

/// Counts the request against its API key's quota; over quota is a 429 with `Retry-After`.
/// When the store fails, the request is let through and the failure logged.
fn enforce_quota(authorization: Option<&str>, limit: u32) -> Result<(), ApiError> {
    let caller = authorization
        .and_then(auth::bearer_token)
        .map_or_else(|| "anonymous".to_owned(), auth::key_digest_hex);
    let key = quota::quota_key(&caller);
    let store = match open_store() {
        Ok(store) => store,
        Err(e) => {
            eprintln!("kefu-gateway: quota not enforced: {e}");
            return Ok(());
        }
    };
    let stored = store.get(&key).unwrap_or_else(|e| {
        eprintln!("kefu-gateway: reading a quota counter failed: {e:?}");
        None
    });
    match quota::check(stored.as_deref(), limit, unix_time()) {
        Decision::Allow(window) => {
            if let Err(e) = store.set(&key, &window.to_bytes()) {
                eprintln!("kefu-gateway: writing a quota counter failed: {e:?}");
            }
            Ok(())
        }
        Decision::Reject { retry_after } => Err(ApiError::quota_exceeded(limit, retry_after)),
    }
}

/// `POST /v1/feedback`: stores a rating of a recorded completion.
async fn post_feedback(request: IncomingRequest, config: &Config) -> Result<Outcome, ApiError> {
    let body = read_body(request, api::MAX_BODY_BYTES).await?;
    let parsed = feedback::parse_feedback_request(&body)?;
    let unavailable = |e: String| {
        eprintln!("kefu-gateway: feedback not stored: {e}");
        ApiError::internal("Feedback cannot be stored right now.")
    };
    let store = open_store().map_err(unavailable)?;
    let id = parsed.completion_id.clone();
    let known = store
        .exists(&completion_key(&id))
        .map_err(|e| unavailable(format!("{e:?}")))?;
    if !known {
        return Err(feedback::unknown_completion(&id));
    }
    let rating = parsed.rating;
    let record = parsed.into_record(unix_time(), &config.guard.pii_allow_domains);
    let bytes = serde_json::to_vec(&record).expect("a feedback record serialises");
    store
        .set(&feedback_key(&id), &bytes)
        .map_err(|e| unavailable(format!("{e:?}")))?;
    Ok(json(
        200,
        &serde_json::json!({"object": "feedback", "request_id": id, "rating": rating}),
    ))
}

/// Stores the record of a finished completion (best effort).
fn remember(record: &CompletionRecord) {
    let result = open_store().and_then(|store| {
        let bytes = serde_json::to_vec(record).expect("a completion record serialises");
        store
            .set(&completion_key(&record.id), &bytes)
            .map_err(|e| format!("{e:?}"))
    });
    if let Err(e) = result {
        eprintln!("kefu-gateway: completion {} not recorded: {e}", record.id);
    }
}

async fn chat_completions(request: IncomingRequest, config: &Config) -> Result<Outcome, ApiError> {
    let request_id = header(&request, "x-request-id");
    let body = read_body(request, api::MAX_BODY_BYTES).await?;
    let chat = api::parse_chat_request(&body)?;
    let model = config
        .resolve_model(&chat.model)
        .ok_or_else(|| ApiError::model_not_found(&chat.model))?
        .to_owned();

    let knowledge = guardrails::load_knowledge(|path| std::fs::read(path)).map_err(|e| {
        eprintln!("kefu-gateway: {e}");
        ApiError::internal(format!("The server is misconfigured: {e}."))
    })?;
    let guard = Guard::new(&knowledge, config.guard.clone());
    // The plan masks personal data: only the masked question and history reach the prompt.
    let plan = guard.plan(&guardrails::messages(&chat.messages));
    let writer = ChunkWriter {
        id: records::completion_id(request_id.as_deref(), random_hex),
        created: unix_time(),
        model,
    };

    let Some(prompt) = plan.prompt.as_deref() else {
        // Refuse, hand off, or an extractive answer: the reply is final, no model call.
        let done = guard.finalize(&plan, "");
        let usage = Usage::new(0, 0, 0);
        remember_reply(config, &chat, &writer, &plan, &done, "stop", &usage);
        return Ok(reply(&chat, writer, &done, "stop", usage));
    };

    let (mut generation, first) = Generation::start(&writer.model, prompt, &chat.options)
        .map_err(|e| nn_error(&e, &chat.model))?;

    if chat.stream && guardrails::stream_live(config.guard.answer_mode) {
        drop(guard);
        return Ok(Outcome::Stream(Box::new(StreamJob {
            generation,
            first,
            writer,
            include_usage: chat.include_usage,
            requested_model: chat.model,
            knowledge,
            guard_config: config.guard.clone(),
            plan,
        })));
    }

    // Buffered: the output guard needs the whole text before anything is sent.
    let mut content = String::new();
    let mut step = first;
    let model_done = loop {
        content.push_str(&step.text);
        if let Some(done) = step.done {
            break done;
        }
        step = generation
            .next_step()
            .map_err(|e| nn_error(&e, &chat.model))?;
    };
    drop(generation);
    let done = guard.finalize(&plan, &content);
    let finish_reason = guardrails::finish_reason(&model_done.finish_reason, &done);
    let usage = usage(&model_done);
    remember_reply(config, &chat, &writer, &plan, &done, &finish_reason, &usage);
    Ok(reply(&chat, writer, &done, &finish_reason, usage))
}

/// Records a reply that is sent whole.
fn remember_reply(
    config: &Config,
    chat: &api::ChatRequest,
    writer: &ChunkWriter,
    plan: &Plan,
    done: &Final,
    finish_reason: &str,
    usage: &Usage,
) {
    let meta = Meta {
        id: &writer.id,
        created: writer.created,
        model: &writer.model,
        prompt_tokens: usage.prompt_tokens,
        completion_tokens: usage.completion_tokens,
        stream: chat.stream,
        finish_reason,
        allow_domains: &config.guard.pii_allow_domains,
    };
    remember(&records::completion_record(&meta, plan, done));
}

/// The finalized text as a `chat.completion`, or as a complete event stream when the client
/// asked for `stream`.
fn reply(
    chat: &api::ChatRequest,
    writer: ChunkWriter,
    done: &Final,
    finish_reason: &str,
    usage: Usage,
) -> Outcome {
    let kefu = KefuMeta::from(done);
    if chat.stream {
        let usage = chat.include_usage.then_some(usage);
        return Outcome::Events(
            writer.whole(&done.text, finish_reason, kefu, usage),
            done.action.as_str(),
        );
    }
    let completion = ChatCompletion::new(
        writer.id,
        writer.created,
        writer.model,
        done.text.clone(),
        finish_reason.to_owned(),
        usage,
        kefu,
    );
    Outcome::Json {
        status: 200,
        body: serde_json::to_string(&completion).expect("response serialises"),
        action: Some(done.action.as_str()),
    }
}

/// Streams a started generation live as SSE; returns when it ends or the client is gone.
/// The text is trimmed as `Guard::finalize` trims it; the guard's verdict goes in the last
/// chunk.
async fn stream(out: ResponseOutparam, job: Box<StreamJob>) {
    let StreamJob {
        mut generation,
        first,
        writer,
        include_usage,
        requested_model,
        knowledge,
        guard_config,
        plan,
    } = *job;
    let response = OutgoingResponse::new(headers(&[
        ("content-type", sse::CONTENT_TYPE),
        ("cache-control", "no-cache"),
        (ACTION_HEADER, plan.action.as_str()),
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
    let mut content = String::new();
    let mut trim = TrimStream::default();
    let mut step = first;
    loop {
        content.push_str(&step.text);
        let text = trim.push(&step.text);
        if !text.is_empty() && body.send(writer.content(&text)).await.is_err() {
            return;
        }
        if let Some(model_done) = step.done {
            drop(generation);
            let guard = Guard::new(&knowledge, guard_config);
            let done = guard.finalize(&plan, &content);
            let finish_reason = guardrails::finish_reason(&model_done.finish_reason, &done);
            let meta = Meta {
                id: &writer.id,
                created: writer.created,
                model: &writer.model,
                prompt_tokens: model_done.prompt_tokens,
                completion_tokens: model_done.completion_tokens,
                stream: true,
                finish_reason: &finish_reason,
                allow_domains: &guard.config().pii_allow_domains,
            };
            remember(&records::completion_record(&meta, &plan, &done));
            let usage = include_usage.then(|| usage(&model_done));
            let finish = writer.finish(&finish_reason, KefuMeta::from(&done), usage);
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
        action: None,
    }
}

async fn send(
    out: ResponseOutparam,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: Vec<u8>,
) {
    let mut pairs = vec![("content-type", content_type)];
    pairs.extend_from_slice(extra);
    let response = OutgoingResponse::new(headers(&pairs));
    response
        .set_status_code(status)
        .expect("status codes used here are valid");
    // A failure here means the client is gone; there is no one left to tell.
    let _ = out.set_with_body(response, body).await;
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
    send(
        out,
        error.status,
        JSON,
        &extra,
        error.to_json().into_bytes(),
    )
    .await;
}

/// 24 random hex digits (the random part of a completion id).
fn random_hex() -> String {
    let bytes = wasi::random::random::get_random_bytes(12);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
