//! The component's configuration, read from its Spin variables on every request (instances
//! are per request, so there is nothing to cache).
//!
//! | variable        | meaning                                                        | default   |
//! |-----------------|----------------------------------------------------------------|-----------|
//! | `api_keys`      | comma-separated SHA-256 hex digests of accepted API keys        | none: all requests rejected |
//! | `auth_disabled` | `true` turns authentication off entirely                        | `false`   |
//! | `models`        | comma-separated model names granted to the component; the first is `default` | none |
//! | `system_prompt` | system message used when a request brings none                  | none      |
//! | `chat_template` | `chatml`, `llama3` or `gemma`                                   | `chatml`  |
//!
//! A variable the manifest does not define reads as its default.

use crate::api::DEFAULT_MODEL;
use crate::auth::{KeyDigest, parse_key_digests};
use crate::template::ChatTemplate;

/// Variable names.
pub const VAR_API_KEYS: &str = "api_keys";
pub const VAR_AUTH_DISABLED: &str = "auth_disabled";
pub const VAR_MODELS: &str = "models";
pub const VAR_SYSTEM_PROMPT: &str = "system_prompt";
pub const VAR_CHAT_TEMPLATE: &str = "chat_template";

/// Parsed configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub api_keys: Vec<KeyDigest>,
    pub auth_disabled: bool,
    /// Granted model names, in order, without duplicates. The first is the default.
    pub models: Vec<String>,
    pub system_prompt: Option<String>,
    pub template: ChatTemplate,
}

impl Config {
    /// Builds the configuration from a variable lookup (`Ok(None)`: undefined). Returns it
    /// with warnings for the operator's log, or an error when the configuration is unusable.
    pub fn from_lookup<F>(lookup: F) -> Result<(Self, Vec<String>), String>
    where
        F: Fn(&str) -> Result<Option<String>, String>,
    {
        let get = |name: &str| lookup(name).map(Option::unwrap_or_default);
        let mut warnings = Vec::new();

        let (api_keys, invalid) = parse_key_digests(&get(VAR_API_KEYS)?);
        for entry in invalid {
            let shown: String = entry.chars().take(8).collect();
            warnings.push(format!(
                "ignoring `{VAR_API_KEYS}` entry starting {shown:?}: not a 64-digit hex SHA-256 digest"
            ));
        }
        let auth_disabled = parse_bool(VAR_AUTH_DISABLED, &get(VAR_AUTH_DISABLED)?)?;
        if api_keys.is_empty() && !auth_disabled {
            warnings.push(format!(
                "`{VAR_API_KEYS}` holds no valid digest: every request is rejected"
            ));
        }

        let models = parse_models(&get(VAR_MODELS)?);
        let system_prompt = Some(get(VAR_SYSTEM_PROMPT)?).filter(|p| !p.trim().is_empty());
        let template = get(VAR_CHAT_TEMPLATE)?.parse::<ChatTemplate>()?;

        Ok((
            Self {
                api_keys,
                auth_disabled,
                models,
                system_prompt,
                template,
            },
            warnings,
        ))
    }

    /// The granted model a request's `model` names: `default` is the first granted model.
    pub fn resolve_model(&self, requested: &str) -> Option<&str> {
        if requested == DEFAULT_MODEL {
            self.models.first().map(String::as_str)
        } else {
            self.models
                .iter()
                .find(|m| *m == requested)
                .map(String::as_str)
        }
    }
}

/// Comma-separated names, trimmed, blanks and duplicates dropped, order kept. `default` is
/// reserved for the alias and dropped too.
pub fn parse_models(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim) {
        if !name.is_empty() && name != DEFAULT_MODEL && !out.iter().any(|m| m == name) {
            out.push(name.to_owned());
        }
    }
    out
}

fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(format!(
            "variable `{name}` must be true or false, not {other:?}"
        )),
    }
}

/// Reads the configuration from Spin variables.
#[cfg(target_arch = "wasm32")]
pub fn load() -> Result<(Config, Vec<String>), String> {
    use spin_sdk::variables::{Error, get};
    Config::from_lookup(|name| match get(name) {
        Ok(value) => Ok(Some(value)),
        Err(Error::Undefined(_)) => Ok(None),
        Err(e) => Err(format!("reading variable `{name}`: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::key_digest_hex;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<(Config, Vec<String>), String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|name| Ok(vars.get(name).cloned()))
    }

    #[test]
    fn defaults_fail_closed() {
        let (c, warnings) = config(&[]).unwrap();
        assert!(c.api_keys.is_empty() && !c.auth_disabled);
        assert!(c.models.is_empty() && c.system_prompt.is_none());
        assert_eq!(c.template, ChatTemplate::ChatMl);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(c.resolve_model("default"), None);
    }

    #[test]
    fn full_configuration() {
        let digest = key_digest_hex("k");
        let (c, warnings) = config(&[
            ("api_keys", &format!("{digest},bad")),
            ("models", " smollm2-135m-instruct , gemma ,default,gemma,"),
            ("system_prompt", "Be kind."),
            ("chat_template", "llama3"),
            ("auth_disabled", "false"),
        ])
        .unwrap();
        assert_eq!(c.api_keys.len(), 1);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"bad\""), "{warnings:?}");
        assert_eq!(c.models, ["smollm2-135m-instruct", "gemma"]);
        assert_eq!(c.resolve_model("default"), Some("smollm2-135m-instruct"));
        assert_eq!(c.resolve_model("gemma"), Some("gemma"));
        assert_eq!(c.resolve_model("GEMMA"), None);
        assert_eq!(c.resolve_model("other"), None);
        assert_eq!(c.system_prompt.as_deref(), Some("Be kind."));
        assert_eq!(c.template, ChatTemplate::Llama3);
    }

    #[test]
    fn invalid_values_are_errors() {
        assert!(config(&[("chat_template", "jinja")]).is_err());
        assert!(config(&[("auth_disabled", "maybe")]).is_err());
        let (c, _) = config(&[("auth_disabled", "TRUE")]).unwrap();
        assert!(c.auth_disabled);
        assert!(Config::from_lookup(|_| Err("host down".into())).is_err());
    }
}
