//! The OpenAI wire format: strict validation of chat-completion requests and the response,
//! stream-chunk and model-list objects.
//!
//! Validation walks the JSON by hand instead of deriving `Deserialize`, so every rejection
//! names the parameter at fault (`messages[2].role`) in a message a client can act on.
//! Unknown top-level fields are ignored, as OpenAI-compatible servers do; fields that would
//! change the answer's meaning but are not supported (`n > 1`, `tools`, `logprobs`) are
//! rejected instead of silently ignored. `null` counts as absent for every optional field.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::nn::Options;

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most stop sequences per request (OpenAI's limit).
pub const MAX_STOP: usize = 4;
/// The model alias that means "the application's default model".
pub const DEFAULT_MODEL: &str = "default";

/// A chat role. `developer` (OpenAI's newer name) is read as `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat message, content flattened to text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// A validated chat-completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// As sent; [`DEFAULT_MODEL`] when absent.
    pub model: String,
    /// Never empty.
    pub messages: Vec<Message>,
    /// Sampling options for the host, already range-checked.
    pub options: Options,
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// OpenAI's end-user id, if given (for logs; not interpreted).
    pub user: Option<String>,
}

/// Parses and validates a `POST /v1/chat/completions` body.
pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        ApiError::invalid_request(
            "invalid_encoding",
            format!(
                "The request body is not valid UTF-8 (invalid byte at offset {}).",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid_request(
            "invalid_json",
            "The request body is empty; expected a JSON object.",
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        ApiError::invalid_request(
            "invalid_json",
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::invalid_request(
            "invalid_json",
            format!(
                "The request body must be a JSON object, not {}.",
                type_name(&value)
            ),
        ));
    };
    let f = Fields(&obj);

    let model = f
        .string("model")?
        .unwrap_or(DEFAULT_MODEL)
        .trim()
        .to_owned();
    if model.is_empty() {
        return Err(ApiError::invalid_param(
            "invalid_value",
            "model",
            "`model` must not be empty.",
        ));
    }

    let messages = parse_messages(f.get("messages"))?;

    let max_tokens = f.positive_u32("max_tokens")?;
    let max_completion_tokens = f.positive_u32("max_completion_tokens")?;
    let stop = parse_stop(f.get("stop"))?;
    let options = Options {
        // The newer name wins when both are sent.
        max_tokens: max_completion_tokens.or(max_tokens),
        temperature: f.number_in("temperature", 0.0, 2.0, true)?,
        top_p: f.number_in("top_p", 0.0, 1.0, false)?,
        top_k: f.top_k()?,
        min_p: f.number_in("min_p", 0.0, 1.0, true)?,
        repeat_penalty: f.positive_number("repeat_penalty")?,
        seed: f.seed()?,
        stop,
    };

    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(_) if !stream => {
            return Err(ApiError::invalid_param(
                "invalid_value",
                "stream_options",
                "`stream_options` is only allowed when `stream` is true.",
            ));
        }
        Some(Value::Object(o)) => Fields(o)
            .bool_named("include_usage", "stream_options.include_usage")?
            .unwrap_or(false),
        Some(other) => return Err(wrong_type("stream_options", "an object", other)),
    };

    let user = f.string("user")?.map(str::to_owned);

    // Parameters that would change the response's meaning: refuse rather than ignore.
    if let Some(n) = f.get("n")
        && n.as_u64() != Some(1)
    {
        return Err(ApiError::invalid_param(
            "unsupported_value",
            "n",
            "Only `n` = 1 is supported.",
        ));
    }
    if f.bool("logprobs")? == Some(true) {
        return Err(ApiError::invalid_param(
            "unsupported_value",
            "logprobs",
            "`logprobs` is not supported.",
        ));
    }
    for name in ["tools", "functions"] {
        match f.get(name) {
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(_) => {
                return Err(ApiError::invalid_param(
                    "unsupported_parameter",
                    name,
                    format!("`{name}` (tool calling) is not supported."),
                ));
            }
            None => {}
        }
    }
    if let Some(rf) = f.get("response_format") {
        let kind = rf.get("type").and_then(Value::as_str);
        if kind != Some("text") {
            return Err(ApiError::invalid_param(
                "unsupported_value",
                "response_format",
                "Only `response_format` {\"type\": \"text\"} is supported.",
            ));
        }
    }

    Ok(ChatRequest {
        model,
        messages,
        options,
        stream,
        include_usage,
        user,
    })
}

fn parse_messages(value: Option<&Value>) -> Result<Vec<Message>, ApiError> {
    let items = match value {
        None => {
            return Err(ApiError::invalid_param(
                "missing_required_parameter",
                "messages",
                "Missing required parameter: `messages`.",
            ));
        }
        Some(Value::Array(items)) => items,
        Some(other) => return Err(wrong_type("messages", "an array", other)),
    };
    if items.is_empty() {
        return Err(ApiError::invalid_param(
            "empty_array",
            "messages",
            "`messages` must contain at least one message.",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_message(i, item))
        .collect()
}

fn parse_message(i: usize, item: &Value) -> Result<Message, ApiError> {
    let at = |field: &str| format!("messages[{i}].{field}");
    let Value::Object(obj) = item else {
        return Err(wrong_type(&format!("messages[{i}]"), "an object", item));
    };
    let role = match obj.get("role") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_param(
                "missing_required_parameter",
                at("role"),
                format!("Missing required parameter: `{}`.", at("role")),
            ));
        }
        Some(Value::String(s)) => match s.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(ApiError::invalid_param(
                    "invalid_value",
                    at("role"),
                    format!(
                        "Invalid value {other:?} for `{}`: expected one of system, developer, \
                         user, assistant.",
                        at("role")
                    ),
                ));
            }
        },
        Some(other) => return Err(wrong_type(&at("role"), "a string", other)),
    };
    let content = match obj.get("content") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid_param(
                "missing_required_parameter",
                at("content"),
                format!("Missing required parameter: `{}`.", at("content")),
            ));
        }
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    (Some("text"), _) => {
                        return Err(ApiError::invalid_param(
                            "invalid_type",
                            format!("{param}.text"),
                            format!("`{param}.text` must be a string."),
                        ));
                    }
                    _ => {
                        return Err(ApiError::invalid_param(
                            "unsupported_value",
                            param.clone(),
                            format!(
                                "`{param}`: only content parts of type \"text\" are supported."
                            ),
                        ));
                    }
                }
            }
            texts.join("\n")
        }
        Some(other) => {
            return Err(wrong_type(
                &at("content"),
                "a string or an array of text parts",
                other,
            ));
        }
    };
    Ok(Message { role, content })
}

fn parse_stop(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let stops: Vec<String> = match value {
        None => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(wrong_type(&format!("stop[{i}]"), "a string", other)),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(wrong_type("stop", "a string or an array of strings", other)),
    };
    if stops.len() > MAX_STOP {
        return Err(ApiError::invalid_param(
            "invalid_value",
            "stop",
            format!("`stop` may hold at most {MAX_STOP} sequences."),
        ));
    }
    if stops.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            "invalid_value",
            "stop",
            "`stop` sequences must not be empty.",
        ));
    }
    Ok(stops)
}

/// Typed, optional access to top-level fields; `null` reads as absent.
struct Fields<'a>(&'a Map<String, Value>);

impl<'a> Fields<'a> {
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong_type(name, "a string", other)),
        }
    }

    fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.bool_named(name, name)
    }

    fn bool_named(&self, name: &str, param: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong_type(param, "a boolean", other)),
        }
    }

    fn number(&self, name: &str) -> Result<Option<f64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(wrong_type(name, "a number", other)),
        }
    }

    /// A number in `[lo, hi]`, or `(lo, hi]` when `lo_inclusive` is false.
    fn number_in(
        &self,
        name: &str,
        lo: f64,
        hi: f64,
        lo_inclusive: bool,
    ) -> Result<Option<f32>, ApiError> {
        let Some(x) = self.number(name)? else {
            return Ok(None);
        };
        let above = if lo_inclusive { x >= lo } else { x > lo };
        if above && x <= hi {
            Ok(Some(x as f32))
        } else {
            let open = if lo_inclusive { '[' } else { '(' };
            Err(ApiError::invalid_param(
                "invalid_value",
                name,
                format!("`{name}` must be in {open}{lo}, {hi}]; got {x}."),
            ))
        }
    }

    fn positive_number(&self, name: &str) -> Result<Option<f32>, ApiError> {
        match self.number(name)? {
            None => Ok(None),
            Some(x) if x > 0.0 && x <= f64::from(f32::MAX) => Ok(Some(x as f32)),
            Some(x) => Err(ApiError::invalid_param(
                "invalid_value",
                name,
                format!("`{name}` must be a number greater than 0; got {x}."),
            )),
        }
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) => Ok(Some(n)),
                None if v.is_number() => Err(ApiError::invalid_param(
                    "invalid_type",
                    name,
                    format!("`{name}` must be an integer; got {v}."),
                )),
                None => Err(wrong_type(name, "an integer", v)),
            },
        }
    }

    fn positive_u32(&self, name: &str) -> Result<Option<u32>, ApiError> {
        match self.integer(name)? {
            None => Ok(None),
            Some(n) => match u32::try_from(n) {
                Ok(n) if n >= 1 => Ok(Some(n)),
                _ => Err(ApiError::invalid_param(
                    "invalid_value",
                    name,
                    format!(
                        "`{name}` must be an integer from 1 to {}; got {n}.",
                        u32::MAX
                    ),
                )),
            },
        }
    }

    fn top_k(&self) -> Result<Option<i32>, ApiError> {
        match self.integer("top_k")? {
            None => Ok(None),
            Some(n) => i32::try_from(n)
                .ok()
                .filter(|k| *k >= 0)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "invalid_value",
                        "top_k",
                        format!("`top_k` must be a non-negative integer; got {n}."),
                    )
                }),
        }
    }

    /// `-1` (llama.cpp's spelling of "random") reads as no seed.
    fn seed(&self) -> Result<Option<u32>, ApiError> {
        match self.integer("seed")? {
            None | Some(-1) => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                ApiError::invalid_param(
                    "invalid_value",
                    "seed",
                    format!("`seed` must be an integer from 0 to {}; got {n}.", u32::MAX),
                )
            }),
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::invalid_param(
        "invalid_type",
        param,
        format!("`{param}` must be {expected}, not {}.", type_name(got)),
    )
}

// ---- responses ----------------------------------------------------------------------------

/// The `kefu` object on every completion (the last chunk when streaming): the guard's
/// verdict on the text the client received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KefuMeta {
    /// `answer`, `refuse` or `handoff`.
    pub action: &'static str,
    /// Whether the text is backed by the cited knowledge-base entries.
    pub grounded: bool,
    /// Ids of the FAQ entries behind the text, primary first.
    pub citations: Vec<String>,
    /// True when the model's answer was rejected and replaced by the FAQ answer.
    pub replaced: bool,
}

impl From<&kefu_guard::Final> for KefuMeta {
    fn from(done: &kefu_guard::Final) -> Self {
        Self {
            action: done.action.as_str(),
            grounded: done.grounded,
            citations: done.citations.clone(),
            replaced: done.replaced,
        }
    }
}

/// OpenAI's `usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    pub prompt_tokens_details: PromptTokensDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32, cached_tokens: u32) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            prompt_tokens_details: PromptTokensDetails { cached_tokens },
        }
    }
}

/// `chat.completion`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
    pub kefu: KefuMeta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Choice {
    pub index: u32,
    pub message: ResponseMessage,
    pub finish_reason: String,
    pub logprobs: Option<()>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatCompletion {
    pub fn new(
        id: String,
        created: u64,
        model: String,
        content: String,
        finish_reason: String,
        usage: Usage,
        kefu: KefuMeta,
    ) -> Self {
        Self {
            id,
            object: "chat.completion",
            created,
            model,
            choices: vec![Choice {
                index: 0,
                message: ResponseMessage {
                    role: "assistant",
                    content,
                },
                finish_reason,
                logprobs: None,
            }],
            usage,
            kefu,
        }
    }
}

/// `chat.completion.chunk`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kefu: Option<KefuMeta>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<String>,
    pub logprobs: Option<()>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Delta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// `model` object of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelObject {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: &'static str,
}

impl ModelObject {
    pub fn new(id: impl Into<String>, created: u64) -> Self {
        Self {
            id: id.into(),
            object: "model",
            created,
            owned_by: "kefu",
        }
    }
}

/// `list` of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelObject>,
}

impl ModelList {
    /// [`DEFAULT_MODEL`] first (when any model is granted), then the granted models.
    pub fn new(models: &[String], created: u64) -> Self {
        let default = models
            .first()
            .map(|_| ModelObject::new(DEFAULT_MODEL, created));
        Self {
            object: "list",
            data: default
                .into_iter()
                .chain(models.iter().map(|m| ModelObject::new(m.as_str(), created)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat_request(v.to_string().as_bytes())
    }

    fn err(v: Value) -> ApiError {
        parse(v).expect_err("should be rejected")
    }

    #[test]
    fn minimal_request() {
        let r = parse(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert_eq!(r.model, "default");
        assert_eq!(
            r.messages,
            vec![Message {
                role: Role::User,
                content: "hi".into()
            }]
        );
        assert_eq!(r.options, Options::default());
        assert!(!r.stream && !r.include_usage);
    }

    #[test]
    fn full_request() {
        let r = parse(json!({
            "model": "smollm2-135m-instruct",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": "ok", "name": "bot"}
            ],
            "max_tokens": 10, "max_completion_tokens": 20, "temperature": 0.7, "top_p": 0.9,
            "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1, "seed": 42,
            "stop": "\n", "stream": true, "stream_options": {"include_usage": true},
            "user": "u-1", "n": 1, "presence_penalty": 0, "tools": [],
            "response_format": {"type": "text"}, "logprobs": false
        }))
        .unwrap();
        assert_eq!(r.model, "smollm2-135m-instruct");
        assert_eq!(r.messages[0].role, Role::System);
        assert_eq!(r.messages[1].content, "a\nb");
        assert_eq!(r.messages[2].role, Role::Assistant);
        assert_eq!(
            r.options,
            Options {
                max_tokens: Some(20),
                temperature: Some(0.7),
                top_p: Some(0.9),
                top_k: Some(40),
                min_p: Some(0.05),
                repeat_penalty: Some(1.1),
                seed: Some(42),
                stop: vec!["\n".into()],
            }
        );
        assert!(r.stream && r.include_usage);
        assert_eq!(r.user.as_deref(), Some("u-1"));
    }

    #[test]
    fn nulls_are_absent() {
        let r = parse(json!({
            "model": null, "messages": [{"role": "user", "content": "x"}], "max_tokens": null,
            "temperature": null, "stop": null, "stream": null, "seed": null
        }))
        .unwrap();
        assert_eq!(r.model, "default");
        assert_eq!(r.options, Options::default());
    }

    #[test]
    fn body_level_errors() {
        let e = parse_chat_request(b"{\"messages\": \"\xff\"}").unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_encoding"));
        let e = parse_chat_request(b"{\"messages\": [").unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_json"));
        assert!(e.message.contains("not valid JSON"), "{}", e.message);
        let e = parse_chat_request(b"").unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = parse_chat_request(b"[1]").unwrap_err();
        assert!(e.message.contains("JSON object"), "{}", e.message);
    }

    #[test]
    fn message_errors_name_the_parameter() {
        let e = err(json!({}));
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("missing_required_parameter", Some("messages"))
        );
        let e = err(json!({"messages": []}));
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("empty_array", Some("messages"))
        );
        let e = err(json!({"messages": {"role": "user"}}));
        assert_eq!(e.code, "invalid_type");
        let e = err(json!({"messages": ["hi"]}));
        assert_eq!(e.param.as_deref(), Some("messages[0]"));
        let e = err(
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}),
        );
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_value", Some("messages[1].role"))
        );
        assert!(e.message.contains("\"tool\""), "{}", e.message);
        let e = err(json!({"messages": [{"content": "a"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        let e = err(json!({"messages": [{"role": 1, "content": "a"}]}));
        assert_eq!(e.code, "invalid_type");
        let e = err(json!({"messages": [{"role": "user"}]}));
        assert_eq!(e.param.as_deref(), Some("messages[0].content"));
        let e = err(json!({"messages": [{"role": "user", "content": 5}]}));
        assert_eq!(e.code, "invalid_type");
        let e = err(
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
        );
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0]"));
    }

    #[test]
    fn parameter_errors() {
        let m = json!([{"role": "user", "content": "x"}]);
        let cases = [
            (json!({"model": 3}), "model", "invalid_type"),
            (json!({"model": " "}), "model", "invalid_value"),
            (json!({"max_tokens": 0}), "max_tokens", "invalid_value"),
            (json!({"max_tokens": -5}), "max_tokens", "invalid_value"),
            (json!({"max_tokens": 1.5}), "max_tokens", "invalid_type"),
            (json!({"max_tokens": "10"}), "max_tokens", "invalid_type"),
            (
                json!({"max_completion_tokens": 5_000_000_000u64}),
                "max_completion_tokens",
                "invalid_value",
            ),
            (json!({"temperature": 2.5}), "temperature", "invalid_value"),
            (json!({"temperature": "hot"}), "temperature", "invalid_type"),
            (json!({"top_p": 0}), "top_p", "invalid_value"),
            (json!({"top_p": 1.01}), "top_p", "invalid_value"),
            (json!({"top_k": -1}), "top_k", "invalid_value"),
            (json!({"min_p": 2}), "min_p", "invalid_value"),
            (
                json!({"repeat_penalty": 0}),
                "repeat_penalty",
                "invalid_value",
            ),
            (json!({"seed": -2}), "seed", "invalid_value"),
            (json!({"seed": 1u64 << 40}), "seed", "invalid_value"),
            (json!({"stop": 1}), "stop", "invalid_type"),
            (json!({"stop": ["a", 1]}), "stop[1]", "invalid_type"),
            (json!({"stop": [""]}), "stop", "invalid_value"),
            (
                json!({"stop": ["a", "b", "c", "d", "e"]}),
                "stop",
                "invalid_value",
            ),
            (json!({"stream": "yes"}), "stream", "invalid_type"),
            (
                json!({"stream_options": {"include_usage": true}}),
                "stream_options",
                "invalid_value",
            ),
            (
                json!({"stream": true, "stream_options": {"include_usage": 1}}),
                "stream_options.include_usage",
                "invalid_type",
            ),
            (json!({"n": 2}), "n", "unsupported_value"),
            (json!({"logprobs": true}), "logprobs", "unsupported_value"),
            (
                json!({"tools": [{"type": "function"}]}),
                "tools",
                "unsupported_parameter",
            ),
            (
                json!({"response_format": {"type": "json_object"}}),
                "response_format",
                "unsupported_value",
            ),
            (json!({"user": 7}), "user", "invalid_type"),
        ];
        for (mut body, param, code) in cases {
            body["messages"] = m.clone();
            let e = err(body.clone());
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(
                (e.param.as_deref(), e.code),
                (Some(param), code),
                "{body}: {}",
                e.message
            );
            assert!(
                e.message.contains(param.split('[').next().unwrap()),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn seed_minus_one_means_random() {
        let r = parse(json!({"messages": [{"role": "user", "content": "x"}], "seed": -1})).unwrap();
        assert_eq!(r.options.seed, None);
    }

    #[test]
    fn completion_json_shape() {
        let c = ChatCompletion::new(
            "chatcmpl-1".into(),
            5,
            "m".into(),
            "hello".into(),
            "stop".into(),
            Usage::new(3, 2, 1),
            KefuMeta::from(&kefu_guard::Final {
                text: "hello".into(),
                action: kefu_guard::Action::Answer,
                grounded: true,
                citations: vec!["refund-1".into()],
                replaced: false,
                reason: "covered".into(),
            }),
        );
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"},
                             "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                          "prompt_tokens_details": {"cached_tokens": 1}},
                "kefu": {"action": "answer", "grounded": true, "citations": ["refund-1"],
                         "replaced": false}
            })
        );
    }

    #[test]
    fn model_list_has_default_first() {
        let l = ModelList::new(&["a".into(), "b".into()], 9);
        let ids: Vec<_> = l.data.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["default", "a", "b"]);
        assert!(ModelList::new(&[], 9).data.is_empty());
        assert_eq!(
            serde_json::to_value(&l.data[1]).unwrap(),
            json!({"id": "a", "object": "model", "created": 9, "owned_by": "kefu"})
        );
    }
}
