//! `kefu bench engine`: in-process throughput and latency of the engine, batched against
//! one-at-a-time, with and without a shared system prompt. Figures only; nothing is asserted.

use std::time::Instant;

use anyhow::{Result, bail};
use kefu_engine::{
    ChatMessage, Engine, EngineConfig, Event, GenerateRequest, SamplingOptions, Tokenizer,
};

use super::prompts::{QUESTIONS, SYSTEM_PROMPT};
use super::stats::pct;
use crate::commands::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct EngineBenchArgs {
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    #[command(flatten)]
    models_dir: ModelsDir,
    /// Concurrency levels to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    concurrency: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    #[arg(long)]
    threads: Option<i32>,
    /// Token budget of one sequence.
    #[arg(long, default_value_t = 1024)]
    ctx_per_seq: u32,
}

struct Run {
    wall: f64,
    tokens: u64,
    ttft: Vec<f64>,
    cached: u64,
}

pub fn run(args: EngineBenchArgs) -> Result<()> {
    let path = crate::models::resolve(&args.model, &args.models_dir.dir)?;
    let max_n = args.concurrency.iter().copied().max().unwrap_or(1).max(1);
    let mut config = EngineConfig::new(path);
    config.ctx_per_seq = args.ctx_per_seq;
    if let Some(t) = args.threads {
        config.threads = t;
    }
    let tokenizer = Tokenizer::load(&config.model_path)?;
    println!(
        "model {}  threads {}  ctx/seq {}  max_tokens {}  system prompt {} tokens",
        config.model_path.display(),
        config.threads,
        config.ctx_per_seq,
        args.max_tokens,
        tokenizer.count(SYSTEM_PROMPT)
    );
    println!(
        "{:<9} {:>3} | {:>9} {:>9} {:>9} {:>7} | {:>9} {:>9} {:>9} | {:>7}",
        "prompts",
        "N",
        "tok/s",
        "ttft p50",
        "ttft p99",
        "cached",
        "seq tok/s",
        "ttft p50",
        "ttft p99",
        "speedup"
    );
    for shared in [true, false] {
        for &n in &args.concurrency {
            let prompts = prompts(&tokenizer, n, shared)?;
            let mut batched_cfg = config.clone();
            batched_cfg.parallel = max_n as u32;
            let batched = measure(batched_cfg, &prompts, args.max_tokens, true)?;
            let mut seq_cfg = config.clone();
            seq_cfg.parallel = 1;
            seq_cfg.prefix_cache_slots = 0;
            let sequential = measure(seq_cfg, &prompts, args.max_tokens, false)?;
            let (b, s) = (rate(&batched), rate(&sequential));
            println!(
                "{:<9} {:>3} | {:>9.1} {:>8.3}s {:>8.3}s {:>7} | {:>9.1} {:>8.3}s {:>8.3}s | {:>6.2}x",
                if shared { "shared" } else { "distinct" },
                n,
                b,
                pct(&batched.ttft, 0.5),
                pct(&batched.ttft, 0.99),
                batched.cached,
                s,
                pct(&sequential.ttft, 0.5),
                pct(&sequential.ttft, 0.99),
                b / s
            );
        }
    }
    println!(
        "tok/s: generated tokens / wall time; ttft: submission to first token; cached: prompt \
         tokens copied from a shared prefix; seq: the same prompts one at a time on a \
         1-sequence engine without prefix cache; speedup: tok/s batched / sequential"
    );
    Ok(())
}

fn prompts(tokenizer: &Tokenizer, n: usize, shared: bool) -> Result<Vec<String>> {
    (0..n)
        .map(|i| {
            let question = QUESTIONS[i % QUESTIONS.len()];
            let system = if shared {
                SYSTEM_PROMPT.to_owned()
            } else {
                // A different first line per request: nothing to share.
                format!("Ticket #{}. {SYSTEM_PROMPT}", 1000 + i)
            };
            tokenizer.apply_chat_template(
                &[
                    ChatMessage::new("system", system),
                    ChatMessage::new("user", question),
                ],
                true,
            )
        })
        .collect()
}

fn measure(
    config: EngineConfig,
    prompts: &[String],
    max_tokens: u32,
    together: bool,
) -> Result<Run> {
    let engine = Engine::start(config)?;
    let handle = engine.handle();
    let options = SamplingOptions {
        max_tokens,
        ..SamplingOptions::default()
    };
    let start = Instant::now();
    let mut usages = Vec::new();
    if together {
        let generations = prompts
            .iter()
            .map(|p| {
                handle.submit(GenerateRequest {
                    prompt: p.clone(),
                    options: options.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let readers: Vec<_> = generations
            .into_iter()
            .map(|mut g| std::thread::spawn(move || drain(&mut g)))
            .collect();
        for r in readers {
            usages.push(r.join().expect("reader thread")?);
        }
    } else {
        for p in prompts {
            let mut g = handle.submit(GenerateRequest {
                prompt: p.clone(),
                options: options.clone(),
            })?;
            usages.push(drain(&mut g)?);
        }
    }
    Ok(Run {
        wall: start.elapsed().as_secs_f64(),
        tokens: usages.iter().map(|u| u64::from(u.completion_tokens)).sum(),
        ttft: usages
            .iter()
            .filter_map(|u| u.time_to_first_token)
            .collect(),
        cached: usages
            .iter()
            .map(|u| u64::from(u.cached_prompt_tokens))
            .sum(),
    })
}

fn drain(g: &mut kefu_engine::Generation) -> Result<kefu_engine::Usage> {
    while let Some(event) = g.blocking_next() {
        match event {
            Event::Text(_) => {}
            Event::Done { usage, .. } => return Ok(usage),
            Event::Error(e) => bail!(e),
        }
    }
    bail!("generation ended without a result")
}

fn rate(run: &Run) -> f64 {
    run.tokens as f64 / run.wall
}
