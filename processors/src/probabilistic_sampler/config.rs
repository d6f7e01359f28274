//! The `probabilistic_sampler` processor's config: the OpenTelemetry Collector's
//! probabilisticsamplerprocessor keys for traces, with the same defaults.

use serde::Deserialize;
use teletrace_core::ComponentConfig;

/// Default `sampling_precision`, as in the collector.
pub const DEFAULT_SAMPLING_PRECISION: u32 = 4;

/// How the sampler decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Not set: `hash_seed` when `hash_seed` is non-zero, otherwise `proportional`.
    #[default]
    #[serde(rename = "")]
    Unset,
    /// The collector's original FNV-1a hash of the seed and the trace ID (14 bits).
    HashSeed,
    /// Consistent sampling that multiplies the incoming sampling probability.
    Proportional,
    /// Consistent sampling that raises the threshold to a fixed value.
    Equalizing,
}

/// Where the randomness comes from (traces only use the trace ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AttributeSource {
    /// The trace ID (the only source for traces).
    #[default]
    #[serde(rename = "traceID")]
    TraceId,
    /// A log record attribute: logs only.
    #[serde(rename = "record")]
    Record,
}

/// Config of the `probabilistic_sampler` processor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    /// Percentage of traces kept, `0` to `100` (more counts as `100`). A 32-bit float,
    /// as in the collector, so `hash_seed` decisions match it bit for bit.
    pub sampling_percentage: Option<f32>,
    /// Another way to say the rate: kept traces per million. Exclusive with
    /// `sampling_percentage`.
    pub sampling_rate_per_million: Option<f64>,
    /// Seed of the `hash_seed` mode's hash; collectors of one tier must share it.
    pub hash_seed: u32,
    /// `hash_seed`, `proportional` or `equalizing`; unset picks `hash_seed` when
    /// `hash_seed` is non-zero, `proportional` otherwise.
    pub mode: Mode,
    /// When the randomness cannot be determined (no trace ID, malformed or inconsistent
    /// tracestate), drop the span (`true`) or keep it (`false`).
    pub fail_closed: bool,
    /// Hex digits of the threshold written to tracestate (`1` to `14`).
    pub sampling_precision: u32,
    /// Accepted for compatibility; traces always use the trace ID.
    pub attribute_source: AttributeSource,
}

impl Default for ProbabilisticSamplerConfig {
    fn default() -> Self {
        ProbabilisticSamplerConfig {
            sampling_percentage: None,
            sampling_rate_per_million: None,
            hash_seed: 0,
            mode: Mode::Unset,
            fail_closed: true,
            sampling_precision: DEFAULT_SAMPLING_PRECISION,
            attribute_source: AttributeSource::TraceId,
        }
    }
}

impl ProbabilisticSamplerConfig {
    /// The configured percentage, from either key (`0` when neither is set), capped at
    /// `100`.
    pub fn percentage(&self) -> f32 {
        let pct = match (self.sampling_percentage, self.sampling_rate_per_million) {
            (Some(p), _) => p,
            (None, Some(per_million)) => (per_million / 10_000.0) as f32,
            (None, None) => 0.0,
        };
        pct.min(100.0)
    }

    /// The mode in effect once `Unset` is resolved.
    pub fn effective_mode(&self) -> Mode {
        match self.mode {
            Mode::Unset if self.hash_seed != 0 => Mode::HashSeed,
            Mode::Unset => Mode::Proportional,
            m => m,
        }
    }
}

impl ComponentConfig for ProbabilisticSamplerConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.sampling_percentage.is_some() && self.sampling_rate_per_million.is_some() {
            return Err((
                "sampling_rate_per_million".into(),
                "set either sampling_percentage or sampling_rate_per_million, not both".into(),
            ));
        }
        if let Some(p) = self.sampling_percentage {
            if !p.is_finite() || p < 0.0 {
                return Err((
                    "sampling_percentage".into(),
                    format!("must be a number >= 0, got {p}"),
                ));
            }
        }
        if let Some(r) = self.sampling_rate_per_million {
            if !r.is_finite() || r < 0.0 {
                return Err((
                    "sampling_rate_per_million".into(),
                    format!("must be a number >= 0, got {r}"),
                ));
            }
        }
        if !(1..=14).contains(&self.sampling_precision) {
            return Err((
                "sampling_precision".into(),
                format!("must be between 1 and 14, got {}", self.sampling_precision),
            ));
        }
        if self.attribute_source == AttributeSource::Record {
            return Err((
                "attribute_source".into(),
                "\"record\" applies to logs only; traces use the trace ID (\"traceID\")".into(),
            ));
        }
        let ratio = f64::from(self.percentage()) / 100.0;
        if ratio > 0.0
            && ratio < super::threshold::MIN_SAMPLING_PROBABILITY
            && self.effective_mode() != Mode::HashSeed
        {
            return Err((
                "sampling_percentage".into(),
                format!(
                    "{} is below the smallest expressible rate (2^-56)",
                    ratio * 100.0
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<ProbabilisticSamplerConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<ProbabilisticSamplerConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_collector() {
        let c = parse("").unwrap();
        assert_eq!(c, ProbabilisticSamplerConfig::default());
        assert!(c.fail_closed);
        assert_eq!(c.sampling_precision, 4);
        assert_eq!(c.percentage(), 0.0);
        assert_eq!(c.effective_mode(), Mode::Proportional);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            "sampling_percentage: 15.3\nhash_seed: 22\nmode: hash_seed\nfail_closed: false\n\
             sampling_precision: 6\nattribute_source: traceID\n",
        )
        .unwrap();
        assert_eq!(c.percentage(), 15.3);
        assert_eq!(c.hash_seed, 22);
        assert_eq!(c.effective_mode(), Mode::HashSeed);
        assert!(!c.fail_closed);
        assert_eq!(c.sampling_precision, 6);
        let c = parse("hash_seed: 1").unwrap();
        assert_eq!(c.effective_mode(), Mode::HashSeed);
        let c = parse("sampling_rate_per_million: 250000\nmode: proportional").unwrap();
        assert_eq!(c.percentage(), 25.0);
        assert_eq!(
            parse("sampling_percentage: 250").unwrap().percentage(),
            100.0
        );
        assert_eq!(parse("mode: equalizing").unwrap().mode, Mode::Equalizing);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = parse("sampling_percentage: -1").unwrap_err();
        assert!(e.starts_with("sampling_percentage: "), "{e}");
        let e = parse("sampling_precision: 15").unwrap_err();
        assert!(e.starts_with("sampling_precision: "), "{e}");
        let e = parse("mode: random").unwrap_err();
        assert!(e.starts_with("mode: "), "{e}");
        let e = parse("sampling_percentage: 1\nsampling_rate_per_million: 3").unwrap_err();
        assert!(e.starts_with("sampling_rate_per_million: "), "{e}");
        let e = parse("attribute_source: record").unwrap_err();
        assert!(e.starts_with("attribute_source: "), "{e}");
        let e = parse("sampling_percentge: 1").unwrap_err();
        assert!(e.contains("sampling_percentge"), "{e}");
    }
}
