//! Model files: the catalog of known models, fetching them, and resolving what the user named
//! (a catalog name or a path) to a GGUF file.

pub mod catalog;
pub mod pull;

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

pub use catalog::Catalog;

/// Resolves `spec` (a path to a file, or a catalog name) to a GGUF path that exists.
pub fn resolve(spec: &str, models_dir: &Path) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    let catalog = Catalog::builtin();
    if let Ok(model) = catalog.get(spec) {
        let path = model.path_in(models_dir);
        if path.is_file() {
            return Ok(path);
        }
        bail!(
            "model `{spec}` is not downloaded yet: run `kefu models pull {spec}` (looked for {})",
            path.display()
        );
    }
    bail!("no model file at {spec}, and `{spec}` is not a catalog name (see `kefu models list`)")
}
