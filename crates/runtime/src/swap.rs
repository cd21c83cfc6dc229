//! Replacing a component while serving: a new `.wasm` (from its file or an upload) or freshly
//! staged `files`.
//!
//! The replacement is compiled and linked off the request path (compilation runs on a blocking
//! thread) and then stored into the component's slot in one atomic step. Requests that already
//! loaded the old version, streams included, finish on it; the next request gets the new one.
//! A version that does not compile or link is rejected with the reason, and the old one keeps
//! serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};

use crate::app::{App, ComponentSlot, LoadedComponent, load_component_bytes, prepare_mounts};
use crate::state::ComponentConfig;

/// Where a component's new version comes from.
pub(crate) enum NewVersion {
    /// Its `source` file, re-read (the file watcher).
    SourceFile,
    /// Uploaded bytes (the admin API).
    Upload(Vec<u8>),
}

/// What a swap did.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SwapReport {
    pub component: String,
    pub sha256: String,
    /// The slot's version number after the swap.
    pub version: u64,
    pub load_ms: f64,
    pub cache_hit: bool,
    /// The new bytes equal the running version: nothing was replaced.
    pub unchanged: bool,
}

impl App {
    fn slot(&self, id: &str) -> Result<&ComponentSlot> {
        self.components
            .get(id)
            .ok_or_else(|| anyhow!("no component `{id}` in the manifest"))
    }

    /// Compiles `new` and, if it loads and links, makes it the component's current version.
    pub(crate) async fn swap_component(&self, id: &str, new: NewVersion) -> Result<SwapReport> {
        let slot = self.slot(id)?;
        let _in_order = slot.swapping.lock().await;
        let current = slot.current.load_full();
        let (bytes, source) = match new {
            NewVersion::SourceFile => (
                tokio::fs::read(&current.source)
                    .await
                    .with_context(|| format!("reading {}", current.source.display()))?,
                current.source.clone(),
            ),
            NewVersion::Upload(bytes) => (bytes, PathBuf::from(format!("upload:{id}"))),
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if sha256 == current.sha256 {
            return Ok(report(id, slot, &current, true));
        }
        let config = ComponentConfig::clone(&current.config);
        let loaded = load_component_bytes(
            &self.engine,
            &self.cache,
            &self.linker,
            id,
            &source,
            bytes,
            config,
        )
        .await;
        match loaded {
            Ok(loaded) => Ok(self.install(id, slot, loaded)),
            Err(e) => {
                self.metrics.swap_failed(id);
                tracing::warn!(
                    component = %id,
                    sha256 = %sha256,
                    error = %format!("{e:#}"),
                    "rejected a new component version; the old one keeps serving"
                );
                Err(e)
            }
        }
    }

    /// Stages the component's `files` patterns again and swaps in a version that mounts them.
    pub(crate) async fn reload_files(&self, id: &str) -> Result<SwapReport> {
        let slot = self.slot(id)?;
        let _in_order = slot.swapping.lock().await;
        let current = slot.current.load_full();
        let generation = slot.version.load(Ordering::SeqCst) + 1;
        let mounts = {
            let (manifest, state_dir) = (self.manifest.clone(), self.state_dir.clone());
            let id = id.to_owned();
            tokio::task::spawn_blocking(move || {
                prepare_mounts(&manifest, &id, &state_dir, generation)
            })
            .await
            .context("the staging task panicked")??
        };
        let config = ComponentConfig {
            mounts,
            ..ComponentConfig::clone(&current.config)
        };
        let loaded = LoadedComponent {
            pre: current.pre.clone(),
            config: Arc::new(config),
            sha256: current.sha256.clone(),
            source: current.source.clone(),
            load_time: current.load_time,
            cache_hit: current.cache_hit,
            loaded_at: SystemTime::now(),
        };
        let report = self.install(id, slot, loaded);
        // Keep the staging directory just replaced for requests still reading it; older ones
        // have no readers left worth waiting for.
        if generation >= 2 {
            let stale = self
                .state_dir
                .join("files")
                .join(id)
                .join((generation - 2).to_string());
            let _ = tokio::fs::remove_dir_all(stale).await;
        }
        Ok(report)
    }

    fn install(&self, id: &str, slot: &ComponentSlot, loaded: LoadedComponent) -> SwapReport {
        let loaded = Arc::new(loaded);
        slot.current.store(loaded.clone());
        slot.version.fetch_add(1, Ordering::SeqCst);
        self.metrics.swapped(id);
        let report = report(id, slot, &loaded, false);
        tracing::info!(
            component = %id,
            sha256 = %report.sha256,
            version = report.version,
            load_ms = report.load_ms,
            "component swapped"
        );
        report
    }
}

fn report(id: &str, slot: &ComponentSlot, loaded: &LoadedComponent, unchanged: bool) -> SwapReport {
    SwapReport {
        component: id.to_owned(),
        sha256: loaded.sha256.clone(),
        version: slot.version.load(Ordering::SeqCst),
        load_ms: crate::admin::millis(loaded.load_time),
        cache_hit: loaded.cache_hit,
        unchanged,
    }
}
