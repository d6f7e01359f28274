//! The `batch` processor's config: the OpenTelemetry Collector's batchprocessor keys, with
//! the same defaults.

use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;
use teletrace_core::ComponentConfig;

/// Default `send_batch_size`, as in the collector.
pub const DEFAULT_SEND_BATCH_SIZE: u32 = 8192;
/// Default `timeout`, as in the collector.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);
/// Default `metadata_cardinality_limit`, as in the collector.
pub const DEFAULT_METADATA_CARDINALITY_LIMIT: u32 = 1000;

/// Config of the `batch` processor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Number of spans after which a batch is sent regardless of the timeout. `0` sends
    /// every incoming batch at once (subject only to `send_batch_max_size`).
    pub send_batch_size: u32,
    /// Time after the first span of a batch at which the batch is sent regardless of its
    /// size. `0` sends every incoming batch at once.
    #[serde(with = "teletrace_core::config::duration")]
    pub timeout: Duration,
    /// Upper limit on the spans of a sent batch; `0` means no limit. When set, it must be
    /// greater than or equal to `send_batch_size`.
    pub send_batch_max_size: u32,
    /// Accepted for compatibility with collector configs. The collector keeps one batch
    /// per distinct combination of these client-metadata values; Teletrace's pipeline
    /// carries no request metadata, so every span has the same (absent) values and goes
    /// into the one batch, which is what the collector does for requests without them.
    pub metadata_keys: Vec<String>,
    /// Accepted for compatibility: the collector's limit on distinct metadata
    /// combinations. With no metadata in the pipeline there is only ever one.
    pub metadata_cardinality_limit: u32,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            send_batch_size: DEFAULT_SEND_BATCH_SIZE,
            timeout: DEFAULT_TIMEOUT,
            send_batch_max_size: 0,
            metadata_keys: Vec::new(),
            metadata_cardinality_limit: DEFAULT_METADATA_CARDINALITY_LIMIT,
        }
    }
}

impl ComponentConfig for BatchConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.send_batch_max_size > 0 && self.send_batch_max_size < self.send_batch_size {
            return Err((
                "send_batch_max_size".into(),
                format!(
                    "must be 0 (no limit) or greater than or equal to send_batch_size ({}), got {}",
                    self.send_batch_size, self.send_batch_max_size
                ),
            ));
        }
        let mut seen = HashSet::new();
        for key in &self.metadata_keys {
            let lower = key.to_lowercase();
            if !seen.insert(lower.clone()) {
                return Err((
                    "metadata_keys".into(),
                    format!("duplicate entry {lower:?} (entries are case-insensitive)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<BatchConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<BatchConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_collector() {
        let c = parse("").unwrap();
        assert_eq!(c, BatchConfig::default());
        assert_eq!(c.send_batch_size, 8192);
        assert_eq!(c.timeout, Duration::from_millis(200));
        assert_eq!(c.send_batch_max_size, 0);
        assert!(c.metadata_keys.is_empty());
        assert_eq!(c.metadata_cardinality_limit, 1000);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            "send_batch_size: 100\ntimeout: 5s\nsend_batch_max_size: 200\n\
             metadata_keys: [tenant]\nmetadata_cardinality_limit: 10\n",
        )
        .unwrap();
        assert_eq!(c.send_batch_size, 100);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.send_batch_max_size, 200);
        assert_eq!(c.metadata_keys, ["tenant"]);
        assert_eq!(c.metadata_cardinality_limit, 10);
    }

    #[test]
    fn max_size_below_batch_size_names_the_key() {
        let e = parse("send_batch_size: 100\nsend_batch_max_size: 50").unwrap_err();
        assert!(e.starts_with("send_batch_max_size: "), "{e}");
        assert!(parse("send_batch_size: 100\nsend_batch_max_size: 100").is_ok());
        assert!(parse("send_batch_size: 100\nsend_batch_max_size: 0").is_ok());
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("timeout: 5 parsecs").unwrap_err();
        assert!(e.starts_with("timeout: "), "{e}");
        let e = parse("send_batch_size: -1").unwrap_err();
        assert!(e.starts_with("send_batch_size: "), "{e}");
        let e = parse("metadata_keys: [Tenant, tenant]").unwrap_err();
        assert!(e.starts_with("metadata_keys: "), "{e}");
        let e = parse("send_batch_sise: 10").unwrap_err();
        assert!(e.contains("send_batch_sise"), "{e}");
    }
}
