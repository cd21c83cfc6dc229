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
//! (a loaded application), [`kv`] (persistent key-value stores, SQLite), `swap` (replacing a
//! component while serving), `watch` (file changes trigger swaps), `guest` (one request
//! through a component), `endpoints` (health, readiness, metrics), `admin` (component listing
//! and upload), `metrics` (Prometheus), `access` (request ids and the access log), `record`
//! (one request's generation totals), `server` (HTTP).
//!
//! Not here: loading models (the host binary builds the [`ModelRegistry`]), the chat API and
//! prompt policy (the gateway component), CLI parsing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::net::TcpListener;

mod access;
mod admin;
mod app;
mod compile;
mod endpoints;
mod guest;
pub mod kv;
pub mod limits;
pub mod manifest;
mod metrics;
pub mod models;
mod nn;
mod record;
mod response;
pub mod router;
mod server;
mod spin;
mod state;
mod swap;
pub mod variables;
mod watch;

pub use limits::GuestLimits;
pub use manifest::Manifest;
pub use models::{DEFAULT_MODEL_ALIAS, ModelRegistry};

/// Default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// Default limit of component requests in flight.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;

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
    /// Conversation records in the key-value stores older than this are deleted ([`kv`]).
    pub retention: Duration,
    /// Component requests in flight at once; more get 429.
    pub max_concurrent_requests: usize,
    /// Swap components (and restage their `files`) when their files change.
    pub watch: bool,
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
            retention: kv::DEFAULT_RETENTION,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            watch: false,
        }
    }
}

/// A bound, loaded server that has not started serving yet.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown_grace: Duration,
    watch: bool,
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
            retention: opts.retention,
            models: Arc::new(opts.models),
            limits: opts.limits,
            metrics: Arc::new(metrics::Metrics::new()),
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
                body_limit: opts.body_limit,
                in_flight: Arc::new(tokio::sync::Semaphore::new(
                    opts.max_concurrent_requests.max(1),
                )),
            }),
            shutdown_grace: opts.shutdown_grace,
            watch: opts.watch,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves, then drains open connections.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let _watching = if self.watch {
            Some(watch::spawn(self.shared.app.clone())?)
        } else {
            None
        };
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
