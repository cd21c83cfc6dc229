//! Which models exist and which component may use which.
//!
//! The host loads the engines (one [`EngineHandle`] per model file) and hands them over as a
//! [`ModelRegistry`]. Each component sees the registry through a [`ModelAccess`] built from its
//! manifest grants (`ai_models`); both wasi-nn and `fermyon:spin/llm` resolve names through it,
//! so a grant means the same thing on either interface.

use std::collections::BTreeMap;
use std::sync::Arc;

use kefu_engine::EngineHandle;

/// The name every component may use for the application's default model.
pub const DEFAULT_MODEL_ALIAS: &str = "default";

/// Loaded models by name, plus which of them is the default.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    models: BTreeMap<String, EngineHandle>,
    default: Option<String>,
}

impl ModelRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handle` under `name`. The first model registered becomes the default unless
    /// [`ModelRegistry::set_default`] says otherwise.
    pub fn insert(&mut self, name: impl Into<String>, handle: EngineHandle) -> &mut Self {
        let name = name.into();
        if self.default.is_none() {
            self.default = Some(name.clone());
        }
        self.models.insert(name, handle);
        self
    }

    /// Chooses the model that `default` stands for. Fails if no model has that name.
    pub fn set_default(&mut self, name: &str) -> anyhow::Result<&mut Self> {
        anyhow::ensure!(
            self.models.contains_key(name),
            "default model `{name}` is not registered (registered: {})",
            self.names().collect::<Vec<_>>().join(", ")
        );
        self.default = Some(name.to_owned());
        Ok(self)
    }

    /// The name `default` resolves to.
    pub fn default_name(&self) -> Option<&str> {
        self.default.as_deref()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.models.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &EngineHandle)> {
        self.models.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Resolves a name or the `default` alias to the canonical name and its engine.
    pub fn resolve(&self, name: &str) -> Option<(&str, &EngineHandle)> {
        let canonical = if name == DEFAULT_MODEL_ALIAS {
            self.default.as_deref()?
        } else {
            name
        };
        self.models
            .get_key_value(canonical)
            .map(|(k, v)| (k.as_str(), v))
    }
}

/// Why a component could not use a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelDenied {
    #[error("no model named `{0}` is loaded")]
    NotFound(String),
    #[error("this component is not granted model `{0}` (add it to `ai_models` in the manifest)")]
    NotGranted(String),
}

/// One component's view of the registry: the models its `ai_models` grant.
#[derive(Clone)]
pub struct ModelAccess {
    registry: Arc<ModelRegistry>,
    grants: Arc<[String]>,
}

impl ModelAccess {
    pub fn new(registry: Arc<ModelRegistry>, grants: impl IntoIterator<Item = String>) -> Self {
        Self {
            registry,
            grants: grants.into_iter().collect(),
        }
    }

    /// Resolves `name` for this component. Unknown names are `NotFound`; known models outside
    /// the grants are `NotGranted`. Granting `default` grants whichever model it stands for, and
    /// granting a model by name also allows reaching it through `default`.
    pub fn resolve(&self, name: &str) -> Result<(String, EngineHandle), ModelDenied> {
        let Some((canonical, handle)) = self.registry.resolve(name) else {
            return Err(ModelDenied::NotFound(name.to_owned()));
        };
        let is_default = self.registry.default_name() == Some(canonical);
        let granted = self
            .grants
            .iter()
            .any(|g| g == name || g == canonical || (g == DEFAULT_MODEL_ALIAS && is_default));
        if granted {
            Ok((canonical.to_owned(), handle.clone()))
        } else {
            Err(ModelDenied::NotGranted(name.to_owned()))
        }
    }

    pub fn grants(&self) -> &[String] {
        &self.grants
    }
}
