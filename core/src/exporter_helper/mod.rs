//! The exporter helper: the sending queue, retry with backoff and per-request timeout that
//! every exporter sending over a network shares, with the OpenTelemetry Collector's
//! `exporterhelper` config keys and defaults. See `README.md` in this folder.
//!
//! An exporter implements [`Sender`] (one attempt to deliver one batch) and wraps it in a
//! [`QueuedRetryExporter`], which is the [`Exporter`] the service runs. Config structs
//! ([`QueueSettings`], [`RetrySettings`], [`timeout`](ExporterHelperSettings::timeout))
//! are meant to be fields of the exporter's own config, under the collector's key names
//! `sending_queue`, `retry_on_failure` and `timeout`.
//!
//! With the queue on, `consume` puts the batch in the queue and returns (a full queue is a
//! retryable error, or with `block_on_overflow` a wait for room) and `num_consumers` tasks
//! send from it; with the queue off, `consume`
//! sends with retries in the caller's task and returns the final result.

mod backoff;
mod journal;
mod metrics;
mod queue;
mod settings;

pub use metrics::{
    METRIC_ENQUEUE_FAILED_SPANS, METRIC_QUEUE_CAPACITY, METRIC_QUEUE_SIZE,
    METRIC_SEND_FAILED_SPANS, METRIC_SENT_SPANS,
};
pub use settings::{ExporterHelperSettings, QueueKeys, QueueSettings, RetrySettings, Sizer};

use crate::component::{ComponentError, ComponentId, Exporter, Host, Lifecycle};
use crate::consumer::{ConsumeError, Consumer};
use crate::storage::TraceReader;
use crate::telemetry::Metrics;
use crate::traces::Traces;
use async_trait::async_trait;
use backoff::Backoff;
use metrics::HelperMetrics;
use queue::BatchQueue;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

    /// Called once when shutdown begins, before the sending queue drains: a sender that
    /// holds data back (a bulk buffer waiting for its flush interval) sends it now and
    /// stops holding back. The default does nothing.
    fn stopping(&self) {}

    /// The reader over what the backend stores, for senders that can read back.
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        None
    }
}

/// How the delivery of one batch ended.
enum Delivery {
    /// The backend took it (perhaps partly: the error says how much it rejected).
    Done(Result<(), ConsumeError>),
    /// Shutdown stopped the retries; the batch was not delivered.
    Interrupted(ConsumeError),
}

/// What the queue consumers and `consume` share.
struct Inner<S> {
    id: String,
    settings: ExporterHelperSettings,
    sender: Arc<S>,
    metrics: HelperMetrics,
    /// Cancelled at shutdown: retries stop waiting.
    stop: CancellationToken,
}

impl<S: Sender> Inner<S> {
    /// One attempt within the timeout (a timeout of zero means none).
    async fn attempt(&self, traces: Traces) -> Result<(), ConsumeError> {
        if self.settings.timeout.is_zero() {
            return self.sender.send(traces).await;
        }
        match tokio::time::timeout(self.settings.timeout, self.sender.send(traces)).await {
            Ok(result) => result,
            Err(_) => Err(ConsumeError::retryable(format!(
                "request timed out after {:?}",
                self.settings.timeout
            ))),
        }
    }

    /// Sends `traces` with retries, and counts the outcome unless interrupted.
    async fn deliver(&self, traces: Traces) -> Delivery {
        let spans = traces.span_count() as u64;
        let retry = &self.settings.retry;
        let mut backoff = Backoff::new(retry);
        let start = Instant::now();
        let result = loop {
            let err = match self.attempt(traces.clone()).await {
                Ok(()) => break Ok(()),
                Err(err) => err,
            };
            let ConsumeError::Retryable { retry_after, .. } = &err else {
                break Err(err);
            };
            if !retry.enabled {
                break Err(err);
            }
            if self.stop.is_cancelled() {
                return Delivery::Interrupted(err);
            }
            let elapsed = start.elapsed();
            let Some(mut wait) = backoff.next(elapsed, rand::random::<f64>()) else {
                break Err(give_up(err, elapsed));
            };
            if let Some(after) = retry_after.filter(|after| *after > wait) {
                if !backoff.within_budget(elapsed, after) {
                    break Err(give_up(err, elapsed));
                }
                wait = after;
            }
            tracing::debug!(
                exporter = %self.id,
                error = %err,
                ?wait,
                "exporting failed; will retry"
            );
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.stop.cancelled() => return Delivery::Interrupted(err),
            }
        };
        match &result {
            Ok(()) => self.metrics.sent.add(spans),
            Err(ConsumeError::PartiallyRejected {
                rejected_spans,
                message,
            }) => {
                let rejected = (*rejected_spans).min(spans);
                self.metrics.sent.add(spans - rejected);
                self.metrics.send_failed.add(rejected);
                tracing::warn!(exporter = %self.id, rejected, "backend rejected spans: {message}");
            }
            Err(err) => {
                self.metrics.send_failed.add(spans);
                tracing::error!(
                    exporter = %self.id,
                    error = %err,
                    dropped_spans = spans,
                    "exporting failed; dropping data"
                );
            }
        }
        Delivery::Done(result)
    }

    /// A queue consumer: sends batches until the queue is closed and drained, or until
    /// shutdown interrupts a persistent queue (what is left stays on disk).
    async fn consume_queue(self: Arc<Self>, queue: Arc<BatchQueue>) {
        while let Some(entry) = queue.pop().await {
            let spans = entry.traces.span_count() as u64;
            match self.deliver(entry.traces).await {
                Delivery::Done(_) => queue.finish(entry.seq, true).await,
                Delivery::Interrupted(_) if queue.is_persistent() => {
                    queue.finish(entry.seq, false).await;
                    break;
                }
                Delivery::Interrupted(err) => {
                    self.metrics.send_failed.add(spans);
                    tracing::error!(
                        exporter = %self.id,
                        error = %err,
                        dropped_spans = spans,
                        "exporting failed at shutdown; dropping data"
                    );
                    queue.finish(entry.seq, true).await;
                }
            }
        }
    }
}

fn give_up(err: ConsumeError, elapsed: std::time::Duration) -> ConsumeError {
    ConsumeError::Retryable {
        message: format!("no more retries left after {elapsed:?}: {err}"),
        retry_after: None,
    }
}

/// Checks the settings, naming the offending key.
fn validate(settings: &ExporterHelperSettings) -> Result<(), ComponentError> {
    let q = &settings.queue;
    let r = &settings.retry;
    if q.enabled && q.num_consumers == 0 {
        return Err(ComponentError::new(
            "sending_queue::num_consumers: must be at least 1",
        ));
    }
    if q.enabled && q.queue_size == 0 {
        return Err(ComponentError::new(
            "sending_queue::queue_size: must be at least 1",
        ));
    }
    if !(0.0..=1.0).contains(&r.randomization_factor) {
        return Err(ComponentError::new(format!(
            "retry_on_failure::randomization_factor: must be between 0 and 1, got {}",
            r.randomization_factor
        )));
    }
    if !(r.multiplier.is_finite() && r.multiplier > 0.0) {
        return Err(ComponentError::new(format!(
            "retry_on_failure::multiplier: must be positive, got {}",
            r.multiplier
        )));
    }
    if r.enabled && r.initial_interval.is_zero() {
        return Err(ComponentError::new(
            "retry_on_failure::initial_interval: must be positive",
        ));
    }
    Ok(())
}

/// The directory of exporter `id`'s persistent queue inside `storage`: `exporter_<id>`
/// with every byte other than ASCII letters, digits, `-`, `_` and `.` written `%XX`.
pub fn queue_directory(storage: &std::path::Path, id: &ComponentId) -> PathBuf {
    let mut name = String::from("exporter_");
    for b in id.to_string().bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    storage.join(name)
}

/// An exporter made of a [`Sender`] behind the sending queue and the retry loop.
pub struct QueuedRetryExporter<S: Sender> {
    inner: Arc<Inner<S>>,
    queue: Option<Arc<BatchQueue>>,
    consumers: Mutex<Vec<JoinHandle<()>>>,
    sender: Arc<S>,
}

impl<S: Sender> QueuedRetryExporter<S> {
    /// Wraps `sender`. Validates the settings and, with `sending_queue::storage` set,
    /// opens the persistent queue (in [`queue_directory`]) and loads what a previous run
    /// left unacknowledged.
    pub fn new(
        id: ComponentId,
        settings: ExporterHelperSettings,
        sender: S,
        metrics: &Metrics,
    ) -> Result<Self, ComponentError> {
        validate(&settings)?;
        let label = id.to_string();
        let q = &settings.queue;
        let queue = if q.enabled {
            let size = HelperMetrics::queue_gauges(metrics, &label, q.queue_size, q.sizer.unit());
            Some(Arc::new(match &q.storage {
                None => BatchQueue::in_memory(q.queue_size, q.sizer, size),
                Some(storage) => {
                    let dir = queue_directory(storage, &id);
                    BatchQueue::persistent(
                        &dir,
                        q.queue_size,
                        q.sizer,
                        size,
                        queue::SEGMENT_BYTES,
                    )
                        .map_err(|e| {
                            ComponentError::new(format!(
                                "sending_queue::storage: cannot open the persistent queue in {}: {e}",
                                dir.display()
                            ))
                        })?
                }
            }
            .blocking_on_overflow(q.block_on_overflow)))
        } else {
            None
        };
        let sender = Arc::new(sender);
        Ok(QueuedRetryExporter {
            inner: Arc::new(Inner {
                metrics: HelperMetrics::new(metrics, &label),
                id: label,
                settings,
                sender: Arc::clone(&sender),
                stop: CancellationToken::new(),
            }),
            queue,
            consumers: Mutex::new(Vec::new()),
            sender,
        })
    }

    /// The wrapped sender.
    pub fn sender(&self) -> &Arc<S> {
        &self.sender
    }

    /// Batches waiting in the sending queue (0 without a queue).
    pub fn queue_len(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    /// Size of what waits in the sending queue, in `sending_queue::sizer` units (0
    /// without a queue).
    pub fn queue_size(&self) -> u64 {
        self.queue.as_ref().map_or(0, |q| q.size())
    }
}

impl<S: Sender> Drop for QueuedRetryExporter<S> {
    /// Dropped without shutdown (a crash, for the persistent queue): the consumers stop
    /// where they are; unacknowledged batches stay on disk.
    fn drop(&mut self) {
        self.inner.stop.cancel();
        let consumers = self.consumers.get_mut().unwrap_or_else(|e| e.into_inner());
        for handle in consumers.drain(..) {
            handle.abort();
        }
    }
}

#[async_trait]
impl<S: Sender> Lifecycle for QueuedRetryExporter<S> {
    async fn start(&self, host: &Host) -> Result<(), ComponentError> {
        self.sender.start(host).await?;
        if let Some(queue) = &self.queue {
            let mut consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
            if consumers.is_empty() {
                for _ in 0..self.inner.settings.queue.num_consumers {
                    let inner = Arc::clone(&self.inner);
                    consumers.push(tokio::spawn(inner.consume_queue(Arc::clone(queue))));
                }
            }
        }
        Ok(())
    }

    /// Stops taking batches, stops retry waits, lets the consumers send what is queued
    /// (one attempt each; a persistent queue keeps what fails for the next start), then
    /// shuts the sender down. The service bounds the whole with its shutdown deadline.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.sender.stopping();
        if let Some(queue) = &self.queue {
            queue.close();
        }
        self.inner.stop.cancel();
        let consumers =
            std::mem::take(&mut *self.consumers.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in consumers {
            let _ = handle.await;
        }
        self.sender.shutdown().await
    }
}

#[async_trait]
impl<S: Sender> Consumer for QueuedRetryExporter<S> {
    /// Refuses while the sending queue is full or closed, so a receiver answers "retry
    /// later" before reading a body the queue could not take anyway.
    fn admit(&self) -> Result<(), ConsumeError> {
        match self.queue.as_ref().and_then(|q| q.refusal()) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// An empty batch is taken and dropped: there is nothing to send, and it must not
    /// take a place in the queue (with `block_on_overflow`, wait for one).
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        let Some(queue) = &self.queue else {
            let spans = traces.span_count() as u64;
            return match self.inner.deliver(traces).await {
                Delivery::Done(result) => result,
                Delivery::Interrupted(err) => {
                    self.inner.metrics.send_failed.add(spans);
                    Err(err)
                }
            };
        };
        let spans = traces.span_count() as u64;
        queue.push(traces).await.inspect_err(|err| {
            self.inner.metrics.enqueue_failed.add(spans);
            tracing::warn!(exporter = %self.inner.id, refused_spans = spans, "{err}");
        })
    }
}

impl<S: Sender> Exporter for QueuedRetryExporter<S> {
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        self.sender.reader()
    }
}

#[cfg(test)]
mod tests;
