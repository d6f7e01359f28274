//! The `tail_sampling` processor's config: the OpenTelemetry Collector's
//! tailsamplingprocessor keys, with the same defaults.

use serde::Deserialize;
use std::collections::HashSet;
use std::time::Duration;
use teletrace_core::ComponentConfig;

/// Default `decision_wait`, as in the collector.
pub const DEFAULT_DECISION_WAIT: Duration = Duration::from_secs(30);
/// Default `num_traces`, as in the collector.
pub const DEFAULT_NUM_TRACES: u64 = 50_000;

/// Config of the `tail_sampling` processor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSamplingConfig {
    /// Time from a trace's first span to its sampling decision.
    #[serde(with = "teletrace_core::config::duration")]
    pub decision_wait: Duration,
    /// Most traces held in memory (pending or decided); the oldest goes first.
    pub num_traces: u64,
    /// Expected new traces per second: sizes the trace table up front.
    pub expected_new_traces_per_sec: u64,
    /// Decisions remembered after a trace left memory, for its late spans.
    pub decision_cache: DecisionCacheConfig,
    /// Stop evaluating policies at the first one that samples.
    pub sample_on_first_match: bool,
    /// The policies (required, at least one).
    pub policies: Vec<PolicyConfig>,
}

impl Default for TailSamplingConfig {
    fn default() -> Self {
        TailSamplingConfig {
            decision_wait: DEFAULT_DECISION_WAIT,
            num_traces: DEFAULT_NUM_TRACES,
            expected_new_traces_per_sec: 0,
            decision_cache: DecisionCacheConfig::default(),
            sample_on_first_match: false,
            policies: Vec::new(),
        }
    }
}

/// The `decision_cache` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionCacheConfig {
    /// Trace IDs of sampled traces remembered; `0` disables the cache.
    pub sampled_cache_size: usize,
    /// Trace IDs of not-sampled traces remembered; `0` disables the cache.
    pub non_sampled_cache_size: usize,
}

/// Policy types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyType {
    /// Samples every trace.
    AlwaysSample,
    /// Samples by trace duration.
    Latency,
    /// Samples traces with a span of the given status codes.
    StatusCode,
    /// Samples a share of traces by a salted hash of the trace ID.
    Probabilistic,
    /// Samples by a string attribute value.
    StringAttribute,
    /// Samples by an integer attribute range.
    NumericAttribute,
    /// Samples by a boolean attribute value.
    BooleanAttribute,
    /// Samples by the number of spans.
    SpanCount,
    /// Samples up to a number of spans per second.
    RateLimiting,
    /// Samples by a tracestate entry value.
    TraceState,
    /// Samples when every sub-policy samples.
    And,
    /// Ordered sub-policies sharing a span rate.
    Composite,
    /// Drops the trace when every sub-policy samples.
    Drop,
}

impl PolicyType {
    /// The name used in the config.
    pub fn name(self) -> &'static str {
        match self {
            PolicyType::AlwaysSample => "always_sample",
            PolicyType::Latency => "latency",
            PolicyType::StatusCode => "status_code",
            PolicyType::Probabilistic => "probabilistic",
            PolicyType::StringAttribute => "string_attribute",
            PolicyType::NumericAttribute => "numeric_attribute",
            PolicyType::BooleanAttribute => "boolean_attribute",
            PolicyType::SpanCount => "span_count",
            PolicyType::RateLimiting => "rate_limiting",
            PolicyType::TraceState => "trace_state",
            PolicyType::And => "and",
            PolicyType::Composite => "composite",
            PolicyType::Drop => "drop",
        }
    }
}

/// One policy (also the shape of `and`, `composite` and `drop` sub-policies). Only the
/// section named by `type` is read.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Name, used in metrics and by `composite`'s `policy_order`.
    pub name: String,
    /// The policy type.
    #[serde(rename = "type")]
    pub policy_type: PolicyType,
    /// `latency` section.
    #[serde(default)]
    pub latency: LatencyConfig,
    /// `status_code` section.
    #[serde(default)]
    pub status_code: StatusCodeConfig,
    /// `probabilistic` section.
    #[serde(default)]
    pub probabilistic: ProbabilisticConfig,
    /// `string_attribute` section.
    #[serde(default)]
    pub string_attribute: StringAttributeConfig,
    /// `numeric_attribute` section.
    #[serde(default)]
    pub numeric_attribute: NumericAttributeConfig,
    /// `boolean_attribute` section.
    #[serde(default)]
    pub boolean_attribute: BooleanAttributeConfig,
    /// `span_count` section.
    #[serde(default)]
    pub span_count: SpanCountConfig,
    /// `rate_limiting` section.
    #[serde(default)]
    pub rate_limiting: RateLimitingConfig,
    /// `trace_state` section.
    #[serde(default)]
    pub trace_state: TraceStateConfig,
    /// `and` section.
    #[serde(default)]
    pub and: AndConfig,
    /// `composite` section.
    #[serde(default)]
    pub composite: CompositeConfig,
    /// `drop` section.
    #[serde(default)]
    pub drop: DropConfig,
}

/// `latency`: samples traces whose duration (earliest span start to latest span end) is
/// at least `threshold_ms`, or within `(threshold_ms, upper_threshold_ms]` when the upper
/// bound is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyConfig {
    /// Lower bound in milliseconds.
    pub threshold_ms: i64,
    /// Upper bound in milliseconds; `0` means none.
    pub upper_threshold_ms: i64,
}

/// `status_code`: samples traces with any span whose status is one of `status_codes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusCodeConfig {
    /// `OK`, `ERROR` and/or `UNSET`.
    pub status_codes: Vec<String>,
}

/// `probabilistic`: samples `sampling_percentage` of traces by a salted FNV-1a 64 hash.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticConfig {
    /// Salt of the hash; empty uses the collector's default salt.
    pub hash_salt: String,
    /// Percentage of traces sampled, `0` to `100`.
    pub sampling_percentage: f64,
}

/// `string_attribute`: samples traces with a span or resource attribute `key` whose
/// string value is in `values` (or matches one of them as a regex).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StringAttributeConfig {
    /// Attribute key.
    pub key: String,
    /// Accepted values (or regexes).
    pub values: Vec<String>,
    /// Treat `values` as regular expressions (unanchored).
    pub enabled_regex_matching: bool,
    /// Accepted for compatibility (the collector's regex result cache size).
    pub cache_max_size: usize,
    /// Sample traces where no span or resource matches instead.
    pub invert_match: bool,
}

/// `numeric_attribute`: samples traces with an integer attribute `key` in
/// `[min_value, max_value]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NumericAttributeConfig {
    /// Attribute key.
    pub key: String,
    /// Lower bound (inclusive); unset means no lower bound.
    pub min_value: Option<i64>,
    /// Upper bound (inclusive); unset means no upper bound.
    pub max_value: Option<i64>,
    /// Sample traces where no span or resource matches instead.
    pub invert_match: bool,
}

/// `boolean_attribute`: samples traces with a boolean attribute `key` equal to `value`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BooleanAttributeConfig {
    /// Attribute key.
    pub key: String,
    /// Value to match.
    pub value: bool,
    /// Sample traces where no span or resource matches instead.
    pub invert_match: bool,
}

/// `span_count`: samples traces with `min_spans` to `max_spans` spans.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpanCountConfig {
    /// Fewest spans.
    pub min_spans: i64,
    /// Most spans; `0` means no upper bound.
    pub max_spans: i64,
}

/// `rate_limiting`: samples traces while fewer than `spans_per_second` spans were
/// sampled by this policy in the current second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitingConfig {
    /// Span budget per second.
    pub spans_per_second: i64,
}

/// `trace_state`: samples traces with a span whose tracestate entry `key` has one of
/// `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceStateConfig {
    /// Tracestate list-member key.
    pub key: String,
    /// Accepted values.
    pub values: Vec<String>,
}

/// `and`: samples when every sub-policy samples.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AndConfig {
    /// The sub-policies (no `and`, `composite` or `drop`).
    pub and_sub_policy: Vec<PolicyConfig>,
}

/// `drop`: the trace is dropped, whatever other policies say, when every sub-policy
/// samples.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DropConfig {
    /// The sub-policies (no `and`, `composite` or `drop`).
    pub drop_sub_policy: Vec<PolicyConfig>,
}

/// `composite`: sub-policies evaluated in `policy_order`; the first that samples within
/// its share of `max_total_spans_per_second` samples the trace.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompositeConfig {
    /// Total span budget per second.
    pub max_total_spans_per_second: i64,
    /// Names of the sub-policies, in evaluation order.
    pub policy_order: Vec<String>,
    /// The sub-policies (`and` allowed; no `composite` or `drop`).
    pub composite_sub_policy: Vec<PolicyConfig>,
    /// Share of the budget of each sub-policy, in percent.
    pub rate_allocation: Vec<RateAllocationConfig>,
}

/// One entry of `rate_allocation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateAllocationConfig {
    /// Sub-policy name.
    pub policy: String,
    /// Percent of `max_total_spans_per_second`.
    pub percent: i64,
}

impl ComponentConfig for TailSamplingConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.policies.is_empty() {
            return Err(("policies".into(), "at least one policy is required".into()));
        }
        if self.num_traces == 0 {
            return Err(("num_traces".into(), "must be greater than 0".into()));
        }
        validate_policies(&self.policies, "policies", Level::Top)
    }
}

/// Where a policy list sits, which limits the types it may hold (as in the collector).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    /// Under `and` or `drop`.
    Leaf,
    /// Under `composite`.
    Composite,
}

fn validate_policies(
    policies: &[PolicyConfig],
    path: &str,
    level: Level,
) -> Result<(), (String, String)> {
    let mut names = HashSet::new();
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if p.name.is_empty() {
            return Err((format!("{at}.name"), "must not be empty".into()));
        }
        if !names.insert(p.name.as_str()) {
            return Err((
                format!("{at}.name"),
                format!("duplicate policy name {:?}", p.name),
            ));
        }
        let allowed = match (level, p.policy_type) {
            (Level::Top, _) => true,
            (_, PolicyType::Composite | PolicyType::Drop) => false,
            (Level::Leaf, PolicyType::And) => false,
            _ => true,
        };
        if !allowed {
            return Err((
                format!("{at}.type"),
                format!(
                    "{} is not allowed as a sub-policy here",
                    p.policy_type.name()
                ),
            ));
        }
        validate_policy(p, &at)?;
    }
    Ok(())
}

fn validate_policy(p: &PolicyConfig, at: &str) -> Result<(), (String, String)> {
    let err = |key: &str, msg: String| Err((format!("{at}.{key}"), msg));
    match p.policy_type {
        PolicyType::AlwaysSample => {}
        PolicyType::Latency => {
            let l = &p.latency;
            if l.threshold_ms < 0 || l.upper_threshold_ms < 0 {
                return err("latency", "thresholds must not be negative".into());
            }
            if l.upper_threshold_ms != 0 && l.upper_threshold_ms < l.threshold_ms {
                return err(
                    "latency.upper_threshold_ms",
                    format!(
                        "must be 0 (no bound) or >= threshold_ms ({}), got {}",
                        l.threshold_ms, l.upper_threshold_ms
                    ),
                );
            }
        }
        PolicyType::StatusCode => {
            let codes = &p.status_code.status_codes;
            if codes.is_empty() {
                return err("status_code.status_codes", "must not be empty".into());
            }
            for (j, c) in codes.iter().enumerate() {
                if !matches!(c.as_str(), "OK" | "ERROR" | "UNSET") {
                    return err(
                        &format!("status_code.status_codes[{j}]"),
                        format!("unknown status code {c:?} (expected OK, ERROR or UNSET)"),
                    );
                }
            }
        }
        PolicyType::Probabilistic => {
            let pct = p.probabilistic.sampling_percentage;
            if !(0.0..=100.0).contains(&pct) {
                return err(
                    "probabilistic.sampling_percentage",
                    format!("must be between 0 and 100, got {pct}"),
                );
            }
        }
        PolicyType::StringAttribute => {
            let s = &p.string_attribute;
            if s.key.is_empty() {
                return err("string_attribute.key", "must not be empty".into());
            }
            if s.enabled_regex_matching {
                for (j, v) in s.values.iter().enumerate() {
                    if let Err(e) = regex::Regex::new(v) {
                        return err(&format!("string_attribute.values[{j}]"), format!("{e}"));
                    }
                }
            }
        }
        PolicyType::NumericAttribute => {
            let n = &p.numeric_attribute;
            if n.key.is_empty() {
                return err("numeric_attribute.key", "must not be empty".into());
            }
            match (n.min_value, n.max_value) {
                (None, None) => {
                    return err(
                        "numeric_attribute",
                        "set min_value, max_value or both".into(),
                    )
                }
                (Some(min), Some(max)) if max < min => {
                    return err(
                        "numeric_attribute.max_value",
                        format!("must be >= min_value ({min}), got {max}"),
                    )
                }
                _ => {}
            }
        }
        PolicyType::BooleanAttribute => {
            if p.boolean_attribute.key.is_empty() {
                return err("boolean_attribute.key", "must not be empty".into());
            }
        }
        PolicyType::SpanCount => {
            let s = &p.span_count;
            if s.min_spans < 0 || s.max_spans < 0 {
                return err(
                    "span_count",
                    "min_spans and max_spans must not be negative".into(),
                );
            }
            if s.max_spans != 0 && s.max_spans < s.min_spans {
                return err(
                    "span_count.max_spans",
                    format!(
                        "must be 0 (no bound) or >= min_spans ({}), got {}",
                        s.min_spans, s.max_spans
                    ),
                );
            }
        }
        PolicyType::RateLimiting => {
            if p.rate_limiting.spans_per_second <= 0 {
                return err(
                    "rate_limiting.spans_per_second",
                    "must be greater than 0".into(),
                );
            }
        }
        PolicyType::TraceState => {
            let t = &p.trace_state;
            if t.key.is_empty() {
                return err("trace_state.key", "must not be empty".into());
            }
            if t.values.is_empty() {
                return err("trace_state.values", "must not be empty".into());
            }
        }
        PolicyType::And => {
            let subs = &p.and.and_sub_policy;
            if subs.is_empty() {
                return err("and.and_sub_policy", "must not be empty".into());
            }
            validate_policies(subs, &format!("{at}.and.and_sub_policy"), Level::Leaf)?;
        }
        PolicyType::Drop => {
            let subs = &p.drop.drop_sub_policy;
            if subs.is_empty() {
                return err("drop.drop_sub_policy", "must not be empty".into());
            }
            validate_policies(subs, &format!("{at}.drop.drop_sub_policy"), Level::Leaf)?;
        }
        PolicyType::Composite => {
            let c = &p.composite;
            if c.max_total_spans_per_second <= 0 {
                return err(
                    "composite.max_total_spans_per_second",
                    "must be greater than 0".into(),
                );
            }
            let subs = &c.composite_sub_policy;
            if subs.is_empty() {
                return err("composite.composite_sub_policy", "must not be empty".into());
            }
            validate_policies(
                subs,
                &format!("{at}.composite.composite_sub_policy"),
                Level::Composite,
            )?;
            let known: HashSet<&str> = subs.iter().map(|s| s.name.as_str()).collect();
            for (j, name) in c.policy_order.iter().enumerate() {
                if !known.contains(name.as_str()) {
                    return err(
                        &format!("composite.policy_order[{j}]"),
                        format!("no composite_sub_policy named {name:?}"),
                    );
                }
            }
            let mut total = 0;
            for (j, r) in c.rate_allocation.iter().enumerate() {
                if !known.contains(r.policy.as_str()) {
                    return err(
                        &format!("composite.rate_allocation[{j}].policy"),
                        format!("no composite_sub_policy named {:?}", r.policy),
                    );
                }
                if !(0..=100).contains(&r.percent) {
                    return err(
                        &format!("composite.rate_allocation[{j}].percent"),
                        format!("must be between 0 and 100, got {}", r.percent),
                    );
                }
                total += r.percent;
            }
            if total > 100 {
                return err(
                    "composite.rate_allocation",
                    format!("percents add up to {total}, more than 100"),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<TailSamplingConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<TailSamplingConfig>(&value).map_err(|e| e.to_string())
    }

    const ONE: &str = "policies: [{name: all, type: always_sample}]\n";

    #[test]
    fn defaults_match_the_collector() {
        let c = parse(ONE).unwrap();
        assert_eq!(c.decision_wait, Duration::from_secs(30));
        assert_eq!(c.num_traces, 50_000);
        assert_eq!(c.expected_new_traces_per_sec, 0);
        assert_eq!(c.decision_cache, DecisionCacheConfig::default());
        assert!(!c.sample_on_first_match);
        let e = parse("").unwrap_err();
        assert!(e.starts_with("policies: "), "{e}");
    }

    #[test]
    fn parses_every_policy_type() {
        let c = parse(
            r#"
decision_wait: 10s
num_traces: 100
expected_new_traces_per_sec: 10
sample_on_first_match: true
decision_cache: {sampled_cache_size: 1000, non_sampled_cache_size: 2000}
policies:
  - {name: a, type: always_sample}
  - {name: b, type: latency, latency: {threshold_ms: 5000, upper_threshold_ms: 10000}}
  - {name: c, type: status_code, status_code: {status_codes: [ERROR, UNSET]}}
  - {name: d, type: probabilistic, probabilistic: {hash_salt: s, sampling_percentage: 12.5}}
  - name: e
    type: string_attribute
    string_attribute: {key: k, values: ["v.*"], enabled_regex_matching: true, cache_max_size: 10, invert_match: true}
  - {name: f, type: numeric_attribute, numeric_attribute: {key: n, min_value: 1, max_value: 9}}
  - {name: g, type: boolean_attribute, boolean_attribute: {key: b, value: true}}
  - {name: h, type: span_count, span_count: {min_spans: 2, max_spans: 20}}
  - {name: i, type: rate_limiting, rate_limiting: {spans_per_second: 35}}
  - {name: j, type: trace_state, trace_state: {key: k, values: [v1]}}
  - name: k
    type: and
    and:
      and_sub_policy:
        - {name: k1, type: numeric_attribute, numeric_attribute: {key: n, min_value: 5}}
        - {name: k2, type: string_attribute, string_attribute: {key: s, values: [x]}}
  - name: l
    type: composite
    composite:
      max_total_spans_per_second: 1000
      policy_order: [l1, l2]
      composite_sub_policy:
        - {name: l1, type: status_code, status_code: {status_codes: [ERROR]}}
        - {name: l2, type: always_sample}
      rate_allocation: [{policy: l1, percent: 50}, {policy: l2, percent: 25}]
  - name: m
    type: drop
    drop:
      drop_sub_policy:
        - {name: m1, type: string_attribute, string_attribute: {key: url.path, values: [/health]}}
"#,
        )
        .unwrap();
        assert_eq!(c.decision_wait, Duration::from_secs(10));
        assert_eq!(c.decision_cache.non_sampled_cache_size, 2000);
        assert_eq!(c.policies.len(), 13);
        assert_eq!(c.policies[1].latency.upper_threshold_ms, 10000);
        assert_eq!(c.policies[5].numeric_attribute.max_value, Some(9));
        assert_eq!(c.policies[11].composite.rate_allocation[1].percent, 25);
        assert_eq!(c.policies[12].drop.drop_sub_policy[0].name, "m1");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ("policies: [{name: a, type: sometimes}]", "policies[0]::type: "),
            ("policies: [{name: a, type: latency, latency: {threshold_ms: 9, upper_threshold_ms: 3}}]", "policies[0]::latency::upper_threshold_ms: "),
            ("policies: [{name: a, type: status_code, status_code: {status_codes: [BAD]}}]", "policies[0]::status_code::status_codes[0]: "),
            ("policies: [{name: a, type: status_code}]", "policies[0]::status_code::status_codes: "),
            ("policies: [{name: a, type: string_attribute, string_attribute: {key: k, values: ['('], enabled_regex_matching: true}}]", "policies[0]::string_attribute::values[0]: "),
            ("policies: [{name: a, type: numeric_attribute, numeric_attribute: {key: k}}]", "policies[0]::numeric_attribute: "),
            ("policies: [{name: a, type: rate_limiting}]", "policies[0]::rate_limiting::spans_per_second: "),
            ("policies: [{name: a, type: always_sample}, {name: a, type: always_sample}]", "policies[1]::name: "),
            ("policies: [{name: a, type: and, and: {and_sub_policy: [{name: b, type: drop}]}}]", "policies[0]::and::and_sub_policy[0]::type: "),
            ("policies: [{name: a, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [x], composite_sub_policy: [{name: b, type: always_sample}]}}]", "policies[0]::composite::policy_order[0]: "),
            ("policies: [{name: a, type: always_sample, latncy: {}}]", "policies[0]::latncy: "),
            ("decision_wait: soon\npolicies: [{name: a, type: always_sample}]", "decision_wait: "),
            ("num_traces: 0\npolicies: [{name: a, type: always_sample}]", "num_traces: "),
        ];
        for (yaml, prefix) in cases {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(prefix), "{yaml}\n=> {e}");
        }
    }
}
