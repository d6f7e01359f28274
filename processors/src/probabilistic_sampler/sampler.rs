//! The per-span decision of the `probabilistic_sampler` and the processor around it.
//!
//! Each span is decided on its own, as in the collector, from its trace ID (and
//! tracestate), so every span of a trace gets the same decision wherever it is sampled;
//! only a `sampling.priority` attribute can single out one span.

use super::config::{Mode, ProbabilisticSamplerConfig};
use super::threshold::{trace_id_randomness, Threshold, MIN_SAMPLING_PROBABILITY};
use super::tracestate::{OtelTraceState, W3cTraceState};
use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::Arc;
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{ConsumeError, Consumer, ConsumerRef, Lifecycle, Processor, Traces};

/// Counter of spans decided, by `policy` (what decided) and `sampled` (`true`/`false`),
/// as the collector names it.
pub const METRIC_COUNT_TRACES_SAMPLED: &str =
    "otelcol_processor_probabilistic_sampler_count_traces_sampled";

/// `hash_seed` mode: buckets of the 14-bit hash.
const NUM_HASH_BUCKETS: u32 = 0x4000;
/// `hash_seed` mode: mask of the 14 bits compared.
const HASH_BUCKET_MASK: u32 = NUM_HASH_BUCKETS - 1;
/// `hash_seed` mode: the collector's `numHashBuckets / 100` in 32-bit float.
const PERCENTAGE_SCALE_FACTOR: f32 = NUM_HASH_BUCKETS as f32 / 100.0;

/// FNV-1a 32-bit offset basis and prime.
const FNV32_OFFSET: u32 = 0x811c_9dc5;
const FNV32_PRIME: u32 = 0x0100_0193;

/// The collector's hash: FNV-1a 32 over the seed (4 bytes, little endian), then `bytes`.
pub fn hash_seed_hash(bytes: &[u8], seed: u32) -> u32 {
    fnv1a_continue(seeded_state(seed), bytes)
}

/// The FNV-1a state after the seed's 4 bytes: the same for every span of a config, so
/// the decider computes it once.
fn seeded_state(seed: u32) -> u32 {
    fnv1a_continue(FNV32_OFFSET, &seed.to_le_bytes())
}

/// FNV-1a 32 over `bytes`, starting from `state`.
fn fnv1a_continue(mut state: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        state ^= u32::from(b);
        state = state.wrapping_mul(FNV32_PRIME);
    }
    state
}

/// The `hash_seed` mode's acceptance bound: a trace is kept when
/// `hash & 0x3FFF < bound`. Computed in 32-bit float and truncated, as the collector does.
pub fn hash_seed_bound(percentage: f32) -> u32 {
    (percentage.min(100.0) * PERCENTAGE_SCALE_FACTOR) as u32
}

/// The `hash_seed` mode's 56-bit randomness for a hash, built as the collector does so
/// that `th` written by it is consistent with the 14-bit decision.
fn hash_randomness(hash: u32) -> u64 {
    let hashed = u64::from(hash & HASH_BUCKET_MASK);
    let rprime14 = u64::from(NUM_HASH_BUCKETS) - 1 - hashed;
    let unused18 = u64::from(hash >> 14);
    let mixed28 = unused18 ^ (unused18 << 10);
    (rprime14 << 42) | ((mixed28 & ((1 << 28) - 1)) << 14) | hashed
}

/// What decided a span (the `policy` label of [`METRIC_COUNT_TRACES_SAMPLED`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The `hash_seed` hash of the trace ID.
    TraceIdHash,
    /// The trace ID's low 56 bits (consistent modes).
    TraceIdW3c,
    /// An explicit `rv` in the tracestate.
    SamplingRandomness,
    /// The `sampling.priority` attribute.
    SamplingPriority,
    /// No randomness could be found; `fail_closed` decided.
    MissingRandomness,
}

impl Policy {
    const ALL: [Policy; 5] = [
        Policy::TraceIdHash,
        Policy::TraceIdW3c,
        Policy::SamplingRandomness,
        Policy::SamplingPriority,
        Policy::MissingRandomness,
    ];

    /// The label value, as in the collector.
    pub fn name(self) -> &'static str {
        match self {
            Policy::TraceIdHash => "trace_id_hash",
            Policy::TraceIdW3c => "trace_id_w3c",
            Policy::SamplingRandomness => "sampling_randomness",
            Policy::SamplingPriority => "sampling_priority",
            Policy::MissingRandomness => "missing_randomness",
        }
    }
}

/// The decision machinery for one config, shared by the processor and the benchmark.
#[derive(Debug, Clone)]
pub struct Decider {
    kind: Kind,
    fail_closed: bool,
    /// `hash_seed` mode: the FNV-1a state after the seed bytes.
    seeded: u32,
    /// `hash_seed` mode: `;th:<threshold>` as a kept span's fresh tracestate ends (empty
    /// when no threshold is written), so the hot path formats only `rv`.
    th_suffix: String,
    /// `proportional` mode: the threshold for a span arriving without tracestate, and the
    /// tracestate a kept one leaves with (the same for every such span).
    proportional_fresh: Option<(Threshold, String)>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Rate 0: nothing is kept (unless `sampling.priority` says so).
    Never,
    /// `hash_seed`.
    Hash {
        seed: u32,
        bound: u32,
        threshold: Threshold,
    },
    /// `proportional`.
    Proportional { ratio: f64, precision: u32 },
    /// `equalizing`.
    Equalizing { threshold: Threshold },
}

/// What `sampling.priority` says about a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Priority {
    Defer,
    Keep,
    Drop,
}

impl Decider {
    /// Builds the decider for a validated config.
    pub fn new(config: &ProbabilisticSamplerConfig) -> Decider {
        let pct = config.percentage();
        let fail_closed = config.fail_closed;
        if pct <= 0.0 {
            return Decider {
                kind: Kind::Never,
                fail_closed,
                seeded: FNV32_OFFSET,
                th_suffix: String::new(),
                proportional_fresh: None,
            };
        }
        let ratio = (f64::from(pct) / 100.0).max(MIN_SAMPLING_PROBABILITY);
        let kind = match config.effective_mode() {
            Mode::HashSeed | Mode::Unset => {
                let bound = hash_seed_bound(pct);
                if bound == 0 {
                    Kind::Never
                } else {
                    let reject = u64::from(NUM_HASH_BUCKETS - bound) << 42;
                    Kind::Hash {
                        seed: config.hash_seed,
                        bound,
                        threshold: Threshold::from_unsigned(reject).unwrap_or(Threshold::NEVER),
                    }
                }
            }
            Mode::Proportional => Kind::Proportional {
                ratio,
                precision: config.sampling_precision,
            },
            Mode::Equalizing => Kind::Equalizing {
                threshold: Threshold::from_probability(ratio, config.sampling_precision)
                    .unwrap_or(Threshold::ALWAYS),
            },
        };
        let (seeded, th_suffix) = match kind {
            Kind::Hash {
                seed, threshold, ..
            } => {
                let mut fresh = OtelTraceState::default();
                let th = match fresh.update_threshold(threshold) {
                    Ok(()) => fresh.threshold.and_then(Threshold::encode),
                    Err(_) => None,
                };
                (
                    seeded_state(seed),
                    th.map(|th| format!(";th:{th}")).unwrap_or_default(),
                )
            }
            _ => (FNV32_OFFSET, String::new()),
        };
        let mut decider = Decider {
            kind,
            fail_closed,
            seeded,
            th_suffix,
            proportional_fresh: None,
        };
        if let Kind::Proportional { .. } = kind {
            let mut fresh = W3cTraceState::default();
            let threshold = decider.threshold_for(Some(&fresh));
            let _ = fresh.otel.update_threshold(threshold);
            decider.proportional_fresh = Some((threshold, fresh.serialize()));
        }
        decider
    }

    /// Decides one span: whether to keep it and what decided. A kept span's tracestate
    /// is updated with the threshold it was sampled at (and, in `hash_seed` mode, the
    /// randomness used), so later consistent samplers compose.
    pub fn decide(&self, span: &mut Span) -> (bool, Policy) {
        let priority = sampling_priority(&span.attributes);
        // Fast path of the common case: hash mode, no tracestate, no priority.
        if let (Kind::Hash { seed, bound, .. }, Priority::Defer, true) =
            (self.kind, priority, span.trace_state.is_empty())
        {
            if trace_id_randomness(&span.trace_id).is_some() {
                debug_assert_eq!(self.seeded, seeded_state(seed));
                let hash = fnv1a_continue(self.seeded, &span.trace_id);
                let keep = hash & HASH_BUCKET_MASK < bound;
                if keep {
                    span.trace_state = self.fresh_hash_state(hash);
                }
                return (keep, Policy::TraceIdHash);
            }
        }
        // The same for proportional mode: randomness from the trace ID, one threshold.
        if let (Some((threshold, state)), Priority::Defer, true) = (
            &self.proportional_fresh,
            priority,
            span.trace_state.is_empty(),
        ) {
            if let Some(r) = trace_id_randomness(&span.trace_id) {
                let keep = threshold.should_sample(r);
                if keep {
                    span.trace_state = state.clone();
                }
                return (keep, Policy::TraceIdW3c);
            }
        }
        self.decide_general(span, priority)
    }

    /// The tracestate of a kept span that had none, in `hash_seed` mode: what
    /// [`W3cTraceState::serialize`] writes for `rv` and the threshold, built with one
    /// allocation (this runs for every kept span).
    fn fresh_hash_state(&self, hash: u32) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(20 + self.th_suffix.len());
        out.push_str("ot=rv:");
        let _ = write!(out, "{:014x}", hash_randomness(hash));
        out.push_str(&self.th_suffix);
        out
    }

    fn decide_general(&self, span: &mut Span, priority: Priority) -> (bool, Policy) {
        let parsed = W3cTraceState::parse(&span.trace_state);
        // The randomness, the tracestate to update (None: leave it alone) and whether
        // something went wrong (then `fail_closed` decides).
        let (randomness, mut carrier, mut failed, mut policy) = match (&self.kind, parsed) {
            (_, Err(e)) => {
                tracing::debug!(error = %e, "probabilistic_sampler: malformed tracestate");
                let rnd = self.id_randomness(span);
                (
                    rnd.map(|r| r.0),
                    None,
                    true,
                    rnd.map_or(Policy::MissingRandomness, |r| r.1),
                )
            }
            (Kind::Never, Ok(state)) => {
                (Some(MAX_RANDOMNESS), Some(state), false, Policy::TraceIdW3c)
            }
            (Kind::Hash { .. }, Ok(state)) => {
                let rnd = self.id_randomness(span);
                // A tracestate already carrying consistent-sampling values is left alone
                // and the span is decided by `fail_closed`, as in the collector.
                let in_use = state.otel.randomness.is_some() || state.otel.threshold.is_some();
                let policy = rnd.map_or(Policy::MissingRandomness, |r| r.1);
                let carrier = (!in_use).then_some(state);
                (rnd.map(|r| r.0), carrier, in_use, policy)
            }
            (_, Ok(state)) => match state.otel.randomness {
                Some(rv) => (Some(rv), Some(state), false, Policy::SamplingRandomness),
                None => {
                    let rnd = trace_id_randomness(&span.trace_id);
                    let policy = if rnd.is_some() {
                        Policy::TraceIdW3c
                    } else {
                        Policy::MissingRandomness
                    };
                    (rnd, Some(state), false, policy)
                }
            },
        };
        if randomness.is_none() {
            failed = true;
        }
        // Consistency: an arriving threshold the randomness does not pass is a lie; it is
        // cleared (for the fail-open case) and the span is decided by `fail_closed`.
        if let (Some(r), Some(state)) = (randomness, carrier.as_mut()) {
            if !failed && state.otel.threshold.is_some_and(|th| !th.should_sample(r)) {
                state.otel.threshold = None;
                failed = true;
            }
        }
        let mut threshold = if failed {
            if self.fail_closed {
                Threshold::NEVER
            } else {
                Threshold::ALWAYS
            }
        } else {
            self.threshold_for(carrier.as_ref())
        };
        match priority {
            Priority::Drop => {
                threshold = Threshold::NEVER;
                policy = Policy::SamplingPriority;
            }
            Priority::Keep => {
                threshold = Threshold::ALWAYS;
                policy = Policy::SamplingPriority;
            }
            Priority::Defer => {}
        }
        let keep = threshold.should_sample(randomness.unwrap_or(0));
        if keep {
            if let Some(mut state) = carrier {
                if let (Kind::Hash { .. }, Some(r)) = (&self.kind, randomness) {
                    // `r` is the hash randomness: record it as explicit `rv`.
                    state.otel.randomness = Some(r);
                }
                // Refused when it would lower an existing threshold: left as it was.
                let _ = state.otel.update_threshold(threshold);
                span.trace_state = state.serialize();
            }
        }
        (keep, policy)
    }

    /// The trace ID randomness of the configured mode and the policy it stands for.
    fn id_randomness(&self, span: &Span) -> Option<(u64, Policy)> {
        trace_id_randomness(&span.trace_id)?;
        Some(match self.kind {
            Kind::Hash { seed, .. } => (
                hash_randomness(hash_seed_hash(&span.trace_id, seed)),
                Policy::TraceIdHash,
            ),
            _ => (trace_id_randomness(&span.trace_id)?, Policy::TraceIdW3c),
        })
    }

    /// The threshold the mode samples at, given the arriving tracestate.
    fn threshold_for(&self, state: Option<&W3cTraceState>) -> Threshold {
        let incoming = state.and_then(|s| s.otel.threshold);
        match self.kind {
            Kind::Never => Threshold::NEVER,
            Kind::Hash { threshold, .. } => threshold,
            Kind::Equalizing { threshold } => incoming.map_or(threshold, |t| t.max(threshold)),
            Kind::Proportional { ratio, precision } => {
                let p = incoming.map_or(1.0, Threshold::probability) * ratio;
                // Below the smallest expressible probability: not sampled.
                Threshold::from_probability(p, precision).unwrap_or(Threshold::NEVER)
            }
        }
    }
}

/// The largest randomness value (what the never-sampler pretends to have).
const MAX_RANDOMNESS: u64 = (1 << 56) - 1;

/// Reads `sampling.priority`: `0` drops, any other number keeps (the rule; the
/// collector keeps only positive ones), anything else (non-numeric, absent) defers to the
/// sampler.
fn sampling_priority(attributes: &[KeyValue]) -> Priority {
    let Some(value) = attributes
        .iter()
        .find(|kv| kv.key == "sampling.priority")
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
    else {
        return Priority::Defer;
    };
    let number = match value {
        Value::IntValue(i) => *i as f64,
        Value::DoubleValue(d) => *d,
        Value::StringValue(s) => match s.trim().parse::<f64>() {
            Ok(d) => d,
            Err(_) => return Priority::Defer,
        },
        _ => return Priority::Defer,
    };
    if number == 0.0 {
        Priority::Drop
    } else if number.is_nan() {
        Priority::Defer
    } else {
        Priority::Keep
    }
}

/// The `probabilistic_sampler` processor.
pub struct ProbabilisticSampler {
    decider: Decider,
    next: ConsumerRef,
    /// Counters by [`Policy::ALL`] index, then `[not sampled, sampled]`.
    counters: Vec<[Arc<Counter>; 2]>,
}

impl ProbabilisticSampler {
    /// Builds the processor for a validated config.
    pub fn new(
        id: &str,
        config: &ProbabilisticSamplerConfig,
        metrics: &Metrics,
        next: ConsumerRef,
    ) -> Self {
        let counter = |policy: Policy, sampled: &str| {
            metrics.counter(
                METRIC_COUNT_TRACES_SAMPLED,
                "Count of spans that were sampled or not, by deciding policy",
                &[
                    ("processor", id),
                    ("policy", policy.name()),
                    ("sampled", sampled),
                ],
            )
        };
        ProbabilisticSampler {
            decider: Decider::new(config),
            next,
            counters: Policy::ALL
                .iter()
                .map(|&p| [counter(p, "false"), counter(p, "true")])
                .collect(),
        }
    }
}

#[async_trait]
impl Consumer for ProbabilisticSampler {
    /// Asks the next stage: this one refuses nothing by state.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.next.admit()
    }

    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        let mut counts = [[0u64; 2]; Policy::ALL.len()];
        traces.retain_spans(|_, _, span| {
            let (keep, policy) = self.decider.decide(span);
            counts[policy as usize][usize::from(keep)] += 1;
            keep
        })?;
        for (counters, counts) in self.counters.iter().zip(counts) {
            for (counter, n) in counters.iter().zip(counts) {
                if n > 0 {
                    counter.add(n);
                }
            }
        }
        if traces.is_empty() {
            return Ok(());
        }
        self.next.consume(traces).await
    }
}

impl Lifecycle for ProbabilisticSampler {}
impl Processor for ProbabilisticSampler {}

#[cfg(test)]
mod fast_path_tests {
    use super::*;

    fn decider(yaml: &str) -> Decider {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("yaml");
        let config: ProbabilisticSamplerConfig = serde_yaml::from_value(value).expect("config");
        Decider::new(&config)
    }

    /// The hot path's hash and tracestate are exactly the general path's.
    #[test]
    fn the_fast_hash_path_matches_the_general_one() {
        for yaml in [
            "mode: hash_seed\nhash_seed: 22\nsampling_percentage: 10",
            "mode: hash_seed\nhash_seed: 0\nsampling_percentage: 33.3",
            "mode: hash_seed\nhash_seed: 4294967295\nsampling_percentage: 100",
        ] {
            let d = decider(yaml);
            let Kind::Hash {
                seed, threshold, ..
            } = d.kind
            else {
                panic!("{yaml}: not hash mode");
            };
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut id = x.to_be_bytes().to_vec();
                id.extend_from_slice(&x.rotate_left(29).to_le_bytes());
                let hash = fnv1a_continue(d.seeded, &id);
                assert_eq!(hash, hash_seed_hash(&id, seed), "{yaml}");
                // What the general path writes: the W3C state with rv and th, serialized.
                let mut general = W3cTraceState::default();
                general.otel.randomness = Some(hash_randomness(hash));
                let _ = general.otel.update_threshold(threshold);
                assert_eq!(d.fresh_hash_state(hash), general.serialize(), "{yaml}");
            }
        }
    }

    /// Proportional mode's hot path decides and writes what the general path does.
    #[test]
    fn the_fast_proportional_path_matches_the_general_one() {
        for yaml in [
            "mode: proportional\nsampling_percentage: 10",
            "mode: proportional\nsampling_percentage: 33.3\nsampling_precision: 2",
            "mode: proportional\nsampling_percentage: 100",
        ] {
            let d = decider(yaml);
            assert!(d.proportional_fresh.is_some(), "{yaml}");
            let mut x: u64 = 0x2545_f491_4f6c_dd1d;
            let mut kept = 0;
            for _ in 0..10_000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let mut id = x.rotate_left(17).to_be_bytes().to_vec();
                id.extend_from_slice(&x.to_be_bytes());
                let mut fast = Span {
                    trace_id: id.clone(),
                    ..Span::default()
                };
                let mut general = fast.clone();
                let decided = d.decide(&mut fast);
                assert_eq!(
                    decided,
                    d.decide_general(&mut general, Priority::Defer),
                    "{yaml}"
                );
                assert_eq!(fast.trace_state, general.trace_state, "{yaml}");
                kept += usize::from(decided.0);
            }
            assert!(kept > 0, "{yaml}: nothing kept");
        }
    }
}
