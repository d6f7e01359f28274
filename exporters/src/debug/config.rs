//! The `debug` exporter's config: the OpenTelemetry Collector's debugexporter keys, with
//! the same defaults.

use serde::{Deserialize, Deserializer};
use std::fmt;
use teletrace_core::ComponentConfig;

/// How much the exporter prints per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// One summary line per batch: resource spans and spans.
    #[default]
    Basic,
    /// The summary, then one line per span.
    Normal,
    /// The summary, then everything in every span, on several lines each.
    Detailed,
}

impl fmt::Display for Verbosity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verbosity::Basic => "basic",
            Verbosity::Normal => "normal",
            Verbosity::Detailed => "detailed",
        })
    }
}

impl<'de> Deserialize<'de> for Verbosity {
    /// Case-insensitive, as in the collector.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.to_ascii_lowercase().as_str() {
            "basic" => Ok(Verbosity::Basic),
            "normal" => Ok(Verbosity::Normal),
            "detailed" => Ok(Verbosity::Detailed),
            _ => Err(serde::de::Error::custom(format!(
                "verbosity level {text:?} is not supported; expected basic, normal or detailed"
            ))),
        }
    }
}

/// Config of the `debug` exporter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// `basic` (default), `normal` or `detailed`.
    pub verbosity: Verbosity,
    /// Batches printed in full each second before sampling starts.
    pub sampling_initial: u32,
    /// After `sampling_initial` batches in a second, every Mth batch is printed; `1`
    /// prints all of them (sampling off), `0` prints none.
    pub sampling_thereafter: u32,
    /// `true` (default): output goes through Teletrace's own log (`tracing`, stderr, at
    /// info level, subject to `service::telemetry::logs`). `false`: plain text on stdout.
    pub use_internal_logger: bool,
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
            use_internal_logger: true,
        }
    }
}

impl ComponentConfig for DebugConfig {}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<DebugConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<DebugConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_collector() {
        let c = parse("").unwrap();
        assert_eq!(c, DebugConfig::default());
        assert_eq!(c.verbosity, Verbosity::Basic);
        assert_eq!((c.sampling_initial, c.sampling_thereafter), (2, 1));
        assert!(c.use_internal_logger);
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            "verbosity: Detailed\nsampling_initial: 5\nsampling_thereafter: 200\n\
             use_internal_logger: false",
        )
        .unwrap();
        assert_eq!(c.verbosity, Verbosity::Detailed);
        assert_eq!((c.sampling_initial, c.sampling_thereafter), (5, 200));
        assert!(!c.use_internal_logger);
        assert_eq!(
            parse("verbosity: normal").unwrap().verbosity,
            Verbosity::Normal
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("verbosity: loud").unwrap_err();
        assert!(e.starts_with("verbosity: "), "{e}");
        let e = parse("sampling_initial: -1").unwrap_err();
        assert!(e.starts_with("sampling_initial: "), "{e}");
        let e = parse("loglevel: debug").unwrap_err();
        assert!(e.contains("loglevel"), "{e}");
    }
}
