//! A loaded application: the manifest turned into compiled, pre-instantiated components with
//! their grants, plus the routing table.
//!
//! Each component sits in a [`ComponentSlot`] whose current [`LoadedComponent`] is behind an
//! `ArcSwap`: a request loads the `Arc` once and keeps it to the end, so a later hot swap can
//! replace the slot's contents while requests in flight finish on the old version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use arc_swap::ArcSwap;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::compile::{ArtifactCache, build_engine};
use crate::kv::KeyValueStores;
use crate::limits::GuestLimits;
use crate::manifest::{FilesMount, Manifest};
use crate::metrics::Metrics;
use crate::models::{ModelAccess, ModelRegistry};
use crate::router::Router;
use crate::spin::key_value::KeyValueAccess;
use crate::state::{ComponentConfig, GuestState};
use crate::variables::ApplicationVariables;

/// What [`App::load`] needs.
pub(crate) struct AppSpec<'a> {
    pub manifest: &'a Path,
    pub variables: &'a [(String, String)],
    pub state_dir: &'a Path,
    /// Retention of conversation records in the key-value stores.
    pub retention: Duration,
    pub models: Arc<ModelRegistry>,
    pub limits: GuestLimits,
    pub metrics: Arc<Metrics>,
}

/// The running application.
pub(crate) struct App {
    pub manifest: Manifest,
    pub engine: wasmtime::Engine,
    pub router: Router,
    pub components: BTreeMap<String, ComponentSlot>,
    pub models: Arc<ModelRegistry>,
    pub limits: GuestLimits,
    pub metrics: Arc<Metrics>,
    /// Bearer token of the admin API (`admin_token` variable); `None` disables it.
    pub admin_token: Option<String>,
    pub(crate) linker: Linker<GuestState>,
    pub(crate) cache: ArtifactCache,
    pub(crate) state_dir: PathBuf,
}

/// One component id; its contents may be swapped.
pub(crate) struct ComponentSlot {
    pub current: ArcSwap<LoadedComponent>,
    /// Held while a replacement is prepared, so swaps of one component happen in order.
    pub swapping: tokio::sync::Mutex<()>,
    /// 1 for the version loaded at start, +1 per swap.
    pub version: std::sync::atomic::AtomicU64,
}

/// A compiled component ready to instantiate, with its configuration.
pub(crate) struct LoadedComponent {
    pub pre: ProxyPre<GuestState>,
    pub config: Arc<ComponentConfig>,
    /// Hex SHA-256 of the `.wasm`.
    pub sha256: String,
    pub source: PathBuf,
    /// Time to compile it or load it from the artifact cache.
    pub load_time: Duration,
    pub cache_hit: bool,
    pub loaded_at: SystemTime,
}

impl App {
    /// Reads the manifest, resolves variables and grants, and compiles every component.
    pub async fn load(spec: AppSpec<'_>) -> Result<App> {
        let manifest = Manifest::load(spec.manifest)?;
        let variables =
            ApplicationVariables::resolve(&manifest, spec.variables, |k| std::env::var(k).ok())?;
        check_models(&manifest, &spec.models)?;
        let router = Router::new(
            manifest
                .http_triggers
                .iter()
                .filter_map(|t| t.route.as_deref().map(|r| (r, t.component.as_str()))),
        )
        .with_context(|| format!("invalid manifest {}", manifest.path.display()))?;

        let engine = build_engine(&spec.limits)?;
        let cache = ArtifactCache::new(&engine, spec.state_dir);
        let linker = base_linker(&engine)?;
        let stores = KeyValueStores::open_in(spec.state_dir)?;
        stores.prune_periodically(spec.retention)?;

        let mut components = BTreeMap::new();
        for (id, component) in &manifest.components {
            let source = manifest.resolve_path(&component.source.0);
            let config = ComponentConfig {
                id: id.clone(),
                variables: variables.component_variables(&manifest, id)?,
                environment: component
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                mounts: prepare_mounts(&manifest, id, spec.state_dir, 0)?,
                models: ModelAccess::new(spec.models.clone(), component.ai_models.clone()),
                key_value: KeyValueAccess {
                    stores: stores.clone(),
                    granted: component.key_value_stores.clone(),
                },
            };
            let loaded = load_component(&engine, &cache, &linker, id, &source, config)
                .await
                .with_context(|| format!("loading component `{id}` ({})", source.display()))?;
            spec.metrics.component_loaded(id);
            tracing::info!(
                component = %id,
                sha256 = %loaded.sha256,
                cache_hit = loaded.cache_hit,
                load_ms = loaded.load_time.as_secs_f64() * 1e3,
                "component ready"
            );
            components.insert(
                id.clone(),
                ComponentSlot {
                    current: ArcSwap::from_pointee(loaded),
                    swapping: tokio::sync::Mutex::new(()),
                    version: 1.into(),
                },
            );
        }
        let admin_token = variables
            .get("admin_token")
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok(App {
            manifest,
            engine,
            router,
            components,
            models: spec.models,
            limits: spec.limits,
            metrics: spec.metrics,
            admin_token,
            linker,
            cache,
            state_dir: spec.state_dir.to_path_buf(),
        })
    }
}

/// Every model a component is granted must be loaded: a missing one is a configuration error
/// better reported at startup than on the first request.
fn check_models(manifest: &Manifest, models: &ModelRegistry) -> Result<()> {
    for (id, component) in &manifest.components {
        for name in &component.ai_models {
            if models.resolve(name).is_none() {
                let loaded: Vec<_> = models.names().collect();
                bail!(
                    "invalid manifest {}: [component.{id}] ai_models: model `{name}` is not \
                     loaded (loaded: {})",
                    manifest.path.display(),
                    if loaded.is_empty() {
                        "none".to_owned()
                    } else {
                        loaded.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

/// The linker with every interface the host implements.
fn base_linker(engine: &wasmtime::Engine) -> Result<Linker<GuestState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
        .map_err(anyhow::Error::from)?;
    crate::nn::add_to_linker(&mut linker)?;
    crate::spin::add_to_linker(&mut linker)?;
    Ok(linker)
}

/// Compiles (or loads from cache) and pre-instantiates one component.
pub(crate) async fn load_component(
    engine: &wasmtime::Engine,
    cache: &ArtifactCache,
    linker: &Linker<GuestState>,
    id: &str,
    source: &Path,
    config: ComponentConfig,
) -> Result<LoadedComponent> {
    let bytes = tokio::fs::read(source)
        .await
        .with_context(|| format!("reading {}", source.display()))?;
    load_component_bytes(engine, cache, linker, id, source, bytes, config).await
}

/// Compiles (or loads from cache) and pre-instantiates a component given as bytes; `source`
/// says where it came from.
pub(crate) async fn load_component_bytes(
    engine: &wasmtime::Engine,
    cache: &ArtifactCache,
    linker: &Linker<GuestState>,
    id: &str,
    source: &Path,
    bytes: Vec<u8>,
    config: ComponentConfig,
) -> Result<LoadedComponent> {
    let compiled = {
        let (engine, cache) = (engine.clone(), cache.clone());
        tokio::task::spawn_blocking(move || cache.load(&engine, &bytes))
            .await
            .context("the compile task panicked")??
    };
    let pre = pre_instantiate(linker, id, &compiled.component)?;
    Ok(LoadedComponent {
        pre,
        config: Arc::new(config),
        sha256: compiled.sha256,
        source: source.to_path_buf(),
        load_time: compiled.elapsed,
        cache_hit: compiled.cache_hit,
        loaded_at: SystemTime::now(),
    })
}

fn pre_instantiate(
    linker: &Linker<GuestState>,
    id: &str,
    component: &Component,
) -> Result<ProxyPre<GuestState>> {
    let mut linker = linker.clone();
    if let Err(missing) = linker.instantiate_pre(component) {
        // Typically a Spin platform interface kefu does not provide (redis, postgres, ...):
        // link it as a trap so the component runs as long as it does not call it.
        tracing::info!(
            component = %id,
            import = %format!("{missing:#}"),
            "import not provided by kefu; calls to it will trap"
        );
        linker
            .define_unknown_imports_as_traps(component)
            .map_err(anyhow::Error::from)?;
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(anyhow::Error::from)?;
    ProxyPre::new(pre).map_err(|e| {
        anyhow::anyhow!(
            "{e:#}: the component must export wasi:http/incoming-handler@0.2 (for example a \
             spin-sdk 5 `#[http_component]` built for wasm32-wasip2)"
        )
    })
}

/// Turns `files` into read-only mounts. Directory placements are mounted as they are; glob
/// patterns are copied into `STATE_DIR/files/ID` (minus `exclude_files`) and mounted at `/`.
/// `generation` numbers the staging directory (`STATE_DIR/files/ID/GENERATION`): a reload
/// stages into a fresh one while requests in flight keep reading the old.
pub(crate) fn prepare_mounts(
    manifest: &Manifest,
    id: &str,
    state_dir: &Path,
    generation: u64,
) -> Result<Vec<(PathBuf, String)>> {
    let component = &manifest.components[id];
    let at = || {
        format!(
            "invalid manifest {}: [component.{id}] files",
            manifest.path.display()
        )
    };
    let mut mounts = Vec::new();
    let mut patterns = Vec::new();
    for mount in &component.files {
        match mount {
            FilesMount::Placement {
                source,
                destination,
            } => {
                let host = manifest.resolve_path(source);
                if !host.is_dir() {
                    return Err(anyhow::anyhow!(
                        "source `{source}` ({}) is not a directory",
                        host.display()
                    ))
                    .with_context(at);
                }
                let host = host.canonicalize().with_context(at)?;
                mounts.push((host, destination.clone()));
            }
            FilesMount::Pattern(pattern) => patterns.push(pattern.as_str()),
        }
    }
    if !patterns.is_empty() {
        let component_dir = state_dir.join("files").join(id);
        if generation == 0 && component_dir.exists() {
            // Left by an earlier run.
            std::fs::remove_dir_all(&component_dir)
                .with_context(|| format!("clearing {}", component_dir.display()))?;
        }
        let staging = component_dir.join(generation.to_string());
        stage_files(
            &manifest.base_dir,
            &patterns,
            &component.exclude_files,
            &staging,
        )
        .with_context(at)?;
        mounts.push((staging, "/".to_owned()));
    }
    Ok(mounts)
}

/// Copies the files matching `patterns` (relative to `base`), except `exclude`, into a fresh
/// `staging` directory, keeping their relative paths.
fn stage_files(base: &Path, patterns: &[&str], exclude: &[String], staging: &Path) -> Result<()> {
    if staging.exists() {
        std::fs::remove_dir_all(staging)
            .with_context(|| format!("clearing {}", staging.display()))?;
    }
    std::fs::create_dir_all(staging).with_context(|| format!("creating {}", staging.display()))?;
    let exclude: Vec<glob::Pattern> = exclude
        .iter()
        .map(|p| glob::Pattern::new(p).with_context(|| format!("exclude_files: `{p}`")))
        .collect::<Result<_>>()?;
    for pattern in patterns {
        let full = base.join(pattern);
        let full = full
            .to_str()
            .with_context(|| format!("pattern `{pattern}` is not UTF-8"))?;
        for entry in glob::glob(full).with_context(|| format!("bad glob pattern `{pattern}`"))? {
            let path = entry?;
            if !path.is_file() {
                continue;
            }
            let relative = path.strip_prefix(base).unwrap_or(&path);
            if relative
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!("pattern `{pattern}` reaches outside the manifest's directory");
            }
            if exclude.iter().any(|e| e.matches_path(relative)) {
                continue;
            }
            let target = staging.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&path, &target)
                .with_context(|| format!("copying {} to {}", path.display(), target.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_copies_matches_minus_exclusions() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("app");
        std::fs::create_dir_all(base.join("kb/private")).unwrap();
        std::fs::write(base.join("kb/a.jsonl"), "a").unwrap();
        std::fs::write(base.join("kb/b.txt"), "b").unwrap();
        std::fs::write(base.join("kb/private/c.jsonl"), "c").unwrap();
        let staging = dir.path().join("staging");
        stage_files(
            &base,
            &["kb/**/*.jsonl"],
            &["kb/private/*".to_string()],
            &staging,
        )
        .unwrap();
        assert!(staging.join("kb/a.jsonl").is_file());
        assert!(!staging.join("kb/b.txt").exists());
        assert!(!staging.join("kb/private/c.jsonl").exists());
    }
}
