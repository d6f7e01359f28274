//! The `file` receiver's config.

use serde::Deserialize;
use std::time::Duration;
use teletrace_core::config::duration;
use teletrace_core::ComponentConfig;

/// How the file is encoded (the `file` exporter's `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OTLP/JSON, one request per line (length-prefixed when compressed).
    #[default]
    Json,
    /// Length-prefixed OTLP protobuf requests.
    Proto,
}

/// Where reading starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Rotated files (oldest first), then the file from its start.
    #[default]
    Beginning,
    /// Only what is appended to the file after the receiver starts (implies nothing
    /// rotated is read).
    End,
}

/// Config of the `file` receiver.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileReceiverConfig {
    /// The file the `file` exporter writes (its `path`). Required.
    pub path: String,
    /// `json` (default) or `proto`, as the exporter's `format`.
    pub format: Format,
    /// `zstd` when the exporter compressed; empty (default) otherwise.
    pub compression: String,
    /// Also read the rotated files `<name>-<timestamp><ext>` next to `path`, oldest first,
    /// before `path` (default true).
    pub include_rotated: bool,
    /// `beginning` (default) or `end`.
    pub start_at: StartAt,
    /// Keep reading as the file grows, and on into the new file after a rotation
    /// (default false: read what is there, then stop).
    pub follow: bool,
    /// How often a followed file is checked for new data (default 200ms).
    #[serde(with = "duration")]
    pub poll_interval: Duration,
}

impl Default for FileReceiverConfig {
    fn default() -> Self {
        FileReceiverConfig {
            path: String::new(),
            format: Format::Json,
            compression: String::new(),
            include_rotated: true,
            start_at: StartAt::Beginning,
            follow: false,
            poll_interval: Duration::from_millis(200),
        }
    }
}

impl ComponentConfig for FileReceiverConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.path.trim().is_empty() {
            return Err(("path".into(), "is required".into()));
        }
        if !matches!(self.compression.as_str(), "" | "zstd") {
            return Err((
                "compression".into(),
                format!(
                    "unsupported compression {:?}: supported is \"zstd\" (or none)",
                    self.compression
                ),
            ));
        }
        if self.follow && self.poll_interval.is_zero() {
            return Err(("poll_interval".into(), "must be positive".into()));
        }
        Ok(())
    }
}
