//! A test component for kefu-runtime: each request path exercises one host behaviour
//! (traps, runaway loops, memory growth, wasi-nn, Spin variables and key-value, files,
//! outbound HTTP, long host waits). The tests mount it under several component ids with
//! different grants.

use futures::SinkExt;
use spin_sdk::http::{Fields, IncomingRequest, OutgoingResponse, ResponseOutparam};
use spin_sdk::http_component;

mod nn {
    wit_bindgen::generate!({
        path: "../../../../../wit/deps/wasi-nn",
        world: "ml",
    });
    pub use self::wasi::nn::*;
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let path_with_query = req.path_with_query().unwrap_or_default();
    let (full_path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query.as_str(), ""));
    // Dispatch on the part below the component's route, so one guest serves several routes.
    let path_info = req
        .headers()
        .get(&"spin-path-info".to_string())
        .into_iter()
        .next()
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let path = match path_info.as_deref() {
        Some(p) if !p.is_empty() => p,
        _ => full_path,
    };
    let param = |name: &str| -> Option<String> {
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == name).then(|| percent_decode(v))
        })
    };
    match path {
        "/hello" => reply(out, 200, "hello").await,
        // Which build this is: the tests build a second version to hot-swap in.
        "/version" => {
            let version = option_env!("KEFU_TEST_GUEST_VERSION").unwrap_or("1");
            reply(out, 200, version).await
        }
        "/echo" => {
            let body = req.into_body().await.unwrap_or_default();
            reply(out, 200, &format!("{} bytes", body.len())).await
        }
        "/headers" => {
            let mut lines: Vec<String> = req
                .headers()
                .entries()
                .into_iter()
                .filter(|(k, _)| k.starts_with("spin-") || k == "x-request-id")
                .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&v)))
                .collect();
            lines.sort();
            reply(out, 200, &lines.join("\n")).await
        }
        "/trap" => panic!("the test guest was asked to trap"),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/var" => {
            let name = param("name").unwrap_or_default();
            match spin_sdk::variables::get(&name) {
                Ok(value) => reply(out, 200, &value).await,
                Err(e) => reply(out, 404, &format!("{e:?}")).await,
            }
        }
        "/env" => {
            let name = param("name").unwrap_or_default();
            reply(out, 200, &std::env::var(&name).unwrap_or_default()).await
        }
        "/kv" => {
            let label = param("store").unwrap_or_else(|| "default".into());
            let result = spin_sdk::key_value::Store::open(&label).and_then(|store| {
                let n = store
                    .get("counter")?
                    .map(|v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0))
                    .unwrap_or(0)
                    + 1;
                store.set("counter", n.to_string().as_bytes())?;
                Ok(n)
            });
            match result {
                Ok(n) => reply(out, 200, &n.to_string()).await,
                Err(e) => reply(out, 403, &format!("{e:?}")).await,
            }
        }
        "/file" => {
            let path = param("path").unwrap_or_default();
            match std::fs::read_to_string(&path) {
                Ok(text) => reply(out, 200, &text).await,
                Err(e) => reply(out, 404, &e.to_string()).await,
            }
        }
        "/write" => {
            let path = param("path").unwrap_or_default();
            match std::fs::write(&path, b"x") {
                Ok(()) => reply(out, 200, "written").await,
                Err(e) => reply(out, 403, &e.to_string()).await,
            }
        }
        "/outbound" => {
            let request = spin_sdk::http::Request::get("http://127.0.0.1:9/").build();
            match spin_sdk::http::send::<_, spin_sdk::http::Response>(request).await {
                Ok(resp) => reply(out, 200, &format!("status {}", resp.status())).await,
                Err(e) => reply(out, 403, &format!("{e}")).await,
            }
        }
        "/sleep" => {
            // Streams `chunks` chunks, waiting `ms` milliseconds on a host timer before each.
            let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
            let chunks: u32 = param("chunks").and_then(|v| v.parse().ok()).unwrap_or(3);
            let (response, mut body) = start_stream(200, "text/plain");
            out.set(response);
            for i in 0..chunks {
                wasi::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                if body.send(format!("tick {i}\n").into_bytes()).await.is_err() {
                    return;
                }
            }
        }
        "/stream-then-trap" => {
            let (response, mut body) = start_stream(200, "text/plain");
            out.set(response);
            let _ = body.send(b"partial\n".to_vec()).await;
            panic!("trap after the response started");
        }
        "/nn/load" => {
            let model = param("model").unwrap_or_default();
            match nn::graph::load_by_name(&model) {
                Ok(_) => reply(out, 200, "loaded").await,
                Err(e) => reply(out, 403, &nn_error(&e)).await,
            }
        }
        "/nn/load-bytes" => {
            match nn::graph::load(
                &[vec![0u8; 4]],
                nn::graph::GraphEncoding::Ggml,
                nn::graph::ExecutionTarget::Cpu,
            ) {
                Ok(_) => reply(out, 200, "loaded").await,
                Err(e) => reply(out, 400, &nn_error(&e)).await,
            }
        }
        "/nn/generate" => generate(out, param("model"), param("prompt"), param("options")).await,
        "/llm" => {
            let model = param("model").unwrap_or_else(|| "default".into());
            let prompt = param("prompt").unwrap_or_default();
            let params = spin_sdk::llm::InferencingParams {
                max_tokens: 8,
                temperature: 0.0,
                ..Default::default()
            };
            match spin_sdk::llm::infer_with_options(
                spin_sdk::llm::InferencingModel::Other(&model),
                &prompt,
                params,
            ) {
                Ok(result) => {
                    let text = format!(
                        "{}|{}|{}",
                        result.usage.prompt_token_count,
                        result.usage.generated_token_count,
                        result.text
                    );
                    reply(out, 200, &text).await
                }
                Err(e) => reply(out, 400, &format!("{e:?}")).await,
            }
        }
        _ => reply(out, 404, "no such test route").await,
    }
}

/// Streams a generation: one line per `compute` output, `text:<chunk>` or `done:<json>`.
async fn generate(
    out: ResponseOutparam,
    model: Option<String>,
    prompt: Option<String>,
    options: Option<String>,
) {
    let model = model.unwrap_or_else(|| "default".into());
    let graph = match nn::graph::load_by_name(&model) {
        Ok(g) => g,
        Err(e) => return reply(out, 403, &nn_error(&e)).await,
    };
    let ctx = match graph.init_execution_context() {
        Ok(c) => c,
        Err(e) => return reply(out, 500, &nn_error(&e)).await,
    };
    let u8_tensor = |bytes: &[u8]| {
        nn::tensor::Tensor::new(&[bytes.len() as u32], nn::tensor::TensorType::U8, bytes)
    };
    let mut inputs = vec![(
        "prompt".to_string(),
        u8_tensor(prompt.unwrap_or_default().as_bytes()),
    )];
    if let Some(options) = options {
        inputs.push(("options".to_string(), u8_tensor(options.as_bytes())));
    }
    let first = match ctx.compute(inputs) {
        Ok(outputs) => outputs,
        Err(e) => return reply(out, 400, &nn_error(&e)).await,
    };
    let (response, mut body) = start_stream(200, "text/plain");
    out.set(response);
    let mut outputs = first;
    loop {
        let mut done = false;
        for (name, tensor) in outputs {
            // One line per output: escape newlines inside generated text.
            let data = String::from_utf8_lossy(&tensor.data()).replace('\n', "\\n");
            if name == "done" {
                done = true;
            }
            if body
                .send(format!("{name}:{data}\n").into_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
        if done {
            return;
        }
        outputs = match ctx.compute(vec![]) {
            Ok(outputs) => outputs,
            Err(e) => {
                let _ = body
                    .send(format!("error:{}\n", nn_error(&e)).into_bytes())
                    .await;
                return;
            }
        };
    }
}

fn nn_error(e: &nn::errors::Error) -> String {
    format!("{:?}: {}", e.code(), e.data())
}

fn start_stream(
    status: u16,
    content_type: &str,
) -> (
    OutgoingResponse,
    impl futures::Sink<Vec<u8>, Error = wasi::io::streams::StreamError>,
) {
    let headers = Fields::from_list(&[("content-type".to_owned(), content_type.into())]).unwrap();
    let response = OutgoingResponse::new(headers);
    response.set_status_code(status).unwrap();
    let body = response.take_body();
    (response, body)
}

async fn reply(out: ResponseOutparam, status: u16, text: &str) {
    let (response, mut body) = start_stream(status, "text/plain");
    out.set(response);
    let _ = body.send(text.as_bytes().to_vec()).await;
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
