//! `kefu up`: serve a Spin-style application (spin.toml) with the models its components may
//! use, like `spin up`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use kefu_engine::{Engine, EngineConfig};
use kefu_runtime::{Manifest, ModelRegistry, ServeOptions, Server};

use super::ModelsDir;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The application manifest.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    manifest: PathBuf,
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Override an application variable (also `SPIN_VARIABLE_<NAME>`).
    #[arg(long = "variable", value_name = "NAME=VALUE", value_parser = parse_pair)]
    variables: Vec<(String, String)>,
    /// Compiled components and other state.
    #[arg(long, default_value = "state")]
    state_dir: PathBuf,
    /// Days to keep conversation records (completions, feedback) in the key-value store.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=36500))]
    retention_days: u64,
    /// Use this GGUF for a model name instead of the catalog's file.
    #[arg(long = "model", value_name = "NAME=PATH", value_parser = parse_pair)]
    models: Vec<(String, String)>,
    #[command(flatten)]
    models_dir: ModelsDir,
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    limits: LimitArgs,
    /// Do not swap components when their .wasm (or staged files) change on disk.
    #[arg(long)]
    no_watch: bool,
}

/// Limits of the HTTP side and of each component instance.
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// Largest request body, in bytes (more gets 413).
    #[arg(long, default_value_t = kefu_runtime::DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Component requests in flight at once (more get 429 with Retry-After).
    #[arg(long, default_value_t = kefu_runtime::DEFAULT_MAX_CONCURRENT_REQUESTS)]
    max_concurrent_requests: usize,
    /// Linear memory one component instance may use, in MiB.
    #[arg(long)]
    guest_memory_mib: Option<usize>,
    /// CPU budget of one request's component code, in fuel units (about 8e9 per second of
    /// tight guest code here); time spent waiting on the model does not count.
    #[arg(long)]
    guest_fuel: Option<u64>,
    /// Seconds open requests (streams) may take to finish after SIGTERM/SIGINT.
    #[arg(long, default_value_t = 30)]
    shutdown_grace: u64,
}

/// Engine settings shared by every model `up` loads.
#[derive(Debug, clap::Args)]
pub struct EngineArgs {
    /// Sequences decoded together per model.
    #[arg(long, default_value_t = 8)]
    parallel: u32,
    /// Prompt + answer tokens one sequence may hold.
    #[arg(long, default_value_t = 2048)]
    ctx_per_seq: u32,
    #[arg(long, default_value_t = 512)]
    batch_size: u32,
    /// CPU threads for llama.cpp (default: all cores).
    #[arg(long)]
    threads: Option<i32>,
    /// Requests that may wait for a sequence before new ones get 429.
    #[arg(long, default_value_t = 64)]
    queue: usize,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected NAME=VALUE, got `{s}`"))
}

pub fn run(args: UpArgs) -> Result<()> {
    let manifest = Manifest::load(&args.manifest)?;
    let mut registry = ModelRegistry::new();
    let mut engines = Vec::new();
    for name in manifest.requested_models() {
        let path = match args.models.iter().find(|(n, _)| *n == name) {
            Some((_, path)) => PathBuf::from(path),
            None => crate::models::resolve(&name, &args.models_dir.dir).with_context(|| {
                format!("model `{name}` granted in {}", args.manifest.display())
            })?,
        };
        let mut config = EngineConfig::new(&path);
        config.parallel = args.engine.parallel;
        config.ctx_per_seq = args.engine.ctx_per_seq;
        config.batch_size = args.engine.batch_size;
        config.queue_capacity = args.engine.queue;
        if let Some(t) = args.engine.threads {
            config.threads = t;
        }
        tracing::info!(model = %name, path = %path.display(), "loading model");
        let engine = Engine::start(config).with_context(|| format!("starting model `{name}`"))?;
        registry.insert(name.clone(), engine.handle());
        if registry.default_name().is_none() {
            registry.set_default(&name)?;
        }
        engines.push(engine);
    }
    let mut opts = ServeOptions::new(&args.manifest, registry);
    opts.listen = args.listen;
    opts.variables = args.variables;
    opts.state_dir = args.state_dir;
    opts.retention = std::time::Duration::from_secs(args.retention_days * 86_400);
    opts.body_limit = args.limits.body_limit;
    opts.max_concurrent_requests = args.limits.max_concurrent_requests;
    opts.shutdown_grace = std::time::Duration::from_secs(args.limits.shutdown_grace);
    if let Some(mib) = args.limits.guest_memory_mib {
        opts.limits.memory_bytes = mib << 20;
    }
    if let Some(fuel) = args.limits.guest_fuel {
        opts.limits.fuel = fuel;
    }
    opts.watch = !args.no_watch;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(opts).await?;
        println!("kefu listening on http://{}", server.local_addr());
        server.run(shutdown_signal()).await
    })?;
    drop(engines);
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
