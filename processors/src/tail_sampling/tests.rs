use super::policy::{final_decision, fnv1a_64, probabilistic_threshold, Decision};
use super::*;
use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ConsumeError, Consumer, Host, Lifecycle, Traces};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn config(yaml: &str) -> TailSamplingConfig {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    parse_typed_config(&value).unwrap_or_else(|e| panic!("{e}"))
}

/// Trace ID of trace `n`: 12 pseudo-random bytes (splitmix64 of `n`), then `n`.
fn tid(n: u32) -> [u8; 16] {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut id = [0; 16];
    id[..8].copy_from_slice(&mix(u64::from(n)).to_be_bytes());
    id[8..12].copy_from_slice(&mix(u64::from(n) << 32).to_be_bytes()[..4]);
    id[12..].copy_from_slice(&n.to_be_bytes());
    id
}

/// A span of trace `n` from `start_ms` to `end_ms` (relative to T0).
fn span(n: u32, start_ms: u64, end_ms: u64) -> Span {
    Span {
        trace_id: tid(n).to_vec(),
        span_id: vec![n as u8, 1, 2, 3, 4, 5, 6, 7],
        name: format!("op-{n}"),
        start_time_unix_nano: T0 + start_ms * MS,
        end_time_unix_nano: T0 + end_ms * MS,
        ..Default::default()
    }
}

fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn with(mut s: Span, key: &str, value: Value) -> Span {
    s.attributes.push(attr(key, value));
    s
}

fn status(mut s: Span, code: StatusCode) -> Span {
    s.status = Some(Status {
        code: code as i32,
        message: String::new(),
    });
    s
}

fn batch_with_resource(resource: Vec<KeyValue>, spans: Vec<Span>) -> Traces {
    Traces::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }])
}

fn batch(spans: Vec<Span>) -> Traces {
    batch_with_resource(
        vec![attr("service.name", Value::StringValue("svc".into()))],
        spans,
    )
}

#[derive(Default)]
struct Sink {
    batches: Mutex<Vec<Traces>>,
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.batches.lock().unwrap().push(traces);
        Ok(())
    }
}

impl Sink {
    /// Spans received, by trace number, with the service name of their resource.
    fn spans(&self) -> BTreeMap<u32, Vec<(String, Span)>> {
        let mut out: BTreeMap<u32, Vec<(String, Span)>> = BTreeMap::new();
        for t in self.batches.lock().unwrap().iter() {
            let mut t = Traces::from_encoded(t.to_encoded()).unwrap();
            t.for_each_span(|r, _, s| {
                let service = r
                    .attributes
                    .iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref()?.value.clone())
                    .map(|v| match v {
                        Value::StringValue(s) => s,
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                let n = u32::from_be_bytes(s.trace_id[12..16].try_into().unwrap());
                out.entry(n).or_default().push((service, s.clone()));
            })
            .unwrap();
        }
        out
    }

    fn kept(&self) -> HashSet<u32> {
        self.spans().into_keys().collect()
    }
}

struct Harness {
    sampler: TailSampler,
    sink: Arc<Sink>,
    metrics: Metrics,
}

async fn harness(yaml: &str) -> Harness {
    let sink = Arc::new(Sink::default());
    let metrics = Metrics::new();
    let sampler = TailSampler::new("tail_sampling", &config(yaml), &metrics, sink.clone()).unwrap();
    sampler.start(&Host::default()).await.unwrap();
    Harness {
        sampler,
        sink,
        metrics,
    }
}

/// Feeds the batches, shuts down (which decides everything) and returns the kept traces.
async fn kept_after_shutdown(yaml: &str, batches: Vec<Traces>) -> (HashSet<u32>, Harness) {
    let h = harness(yaml).await;
    for b in batches {
        h.sampler.consume(b).await.unwrap();
    }
    h.sampler.shutdown().await.unwrap();
    (h.sink.kept(), h)
}

fn policies(list: &str) -> String {
    format!("decision_wait: 1h\npolicies:\n{list}")
}

fn set(items: &[u32]) -> HashSet<u32> {
    items.iter().copied().collect()
}

// ---------------------------------------------------------------------------
// Final decision
// ---------------------------------------------------------------------------

#[test]
fn final_decision_follows_the_collector() {
    use Decision::*;
    assert!(final_decision([Sampled, NotSampled]));
    assert!(!final_decision([NotSampled]));
    assert!(!final_decision([]));
    assert!(!final_decision([Sampled, Dropped]));
    assert!(!final_decision([Sampled, InvertNotSampled]));
    assert!(final_decision([InvertSampled]));
    assert!(!final_decision([InvertSampled, NotSampled]));
    assert!(final_decision([InvertSampled, NotSampled, Sampled]));
}

// ---------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------

#[tokio::test]
async fn always_sample_keeps_every_span_with_its_resource() {
    let (kept, h) = kept_after_shutdown(
        &policies("  - {name: all, type: always_sample}"),
        vec![
            batch(vec![span(1, 0, 10), span(2, 0, 10), span(1, 5, 8)]),
            batch_with_resource(
                vec![attr("service.name", Value::StringValue("other".into()))],
                vec![span(1, 1, 2)],
            ),
        ],
    )
    .await;
    assert_eq!(kept, set(&[1, 2]));
    let spans = h.sink.spans();
    let services: Vec<&str> = spans[&1].iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(spans[&1].len(), 3);
    assert!(
        services.contains(&"svc") && services.contains(&"other"),
        "{services:?}"
    );
    let sampled = h.metrics.counter(
        METRIC_COUNT_TRACES_SAMPLED,
        "",
        &[
            ("processor", "tail_sampling"),
            ("policy", "all"),
            ("sampled", "true"),
        ],
    );
    assert_eq!(sampled.get(), 2);
    assert_eq!(
        h.metrics.counter_total(METRIC_GLOBAL_COUNT_TRACES_SAMPLED),
        2
    );
}

#[tokio::test]
async fn latency_uses_earliest_start_to_latest_end() {
    // Trace 1: no span is long, but the trace spans 1500 ms. Trace 2: 500 ms.
    // Trace 3: 2500 ms. Trace 4: exactly 1000 ms.
    let spans = vec![
        span(1, 0, 600),
        span(1, 900, 1500),
        span(2, 0, 500),
        span(3, 100, 2600),
        span(4, 0, 1000),
    ];
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: slow, type: latency, latency: {threshold_ms: 1000}}"),
        vec![batch(spans.clone())],
    )
    .await;
    assert_eq!(kept, set(&[1, 3, 4]));
    let (kept, _) = kept_after_shutdown(
        &policies(
            "  - {name: band, type: latency, latency: {threshold_ms: 1000, upper_threshold_ms: 2000}}",
        ),
        vec![batch(spans)],
    )
    .await;
    // The band is (1000, 2000]: exactly 1000 ms is out, as in the collector.
    assert_eq!(kept, set(&[1]));
}

#[tokio::test]
async fn status_code_matches_any_span() {
    let spans = vec![
        span(1, 0, 1),
        status(span(1, 0, 1), StatusCode::Error),
        status(span(2, 0, 1), StatusCode::Ok),
        span(3, 0, 1),
    ];
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}"),
        vec![batch(spans.clone())],
    )
    .await;
    assert_eq!(kept, set(&[1]));
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: s, type: status_code, status_code: {status_codes: [OK, UNSET]}}"),
        vec![batch(spans)],
    )
    .await;
    assert_eq!(kept, set(&[1, 2, 3]));
}

#[test]
fn probabilistic_hash_is_fnv1a_64() {
    // FNV-1a 64 test vectors.
    assert_eq!(fnv1a_64(b"", b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a_64(b"foo", b"bar"), 0x8594_4171_f739_67e8);
    assert_eq!(probabilistic_threshold(1.0), u64::MAX);
    assert_eq!(probabilistic_threshold(0.0), 0);
    assert_eq!(probabilistic_threshold(0.5), 1 << 63);
}

#[tokio::test]
async fn probabilistic_samples_by_salted_hash() {
    let n = 4000u32;
    let spans: Vec<Span> = (0..n).map(|i| span(i, 0, 1)).collect();
    let (kept, _) = kept_after_shutdown(
        &policies(
            "  - {name: p, type: probabilistic, probabilistic: {hash_salt: salty, sampling_percentage: 25}}",
        ),
        vec![batch(spans)],
    )
    .await;
    let threshold = probabilistic_threshold(0.25);
    let expected: HashSet<u32> = (0..n)
        .filter(|&i| fnv1a_64(b"salty", &tid(i)) <= threshold)
        .collect();
    assert_eq!(kept, expected);
    // Binomial(4000, 0.25): sd ~ 27; allow 5 sd.
    assert!((865..=1135).contains(&kept.len()), "{}", kept.len());
}

#[tokio::test]
async fn string_attribute_looks_at_spans_and_resources() {
    let batches = || {
        vec![
            batch(vec![with(
                span(1, 0, 1),
                "env",
                Value::StringValue("prod".into()),
            )]),
            batch_with_resource(
                vec![attr("env", Value::StringValue("prod".into()))],
                vec![span(2, 0, 1)],
            ),
            batch(vec![
                with(span(3, 0, 1), "env", Value::StringValue("dev".into())),
                span(3, 0, 1),
            ]),
            batch(vec![with(
                span(4, 0, 1),
                "env",
                Value::StringValue("production-eu".into()),
            )]),
            batch(vec![with(span(5, 0, 1), "env", Value::IntValue(1))]),
        ]
    };
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: s, type: string_attribute, string_attribute: {key: env, values: [prod, staging]}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[1, 2]));
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: s, type: string_attribute, string_attribute: {key: env, values: ['^prod'], enabled_regex_matching: true}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[1, 2, 4]));
    // invert_match: keep traces where nothing matches.
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: s, type: string_attribute, string_attribute: {key: env, values: [prod], invert_match: true}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[3, 4, 5]));
    // An inverted non-match vetoes other policies' sampled decisions...
    let (kept, _) = kept_after_shutdown(
        &policies(
            "  - {name: all, type: always_sample}\n  - {name: s, type: string_attribute, string_attribute: {key: env, values: [dev], invert_match: true}}",
        ),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[1, 2, 4, 5]));
    // ...and an inverted match does not keep a trace another policy said no to.
    let (kept, _) = kept_after_shutdown(
        &policies(
            "  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}\n  - {name: s, type: string_attribute, string_attribute: {key: env, values: [dev], invert_match: true}}",
        ),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[]));
}

#[tokio::test]
async fn numeric_and_boolean_attributes() {
    let batches = || {
        vec![batch(vec![
            with(span(1, 0, 1), "http.status_code", Value::IntValue(503)),
            with(span(2, 0, 1), "http.status_code", Value::IntValue(200)),
            with(span(3, 0, 1), "http.status_code", Value::DoubleValue(503.0)),
            with(span(4, 0, 1), "debug", Value::BoolValue(true)),
            with(span(5, 0, 1), "debug", Value::BoolValue(false)),
        ])]
    };
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[1]));
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, max_value: 300}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[2]));
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: n, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, invert_match: true}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[2, 3, 4, 5]));
    let (kept, _) = kept_after_shutdown(
        &policies(
            "  - {name: b, type: boolean_attribute, boolean_attribute: {key: debug, value: true}}",
        ),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[4]));
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: b, type: boolean_attribute, boolean_attribute: {key: debug, value: true, invert_match: true}}"),
        batches(),
    )
    .await;
    assert_eq!(kept, set(&[1, 2, 3, 5]));
}

#[tokio::test]
async fn span_count_counts_spans_across_batches() {
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: c, type: span_count, span_count: {min_spans: 3, max_spans: 4}}"),
        vec![
            batch(vec![span(1, 0, 1), span(1, 0, 1), span(2, 0, 1)]),
            batch(vec![
                span(1, 0, 1),
                span(2, 0, 1),
                span(3, 0, 1),
                span(3, 0, 1),
            ]),
            batch(vec![span(3, 0, 1), span(3, 0, 1), span(3, 0, 1)]),
        ],
    )
    .await;
    assert_eq!(kept, set(&[1]));
}

#[tokio::test]
async fn rate_limiting_caps_spans_per_second() {
    tokio::time::pause();
    // Traces of 3 spans; budget 10 spans/s, kept while the total stays below 10.
    let h = harness(
        "decision_wait: 1s\npolicies:\n  - {name: r, type: rate_limiting, rate_limiting: {spans_per_second: 10}}",
    )
    .await;
    let three = |n| vec![span(n, 0, 1), span(n, 0, 1), span(n, 0, 1)];
    // One batch per trace, so they arrive (and are decided) in this order.
    for n in 1..=5 {
        h.sampler.consume(batch(three(n))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.sink.kept(), set(&[1, 2, 3]));
    // A new second has a new budget.
    for n in 6..=9 {
        h.sampler.consume(batch(three(n))).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.sink.kept(), set(&[1, 2, 3, 6, 7, 8]));
    h.sampler.shutdown().await.unwrap();
}

#[tokio::test]
async fn trace_state_matches_a_member_value() {
    let mut a = span(1, 0, 1);
    a.trace_state = "ot=th:8, vendor=gold".into();
    let mut b = span(2, 0, 1);
    b.trace_state = "vendor=silver".into();
    let (kept, _) = kept_after_shutdown(
        &policies("  - {name: t, type: trace_state, trace_state: {key: vendor, values: [gold, platinum]}}"),
        vec![batch(vec![a, b, span(3, 0, 1)])],
    )
    .await;
    assert_eq!(kept, set(&[1]));
}

#[tokio::test]
async fn and_needs_every_sub_policy() {
    let spans = vec![
        with(
            with(span(1, 0, 1), "n", Value::IntValue(7)),
            "s",
            Value::StringValue("x".into()),
        ),
        with(span(2, 0, 1), "n", Value::IntValue(7)),
        with(span(3, 0, 1), "s", Value::StringValue("x".into())),
        // Matches spread over two spans of the trace count too.
        with(span(4, 0, 1), "n", Value::IntValue(9)),
        with(span(4, 0, 1), "s", Value::StringValue("x".into())),
    ];
    let (kept, _) = kept_after_shutdown(
        &policies(
            r#"  - name: both
    type: and
    and:
      and_sub_policy:
        - {name: n, type: numeric_attribute, numeric_attribute: {key: n, min_value: 5, max_value: 10}}
        - {name: s, type: string_attribute, string_attribute: {key: s, values: [x]}}"#,
        ),
        vec![batch(spans)],
    )
    .await;
    assert_eq!(kept, set(&[1, 4]));
}

#[tokio::test]
async fn composite_shares_the_rate_by_percent_in_order() {
    // 10 spans/s: 50% (5) for errors, 50% (5) for the rest. Ten one-span error traces
    // arrive first, then ten OK ones: errors take 5, the next 5 errors use the rest's
    // budget, and no OK trace is left room.
    let mut spans: Vec<Span> = (0..10)
        .map(|i| status(span(i, 0, 1), StatusCode::Error))
        .collect();
    spans.extend((10..20).map(|i| span(i, 0, 1)));
    let mut batches = Vec::new();
    for s in spans {
        batches.push(batch(vec![s]));
    }
    let (kept, _) = kept_after_shutdown(
        &policies(
            r#"  - name: c
    type: composite
    composite:
      max_total_spans_per_second: 10
      policy_order: [errors, rest]
      composite_sub_policy:
        - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
        - {name: rest, type: always_sample}
      rate_allocation:
        - {policy: errors, percent: 50}
        - {policy: rest, percent: 50}"#,
        ),
        batches,
    )
    .await;
    assert_eq!(kept, (0..10).collect());
}

#[tokio::test]
async fn drop_overrides_every_other_policy() {
    let spans = vec![
        with(
            span(1, 0, 1),
            "url.path",
            Value::StringValue("/health".into()),
        ),
        with(
            span(2, 0, 1),
            "url.path",
            Value::StringValue("/checkout".into()),
        ),
        status(
            with(
                span(3, 0, 1),
                "url.path",
                Value::StringValue("/health".into()),
            ),
            StatusCode::Error,
        ),
    ];
    let (kept, _) = kept_after_shutdown(
        &policies(
            r#"  - {name: all, type: always_sample}
  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
  - name: no-health
    type: drop
    drop:
      drop_sub_policy:
        - {name: health, type: string_attribute, string_attribute: {key: url.path, values: [/health]}}"#,
        ),
        vec![batch(spans)],
    )
    .await;
    assert_eq!(kept, set(&[2]));
}

#[tokio::test]
async fn sample_on_first_match_stops_evaluating() {
    let yaml = "decision_wait: 1h\nsample_on_first_match: true\npolicies:\n  - {name: all, type: always_sample}\n  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}";
    let (kept, h) = kept_after_shutdown(yaml, vec![batch(vec![span(1, 0, 1)])]).await;
    assert_eq!(kept, set(&[1]));
    let errors_evaluated = h.metrics.counter(
        METRIC_COUNT_TRACES_SAMPLED,
        "",
        &[
            ("processor", "tail_sampling"),
            ("policy", "errors"),
            ("sampled", "false"),
        ],
    );
    assert_eq!(errors_evaluated.get(), 0);
}

// ---------------------------------------------------------------------------
// Timing, late spans, memory bound, shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn traces_are_decided_after_decision_wait_and_late_spans_follow() {
    tokio::time::pause();
    let h = harness(
        "decision_wait: 5s\npolicies:\n  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}",
    )
    .await;
    h.sampler
        .consume(batch(vec![
            status(span(1, 0, 1), StatusCode::Error),
            span(2, 0, 1),
        ]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(h.sink.kept().is_empty(), "decided before decision_wait");
    assert_eq!(h.sampler.pending(), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.sink.kept(), set(&[1]));
    assert_eq!(h.sampler.pending(), 0);
    // Late spans: trace 1 was sampled, so they go on at once; trace 2's are dropped.
    h.sampler
        .consume(batch(vec![span(1, 5, 6), span(2, 5, 6)]))
        .await
        .unwrap();
    let spans = h.sink.spans();
    assert_eq!(spans[&1].len(), 2);
    assert!(!spans.contains_key(&2));
    assert_eq!(h.sampler.pending(), 0);
    h.sampler.shutdown().await.unwrap();
    assert_eq!(h.sink.spans()[&1].len(), 2);
}

#[tokio::test]
async fn decision_cache_serves_late_spans_after_the_trace_left_memory() {
    tokio::time::pause();
    let h = harness(
        "decision_wait: 1s\nnum_traces: 2\ndecision_cache: {sampled_cache_size: 10, non_sampled_cache_size: 10}\npolicies:\n  - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}",
    )
    .await;
    h.sampler
        .consume(batch(vec![
            status(span(1, 0, 1), StatusCode::Error),
            span(2, 0, 1),
        ]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(h.sink.kept(), set(&[1]));
    // Two new traces push 1 and 2 out of memory (they were decided: not too early).
    h.sampler
        .consume(batch(vec![span(3, 0, 1), span(4, 0, 1)]))
        .await
        .unwrap();
    assert_eq!(h.sampler.traces_in_memory(), 2);
    assert_eq!(h.metrics.counter_total(METRIC_DROPPED_TOO_EARLY), 0);
    h.sampler
        .consume(batch(vec![span(1, 7, 8), span(2, 7, 8)]))
        .await
        .unwrap();
    assert_eq!(h.sink.spans()[&1].len(), 2);
    assert!(!h.sink.kept().contains(&2));
    assert_eq!(h.metrics.counter_total(METRIC_CACHE_DECISIONS), 2);
    // Still only traces 3 and 4 in memory: cached traces do not come back.
    assert_eq!(h.sampler.traces_in_memory(), 2);
    h.sampler.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_flood_of_new_traces_evicts_the_oldest_undecided() {
    tokio::time::pause();
    let h = harness(
        "decision_wait: 10s\nnum_traces: 100\npolicies:\n  - {name: all, type: always_sample}",
    )
    .await;
    for chunk in 0..10u32 {
        let spans = (chunk * 100..chunk * 100 + 100)
            .map(|i| span(i, 0, 1))
            .collect();
        h.sampler.consume(batch(spans)).await.unwrap();
    }
    assert_eq!(h.sampler.traces_in_memory(), 100);
    assert_eq!(h.metrics.counter_total(METRIC_DROPPED_TOO_EARLY), 900);
    assert_eq!(h.metrics.counter_total(METRIC_NEW_TRACE_ID_RECEIVED), 1000);
    // The newest 100 survive and are decided (here at shutdown).
    h.sampler.shutdown().await.unwrap();
    assert_eq!(h.sink.kept(), (900..1000).collect());
}

#[tokio::test]
async fn shutdown_decides_and_flushes_pending_traces() {
    let h = harness("decision_wait: 1h\npolicies:\n  - {name: all, type: always_sample}").await;
    let spans: Vec<Span> = (0..20_000).map(|i| span(i, 0, 1)).collect();
    h.sampler.consume(batch(spans)).await.unwrap();
    assert!(h.sink.kept().is_empty());
    h.sampler.shutdown().await.unwrap();
    assert_eq!(h.sink.kept().len(), 20_000);
    // Sent in batches of about MAX_BATCH_SPANS.
    assert_eq!(h.sink.batches.lock().unwrap().len(), 3);
    h.sampler.shutdown().await.unwrap();
    let e = h
        .sampler
        .consume(batch(vec![span(1, 0, 1)]))
        .await
        .unwrap_err();
    assert!(e.is_retryable());
}

#[tokio::test]
async fn bad_regex_in_a_built_config_is_an_error_naming_the_policy() {
    // Validation refuses it first; building from an unvalidated config does too.
    let mut c = config("policies: [{name: all, type: always_sample}]");
    c.policies[0] = config(
        "policies: [{name: re, type: string_attribute, string_attribute: {key: k, values: [a]}}]",
    )
    .policies[0]
        .clone();
    c.policies[0].string_attribute.enabled_regex_matching = true;
    c.policies[0].string_attribute.values = vec!["(".into()];
    let e = TailSampler::new("t", &c, &Metrics::new(), Arc::new(Sink::default()))
        .err()
        .unwrap();
    assert!(e.contains("\"re\""), "{e}");
}
