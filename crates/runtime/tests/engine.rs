//! End-to-end tests with the real engine and the default model
//! (`models/smollm2-135m-instruct.Q4_1.gguf`, or the file named by `KEFU_TEST_MODEL`):
//! wasi-nn grants, streamed generation, error mapping, cancellation, `fermyon:spin/llm`.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{encode, get};
use kefu_engine::{Engine, EngineConfig, EngineHandle};
use kefu_runtime::{ModelRegistry, ServeOptions};

struct Fixture {
    addr: SocketAddr,
    engine: EngineHandle,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let model = kefu_testkit::default_model();
        assert!(
            model.is_file(),
            "model {} not found: run `kefu models pull` or set KEFU_TEST_MODEL",
            model.display()
        );
        let mut config = EngineConfig::new(&model);
        config.parallel = 4;
        config.ctx_per_seq = 512;
        let engine = Engine::start(config).expect("starting the engine");
        let handle = engine.handle();
        // The engine lives as long as the test process.
        std::mem::forget(engine);

        let dir = common::scratch("engine");
        let manifest = dir.join("spin.toml");
        std::fs::write(
            &manifest,
            format!(
                r#"
spin_manifest_version = 2
[application]
name = "runtime-engine"

[[trigger.http]]
route = "/granted/..."
component = "granted"

[[trigger.http]]
route = "/by-name/..."
component = "by-name"

[[trigger.http]]
route = "/..."
component = "ungranted"

[component.granted]
source = "{wasm}"
ai_models = ["default"]

[component.by-name]
source = "{wasm}"
ai_models = ["smollm2"]

[component.ungranted]
source = "{wasm}"
"#,
                wasm = common::guest_wasm().display()
            ),
        )
        .unwrap();
        let mut models = ModelRegistry::new();
        models.insert("smollm2", handle.clone());
        let mut opts = ServeOptions::new(manifest, models);
        opts.listen = "127.0.0.1:0".parse().unwrap();
        opts.state_dir = dir.join("state");
        opts.limits.max_instances = 16;
        let addr = common::start_server(opts);
        Fixture {
            addr,
            engine: handle,
        }
    })
}

const PROMPT: &str = "<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n";

fn generate_path(prefix: &str, model: &str, options: &str) -> String {
    format!(
        "{prefix}/nn/generate?model={model}&prompt={}&options={}",
        encode(PROMPT),
        encode(options)
    )
}

#[tokio::test]
async fn ungranted_component_gets_security_error() {
    let f = fixture();
    let r = get(f.addr, "/nn/load?model=default").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Security:"), "{}", r.body);
    let r = get(f.addr, "/nn/load?model=smollm2").await;
    assert!(r.body.contains("Security:"), "{}", r.body);
}

#[tokio::test]
async fn grants_resolve_names_and_the_default_alias() {
    let f = fixture();
    for path in [
        "/granted/nn/load?model=default",
        "/granted/nn/load?model=smollm2",
        "/by-name/nn/load?model=smollm2",
        "/by-name/nn/load?model=default",
    ] {
        let r = get(f.addr, path).await;
        assert_eq!((r.status, r.body.as_str()), (200, "loaded"), "{path}");
    }
    let r = get(f.addr, "/granted/nn/load?model=gpt-17").await;
    assert!(r.body.contains("NotFound:"), "{}", r.body);
    let r = get(f.addr, "/granted/nn/load-bytes").await;
    assert!(r.body.contains("UnsupportedOperation:"), "{}", r.body);
}

#[tokio::test]
async fn generation_streams_text_then_done() {
    let f = fixture();
    let started = Instant::now();
    let r = get(
        f.addr,
        &generate_path("/granted", "default", r#"{"max_tokens": 24, "seed": 1}"#),
    )
    .await;
    eprintln!(
        "24-token generation through the guest took {:.2?}",
        started.elapsed()
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let lines: Vec<&str> = r.body.lines().collect();
    let last = lines.last().unwrap();
    let done: serde_json::Value =
        serde_json::from_str(last.strip_prefix("done:").expect(last)).unwrap();
    assert!(["stop", "length"].contains(&done["finish_reason"].as_str().unwrap()));
    let completion = done["completion_tokens"].as_u64().unwrap();
    assert!((1..=24).contains(&completion), "{done}");
    assert!(done["prompt_tokens"].as_u64().unwrap() > 5);
    assert!(done.get("cached_prompt_tokens").is_some());
    assert!(done.get("time_to_first_token").is_some());
    let text: String = lines
        .iter()
        .filter_map(|l| l.strip_prefix("text:"))
        .collect();
    assert!(!text.trim().is_empty(), "{}", r.body);
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("text:") || l.starts_with("done:")),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn invalid_options_are_invalid_arguments() {
    let f = fixture();
    for options in [r#"{"max_tokens": 0}"#, r#"{"max_tokenz": 3}"#, "not json"] {
        let r = get(f.addr, &generate_path("/granted", "default", options)).await;
        assert_eq!(r.status, 400, "{options}: {}", r.body);
        assert!(r.body.contains("InvalidArgument:"), "{}", r.body);
    }
    let r = get(
        f.addr,
        &generate_path("/granted", "default", r#"{"max_tokens": 100000}"#),
    )
    .await;
    assert!(r.body.contains("TooLarge:"), "{}", r.body);
    let r = get(f.addr, "/granted/nn/generate?model=default&prompt=").await;
    assert!(r.body.contains("InvalidArgument:"), "{}", r.body);
}

#[tokio::test]
async fn a_long_generation_is_not_cut_by_the_cpu_limit() {
    // The guest spends almost all of this request waiting in `compute`; its fuel is untouched
    // by the wait. 96 tokens on this machine take seconds (a minute under load).
    let f = fixture();
    let started = Instant::now();
    let prompt = "<|im_start|>user\nWrite a long story about a lighthouse keeper and a storm.\
                  <|im_end|>\n<|im_start|>assistant\n";
    let r = get(
        f.addr,
        &format!(
            "/granted/nn/generate?model=default&prompt={}&options={}",
            encode(prompt),
            encode(r#"{"max_tokens": 96, "temperature": 0.8, "seed": 7}"#)
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let last = r.body.lines().last().unwrap();
    assert!(last.starts_with("done:"), "{}", r.body);
    eprintln!(
        "96-token generation streamed in {:.2?}: {last}",
        started.elapsed()
    );
}

#[tokio::test]
async fn client_hangup_cancels_the_generation() {
    use http_body_util::BodyExt;
    let f = fixture();
    let before = f.engine.stats().cancelled;
    let request = http::Request::get(format!(
        "http://{}{}",
        f.addr,
        generate_path(
            "/granted",
            "default",
            r#"{"max_tokens": 400, "temperature": 1.0, "seed": 3}"#
        )
    ))
    .body(http_body_util::Full::new(bytes::Bytes::new()))
    .unwrap();
    let response = common::client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.engine.stats().cancelled == before {
        assert!(
            Instant::now() < deadline,
            "the engine did not see the generation cancelled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn spin_llm_infer_uses_the_same_engine_and_grants() {
    let f = fixture();
    let r = get(
        f.addr,
        &format!("/granted/llm?model=default&prompt={}", encode(PROMPT)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut parts = r.body.splitn(3, '|');
    let prompt_tokens: u32 = parts.next().unwrap().parse().unwrap();
    let generated: u32 = parts.next().unwrap().parse().unwrap();
    assert!(
        prompt_tokens > 5 && (1..=8).contains(&generated),
        "{}",
        r.body
    );
    let r = get(f.addr, "/llm?model=default&prompt=hi").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("ModelNotSupported"), "{}", r.body);
}
