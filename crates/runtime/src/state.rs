//! The data of one request's [`wasmtime::Store`]: WASI contexts, the resource table, limits,
//! and the per-component grants the host interfaces check.
//!
//! A store lives for exactly one request, so nothing a guest does (open files, kv handles,
//! running generations) outlives the request: dropping the store drops it all, which is also
//! how an aborted request cancels its generation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::limits::{GuestLimits, MemoryLimiter};
use crate::metrics::Metrics;
use crate::models::ModelAccess;
use crate::record::RequestRecord;
use crate::spin::key_value::KeyValueAccess;

/// Everything the host knows about one component that requests need: its grants and
/// resolved configuration. Built once at load, shared by all its requests.
#[derive(Clone)]
pub(crate) struct ComponentConfig {
    pub id: String,
    /// Component variables with templates expanded.
    pub variables: BTreeMap<String, String>,
    pub environment: Vec<(String, String)>,
    /// Read-only directory mounts: host directory, guest path.
    pub mounts: Vec<(PathBuf, String)>,
    pub models: ModelAccess,
    pub key_value: KeyValueAccess,
}

/// The `T` of every guest's `Store<T>`.
pub(crate) struct GuestState {
    pub table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: DenyOutbound,
    pub limiter: MemoryLimiter,
    pub config: Arc<ComponentConfig>,
    metrics: Arc<Metrics>,
    record: Arc<RequestRecord>,
}

impl GuestState {
    pub fn new(
        config: Arc<ComponentConfig>,
        limits: &GuestLimits,
        metrics: Arc<Metrics>,
        record: Arc<RequestRecord>,
    ) -> Result<GuestState> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout()
            .inherit_stderr()
            .envs(&config.environment)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for (host, guest) in &config.mounts {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("{e:#}"))
                .with_context(|| {
                    format!(
                        "component `{}`: mounting {} at {guest}",
                        config.id,
                        host.display()
                    )
                })?;
        }
        Ok(GuestState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: DenyOutbound,
            limiter: limits.limiter(),
            config,
            metrics,
            record,
        })
    }

    /// Records a finished generation of `model` in the metrics and the request's record.
    pub fn generation_done(&self, model: &str, usage: &kefu_engine::Usage) {
        self.metrics.observe_generation(model, usage);
        self.record.generation_done(usage);
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Guests get no outbound network: every `wasi:http/outgoing-handler` request is denied.
struct DenyOutbound;

impl WasiHttpHooks for DenyOutbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        tracing::debug!(uri = %request.uri(), "denied outbound HTTP request from a component");
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
