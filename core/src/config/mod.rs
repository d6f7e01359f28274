//! Config in the OpenTelemetry Collector's format: `receivers`, `processors`,
//! `exporters`, `extensions` and `service`, loaded from several sources, expanded,
//! and resolved against the registry into a checked description of the service.
//!
//! Every error is found before anything starts and names its path in the collector's
//! style (`exporters::sqlite::path: ...`); [`resolve`] reports all of them at once.

pub mod duration;
pub mod expand;
pub mod source;

use crate::component::{ComponentId, Kind};
use crate::registry::{self, Registration};
use serde::{Deserialize, Serialize};
use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

pub use source::{load_merged, ConfigSource};

/// One config problem: where (a `::`-separated path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the offending key, e.g. `exporters::sqlite::path`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// Builds an error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Puts `prefix` in front of the path.
    pub fn under(mut self, prefix: &str) -> Self {
        self.path = match (prefix.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}::{}", self.path),
        };
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} error{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// One pipeline's component lists.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receivers feeding the pipeline.
    #[serde(default)]
    pub receivers: Vec<String>,
    /// Processors, in order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporters the pipeline fans out to.
    #[serde(default)]
    pub exporters: Vec<String>,
}

/// `service::telemetry::logs`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Minimum level: `debug`, `info`, `warn`, `error`.
    pub level: String,
    /// `console` (human-readable) or `json`.
    pub encoding: String,
    /// Accepted for compatibility with collector configs; logs always go to stderr.
    pub output_paths: Vec<String>,
    /// Accepted for compatibility; logs always go to stderr.
    pub error_output_paths: Vec<String>,
    /// Accepted for compatibility; has no effect.
    pub development: bool,
    /// Accepted for compatibility; has no effect.
    pub disable_caller: bool,
    /// Accepted for compatibility; has no effect.
    pub disable_stacktrace: bool,
    /// Accepted for compatibility; has no effect.
    pub sampling: Option<Value>,
    /// Accepted for compatibility; has no effect.
    pub initial_fields: Option<Value>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: "info".into(),
            encoding: "console".into(),
            output_paths: vec!["stderr".into()],
            error_output_paths: vec!["stderr".into()],
            development: false,
            disable_caller: false,
            disable_stacktrace: false,
            sampling: None,
            initial_fields: None,
        }
    }
}

/// `service::telemetry::metrics`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `none` turns the metrics endpoint off; `basic`, `normal`, `detailed` serve it.
    pub level: String,
    /// Where Prometheus text is served (the collector's older key).
    pub address: Option<String>,
    /// The collector's newer form: `[{pull: {exporter: {prometheus: {host, port}}}}]`.
    /// The first pull/prometheus reader gives the address.
    pub readers: Vec<Value>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            level: "normal".into(),
            address: None,
            readers: Vec::new(),
        }
    }
}

/// The default metrics address, as in the collector.
pub const DEFAULT_METRICS_ADDRESS: &str = "localhost:8888";

impl MetricsConfig {
    /// The address to serve metrics on, or `None` when metrics are off.
    pub fn endpoint(&self) -> Result<Option<String>, String> {
        if self.level == "none" {
            return Ok(None);
        }
        if let Some(address) = &self.address {
            return Ok(Some(address.clone()));
        }
        for reader in &self.readers {
            let prom = &reader["pull"]["exporter"]["prometheus"];
            if prom.is_mapping() {
                let host = prom["host"].as_str().unwrap_or("localhost");
                let port = prom["port"]
                    .as_u64()
                    .ok_or("readers: pull prometheus exporter needs a port")?;
                return Ok(Some(format!("{host}:{port}")));
            }
        }
        if self.readers.is_empty() {
            Ok(Some(DEFAULT_METRICS_ADDRESS.into()))
        } else {
            Ok(None)
        }
    }
}

/// `service::telemetry`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// Internal logs.
    pub logs: LogsConfig,
    /// Internal metrics.
    pub metrics: MetricsConfig,
    /// Accepted for compatibility with collector configs; not used.
    pub resource: Option<Value>,
    /// Accepted for compatibility with collector configs; internal traces are not exported.
    pub traces: Option<Value>,
}

/// The `service` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Extensions to start, by ID.
    pub extensions: Vec<String>,
    /// Pipelines by ID (`traces`, `traces/name`).
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Internal telemetry.
    pub telemetry: TelemetryConfig,
}

/// A configured component, checked against its factory.
#[derive(Clone)]
pub struct ResolvedComponent {
    /// Its ID.
    pub id: ComponentId,
    /// Its registration.
    pub registration: &'static Registration,
    /// Its config as YAML, known to parse (parsed again for each instance built).
    pub value: Value,
}

impl ResolvedComponent {
    /// The config path of this component (`exporters::sqlite`).
    pub fn path(&self) -> String {
        format!("{}::{}", self.registration.kind().section(), self.id)
    }
}

/// A resolved pipeline.
#[derive(Debug, Clone)]
pub struct ResolvedPipeline {
    /// Its ID (`traces`, `traces/name`).
    pub id: String,
    /// Receiver IDs.
    pub receivers: Vec<ComponentId>,
    /// Processor IDs, in order.
    pub processors: Vec<ComponentId>,
    /// Exporter IDs.
    pub exporters: Vec<ComponentId>,
}

/// A config that passed every check: what the service builds from.
#[derive(Clone)]
pub struct ResolvedConfig {
    /// Components by kind and ID (only those some pipeline or the service uses).
    pub components: BTreeMap<(Kind, ComponentId), ResolvedComponent>,
    /// Pipelines in ID order.
    pub pipelines: Vec<ResolvedPipeline>,
    /// Extensions to start, in the order listed.
    pub extensions: Vec<ComponentId>,
    /// Internal telemetry settings.
    pub telemetry: TelemetryConfig,
    /// The merged, expanded config, for `print-config`.
    pub raw: Value,
}

impl ResolvedConfig {
    /// The resolved component of `kind` with `id`.
    pub fn component(&self, kind: Kind, id: &ComponentId) -> Option<&ResolvedComponent> {
        self.components.get(&(kind, id.clone()))
    }
}

const TOP_LEVEL_KEYS: [&str; 6] = [
    "receivers",
    "processors",
    "exporters",
    "extensions",
    "connectors",
    "service",
];

/// Checks a merged, expanded config against the registry and returns what the service
/// builds from, or every error found.
pub fn resolve(raw: &Value) -> Result<ResolvedConfig, ConfigErrors> {
    let mut errors = Vec::new();
    let Some(root) = raw.as_mapping() else {
        return Err(ConfigError::new("", "the config must be a YAML mapping").into());
    };
    for key in root.keys() {
        let name = source::key_name(key);
        if !TOP_LEVEL_KEYS.contains(&name.as_str()) {
            errors.push(ConfigError::new(
                name.clone(),
                format!(
                    "unknown top-level key; expected one of {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            ));
        }
    }
    if let Some(connectors) = root.get("connectors").and_then(Value::as_mapping) {
        if !connectors.is_empty() {
            errors.push(ConfigError::new(
                "connectors",
                "connectors are not supported by Teletrace",
            ));
        }
    }

    // Every configured component: parse its ID and config.
    let mut configured: BTreeMap<(Kind, ComponentId), ResolvedComponent> = BTreeMap::new();
    // Components present in the config whose own config failed: references to them are
    // not reported again as "not configured".
    let mut failed: BTreeSet<(Kind, ComponentId)> = BTreeSet::new();
    for kind in Kind::ALL {
        let section = kind.section();
        let entries = match root.get(section) {
            None | Some(Value::Null) => continue,
            Some(Value::Mapping(m)) => m,
            Some(_) => {
                errors.push(ConfigError::new(
                    section,
                    "must be a mapping of component IDs to their configs",
                ));
                continue;
            }
        };
        for (key, value) in entries {
            let id_text = source::key_name(key);
            let path = format!("{section}::{id_text}");
            let id = match ComponentId::parse(&id_text) {
                Ok(id) => id,
                Err(e) => {
                    errors.push(ConfigError::new(path, e));
                    continue;
                }
            };
            let Some(registration) = registry::find(kind, id.type_name()) else {
                failed.insert((kind, id.clone()));
                errors.push(ConfigError::new(
                    path,
                    format!(
                        "unknown {kind} type {:?}; known {kind} types: {}",
                        id.type_name(),
                        registry::type_names(kind).join(", ")
                    ),
                ));
                continue;
            };
            if let Err(e) = registration.factory.parse_config(value) {
                errors.push(e.under(&path));
                failed.insert((kind, id));
                continue;
            }
            configured.insert(
                (kind, id.clone()),
                ResolvedComponent {
                    id,
                    registration,
                    value: value.clone(),
                },
            );
        }
    }

    // The service section.
    let service: ServiceConfig = match root.get("service") {
        None | Some(Value::Null) => {
            errors.push(ConfigError::new(
                "service",
                "missing: a config needs service::pipelines",
            ));
            ServiceConfig::default()
        }
        Some(v) => match serde_path_to_error::deserialize::<_, ServiceConfig>(v.clone()) {
            Ok(s) => s,
            Err(e) => {
                let inner = e.path().to_string().replace('.', "::");
                errors.push(ConfigError::new(
                    if inner == "::" || inner.is_empty() {
                        "service".to_string()
                    } else {
                        format!("service::{inner}")
                    },
                    e.into_inner().to_string(),
                ));
                ServiceConfig::default()
            }
        },
    };
    if let Err(e) = service.telemetry.metrics.endpoint() {
        errors.push(ConfigError::new("service::telemetry::metrics", e));
    }
    if !["debug", "info", "warn", "error"]
        .contains(&service.telemetry.logs.level.to_ascii_lowercase().as_str())
    {
        errors.push(ConfigError::new(
            "service::telemetry::logs::level",
            format!(
                "unknown level {:?}; expected debug, info, warn or error",
                service.telemetry.logs.level
            ),
        ));
    }
    if root.get("service").is_some() && service.pipelines.is_empty() {
        errors.push(ConfigError::new(
            "service::pipelines",
            "at least one pipeline is required",
        ));
    }

    let mut used: BTreeSet<(Kind, ComponentId)> = BTreeSet::new();
    let mut pipelines = Vec::new();
    for (pipeline_id, pipeline) in &service.pipelines {
        let path = format!("service::pipelines::{pipeline_id}");
        let (signal, _) = pipeline_id
            .split_once('/')
            .unwrap_or((pipeline_id.as_str(), ""));
        match signal {
            "traces" => {}
            "metrics" | "logs" | "profiles" => {
                errors.push(ConfigError::new(
                    path,
                    format!("signal {signal:?} is not supported: Teletrace handles traces"),
                ));
                continue;
            }
            other => {
                errors.push(ConfigError::new(
                    path,
                    format!("unknown signal {other:?}; pipeline IDs are traces or traces/NAME"),
                ));
                continue;
            }
        }
        if pipeline_id.ends_with('/') {
            errors.push(ConfigError::new(
                path.clone(),
                "the name after '/' is empty",
            ));
        }
        let mut resolve_list = |kind: Kind, list: &[String], field: &str| -> Vec<ComponentId> {
            let mut ids = Vec::new();
            let mut seen = BTreeSet::new();
            for text in list {
                let item_path = format!("{path}::{field}");
                let id = match ComponentId::parse(text) {
                    Ok(id) => id,
                    Err(e) => {
                        errors.push(ConfigError::new(item_path, e));
                        continue;
                    }
                };
                if !seen.insert(id.clone()) {
                    errors.push(ConfigError::new(
                        item_path,
                        format!(
                            "{kind} {id:?} is listed more than once",
                            id = id.to_string()
                        ),
                    ));
                    continue;
                }
                if failed.contains(&(kind, id.clone())) {
                    continue;
                }
                if !configured.contains_key(&(kind, id.clone())) {
                    errors.push(ConfigError::new(
                        item_path,
                        format!(
                            "{kind} \"{id}\" is not configured; add it under {}",
                            kind.section()
                        ),
                    ));
                    continue;
                }
                used.insert((kind, id.clone()));
                ids.push(id);
            }
            ids
        };
        let receivers = resolve_list(Kind::Receiver, &pipeline.receivers, "receivers");
        let processors = resolve_list(Kind::Processor, &pipeline.processors, "processors");
        let exporters = resolve_list(Kind::Exporter, &pipeline.exporters, "exporters");
        if pipeline.receivers.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}::receivers"),
                "a pipeline needs at least one receiver",
            ));
        }
        if pipeline.exporters.is_empty() {
            errors.push(ConfigError::new(
                format!("{path}::exporters"),
                "a pipeline needs at least one exporter",
            ));
        }
        pipelines.push(ResolvedPipeline {
            id: pipeline_id.clone(),
            receivers,
            processors,
            exporters,
        });
    }

    let mut extensions = Vec::new();
    for text in &service.extensions {
        let path = "service::extensions";
        match ComponentId::parse(text) {
            Err(e) => errors.push(ConfigError::new(path, e)),
            Ok(id) if failed.contains(&(Kind::Extension, id.clone())) => {}
            Ok(id) if !configured.contains_key(&(Kind::Extension, id.clone())) => {
                errors.push(ConfigError::new(
                    path,
                    format!("extension \"{id}\" is not configured; add it under extensions"),
                ))
            }
            Ok(id) if extensions.contains(&id) => errors.push(ConfigError::new(
                path,
                format!("extension \"{id}\" is listed more than once"),
            )),
            Ok(id) => {
                used.insert((Kind::Extension, id.clone()));
                extensions.push(id);
            }
        }
    }

    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    configured.retain(|key, _| used.contains(key));
    Ok(ResolvedConfig {
        components: configured,
        pipelines,
        extensions,
        telemetry: service.telemetry,
        raw: raw.clone(),
    })
}

/// For sections whose presence enables something, as `protocols: {grpc:}` does in the
/// collector: an empty (null) value means "present, with defaults". Use with
/// `#[serde(default, deserialize_with = "teletrace_core::config::present_or_default")]`
/// on an `Option<T>` field.
pub fn present_or_default<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}
