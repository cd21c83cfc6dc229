//! The wasmtime engine and the on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes about half a second per few hundred KB in an
//! optimised host, much longer in a debug one; deserialising a precompiled artifact takes well
//! under a millisecond. Artifacts are stored under
//! `STATE_DIR/wasm-cache/<engine compatibility hash>/<component sha256>.cwasm`, so a restart
//! with the same wasmtime build and settings and the same component bytes skips compilation,
//! and anything else (a new wasmtime, other engine settings, a rebuilt component) misses and
//! recompiles. Files are written to a temporary name and renamed, so a crash never leaves a
//! truncated artifact under the final name.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy};

use crate::limits::GuestLimits;

/// Builds the engine every component of the application runs on.
///
/// Falls back to on-demand allocation (with a warning) when the pooling allocator cannot
/// reserve its address space, e.g. under a tight `ulimit -v`.
pub fn build_engine(limits: &GuestLimits) -> Result<Engine> {
    let configure = |pooling: bool| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.consume_fuel(true);
        if pooling {
            config
                .allocation_strategy(InstanceAllocationStrategy::Pooling(limits.pooling_config()));
        }
        config
    };
    match Engine::new(&configure(true)) {
        Ok(engine) => Ok(engine),
        Err(pool_error) => {
            tracing::warn!(
                error = %pool_error,
                "pooling allocator unavailable; falling back to on-demand instance allocation"
            );
            Engine::new(&configure(false)).map_err(|e| anyhow::anyhow!("{e:#}"))
        }
    }
}

/// A compiled component and how it was obtained.
pub struct CompiledComponent {
    pub component: Component,
    /// Hex SHA-256 of the `.wasm` bytes.
    pub sha256: String,
    /// True when the artifact came from the cache.
    pub cache_hit: bool,
    /// Time to read, hash and compile or deserialise.
    pub elapsed: Duration,
}

/// The artifact cache directory for one engine configuration.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// The cache for `engine` under `state_dir`.
    pub fn new(engine: &Engine, state_dir: &Path) -> ArtifactCache {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hex::encode(hasher.0.finalize());
        ArtifactCache {
            dir: state_dir.join("wasm-cache").join(&digest[..16]),
        }
    }

    fn artifact_path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// Loads a component from its bytes, compiling it only if its artifact is not cached.
    /// Blocking: call it from a blocking thread.
    pub fn load(&self, engine: &Engine, bytes: &[u8]) -> Result<CompiledComponent> {
        let started = Instant::now();
        let sha256 = hex::encode(Sha256::digest(bytes));
        let artifact = self.artifact_path(&sha256);
        if artifact.is_file() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash (it is in the directory name) and is only ever replaced by
            // an atomic rename; the state directory is trusted like the binary itself.
            match unsafe { Component::deserialize_file(engine, &artifact) } {
                Ok(component) => {
                    return Ok(CompiledComponent {
                        component,
                        sha256,
                        cache_hit: true,
                        elapsed: started.elapsed(),
                    });
                }
                Err(e) => tracing::warn!(
                    artifact = %artifact.display(),
                    error = %e,
                    "ignoring unusable cached artifact; recompiling"
                ),
            }
        }
        let serialized = engine
            .precompile_component(bytes)
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("compiling")?;
        if let Err(e) = self.store(&artifact, &serialized) {
            tracing::warn!(error = %format!("{e:#}"), "could not cache the compiled component");
        }
        // SAFETY: `serialized` was produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &serialized) }
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .context("loading the compiled artifact")?;
        Ok(CompiledComponent {
            component,
            sha256,
            cache_hit: false,
            elapsed: started.elapsed(),
        })
    }

    fn store(&self, artifact: &Path, serialized: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))?;
        let tmp = artifact.with_extension(format!("tmp.{}", std::process::id()));
        std::fs::write(&tmp, serialized).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, artifact)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        Ok(())
    }
}

/// Feeds `Hash` output into SHA-256, so the cache key is stable across processes (unlike
/// `DefaultHasher`, whose algorithm may change between Rust releases).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
