use super::*;
use async_trait::async_trait;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, ConsumeError, Consumer, Host, Traces};

/// Counts the spans it takes; its admission answer can be switched off.
#[derive(Default)]
struct Sink {
    spans: AtomicUsize,
    closed: AtomicBool,
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.spans.fetch_add(traces.span_count(), Ordering::SeqCst);
        Ok(())
    }

    fn admit(&self) -> Result<(), ConsumeError> {
        if self.closed.load(Ordering::SeqCst) {
            Err(ConsumeError::retryable("sink closed"))
        } else {
            Ok(())
        }
    }
}

fn spans(n: usize) -> Traces {
    Traces::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: (0..n)
                .map(|i| Span {
                    trace_id: vec![1; 16],
                    span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                    name: "op".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }])
}

fn parse(yaml: &str) -> MemoryLimiterConfig {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    teletrace_core::registry::parse_typed_config(&value).unwrap()
}

/// A processor over a memory source the test controls.
fn controlled(usage_mib: u64) -> (Arc<AtomicU64>, MemoryLimiterProcessor, Arc<Sink>, Metrics) {
    let usage = Arc::new(AtomicU64::new(usage_mib * MIB));
    let read = usage.clone();
    let source = MemorySource {
        measure: Arc::new(move || Some(read.load(Ordering::SeqCst))),
        release: Arc::new(|| {}),
    };
    let config = parse("check_interval: 1h\nlimit_mib: 100\nspike_limit_mib: 20");
    let limits = Limits::resolve(&config, || Err("fixed".into())).unwrap();
    let limiter = Arc::new(Limiter::new("memory_limiter", &config, limits, source));
    let metrics = Metrics::new();
    let sink = Arc::new(Sink::default());
    let p = MemoryLimiterProcessor::new("memory_limiter", limiter, &metrics, sink.clone());
    (usage, p, sink, metrics)
}

#[tokio::test]
async fn passes_data_below_the_soft_limit_and_refuses_above() {
    let (usage, p, sink, metrics) = controlled(10);
    p.consume(spans(3)).await.unwrap();
    assert!(p.admit().is_ok());
    assert_eq!(sink.spans.load(Ordering::SeqCst), 3);

    usage.store(81 * MIB, Ordering::SeqCst);
    p.limiter().check(false);
    let e = p.consume(spans(5)).await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(e.message().contains("soft limit of 80 MiB"), "{e}");
    let e = p.admit().unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert_eq!(sink.spans.load(Ordering::SeqCst), 3, "nothing passed on");

    usage.store(40 * MIB, Ordering::SeqCst);
    p.limiter().check(false);
    p.consume(spans(2)).await.unwrap();
    assert_eq!(sink.spans.load(Ordering::SeqCst), 5);

    assert_eq!(metrics.counter_total(METRIC_ACCEPTED_SPANS), 5);
    assert_eq!(metrics.counter_total(METRIC_REFUSED_SPANS), 5);
    assert_eq!(metrics.counter_total(METRIC_REFUSED_REQUESTS), 1);
    let text = metrics.render();
    assert!(
        text.contains(
            r#"otelcol_processor_memory_limiter_accepted_spans{processor="memory_limiter"} 5"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn admit_asks_the_next_stage_when_memory_is_fine() {
    let (_usage, p, sink, _metrics) = controlled(10);
    assert!(p.admit().is_ok());
    sink.closed.store(true, Ordering::SeqCst);
    assert_eq!(p.admit().unwrap_err().message(), "sink closed");
}

fn build(yaml: &str) -> (Arc<dyn teletrace_core::Processor>, Arc<Sink>, Metrics) {
    let metrics = Metrics::new();
    let ctx = BuildContext {
        id: ComponentId::parse("memory_limiter/test").unwrap(),
        pipeline: Some("traces".into()),
        metrics: metrics.clone(),
        host: Host::default(),
    };
    let sink = Arc::new(Sink::default());
    let p = MemoryLimiterFactory
        .create(&ctx, parse(yaml), sink.clone())
        .unwrap();
    (p, sink, metrics)
}

#[tokio::test]
async fn measures_this_process() {
    // This test process holds far more than 2 MiB, so it is over the limit at once.
    let (p, sink, metrics) = build("check_interval: 10ms\nlimit_mib: 2");
    p.start(&Host::default()).await.unwrap();
    assert!(p.admit().is_err());
    assert!(p.consume(spans(4)).await.is_err());
    assert_eq!(sink.spans.load(Ordering::SeqCst), 0);
    assert_eq!(metrics.counter_total(METRIC_REFUSED_SPANS), 4);
    p.shutdown().await.unwrap();
    p.shutdown().await.unwrap();

    // And far less than a tebibyte.
    let (p, sink, _) = build("check_interval: 10ms\nlimit_mib: 1048576");
    p.start(&Host::default()).await.unwrap();
    p.consume(spans(4)).await.unwrap();
    assert!(p.admit().is_ok());
    assert_eq!(sink.spans.load(Ordering::SeqCst), 4);
    p.shutdown().await.unwrap();
}

#[tokio::test]
async fn percentage_limits_use_the_available_memory() {
    // 99% of the memory available to this process: far above what the test holds.
    let (p, sink, _) =
        build("check_interval: 10ms\nlimit_percentage: 100\nspike_limit_percentage: 1");
    p.start(&Host::default()).await.unwrap();
    p.consume(spans(1)).await.unwrap();
    assert!(p.admit().is_ok());
    assert_eq!(sink.spans.load(Ordering::SeqCst), 1);
    p.shutdown().await.unwrap();
}

#[tokio::test]
async fn monitor_thread_resumes_after_memory_is_freed() {
    // The limit sits a little above this process's current RSS; holding a big block
    // pushes it over, dropping the block (and releasing freed memory) brings it back.
    let rss = teletrace_core::memory::rss_bytes().unwrap();
    let limit_mib = rss / MIB + 64;
    let (p, sink, _) = build(&format!(
        "check_interval: 5ms\nlimit_mib: {limit_mib}\nspike_limit_mib: 16\n\
         min_gc_interval_when_soft_limited: 0s"
    ));
    p.start(&Host::default()).await.unwrap();
    p.consume(spans(1)).await.unwrap();
    let block = vec![7u8; 128 * MIB as usize];
    wait_until(|| p.admit().is_err()).await;
    assert!(p.consume(spans(1)).await.is_err());
    drop(block);
    wait_until(|| p.admit().is_ok()).await;
    p.consume(spans(1)).await.unwrap();
    assert_eq!(sink.spans.load(Ordering::SeqCst), 2);
    p.shutdown().await.unwrap();
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition never held"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
