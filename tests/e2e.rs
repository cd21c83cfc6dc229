//! End to end: the `kefu` binary serving the repository's spin.toml (the real gateway component
//! on wasmtime, the real default model on llama.cpp) over real HTTP.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{DEMO_KEY, Kefu};
use serde_json::{Value, json};

fn auth() -> String {
    format!("Bearer {DEMO_KEY}")
}

fn assert_error(reply: &common::Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "OpenAI error shape: {body}"
    );
    assert!(error["type"].is_string(), "{body}");
    body
}

#[test]
fn plain_and_streamed_chat() {
    let kefu = Kefu::start(&[]);
    let reply = kefu.chat(&json!({
        "model": "default",
        "messages": [{"role": "user", "content": "How much does the Pro plan cost per month?"}],
        "max_tokens": 48
    }));
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!content.is_empty());
    assert!(body["usage"]["total_tokens"].as_u64().is_some(), "{body}");
    assert!(body["kefu"]["action"].is_string(), "{body}");

    let reply = kefu.chat(&json!({
        "messages": [{"role": "user", "content": "Tell me about sharing folders."}],
        "max_tokens": 32,
        "stream": true
    }));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let events = reply.sse();
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let last = chunks.last().unwrap();
    assert!(last["choices"][0]["finish_reason"].is_string(), "{last}");
    assert!(last["kefu"]["action"].is_string(), "{last}");
}

#[test]
fn models_health_and_ready() {
    let kefu = Kefu::start(&[]);
    assert_eq!(kefu.request("GET", "/health", &[], b"").status, 200);
    assert_eq!(kefu.request("GET", "/ready", &[], b"").status, 200);
    let reply = kefu.request("GET", "/v1/models", &[("Authorization", &auth())], b"");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let ids: Vec<String> = reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.iter().any(|i| i == "smollm2-135m-instruct"), "{ids:?}");
    let metrics = kefu.request("GET", "/metrics", &[], b"");
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("kefu_"));
}

#[test]
fn eight_concurrent_streams_complete() {
    let kefu = Kefu::start(&[]);
    let questions = [
        "How do I reset my password?",
        "What is the refund policy?",
        "How large can a single file be?",
        "Is my data encrypted?",
        "How do I get an invoice?",
        "How many devices can I use?",
        "What does the Team plan cost?",
        "How long are deleted files kept?",
    ];
    std::thread::scope(|s| {
        let handles: Vec<_> = questions
            .iter()
            .map(|q| {
                let kefu = &kefu;
                s.spawn(move || {
                    kefu.chat(&json!({
                        "messages": [{"role": "user", "content": q}],
                        "max_tokens": 32,
                        "stream": true
                    }))
                })
            })
            .collect();
        for h in handles {
            let reply = h.join().unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text());
            assert_eq!(reply.sse().last().map(String::as_str), Some("[DONE]"));
        }
    });
}

#[test]
fn client_hanging_up_mid_stream_frees_its_sequence() {
    let kefu = Kefu::start(&[
        "--variable",
        "answer_mode=generative",
        "--ctx-per-seq",
        "2048",
    ]);
    // An in-scope question (the guard sends it to the model), sampled hot so the answer runs
    // long instead of ending early.
    let body = json!({
        "messages": [{"role": "user", "content": "How much does the Pro plan cost per month?"}],
        "max_tokens": 900,
        "temperature": 1.8,
        "seed": 3,
        "stream": true
    })
    .to_string();
    let mut stream = kefu
        .send(
            "POST",
            "/v1/chat/completions",
            &[
                ("Authorization", &auth()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap();
    let mut first = [0u8; 256];
    let n = stream.read(&mut first).unwrap();
    let head = String::from_utf8_lossy(&first[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Wait until the engine is generating for this request, then hang up.
    let deadline = Instant::now() + Duration::from_secs(60);
    while kefu.metric("kefu_engine_live_sequences").unwrap_or(0.0) < 1.0 {
        assert!(Instant::now() < deadline, "generation never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
    // 900 tokens take far longer than this; only cancellation frees the sequence in time.
    let deadline = Instant::now() + Duration::from_secs(10);
    while kefu.metric("kefu_engine_live_sequences").unwrap_or(1.0) > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the sequence was not freed after the client left"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // And the server keeps answering.
    let reply =
        kefu.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[test]
fn bad_requests_get_openai_errors() {
    let kefu = Kefu::start(&[]);
    let post = |headers: &[(&str, &str)], body: &[u8]| {
        kefu.request("POST", "/v1/chat/completions", headers, body)
    };
    let a = auth();
    let json_auth = [
        ("Authorization", a.as_str()),
        ("Content-Type", "application/json"),
    ];

    // Authentication.
    assert_error(&post(&[("Content-Type", "application/json")], b"{}"), 401);
    assert_error(
        &post(
            &[
                ("Authorization", "Bearer wrong-key"),
                ("Content-Type", "application/json"),
            ],
            br#"{"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        401,
    );
    // Malformed JSON, wrong types, invalid UTF-8.
    assert_error(&post(&json_auth, b"{\"messages\": ["), 400);
    assert_error(&post(&json_auth, br#"{"messages": "hello"}"#), 400);
    assert_error(
        &post(
            &json_auth,
            br#"{"messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}"#,
        ),
        400,
    );
    assert_error(
        &post(
            &json_auth,
            b"{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}",
        ),
        400,
    );
    // Unknown model.
    assert_error(
        &post(
            &json_auth,
            br#"{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        404,
    );
    // Too large a body.
    let huge = vec![b'a'; 2 << 20];
    assert_error(&post(&json_auth, &huge), 413);
    // Unknown route.
    assert_error(&kefu.request("GET", "/nope", &[], b""), 404);
    // The host keeps serving.
    let ok = kefu.chat(&json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}));
    assert_eq!(ok.status, 200, "{}", ok.text());
}

#[test]
fn prompt_over_the_context_is_a_client_error() {
    let kefu = Kefu::start(&["--variable", "answer_mode=generative"]);
    let long = "refund ".repeat(3000);
    let reply = kefu.chat(&json!({
        "messages": [{"role": "user", "content": long}],
        "max_tokens": 16
    }));
    assert!(
        reply.status == 400 || reply.status == 200,
        "never a 5xx for an overlong prompt: {} {}",
        reply.status,
        reply.text()
    );
    if reply.status == 400 {
        assert_error(&reply, 400);
    }
}

#[test]
fn official_openai_client_works() {
    let root = common::repo();
    let Some(python) = common::venv_python(&root) else {
        panic!(".venv is missing: scripts/test creates it with the openai package");
    };
    let kefu = Kefu::start(&[]);
    let out = std::process::Command::new(python)
        .arg(root.join("tests/openai_client.py"))
        .arg(format!("http://{}/v1", kefu.addr))
        .arg(DEMO_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openai client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
