//! Application and component variables, resolved the way `spin up` resolves them.
//!
//! An application variable takes its value from, in order: a `--variable name=value` override,
//! the environment variable `SPIN_VARIABLE_<NAME>` (name upper-cased), then its `default`. A
//! `required` variable with no value stops startup. Component variables are templates over
//! application variables (`"https://{{ host }}/v1"`); they are expanded once at startup and
//! reach the guest through `fermyon:spin/variables`.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::manifest::Manifest;

/// Resolved values of the application's variables.
#[derive(Clone, Default)]
pub struct ApplicationVariables {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for ApplicationVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values may be secrets: list the names only.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl ApplicationVariables {
    /// Resolves every variable of `manifest`. `overrides` are `--variable` pairs; `env` looks up
    /// process environment variables (injected for tests). An override of an undeclared
    /// variable is an error, since it is almost always a typo.
    pub fn resolve(
        manifest: &Manifest,
        overrides: &[(String, String)],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        for (name, _) in overrides {
            if !manifest.variables.contains_key(name) {
                bail!(
                    "--variable {name}: the manifest {} declares no such variable in [variables] \
                     (declared: {})",
                    manifest.path.display(),
                    manifest
                        .variables
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let mut values = BTreeMap::new();
        for (name, variable) in &manifest.variables {
            // The last override of a name wins, as with repeated command-line flags.
            let value = overrides
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| env(&env_name(name)))
                .or_else(|| variable.default.clone());
            match value {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => bail!(
                    "variable `{name}` is required: pass --variable {name}=VALUE or set {}",
                    env_name(name)
                ),
            }
        }
        Ok(Self { values })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Expands the `{{ name }}` references of `template`.
    pub fn expand(&self, template: &str) -> Result<String> {
        let mut out = String::with_capacity(template.len());
        for part in parse_template(template)? {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Reference(name) => out.push_str(
                    self.get(name)
                        .with_context(|| format!("`{{{{ {name} }}}}`: no such variable"))?,
                ),
            }
        }
        Ok(out)
    }

    /// The component's variables with templates expanded.
    pub fn component_variables(
        &self,
        manifest: &Manifest,
        component: &str,
    ) -> Result<BTreeMap<String, String>> {
        let Some(c) = manifest.components.get(component) else {
            bail!("no component `{component}`");
        };
        c.variables
            .iter()
            .map(|(name, template)| {
                let value = self
                    .expand(template)
                    .with_context(|| format!("[component.{component}] variables.{name}"))?;
                Ok((name.clone(), value))
            })
            .collect()
    }
}

/// The environment variable that overrides application variable `name`.
pub fn env_name(name: &str) -> String {
    format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())
}

/// Checks a variable name: lowercase letters, digits and underscores, starting with a letter
/// (Spin's rule; it is also what `fermyon:spin/variables.get` accepts).
pub fn check_name(name: &str) -> Result<()> {
    if is_valid_name(name) {
        Ok(())
    } else {
        bail!(
            "`{name}` is not a valid variable name: use lowercase letters, digits and \
             underscores, starting with a letter"
        )
    }
}

pub(crate) fn is_valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The variable names a template refers to, checking its syntax.
pub fn template_references(template: &str) -> Result<Vec<String>> {
    Ok(parse_template(template)?
        .into_iter()
        .filter_map(|p| match p {
            Part::Reference(name) => Some(name.to_owned()),
            Part::Literal(_) => None,
        })
        .collect())
}

enum Part<'a> {
    Literal(&'a str),
    Reference(&'a str),
}

fn parse_template(template: &str) -> Result<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            parts.push(Part::Literal(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unterminated `{{{{` in template `{template}`");
        };
        let name = after[..end].trim();
        check_name(name).with_context(|| format!("in template `{template}`"))?;
        parts.push(Part::Reference(name));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "t"
[variables]
host = { default = "example.com" }
api_keys = { required = true }
region = { default = "eu" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
variables = { url = "https://{{ host }}/{{region}}", keys = "{{ api_keys }}", plain = "x" }
"#,
            Path::new("/m/spin.toml"),
        )
        .unwrap()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn required_variable_needs_a_value() {
        let e = ApplicationVariables::resolve(&manifest(), &[], no_env).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("api_keys") && e.contains("SPIN_VARIABLE_API_KEYS"),
            "{e}"
        );
    }

    #[test]
    fn precedence_is_flag_then_env_then_default() {
        let m = manifest();
        let env = |k: &str| match k {
            "SPIN_VARIABLE_API_KEYS" => Some("from-env".to_string()),
            "SPIN_VARIABLE_HOST" => Some("env.example".to_string()),
            _ => None,
        };
        let vars = ApplicationVariables::resolve(
            &m,
            &[
                ("host".into(), "first".into()),
                ("host".into(), "flag.example".into()),
            ],
            env,
        )
        .unwrap();
        assert_eq!(vars.get("host"), Some("flag.example"));
        assert_eq!(vars.get("api_keys"), Some("from-env"));
        assert_eq!(vars.get("region"), Some("eu"));
        let c = vars.component_variables(&m, "c").unwrap();
        assert_eq!(c["url"], "https://flag.example/eu");
        assert_eq!(c["keys"], "from-env");
        assert_eq!(c["plain"], "x");
    }

    #[test]
    fn unknown_override_is_an_error() {
        let e =
            ApplicationVariables::resolve(&manifest(), &[("api_key".into(), "x".into())], no_env)
                .unwrap_err();
        assert!(format!("{e:#}").contains("api_key"));
    }

    #[test]
    fn debug_output_hides_values() {
        let vars = ApplicationVariables::resolve(
            &manifest(),
            &[("api_keys".into(), "topsecret".into())],
            no_env,
        )
        .unwrap();
        assert!(!format!("{vars:?}").contains("topsecret"));
    }

    #[test]
    fn template_syntax() {
        assert_eq!(template_references("a{{ b }}c{{d}}").unwrap(), ["b", "d"]);
        assert!(template_references("{{ b").is_err());
        assert!(template_references("{{ B }}").is_err());
        assert!(template_references("{{}}").is_err());
        assert!(
            template_references("no templates } here {")
                .unwrap()
                .is_empty()
        );
    }
}
