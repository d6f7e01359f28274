//! The `sqlite` exporter's config: every key, its default, and the checks serde cannot
//! express.

use serde::{Deserialize, Deserializer};
use std::time::Duration;
use teletrace_core::config::duration;
use teletrace_core::exporter_helper::{
    ExporterHelperSettings, QueueKeys, QueueSettings, RetrySettings,
};
use teletrace_core::ComponentConfig;

/// Journal modes SQLite accepts (`PRAGMA journal_mode`).
pub const JOURNAL_MODES: &[&str] = &["wal", "delete", "truncate", "persist", "memory", "off"];

/// Synchronous levels SQLite accepts (`PRAGMA synchronous`).
pub const SYNCHRONOUS_LEVELS: &[&str] = &["off", "normal", "full", "extra"];

/// Config of the `sqlite` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SqliteConfig {
    /// Database file; created with its parent directory on start when missing.
    pub path: String,
    /// Spans whose start time is older than this are deleted, with their attributes,
    /// events and links. `0` keeps everything.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// How often the retention task looks for spans to delete.
    #[serde(with = "duration")]
    pub retention_check_interval: Duration,
    /// `PRAGMA journal_mode`: `wal` (default), `delete`, `truncate`, `persist`, `memory`, `off`.
    pub journal_mode: String,
    /// How long a statement waits for a lock held by another connection before failing.
    #[serde(with = "duration")]
    pub busy_timeout: Duration,
    /// `PRAGMA synchronous`: `off`, `normal` (default), `full`, `extra`.
    pub synchronous: String,
    /// Size of the read connection pool serving queries.
    pub max_connections: u32,
    /// Time limit of one attempt to store a batch; `0` (the default) is none: SQLite's
    /// own `busy_timeout` bounds the waits for a lock.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// The exporter helper's `sending_queue`, with this exporter's defaults
    /// ([`default_queue`]) for the keys a config leaves out.
    #[serde(deserialize_with = "queue_over_defaults")]
    pub sending_queue: QueueSettings,
    /// The exporter helper's `retry_on_failure` (the collector's defaults): a locked or
    /// full database is retried with backoff.
    pub retry_on_failure: RetrySettings,
}

/// The `sqlite` exporter's `sending_queue` defaults. Two consumers: one batch is prepared
/// while the other is written on the single writer connection (more would only hold more
/// batches in memory). One batch waiting (enough to keep both busy; each one more holds
/// a batch in memory), and a full queue makes the sender wait
/// (`block_on_overflow`) rather than drop: a local store pushes back on its receivers.
pub fn default_queue() -> QueueSettings {
    QueueSettings {
        num_consumers: 2,
        queue_size: 1,
        block_on_overflow: true,
        ..QueueSettings::default()
    }
}

fn queue_over_defaults<'de, D: Deserializer<'de>>(d: D) -> Result<QueueSettings, D::Error> {
    QueueKeys::deserialize(d).map(|keys| keys.over(default_queue()))
}

impl SqliteConfig {
    /// The exporter helper's settings from `timeout`, `sending_queue`, `retry_on_failure`.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings {
            timeout: self.timeout,
            queue: self.sending_queue.clone(),
            retry: self.retry_on_failure.clone(),
        }
    }
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            path: "embedded_spans.db".into(),
            retention: Duration::ZERO,
            retention_check_interval: Duration::from_secs(60),
            journal_mode: "wal".into(),
            busy_timeout: Duration::from_secs(5),
            synchronous: "normal".into(),
            max_connections: 4,
            timeout: Duration::ZERO,
            sending_queue: default_queue(),
            retry_on_failure: RetrySettings::default(),
        }
    }
}

impl ComponentConfig for SqliteConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.path.trim().is_empty() {
            return Err(("path".into(), "must not be empty".into()));
        }
        if !JOURNAL_MODES.contains(&self.journal_mode.to_ascii_lowercase().as_str()) {
            return Err((
                "journal_mode".into(),
                format!(
                    "unknown journal mode {:?}; expected one of {}",
                    self.journal_mode,
                    JOURNAL_MODES.join(", ")
                ),
            ));
        }
        if !SYNCHRONOUS_LEVELS.contains(&self.synchronous.to_ascii_lowercase().as_str()) {
            return Err((
                "synchronous".into(),
                format!(
                    "unknown synchronous level {:?}; expected one of {}",
                    self.synchronous,
                    SYNCHRONOUS_LEVELS.join(", ")
                ),
            ));
        }
        if self.max_connections == 0 {
            return Err(("max_connections".into(), "must be at least 1".into()));
        }
        if !self.retention.is_zero() && self.retention_check_interval.is_zero() {
            return Err((
                "retention_check_interval".into(),
                "must be greater than 0 when retention is set".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<SqliteConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<SqliteConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_readme() {
        let config = parse("").unwrap();
        assert_eq!(config, SqliteConfig::default());
        assert_eq!(config.path, "embedded_spans.db");
        assert_eq!(config.retention, Duration::ZERO);
        assert_eq!(config.retention_check_interval, Duration::from_secs(60));
        assert_eq!(config.journal_mode, "wal");
        assert_eq!(config.busy_timeout, Duration::from_secs(5));
        assert_eq!(config.synchronous, "normal");
        assert_eq!(config.max_connections, 4);
        assert_eq!(config.timeout, Duration::ZERO);
        assert_eq!(config.sending_queue, default_queue());
        assert!(config.sending_queue.enabled && config.sending_queue.block_on_overflow);
        assert_eq!(
            (
                config.sending_queue.num_consumers,
                config.sending_queue.queue_size
            ),
            (2, 1)
        );
        assert_eq!(config.retry_on_failure, RetrySettings::default());
    }

    #[test]
    fn a_sending_queue_key_keeps_the_sqlite_defaults_of_the_others() {
        let config = parse("sending_queue: {num_consumers: 1}").unwrap();
        assert_eq!(config.sending_queue.num_consumers, 1);
        assert_eq!(config.sending_queue.queue_size, 1);
        assert!(config.sending_queue.block_on_overflow);
        let off = parse("sending_queue: {enabled: false}").unwrap();
        assert!(!off.sending_queue.enabled);
        let e = parse("sending_queue: {num_consumers: many}").unwrap_err();
        assert!(e.contains("sending_queue"), "{e}");
        let e = parse("retry_on_failure: {multiplier: x}").unwrap_err();
        assert!(e.contains("retry_on_failure"), "{e}");
    }

    #[test]
    fn parses_go_durations_and_checks_values() {
        let config = parse("retention: 168h\nbusy_timeout: 250ms\njournal_mode: WAL").unwrap();
        assert_eq!(config.retention, Duration::from_secs(168 * 3600));
        assert_eq!(config.busy_timeout, Duration::from_millis(250));
        assert!(parse("journal_mode: nope")
            .unwrap_err()
            .contains("journal_mode"));
        assert!(parse("synchronous: sometimes")
            .unwrap_err()
            .contains("synchronous"));
        assert!(parse("max_connections: 0")
            .unwrap_err()
            .contains("max_connections"));
        assert!(parse("path: ''").unwrap_err().contains("path"));
        assert!(parse("retention: 1h\nretention_check_interval: 0")
            .unwrap_err()
            .contains("retention_check_interval"));
        assert!(parse("colour: blue").is_err());
    }
}
