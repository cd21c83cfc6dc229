//! `kefu generate`: one answer from a model, through the engine, streamed to stdout.

use std::io::Write;

use anyhow::{Result, bail};
use kefu_engine::{ChatMessage, Engine, EngineConfig, Event, GenerateRequest, SamplingOptions};

use super::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// A GGUF path or a catalog model name.
    #[arg(long, default_value = "smollm2-135m-instruct")]
    model: String,
    #[command(flatten)]
    models_dir: ModelsDir,
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long)]
    seed: Option<u32>,
    /// An optional system message.
    #[arg(long)]
    system: Option<String>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// The user's message.
    prompt: String,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    let path = crate::models::resolve(&args.model, &args.models_dir.dir)?;
    let mut config = EngineConfig::new(path);
    config.parallel = 1;
    config.prefix_cache_slots = 0;
    config.ctx_per_seq = 4096;
    if let Some(t) = args.threads {
        config.threads = t;
    }
    let engine = Engine::start(config)?;
    let handle = engine.handle();
    let mut messages = Vec::new();
    if let Some(system) = args.system {
        messages.push(ChatMessage::new("system", system));
    }
    messages.push(ChatMessage::new("user", args.prompt));
    let prompt = handle.tokenizer().apply_chat_template(&messages, true)?;
    let options = SamplingOptions {
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        seed: args.seed,
        ..SamplingOptions::default()
    };
    let mut generation = handle.submit(GenerateRequest { prompt, options })?;
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = generation.blocking_next() {
        match event {
            Event::Text(text) => {
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            Event::Done { usage, .. } => {
                writeln!(stdout)?;
                tracing::info!(
                    prompt_tokens = usage.prompt_tokens,
                    completion_tokens = usage.completion_tokens,
                    seconds = format!("{:.2}", usage.total_time),
                    "done"
                );
                return Ok(());
            }
            Event::Error(e) => bail!(e),
        }
    }
    bail!("the engine stopped before the answer was complete")
}
