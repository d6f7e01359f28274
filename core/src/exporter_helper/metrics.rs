//! The exporter metrics the helper maintains, with the collector's names and the label
//! `exporter` set to the component ID.

use crate::telemetry::{Counter, Gauge, Metrics};
use std::sync::Arc;

/// Spans the backend accepted.
pub const METRIC_SENT_SPANS: &str = "otelcol_exporter_sent_spans";
/// Spans given up on: a permanent error, retries exhausted, or rejected by the backend.
pub const METRIC_SEND_FAILED_SPANS: &str = "otelcol_exporter_send_failed_spans";
/// Spans refused at the queue's door (queue full or closed).
pub const METRIC_ENQUEUE_FAILED_SPANS: &str = "otelcol_exporter_enqueue_failed_spans";
/// What waits in the sending queue, in the `sizer`'s unit.
pub const METRIC_QUEUE_SIZE: &str = "otelcol_exporter_queue_size";
/// What the sending queue can hold, in the `sizer`'s unit.
pub const METRIC_QUEUE_CAPACITY: &str = "otelcol_exporter_queue_capacity";

/// Handles on one exporter's series.
pub(crate) struct HelperMetrics {
    pub sent: Arc<Counter>,
    pub send_failed: Arc<Counter>,
    pub enqueue_failed: Arc<Counter>,
}

impl HelperMetrics {
    /// Registers the counters of exporter `id`.
    pub fn new(metrics: &Metrics, id: &str) -> Self {
        let labels = [("exporter", id)];
        HelperMetrics {
            sent: metrics.counter(
                METRIC_SENT_SPANS,
                "Number of spans successfully sent to destination",
                &labels,
            ),
            send_failed: metrics.counter(
                METRIC_SEND_FAILED_SPANS,
                "Number of spans in failed attempts to send to destination",
                &labels,
            ),
            enqueue_failed: metrics.counter(
                METRIC_ENQUEUE_FAILED_SPANS,
                "Number of spans failed to be added to the sending queue",
                &labels,
            ),
        }
    }

    /// Registers the queue gauges of exporter `id` (in `unit`: batches, spans or bytes)
    /// and returns the size gauge.
    pub fn queue_gauges(metrics: &Metrics, id: &str, capacity: usize, unit: &str) -> Arc<Gauge> {
        let labels = [("exporter", id)];
        metrics
            .gauge(
                METRIC_QUEUE_CAPACITY,
                &format!("Fixed capacity of the retry queue (in {unit})"),
                &labels,
            )
            .set(i64::try_from(capacity).unwrap_or(i64::MAX));
        metrics.gauge(
            METRIC_QUEUE_SIZE,
            &format!("Current size of the retry queue (in {unit})"),
            &labels,
        )
    }
}
