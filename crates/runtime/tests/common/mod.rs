//! Helpers shared by the end-to-end tests: building the test guest, writing manifests,
//! running a server on its own thread, and a small HTTP client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kefu_runtime::{ServeOptions, Server};

/// Builds `tests/guests/test-guest` for wasm32-wasip2 once per test process (cargo makes
/// later builds no-ops) and returns the `.wasm` path. Its `/version` answers "1".
pub fn guest_wasm() -> PathBuf {
    guest_wasm_version("1")
}

/// The test guest built so that `/version` answers `version` (a distinct component to swap in).
pub fn guest_wasm_version(version: &'static str) -> PathBuf {
    static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    // Held across the build: versions share cargo's output file, copied out right after.
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(version) {
        return path.clone();
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/test-guest");
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target tmp dir has a parent")
        .join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("KEFU_TEST_GUEST_VERSION", version)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("running cargo to build the test guest");
    assert!(
        status.success(),
        "building the test guest failed (is the wasm32-wasip2 target installed? \
         `rustup target add wasm32-wasip2`)"
    );
    eprintln!(
        "test guest version {version} ready in {:.1?}",
        started.elapsed()
    );
    let out = target_dir.join("wasm32-wasip2/release/kefu_test_guest.wasm");
    let path = target_dir.join(format!("kefu_test_guest-v{version}.wasm"));
    std::fs::copy(&out, &path).expect("copying the test guest");
    built.insert(version, path.clone());
    path
}

/// A scratch directory that lives as long as the test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("runtime-tests")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts `Server::bind(opts)` on a dedicated thread with its own tokio runtime and returns
/// its address. The server runs until the process exits.
pub fn start_server(opts: ServeOptions) -> SocketAddr {
    init_logging();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            match Server::bind(opts).await {
                Ok(server) => {
                    tx.send(Ok(server.local_addr())).unwrap();
                    server.run(std::future::pending()).await.unwrap();
                }
                Err(e) => tx.send(Err(format!("{e:#}"))).unwrap(),
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(600))
        .expect("server start timed out")
        .expect("server failed to start")
}

/// Shows the runtime's logs when `RUST_LOG` is set (e.g. `RUST_LOG=kefu_runtime=debug`).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

pub async fn send(addr: SocketAddr, method: &str, path: &str, body: impl Into<Bytes>) -> Reply {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::new(body.into()))
        .unwrap();
    let response = client().request(request).await.expect("request failed");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("reading the body failed")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, Bytes::new()).await
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
