//! The `memory_limiter` processor's config: the OpenTelemetry Collector's memorylimiter
//! keys, with the same defaults and the same checks.

use serde::Deserialize;
use std::time::Duration;
use teletrace_core::memory::MIB;
use teletrace_core::ComponentConfig;

/// Default `min_gc_interval_when_soft_limited`, as in the collector.
pub const DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED: Duration = Duration::from_secs(10);

/// The spike headroom when none is configured: this share of the limit, in percent (the
/// collector's 20%).
pub const DEFAULT_SPIKE_PERCENT_OF_LIMIT: u64 = 20;

/// Config of the `memory_limiter` processor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// Time between two measurements of the memory in use. Required (> 0).
    #[serde(with = "teletrace_core::config::duration")]
    pub check_interval: Duration,
    /// The hard limit in MiB. Takes precedence over `limit_percentage`.
    pub limit_mib: u32,
    /// The headroom below the hard limit, in MiB: data is refused once the memory in use
    /// reaches `limit_mib - spike_limit_mib` (the soft limit). `0` means 20% of the limit.
    pub spike_limit_mib: u32,
    /// The hard limit as a percentage of the memory available to the process (the
    /// cgroup's limit, or the machine's memory). Used when `limit_mib` is 0.
    pub limit_percentage: u32,
    /// The headroom as a percentage of the available memory. `0` means 20% of the limit.
    pub spike_limit_percentage: u32,
    /// The least time between two releases of freed memory (Teletrace's stand-in for the
    /// collector's forced GC) while over the soft limit.
    #[serde(with = "teletrace_core::config::duration")]
    pub min_gc_interval_when_soft_limited: Duration,
    /// The least time between two releases of freed memory while over the hard limit.
    #[serde(with = "teletrace_core::config::duration")]
    pub min_gc_interval_when_hard_limited: Duration,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        MemoryLimiterConfig {
            check_interval: Duration::ZERO,
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
            min_gc_interval_when_soft_limited: DEFAULT_MIN_GC_INTERVAL_WHEN_SOFT_LIMITED,
            min_gc_interval_when_hard_limited: Duration::ZERO,
        }
    }
}

impl ComponentConfig for MemoryLimiterConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: String| Err((key.to_string(), message));
        if self.check_interval.is_zero() {
            return err("check_interval", "must be greater than zero".into());
        }
        if self.min_gc_interval_when_soft_limited < self.min_gc_interval_when_hard_limited {
            return err(
                "min_gc_interval_when_soft_limited",
                format!(
                    "must be larger than or equal to min_gc_interval_when_hard_limited ({:?}), got {:?}",
                    self.min_gc_interval_when_hard_limited, self.min_gc_interval_when_soft_limited
                ),
            );
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return err(
                "limit_mib",
                "limit_mib or limit_percentage must be greater than zero".into(),
            );
        }
        if self.limit_percentage > 100 {
            return err(
                "limit_percentage",
                format!("must be at most 100, got {}", self.limit_percentage),
            );
        }
        if self.spike_limit_percentage > 100 {
            return err(
                "spike_limit_percentage",
                format!("must be at most 100, got {}", self.spike_limit_percentage),
            );
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return err(
                "spike_limit_mib",
                format!(
                    "must be smaller than limit_mib ({}), got {}",
                    self.limit_mib, self.spike_limit_mib
                ),
            );
        }
        if self.limit_percentage > 0 && self.spike_limit_percentage >= self.limit_percentage {
            return err(
                "spike_limit_percentage",
                format!(
                    "must be smaller than limit_percentage ({}), got {}",
                    self.limit_percentage, self.spike_limit_percentage
                ),
            );
        }
        Ok(())
    }
}

/// The limits a config resolves to, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The hard limit.
    pub hard: u64,
    /// The headroom below it.
    pub spike: u64,
}

impl Limits {
    /// Limits from a validated config; `total_memory` is asked for only when the config
    /// uses percentages (`limit_mib` is 0), as the collector does.
    pub fn resolve(
        config: &MemoryLimiterConfig,
        total_memory: impl FnOnce() -> Result<u64, String>,
    ) -> Result<Limits, String> {
        let (hard, spike) = if config.limit_mib > 0 {
            (
                u64::from(config.limit_mib) * MIB,
                u64::from(config.spike_limit_mib) * MIB,
            )
        } else {
            let total = total_memory()?;
            let percent = |p: u32| (u128::from(total) * u128::from(p) / 100) as u64;
            (
                percent(config.limit_percentage),
                percent(config.spike_limit_percentage),
            )
        };
        let spike = match spike {
            0 => hard * DEFAULT_SPIKE_PERCENT_OF_LIMIT / 100,
            s => s,
        };
        Ok(Limits { hard, spike })
    }

    /// The soft limit: data is refused from here on.
    pub fn soft(&self) -> u64 {
        self.hard.saturating_sub(self.spike)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use teletrace_core::registry::parse_typed_config;

    fn parse(yaml: &str) -> Result<MemoryLimiterConfig, String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        parse_typed_config::<MemoryLimiterConfig>(&value).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_match_the_collector() {
        let c = MemoryLimiterConfig::default();
        assert_eq!(c.check_interval, Duration::ZERO);
        assert_eq!(c.limit_mib, 0);
        assert_eq!(c.spike_limit_mib, 0);
        assert_eq!(c.limit_percentage, 0);
        assert_eq!(c.spike_limit_percentage, 0);
        assert_eq!(c.min_gc_interval_when_soft_limited, Duration::from_secs(10));
        assert_eq!(c.min_gc_interval_when_hard_limited, Duration::ZERO);
        // As in the collector, the defaults alone do not validate.
        let e = parse("").unwrap_err();
        assert!(e.starts_with("check_interval: "), "{e}");
    }

    #[test]
    fn parses_every_key() {
        let c = parse(
            "check_interval: 1s\nlimit_mib: 4000\nspike_limit_mib: 800\nlimit_percentage: 75\n\
             spike_limit_percentage: 15\nmin_gc_interval_when_soft_limited: 20s\n\
             min_gc_interval_when_hard_limited: 5s\n",
        )
        .unwrap();
        assert_eq!(c.check_interval, Duration::from_secs(1));
        assert_eq!(c.limit_mib, 4000);
        assert_eq!(c.spike_limit_mib, 800);
        assert_eq!(c.limit_percentage, 75);
        assert_eq!(c.spike_limit_percentage, 15);
        assert_eq!(c.min_gc_interval_when_soft_limited, Duration::from_secs(20));
        assert_eq!(c.min_gc_interval_when_hard_limited, Duration::from_secs(5));
    }

    #[test]
    fn each_invalid_value_names_its_key() {
        for (yaml, key) in [
            ("limit_mib: 100", "check_interval"),
            ("check_interval: 0s\nlimit_mib: 100", "check_interval"),
            ("check_interval: 1s", "limit_mib"),
            (
                "check_interval: 1s\nlimit_percentage: 101",
                "limit_percentage",
            ),
            (
                "check_interval: 1s\nlimit_percentage: 80\nspike_limit_percentage: 101",
                "spike_limit_percentage",
            ),
            (
                "check_interval: 1s\nlimit_mib: 100\nspike_limit_mib: 100",
                "spike_limit_mib",
            ),
            (
                "check_interval: 1s\nlimit_percentage: 50\nspike_limit_percentage: 50",
                "spike_limit_percentage",
            ),
            (
                "check_interval: 1s\nlimit_mib: 100\nmin_gc_interval_when_soft_limited: 1s\n\
                 min_gc_interval_when_hard_limited: 2s",
                "min_gc_interval_when_soft_limited",
            ),
            (
                "check_interval: 1 fortnight\nlimit_mib: 100",
                "check_interval",
            ),
            ("check_interval: 1s\nlimit_mib: -5", "limit_mib"),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(&format!("{key}: ")), "{yaml:?}: {e}");
        }
        let e = parse("check_interval: 1s\nlimit_mib: 100\nballast_size_mib: 10").unwrap_err();
        assert!(e.contains("ballast_size_mib"), "{e}");
    }

    #[test]
    fn fixed_limits_with_the_default_spike() {
        let c = parse("check_interval: 1s\nlimit_mib: 500").unwrap();
        let l = Limits::resolve(&c, || panic!("not asked for fixed limits")).unwrap();
        assert_eq!(l.hard, 500 * MIB);
        assert_eq!(l.spike, 100 * MIB);
        assert_eq!(l.soft(), 400 * MIB);
        let c = parse("check_interval: 1s\nlimit_mib: 500\nspike_limit_mib: 50").unwrap();
        let l = Limits::resolve(&c, || panic!("not asked for fixed limits")).unwrap();
        assert_eq!(l.soft(), 450 * MIB);
    }

    #[test]
    fn limit_mib_takes_precedence_over_percentage() {
        let c = parse("check_interval: 1s\nlimit_mib: 300\nlimit_percentage: 90").unwrap();
        let l = Limits::resolve(&c, || Err("unused".into())).unwrap();
        assert_eq!(l.hard, 300 * MIB);
    }

    #[test]
    fn percentage_limits_of_the_available_memory() {
        let c =
            parse("check_interval: 1s\nlimit_percentage: 80\nspike_limit_percentage: 25").unwrap();
        let l = Limits::resolve(&c, || Ok(1000 * MIB)).unwrap();
        assert_eq!(l.hard, 800 * MIB);
        assert_eq!(l.spike, 250 * MIB);
        assert_eq!(l.soft(), 550 * MIB);
        let c = parse("check_interval: 1s\nlimit_percentage: 50").unwrap();
        let l = Limits::resolve(&c, || Ok(1000 * MIB)).unwrap();
        assert_eq!((l.hard, l.spike), (500 * MIB, 100 * MIB));
        let e = Limits::resolve(&c, || Err("no /proc".into())).unwrap_err();
        assert_eq!(e, "no /proc");
    }
}
