//! Policies compiled from the config, and how each decides on a trace summary, following
//! the collector's tailsamplingprocessor evaluators.

use super::config::{PolicyConfig, PolicyType};
use super::summary::{Matcher, Matchers, TraceSummary};
use regex::Regex;
use std::collections::{HashMap, HashSet};

/// The collector's salt of the `probabilistic` policy when `hash_salt` is empty.
pub const DEFAULT_HASH_SALT: &str = "default-hash-seed";

/// What one policy says about a trace, with the collector's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Keep it.
    Sampled,
    /// No opinion to keep it.
    NotSampled,
    /// An inverted match found nothing: keep it unless another policy says no.
    InvertSampled,
    /// An inverted match found something: do not keep it.
    InvertNotSampled,
    /// A `drop` policy matched: do not keep it, whatever the others say.
    Dropped,
}

impl Decision {
    /// The `sampled` label of the per-policy counter.
    pub fn sampled_label(self) -> &'static str {
        match self {
            Decision::Sampled | Decision::InvertSampled => "true",
            Decision::NotSampled | Decision::InvertNotSampled | Decision::Dropped => "false",
        }
    }

    fn samples(self) -> bool {
        matches!(self, Decision::Sampled | Decision::InvertSampled)
    }
}

/// The decisions of a trace's policies so far, combined as the collector does: any drop
/// drops; otherwise an inverted not-sampled drops; otherwise any sampled keeps;
/// otherwise an inverted sampled keeps unless some policy said not sampled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Verdict {
    seen: u8,
}

impl Verdict {
    /// Adds one policy's decision.
    pub fn add(&mut self, d: Decision) {
        self.seen |= 1 << d as u8;
    }

    /// The final decision: keep the trace?
    pub fn sampled(self) -> bool {
        let has = |d: Decision| self.seen & (1 << d as u8) != 0;
        if has(Decision::Dropped) || has(Decision::InvertNotSampled) {
            return false;
        }
        has(Decision::Sampled) || (has(Decision::InvertSampled) && !has(Decision::NotSampled))
    }
}

/// The final decision for a list of policy decisions (see [`Verdict`]).
pub fn final_decision(decisions: impl IntoIterator<Item = Decision>) -> bool {
    let mut v = Verdict::default();
    decisions.into_iter().for_each(|d| v.add(d));
    v.sampled()
}

/// A compiled policy.
#[derive(Debug)]
pub enum Evaluator {
    /// `always_sample`.
    AlwaysSample,
    /// `latency`.
    Latency { threshold_ms: i64, upper_ms: i64 },
    /// `status_code`: bit mask of the codes (`1 << code`).
    StatusCode { mask: u8 },
    /// `probabilistic`: salt and 64-bit hash threshold.
    Probabilistic { salt: Vec<u8>, threshold: u64 },
    /// An attribute or tracestate condition, by matcher bit.
    Match { bit: usize, invert: bool },
    /// `span_count`.
    SpanCount { min: u64, max: u64 },
    /// `rate_limiting`: budget and the current second's use.
    RateLimiting {
        spans_per_second: u64,
        second: u64,
        used: u64,
    },
    /// `and`.
    And(Vec<Evaluator>),
    /// `drop`.
    Drop(Vec<Evaluator>),
    /// `composite`.
    Composite(Composite),
}

/// The `composite` policy's state.
#[derive(Debug)]
pub struct Composite {
    max_total: u64,
    second: u64,
    /// In `policy_order`: the evaluator, its span budget per second and its use.
    subs: Vec<(Evaluator, u64, u64)>,
}

impl Evaluator {
    /// Compiles a (validated) policy; attribute conditions are registered in `matchers`.
    pub fn build(p: &PolicyConfig, matchers: &mut Matchers) -> Result<Evaluator, String> {
        Ok(match p.policy_type {
            PolicyType::AlwaysSample => Evaluator::AlwaysSample,
            PolicyType::Latency => Evaluator::Latency {
                threshold_ms: p.latency.threshold_ms,
                upper_ms: p.latency.upper_threshold_ms,
            },
            PolicyType::StatusCode => {
                let mut mask = 0;
                for c in &p.status_code.status_codes {
                    mask |= match c.as_str() {
                        "UNSET" => 1,
                        "OK" => 2,
                        "ERROR" => 4,
                        other => return Err(format!("unknown status code {other:?}")),
                    };
                }
                Evaluator::StatusCode { mask }
            }
            PolicyType::Probabilistic => {
                let salt = match p.probabilistic.hash_salt.as_str() {
                    "" => DEFAULT_HASH_SALT,
                    s => s,
                };
                Evaluator::Probabilistic {
                    salt: salt.as_bytes().to_vec(),
                    threshold: probabilistic_threshold(p.probabilistic.sampling_percentage / 100.0),
                }
            }
            PolicyType::StringAttribute => {
                let s = &p.string_attribute;
                let key = s.key.clone();
                let m = if s.enabled_regex_matching {
                    let regexes = s
                        .values
                        .iter()
                        .map(|v| Regex::new(v).map_err(|e| format!("{v:?}: {e}")))
                        .collect::<Result<_, _>>()?;
                    Matcher::StringRegex { key, regexes }
                } else {
                    Matcher::StringExact {
                        key,
                        values: s.values.iter().cloned().collect(),
                    }
                };
                Evaluator::Match {
                    bit: matchers.add(m),
                    invert: s.invert_match,
                }
            }
            PolicyType::NumericAttribute => {
                let n = &p.numeric_attribute;
                Evaluator::Match {
                    bit: matchers.add(Matcher::Numeric {
                        key: n.key.clone(),
                        min: n.min_value.unwrap_or(i64::MIN),
                        max: n.max_value.unwrap_or(i64::MAX),
                    }),
                    invert: n.invert_match,
                }
            }
            PolicyType::BooleanAttribute => {
                let b = &p.boolean_attribute;
                Evaluator::Match {
                    bit: matchers.add(Matcher::Boolean {
                        key: b.key.clone(),
                        value: b.value,
                    }),
                    invert: b.invert_match,
                }
            }
            PolicyType::TraceState => Evaluator::Match {
                bit: matchers.add(Matcher::TraceState {
                    key: p.trace_state.key.clone(),
                    values: p.trace_state.values.iter().cloned().collect::<HashSet<_>>(),
                }),
                invert: false,
            },
            PolicyType::SpanCount => Evaluator::SpanCount {
                min: p.span_count.min_spans.max(0) as u64,
                max: p.span_count.max_spans.max(0) as u64,
            },
            PolicyType::RateLimiting => Evaluator::RateLimiting {
                spans_per_second: p.rate_limiting.spans_per_second.max(0) as u64,
                second: u64::MAX,
                used: 0,
            },
            PolicyType::And => Evaluator::And(build_all(&p.and.and_sub_policy, matchers)?),
            PolicyType::Drop => Evaluator::Drop(build_all(&p.drop.drop_sub_policy, matchers)?),
            PolicyType::Composite => {
                let c = &p.composite;
                let max_total = c.max_total_spans_per_second.max(0) as u64;
                let mut by_name: HashMap<&str, Evaluator> = HashMap::new();
                for sub in &c.composite_sub_policy {
                    by_name.insert(sub.name.as_str(), Evaluator::build(sub, matchers)?);
                }
                // The collector's allocation: percent of the total; an entry with percent
                // 0 gets an equal share; a sub-policy without an entry gets nothing.
                let equal = max_total / c.composite_sub_policy.len().max(1) as u64;
                let mut budget: HashMap<&str, u64> = HashMap::new();
                for r in &c.rate_allocation {
                    let b = if r.percent > 0 {
                        r.percent as u64 * max_total / 100
                    } else {
                        equal
                    };
                    budget.insert(r.policy.as_str(), b);
                }
                let mut subs = Vec::new();
                for name in &c.policy_order {
                    let ev = by_name
                        .remove(name.as_str())
                        .ok_or_else(|| format!("policy_order names {name:?} twice or unknown"))?;
                    subs.push((ev, budget.get(name.as_str()).copied().unwrap_or(0), 0));
                }
                Evaluator::Composite(Composite {
                    max_total,
                    second: u64::MAX,
                    subs,
                })
            }
        })
    }

    /// Decides on a trace. `second` is the current second (for the rate policies).
    pub fn evaluate(&mut self, id: &[u8; 16], t: &TraceSummary, second: u64) -> Decision {
        let yes = |b: bool| {
            if b {
                Decision::Sampled
            } else {
                Decision::NotSampled
            }
        };
        match self {
            Evaluator::AlwaysSample => Decision::Sampled,
            Evaluator::Latency {
                threshold_ms,
                upper_ms,
            } => {
                let d = t.duration_ms();
                if *upper_ms == 0 {
                    yes(d >= *threshold_ms)
                } else {
                    yes(*threshold_ms < d && d <= *upper_ms)
                }
            }
            Evaluator::StatusCode { mask } => yes(t.statuses & *mask != 0),
            Evaluator::Probabilistic { salt, threshold } => yes(fnv1a_64(salt, id) <= *threshold),
            Evaluator::Match { bit, invert } => match (t.matched.get(*bit), *invert) {
                (m, false) => yes(m),
                (true, true) => Decision::InvertNotSampled,
                (false, true) => Decision::InvertSampled,
            },
            Evaluator::SpanCount { min, max } => {
                yes(t.span_count >= *min && (*max == 0 || t.span_count <= *max))
            }
            Evaluator::RateLimiting {
                spans_per_second,
                second: current,
                used,
            } => {
                if *current != second {
                    *current = second;
                    *used = 0;
                }
                let if_sampled = *used + t.span_count;
                if if_sampled < *spans_per_second {
                    *used = if_sampled;
                    Decision::Sampled
                } else {
                    Decision::NotSampled
                }
            }
            Evaluator::And(subs) => {
                for s in subs {
                    if !s.evaluate(id, t, second).samples() {
                        return Decision::NotSampled;
                    }
                }
                Decision::Sampled
            }
            Evaluator::Drop(subs) => {
                for s in subs {
                    if !s.evaluate(id, t, second).samples() {
                        return Decision::NotSampled;
                    }
                }
                Decision::Dropped
            }
            Evaluator::Composite(c) => {
                if c.second != second {
                    c.second = second;
                    for s in &mut c.subs {
                        s.2 = 0;
                    }
                }
                for (ev, budget, used) in &mut c.subs {
                    if ev.evaluate(id, t, second).samples() {
                        let if_sampled = *used + t.span_count;
                        if if_sampled <= *budget && if_sampled <= c.max_total {
                            *used = if_sampled;
                            return Decision::Sampled;
                        }
                    }
                }
                Decision::NotSampled
            }
        }
    }
}

fn build_all(subs: &[PolicyConfig], matchers: &mut Matchers) -> Result<Vec<Evaluator>, String> {
    subs.iter().map(|s| Evaluator::build(s, matchers)).collect()
}

/// The `probabilistic` policy's threshold: `ratio` of the 64-bit hash range.
pub fn probabilistic_threshold(ratio: f64) -> u64 {
    // Saturating float-to-int conversion: ratio 1 gives u64::MAX.
    (ratio.clamp(0.0, 1.0) * u64::MAX as f64) as u64
}

/// FNV-1a 64 over `salt` then `bytes`, as the collector's `probabilistic` policy hashes.
pub fn fnv1a_64(salt: &[u8], bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in salt.iter().chain(bytes) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
