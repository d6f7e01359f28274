//! The `memory_limiter` processor: refuses data (retryable) while the memory in use is over
//! the soft limit, both when a receiver asks before reading a request ([`Consumer::admit`])
//! and when a batch arrives; otherwise passes batches on unchanged.

use super::limiter::{Limiter, Monitor};
use async_trait::async_trait;
use std::sync::{Arc, Mutex};
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{
    ComponentError, ConsumeError, Consumer, ConsumerRef, Host, Lifecycle, Processor, Traces,
};

/// Counter of spans passed on (label `processor`).
pub const METRIC_ACCEPTED_SPANS: &str = "otelcol_processor_memory_limiter_accepted_spans";
/// Counter of spans refused because memory was over the soft limit (label `processor`).
/// Only spans the receiver had already read are counted; see [`METRIC_REFUSED_REQUESTS`].
pub const METRIC_REFUSED_SPANS: &str = "otelcol_processor_memory_limiter_refused_spans";
/// Counter of requests refused before their body was read (label `processor`), whose
/// spans are therefore not counted. A Teletrace addition: the collector decodes first.
pub const METRIC_REFUSED_REQUESTS: &str = "otelcol_processor_memory_limiter_refused_requests";

/// The `memory_limiter` processor.
pub struct MemoryLimiterProcessor {
    limiter: Arc<Limiter>,
    next: ConsumerRef,
    accepted: Arc<Counter>,
    refused: Arc<Counter>,
    refused_requests: Arc<Counter>,
    monitor: Mutex<Option<Monitor>>,
}

impl MemoryLimiterProcessor {
    /// A processor `id` checking `limiter` and passing batches to `next`; its metrics
    /// are registered in `metrics` with the label `processor=<id>`. The monitor thread
    /// starts with [`Lifecycle::start`]; until then every call measures when the last
    /// measurement is older than `check_interval`.
    pub fn new(id: &str, limiter: Arc<Limiter>, metrics: &Metrics, next: ConsumerRef) -> Self {
        let labels = [("processor", id)];
        MemoryLimiterProcessor {
            limiter,
            next,
            accepted: metrics.counter(
                METRIC_ACCEPTED_SPANS,
                "Number of spans passed on by the memory_limiter processor",
                &labels,
            ),
            refused: metrics.counter(
                METRIC_REFUSED_SPANS,
                "Number of spans refused by the memory_limiter processor (memory over the soft limit)",
                &labels,
            ),
            refused_requests: metrics.counter(
                METRIC_REFUSED_REQUESTS,
                "Number of requests refused before reading their body (memory over the soft limit)",
                &labels,
            ),
            monitor: Mutex::new(None),
        }
    }

    /// The shared memory check.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }
}

#[async_trait]
impl Consumer for MemoryLimiterProcessor {
    /// Refuses the batch with a retryable error while over the soft limit; otherwise
    /// passes it on and returns the next stage's answer.
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        let spans = traces.span_count() as u64;
        if self.limiter.must_refuse() {
            self.refused.add(spans);
            return Err(self.limiter.refusal());
        }
        self.accepted.add(spans);
        self.next.consume(traces).await
    }

    /// Refuses while over the soft limit, else asks the next stage.
    fn admit(&self) -> Result<(), ConsumeError> {
        if self.limiter.must_refuse() {
            self.refused_requests.add(1);
            return Err(self.limiter.refusal());
        }
        self.next.admit()
    }
}

#[async_trait]
impl Lifecycle for MemoryLimiterProcessor {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        let mut monitor = self.monitor.lock().unwrap_or_else(|e| e.into_inner());
        if monitor.is_none() {
            *monitor = Some(Monitor::start(self.limiter.clone()).map_err(|e| {
                ComponentError::new(format!("cannot start the memory check thread: {e}"))
            })?);
        }
        Ok(())
    }

    /// Stops the monitor thread. Batches still arriving are checked inline.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let monitor = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(monitor) = monitor {
            // Joining waits for at most one check; keep it off the runtime's workers.
            tokio::task::spawn_blocking(move || monitor.stop())
                .await
                .map_err(|e| ComponentError::new(format!("memory check thread: {e}")))?;
        }
        Ok(())
    }
}

impl Processor for MemoryLimiterProcessor {}
