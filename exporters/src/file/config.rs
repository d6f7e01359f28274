//! The `file` exporter's config, with the collector's `fileexporter` keys and defaults.

use serde::Deserialize;
use std::time::Duration;
use teletrace_core::config::duration;
use teletrace_core::ComponentConfig;

/// How each batch is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One OTLP/JSON `ExportTraceServiceRequest` per line.
    #[default]
    Json,
    /// Each encoded `ExportTraceServiceRequest` prefixed by its length (4 bytes, big-endian).
    Proto,
}

/// `rotation`: size-based rotation of the file, as the collector's (lumberjack) does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationConfig {
    /// Size in MiB past which the file is rotated (default 100).
    pub max_megabytes: u64,
    /// Rotated files older than this many days are deleted (default 0: kept).
    pub max_days: u64,
    /// Rotated files kept, newest first (default 100; 0: all).
    pub max_backups: u64,
    /// Timestamps in rotated file names in local time (default false: UTC).
    pub localtime: bool,
}

impl Default for RotationConfig {
    fn default() -> Self {
        RotationConfig {
            max_megabytes: 100,
            max_days: 0,
            max_backups: 100,
            localtime: false,
        }
    }
}

/// `group_by`: accepted so that collector configs parse; only `enabled: false` is supported.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupByConfig {
    /// Must stay false.
    pub enabled: bool,
    /// Ignored.
    pub resource_attribute: String,
    /// Ignored.
    pub max_open_files: usize,
}

/// Config of the `file` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// The file written (required). Its directory is created if missing.
    pub path: String,
    /// `json` (default) or `proto`.
    pub format: Format,
    /// `zstd` compresses each message; empty (default) writes plain.
    pub compression: String,
    /// Size-based rotation; absent (default): the file grows without limit.
    pub rotation: Option<RotationConfig>,
    /// How often buffered writes reach the file (default 1s; 0: after every batch).
    #[serde(with = "duration")]
    pub flush_interval: Duration,
    /// Only `true` (the default here): a restart appends, never truncates.
    pub append: bool,
    /// Not supported beyond `enabled: false`.
    pub group_by: GroupByConfig,
}

impl Default for FileConfig {
    fn default() -> Self {
        FileConfig {
            path: String::new(),
            format: Format::Json,
            compression: String::new(),
            rotation: None,
            flush_interval: Duration::from_secs(1),
            append: true,
            group_by: GroupByConfig::default(),
        }
    }
}

impl FileConfig {
    /// True when each message is zstd-compressed.
    pub fn zstd(&self) -> bool {
        self.compression == "zstd"
    }
}

impl ComponentConfig for FileConfig {
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
        if !self.append {
            return Err((
                "append".into(),
                "false is not supported: the file exporter always appends (a restart never truncates)"
                    .into(),
            ));
        }
        if self.group_by.enabled {
            return Err((
                "group_by.enabled".into(),
                "grouping spans into one file per resource attribute is not supported".into(),
            ));
        }
        if let Some(rotation) = &self.rotation {
            if rotation.max_megabytes == 0 {
                return Err(("rotation.max_megabytes".into(), "must be at least 1".into()));
            }
        }
        Ok(())
    }
}
