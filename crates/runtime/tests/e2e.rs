//! End-to-end tests over real HTTP and real wasmtime with the test guest
//! (`tests/guests/test-guest`): isolation of failing guests, limits, Spin interfaces, files,
//! host endpoints. The engine-backed tests are in `engine.rs`.

mod common;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{get, send};
use kefu_runtime::{GuestLimits, ModelRegistry, ServeOptions};

/// Fuel for the shared server: the default budget.
const FUEL: u64 = kefu_runtime::limits::DEFAULT_FUEL;

fn write_manifest(dir: &std::path::Path, wasm: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("kb")).unwrap();
    std::fs::write(dir.join("kb/faq.jsonl"), "{\"id\":\"q1\"}\n").unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/hello.txt"), "hello file").unwrap();
    std::fs::write(dir.join("assets/secret.txt"), "do not mount").unwrap();
    let manifest = format!(
        r#"
spin_manifest_version = 2

[application]
name = "runtime-e2e"

[variables]
greeting = {{ default = "hi" }}
api_keys = {{ required = true }}

[[trigger.http]]
route = "/..."
component = "plain"

[[trigger.http]]
route = "/other/..."
component = "other"

[component.plain]
source = "{wasm}"
files = [{{ source = "kb", destination = "/kb" }}, "assets/*.txt"]
exclude_files = ["assets/secret.txt"]
key_value_stores = ["default"]
environment = {{ KEFU_TEST = "env-value" }}
[component.plain.variables]
message = "{{{{ greeting }}}}, world"
keys = "{{{{ api_keys }}}}"

[component.other]
source = "{wasm}"
"#,
        wasm = wasm.display()
    );
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    path
}

/// One server for the whole file, so the guest is compiled once and failing requests share
/// the host with the others.
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let dir = common::scratch("e2e");
        let manifest = write_manifest(&dir, &common::guest_wasm());
        let mut opts = ServeOptions::new(manifest, ModelRegistry::new());
        opts.listen = "127.0.0.1:0".parse().unwrap();
        opts.state_dir = dir.join("state");
        opts.variables = vec![("api_keys".into(), "abc123".into())];
        opts.body_limit = 64 * 1024;
        opts.limits = GuestLimits {
            memory_bytes: 64 << 20,
            max_instances: 32,
            request_timeout: Duration::from_secs(60),
            fuel: FUEL,
            ..GuestLimits::default()
        };
        common::start_server(opts)
    })
}

async fn assert_healthy(addr: SocketAddr) {
    let r = get(addr, "/hello").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello"));
}

fn assert_json_error(r: &common::Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], code, "{}", r.body);
    assert!(v["error"]["message"].is_string());
    assert!(v["error"]["type"].is_string());
}

#[tokio::test]
async fn serves_a_component() {
    let addr = server();
    assert_healthy(addr).await;
    let r = send(addr, "POST", "/echo", vec![b'x'; 1000]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "1000 bytes"));
}

#[tokio::test]
async fn trap_gives_500_json_and_the_host_serves_on() {
    let addr = server();
    let r = get(addr, "/trap").await;
    assert_json_error(&r, 500, "component_trap");
    assert_healthy(addr).await;
}

#[tokio::test]
async fn infinite_loop_is_stopped_within_seconds() {
    let addr = server();
    let started = Instant::now();
    let r = get(addr, "/loop").await;
    let elapsed = started.elapsed();
    eprintln!("runaway loop stopped after {elapsed:.2?} with {FUEL} fuel");
    assert_json_error(&r, 500, "component_cpu_limit");
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    assert_healthy(addr).await;
}

#[tokio::test]
async fn unbounded_allocation_is_stopped() {
    let addr = server();
    let started = Instant::now();
    let r = get(addr, "/alloc").await;
    eprintln!("runaway allocation stopped after {:.2?}", started.elapsed());
    assert_json_error(&r, 500, "component_memory_limit");
    assert_healthy(addr).await;
}

#[tokio::test]
async fn waiting_on_the_host_does_not_use_the_cpu_budget() {
    let addr = server();
    // 4 x 1.5 s of host timer waits: longer than the loop test needs to exhaust the same fuel.
    let started = Instant::now();
    let r = get(addr, "/sleep?ms=1500&chunks=4").await;
    let elapsed = started.elapsed();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "tick 0\ntick 1\ntick 2\ntick 3\n");
    assert!(elapsed >= Duration::from_secs(6), "{elapsed:?}");
}

#[tokio::test]
async fn streamed_response_arrives_in_pieces() {
    use http_body_util::BodyExt;
    let addr = server();
    let request = http::Request::get(format!("http://{addr}/sleep?ms=300&chunks=3"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = common::client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    let mut arrivals = Vec::new();
    let started = Instant::now();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            arrivals.push((
                started.elapsed(),
                String::from_utf8_lossy(&data).into_owned(),
            ));
        }
    }
    assert_eq!(arrivals.len(), 3, "{arrivals:?}");
    assert!(
        arrivals[2].0 - arrivals[0].0 >= Duration::from_millis(500),
        "{arrivals:?}"
    );
}

#[tokio::test]
async fn trap_after_streaming_started_cuts_the_response() {
    use http_body_util::BodyExt;
    let addr = server();
    let request = http::Request::get(format!("http://{addr}/stream-then-trap"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    // The head and first chunk may still sit in the server's write buffer when the guest
    // traps, so the client sees either a 200 whose body fails or a message cut before the head:
    // never a clean, complete response.
    match common::client().request(request).await {
        Ok(response) => {
            assert_eq!(response.status(), 200);
            let result = response.into_body().collect().await;
            assert!(result.is_err(), "the body should end with an error");
        }
        Err(e) => assert!(format!("{e:?}").contains("IncompleteMessage"), "{e:?}"),
    }
    assert_healthy(addr).await;
}

#[tokio::test]
async fn component_variables_and_environment() {
    let addr = server();
    let r = get(addr, "/var?name=message").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hi, world"));
    let r = get(addr, "/var?name=keys").await;
    assert_eq!((r.status, r.body.as_str()), (200, "abc123"));
    let r = get(addr, "/var?name=nope").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("Undefined"), "{}", r.body);
    let r = get(addr, "/var?name=Bad-Name").await;
    assert!(r.body.contains("InvalidName"), "{}", r.body);
    let r = get(addr, "/env?name=KEFU_TEST").await;
    assert_eq!(r.body, "env-value");
    // The other component has no variables.
    let r = get(addr, "/other/var?name=message").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn key_value_store_persists_across_requests_and_checks_grants() {
    let addr = server();
    let first: u64 = get(addr, "/kv").await.body.parse().unwrap();
    let second: u64 = get(addr, "/kv").await.body.parse().unwrap();
    assert!(second > first);
    let r = get(addr, "/kv?store=other").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
    let r = get(addr, "/other/kv").await;
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
}

#[tokio::test]
async fn files_are_mounted_read_only() {
    let addr = server();
    let r = get(addr, "/file?path=/kb/faq.jsonl").await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"id\":\"q1\"}\n"));
    let r = get(addr, "/file?path=/assets/hello.txt").await;
    assert_eq!((r.status, r.body.as_str()), (200, "hello file"));
    let r = get(addr, "/file?path=/assets/secret.txt").await;
    assert_eq!(r.status, 404, "excluded file is visible: {}", r.body);
    let r = get(addr, "/write?path=/kb/new.txt").await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = get(addr, "/other/file?path=/kb/faq.jsonl").await;
    assert_eq!(r.status, 404, "ungranted component sees files: {}", r.body);
}

#[tokio::test]
async fn outbound_http_is_denied() {
    let addr = server();
    let r = get(addr, "/outbound").await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn spin_headers_reach_the_guest() {
    let addr = server();
    let request = http::Request::get(format!("http://{addr}/other/headers?x=1"))
        .header("spin-client-addr", "6.6.6.6:1")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = common::client().request(request).await.unwrap();
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("spin-path-info: /headers"), "{body}");
    assert!(body.contains("spin-matched-route: /other/..."), "{body}");
    assert!(body.contains("spin-component-route: /other"), "{body}");
    assert!(
        body.contains(&format!("spin-full-url: http://{addr}/other/headers?x=1")),
        "{body}"
    );
    assert!(body.contains("spin-client-addr: 127.0.0.1:"), "{body}");
    assert!(!body.contains("6.6.6.6"), "{body}");
}

#[tokio::test]
async fn body_limit_gives_413_before_the_guest_runs() {
    let addr = server();
    let r = send(addr, "POST", "/echo", vec![b'x'; 64 * 1024 + 1]).await;
    assert_json_error(&r, 413, "request_too_large");
    let r = send(addr, "POST", "/echo", vec![b'x'; 64 * 1024]).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn host_endpoints() {
    let addr = server();
    let r = get(addr, "/health").await;
    assert_eq!(r.status, 200);
    let r = get(addr, "/ready").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["status"], "ready");
    let components = v["components"].as_array().unwrap();
    assert_eq!(components.len(), 2);
    assert_eq!(components[0]["sha256"].as_str().unwrap().len(), 64);
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("kefu_up 1"), "{}", r.body);
    assert!(r.body.contains("kefu_guest_instances"), "{}", r.body);
    let r = send(addr, "POST", "/health", "").await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn unknown_routes_are_404_json() {
    // A manifest without a catch-all route.
    let dir = common::scratch("no-catchall");
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\n\
             route = \"/hello\"\ncomponent = \"c\"\n[component.c]\nsource = \"{}\"\n",
            common::guest_wasm().display()
        ),
    )
    .unwrap();
    let mut opts = ServeOptions::new(manifest, ModelRegistry::new());
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.state_dir = dir.join("state");
    opts.limits.max_instances = 4;
    let addr = common::start_server(opts);
    assert_eq!(get(addr, "/hello").await.body, "hello");
    let r = get(addr, "/nope").await;
    assert_json_error(&r, 404, "not_found");
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let dir = common::scratch("cache");
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\n\
             route = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"{}\"\n",
            common::guest_wasm().display()
        ),
    )
    .unwrap();
    let opts = || {
        let mut opts = ServeOptions::new(&manifest, ModelRegistry::new());
        opts.listen = "127.0.0.1:0".parse().unwrap();
        opts.state_dir = dir.join("state");
        opts.limits.max_instances = 4;
        opts
    };
    let mut timings = Vec::new();
    for expect_hit in [false, true] {
        let started = Instant::now();
        let server = kefu_runtime::Server::bind(opts()).await.unwrap();
        let bind_time = started.elapsed();
        let addr = server.local_addr();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run(async move {
            let _ = stop_rx.await;
        }));
        let v = get(addr, "/ready").await.json();
        let c = &v["components"][0];
        assert_eq!(c["cache_hit"], expect_hit, "{v}");
        timings.push((expect_hit, bind_time, c["load_ms"].as_f64().unwrap()));
        // First instantiation and call.
        let started = Instant::now();
        assert_eq!(get(addr, "/hello").await.body, "hello");
        let first_request = started.elapsed();
        let started = Instant::now();
        for _ in 0..20 {
            assert_eq!(get(addr, "/hello").await.status, 200);
        }
        eprintln!(
            "cache_hit={expect_hit}: bind {bind_time:.2?}, component load {} ms, first request \
             {first_request:.2?}, then {:.2?} per request",
            c["load_ms"],
            started.elapsed() / 20
        );
        stop_tx.send(()).unwrap();
        running.await.unwrap().unwrap();
    }
    let cached = std::fs::read_dir(dir.join("state/wasm-cache"))
        .unwrap()
        .count();
    assert_eq!(cached, 1);
    assert!(timings[1].2 < timings[0].2, "{timings:?}");
}

#[tokio::test]
async fn bad_manifest_fails_startup_naming_file_and_field() {
    let dir = common::scratch("bad-manifest");
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.c]\nsource = \"c.wasm\"\nai_modles = []\n",
    )
    .unwrap();
    let mut opts = ServeOptions::new(&manifest, ModelRegistry::new());
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.state_dir = dir.join("state");
    let e = match kefu_runtime::Server::bind(opts).await {
        Ok(_) => panic!("a bad manifest was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("spin.toml") && e.contains("ai_modles"), "{e}");
}

#[tokio::test]
async fn missing_model_grant_fails_startup() {
    let dir = common::scratch("missing-model");
    let manifest = dir.join("spin.toml");
    std::fs::write(
        &manifest,
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[component.c]\nsource = \"c.wasm\"\nai_models = [\"llama\"]\n",
    )
    .unwrap();
    let mut opts = ServeOptions::new(&manifest, ModelRegistry::new());
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.state_dir = dir.join("state");
    let e = match kefu_runtime::Server::bind(opts).await {
        Ok(_) => panic!("an unloaded model was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("llama") && e.contains("ai_models"), "{e}");
    assert_eq!(
        kefu_runtime::requested_models(&manifest)
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        ["llama"]
    );
}
