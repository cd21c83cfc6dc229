//! `kefu eval --url URL --set FILE`: the guardrail evaluation of a running server.
//!
//! Every question of the set (see [`kefu_guard::evalset`]) is sent as a fresh one-turn chat to
//! `URL/v1/chat/completions`; the reply text and the decision the server reports in its `kefu`
//! object are judged against the item, and numbers are checked against the knowledge base the
//! server answers from. Prints fact accuracy, refuse/hand-off accuracy and the count of replies
//! with numbers absent from the KB, per split and overall, then every miss.
//!
//! This tests the served system end to end (auth, gateway component, guardrails, model) the
//! way a customer meets it; the library test `kefu-guard/tests/eval.rs` scores the same set
//! against the extractive pipeline in process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kefu_guard::Knowledge;
use kefu_guard::evalset::{self, KbNumbers, SetItem, Tally, Verdict};
use serde::Serialize;
use serde_json::{Value, json};

/// Arguments of `kefu eval --url`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServedEvalArgs {
    /// Base URL of a running kefu server (e.g. http://127.0.0.1:3000): evaluate its answers
    /// to the questions of `--set` instead of model files.
    #[arg(long, value_name = "URL", conflicts_with = "models")]
    pub url: Option<String>,
    /// Guardrail evaluation set: JSON Lines of {id, lang, question, expect, facts, split}.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "data/eval/guardrails.jsonl"
    )]
    pub set: PathBuf,
    /// The knowledge base the server answers from (to spot numbers it does not state).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "data/prepared/knowledge.jsonl"
    )]
    pub kb: PathBuf,
    /// Only the items of this split (default: all, reported per split).
    #[arg(long)]
    pub split: Option<String>,
    /// Bearer token sent as `Authorization`.
    #[arg(long, env = "KEFU_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// `model` of the requests (default: the first one `/v1/models` lists).
    #[arg(long = "served-model", value_name = "NAME")]
    pub served_model: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// One question's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ServedAnswer {
    pub id: String,
    pub split: String,
    pub lang: String,
    pub question: String,
    pub expect: &'static str,
    /// The server's decision (`kefu.action`), or `error`.
    pub action: String,
    pub reply: String,
    pub citations: Vec<String>,
    /// Tokens the model generated for this reply (`usage.completion_tokens`; 0 when the
    /// reply came from the FAQ or a template without a model call).
    pub generated_tokens: u64,
    /// The output guard rejected the model's answer and sent the FAQ answer (`kefu.replaced`).
    pub replaced: bool,
    pub verdict: Verdict,
    pub latency_ms: u64,
}

/// What `kefu eval --url` measured.
#[derive(Debug, Serialize)]
pub struct ServedReport {
    pub url: String,
    pub model: String,
    pub set: PathBuf,
    pub splits: BTreeMap<String, Tally>,
    pub overall: Tally,
    /// Requests that failed (status and message); they count as wrong.
    pub errors: usize,
    pub seconds: f64,
    pub answers: Vec<ServedAnswer>,
}

/// Asks the server every question of the set (answers of at most `max_tokens` tokens) and
/// judges the replies.
pub fn evaluate_served(
    args: &ServedEvalArgs,
    max_tokens: u32,
    quiet: bool,
) -> Result<ServedReport> {
    let url = args
        .url
        .as_deref()
        .context("--url is required")?
        .trim_end_matches('/')
        .to_string();
    let text = std::fs::read_to_string(&args.set)
        .with_context(|| format!("reading the evaluation set {}", args.set.display()))?;
    let mut items =
        evalset::parse_set(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.set.display()))?;
    if let Some(split) = &args.split {
        items.retain(|i| &i.split == split);
        anyhow::ensure!(
            !items.is_empty(),
            "{}: no item in split {split}",
            args.set.display()
        );
    }
    let kb_bytes = std::fs::read(&args.kb)
        .with_context(|| format!("reading the knowledge base {}", args.kb.display()))?;
    let kb =
        Knowledge::load(&kb_bytes).map_err(|e| anyhow::anyhow!("{}: {e}", args.kb.display()))?;
    let numbers = KbNumbers::new(&kb);

    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .context("building the HTTP client")?;
    let model = match &args.served_model {
        Some(m) => m.clone(),
        None => first_model(&client, &url, args.api_key.as_deref())?,
    };

    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(items.len() as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        )
    };
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<ServedAnswer>>> = Mutex::new(vec![None; items.len()]);
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency.clamp(1, items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let request = Request {
                        client: &client,
                        url: &url,
                        model: &model,
                        key: args.api_key.as_deref(),
                        max_tokens,
                    };
                    let answer = ask(&request, item, &numbers);
                    results.lock().expect("results lock")[i] = Some(answer);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let answers: Vec<ServedAnswer> = results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|a| a.expect("every item was asked"))
        .collect();
    let errors = answers.iter().filter(|a| a.action == "error").count();
    if errors == answers.len() {
        bail!(
            "every request to {url} failed; the first: {}",
            answers[0].reply
        );
    }
    let (splits, overall) =
        evalset::tally_by_split(items.iter().zip(answers.iter().map(|a| &a.verdict)));
    Ok(ServedReport {
        url,
        model,
        set: args.set.clone(),
        splits,
        overall,
        errors,
        seconds: start.elapsed().as_secs_f64(),
        answers,
    })
}

/// The first model `GET /v1/models` lists.
fn first_model(client: &reqwest::blocking::Client, url: &str, key: Option<&str>) -> Result<String> {
    let mut req = client.get(format!("{url}/v1/models"));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().with_context(|| format!("GET {url}/v1/models"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .with_context(|| format!("GET {url}/v1/models: the body is not JSON"))?;
    if !status.is_success() {
        bail!("GET {url}/v1/models: {status}: {}", error_message(&body));
    }
    body.pointer("/data/0/id")
        .and_then(Value::as_str)
        .map(String::from)
        .with_context(|| format!("GET {url}/v1/models lists no model"))
}

/// Where and how questions are sent.
struct Request<'a> {
    client: &'a reqwest::blocking::Client,
    url: &'a str,
    model: &'a str,
    key: Option<&'a str>,
    max_tokens: u32,
}

/// Sends one question and judges the reply; transport and HTTP errors become an `error`
/// action (wrong for every item) with the reason as the reply.
fn ask(request: &Request, item: &SetItem, numbers: &KbNumbers) -> ServedAnswer {
    let start = Instant::now();
    let r = chat(request, &item.question).unwrap_or_else(|e| Reply {
        action: "error".into(),
        text: format!("{e:#}"),
        ..Reply::default()
    });
    let verdict = evalset::judge(item, &r.action, &r.text, numbers);
    ServedAnswer {
        id: item.id.clone(),
        split: item.split.clone(),
        lang: item.lang.clone(),
        question: item.question.clone(),
        expect: item.expect.as_str(),
        action: r.action,
        reply: r.text,
        citations: r.citations,
        generated_tokens: r.generated_tokens,
        replaced: r.replaced,
        verdict,
        latency_ms: start.elapsed().as_millis() as u64,
    }
}

/// What the server answered.
#[derive(Default)]
struct Reply {
    action: String,
    text: String,
    citations: Vec<String>,
    generated_tokens: u64,
    replaced: bool,
}

/// One non-streamed chat completion.
fn chat(request: &Request, question: &str) -> Result<Reply> {
    let body = json!({
        "model": request.model,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": request.max_tokens,
    });
    let mut req = request
        .client
        .post(format!("{}/v1/chat/completions", request.url))
        .json(&body);
    if let Some(key) = request.key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().context("sending the request")?;
    let status = resp.status();
    let body: Value = resp.json().context("the response body is not JSON")?;
    if !status.is_success() {
        bail!("{status}: {}", error_message(&body));
    }
    let text = body
        .pointer("/choices/0/message/content")
        .and_then(Value::as_str)
        .context("the response has no choices[0].message.content")?
        .to_string();
    let action = body
        .pointer("/kefu/action")
        .and_then(Value::as_str)
        .context("the response has no kefu.action (is this a kefu server?)")?
        .to_string();
    let citations = body
        .pointer("/kefu/citations")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Reply {
        action,
        text,
        citations,
        generated_tokens: body
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        replaced: body
            .pointer("/kefu/replaced")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

fn error_message(body: &Value) -> String {
    body.pointer("/error/message")
        .and_then(Value::as_str)
        .map(String::from)
        .unwrap_or_else(|| body.to_string())
}

/// Per language: how many answers the model wrote and how many the output guard kept. This
/// is the measurement behind the gateway's `auto_languages`: a language whose answers are
/// nearly all replaced costs generation time for nothing.
fn model_answers(answers: &[ServedAnswer]) -> String {
    let mut by_lang: BTreeMap<&str, (usize, usize, u64)> = BTreeMap::new();
    for a in answers
        .iter()
        .filter(|a| a.generated_tokens > 0 && a.action == "answer")
    {
        let e = by_lang.entry(a.lang.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(!a.replaced);
        e.2 += a.generated_tokens;
    }
    if by_lang.is_empty() {
        return "model answers: none (every reply came from the FAQ or a template)\n".into();
    }
    let parts: Vec<String> = by_lang
        .iter()
        .map(|(lang, (n, kept, tokens))| {
            let lang = if lang.is_empty() { "?" } else { lang };
            format!("{lang} {kept}/{n} kept by the output guard ({tokens} tokens generated)")
        })
        .collect();
    format!("model answers: {}\n", parts.join(", "))
}

/// The printed summary: one line per split and overall, then every miss.
pub fn summary(report: &ServedReport) -> String {
    let mut out = format!(
        "{} ({}), {} questions in {:.1} s, {} request errors\n",
        report.url,
        report.model,
        report.answers.len(),
        report.seconds,
        report.errors
    );
    if report.splits.len() > 1 || !report.splits.contains_key("") {
        for (split, tally) in &report.splits {
            out.push_str(&format!("{split}: {}\n", tally.summary()));
        }
    }
    out.push_str(&format!("overall: {}\n", report.overall.summary()));
    out.push_str(&model_answers(&report.answers));
    let misses: Vec<&ServedAnswer> = report
        .answers
        .iter()
        .filter(|a| !a.verdict.correct || !a.verdict.invented_numbers.is_empty())
        .collect();
    if !misses.is_empty() {
        out.push_str("misses:\n");
    }
    for a in misses {
        let mut why = Vec::new();
        if a.action != a.expect {
            why.push(format!("expected {}, got {}", a.expect, a.action));
        }
        if !a.verdict.missing_facts.is_empty() {
            why.push(format!("missing {:?}", a.verdict.missing_facts));
        }
        if !a.verdict.invented_numbers.is_empty() {
            why.push(format!(
                "numbers not in the KB {:?}",
                a.verdict.invented_numbers
            ));
        }
        let reply: String = a.reply.chars().take(100).collect();
        out.push_str(&format!(
            "  {} [{}] {:?}: {} (cited {:?}) reply: {:?}\n",
            a.id,
            a.split,
            a.question,
            why.join("; "),
            a.citations,
            reply
        ));
    }
    out
}
