//! Operations end to end, with the test guest over real HTTP: hot swap under load (admin
//! upload and file watch), rejected uploads, staged files reloaded, Prometheus metrics,
//! the concurrency limit, graceful shutdown, request ids and the access log.

mod common;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{get, send};
use kefu_runtime::{ModelRegistry, ServeOptions};

const ADMIN: &str = "test-admin-token";

/// Every log line of this test process, as JSON, so tests can read the access log.
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter("info")
            .with_writer(move || LogWriter(buffer))
            .try_init();
        buffer
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An app directory with the v1 guest copied in as `guest.wasm`, a staged `files` pattern and
/// an admin token.
fn app(name: &str) -> (PathBuf, ServeOptions) {
    logs();
    let dir = common::scratch(name);
    std::fs::copy(common::guest_wasm(), dir.join("guest.wasm")).unwrap();
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("assets/hello.txt"), "first").unwrap();
    let manifest = r#"
spin_manifest_version = 2

[application]
name = "ops-e2e"

[variables]
admin_token = { default = "", secret = true }

[[trigger.http]]
route = "/..."
component = "guest"

[component.guest]
source = "guest.wasm"
files = ["assets/*.txt"]
"#;
    std::fs::write(dir.join("spin.toml"), manifest).unwrap();
    let mut opts = ServeOptions::new(dir.join("spin.toml"), ModelRegistry::new());
    opts.listen = "127.0.0.1:0".parse().unwrap();
    opts.state_dir = dir.join("state");
    opts.variables = vec![("admin_token".into(), ADMIN.into())];
    (dir, opts)
}

async fn admin(addr: SocketAddr, method: &str, path: &str, body: Vec<u8>) -> common::Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {ADMIN}"))
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap();
    let response = common::client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    common::Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The value of the one sample of `name{labels}` in an exposition, 0 when absent.
fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_under_load_drops_no_request() {
    let v2 = std::fs::read(common::guest_wasm_version("2")).unwrap();
    let v1 = std::fs::read(common::guest_wasm()).unwrap();
    let (_dir, opts) = app("hot-swap");
    let addr = common::start_server(opts);
    assert_eq!(get(addr, "/version").await.body, "1");

    // Load: plain requests and 0.6 s streams, until the swaps are done.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let mut workers = Vec::new();
    for w in 0..6 {
        let (stop, done, versions) = (stop.clone(), done.clone(), versions.clone());
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                if w % 2 == 0 {
                    let r = get(addr, "/sleep?chunks=6&ms=100").await;
                    if r.status != 200 || r.body.lines().count() != 6 {
                        failures.push(format!("stream: {} {:?}", r.status, r.body));
                    }
                } else {
                    let r = get(addr, "/version").await;
                    if r.status == 200 {
                        versions.lock().unwrap().insert(r.body);
                    } else {
                        failures.push(format!("plain: {} {}", r.status, r.body));
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    let mut swap_ms = Vec::new();
    for (i, bytes) in [&v2, &v1, &v2].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let started = Instant::now();
        let r = admin(addr, "POST", "/admin/components/guest", bytes.clone()).await;
        swap_ms.push(started.elapsed().as_millis());
        assert_eq!(r.status, 200, "swap {i}: {}", r.body);
        assert_eq!(r.json()["version"], i as u64 + 2, "{}", r.body);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.unwrap());
    }
    let total = done.load(Ordering::SeqCst);
    eprintln!("hot swap: {total} requests, swap upload times {swap_ms:?} ms");
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(total > 20, "the load did not run: {total} requests");
    let seen = versions.lock().unwrap().clone();
    assert!(seen.contains("1") && seen.contains("2"), "{seen:?}");
    assert_eq!(get(addr, "/version").await.body, "2");

    let listing = admin(addr, "GET", "/admin/components", Vec::new()).await;
    let guest = &listing.json()["components"][0];
    assert_eq!(guest["version"], 4, "{}", listing.body);
    assert_eq!(
        guest["sha256"].as_str().unwrap(),
        sha256_hex(&v2),
        "{}",
        listing.body
    );
    let metrics = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(&metrics, "kefu_component_swaps_total{component=\"guest\"}"),
        3.0
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn broken_uploads_are_rejected_and_the_old_version_serves_on() {
    let (_dir, opts) = app("broken-upload");
    let addr = common::start_server(opts);
    // Not Wasm at all, a core module rather than a component, and a component that does not
    // export the HTTP handler.
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for (body, expect) in [
        (b"not wasm".to_vec(), "compiling"),
        (core_module, "compiling"),
    ] {
        let r = admin(addr, "POST", "/admin/components/guest", body).await;
        assert_eq!(r.status, 422, "{}", r.body);
        let v = r.json();
        assert_eq!(v["error"]["code"], "component_rejected");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(expect), "{message}");
        assert_eq!(get(addr, "/version").await.body, "1");
    }
    let r = admin(addr, "POST", "/admin/components/nope", b"x".to_vec()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = send(addr, "POST", "/admin/components/guest", "x").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = get(addr, "/admin/components").await;
    assert_eq!(r.status, 401, "{}", r.body);
    let metrics = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(
            &metrics,
            "kefu_component_swap_failures_total{component=\"guest\"}"
        ),
        2.0
    );
    let ready = get(addr, "/ready").await.json();
    assert_eq!(ready["components"][0]["version"], 1);
}

#[tokio::test]
async fn admin_api_is_off_without_a_token() {
    let (_dir, mut opts) = app("admin-off");
    opts.variables.clear();
    let addr = common::start_server(opts);
    let r = admin(addr, "GET", "/admin/components", Vec::new()).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "admin_disabled");
}

async fn wait_for(addr: SocketAddr, path: &str, expected: &str) -> Duration {
    let started = Instant::now();
    loop {
        let r = get(addr, path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        if r.body == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{path} still answers {:?}, expected {expected:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `bytes` to `path` the way build tools do: a temporary file renamed into place.
fn replace_file(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn watched_files_swap_the_component_and_restage_files() {
    let v2 = std::fs::read(common::guest_wasm_version("2")).unwrap();
    let (dir, mut opts) = app("watch");
    opts.watch = true;
    let addr = common::start_server(opts);
    assert_eq!(
        get(addr, "/file?path=/assets/hello.txt").await.body,
        "first"
    );

    replace_file(&dir.join("guest.wasm"), &v2);
    let took = wait_for(addr, "/version", "2").await;
    eprintln!("file watch swapped the component in {took:?}");

    std::fs::write(dir.join("assets/hello.txt"), "second").unwrap();
    wait_for(addr, "/file?path=/assets/hello.txt", "second").await;
    // Restaging keeps the running code.
    assert_eq!(get(addr, "/version").await.body, "2");
}

#[tokio::test]
async fn metrics_are_valid_prometheus_text_and_count_requests() {
    let (_dir, opts) = app("metrics");
    let addr = common::start_server(opts);
    for _ in 0..3 {
        assert_eq!(get(addr, "/hello").await.status, 200);
    }
    let _ = get(addr, "/trap").await;
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.body;
    check_exposition(&text);
    let ok = "kefu_http_requests_total{component=\"guest\",route=\"/...\",status=\"200\"}";
    let failed = "kefu_http_requests_total{component=\"guest\",route=\"/...\",status=\"500\"}";
    assert_eq!(sample(&text, ok), 3.0, "{text}");
    assert_eq!(sample(&text, failed), 1.0, "{text}");
    // Model series exist per loaded model (this app has none; the host's tests have one).
    for family in [
        "kefu_http_request_duration_seconds",
        "kefu_requests_rejected_total",
        "kefu_component_swaps_total",
        "kefu_guardrail_actions_total",
        "kefu_guest_instances",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} missing"
        );
    }
    for _ in 0..2 {
        assert_eq!(get(addr, "/hello").await.status, 200);
    }
    let again = get(addr, "/metrics").await.body;
    assert_eq!(sample(&again, ok), 5.0);
    if let Some(promtool) = promtool() {
        let out = promtool_check(&promtool, again.as_bytes());
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        eprintln!("promtool not found (scripts/bootstrap installs it); checked the format only");
    }
}

/// `promtool` from `KEFU_PROMTOOL`, `target/tools/promtool` or `PATH`.
fn promtool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEFU_PROMTOOL") {
        return Some(PathBuf::from(p));
    }
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/promtool");
    if local.is_file() {
        return Some(local);
    }
    std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| PathBuf::from("promtool"))
}

/// Runs `promtool check metrics` on `exposition`.
fn promtool_check(promtool: &Path, exposition: &[u8]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    child.stdin.take().unwrap().write_all(exposition).unwrap();
    child.wait_with_output().unwrap()
}

/// The text format's rules the tests rely on: every sample belongs to a family announced by
/// `# HELP` and `# TYPE`, names are `kefu_`-prefixed, values are numbers.
fn check_exposition(text: &str) {
    let mut typed = std::collections::BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            typed.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name.starts_with("kefu_"), "{line}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        assert!(typed.contains_key(family), "sample before its TYPE: {line}");
    }
}

#[tokio::test]
async fn over_the_concurrency_limit_gets_429_with_retry_after() {
    let (_dir, mut opts) = app("concurrency");
    opts.max_concurrent_requests = 2;
    let addr = common::start_server(opts);
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/sleep?chunks=10&ms=100").await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get(addr, "/hello").await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.json()["error"]["code"], "too_many_requests");
    // Host endpoints are not limited.
    assert_eq!(get(addr, "/health").await.status, 200);
    for s in slow {
        assert_eq!(s.await.unwrap().status, 200);
    }
    assert_eq!(get(addr, "/hello").await.status, 200);
    let metrics = get(addr, "/metrics").await.body;
    assert_eq!(
        sample(
            &metrics,
            "kefu_requests_rejected_total{reason=\"concurrency_limit\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn shutdown_lets_a_running_stream_finish() {
    let (_dir, opts) = app("shutdown");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let server = kefu_runtime::Server::bind(opts).await.unwrap();
            addr_tx.send(server.local_addr()).unwrap();
            server
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    });
    let addr = addr_rx.recv().unwrap();
    let stream = tokio::spawn(async move { get(addr, "/sleep?chunks=8&ms=100").await });
    tokio::time::sleep(Duration::from_millis(250)).await;
    stop_tx.send(()).unwrap();
    let r = stream.await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.lines().count(), 8, "{}", r.body);
    server.join().unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn request_ids_reach_the_component_and_the_access_log_without_personal_data() {
    let (_dir, opts) = app("request-id");
    let addr = common::start_server(opts);
    let request = http::Request::get(format!("http://{addr}/headers"))
        .header("x-request-id", "req-42")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let response = common::client().request(request).await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("x-request-id: req-42"),
        "{body:?}"
    );
    let generated = get(addr, "/hello").await.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32);

    // Personal data in the path's query and the body never reaches the log.
    let phone = "13812345678";
    let id_number = "11010519491231002X";
    let r = send(
        addr,
        "POST",
        &format!("/echo?phone={phone}"),
        format!("my id is {id_number}, call {phone}"),
    )
    .await;
    assert_eq!(r.status, 200);
    let echo_id = r.headers["x-request-id"].to_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(phone) && !logs.contains(id_number));
    let line = logs
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|l| l["fields"]["request_id"] == echo_id.as_str())
        .unwrap_or_else(|| panic!("no access log line for {echo_id}"));
    let fields = &line["fields"];
    assert_eq!(fields["route"], "/...");
    assert_eq!(fields["component"], "guest");
    assert_eq!(fields["status"], 200);
    assert_eq!(fields["outcome"], "complete");
    assert!(fields["duration_ms"].as_f64().is_some());
}
