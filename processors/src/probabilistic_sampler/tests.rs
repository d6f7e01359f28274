use super::threshold::Threshold;
use super::tracestate::W3cTraceState;
use super::*;
use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::collections::HashMap;
use std::sync::Mutex;
use teletrace_core::registry::parse_typed_config;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ConsumeError, Consumer, Traces};

fn config(yaml: &str) -> ProbabilisticSamplerConfig {
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    parse_typed_config(&value).unwrap()
}

fn span(trace_id: &[u8], trace_state: &str) -> Span {
    Span {
        trace_id: trace_id.to_vec(),
        span_id: vec![1; 8],
        trace_state: trace_state.into(),
        name: "s".into(),
        ..Default::default()
    }
}

fn with_attr(mut span: Span, key: &str, value: any_value::Value) -> Span {
    span.attributes.push(KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    });
    span
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Deterministic 64-bit generator (splitmix64) for random trace IDs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn trace_id(&mut self) -> Vec<u8> {
        let mut id = self.next().to_be_bytes().to_vec();
        id.extend_from_slice(&self.next().to_be_bytes());
        id
    }
}

#[test]
fn hash_is_fnv1a_32_over_the_little_endian_seed_then_the_bytes() {
    // FNV-1a 32 test vector: "foobar" -> 0xbf9cf968, split as a 4-byte seed + "ar".
    assert_eq!(
        hash_seed_hash(b"ar", u32::from_le_bytes(*b"foob")),
        0xbf9c_f968
    );
    // Offset basis after four zero bytes, computed by hand from the FNV-1a definition.
    let mut h: u32 = 0x811c_9dc5;
    for _ in 0..4 {
        h = h.wrapping_mul(0x0100_0193);
    }
    assert_eq!(hash_seed_hash(b"", 0), h);
}

#[test]
fn hash_seed_bound_is_computed_in_f32_and_truncated() {
    assert_eq!(hash_seed_bound(10.0), 1638);
    assert_eq!(hash_seed_bound(33.3), 5455);
    assert_eq!(hash_seed_bound(15.3), 2506);
    assert_eq!(hash_seed_bound(0.01), 1);
    assert_eq!(hash_seed_bound(100.0), 16384);
    assert_eq!(hash_seed_bound(0.001), 0);
}

/// Fixed trace IDs and seeds; the hashes were computed with an independent FNV-1a
/// implementation, the decisions follow `hash & 0x3FFF < bound`.
#[test]
fn hash_seed_decisions_for_fixed_ids_and_seeds() {
    let cases: [(&str, u32, u32); 9] = [
        ("000102030405060708090a0b0c0d0e0f", 0, 0x1995_bd65),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 0, 0x3420_408d),
        ("0af7651916cd43dd8448eb211c80319c", 0, 0x810d_5de4),
        ("ffffffffffffffffffffffffffffffff", 0, 0x291a_1545),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 22, 0x5610_306b),
        ("0af7651916cd43dd8448eb211c80319c", 22, 0x1032_c19e),
        ("00000000000000000000000000000001", 22, 0x793d_ed30),
        ("4bf92f3577b34da6a3ce929d0e0e4736", 12345, 0x76d6_2160),
        ("ffffffffffffffffffffffffffffffff", 12345, 0x1d2f_9f9c),
    ];
    for (id, seed, hash) in cases {
        let id = hex(id);
        assert_eq!(hash_seed_hash(&id, seed), hash, "{id:?} seed {seed}");
        for pct in [10.0f32, 25.0, 33.3, 50.0, 75.0] {
            let expected = hash & 0x3fff < (pct * 163.84) as u32;
            let d = Decider::new(&config(&format!(
                "mode: hash_seed\nhash_seed: {seed}\nsampling_percentage: {pct}"
            )));
            let mut s = span(&id, "");
            let (keep, policy) = d.decide(&mut s);
            assert_eq!(keep, expected, "{id:?} seed {seed} pct {pct}");
            assert_eq!(policy, Policy::TraceIdHash);
        }
    }
    // The boundary case: 0x291a1545 & 0x3fff = 5445 < 5455 (33.3%) but not < 4096 (25%).
    let id = hex("ffffffffffffffffffffffffffffffff");
    let keep = |pct: f32| {
        Decider::new(&config(&format!(
            "hash_seed: 0\nmode: hash_seed\nsampling_percentage: {pct}"
        )))
        .decide(&mut span(&id, ""))
        .0
    };
    assert!(keep(33.3));
    assert!(!keep(33.2));
}

#[test]
fn hash_seed_writes_randomness_and_threshold_consistent_with_the_decision() {
    let d = Decider::new(&config("hash_seed: 7\nsampling_percentage: 25"));
    let mut rng = SplitMix(1);
    let mut kept = 0;
    for _ in 0..2000 {
        let id = rng.trace_id();
        let mut s = span(&id, "");
        let (keep, _) = d.decide(&mut s);
        let bucket = hash_seed_hash(&id, 7) & 0x3fff;
        assert_eq!(keep, bucket < 4096);
        if keep {
            kept += 1;
            let state = W3cTraceState::parse(&s.trace_state).unwrap();
            let th = state.otel.threshold.unwrap();
            assert_eq!(th.encode().unwrap(), "c", "{}", s.trace_state);
            // A downstream consistent sampler at the same rate keeps it too.
            assert!(th.should_sample(state.otel.randomness.unwrap()));
        } else {
            assert_eq!(s.trace_state, "");
        }
    }
    assert!(kept > 0);
    // An arriving tracestate with consistent-sampling values is not overwritten: the
    // span is decided by fail_closed.
    let mut s = span(&rng.trace_id(), "ot=th:0");
    assert!(!d.decide(&mut s).0);
    let open = Decider::new(&config(
        "hash_seed: 7\nsampling_percentage: 25\nfail_closed: false",
    ));
    let mut s = span(&rng.trace_id(), "ot=th:0");
    assert!(open.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:0");
}

#[test]
fn kept_share_over_a_million_trace_ids_is_within_half_a_point() {
    for yaml in [
        "mode: hash_seed\nsampling_percentage: 10",
        "mode: hash_seed\nhash_seed: 99\nsampling_percentage: 33.3",
        "mode: proportional\nsampling_percentage: 10",
        "mode: proportional\nsampling_percentage: 62.5",
        "mode: equalizing\nsampling_percentage: 1",
        "sampling_rate_per_million: 250000",
    ] {
        let c = config(yaml);
        let d = Decider::new(&c);
        let mut rng = SplitMix(42);
        let n = 1_000_000;
        let mut kept = 0u32;
        let mut s = span(&[0; 16], "");
        for _ in 0..n {
            s.trace_id = rng.trace_id();
            s.trace_state.clear();
            if d.decide(&mut s).0 {
                kept += 1;
            }
        }
        let share = 100.0 * f64::from(kept) / f64::from(n);
        let want = f64::from(c.percentage());
        assert!(
            (share - want).abs() < 0.5,
            "{yaml}: kept {share}% want {want}%"
        );
    }
}

#[test]
fn proportional_mode_uses_the_low_56_bits_and_writes_th() {
    let d = Decider::new(&config("mode: proportional\nsampling_percentage: 25"));
    // Low 56 bits 0xc0000000000000 exactly: kept at threshold c.
    let mut s = span(&hex("ffffffffffffffffffc0000000000000"), "");
    assert_eq!(d.decide(&mut s), (true, Policy::TraceIdW3c));
    assert_eq!(s.trace_state, "ot=th:c");
    let mut s = span(&hex("ffffffffffffffffffbfffffffffffff"), "vendor=x");
    assert!(!d.decide(&mut s).0);
    assert_eq!(s.trace_state, "vendor=x");
    // Explicit rv wins over the trace ID.
    let mut s = span(
        &hex("ffffffffffffffffff00000000000000"),
        "ot=rv:e0000000000000,vendor=x",
    );
    assert_eq!(d.decide(&mut s), (true, Policy::SamplingRandomness));
    assert_eq!(s.trace_state, "ot=rv:e0000000000000;th:c,vendor=x");
    // Arriving at 50% (th:8): proportional multiplies, 50% x 25% = 12.5% (th:e).
    let mut s = span(&hex("fffffffffffffffffff0000000000000"), "ot=th:8");
    let (keep, _) = d.decide(&mut s);
    assert!(keep);
    assert_eq!(s.trace_state, "ot=th:e");
    let mut s = span(&hex("ffffffffffffffffffd0000000000000"), "ot=th:8");
    assert!(!d.decide(&mut s).0);
    // Precision: 10% is e666 with 4 digits, e6 with 2.
    let d = Decider::new(&config(
        "mode: proportional\nsampling_percentage: 10\nsampling_precision: 2",
    ));
    let mut s = span(&hex("ffffffffffffffffffffffffffffffff"), "");
    assert!(d.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:e6");
}

#[test]
fn equalizing_mode_raises_the_threshold_to_its_own() {
    let d = Decider::new(&config("mode: equalizing\nsampling_percentage: 25"));
    let mut s = span(&hex("ffffffffffffffffffe0000000000000"), "ot=th:8");
    assert!(d.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:c");
    // An arriving threshold already above its own stays.
    let mut s = span(&hex("ffffffffffffffffffff000000000000"), "ot=th:f");
    assert!(d.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:f");
}

#[test]
fn inconsistent_or_missing_randomness_follows_fail_closed() {
    let closed = Decider::new(&config("mode: proportional\nsampling_percentage: 100"));
    let open = Decider::new(&config(
        "mode: proportional\nsampling_percentage: 100\nfail_closed: false",
    ));
    // th:c but randomness 0x10...: the arriving threshold is a lie.
    let id = hex("ffffffffffffffffff10000000000000");
    assert!(!closed.decide(&mut span(&id, "ot=th:c")).0);
    let mut s = span(&id, "ot=th:c");
    assert!(open.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:0");
    // No trace ID.
    assert_eq!(
        closed.decide(&mut span(&[], "")),
        (false, Policy::MissingRandomness)
    );
    assert!(open.decide(&mut span(&[0; 16], "")).0);
    // Malformed tracestate.
    assert!(!closed.decide(&mut span(&id, "ot=th:zz")).0);
    assert!(open.decide(&mut span(&id, "ot=th:zz")).0);
}

#[test]
fn sampling_priority_overrides_the_rate() {
    let none = Decider::new(&config(
        "mode: hash_seed\nhash_seed: 3\nsampling_percentage: 0",
    ));
    let all = Decider::new(&config(
        "mode: hash_seed\nhash_seed: 3\nsampling_percentage: 100",
    ));
    let id = hex("4bf92f3577b34da6a3ce929d0e0e4736");
    let base = || span(&id, "");
    use any_value::Value::*;
    let keep_cases = [
        IntValue(1),
        IntValue(-1),
        DoubleValue(-0.5),
        IntValue(10),
        DoubleValue(0.5),
        StringValue("2".into()),
    ];
    for v in keep_cases {
        let mut s = with_attr(base(), "sampling.priority", v.clone());
        assert_eq!(
            none.decide(&mut s),
            (true, Policy::SamplingPriority),
            "{v:?}"
        );
    }
    let drop_cases = [IntValue(0), DoubleValue(0.0), StringValue("0".into())];
    for v in drop_cases {
        let mut s = with_attr(base(), "sampling.priority", v.clone());
        assert_eq!(
            all.decide(&mut s),
            (false, Policy::SamplingPriority),
            "{v:?}"
        );
    }
    // Non-numeric values and other types defer to the rate.
    for v in [StringValue("high".into()), BoolValue(true)] {
        assert!(
            all.decide(&mut with_attr(base(), "sampling.priority", v.clone()))
                .0
        );
        assert!(
            !none
                .decide(&mut with_attr(base(), "sampling.priority", v))
                .0
        );
    }
    // A forced keep records the always-sample threshold.
    let p = Decider::new(&config("mode: proportional\nsampling_percentage: 0.0001"));
    let mut s = with_attr(
        span(&hex("ffffffffffffffffff00000000000000"), ""),
        "sampling.priority",
        IntValue(1),
    );
    assert!(p.decide(&mut s).0);
    assert_eq!(s.trace_state, "ot=th:0");
    let _ = Threshold::ALWAYS;
}

struct Sink(Mutex<Vec<Traces>>);

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.0.lock().unwrap().push(traces);
        Ok(())
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(service.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        schema_url: String::new(),
    }
}

#[tokio::test]
async fn all_spans_of_a_trace_get_the_same_decision_and_are_counted() {
    let sink = Arc::new(Sink(Mutex::new(Vec::new())));
    let metrics = Metrics::new();
    let p = ProbabilisticSampler::new(
        "probabilistic_sampler",
        &config("sampling_percentage: 30"),
        &metrics,
        sink.clone(),
    );
    let mut rng = SplitMix(5);
    let ids: Vec<Vec<u8>> = (0..200).map(|_| rng.trace_id()).collect();
    // Each trace has spans in two services and in two batches.
    let mut total = 0;
    for half in 0..2 {
        let mut rs = Vec::new();
        for service in ["a", "b"] {
            let spans = ids.iter().map(|id| span(id, "")).collect::<Vec<_>>();
            total += spans.len();
            rs.push(resource_spans(&format!("{service}{half}"), spans));
        }
        p.consume(Traces::new(rs)).await.unwrap();
    }
    let mut per_trace: HashMap<Vec<u8>, usize> = HashMap::new();
    for mut t in sink.0.lock().unwrap().drain(..) {
        t.for_each_span(|_, _, s| *per_trace.entry(s.trace_id.clone()).or_default() += 1)
            .unwrap();
    }
    assert!(per_trace.values().all(|&n| n == 4), "{per_trace:?}");
    let kept = per_trace.len();
    assert!(
        (30..=90).contains(&kept),
        "kept {kept} of 200 traces at 30%"
    );
    let sampled = metrics.counter(
        METRIC_COUNT_TRACES_SAMPLED,
        "",
        &[
            ("processor", "probabilistic_sampler"),
            ("policy", "trace_id_w3c"),
            ("sampled", "true"),
        ],
    );
    assert_eq!(sampled.get() as usize, kept * 4);
    assert_eq!(
        metrics.counter_total(METRIC_COUNT_TRACES_SAMPLED) as usize,
        total
    );
}

#[tokio::test]
async fn a_batch_with_nothing_kept_is_not_sent() {
    let sink = Arc::new(Sink(Mutex::new(Vec::new())));
    let p = ProbabilisticSampler::new("p", &config(""), &Metrics::new(), sink.clone());
    p.consume(Traces::new(vec![resource_spans(
        "a",
        vec![span(&[1; 16], "")],
    )]))
    .await
    .unwrap();
    p.consume(Traces::default()).await.unwrap();
    assert!(sink.0.lock().unwrap().is_empty());
}
