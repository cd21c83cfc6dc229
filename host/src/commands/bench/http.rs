//! `kefu bench --url URL`: a streaming load generator for any OpenAI-compatible server, so kefu
//! and llama.cpp's `llama-server` are measured with the same tool. `concurrency` workers send
//! `requests` streamed chat completions in total and record time to first token, inter-chunk
//! gaps, end-to-end latency and token counts (from `usage` when the server reports it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::prompts::{DEMO_QUESTIONS, SYSTEM_PROMPT};
use super::stats::pct;

#[derive(Debug, clap::Args)]
pub struct HttpBenchArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:3000 (requests go to /v1/chat/completions).
    #[arg(long, required = true)]
    url: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Requests measured in total.
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Requests sent (at the same concurrency) before measuring, to warm caches.
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    /// Bearer token sent as `Authorization`.
    #[arg(long, env = "KEFU_API_KEY")]
    api_key: Option<String>,
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Send a ~300-token support system prompt with every request (for servers that do not
    /// add their own, such as llama-server).
    #[arg(long)]
    system_prompt: bool,
    /// Questions to send in turn: one per line, or JSONL records with an `instruction` or
    /// `question` field. Default: eight customer questions about the demo FAQ.
    #[arg(long)]
    prompts: Option<PathBuf>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// What one request measured.
#[derive(Debug)]
struct Sample {
    /// `Err` holds a short reason (status and message, or transport error).
    outcome: Result<(), String>,
    ttft: Option<f64>,
    latency: f64,
    /// Gaps between consecutive content chunks, seconds.
    gaps: Vec<f64>,
    chunks: u64,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

pub async fn run(args: HttpBenchArgs) -> Result<()> {
    let base = args.url.clone().context("--url is required")?;
    let endpoint = format!("{}/v1/chat/completions", base.trim_end_matches('/'));
    if args.concurrency == 0 || args.requests == 0 {
        bail!("--concurrency and --requests must be at least 1");
    }
    let questions = load_questions(args.prompts.as_deref())?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        // A fresh connection per request: servers close idle keep-alive connections on their
        // own schedule (llama-server does), and a POST on a connection closing under it
        // would count as a failed request.
        .pool_max_idle_per_host(0)
        .build()
        .context("building the HTTP client")?;
    let bench = Arc::new(Bench {
        client,
        endpoint,
        args,
        questions,
    });
    println!(
        "target {}  model {}  concurrency {}  requests {}  max_tokens {}  system prompt {}",
        bench.endpoint,
        bench.args.model,
        bench.args.concurrency,
        bench.args.requests,
        bench.args.max_tokens,
        if bench.args.system_prompt {
            "yes"
        } else {
            "no"
        }
    );
    if bench.args.warmup > 0 {
        let warm = bench.clone().round(bench.args.warmup).await;
        let failed = warm.0.iter().filter(|s| s.outcome.is_err()).count();
        println!("warmup {} requests ({failed} failed)", warm.0.len());
    }
    let (samples, wall) = bench.clone().round(bench.args.requests).await;
    report(&samples, wall);
    Ok(())
}

struct Bench {
    client: reqwest::Client,
    endpoint: String,
    args: HttpBenchArgs,
    questions: Vec<String>,
}

impl Bench {
    /// Sends `n` requests with `concurrency` workers; returns the samples and the wall time.
    async fn round(self: Arc<Self>, n: usize) -> (Vec<Sample>, f64) {
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let workers: Vec<_> = (0..self.args.concurrency.min(n))
            .map(|_| {
                let (bench, next) = (self.clone(), next.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            break samples;
                        }
                        samples.push(bench.one(i).await);
                    }
                })
            })
            .collect();
        let mut samples = Vec::with_capacity(n);
        for w in workers {
            samples.extend(w.await.expect("a bench worker panicked"));
        }
        (samples, start.elapsed().as_secs_f64())
    }

    async fn one(&self, i: usize) -> Sample {
        let question = &self.questions[i % self.questions.len()];
        let mut messages = Vec::new();
        if self.args.system_prompt {
            messages.push(json!({"role": "system", "content": SYSTEM_PROMPT}));
        }
        messages.push(json!({"role": "user", "content": question}));
        let body = json!({
            "model": self.args.model,
            "messages": messages,
            "max_tokens": self.args.max_tokens,
            "temperature": self.args.temperature,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        let mut request = self.client.post(&self.endpoint).json(&body);
        if let Some(key) = &self.args.api_key {
            request = request.bearer_auth(key);
        }
        let start = Instant::now();
        let mut sample = Sample {
            outcome: Ok(()),
            ttft: None,
            latency: 0.0,
            gaps: Vec::new(),
            chunks: 0,
            prompt_tokens: None,
            completion_tokens: None,
        };
        sample.outcome = stream(request, start, &mut sample).await;
        sample.latency = start.elapsed().as_secs_f64();
        sample
    }
}

/// Sends the request and reads its SSE stream into `sample`.
async fn stream(
    request: reqwest::RequestBuilder,
    start: Instant,
    sample: &mut Sample,
) -> Result<(), String> {
    let response = request.send().await.map_err(|e| transport(&e))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(format!("{} {}", status.as_u16(), error_message(&text)));
    }
    let mut body = response.bytes_stream();
    let mut buffer: Vec<u8> = Vec::new();
    let mut last_chunk: Option<Instant> = None;
    while let Some(piece) = body.next().await {
        buffer.extend_from_slice(&piece.map_err(|e| transport(&e))?);
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let Some(data) = line.trim_end().strip_prefix("data:") else {
                continue;
            };
            let data = data.trim_start();
            if data == "[DONE]" {
                return Ok(());
            }
            let event: Value = serde_json::from_str(data)
                .map_err(|e| format!("unparsable stream event ({e}): {data:.80}"))?;
            if let Some(error) = event.get("error") {
                return Err(format!(
                    "stream error: {}",
                    error_message(&error.to_string())
                ));
            }
            if let Some(usage) = event.get("usage").filter(|u| u.is_object()) {
                sample.prompt_tokens = usage["prompt_tokens"].as_u64();
                sample.completion_tokens = usage["completion_tokens"].as_u64();
            }
            let content = event["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default();
            if !content.is_empty() {
                let now = Instant::now();
                match last_chunk {
                    None => sample.ttft = Some((now - start).as_secs_f64()),
                    Some(prev) => sample.gaps.push((now - prev).as_secs_f64()),
                }
                last_chunk = Some(now);
                sample.chunks += 1;
            }
        }
    }
    Err("stream ended without [DONE]".to_owned())
}

fn transport(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// The `error.message` of an OpenAI-style error body, or the body itself, shortened.
fn error_message(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.trim().to_owned());
    message.chars().take(120).collect()
}

fn load_questions(path: Option<&std::path::Path>) -> Result<Vec<String>> {
    let Some(path) = path else {
        return Ok(DEMO_QUESTIONS.iter().map(|q| (*q).to_owned()).collect());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut questions = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('{') {
            let record: Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: invalid JSON", path.display(), n + 1))?;
            let q = record
                .get("instruction")
                .or_else(|| record.get("question"))
                .and_then(Value::as_str)
                .with_context(|| {
                    format!(
                        "{}:{}: no `instruction` or `question` string",
                        path.display(),
                        n + 1
                    )
                })?;
            questions.push(q.to_owned());
        } else {
            questions.push(line.to_owned());
        }
    }
    if questions.is_empty() {
        bail!("{} holds no questions", path.display());
    }
    Ok(questions)
}

fn report(samples: &[Sample], wall: f64) {
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.outcome.is_ok()).collect();
    let failed = samples.len() - ok.len();
    println!(
        "requests  {} ok, {failed} failed in {wall:.2} s  ({:.2} req/s)",
        ok.len(),
        ok.len() as f64 / wall
    );
    let from_usage = ok.iter().all(|s| s.completion_tokens.is_some());
    let completion: u64 = ok
        .iter()
        .map(|s| s.completion_tokens.unwrap_or(s.chunks))
        .sum();
    let prompt: Vec<f64> = ok
        .iter()
        .filter_map(|s| s.prompt_tokens.map(|p| p as f64))
        .collect();
    println!(
        "tokens    {completion} generated ({}), {:.1} tok/s aggregate; prompt mean {}",
        if from_usage {
            "from usage"
        } else {
            "counted as content chunks"
        },
        completion as f64 / wall,
        if prompt.is_empty() {
            "n/a".to_owned()
        } else {
            format!("{:.0}", prompt.iter().sum::<f64>() / prompt.len() as f64)
        }
    );
    let ttft: Vec<f64> = ok.iter().filter_map(|s| s.ttft).collect();
    let latency: Vec<f64> = ok.iter().map(|s| s.latency).collect();
    let gaps: Vec<f64> = ok.iter().flat_map(|s| s.gaps.iter().copied()).collect();
    let line = |name: &str, v: &[f64], scale: f64, unit: &str| {
        println!(
            "{name:<9} p50 {:.3}{unit}  p90 {:.3}{unit}  p99 {:.3}{unit}  max {:.3}{unit}",
            pct(v, 0.5) * scale,
            pct(v, 0.9) * scale,
            pct(v, 0.99) * scale,
            pct(v, 1.0) * scale
        );
    };
    line("ttft", &ttft, 1.0, " s");
    line("latency", &latency, 1.0, " s");
    line("chunk gap", &gaps, 1000.0, " ms");
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for s in samples {
        if let Err(e) = &s.outcome {
            *errors.entry(e.as_str()).or_default() += 1;
        }
    }
    for (error, n) in errors {
        println!("error     {n} x {error}");
    }
}
