//! The `resource_detection` processor's config: the OpenTelemetry Collector's
//! resourcedetectionprocessor keys for the `env` and `system` detectors.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use teletrace_core::ComponentConfig;

/// Default `timeout`, as in the collector.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The detectors Teletrace provides.
pub const SUPPORTED_DETECTORS: [&str; 2] = ["env", "system"];

/// The `system` detector's resource attributes that Teletrace produces.
pub const SYSTEM_ATTRIBUTES: [&str; 7] = [
    "host.name",
    "host.id",
    "host.arch",
    "os.type",
    "os.description",
    "os.name",
    "os.version",
];

/// The collector's other `system` resource attributes: accepted in config, not produced.
pub const SYSTEM_ATTRIBUTES_NOT_PRODUCED: [&str; 10] = [
    "host.cpu.cache.l2.size",
    "host.cpu.family",
    "host.cpu.model.id",
    "host.cpu.model.name",
    "host.cpu.stepping",
    "host.cpu.vendor.id",
    "host.interface",
    "host.ip",
    "host.mac",
    "os.build.id",
];

/// Config of the `resource_detection` processor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResourceDetectionConfig {
    /// Detectors to run, in order; the first to set an attribute wins.
    pub detectors: Vec<String>,
    /// Time allowed for detection at start.
    #[serde(with = "teletrace_core::config::duration")]
    pub timeout: Duration,
    /// Whether detected attributes replace attributes the resource already has.
    #[serde(rename = "override")]
    pub override_: bool,
    /// Deprecated in the collector: when set, only these detected attributes are added.
    pub attributes: Option<Vec<String>>,
    /// Settings of the `system` detector.
    pub system: SystemConfig,
}

impl Default for ResourceDetectionConfig {
    fn default() -> Self {
        ResourceDetectionConfig {
            detectors: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            override_: true,
            attributes: None,
            system: SystemConfig::default(),
        }
    }
}

/// The `system` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SystemConfig {
    /// Where `host.name` comes from, tried in order: `dns`, `os`, `cname`, `lookup`.
    pub hostname_sources: Vec<String>,
    /// Which attributes the detector sets: `{host.arch: {enabled: true}, ...}`.
    pub resource_attributes: BTreeMap<String, AttributeToggle>,
}

impl Default for SystemConfig {
    fn default() -> Self {
        SystemConfig {
            hostname_sources: vec!["dns".into(), "os".into()],
            resource_attributes: BTreeMap::new(),
        }
    }
}

/// `{enabled: bool}` for one resource attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeToggle {
    /// Whether the detector sets the attribute.
    pub enabled: bool,
}

impl SystemConfig {
    /// Whether the `system` detector sets `name`: the config's toggle, else the collector's
    /// default (only `host.name` and `os.type` are on).
    pub fn enabled(&self, name: &str) -> bool {
        self.resource_attributes
            .get(name)
            .map_or(matches!(name, "host.name" | "os.type"), |t| t.enabled)
    }
}

impl ComponentConfig for ResourceDetectionConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (i, d) in self.detectors.iter().enumerate() {
            if !SUPPORTED_DETECTORS.contains(&d.as_str()) {
                return Err((
                    format!("detectors[{i}]"),
                    format!("unsupported detector {d:?}: supported are {SUPPORTED_DETECTORS:?}"),
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(("timeout".into(), "must be greater than 0".into()));
        }
        for s in &self.system.hostname_sources {
            if !matches!(s.as_str(), "dns" | "os" | "cname" | "lookup") {
                return Err((
                    "system.hostname_sources".into(),
                    format!("invalid value {s:?}: expected dns, os, cname or lookup"),
                ));
            }
        }
        for name in self.system.resource_attributes.keys() {
            if !SYSTEM_ATTRIBUTES.contains(&name.as_str())
                && !SYSTEM_ATTRIBUTES_NOT_PRODUCED.contains(&name.as_str())
            {
                return Err((
                    "system.resource_attributes".into(),
                    format!("unknown resource attribute {name:?}"),
                ));
            }
        }
        Ok(())
    }
}
