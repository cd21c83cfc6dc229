//! The component's configuration, read from its Spin variables on every request (instances
//! are per request, so there is nothing to cache).
//!
//! | variable        | meaning                                                        | default   |
//! |-----------------|----------------------------------------------------------------|-----------|
//! | `api_keys`      | comma-separated SHA-256 hex digests of accepted API keys        | none: all requests rejected |
//! | `auth_disabled` | `true` turns authentication off entirely                        | `false`   |
//! | `models`        | comma-separated model names granted to the component; the first is `default` | none |
//! | `quota_per_minute` | chat completions one API key may request per minute; 0 or blank: unlimited | 0 |
//!
//! plus the guardrail settings of [`GuardConfig`] (`answer_mode`, `chat_template`,
//! `product_name`, `system_prompt`, thresholds, texts, ...: every name in
//! [`GuardConfig::VARIABLES`], documented in `kefu_guard::config`). A variable the manifest
//! does not define, or defines as blank, reads as its default.

use kefu_guard::GuardConfig;

use crate::api::DEFAULT_MODEL;
use crate::auth::{KeyDigest, parse_key_digests};

/// Variable names.
pub const VAR_API_KEYS: &str = "api_keys";
pub const VAR_AUTH_DISABLED: &str = "auth_disabled";
pub const VAR_MODELS: &str = "models";
pub const VAR_QUOTA_PER_MINUTE: &str = "quota_per_minute";

/// Parsed configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub api_keys: Vec<KeyDigest>,
    pub auth_disabled: bool,
    /// Granted model names, in order, without duplicates. The first is the default.
    pub models: Vec<String>,
    /// Chat completions per API key per minute; `None`: unlimited.
    pub quota_per_minute: Option<u32>,
    /// Guardrails: answer mode, thresholds, chat template, prompts and reply texts.
    pub guard: GuardConfig,
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
        let quota_per_minute = parse_quota(&get(VAR_QUOTA_PER_MINUTE)?)?;

        // `from_vars` cannot fail on a lookup, so the first lookup failure is kept aside.
        let mut lookup_error = None;
        let guard = GuardConfig::from_vars(|name| match lookup(name) {
            Ok(value) => value,
            Err(e) => {
                lookup_error.get_or_insert(e);
                None
            }
        });
        if let Some(e) = lookup_error {
            return Err(e);
        }
        let guard = guard.map_err(|e| e.to_string())?;

        Ok((
            Self {
                api_keys,
                auth_disabled,
                models,
                quota_per_minute,
                guard,
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

/// `quota_per_minute`: a whole number; blank or 0 means unlimited.
fn parse_quota(value: &str) -> Result<Option<u32>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!(
            "variable `{VAR_QUOTA_PER_MINUTE}` must be a whole number (0: unlimited), not {value:?}"
        )),
    }
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
        assert!(c.models.is_empty());
        assert_eq!(c.guard, GuardConfig::default());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(c.resolve_model("default"), None);
    }

    #[test]
    fn full_configuration() {
        let digest = key_digest_hex("k");
        let (c, warnings) = config(&[
            ("api_keys", &format!("{digest},bad")),
            ("models", " smollm2-135m-instruct , gemma ,default,gemma,"),
            ("system_prompt", "Be kind to {product} users."),
            ("chat_template", "llama3"),
            ("answer_mode", "generative"),
            ("product_name", "CloudSail"),
            ("answer_threshold", "0.5"),
            ("pii_allow_domains", "CloudSail.example"),
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
        let g = &c.guard;
        assert_eq!(g.system_prompt, "Be kind to {product} users.");
        assert_eq!(g.chat_template, kefu_guard::ChatTemplate::Llama3);
        assert_eq!(g.answer_mode, kefu_guard::AnswerMode::Generative);
        assert_eq!(g.product_name, "CloudSail");
        assert_eq!(g.answer_threshold, 0.5);
        assert_eq!(g.pii_allow_domains, ["cloudsail.example"]);
    }

    #[test]
    fn invalid_values_are_errors() {
        let e = config(&[("chat_template", "jinja")]).unwrap_err();
        assert!(e.contains("chat_template"), "{e}");
        let e = config(&[("answer_mode", "creative")]).unwrap_err();
        assert!(e.contains("answer_mode"), "{e}");
        assert!(
            config(&[("answer_threshold", "0.3")]).is_err(),
            "below refuse_threshold"
        );
        assert!(config(&[("auth_disabled", "maybe")]).is_err());
        assert!(config(&[("quota_per_minute", "-1")]).is_err());
        assert!(config(&[("quota_per_minute", "lots")]).is_err());
        assert_eq!(
            config(&[("quota_per_minute", "0")])
                .unwrap()
                .0
                .quota_per_minute,
            None
        );
        assert_eq!(
            config(&[("quota_per_minute", " 30 ")])
                .unwrap()
                .0
                .quota_per_minute,
            Some(30)
        );
        let (c, _) = config(&[("auth_disabled", "TRUE")]).unwrap();
        assert!(c.auth_disabled);
        assert!(Config::from_lookup(|_| Err("host down".into())).is_err());
        // A failing lookup of a guard variable is an error too, not a silent default.
        let e = Config::from_lookup(|name| match name {
            "answer_mode" => Err("host down".into()),
            _ => Ok(None),
        })
        .unwrap_err();
        assert_eq!(e, "host down");
    }
}
