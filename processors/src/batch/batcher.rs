//! The batch processor: collects incoming batches and sends them on in bigger ones, by size
//! or by timeout, as the OpenTelemetry Collector's batchprocessor does.
//!
//! One worker task per processor instance owns the batch being built. `consume` admits the
//! incoming batch against a span budget (the backpressure bound), hands it to the worker
//! through a channel and returns `Ok` at once. The worker keeps the incoming batches as a
//! list of parts (no copy, no decode) and joins them only when it sends: encoded parts are
//! joined by concatenating their bytes ([`Traces::append`]), so `otlp -> batch -> otlp`
//! never decodes. It sends inline (awaiting the next stage) and only then reads more, like
//! the collector, so a slow next stage fills the budget and then slows the senders.

use super::config::BatchConfig;
use async_trait::async_trait;
use futures::FutureExt;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::telemetry::{Counter, Histogram, Metrics};
use teletrace_core::{
    ComponentError, ConsumeError, Consumer, ConsumerRef, Host, Lifecycle, Processor, Traces,
};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Histogram of the number of spans in each batch sent (label `processor`).
pub const METRIC_SEND_SIZE: &str = "otelcol_processor_batch_batch_send_size";
/// Counter of batches sent because they reached `send_batch_size` (label `processor`).
pub const METRIC_SIZE_TRIGGER: &str = "otelcol_processor_batch_batch_size_trigger_send";
/// Counter of batches sent because `timeout` passed, or flushed at shutdown (label
/// `processor`).
pub const METRIC_TIMEOUT_TRIGGER: &str = "otelcol_processor_batch_timeout_trigger_send";
/// Counter of spans the next stage refused after this processor had accepted them (label
/// `processor`). A Teletrace addition: the collector only logs these ("Sender failed").
pub const METRIC_DROPPED_SPANS: &str = "otelcol_processor_batch_dropped_spans";

/// Bucket bounds of [`METRIC_SEND_SIZE`], the collector's.
pub const SEND_SIZE_BUCKETS: [f64; 22] = [
    10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2000.0, 3000.0, 4000.0, 5000.0,
    6000.0, 7000.0, 8000.0, 9000.0, 10000.0, 20000.0, 30000.0, 50000.0, 100000.0,
];

/// Smallest buffer budget, in spans, whatever the config.
const MIN_BUFFER_SPANS: usize = 8192;

/// The buffer budget of a processor with `config`, in spans: the most spans it holds at
/// once, counting those queued for the worker, the batch being built and the batch being
/// sent. It is `max(2 × send_batch_size, 2 × send_batch_max_size, 8192)`.
///
/// One incoming batch is charged at most half the budget, so a batch larger than that is
/// still admitted (and the processor then holds more than the budget, by that excess).
pub fn buffer_capacity(config: &BatchConfig) -> usize {
    let size = config.send_batch_size as usize;
    let max = config.send_batch_max_size as usize;
    (2 * size).max(2 * max).max(MIN_BUFFER_SPANS)
}

/// Why a batch was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// It reached `send_batch_size` (or the processor sends everything at once).
    Size,
    /// `timeout` passed, or the processor is shutting down.
    Timeout,
}

/// What `consume` and `shutdown` hand to the worker.
enum Message {
    /// An incoming batch and the budget it was charged.
    Data { traces: Traces, permits: usize },
    /// Flush everything, then report through the `finished` watch.
    Shutdown,
}

/// The `batch` processor.
pub struct BatchProcessor {
    id: String,
    /// The next stage, asked by [`Consumer::admit`] (the worker holds its own handle).
    next: ConsumerRef,
    tx: mpsc::UnboundedSender<Message>,
    /// The span budget: `consume` takes permits, the worker gives them back once the spans
    /// were sent on.
    budget: Arc<Semaphore>,
    /// The most permits one incoming batch is charged.
    charge_limit: usize,
    /// The worker, until it is spawned (on `start`, or on first use).
    worker: Mutex<Option<Worker>>,
    running: AtomicBool,
    closed: AtomicBool,
    /// Set once the shutdown message was sent (it is sent once).
    shutdown_sent: AtomicBool,
    /// Turns true when the worker has flushed everything at shutdown; closed without
    /// turning true if the worker stopped some other way.
    finished: watch::Receiver<bool>,
}

impl BatchProcessor {
    /// Builds a processor with ID `id` that sends its batches to `next`. Its metrics are
    /// registered in `metrics` with the label `processor=<id>`. The worker task is spawned
    /// by `start` (or by the first `consume`), so building needs no runtime.
    pub fn new(id: &str, config: &BatchConfig, metrics: &Metrics, next: ConsumerRef) -> Self {
        let capacity = buffer_capacity(config);
        let budget = Arc::new(Semaphore::new(capacity));
        let (tx, rx) = mpsc::unbounded_channel();
        let (finished_tx, finished) = watch::channel(false);
        let labels = [("processor", id)];
        let worker = Worker {
            id: id.to_string(),
            rx,
            finished: finished_tx,
            next: next.clone(),
            budget: budget.clone(),
            send_batch_size: config.send_batch_size as usize,
            max_size: match config.send_batch_max_size {
                0 => usize::MAX,
                max => max as usize,
            },
            timeout: config.timeout,
            pending: VecDeque::new(),
            pending_spans: 0,
            deadline: None,
            send_size: metrics.histogram(
                METRIC_SEND_SIZE,
                "Number of spans in the batches sent",
                &labels,
                &SEND_SIZE_BUCKETS,
            ),
            size_trigger: metrics.counter(
                METRIC_SIZE_TRIGGER,
                "Number of times the batch was sent due to a size trigger",
                &labels,
            ),
            timeout_trigger: metrics.counter(
                METRIC_TIMEOUT_TRIGGER,
                "Number of times the batch was sent due to a timeout trigger",
                &labels,
            ),
            dropped: metrics.counter(
                METRIC_DROPPED_SPANS,
                "Number of spans the next stage refused after the batch processor accepted them",
                &labels,
            ),
        };
        BatchProcessor {
            id: id.to_string(),
            next,
            tx,
            budget,
            charge_limit: (capacity / 2).clamp(1, u32::MAX as usize),
            worker: Mutex::new(Some(worker)),
            running: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            shutdown_sent: AtomicBool::new(false),
            finished,
        }
    }

    /// Spawns the worker if it is not running yet. Must be called within a Tokio runtime.
    fn ensure_running(&self) {
        if self.running.load(Ordering::Acquire) {
            return;
        }
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(worker) = worker {
            tokio::spawn(worker.run());
        }
        self.running.store(true, Ordering::Release);
    }

    fn closed_error(&self) -> ConsumeError {
        ConsumeError::retryable(format!("processor {} is shut down", self.id))
    }
}

#[async_trait]
impl Consumer for BatchProcessor {
    /// Takes the batch into the processor's buffer and returns `Ok`, or waits while the
    /// buffer budget is used up. Fails (retryable) once the processor is shut down.
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            // Nothing to batch; the collector drops empty batches the same way.
            return Ok(());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        self.ensure_running();
        let permits = traces.span_count().min(self.charge_limit);
        self.budget
            .acquire_many(permits as u32)
            .await
            .map_err(|_| self.closed_error())?
            .forget();
        // No await between taking the permits and sending: a cancelled `consume` cannot
        // leak budget.
        self.tx
            .send(Message::Data { traces, permits })
            .map_err(|_| {
                self.budget.add_permits(permits);
                self.closed_error()
            })
    }

    /// Refuses once shut down; otherwise forwards the next stage's answer, so a
    /// `memory_limiter` after the batch still stops receivers before they read a body.
    fn admit(&self) -> Result<(), ConsumeError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        self.next.admit()
    }
}

#[async_trait]
impl Lifecycle for BatchProcessor {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        self.ensure_running();
        Ok(())
    }

    /// Stops taking batches, sends everything held and returns once the next stage has
    /// taken it (its `consume` returned). Calling it again (also after a call was
    /// cancelled, e.g. by the service's shutdown deadline) waits for the same flush; once
    /// done, it returns at once.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        self.closed.store(true, Ordering::Release);
        // Senders waiting for budget give up with a retryable error.
        self.budget.close();
        self.ensure_running();
        if !self.shutdown_sent.swap(true, Ordering::AcqRel) {
            // Fails only if the worker is gone, which `finished` reports below.
            let _ = self.tx.send(Message::Shutdown);
        }
        let mut finished = self.finished.clone();
        let flushed = finished.wait_for(|done| *done).await.is_ok();
        if flushed {
            Ok(())
        } else {
            Err(ComponentError::new(format!(
                "processor {}: the batching task stopped before flushing; spans it held are lost",
                self.id
            )))
        }
    }
}

impl Processor for BatchProcessor {}

/// One incoming batch waiting in the batch being built, with the budget it holds (given
/// back when the part has been sent whole).
struct Part {
    traces: Traces,
    permits: usize,
}

/// The task that builds and sends batches.
struct Worker {
    id: String,
    rx: mpsc::UnboundedReceiver<Message>,
    /// Set to true once everything was flushed at shutdown.
    finished: watch::Sender<bool>,
    next: ConsumerRef,
    budget: Arc<Semaphore>,
    send_batch_size: usize,
    /// `send_batch_max_size`, `usize::MAX` for no limit.
    max_size: usize,
    timeout: Duration,
    /// The batch being built, as the incoming batches it is made of.
    pending: VecDeque<Part>,
    pending_spans: usize,
    /// When the batch being built is due, if it holds spans and the timeout is finite.
    deadline: Option<Instant>,
    send_size: Arc<Histogram>,
    size_trigger: Arc<Counter>,
    timeout_trigger: Arc<Counter>,
    dropped: Arc<Counter>,
}

impl Worker {
    async fn run(mut self) {
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            if let Some(deadline) = self.deadline {
                // Checked on every message too, so a steady stream cannot starve the timer.
                if Instant::now() >= deadline {
                    self.flush(Trigger::Timeout).await;
                    continue;
                }
            }
            let message = match self.deadline {
                Some(deadline) => {
                    if armed != Some(deadline) {
                        sleep.as_mut().reset(deadline);
                        armed = Some(deadline);
                    }
                    tokio::select! {
                        biased;
                        message = self.rx.recv() => Some(message),
                        () = &mut sleep => None,
                    }
                }
                None => Some(self.rx.recv().await),
            };
            match message {
                None => continue, // the deadline passed; handled at the top
                Some(Some(Message::Data { traces, permits })) => self.add(traces, permits).await,
                Some(Some(Message::Shutdown)) => {
                    self.drain().await;
                    return;
                }
                Some(None) => {
                    // The processor was dropped without shutdown: send what is held.
                    self.flush(Trigger::Timeout).await;
                    return;
                }
            }
        }
    }

    /// Adds an incoming batch and sends whatever the size trigger calls for.
    async fn add(&mut self, traces: Traces, permits: usize) {
        if traces.is_empty() {
            self.release(permits);
            return;
        }
        let was_empty = self.pending_spans == 0;
        self.pending_spans += traces.span_count();
        self.pending.push_back(Part { traces, permits });
        if self.timeout.is_zero() {
            // No timer: everything is sent as it comes (the collector counts these as
            // size-triggered sends).
            self.flush(Trigger::Size).await;
            return;
        }
        if was_empty {
            self.deadline = Instant::now().checked_add(self.timeout);
        }
        let mut sent = false;
        while self.pending_spans > 0 && self.pending_spans >= self.send_batch_size {
            self.send_one(Trigger::Size).await;
            sent = true;
        }
        if sent {
            // As the collector resets its timer after a size-triggered send.
            self.deadline = if self.pending_spans > 0 {
                Instant::now().checked_add(self.timeout)
            } else {
                None
            };
        }
    }

    /// Sends everything held, in batches of at most `send_batch_max_size`.
    async fn flush(&mut self, trigger: Trigger) {
        while self.pending_spans > 0 {
            self.send_one(trigger).await;
        }
        self.deadline = None;
    }

    /// Takes every batch still queued, sends everything, then reports through `finished`.
    async fn drain(&mut self) {
        // New sends fail from here on; what is already queued is still received.
        self.rx.close();
        while let Some(message) = self.rx.recv().await {
            if let Message::Data { traces, permits } = message {
                self.add(traces, permits).await;
            }
        }
        self.flush(Trigger::Timeout).await;
        self.finished.send_replace(true);
    }

    /// Sends one batch of at most `send_batch_max_size` spans from the front.
    async fn send_one(&mut self, trigger: Trigger) {
        if let Some((batch, permits)) = self.take_batch() {
            self.deliver(batch, permits, trigger).await;
        }
    }

    /// Takes the next batch to send: whole parts from the front while they fit under
    /// `send_batch_max_size`; a part too big to fit alone is cut with
    /// [`Traces::split_front`]. A part that does not fit next to others is left for the
    /// next batch rather than cut, so cutting (which decodes unless it falls between whole
    /// encoded resources) only happens to an incoming batch larger than the limit.
    fn take_batch(&mut self) -> Option<(Traces, usize)> {
        let mut parts = Vec::new();
        let mut spans = 0usize;
        let mut permits = 0usize;
        while let Some(front) = self.pending.front_mut() {
            let count = front.traces.span_count();
            if spans + count <= self.max_size {
                let part = self.pending.pop_front().expect("front exists");
                spans += count;
                permits += part.permits;
                parts.push(part.traces);
                continue;
            }
            if spans == 0 {
                match front.traces.split_front(self.max_size) {
                    Ok(piece) => {
                        spans = piece.span_count();
                        parts.push(piece);
                    }
                    Err(e) => {
                        let part = self.pending.pop_front().expect("front exists");
                        self.pending_spans -= count;
                        self.release(part.permits);
                        self.drop_spans(count as u64, &e.to_string());
                        return None;
                    }
                }
            }
            break;
        }
        self.pending_spans -= spans;
        match Traces::concat(parts) {
            Ok(batch) => Some((batch, permits)),
            Err(e) => {
                self.release(permits);
                self.drop_spans(spans as u64, &e.to_string());
                None
            }
        }
    }

    /// Sends `batch` to the next stage and waits for its answer. The sender already got
    /// `Ok`, so a refusal is logged and counted here.
    async fn deliver(&mut self, batch: Traces, permits: usize, trigger: Trigger) {
        let spans = batch.span_count();
        let result = AssertUnwindSafe(self.next.consume(batch))
            .catch_unwind()
            .await;
        self.release(permits);
        match result {
            Ok(Ok(())) => self.record(spans, trigger),
            Ok(Err(error)) => {
                let refused = match &error {
                    ConsumeError::PartiallyRejected { rejected_spans, .. } => {
                        self.record(spans, trigger);
                        (*rejected_spans).min(spans as u64)
                    }
                    _ => spans as u64,
                };
                tracing::warn!(
                    processor = %self.id,
                    error = %error,
                    retryable = error.is_retryable(),
                    dropped_spans = refused,
                    "Sender failed: the next stage refused a batch; its spans are dropped"
                );
                self.dropped.add(refused);
            }
            Err(_panic) => {
                tracing::error!(
                    processor = %self.id,
                    dropped_spans = spans,
                    "Sender failed: the next stage panicked; the batch's spans are dropped"
                );
                self.dropped.add(spans as u64);
            }
        }
    }

    fn record(&self, spans: usize, trigger: Trigger) {
        self.send_size.record(spans as f64);
        match trigger {
            Trigger::Size => self.size_trigger.add(1),
            Trigger::Timeout => self.timeout_trigger.add(1),
        }
    }

    fn drop_spans(&self, spans: u64, why: &str) {
        tracing::error!(
            processor = %self.id,
            error = why,
            dropped_spans = spans,
            "cannot build a batch from malformed data; its spans are dropped"
        );
        self.dropped.add(spans);
    }

    fn release(&self, permits: usize) {
        if permits > 0 {
            self.budget.add_permits(permits);
        }
    }
}
