//! Exponential backoff with jitter, as the collector's `retry_on_failure` computes it.

use super::RetrySettings;
use std::time::Duration;

/// The waits of one batch's retries.
///
/// Each wait is drawn uniformly from `[i*(1-f), i*(1+f)]` where `i` is the current
/// interval (starting at `initial_interval`, multiplied by `multiplier` after each wait and
/// capped at `max_interval`) and `f` is `randomization_factor`. Retrying stops once the
/// time spent plus the next wait would pass `max_elapsed_time` (0: never).
#[derive(Debug)]
pub(crate) struct Backoff {
    settings: RetrySettings,
    current: Duration,
}

impl Backoff {
    /// A backoff at its first interval.
    pub fn new(settings: &RetrySettings) -> Self {
        Backoff {
            settings: settings.clone(),
            current: settings.initial_interval,
        }
    }

    /// The next wait given the time already spent on this batch, or `None` to give up.
    /// `random` is a uniform draw from `[0, 1)`.
    pub fn next(&mut self, elapsed: Duration, random: f64) -> Option<Duration> {
        let f = self.settings.randomization_factor;
        let current = self.current.as_secs_f64();
        let low = current * (1.0 - f);
        let high = current * (1.0 + f);
        let wait = Duration::try_from_secs_f64(low + random * (high - low)).unwrap_or_default();
        let grown = current * self.settings.multiplier;
        let max = self.settings.max_interval.as_secs_f64();
        self.current = Duration::try_from_secs_f64(grown.min(max)).unwrap_or(self.current);
        self.within_budget(elapsed, wait).then_some(wait)
    }

    /// True when waiting `wait` after `elapsed` stays within `max_elapsed_time`.
    pub fn within_budget(&self, elapsed: Duration, wait: Duration) -> bool {
        let max = self.settings.max_elapsed_time;
        max.is_zero() || elapsed + wait <= max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RetrySettings {
        RetrySettings {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
            max_elapsed_time: Duration::from_secs(10),
            multiplier: 2.0,
            randomization_factor: 0.5,
            ..RetrySettings::default()
        }
    }

    #[test]
    fn grows_by_the_multiplier_up_to_the_max_interval() {
        let mut b = Backoff::new(&settings());
        // random 0.5 is the middle of the jitter range: the interval itself.
        let waits: Vec<u64> = (0..5)
            .map(|_| b.next(Duration::ZERO, 0.5).unwrap().as_millis() as u64)
            .collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 4000, 4000]);
    }

    #[test]
    fn jitter_spans_the_randomization_range() {
        let mut low = Backoff::new(&settings());
        let mut high = Backoff::new(&settings());
        assert_eq!(
            low.next(Duration::ZERO, 0.0),
            Some(Duration::from_millis(500))
        );
        let top = high.next(Duration::ZERO, 0.999_999).unwrap();
        assert!(top > Duration::from_millis(1499) && top < Duration::from_millis(1500));
    }

    #[test]
    fn gives_up_past_max_elapsed_time_unless_zero() {
        let mut b = Backoff::new(&settings());
        assert!(b.next(Duration::from_millis(9_500), 0.5).is_none());
        let mut forever = Backoff::new(&RetrySettings {
            max_elapsed_time: Duration::ZERO,
            ..settings()
        });
        assert!(forever.next(Duration::from_secs(1_000_000), 0.5).is_some());
    }
}
