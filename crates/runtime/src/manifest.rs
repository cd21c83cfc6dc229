//! The application manifest: Spin's `spin.toml` format, version 2.
//!
//! [`Manifest::load`] reads and checks a manifest: unknown fields are rejected where Spin rejects
//! them, and every problem is reported with the file and the field it concerns. What the
//! manifest *means* at run time (routes, variable values, grants) is worked out by the
//! [`router`](crate::router), [`variables`](crate::variables) and [`app`](crate::app) modules.
//!
//! Supported: `[application]`, `[variables]`, `[[trigger.http]]` (`route`, `component` by id or
//! inline), `[component.ID]` with `source` (a local `.wasm` path), `description`, `variables`,
//! `environment`, `files`, `exclude_files`, `allowed_outbound_hosts`, `key_value_stores`,
//! `ai_models`, and the ignored `build`/`tool` tables. Refused with a clear error: other trigger
//! types, remote component sources, component dependencies, SQLite databases.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::router::RoutePattern;
use crate::variables;

/// A checked manifest. Paths inside it are still as written; [`Manifest::resolve_path`]
/// makes them absolute.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub base_dir: PathBuf,
    pub application: Application,
    pub variables: BTreeMap<String, Variable>,
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub authors: Vec<String>,
    /// Spin deployment targets; ignored.
    #[serde(default)]
    pub targets: Vec<toml::Value>,
    /// Application-level trigger settings; ignored for http.
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
    /// Settings for other tools; ignored.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
}

/// An application variable in `[variables]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Used when no override is given. Mutually exclusive with `required`.
    pub default: Option<String>,
    /// Startup fails unless an override (`--variable` or `SPIN_VARIABLE_<NAME>`) gives a value.
    #[serde(default)]
    pub required: bool,
    /// The value must not be logged or shown.
    #[serde(default)]
    pub secret: bool,
}

/// One `[[trigger.http]]` entry, after inline components got ids.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// The route as written; `None` for a private route (not reachable over HTTP).
    pub route: Option<String>,
    pub component: String,
}

/// `[component.ID]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Path to the component's `.wasm`, relative to the manifest.
    pub source: ComponentSource,
    #[serde(default)]
    pub description: String,
    /// Component variables; values may use `{{ app_variable }}` templates.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Environment variables set in the guest.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Read-only file mounts.
    #[serde(default)]
    pub files: Vec<FilesMount>,
    /// Glob patterns removed from what `files` patterns match.
    #[serde(default)]
    pub exclude_files: Vec<String>,
    /// Outbound network grants. kefu makes no outbound connections for guests: any entry is
    /// refused at load (see [`Manifest::load`]).
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    /// Deprecated Spin spelling of `allowed_outbound_hosts`.
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    /// Not supported; must be empty.
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    /// Models the component may load (wasi-nn `load-by-name`, `fermyon:spin/llm`).
    #[serde(default)]
    pub ai_models: Vec<String>,
    /// Build settings for `spin build`; ignored.
    #[serde(default)]
    pub build: Option<toml::Table>,
    /// Settings for other tools; ignored.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
    /// Not supported; must be empty.
    #[serde(default)]
    pub dependencies: toml::Table,
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
}

/// Where a component's Wasm comes from. Only local files are supported.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct ComponentSource(pub String);

impl TryFrom<toml::Value> for ComponentSource {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        match value {
            toml::Value::String(path) if !path.trim().is_empty() => Ok(ComponentSource(path)),
            toml::Value::String(_) => Err("`source` must not be empty".into()),
            toml::Value::Table(t) if t.contains_key("url") || t.contains_key("registry") => Err(
                "remote component sources are not supported: give a local path to a .wasm file"
                    .into(),
            ),
            other => Err(format!(
                "`source` must be a path to a .wasm file, found {}",
                other.type_str()
            )),
        }
    }
}

/// An entry of a component's `files`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub enum FilesMount {
    /// A glob pattern relative to the manifest; matches are mounted at the same relative path
    /// under `/`.
    Pattern(String),
    /// A host directory mounted at `destination` (absolute) in the guest.
    Placement { source: String, destination: String },
}

impl TryFrom<toml::Value> for FilesMount {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Placement {
            source: String,
            destination: String,
        }
        match value {
            toml::Value::String(pattern) => Ok(FilesMount::Pattern(pattern)),
            toml::Value::Table(_) => {
                let p = Placement::deserialize(value).map_err(|e| format!("files: {e}"))?;
                Ok(FilesMount::Placement {
                    source: p.source,
                    destination: p.destination,
                })
            }
            other => Err(format!(
                "files: expected a glob pattern or {{ source, destination }}, found {}",
                other.type_str()
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[serde(default)]
    id: Option<String>,
    route: RawRoute,
    component: Option<RawComponentRef>,
    #[serde(default)]
    executor: Option<RawExecutor>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
#[serde(try_from = "toml::Value")]
enum RawComponentRef {
    Id(String),
    Inline(Box<Component>),
}

impl TryFrom<toml::Value> for RawComponentRef {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        match value {
            toml::Value::String(id) => Ok(RawComponentRef::Id(id)),
            toml::Value::Table(_) => Component::deserialize(value)
                .map(|c| RawComponentRef::Inline(Box::new(c)))
                .map_err(|e| format!("inline component: {e}")),
            other => Err(format!(
                "`component` must be a component id or an inline component table, found {}",
                other.type_str()
            )),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExecutor {
    #[serde(rename = "type")]
    kind: String,
}

impl Manifest {
    /// Reads, parses and checks the manifest at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading manifest {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses and checks manifest text as if read from `path` (used for paths and messages).
    pub fn parse(text: &str, path: &Path) -> Result<Manifest> {
        Self::parse_inner(text, path)
            .with_context(|| format!("invalid manifest {}", path.display()))
    }

    fn parse_inner(text: &str, path: &Path) -> Result<Manifest> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        match raw.spin_manifest_version.as_integer() {
            Some(2) => {}
            _ => bail!(
                "spin_manifest_version: expected 2 (Spin manifest v2), found {}",
                raw.spin_manifest_version
            ),
        }
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir
        };
        let mut components = raw.component;
        for id in components.keys() {
            check_kebab_id(id).with_context(|| format!("[component.{id}]"))?;
        }

        for (name, variable) in &raw.variables {
            variables::check_name(name).with_context(|| format!("[variables] {name}"))?;
            match (&variable.default, variable.required) {
                (Some(_), true) => {
                    bail!("[variables] {name}: `default` and `required = true` exclude each other")
                }
                (None, false) => {
                    bail!("[variables] {name}: give a `default` or set `required = true`")
                }
                _ => {}
            }
        }

        let mut http_triggers = Vec::new();
        for (kind, entries) in raw.trigger {
            if kind != "http" {
                bail!("[[trigger.{kind}]]: only http triggers are supported");
            }
            for (index, entry) in entries.into_iter().enumerate() {
                let at = format!("[[trigger.http]] #{}", index + 1);
                let trigger = RawHttpTrigger::deserialize(toml::Value::Table(entry))
                    .map_err(|e| anyhow::anyhow!("{at}: {}", e.message()))?;
                if let Some(executor) = &trigger.executor
                    && executor.kind != "spin"
                    && executor.kind != "http"
                {
                    bail!(
                        "{at}: executor type `{}` is not supported (only `spin`)",
                        executor.kind
                    );
                }
                let component = match trigger.component {
                    Some(RawComponentRef::Id(id)) => {
                        if !components.contains_key(&id) {
                            bail!("{at}: component: no [component.{id}] in the manifest");
                        }
                        id
                    }
                    Some(RawComponentRef::Inline(component)) => {
                        let id = trigger
                            .id
                            .clone()
                            .unwrap_or_else(|| format!("inline-component-{}", index + 1));
                        check_kebab_id(&id).with_context(|| format!("{at}: id"))?;
                        if components.contains_key(&id) {
                            bail!("{at}: inline component id `{id}` is already used");
                        }
                        components.insert(id.clone(), *component);
                        id
                    }
                    None => bail!("{at}: missing field `component`"),
                };
                let route = match trigger.route {
                    RawRoute::Path(route) => {
                        RoutePattern::parse(&route).with_context(|| format!("{at}: route"))?;
                        Some(route)
                    }
                    RawRoute::Private { private: true } => None,
                    RawRoute::Private { private: false } => {
                        bail!("{at}: route: `{{ private = false }}` is not a route")
                    }
                };
                http_triggers.push(HttpTrigger { route, component });
            }
        }

        for (id, component) in &components {
            let at = format!("[component.{id}]");
            for (name, template) in &component.variables {
                variables::check_name(name).with_context(|| format!("{at} variables.{name}"))?;
                for reference in variables::template_references(template)
                    .with_context(|| format!("{at} variables.{name}"))?
                {
                    if !raw.variables.contains_key(&reference) {
                        bail!(
                            "{at} variables.{name}: `{{{{ {reference} }}}}` refers to no \
                             application variable (declare it in [variables])"
                        );
                    }
                }
            }
            if !component.allowed_outbound_hosts.is_empty()
                || !component.allowed_http_hosts.is_empty()
            {
                bail!(
                    "{at} allowed_outbound_hosts: outbound network access is not supported; \
                     remove the entries"
                );
            }
            if !component.sqlite_databases.is_empty() {
                bail!("{at} sqlite_databases: SQLite databases are not supported yet");
            }
            if !component.dependencies.is_empty() {
                bail!("{at} dependencies: component dependencies are not supported");
            }
            for label in &component.key_value_stores {
                check_label(label).with_context(|| format!("{at} key_value_stores"))?;
            }
            for model in &component.ai_models {
                if model.trim().is_empty() {
                    bail!("{at} ai_models: model names must not be empty");
                }
            }
            for mount in &component.files {
                if let FilesMount::Placement { destination, .. } = mount
                    && !destination.starts_with('/')
                {
                    bail!("{at} files: destination `{destination}` must be an absolute path");
                }
            }
            for pattern in component
                .exclude_files
                .iter()
                .chain(component.files.iter().filter_map(|m| match m {
                    FilesMount::Pattern(p) => Some(p),
                    FilesMount::Placement { .. } => None,
                }))
            {
                glob::Pattern::new(pattern)
                    .with_context(|| format!("{at} files: bad glob pattern `{pattern}`"))?;
            }
        }

        Ok(Manifest {
            path: path.to_path_buf(),
            base_dir,
            application: raw.application,
            variables: raw.variables,
            http_triggers,
            components,
        })
    }

    /// `relative` resolved against the manifest's directory.
    pub fn resolve_path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }

    /// Every model name some component's `ai_models` asks for (`default` included as written).
    pub fn requested_models(&self) -> std::collections::BTreeSet<String> {
        self.components
            .values()
            .flat_map(|c| c.ai_models.iter().cloned())
            .collect()
    }
}

fn check_kebab_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.split('-').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && id.starts_with(|c: char| c.is_ascii_lowercase());
    if !ok {
        bail!(
            "`{id}` is not a valid id: use lowercase letters, digits and single dashes \
             (kebab-case), starting with a letter"
        );
    }
    Ok(())
}

fn check_label(label: &str) -> Result<()> {
    let ok = !label.is_empty()
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("`{label}` is not a valid store label: use kebab-case or snake_case");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, Path::new("/app/spin.toml"))
    }

    fn error(text: &str) -> String {
        format!("{:#}", parse(text).unwrap_err())
    }

    const GOOD: &str = r#"
spin_manifest_version = 2

[application]
name = "kefu"
version = "0.1.0"
description = "support answers"

[variables]
api_keys = { default = "" }
model = { required = true }
token = { default = "s3cret", secret = true }

[[trigger.http]]
route = "/v1/..."
component = "gateway"

[[trigger.http]]
route = "/static/:file"
component = { source = "static.wasm" }

[component.gateway]
source = "components/gateway.wasm"
files = [{ source = "data/kb", destination = "/kb" }, "assets/*.txt"]
ai_models = ["default", "smollm2"]
key_value_stores = ["default"]
environment = { RUST_LOG = "info" }
[component.gateway.variables]
api_keys = "{{ api_keys }}"
greeting = "model {{model}} at your service"
[component.gateway.build]
command = "cargo build --target wasm32-wasip2 --release"
watch = ["src/**/*.rs"]
"#;

    #[test]
    fn parses_a_full_manifest() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.application.name, "kefu");
        assert_eq!(m.base_dir, Path::new("/app"));
        assert_eq!(m.variables.len(), 3);
        assert!(m.variables["model"].required);
        assert!(m.variables["token"].secret);
        assert_eq!(m.http_triggers.len(), 2);
        assert_eq!(m.http_triggers[0].component, "gateway");
        assert_eq!(m.http_triggers[1].component, "inline-component-2");
        assert_eq!(m.components["inline-component-2"].source.0, "static.wasm");
        let gw = &m.components["gateway"];
        assert_eq!(
            gw.files,
            vec![
                FilesMount::Placement {
                    source: "data/kb".into(),
                    destination: "/kb".into()
                },
                FilesMount::Pattern("assets/*.txt".into())
            ]
        );
        assert_eq!(gw.ai_models, ["default", "smollm2"]);
        assert_eq!(
            m.resolve_path(&gw.source.0),
            Path::new("/app/components/gateway.wasm")
        );
        assert_eq!(
            m.requested_models().into_iter().collect::<Vec<_>>(),
            ["default", "smollm2"]
        );
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let e = error(&GOOD.replace("route = \"/v1/...\"", "rout = \"/v1/...\""));
        assert!(e.contains("/app/spin.toml"), "{e}");
        assert!(e.contains("rout"), "{e}");

        let e = error(&GOOD.replace("ai_models = ", "ai_modles = "));
        assert!(
            e.contains("/app/spin.toml") && e.contains("ai_modles"),
            "{e}"
        );
        assert!(e.contains("line"), "toml position missing: {e}");

        let e = error(&GOOD.replace("name = \"kefu\"", "nme = \"kefu\""));
        assert!(e.contains("nme"), "{e}");

        let e = error(&GOOD.replace("secret = true", "secrett = true"));
        assert!(e.contains("secrett"), "{e}");
    }

    #[test]
    fn rejects_wrong_version() {
        let e = error(&GOOD.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(e.contains("spin_manifest_version"), "{e}");
        let e = error(&GOOD.replace("spin_manifest_version = 2", ""));
        assert!(e.contains("spin_manifest_version"), "{e}");
    }

    #[test]
    fn rejects_unknown_component_reference() {
        let e = error(&GOOD.replace("component = \"gateway\"", "component = \"gatewy\""));
        assert!(e.contains("gatewy") && e.contains("trigger.http"), "{e}");
    }

    #[test]
    fn rejects_bad_routes_and_templates() {
        let e = error(&GOOD.replace("/v1/...", "v1/..."));
        assert!(e.contains("route"), "{e}");
        let e = error(&GOOD.replace("{{ api_keys }}", "{{ api_kyes }}"));
        assert!(
            e.contains("api_kyes") && e.contains("variables.api_keys"),
            "{e}"
        );
        let e = error(&GOOD.replace("{{model}}", "{{model"));
        assert!(e.contains("greeting"), "{e}");
    }

    #[test]
    fn rejects_conflicting_variable_settings() {
        let e = error(&GOOD.replace(
            "model = { required = true }",
            "model = { required = true, default = \"x\" }",
        ));
        assert!(e.contains("[variables] model"), "{e}");
        let e = error(&GOOD.replace("model = { required = true }", "model = { secret = true }"));
        assert!(e.contains("[variables] model"), "{e}");
        let e = error(&GOOD.replace("model = { required = true }", "Model = { required = true }"));
        assert!(e.contains("Model"), "{e}");
    }

    #[test]
    fn rejects_unsupported_features() {
        let e = error(&format!(
            "{GOOD}\n[[trigger.redis]]\nchannel = \"x\"\ncomponent = \"gateway\"\n"
        ));
        assert!(e.contains("trigger.redis"), "{e}");
        let e = error(&GOOD.replace(
            "key_value_stores = [\"default\"]",
            "allowed_outbound_hosts = [\"https://example.com\"]",
        ));
        assert!(e.contains("allowed_outbound_hosts"), "{e}");
        let e = error(&GOOD.replace(
            "source = \"components/gateway.wasm\"",
            "source = { url = \"https://example.com/x.wasm\", digest = \"sha256:00\" }",
        ));
        assert!(e.contains("remote component sources"), "{e}");
        let e = error(&GOOD.replace("destination = \"/kb\"", "destination = \"kb\""));
        assert!(e.contains("destination"), "{e}");
    }

    #[test]
    fn rejects_bad_component_ids() {
        let e = error(&format!(
            "{GOOD}\n[component.Bad_Id]\nsource = \"x.wasm\"\n"
        ));
        assert!(e.contains("Bad_Id"), "{e}");
    }

    #[test]
    fn private_routes_are_kept_off_http() {
        let m = parse(&GOOD.replace("route = \"/v1/...\"", "route = { private = true }")).unwrap();
        assert_eq!(m.http_triggers[0].route, None);
    }
}
