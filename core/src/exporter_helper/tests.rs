//! Tests of the queue + retry behaviour with scripted senders, on paused time.

use super::*;
use futures::future::BoxFuture;
use futures::FutureExt;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

type Script = dyn Fn(usize, Traces) -> BoxFuture<'static, Result<(), ConsumeError>> + Send + Sync;

/// A sender whose answer to attempt `n` (from 0) is scripted.
struct Scripted {
    attempts: Arc<AtomicUsize>,
    script: Box<Script>,
}

impl Scripted {
    fn new(
        script: impl Fn(usize, Traces) -> BoxFuture<'static, Result<(), ConsumeError>>
            + Send
            + Sync
            + 'static,
    ) -> (Self, Arc<AtomicUsize>) {
        let attempts = Arc::new(AtomicUsize::new(0));
        (
            Scripted {
                attempts: attempts.clone(),
                script: Box::new(script),
            },
            attempts,
        )
    }
}

#[async_trait]
impl Lifecycle for Scripted {}

#[async_trait]
impl Sender for Scripted {
    async fn send(&self, traces: Traces) -> Result<(), ConsumeError> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        (self.script)(n, traces).await
    }
}

fn batch(spans: usize) -> Traces {
    Traces::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..spans)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: vec![i as u8 + 1; 8],
                    name: format!("s{i}"),
                    ..Span::default()
                })
                .collect(),
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn settings(queue: bool) -> ExporterHelperSettings {
    ExporterHelperSettings {
        timeout: Duration::from_secs(5),
        queue: QueueSettings {
            enabled: queue,
            num_consumers: 1,
            sizer: Sizer::Requests,
            queue_size: 2,
            block_on_overflow: false,
            storage: None,
        },
        retry: RetrySettings {
            enabled: true,
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
            max_elapsed_time: Duration::from_secs(10),
            multiplier: 2.0,
            randomization_factor: 0.0,
        },
    }
}

fn exporter(
    settings: ExporterHelperSettings,
    sender: Scripted,
) -> (QueuedRetryExporter<Scripted>, Metrics) {
    let metrics = Metrics::new();
    let id = ComponentId::parse("otlp/test").unwrap();
    (
        QueuedRetryExporter::new(id, settings, sender, &metrics).unwrap(),
        metrics,
    )
}

fn series(metrics: &Metrics, name: &str) -> Option<String> {
    let prefix = format!("{name}{{exporter=\"otlp/test\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[tokio::test(start_paused = true)]
async fn full_queue_is_a_retryable_error_counted_as_enqueue_failed() {
    // The sender never answers: the one consumer holds a batch, two more fill the queue.
    let (sender, attempts) = Scripted::new(|_, _| futures::future::pending().boxed());
    let mut s = settings(true);
    s.timeout = Duration::ZERO;
    let (exp, metrics) = exporter(s, sender);
    exp.start(&Host::default()).await.unwrap();
    exp.consume(batch(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    exp.admit().expect("room for two more");
    exp.consume(batch(2)).await.unwrap();
    exp.consume(batch(3)).await.unwrap();
    let refusal = exp.admit().unwrap_err();
    assert!(
        refusal.is_retryable() && refusal.message().contains("full"),
        "{refusal}"
    );
    let err = exp.consume(batch(4)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.message().contains("full"), "{err}");
    assert_eq!(exp.queue_len(), 2);
    assert_eq!(
        series(&metrics, METRIC_ENQUEUE_FAILED_SPANS).as_deref(),
        Some("4")
    );
    assert_eq!(series(&metrics, METRIC_QUEUE_SIZE).as_deref(), Some("2"));
    assert_eq!(
        series(&metrics, METRIC_QUEUE_CAPACITY).as_deref(),
        Some("2")
    );
}

/// A started exporter with one consumer, room for two batches, `block_on_overflow` on
/// and no timeout.
async fn blocking_exporter(sender: Scripted) -> (Arc<QueuedRetryExporter<Scripted>>, Metrics) {
    let mut s = settings(true);
    s.timeout = Duration::ZERO;
    s.queue.block_on_overflow = true;
    let (exp, metrics) = exporter(s, sender);
    exp.start(&Host::default()).await.unwrap();
    (Arc::new(exp), metrics)
}

/// `exp.consume(traces)` in a task of its own, to watch it wait.
fn consume_in_task(
    exp: &Arc<QueuedRetryExporter<Scripted>>,
    traces: Traces,
) -> JoinHandle<Result<(), ConsumeError>> {
    let exp = exp.clone();
    tokio::spawn(async move { exp.consume(traces).await })
}

#[tokio::test(start_paused = true)]
async fn block_on_overflow_makes_consume_wait_for_room_instead_of_refusing() {
    // The sender holds each batch until released: one in flight, two queued, then full.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let (sender, attempts) = Scripted::new(move |_, _| {
        let g = g.clone();
        async move {
            g.acquire().await.unwrap().forget();
            Ok(())
        }
        .boxed()
    });
    let (exp, metrics) = blocking_exporter(sender).await;
    exp.consume(batch(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    exp.consume(batch(2)).await.unwrap();
    exp.consume(batch(3)).await.unwrap();
    exp.admit()
        .expect("a blocking queue does not refuse when full");
    let waiting = consume_in_task(&exp, batch(4));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!waiting.is_finished(), "the fourth batch waits for room");
    assert_eq!(exp.queue_len(), 2);
    gate.add_permits(1);
    waiting
        .await
        .unwrap()
        .expect("taken once the consumer made room");
    assert_eq!(exp.queue_len(), 2);
    gate.add_permits(3);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("10"));
    assert_eq!(
        series(&metrics, METRIC_ENQUEUE_FAILED_SPANS).as_deref(),
        Some("0")
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_batch_is_dropped_without_waiting_for_room() {
    let (sender, attempts) = Scripted::new(|_, _| futures::future::pending().boxed());
    let (exp, metrics) = blocking_exporter(sender).await;
    for n in 1..=3 {
        exp.consume(batch(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // One batch in the sender, two queued: full. An empty one neither waits nor queues.
    exp.consume(Traces::default()).await.unwrap();
    assert_eq!(exp.queue_len(), 2);
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(
        series(&metrics, METRIC_ENQUEUE_FAILED_SPANS).as_deref(),
        Some("0")
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_releases_a_consume_waiting_for_room() {
    let (sender, _) = Scripted::new(|_, _| futures::future::pending().boxed());
    let (exp, metrics) = blocking_exporter(sender).await;
    for n in 1..=3 {
        exp.consume(batch(n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiting = consume_in_task(&exp, batch(4));
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiting.is_finished());
    // Shutdown closes the queue; the consumer never finishes, so it is not awaited.
    exp.inner.stop.cancel();
    exp.queue.as_ref().unwrap().close();
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        err.is_retryable() && err.message().contains("closed"),
        "{err}"
    );
    assert_eq!(
        series(&metrics, METRIC_ENQUEUE_FAILED_SPANS).as_deref(),
        Some("4")
    );
}

#[tokio::test(start_paused = true)]
async fn items_sizer_bounds_the_queue_in_spans() {
    // The consumer holds the first batch; then 10 spans of room.
    let (sender, _) = Scripted::new(|_, _| futures::future::pending().boxed());
    let mut s = settings(true);
    s.timeout = Duration::ZERO;
    s.queue.sizer = Sizer::Items;
    s.queue.queue_size = 10;
    let (exp, metrics) = exporter(s, sender);
    exp.start(&Host::default()).await.unwrap();
    exp.consume(batch(50)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    exp.consume(batch(6)).await.unwrap();
    exp.consume(batch(3)).await.unwrap();
    exp.admit().expect("one span of room");
    let err = exp.consume(batch(2)).await.unwrap_err();
    assert!(
        err.is_retryable() && err.message().contains("10 spans"),
        "{err}"
    );
    exp.consume(batch(1)).await.unwrap();
    assert!(exp.admit().unwrap_err().is_retryable());
    assert_eq!((exp.queue_len(), exp.queue_size()), (3, 10));
    assert_eq!(series(&metrics, METRIC_QUEUE_SIZE).as_deref(), Some("10"));
    assert_eq!(
        series(&metrics, METRIC_QUEUE_CAPACITY).as_deref(),
        Some("10")
    );
    assert_eq!(
        series(&metrics, METRIC_ENQUEUE_FAILED_SPANS).as_deref(),
        Some("2")
    );
}

#[test]
fn sizer_is_parsed_with_the_collector_names() {
    let parse = |yaml: &str| serde_yaml::from_str::<QueueSettings>(yaml);
    assert_eq!(parse("{}").unwrap().sizer, Sizer::Requests);
    assert_eq!(parse("sizer: items").unwrap().sizer, Sizer::Items);
    assert_eq!(parse("sizer: bytes").unwrap().sizer, Sizer::Bytes);
    assert!(parse("sizer: spans").is_err());
    assert!(!parse("{}").unwrap().block_on_overflow);
    assert!(parse("block_on_overflow: true").unwrap().block_on_overflow);
}

#[test]
fn queue_keys_replace_only_what_a_config_sets() {
    let own = QueueSettings {
        num_consumers: 2,
        queue_size: 8,
        block_on_overflow: true,
        ..QueueSettings::default()
    };
    let keys = |yaml: &str| serde_yaml::from_str::<QueueKeys>(yaml).map(|k| k.over(own.clone()));
    assert_eq!(keys("{}").unwrap(), own);
    let set = keys("num_consumers: 4\nstorage: /q").unwrap();
    assert_eq!((set.num_consumers, set.queue_size), (4, 8));
    assert!(set.block_on_overflow);
    assert_eq!(set.storage.as_deref(), Some(std::path::Path::new("/q")));
    assert!(keys("num_consumer: 4").is_err(), "unknown keys are refused");
}

#[tokio::test(start_paused = true)]
async fn retry_backs_off_and_a_longer_retry_after_wins() {
    // Attempt 0: throttled for 7s (backoff would say 1s); attempt 1: unavailable (backoff
    // 2s); attempt 2: accepted. 9s in all.
    let (sender, attempts) = Scripted::new(|n, _| {
        async move {
            match n {
                0 => Err(ConsumeError::throttled("slow down", Duration::from_secs(7))),
                1 => Err(ConsumeError::retryable("unavailable")),
                _ => Ok(()),
            }
        }
        .boxed()
    });
    let (exp, metrics) = exporter(settings(false), sender);
    let start = Instant::now();
    exp.consume(batch(3)).await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(start.elapsed(), Duration::from_secs(9));
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("3"));
    assert_eq!(
        series(&metrics, METRIC_SEND_FAILED_SPANS).as_deref(),
        Some("0")
    );
    assert!(
        series(&metrics, METRIC_QUEUE_SIZE).is_none(),
        "no queue, no queue gauge"
    );
}

#[tokio::test(start_paused = true)]
async fn shorter_retry_after_does_not_shorten_the_backoff() {
    let (sender, _) = Scripted::new(|n, _| {
        async move {
            match n {
                0 => Err(ConsumeError::throttled(
                    "slow down",
                    Duration::from_millis(10),
                )),
                _ => Ok(()),
            }
        }
        .boxed()
    });
    let (exp, _) = exporter(settings(false), sender);
    let start = Instant::now();
    exp.consume(batch(1)).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn permanent_error_is_not_retried() {
    let (sender, attempts) =
        Scripted::new(|_, _| async { Err(ConsumeError::permanent("bad data")) }.boxed());
    let (exp, metrics) = exporter(settings(false), sender);
    let err = exp.consume(batch(2)).await.unwrap_err();
    assert!(!err.is_retryable());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(
        series(&metrics, METRIC_SEND_FAILED_SPANS).as_deref(),
        Some("2")
    );
}

#[tokio::test(start_paused = true)]
async fn retries_give_up_at_max_elapsed_time() {
    // Waits 1, 2, 4 (7s spent); the next wait, 4s, would pass 10s: give up after 4 tries.
    let (sender, attempts) =
        Scripted::new(|_, _| async { Err(ConsumeError::retryable("down")) }.boxed());
    let (exp, metrics) = exporter(settings(false), sender);
    let start = Instant::now();
    let err = exp.consume(batch(5)).await.unwrap_err();
    assert!(err.message().contains("no more retries"), "{err}");
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    assert_eq!(start.elapsed(), Duration::from_secs(7));
    assert_eq!(
        series(&metrics, METRIC_SEND_FAILED_SPANS).as_deref(),
        Some("5")
    );
}

#[tokio::test(start_paused = true)]
async fn retry_disabled_fails_on_the_first_retryable_error() {
    let (sender, attempts) =
        Scripted::new(|_, _| async { Err(ConsumeError::retryable("down")) }.boxed());
    let mut s = settings(false);
    s.retry.enabled = false;
    let (exp, _) = exporter(s, sender);
    assert!(exp.consume(batch(1)).await.unwrap_err().is_retryable());
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_request_past_the_timeout_is_retried() {
    let (sender, attempts) = Scripted::new(|n, _| {
        async move {
            if n == 0 {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            Ok(())
        }
        .boxed()
    });
    let (exp, metrics) = exporter(settings(false), sender);
    let start = Instant::now();
    exp.consume(batch(1)).await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(6),
        "5s timeout + 1s backoff"
    );
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("1"));
}

#[tokio::test(start_paused = true)]
async fn partial_rejection_counts_both_sides() {
    let (sender, _) = Scripted::new(|_, _| {
        async {
            Err(ConsumeError::PartiallyRejected {
                rejected_spans: 2,
                message: "too old".into(),
            })
        }
        .boxed()
    });
    let (exp, metrics) = exporter(settings(false), sender);
    assert!(exp.consume(batch(5)).await.is_err());
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("3"));
    assert_eq!(
        series(&metrics, METRIC_SEND_FAILED_SPANS).as_deref(),
        Some("2")
    );
}

#[tokio::test(start_paused = true)]
async fn queued_batches_are_sent_and_shutdown_drains() {
    let (sender, attempts) = Scripted::new(|_, _| {
        async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok(())
        }
        .boxed()
    });
    let mut s = settings(true);
    s.queue.queue_size = 10;
    s.queue.num_consumers = 2;
    let (exp, metrics) = exporter(s, sender);
    // Queued before start: consumers pick them up once started.
    for n in 1..=4 {
        exp.consume(batch(n)).await.unwrap();
    }
    exp.start(&Host::default()).await.unwrap();
    exp.shutdown().await.unwrap();
    exp.shutdown().await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("10"));
    assert_eq!(series(&metrics, METRIC_QUEUE_SIZE).as_deref(), Some("0"));
    let err = exp.consume(batch(1)).await.unwrap_err();
    assert!(err.is_retryable());
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_retrying_and_the_memory_queue_counts_the_loss() {
    let (sender, attempts) =
        Scripted::new(|_, _| async { Err(ConsumeError::retryable("down")) }.boxed());
    let mut s = settings(true);
    s.retry.max_elapsed_time = Duration::ZERO;
    let (exp, metrics) = exporter(s, sender);
    exp.start(&Host::default()).await.unwrap();
    exp.consume(batch(2)).await.unwrap();
    exp.consume(batch(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = attempts.load(Ordering::SeqCst);
    assert_eq!(before, 2, "first batch tried at 0s and 1s");
    exp.shutdown().await.unwrap();
    // The waiting batch is given up at once; the queued one gets one attempt.
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    assert_eq!(
        series(&metrics, METRIC_SEND_FAILED_SPANS).as_deref(),
        Some("5")
    );
    assert_eq!(series(&metrics, METRIC_SENT_SPANS).as_deref(), Some("0"));
}

#[test]
fn invalid_settings_name_the_key() {
    type Change = fn(&mut ExporterHelperSettings);
    let cases: Vec<(Change, &str)> = vec![
        (
            |s| s.queue.num_consumers = 0,
            "sending_queue::num_consumers",
        ),
        (|s| s.queue.queue_size = 0, "sending_queue::queue_size"),
        (
            |s| s.retry.randomization_factor = 1.5,
            "retry_on_failure::randomization_factor",
        ),
        (|s| s.retry.multiplier = 0.0, "retry_on_failure::multiplier"),
    ];
    for (change, key) in cases {
        let mut s = ExporterHelperSettings::default();
        change(&mut s);
        let (sender, _) = Scripted::new(|_, _| async { Ok(()) }.boxed());
        let err = QueuedRetryExporter::new(
            ComponentId::parse("otlp").unwrap(),
            s,
            sender,
            &Metrics::new(),
        )
        .err()
        .unwrap();
        assert!(err.0.starts_with(key), "{err}");
    }
}

#[test]
fn queue_directory_is_one_safe_name_per_exporter() {
    let storage = std::path::Path::new("/var/lib/q");
    let dir = |id: &str| queue_directory(storage, &ComponentId::parse(id).unwrap());
    assert_eq!(dir("otlp"), storage.join("exporter_otlp"));
    assert_eq!(dir("otlp/a b"), storage.join("exporter_otlp%2Fa%20b"));
    assert_eq!(dir("otlp/../x"), storage.join("exporter_otlp%2F..%2Fx"));
}
