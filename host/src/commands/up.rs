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
    /// Use this GGUF for a model name instead of the catalog's file.
    #[arg(long = "model", value_name = "NAME=PATH", value_parser = parse_pair)]
    models: Vec<(String, String)>,
    #[command(flatten)]
    models_dir: ModelsDir,
    #[command(flatten)]
    engine: EngineArgs,
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
