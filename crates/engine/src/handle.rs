//! The caller's side of the engine: starting it, submitting requests (with admission control),
//! and reading a generation's stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use tokio::sync::mpsc as tokio_mpsc;

use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::request::{Event, GenerateRequest};
use crate::scheduler::Scheduler;
use crate::sequence::Admitted;
use crate::stats::{Stats, StatsSnapshot};
use crate::tokenizer::Tokenizer;

/// Facts about the loaded model.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub path: PathBuf,
    /// The file name without `.gguf`.
    pub name: String,
    pub n_ctx_train: u32,
    pub n_vocab: i32,
    pub n_params: u64,
    pub size_bytes: u64,
}

/// A message from callers to the engine thread.
pub(crate) enum Command {
    Generate(Admitted),
    /// Nudges an idle engine thread so it notices shutdown.
    Wake,
}

pub(crate) struct Shared {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) tokenizer: Tokenizer,
    pub(crate) config: EngineConfig,
    pub(crate) info: ModelInfo,
    pub(crate) stats: Stats,
    pub(crate) shutdown: AtomicBool,
}

/// Owns the engine thread; dropping it stops the engine (live generations end with
/// [`EngineError::Stopped`]) and joins the thread.
pub struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

impl Engine {
    /// Loads the model and starts the engine thread. Returns once the context is created, so a
    /// bad model path or an impossible configuration is reported here.
    pub fn start(config: EngineConfig) -> Result<Engine> {
        anyhow::ensure!(config.parallel >= 1, "parallel must be at least 1");
        anyhow::ensure!(config.ctx_per_seq >= 16, "ctx_per_seq must be at least 16");
        anyhow::ensure!(config.batch_size >= 1, "batch_size must be at least 1");
        anyhow::ensure!(
            config.model_path.is_file(),
            "model file {} does not exist (run `kefu models pull`)",
            config.model_path.display()
        );
        let model = LlamaModel::load_from_file(
            crate::backend(),
            &config.model_path,
            &LlamaModelParams::default(),
        )
        .with_context(|| format!("loading model {}", config.model_path.display()))?;
        let model = Arc::new(model);
        let info = ModelInfo {
            path: config.model_path.clone(),
            name: config
                .model_path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            n_ctx_train: model.n_ctx_train(),
            n_vocab: model.n_vocab(),
            n_params: model.n_params(),
            size_bytes: model.size(),
        };
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            tx,
            tokenizer: Tokenizer::from_model(model.clone()),
            config: config.clone(),
            info,
            stats: Stats::default(),
            shutdown: AtomicBool::new(false),
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kefu-engine".into())
            .spawn(move || {
                let scheduler = match Scheduler::new(&model, &thread_shared) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                scheduler.run(rx);
            })
            .context("spawning the engine thread")?;
        ready_rx
            .recv()
            .context("the engine thread died while starting")??;
        Ok(Engine {
            handle: EngineHandle { shared },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.handle.shared.shutdown.store(true, Ordering::SeqCst);
        let _ = self.handle.shared.tx.send(Command::Wake);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A cheap, cloneable way to submit work to a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    shared: Arc<Shared>,
}

impl EngineHandle {
    /// Tokenizes and checks the request on the caller's thread, then queues it. Fails at once
    /// with `Overloaded` when the queue is full, `PromptTooLong` when the prompt and
    /// `max_tokens` cannot fit one sequence's context, or `InvalidOptions`.
    pub fn submit(&self, request: GenerateRequest) -> Result<Generation, EngineError> {
        let shared = &self.shared;
        if shared.shutdown.load(Ordering::SeqCst) {
            return Err(EngineError::Stopped);
        }
        request
            .options
            .validate()
            .map_err(EngineError::InvalidOptions)?;
        if request.prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let tokens = shared.tokenizer.encode(&request.prompt);
        let prompt_tokens = tokens.len() as u32;
        let context = shared.config.ctx_per_seq;
        if u64::from(prompt_tokens) + u64::from(request.options.max_tokens) > u64::from(context) {
            return Err(EngineError::PromptTooLong {
                prompt_tokens,
                max_tokens: request.options.max_tokens,
                context,
            });
        }
        let capacity = shared.config.queue_capacity;
        if !shared.stats.try_enqueue(capacity) {
            shared
                .stats
                .rejected_overloaded
                .fetch_add(1, Ordering::Relaxed);
            return Err(EngineError::Overloaded { capacity });
        }
        let (events_tx, events_rx) = tokio_mpsc::unbounded_channel();
        let admitted = Admitted {
            tokens,
            options: request.options,
            events: events_tx,
            submitted: std::time::Instant::now(),
        };
        if shared.tx.send(Command::Generate(admitted)).is_err() {
            shared.stats.dequeue();
            return Err(EngineError::Stopped);
        }
        Ok(Generation {
            events: events_rx,
            prompt_tokens,
        })
    }

    /// The model's tokenizer (thread-safe; tokenization never touches the engine thread).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.shared.tokenizer
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    pub fn model_info(&self) -> &ModelInfo {
        &self.shared.info
    }

    /// Counters for the metrics layer.
    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }
}

/// One generation's stream. Dropping it cancels the generation: the engine notices within one
/// step and frees the sequence.
pub struct Generation {
    events: tokio_mpsc::UnboundedReceiver<Event>,
    prompt_tokens: u32,
}

impl Generation {
    /// The next event; `None` after `Done` or `Error`.
    pub async fn next(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event, blocking the current (non-async) thread.
    pub fn blocking_next(&mut self) -> Option<Event> {
        self.events.blocking_recv()
    }

    /// Tokens in the prompt as submitted.
    pub fn prompt_tokens(&self) -> u32 {
        self.prompt_tokens
    }
}
