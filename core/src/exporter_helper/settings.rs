//! Config of the exporter helper, with the collector's keys and defaults.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `sending_queue::sizer`: the unit `queue_size` is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Batches (requests), the collector's default.
    #[default]
    Requests,
    /// Spans.
    Items,
    /// Bytes of the batch as an encoded OTLP `ExportTraceServiceRequest`.
    Bytes,
}

impl Sizer {
    /// The unit's name in metric descriptions and messages.
    pub fn unit(self) -> &'static str {
        match self {
            Sizer::Requests => "batches",
            Sizer::Items => "spans",
            Sizer::Bytes => "bytes",
        }
    }
}

/// `sending_queue`: batches wait here for a consumer to send them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// Queue on (default true). Off: `consume` sends in the caller's task.
    pub enabled: bool,
    /// Concurrent senders (default 10).
    pub num_consumers: usize,
    /// What `queue_size` counts: `requests` (default), `items` (spans) or `bytes`.
    pub sizer: Sizer,
    /// Capacity of the queue in `sizer` units (default 1000); a full queue is a retryable
    /// error, unless `block_on_overflow`.
    pub queue_size: usize,
    /// A batch that does not fit waits for room instead of being refused (default false).
    pub block_on_overflow: bool,
    /// A directory: the queue lives on disk there and survives restarts.
    pub storage: Option<PathBuf>,
}

/// The `sending_queue` keys a config sets, each `None` when absent: for exporters whose
/// own defaults differ from the collector's ([`QueueSettings::default`]), so that a
/// config setting one key keeps the exporter's defaults for the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueKeys {
    enabled: Option<bool>,
    num_consumers: Option<usize>,
    sizer: Option<Sizer>,
    queue_size: Option<usize>,
    block_on_overflow: Option<bool>,
    storage: Option<PathBuf>,
}

impl QueueKeys {
    /// `defaults` with the keys that were set replaced.
    pub fn over(self, defaults: QueueSettings) -> QueueSettings {
        QueueSettings {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            num_consumers: self.num_consumers.unwrap_or(defaults.num_consumers),
            sizer: self.sizer.unwrap_or(defaults.sizer),
            queue_size: self.queue_size.unwrap_or(defaults.queue_size),
            block_on_overflow: self.block_on_overflow.unwrap_or(defaults.block_on_overflow),
            storage: self.storage.or(defaults.storage),
        }
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            enabled: true,
            num_consumers: 10,
            sizer: Sizer::Requests,
            queue_size: 1000,
            block_on_overflow: false,
            storage: None,
        }
    }
}

/// `retry_on_failure`: exponential backoff for retryable errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Retry on (default true).
    pub enabled: bool,
    /// First wait (default 5s).
    #[serde(with = "crate::config::duration")]
    pub initial_interval: Duration,
    /// Longest wait (default 30s).
    #[serde(with = "crate::config::duration")]
    pub max_interval: Duration,
    /// Give up after this long (default 300s; 0 = never).
    #[serde(with = "crate::config::duration")]
    pub max_elapsed_time: Duration,
    /// Growth of the wait per attempt (default 1.5).
    pub multiplier: f64,
    /// Jitter: the wait is drawn from `[w*(1-f), w*(1+f)]` (default 0.5).
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// Everything the helper needs, gathered from an exporter's config fields `timeout`,
/// `sending_queue` and `retry_on_failure`.
#[derive(Debug, Clone, PartialEq)]
pub struct ExporterHelperSettings {
    /// Per-request timeout (the collector's default is 5s).
    pub timeout: Duration,
    /// `sending_queue`.
    pub queue: QueueSettings,
    /// `retry_on_failure`.
    pub retry: RetrySettings,
}

impl Default for ExporterHelperSettings {
    fn default() -> Self {
        ExporterHelperSettings {
            timeout: Duration::from_secs(5),
            queue: QueueSettings::default(),
            retry: RetrySettings::default(),
        }
    }
}
