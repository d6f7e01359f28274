//! The `tail_sampling` processor: holds each trace until `decision_wait` after its first
//! span, then decides with the policies and sends the sampled traces on.
//!
//! `consume` decodes the batch once, splits it by trace ID (each part keeps its resource
//! and scope), records what the policies need about each part in a [`TraceSummary`] and
//! keeps the part re-encoded as a protobuf `ExportTraceServiceRequest` body: encoded
//! spans take a fraction of the memory of decoded ones, and parts of many traces are
//! joined for sending by concatenating bytes. A ticker task decides traces in arrival
//! order once their wait has passed and sends the sampled ones in batches.
//!
//! Memory is bounded by `num_traces`: a trace stays in the table (pending, then as a bare
//! decision for its late spans) until newer traces push it out, oldest first; a trace
//! pushed out before it was decided is counted in
//! `otelcol_processor_tail_sampling_sampling_trace_dropped_too_early`.

use super::cache::DecisionCache;
use super::config::TailSamplingConfig;
use super::policy::{Decision, Evaluator, Verdict};
use super::summary::{Matchers, TraceSummary};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use teletrace_core::telemetry::{Counter, Gauge, Metrics};
use teletrace_core::{
    ComponentError, ConsumeError, Consumer, ConsumerRef, Host, Lifecycle, Processor, Traces,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

/// Counter of traces each policy decided on (labels `processor`, `policy`, `sampled`).
pub const METRIC_COUNT_TRACES_SAMPLED: &str =
    "otelcol_processor_tail_sampling_count_traces_sampled";
/// Counter of final decisions (labels `processor`, `sampled`).
pub const METRIC_GLOBAL_COUNT_TRACES_SAMPLED: &str =
    "otelcol_processor_tail_sampling_global_count_traces_sampled";
/// Counter of traces pushed out of memory before their decision.
pub const METRIC_DROPPED_TOO_EARLY: &str =
    "otelcol_processor_tail_sampling_sampling_trace_dropped_too_early";
/// Counter of trace IDs seen for the first time (or again after leaving memory).
pub const METRIC_NEW_TRACE_ID_RECEIVED: &str =
    "otelcol_processor_tail_sampling_new_trace_id_received";
/// Gauge of traces in memory (pending and decided).
pub const METRIC_TRACES_ON_MEMORY: &str =
    "otelcol_processor_tail_sampling_sampling_traces_on_memory";
/// Counter of span groups decided by the decision cache (labels `processor`, `sampled`).
pub const METRIC_CACHE_DECISIONS: &str =
    "otelcol_processor_tail_sampling_early_releases_from_cache_decision";
/// Counter of sampled spans the next stage refused (Teletrace's own; the collector logs).
pub const METRIC_DROPPED_SPANS: &str = "otelcol_processor_tail_sampling_dropped_spans";

/// Largest batch sent on, in spans (whole traces, so a batch may exceed it by one trace).
pub const MAX_BATCH_SPANS: u64 = 8192;

/// A trace in memory.
enum Entry {
    /// Waiting for its decision: what the policies need, and its spans, encoded.
    Pending {
        summary: TraceSummary,
        chunks: Vec<Bytes>,
    },
    /// Decided: late spans go on.
    Sampled,
    /// Decided: late spans are dropped.
    NotSampled,
}

/// A top-level policy with its counters.
struct TopPolicy {
    evaluator: Evaluator,
    /// `[sampled="false", sampled="true"]`.
    counters: [Arc<Counter>; 2],
}

/// Sampled traces ready to go: encoded parts and span count.
type Outgoing = Vec<(Vec<Bytes>, u64)>;

/// Everything behind the lock.
struct State {
    traces: HashMap<[u8; 16], Entry>,
    /// Trace IDs in arrival order with their arrival time. The first `decided` are
    /// decided (decisions happen in arrival order), the rest pending.
    order: VecDeque<([u8; 16], Instant)>,
    decided: usize,
    num_traces: usize,
    decision_wait: Duration,
    sampled_cache: DecisionCache,
    non_sampled_cache: DecisionCache,
    policies: Vec<TopPolicy>,
    sample_on_first_match: bool,
    epoch: Instant,
}

struct TailMetrics {
    global: [Arc<Counter>; 2],
    cache: [Arc<Counter>; 2],
    dropped_too_early: Arc<Counter>,
    new_trace_id: Arc<Counter>,
    on_memory: Arc<Gauge>,
    dropped_spans: Arc<Counter>,
}

/// What the processor and its ticker task share.
struct Inner {
    id: String,
    matchers: Matchers,
    state: Mutex<State>,
    metrics: TailMetrics,
    next: ConsumerRef,
    closed: AtomicBool,
}

/// The `tail_sampling` processor.
pub struct TailSampler {
    inner: Arc<Inner>,
    tick: Duration,
    stop: watch::Sender<bool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    shutting_down: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl TailSampler {
    /// Builds the processor for a validated config.
    pub fn new(
        id: &str,
        config: &TailSamplingConfig,
        metrics: &Metrics,
        next: ConsumerRef,
    ) -> Result<TailSampler, String> {
        let mut matchers = Matchers::default();
        let mut policies = Vec::with_capacity(config.policies.len());
        for p in &config.policies {
            let evaluator = Evaluator::build(p, &mut matchers)
                .map_err(|e| format!("policy {:?}: {e}", p.name))?;
            let counter = |sampled: &str| {
                metrics.counter(
                    METRIC_COUNT_TRACES_SAMPLED,
                    "Count of traces that were sampled or not per sampling policy",
                    &[("processor", id), ("policy", &p.name), ("sampled", sampled)],
                )
            };
            policies.push(TopPolicy {
                evaluator,
                counters: [counter("false"), counter("true")],
            });
        }
        let by_sampled = |name: &str, help: &str| {
            [
                metrics.counter(name, help, &[("processor", id), ("sampled", "false")]),
                metrics.counter(name, help, &[("processor", id), ("sampled", "true")]),
            ]
        };
        let tail_metrics = TailMetrics {
            global: by_sampled(
                METRIC_GLOBAL_COUNT_TRACES_SAMPLED,
                "Global count of traces that were sampled or not by at least one policy",
            ),
            cache: by_sampled(
                METRIC_CACHE_DECISIONS,
                "Span groups of traces no longer in memory decided by the decision cache",
            ),
            dropped_too_early: metrics.counter(
                METRIC_DROPPED_TOO_EARLY,
                "Count of traces that needed to be dropped before the configured wait time",
                &[("processor", id)],
            ),
            new_trace_id: metrics.counter(
                METRIC_NEW_TRACE_ID_RECEIVED,
                "Counts the arrival of new traces",
                &[("processor", id)],
            ),
            on_memory: metrics.gauge(
                METRIC_TRACES_ON_MEMORY,
                "Tracks the number of traces current on memory",
                &[("processor", id)],
            ),
            dropped_spans: metrics.counter(
                METRIC_DROPPED_SPANS,
                "Sampled spans the next stage refused",
                &[("processor", id)],
            ),
        };
        let num_traces = usize::try_from(config.num_traces)
            .unwrap_or(usize::MAX)
            .max(1);
        let expected = config
            .expected_new_traces_per_sec
            .saturating_mul(config.decision_wait.as_secs() + 1);
        let capacity = usize::try_from(expected)
            .unwrap_or(usize::MAX)
            .min(num_traces);
        let state = State {
            traces: HashMap::with_capacity(capacity),
            order: VecDeque::with_capacity(capacity),
            decided: 0,
            num_traces,
            decision_wait: config.decision_wait,
            sampled_cache: DecisionCache::new(config.decision_cache.sampled_cache_size),
            non_sampled_cache: DecisionCache::new(config.decision_cache.non_sampled_cache_size),
            policies,
            sample_on_first_match: config.sample_on_first_match,
            epoch: Instant::now(),
        };
        let (stop, _) = watch::channel(false);
        Ok(TailSampler {
            inner: Arc::new(Inner {
                id: id.to_string(),
                matchers,
                state: Mutex::new(state),
                metrics: tail_metrics,
                next,
                closed: AtomicBool::new(false),
            }),
            tick: config
                .decision_wait
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(1)),
            stop,
            worker: Mutex::new(None),
            shutting_down: tokio::sync::Mutex::new(()),
        })
    }

    /// Number of traces in memory (pending and decided).
    pub fn traces_in_memory(&self) -> usize {
        lock(&self.inner.state).traces.len()
    }

    /// Number of traces waiting for their decision.
    pub fn pending(&self) -> usize {
        let st = lock(&self.inner.state);
        st.order.len() - st.decided
    }

    /// Decides every trace whose wait has passed and sends the sampled ones on now,
    /// without waiting for the ticker. Returns the number of traces decided.
    pub async fn decide_due(&self) -> usize {
        let (decided, out) = lock(&self.inner.state).decide(Instant::now(), false);
        self.inner.count_decisions(&out, decided);
        self.inner.send(out).await;
        decided
    }
}

impl State {
    /// Takes the parts of a batch in; returns the parts to send on at once (late spans
    /// of sampled traces).
    fn admit(
        &mut self,
        parts: Vec<([u8; 16], TraceSummary, Bytes)>,
        now: Instant,
        metrics: &TailMetrics,
    ) -> Vec<Bytes> {
        let mut forward = Vec::new();
        for (id, summary, bytes) in parts {
            match self.traces.get_mut(&id) {
                Some(Entry::Pending { summary: s, chunks }) => {
                    s.merge(&summary);
                    chunks.push(bytes);
                }
                Some(Entry::Sampled) => forward.push(bytes),
                Some(Entry::NotSampled) => {}
                None if self.sampled_cache.contains(&id) => {
                    metrics.cache[1].add(1);
                    forward.push(bytes);
                }
                None if self.non_sampled_cache.contains(&id) => metrics.cache[0].add(1),
                None => {
                    metrics.new_trace_id.add(1);
                    while self.traces.len() >= self.num_traces {
                        if !self.evict_oldest(metrics) {
                            break;
                        }
                    }
                    self.traces.insert(
                        id,
                        Entry::Pending {
                            summary,
                            chunks: vec![bytes],
                        },
                    );
                    self.order.push_back((id, now));
                }
            }
        }
        metrics.on_memory.set(self.traces.len() as i64);
        forward
    }

    /// Removes the oldest trace; false when there is none.
    fn evict_oldest(&mut self, metrics: &TailMetrics) -> bool {
        let Some((id, _)) = self.order.pop_front() else {
            return false;
        };
        if self.decided > 0 {
            self.decided -= 1;
        } else {
            metrics.dropped_too_early.add(1);
        }
        self.traces.remove(&id);
        true
    }

    /// Decides pending traces in arrival order: those whose wait has passed, or all of
    /// them. Returns how many were decided and the sampled ones.
    fn decide(&mut self, now: Instant, all: bool) -> (usize, Outgoing) {
        let second = now.saturating_duration_since(self.epoch).as_secs();
        let mut out = Vec::new();
        let mut count = 0;
        while let Some(&(id, arrived)) = self.order.get(self.decided) {
            if !all && arrived + self.decision_wait > now {
                break;
            }
            self.decided += 1;
            let Some(entry) = self.traces.get_mut(&id) else {
                continue;
            };
            let Entry::Pending { summary, chunks } = std::mem::replace(entry, Entry::NotSampled)
            else {
                continue;
            };
            count += 1;
            let mut verdict = Verdict::default();
            for p in &mut self.policies {
                let d = p.evaluator.evaluate(&id, &summary, second);
                p.counters[usize::from(d.sampled_label() == "true")].add(1);
                verdict.add(d);
                if self.sample_on_first_match && d == Decision::Sampled {
                    break;
                }
            }
            if verdict.sampled() {
                *entry = Entry::Sampled;
                self.sampled_cache.insert(id);
                out.push((chunks, summary.span_count));
            } else {
                self.non_sampled_cache.insert(id);
            }
        }
        (count, out)
    }
}

impl Inner {
    /// Records the final decisions and sends the sampled traces in batches of about
    /// [`MAX_BATCH_SPANS`] spans.
    async fn send(&self, out: Outgoing) {
        let mut body = BytesMut::new();
        let mut spans = 0;
        for (chunks, n) in out {
            for c in chunks {
                body.extend_from_slice(&c);
            }
            spans += n;
            if spans >= MAX_BATCH_SPANS {
                self.send_body(std::mem::take(&mut body).freeze(), spans)
                    .await;
                spans = 0;
            }
        }
        if !body.is_empty() {
            self.send_body(body.freeze(), spans).await;
        }
    }

    async fn send_body(&self, body: Bytes, spans: u64) {
        let traces = match Traces::from_encoded(body) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(processor = %self.id, error = %e, "tail_sampling: internal encoding error");
                self.metrics.dropped_spans.add(spans);
                return;
            }
        };
        if let Err(e) = self.next.consume(traces).await {
            tracing::warn!(processor = %self.id, error = %e, spans, "tail_sampling: next stage refused sampled spans");
            self.metrics.dropped_spans.add(spans);
        }
    }

    fn count_decisions(&self, out: &Outgoing, decided: usize) {
        let sampled = out.len();
        self.metrics.global[1].add(sampled as u64);
        self.metrics.global[0].add((decided - sampled) as u64);
    }

    /// Splits a batch by trace and summarises each part.
    fn split(&self, traces: Traces) -> Result<Vec<([u8; 16], TraceSummary, Bytes)>, ConsumeError> {
        let groups = traces.group_by_trace()?;
        let mut parts = Vec::with_capacity(groups.len());
        for (id, mut group) in groups {
            let mut summary = TraceSummary::default();
            for r in group.resource_spans()? {
                if let Some(resource) = &r.resource {
                    self.matchers.observe_resource(resource, &mut summary);
                }
                for s in &r.scope_spans {
                    for span in &s.spans {
                        summary.observe_span(span, &self.matchers);
                    }
                }
            }
            parts.push((id, summary, group.to_encoded()));
        }
        Ok(parts)
    }

    async fn tick(&self) {
        let (decided, out) = lock(&self.state).decide(Instant::now(), false);
        self.count_decisions(&out, decided);
        self.send(out).await;
    }
}

#[async_trait]
impl Consumer for TailSampler {
    /// Asks the next stage: traces taken now are sent there after `decision_wait`, and
    /// a refusing stage (a memory_limiter) is better heard before the body is read.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.inner.next.admit()
    }

    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ConsumeError::retryable(
                "tail_sampling processor is shut down",
            ));
        }
        let parts = self.inner.split(traces)?;
        let forward = lock(&self.inner.state).admit(parts, Instant::now(), &self.inner.metrics);
        if forward.is_empty() {
            return Ok(());
        }
        let mut body = BytesMut::new();
        for b in forward {
            body.extend_from_slice(&b);
        }
        let traces = Traces::from_encoded(body.freeze())
            .map_err(|e| ConsumeError::permanent(format!("tail_sampling: {e}")))?;
        self.inner.next.consume(traces).await
    }
}

#[async_trait]
impl Lifecycle for TailSampler {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        let mut worker = lock(&self.worker);
        if worker.is_some() || self.inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let inner = self.inner.clone();
        let mut stop = self.stop.subscribe();
        let period = self.tick;
        *worker = Some(tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticker.tick() => inner.tick().await,
                    _ = stop.changed() => return,
                }
            }
        }));
        Ok(())
    }

    /// Stops taking spans, decides every pending trace now and sends the sampled ones.
    async fn shutdown(&self) -> Result<(), ComponentError> {
        let _one_at_a_time = self.shutting_down.lock().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        let worker = lock(&self.worker).take();
        if let Some(worker) = worker {
            let _ = worker.await;
        }
        let (decided, out) = lock(&self.inner.state).decide(Instant::now(), true);
        self.inner.count_decisions(&out, decided);
        self.inner.send(out).await;
        Ok(())
    }
}

impl Processor for TailSampler {}
