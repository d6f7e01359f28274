use super::*;
use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use teletrace_core::component::Kind;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Consumer, Host, Lifecycle, Traces};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

static NEXT_SPAN_ID: AtomicU64 = AtomicU64::new(1);

fn span() -> Span {
    let id = NEXT_SPAN_ID.fetch_add(1, Ordering::Relaxed);
    Span {
        trace_id: vec![7; 16],
        span_id: id.to_be_bytes().to_vec(),
        name: format!("span-{id}"),
        ..Default::default()
    }
}

fn resource(spans: usize) -> ResourceSpans {
    ResourceSpans {
        resource: None,
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "test".into(),
                ..Default::default()
            }),
            spans: (0..spans).map(|_| span()).collect(),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// An encoded request with one resource per entry of `resources`, holding that many spans.
fn encoded(resources: &[usize]) -> Traces {
    let request = ExportTraceServiceRequest {
        resource_spans: resources.iter().map(|&n| resource(n)).collect(),
    };
    Traces::from_encoded(request.encode_to_vec().into()).expect("valid request")
}

fn span_ids(traces: &Traces) -> Vec<u64> {
    let mut ids = Vec::new();
    traces
        .clone()
        .for_each_span(|_, _, s| {
            ids.push(u64::from_be_bytes(s.span_id.as_slice().try_into().unwrap()))
        })
        .unwrap();
    ids
}

/// The next stage: forwards every batch it gets to the test, then answers as configured.
struct Sink {
    tx: mpsc::UnboundedSender<Traces>,
    delay: Duration,
    gate: Option<Arc<Semaphore>>,
    answer: Mutex<Option<ConsumeError>>,
    panic: bool,
}

impl Sink {
    fn new() -> (Sink, mpsc::UnboundedReceiver<Traces>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let sink = Sink {
            tx,
            delay: Duration::ZERO,
            gate: None,
            answer: Mutex::new(None),
            panic: false,
        };
        (sink, rx)
    }
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if self.panic {
            panic!("the next stage panicked");
        }
        let _ = self.tx.send(traces);
        self.admit()
    }

    fn admit(&self) -> Result<(), ConsumeError> {
        match self.answer.lock().unwrap().clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn config(send_batch_size: u32, timeout: Duration, send_batch_max_size: u32) -> BatchConfig {
    BatchConfig {
        send_batch_size,
        timeout,
        send_batch_max_size,
        ..Default::default()
    }
}

async fn started(config: BatchConfig, sink: Sink, metrics: &Metrics) -> Arc<BatchProcessor> {
    let p = Arc::new(BatchProcessor::new(
        "batch",
        &config,
        metrics,
        Arc::new(sink),
    ));
    p.start(&Host::default()).await.unwrap();
    p
}

fn received(rx: &mut mpsc::UnboundedReceiver<Traces>) -> Vec<Traces> {
    let mut out = Vec::new();
    while let Ok(t) = rx.try_recv() {
        out.push(t);
    }
    out
}

fn sizes(batches: &[Traces]) -> Vec<usize> {
    batches.iter().map(Traces::span_count).collect()
}

fn send_size_count(metrics: &Metrics) -> u64 {
    metrics
        .histogram(
            METRIC_SEND_SIZE,
            "",
            &[("processor", "batch")],
            &SEND_SIZE_BUCKETS,
        )
        .count()
}

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------
// Triggers
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn size_trigger_sends_once_the_batch_is_full() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(10, HOUR, 0), sink, &metrics).await;
    let mut sent_ids = Vec::new();
    for _ in 0..3 {
        let t = encoded(&[4]);
        sent_ids.extend(span_ids(&t));
        p.consume(t).await.unwrap();
    }
    let batch = rx.recv().await.unwrap();
    assert_eq!(batch.span_count(), 12);
    assert!(
        batch.is_encoded(),
        "encoded batches are joined without decoding"
    );
    assert_eq!(span_ids(&batch), sent_ids, "order is kept");
    assert!(received(&mut rx).is_empty());
    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_SIZE_TRIGGER), 1);
    assert_eq!(metrics.counter_total(METRIC_TIMEOUT_TRIGGER), 0);
    assert_eq!(send_size_count(&metrics), 1);
    let text = metrics.render();
    assert!(
        text.contains(
            "otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"25\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_trigger_sends_timeout_after_the_first_span() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(100, Duration::from_millis(200), 0), sink, &metrics).await;
    let start = Instant::now();
    p.consume(encoded(&[3])).await.unwrap();
    // Virtual time: the clock only moves when every task is idle.
    tokio::time::sleep(Duration::from_millis(50)).await;
    p.consume(encoded(&[2])).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rx.recv())
            .await
            .is_err(),
        "nothing is sent before the timeout"
    );
    let batch = rx.recv().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_millis(200));
    assert_eq!(batch.span_count(), 5);
    assert!(batch.is_encoded());

    // The next batch's clock starts at its own first span.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let second_start = Instant::now();
    p.consume(encoded(&[1])).await.unwrap();
    let batch = rx.recv().await.unwrap();
    assert_eq!(Instant::now() - second_start, Duration::from_millis(200));
    assert_eq!(batch.span_count(), 1);

    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_TIMEOUT_TRIGGER), 2);
    assert_eq!(metrics.counter_total(METRIC_SIZE_TRIGGER), 0);
}

#[tokio::test(start_paused = true)]
async fn timer_restarts_after_a_size_triggered_send() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(10, Duration::from_millis(200), 10), sink, &metrics).await;
    let start = Instant::now();
    p.consume(encoded(&[6])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    // 12 spans: the first part goes at once (the second does not fit under the max),
    // the rest waits for a fresh timeout.
    p.consume(encoded(&[6])).await.unwrap();
    let first = rx.recv().await.unwrap();
    assert_eq!(first.span_count(), 6);
    assert_eq!(Instant::now() - start, Duration::from_millis(150));
    let second = rx.recv().await.unwrap();
    assert_eq!(second.span_count(), 6);
    assert_eq!(Instant::now() - start, Duration::from_millis(350));
    p.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn zero_timeout_sends_every_batch_as_it_comes() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(8192, Duration::ZERO, 0), sink, &metrics).await;
    for n in [1, 2, 3] {
        p.consume(encoded(&[n])).await.unwrap();
        let batch = rx.recv().await.unwrap();
        assert_eq!(batch.span_count(), n);
        assert!(batch.is_encoded());
    }
    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_SIZE_TRIGGER), 3);
}

#[tokio::test(start_paused = true)]
async fn zero_batch_size_sends_every_batch_as_it_comes() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(0, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[2])).await.unwrap();
    assert_eq!(rx.recv().await.unwrap().span_count(), 2);
    p.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn empty_batches_are_ignored() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(1, Duration::ZERO, 0), sink, &metrics).await;
    p.consume(Traces::default()).await.unwrap();
    p.consume(encoded(&[])).await.unwrap();
    p.consume(encoded(&[0, 0])).await.unwrap();
    p.shutdown().await.unwrap();
    assert!(received(&mut rx).is_empty());
    assert_eq!(send_size_count(&metrics), 0);
}

// ---------------------------------------------------------------------------
// send_batch_max_size
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn max_size_cuts_a_big_batch_between_encoded_resources() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(5, Duration::from_secs(1), 5), sink, &metrics).await;
    let input = encoded(&[4, 4, 4]);
    let ids = span_ids(&input);
    p.consume(input).await.unwrap();
    p.shutdown().await.unwrap();
    let batches = received(&mut rx);
    // Cut between whole resources: each batch is at most the max, here smaller.
    assert_eq!(sizes(&batches), [4, 4, 4]);
    assert!(batches.iter().all(Traces::is_encoded));
    let out: Vec<u64> = batches.iter().flat_map(span_ids).collect();
    assert_eq!(out, ids);
}

#[tokio::test(start_paused = true)]
async fn max_size_cuts_a_big_resource_exactly() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(5, Duration::from_secs(1), 5), sink, &metrics).await;
    let input = encoded(&[12]);
    let ids = span_ids(&input);
    p.consume(input).await.unwrap();
    let first = rx.recv().await.unwrap();
    let second = rx.recv().await.unwrap();
    assert_eq!((first.span_count(), second.span_count()), (5, 5));
    // The last 2 spans wait for the timeout.
    let start = Instant::now();
    let third = rx.recv().await.unwrap();
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert_eq!(third.span_count(), 2);
    let out: Vec<u64> = [first, second, third].iter().flat_map(span_ids).collect();
    assert_eq!(out, ids);
    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_SIZE_TRIGGER), 2);
    assert_eq!(metrics.counter_total(METRIC_TIMEOUT_TRIGGER), 1);
}

#[tokio::test(start_paused = true)]
async fn max_size_never_splits_a_part_that_fits_alone() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(10, HOUR, 10), sink, &metrics).await;
    for _ in 0..3 {
        p.consume(encoded(&[4])).await.unwrap();
    }
    let first = rx.recv().await.unwrap();
    // 4 + 4 fit, the third 4 would pass the max: it waits for the next batch.
    assert_eq!(first.span_count(), 8);
    assert!(first.is_encoded());
    p.shutdown().await.unwrap();
    let rest = received(&mut rx);
    assert_eq!(sizes(&rest), [4]);
    assert!(rest[0].is_encoded());
}

#[tokio::test(start_paused = true)]
async fn every_batch_respects_the_max_under_mixed_sizes() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(7, HOUR, 9), sink, &metrics).await;
    let mut ids = Vec::new();
    for shape in [&[3][..], &[20], &[1, 1, 1], &[9], &[2, 8], &[5], &[11, 2]] {
        let t = encoded(shape);
        ids.extend(span_ids(&t));
        p.consume(t).await.unwrap();
    }
    p.shutdown().await.unwrap();
    let batches = received(&mut rx);
    assert!(
        batches.iter().all(|b| b.span_count() <= 9),
        "{:?}",
        sizes(&batches)
    );
    let out: Vec<u64> = batches.iter().flat_map(span_ids).collect();
    assert_eq!(out, ids, "every span, once, in order");
}

// ---------------------------------------------------------------------------
// Data shape
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn encoded_batches_stay_encoded_end_to_end() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(100, Duration::from_millis(10), 0), sink, &metrics).await;
    // Many parts, so joining goes through several levels.
    let mut ids = Vec::new();
    for i in 0..37 {
        let t = encoded(&[1 + i % 3, 2]);
        ids.extend(span_ids(&t));
        p.consume(t).await.unwrap();
    }
    p.shutdown().await.unwrap();
    let batches = received(&mut rx);
    assert!(!batches.is_empty());
    assert!(batches.iter().all(Traces::is_encoded));
    let out: Vec<u64> = batches.iter().flat_map(span_ids).collect();
    assert_eq!(out, ids);
}

#[tokio::test(start_paused = true)]
async fn decoded_and_encoded_batches_mix() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(100, HOUR, 0), sink, &metrics).await;
    let a = encoded(&[2]);
    let b = Traces::new(vec![resource(3)]);
    let mut ids = span_ids(&a);
    ids.extend(span_ids(&b));
    p.consume(a).await.unwrap();
    p.consume(b).await.unwrap();
    p.shutdown().await.unwrap();
    let batches = received(&mut rx);
    assert_eq!(sizes(&batches), [5]);
    assert_eq!(span_ids(&batches[0]), ids);
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_and_waits_for_the_next_stage() {
    let metrics = Metrics::new();
    let (mut sink, mut rx) = Sink::new();
    sink.delay = Duration::from_millis(50);
    let p = started(config(1000, HOUR, 0), sink, &metrics).await;
    for _ in 0..7 {
        p.consume(encoded(&[3])).await.unwrap();
    }
    let start = Instant::now();
    p.shutdown().await.unwrap();
    assert!(
        Instant::now() - start >= Duration::from_millis(50),
        "waited for the send"
    );
    let batches = received(&mut rx);
    assert_eq!(sizes(&batches), [21]);
    assert!(batches[0].is_encoded());
    assert_eq!(metrics.counter_total(METRIC_TIMEOUT_TRIGGER), 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_what_is_still_queued() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    // Never started: consume spawns the worker; shutdown right after the sends still
    // delivers everything that got Ok.
    let p = BatchProcessor::new("batch", &config(1000, HOUR, 3), &metrics, Arc::new(sink));
    let mut ids = Vec::new();
    for _ in 0..20 {
        let t = encoded(&[2]);
        ids.extend(span_ids(&t));
        p.consume(t).await.unwrap();
    }
    p.shutdown().await.unwrap();
    let out: Vec<u64> = received(&mut rx).iter().flat_map(span_ids).collect();
    assert_eq!(out, ids);
}

#[tokio::test(start_paused = true)]
async fn second_shutdown_is_a_no_op_and_consume_is_refused_after() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(100, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[2])).await.unwrap();
    p.shutdown().await.unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [2]);
    let err = p.consume(encoded(&[1])).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    p.shutdown().await.unwrap();
    assert!(received(&mut rx).is_empty());
    assert_eq!(metrics.counter_total(METRIC_TIMEOUT_TRIGGER), 1);
}

#[tokio::test(start_paused = true)]
async fn admit_forwards_the_next_stage_and_refuses_after_shutdown() {
    let metrics = Metrics::new();
    let (sink, _rx) = Sink::new();
    let sink = Arc::new(sink);
    let p = BatchProcessor::new("batch", &config(100, HOUR, 0), &metrics, sink.clone());
    p.start(&Host::default()).await.unwrap();
    assert!(p.admit().is_ok());
    *sink.answer.lock().unwrap() = Some(ConsumeError::retryable("over the memory limit"));
    assert_eq!(p.admit().unwrap_err().message(), "over the memory limit");
    *sink.answer.lock().unwrap() = None;
    assert!(p.admit().is_ok());
    p.shutdown().await.unwrap();
    assert!(p.admit().unwrap_err().is_retryable());
}

#[tokio::test(start_paused = true)]
async fn shutdown_cut_short_by_a_deadline_can_be_awaited_again() {
    let metrics = Metrics::new();
    let (mut sink, mut rx) = Sink::new();
    sink.delay = Duration::from_millis(100);
    let p = started(config(1000, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[4])).await.unwrap();
    let cut = tokio::time::timeout(Duration::from_millis(10), p.shutdown()).await;
    assert!(cut.is_err(), "the flush is still in the slow next stage");
    // Two callers wait for the same flush.
    let (a, b) = tokio::join!(p.shutdown(), p.shutdown());
    a.unwrap();
    b.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [4]);
    p.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_without_start_or_data() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = BatchProcessor::new("batch", &config(100, HOUR, 0), &metrics, Arc::new(sink));
    p.shutdown().await.unwrap();
    p.shutdown().await.unwrap();
    assert!(received(&mut rx).is_empty());
}

// ---------------------------------------------------------------------------
// Errors downstream
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn downstream_errors_are_counted_as_dropped() {
    let metrics = Metrics::new();
    let (sink, _rx) = Sink::new();
    *sink.answer.lock().unwrap() = Some(ConsumeError::retryable("backend down"));
    let p = started(config(5, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[3])).await.unwrap();
    p.consume(encoded(&[3])).await.unwrap(); // size trigger: 6 refused
    p.consume(encoded(&[1])).await.unwrap(); // flushed at shutdown: 1 refused
    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_DROPPED_SPANS), 7);
    // As in the collector, failed sends are not recorded as sent batches.
    assert_eq!(send_size_count(&metrics), 0);
    assert_eq!(metrics.counter_total(METRIC_SIZE_TRIGGER), 0);
}

#[tokio::test(start_paused = true)]
async fn partial_rejections_count_only_the_rejected_spans() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    *sink.answer.lock().unwrap() = Some(ConsumeError::PartiallyRejected {
        rejected_spans: 2,
        message: "two were bad".into(),
    });
    let p = started(config(5, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[5])).await.unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [5]);
    assert_eq!(metrics.counter_total(METRIC_DROPPED_SPANS), 2);
    assert_eq!(send_size_count(&metrics), 1);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_next_stage_drops_the_batch_but_not_the_processor() {
    let metrics = Metrics::new();
    let (mut sink, _rx) = Sink::new();
    sink.panic = true;
    let p = started(config(1, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[2])).await.unwrap();
    p.consume(encoded(&[3])).await.unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(metrics.counter_total(METRIC_DROPPED_SPANS), 5);
}

// ---------------------------------------------------------------------------
// Backpressure and concurrency
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stalled_next_stage_slows_the_senders() {
    let metrics = Metrics::new();
    let (mut sink, mut rx) = Sink::new();
    let gate = Arc::new(Semaphore::new(0));
    sink.gate = Some(gate.clone());
    let cfg = config(10, Duration::ZERO, 0);
    let capacity = buffer_capacity(&cfg);
    assert_eq!(capacity, 8192);
    let p = started(cfg, sink, &metrics).await;
    let half = capacity / 2;
    // The first is being sent (stuck at the gate), the second waits in the queue...
    p.consume(encoded(&[half])).await.unwrap();
    p.consume(encoded(&[half])).await.unwrap();
    // ...and the budget is used up: the third sender waits.
    let blocked = tokio::time::timeout(HOUR, p.consume(encoded(&[1]))).await;
    assert!(blocked.is_err(), "consume waits while the buffer is full");
    // Let one batch through: budget comes back and the sender gets in.
    gate.add_permits(1);
    tokio::time::timeout(HOUR, p.consume(encoded(&[1])))
        .await
        .expect("admitted once budget is back")
        .unwrap();
    gate.add_permits(100);
    p.shutdown().await.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [half, half, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_batch_bigger_than_the_buffer_is_still_admitted() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(10, HOUR, 0), sink, &metrics).await;
    p.consume(encoded(&[3])).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), p.consume(encoded(&[20_000])))
        .await
        .expect("not stuck")
        .unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [20_003]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_producers_deliver_every_span_exactly_once() {
    let metrics = Metrics::new();
    let (sink, mut rx) = Sink::new();
    let p = started(config(100, Duration::from_millis(5), 150), sink, &metrics).await;
    let mut producers = Vec::new();
    for producer in 0..16usize {
        let p = p.clone();
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..60usize {
                let shape: Vec<usize> = match (producer + i) % 4 {
                    0 => vec![1],
                    1 => vec![5, 2],
                    2 => vec![37],
                    _ => vec![3, 3, 3],
                };
                let t = if i % 5 == 0 {
                    Traces::new(shape.iter().map(|&n| resource(n)).collect())
                } else {
                    encoded(&shape)
                };
                ids.extend(span_ids(&t));
                p.consume(t).await.unwrap();
            }
            ids
        }));
    }
    let mut sent = Vec::new();
    for producer in producers {
        sent.extend(producer.await.unwrap());
    }
    p.shutdown().await.unwrap();
    let batches = received(&mut rx);
    assert!(batches.iter().all(|b| b.span_count() <= 150));
    let delivered: Vec<u64> = batches.iter().flat_map(span_ids).collect();
    assert_eq!(delivered.len(), sent.len(), "no span lost or duplicated");
    let delivered_set: HashSet<u64> = delivered.iter().copied().collect();
    assert_eq!(delivered_set.len(), delivered.len(), "no duplicates");
    assert_eq!(
        delivered_set,
        sent.iter().copied().collect::<HashSet<u64>>()
    );
    assert_eq!(
        metrics.counter_total(METRIC_SIZE_TRIGGER) + metrics.counter_total(METRIC_TIMEOUT_TRIGGER),
        batches.len() as u64
    );
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn registered_factory_builds_from_yaml() {
    let registration =
        teletrace_core::registry::find(Kind::Processor, "batch").expect("batch is registered");
    assert_eq!(registration.stability, Stability::Beta);
    let FactoryRef::Processor(factory) = registration.factory else {
        panic!("not a processor factory");
    };
    let value: serde_yaml::Value =
        serde_yaml::from_str("send_batch_size: 2\ntimeout: 0s\nmetadata_keys: [tenant]").unwrap();
    let config = factory.parse_config(&value).unwrap();
    let metrics = Metrics::new();
    let ctx = BuildContext {
        id: ComponentId::parse("batch/test").unwrap(),
        pipeline: Some("traces".into()),
        metrics: metrics.clone(),
        host: Host::default(),
    };
    let (sink, mut rx) = Sink::new();
    let p = factory.create(&ctx, config, Arc::new(sink)).unwrap();
    p.start(&Host::default()).await.unwrap();
    p.consume(Traces::default()).await.unwrap();
    p.consume(encoded(&[1])).await.unwrap();
    p.shutdown().await.unwrap();
    p.shutdown().await.unwrap();
    assert_eq!(sizes(&received(&mut rx)), [1]);
    assert!(metrics
        .render()
        .contains("otelcol_processor_batch_batch_size_trigger_send{processor=\"batch/test\"} 1"));
}
