//! A running `kefu up` (the real binary, the real gateway component, the real default model) on
//! a free port, stopped when dropped; and a small blocking HTTP client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEMO_KEY: &str = "kefu-demo-key";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Kefu {
    child: Child,
    pub addr: SocketAddr,
    _state: tempfile::TempDir,
}

impl Kefu {
    /// Starts `kefu up` on the repository's spin.toml with extra arguments and waits until
    /// `/ready` answers 200. Sequences get 1024 tokens unless `extra` says otherwise.
    pub fn start(extra: &[&str]) -> Kefu {
        Kefu::start_logging(extra, None)
    }

    /// Like [`Kefu::start`], with JSON logs written to `log` instead of the test's stderr.
    pub fn start_logged(extra: &[&str], log: &Path) -> Kefu {
        Kefu::start_logging(extra, Some(log))
    }

    fn start_logging(extra: &[&str], log: Option<&Path>) -> Kefu {
        let root = repo();
        let gateway = root.join("components/dist/gateway.wasm");
        assert!(
            gateway.is_file(),
            "{} is missing: run scripts/build-components",
            gateway.display()
        );
        let state = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let stderr = match log {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .current_dir(&root)
            .args(["--log-format", "json"])
            .args([
                "up",
                "--manifest",
                "spin.toml",
                "--listen",
                &addr.to_string(),
            ])
            .arg("--state-dir")
            .arg(state.path())
            .args(["--parallel", "8", "--threads", "2"])
            .args(if extra.contains(&"--ctx-per-seq") {
                &[][..]
            } else {
                &["--ctx-per-seq", "1024"][..]
            })
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawning kefu up");
        let mut kefu = Kefu {
            child,
            addr,
            _state: state,
        };
        kefu.wait_ready(Duration::from_secs(120));
        kefu
    }

    /// The `--state-dir` this server runs with (a temporary directory).
    pub fn state_dir(&self) -> &Path {
        self._state.path()
    }

    fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("kefu up exited early: {status}");
            }
            if let Ok(r) = self.try_request("GET", "/ready", &[], b"")
                && r.status == 200
            {
                return;
            }
            assert!(start.elapsed() < limit, "kefu up not ready after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Reply {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Reply> {
        let mut stream = self.send(method, path, headers, body)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw)?;
        Ok(Reply::parse(&raw))
    }

    /// Sends a request and returns the open connection (for streaming reads).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        // A server may answer (413) and close before reading a large body; the answer is still
        // there to read.
        if let Err(e) = stream.write_all(body)
            && e.kind() != std::io::ErrorKind::BrokenPipe
            && e.kind() != std::io::ErrorKind::ConnectionReset
        {
            return Err(e);
        }
        Ok(stream)
    }

    /// POST /v1/chat/completions with the demo key.
    pub fn chat(&self, body: &serde_json::Value) -> Reply {
        self.request(
            "POST",
            "/v1/chat/completions",
            &[
                ("Authorization", &format!("Bearer {DEMO_KEY}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// POST /v1/chat/completions with the demo key, returning the open connection so a
    /// streamed answer can be read as it arrives.
    pub fn chat_stream(&self, body: &serde_json::Value) -> TcpStream {
        self.send(
            "POST",
            "/v1/chat/completions",
            &[
                ("Authorization", &format!("Bearer {DEMO_KEY}")),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .expect("sending the chat request")
    }

    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.request("GET", "/metrics", &[], b"").text();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

impl Kefu {
    /// Sends SIGTERM (as a container runtime does on stop).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "kefu up still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Kefu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn parse(raw: &[u8]) -> Reply {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete HTTP head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `data:` payloads of a Server-Sent Events body.
    pub fn sse(&self) -> Vec<String> {
        self.text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(str::to_owned)
            .collect()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut reader = BufReader::new(&mut body);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let Ok(size) = usize::from_str_radix(line.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let mut chunk = vec![0; size];
        if reader.read_exact(&mut chunk).is_err() {
            break;
        }
        out.extend_from_slice(&chunk);
        let mut crlf = [0; 2];
        let _ = reader.read_exact(&mut crlf);
    }
    out
}

pub fn venv_python(root: &Path) -> Option<PathBuf> {
    let p = root.join(".venv/bin/python");
    p.is_file().then_some(p)
}
