//! kefu's WebAssembly host runtime.
//!
//! Serves a Spin-style application (`spin.toml`, manifest v2) whose components export
//! `wasi:http/incoming-handler@0.2`, on wasmtime, with kefu's inference engine behind
//! `wasi:nn` (streaming) and `fermyon:spin/llm`. Each request runs in a fresh, pooled instance
//! with memory and CPU limits; a guest that traps or runs away costs its own request a 500 and
//! nothing else.
//!
//! Modules, one concern each: [`manifest`] (parse and check `spin.toml`), [`variables`]
//! (application and component variables), [`router`] (routes), [`models`] (model registry and
//! grants), [`limits`] (memory, CPU, time), `compile` (engine and artifact cache), `state`
//! (per-request store data), `nn` (wasi-nn over the engine), `spin` (Spin interfaces), `app`
//! (a loaded application), `guest` (one request through a component), `endpoints` (health,
//! readiness, metrics), `server` (HTTP).
//!
//! Not here: loading models (the host binary builds the [`ModelRegistry`]), the chat API and
//! prompt policy (the gateway component), CLI parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;

mod app;
mod compile;
mod endpoints;
mod guest;
pub mod limits;
pub mod manifest;
pub mod models;
mod nn;
mod response;
pub mod router;
mod server;
mod spin;
mod state;
pub mod variables;

pub use limits::GuestLimits;
pub use manifest::Manifest;
pub use models::{DEFAULT_MODEL_ALIAS, ModelRegistry};

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Everything [`serve`] needs.
#[derive(Clone)]
pub struct ServeOptions {
    /// The application manifest (`spin.toml`).
    pub manifest: PathBuf,
    pub listen: SocketAddr,
    /// `--variable name=value` overrides of application variables.
    pub variables: Vec<(String, String)>,
    /// Where compiled components and staged files are kept.
    pub state_dir: PathBuf,
    /// The loaded models; every model a component's `ai_models` names must be here.
    pub models: ModelRegistry,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    pub limits: GuestLimits,
    /// How long open connections may take to finish after shutdown is requested.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Options with defaults: listen on 127.0.0.1:3000, state in `./state`, 1 MiB bodies.
    pub fn new(manifest: impl Into<PathBuf>, models: ModelRegistry) -> Self {
        Self {
            manifest: manifest.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            variables: Vec::new(),
            state_dir: PathBuf::from("state"),
            models,
            body_limit: DEFAULT_BODY_LIMIT,
            limits: GuestLimits::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A bound, loaded server that has not started serving yet.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown_grace: Duration,
}

impl Server {
    /// Binds the listen address, then loads the application: reads the manifest, resolves
    /// variables, checks model grants and compiles (or loads from cache) every component.
    /// Connections that arrive meanwhile wait in the listen backlog.
    pub async fn bind(opts: ServeOptions) -> Result<Server> {
        let listener = server::bind(opts.listen).await?;
        let local_addr = listener.local_addr()?;
        let app = app::App::load(app::AppSpec {
            manifest: &opts.manifest,
            variables: &opts.variables,
            state_dir: &opts.state_dir,
            models: Arc::new(opts.models),
            limits: opts.limits,
        })
        .await?;
        tracing::info!(
            address = %local_addr,
            application = %app.manifest.application.name,
            components = app.components.len(),
            "serving"
        );
        Ok(Server {
            listener,
            local_addr,
            shared: Arc::new(server::Shared {
                app: Arc::new(app),
                counters: Default::default(),
                body_limit: opts.body_limit,
            }),
            shutdown_grace: opts.shutdown_grace,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then drains open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        server::serve(self.listener, self.shared, shutdown, self.shutdown_grace).await
    }
}

/// Binds, loads and serves until `shutdown` resolves.
pub async fn serve(
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    Server::bind(opts).await?.run(shutdown).await
}

/// The model names the manifest's components ask for in `ai_models`, so the host can load
/// exactly those engines. `default` appears as written; it stands for the host's default model.
pub fn requested_models(manifest: &std::path::Path) -> Result<std::collections::BTreeSet<String>> {
    Ok(Manifest::load(manifest)?.requested_models())
}
