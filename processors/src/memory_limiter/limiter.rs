//! The memory check: measures the memory in use every `check_interval` on its own thread,
//! keeps the answer in an atomic flag that `admit` and `consume` read, and releases freed
//! memory to the operating system when over the limits (where the collector forces a GC).

use super::config::{Limits, MemoryLimiterConfig};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use teletrace_core::memory::MIB;
use teletrace_core::ConsumeError;

/// Reads the memory in use, in bytes (`None` when it cannot be read).
pub type MeasureFn = Arc<dyn Fn() -> Option<u64> + Send + Sync>;
/// Hands freed memory back to the operating system.
pub type ReleaseFn = Arc<dyn Fn() + Send + Sync>;

/// How the limiter reads and releases memory: the process's RSS and `malloc_trim` in
/// production, something controllable in tests.
#[derive(Clone)]
pub struct MemorySource {
    /// Reads the memory in use.
    pub measure: MeasureFn,
    /// Releases freed memory.
    pub release: ReleaseFn,
}

impl MemorySource {
    /// This process: RSS from `/proc/self/statm`, `malloc_trim` to release.
    pub fn process() -> Self {
        MemorySource {
            measure: Arc::new(teletrace_core::memory::rss_bytes),
            release: Arc::new(|| {
                teletrace_core::memory::release_free_memory();
            }),
        }
    }
}

/// The memory check shared by the processor and its monitor thread.
pub struct Limiter {
    id: String,
    limits: Limits,
    check_interval: Duration,
    min_release_interval_soft: Duration,
    min_release_interval_hard: Duration,
    source: MemorySource,
    /// The answer `admit` and `consume` give: true while over the soft limit.
    refusing: AtomicBool,
    /// Reference point of the `*_nanos` fields.
    epoch: Instant,
    /// When the last measurement was taken, in nanoseconds since `epoch`.
    last_check_nanos: AtomicU64,
    /// The last measurement, in bytes.
    last_usage: AtomicU64,
    /// Set while a check runs, so that concurrent callers do not measure twice.
    checking: AtomicBool,
    /// When freed memory was last released (only the monitor releases).
    last_release: Mutex<Option<Instant>>,
    /// Logged once when the memory cannot be read.
    unreadable_logged: AtomicBool,
    /// The message of every refusal, built once.
    refusal_message: String,
}

impl Limiter {
    /// A limiter for the processor `id` with `config` (validated) and its resolved
    /// `limits`. It starts out admitting; the first check (on start, or the first call
    /// of [`Limiter::must_refuse`]) measures.
    pub fn new(
        id: &str,
        config: &MemoryLimiterConfig,
        limits: Limits,
        source: MemorySource,
    ) -> Self {
        let refusal_message = format!(
            "data refused due to high memory usage: processor {id} refuses data above its soft \
             limit of {} MiB (memory limit {} MiB minus {} MiB spike headroom); retry later",
            limits.soft() / MIB,
            limits.hard / MIB,
            limits.spike / MIB,
        );
        Limiter {
            id: id.to_string(),
            limits,
            check_interval: config.check_interval,
            min_release_interval_soft: config.min_gc_interval_when_soft_limited,
            min_release_interval_hard: config.min_gc_interval_when_hard_limited,
            source,
            refusing: AtomicBool::new(false),
            epoch: Instant::now(),
            // Stale from the start, so the first caller measures.
            last_check_nanos: AtomicU64::new(0),
            last_usage: AtomicU64::new(0),
            checking: AtomicBool::new(false),
            last_release: Mutex::new(None),
            unreadable_logged: AtomicBool::new(false),
            refusal_message,
        }
    }

    /// The limits in bytes.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The memory in use at the last measurement, in bytes.
    pub fn last_usage(&self) -> u64 {
        self.last_usage.load(Ordering::Relaxed)
    }

    /// Whether data must be refused now: the answer of the last measurement, taken again
    /// first when it is older than `check_interval` (so a late monitor thread cannot
    /// leave the answer stale). Costs an atomic load and a clock read.
    pub fn must_refuse(&self) -> bool {
        let last = self.last_check_nanos.load(Ordering::Relaxed);
        if last == 0 || self.nanos_since_epoch().saturating_sub(last) >= self.interval_nanos() {
            self.check(false);
        }
        self.refusing.load(Ordering::Relaxed)
    }

    /// The error a refusal returns (retryable: clients retry with backoff).
    pub fn refusal(&self) -> ConsumeError {
        ConsumeError::retryable(self.refusal_message.clone())
    }

    fn interval_nanos(&self) -> u64 {
        u64::try_from(self.check_interval.as_nanos()).unwrap_or(u64::MAX)
    }

    fn nanos_since_epoch(&self) -> u64 {
        // At least 1, so 0 can mean "never checked".
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Measures the memory in use and updates the answer. With `may_release` (the
    /// monitor thread), freed memory is first handed back to the operating system when
    /// over a limit and the last release is old enough, as the collector forces a GC.
    /// Returns the memory in use, or `None` when it could not be read or another check
    /// was running.
    pub fn check(&self, may_release: bool) -> Option<u64> {
        if self.checking.swap(true, Ordering::Acquire) {
            return None;
        }
        let usage = self.check_locked(may_release);
        self.last_check_nanos
            .store(self.nanos_since_epoch(), Ordering::Relaxed);
        self.checking.store(false, Ordering::Release);
        usage
    }

    fn check_locked(&self, may_release: bool) -> Option<u64> {
        let Some(mut usage) = (self.source.measure)() else {
            if !self.unreadable_logged.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    processor = %self.id,
                    "cannot read the memory in use; data is not limited until it can be read"
                );
            }
            return None;
        };
        let soft = self.limits.soft();
        if may_release && usage >= soft {
            let (min_interval, which) = if usage >= self.limits.hard {
                (self.min_release_interval_hard, "hard")
            } else {
                (self.min_release_interval_soft, "soft")
            };
            let mut last = self.last_release.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_none_or(|at| at.elapsed() >= min_interval) {
                (self.source.release)();
                *last = Some(Instant::now());
                let before = usage;
                usage = (self.source.measure)().unwrap_or(before);
                tracing::info!(
                    processor = %self.id,
                    limit = which,
                    before_mib = before / MIB,
                    after_mib = usage / MIB,
                    "Memory usage is above the {which} limit: released freed memory to the OS"
                );
            }
        }
        self.last_usage.store(usage, Ordering::Relaxed);
        let refuse = usage >= soft;
        let was = self.refusing.swap(refuse, Ordering::Relaxed);
        match (was, refuse) {
            (false, true) => tracing::warn!(
                processor = %self.id,
                cur_mem_mib = usage / MIB,
                soft_limit_mib = soft / MIB,
                "Memory usage is above soft limit. Refusing data."
            ),
            (true, false) => tracing::info!(
                processor = %self.id,
                cur_mem_mib = usage / MIB,
                soft_limit_mib = soft / MIB,
                "Memory usage back within limits. Resuming normal operation."
            ),
            _ => tracing::trace!(processor = %self.id, cur_mem_mib = usage / MIB, "memory checked"),
        }
        Some(usage)
    }
}

/// The thread that checks the memory every `check_interval`. A thread rather than a
/// task, so a runtime saturated by the very flood being limited cannot delay the checks,
/// and so releasing memory (which can take milliseconds) never blocks a runtime worker.
pub struct Monitor {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Monitor {
    /// Starts checking `limiter` now and then every `check_interval`.
    pub fn start(limiter: Arc<Limiter>) -> std::io::Result<Monitor> {
        let (stop, stopped) = mpsc::channel::<()>();
        let interval = limiter.check_interval;
        let thread = std::thread::Builder::new()
            .name("memory_limiter".into())
            .spawn(move || loop {
                limiter.check(true);
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // A stop message, or the processor dropped its end.
                    _ => return,
                }
            })?;
        Ok(Monitor { stop, thread })
    }

    /// Stops the thread and waits for it (at most one check).
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the memory_limiter thread panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory source the test sets, counting releases; a release frees `freed` bytes.
    struct Fake {
        usage: AtomicU64,
        freed: AtomicU64,
        releases: AtomicU64,
        measures: AtomicU64,
    }

    fn fake(usage_mib: u64) -> (Arc<Fake>, MemorySource) {
        let fake = Arc::new(Fake {
            usage: AtomicU64::new(usage_mib * MIB),
            freed: AtomicU64::new(0),
            releases: AtomicU64::new(0),
            measures: AtomicU64::new(0),
        });
        let (m, r) = (fake.clone(), fake.clone());
        let source = MemorySource {
            measure: Arc::new(move || {
                m.measures.fetch_add(1, Ordering::SeqCst);
                Some(m.usage.load(Ordering::SeqCst))
            }),
            release: Arc::new(move || {
                r.releases.fetch_add(1, Ordering::SeqCst);
                let freed = r.freed.swap(0, Ordering::SeqCst);
                r.usage.fetch_sub(freed, Ordering::SeqCst);
            }),
        };
        (fake, source)
    }

    fn config(interval: Duration) -> MemoryLimiterConfig {
        MemoryLimiterConfig {
            check_interval: interval,
            limit_mib: 100,
            spike_limit_mib: 20,
            ..Default::default()
        }
    }

    fn limiter(config: &MemoryLimiterConfig, source: MemorySource) -> Limiter {
        let limits = Limits::resolve(config, || Err("fixed".into())).unwrap();
        Limiter::new("memory_limiter", config, limits, source)
    }

    #[test]
    fn refuses_from_the_soft_limit_and_resumes_below_it() {
        let (fake, source) = fake(50);
        let l = limiter(&config(Duration::from_secs(3600)), source);
        assert!(!l.must_refuse(), "below the soft limit of 80 MiB");
        fake.usage.store(80 * MIB, Ordering::SeqCst);
        // The answer holds until the next check.
        assert!(!l.must_refuse());
        assert_eq!(l.check(false), Some(80 * MIB));
        assert!(l.must_refuse(), "at the soft limit");
        let e = l.refusal();
        assert!(e.is_retryable());
        assert!(e.message().contains("high memory usage"), "{e}");
        assert!(e.message().contains("soft limit of 80 MiB"), "{e}");
        assert!(e.message().contains("memory limit 100 MiB"), "{e}");
        fake.usage.store(79 * MIB, Ordering::SeqCst);
        l.check(false);
        assert!(!l.must_refuse(), "back below the soft limit");
        assert_eq!(l.last_usage(), 79 * MIB);
    }

    #[test]
    fn a_stale_answer_is_measured_again() {
        let (fake, source) = fake(10);
        let l = limiter(&config(Duration::from_millis(20)), source);
        assert!(!l.must_refuse());
        let measures = fake.measures.load(Ordering::SeqCst);
        assert!(!l.must_refuse(), "fresh: answered from the flag");
        assert_eq!(fake.measures.load(Ordering::SeqCst), measures);
        fake.usage.store(90 * MIB, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert!(l.must_refuse(), "stale: measured again");
        // Inline checks never release memory.
        assert_eq!(fake.releases.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn releases_freed_memory_over_the_limits_at_most_as_often_as_configured() {
        let (fake, source) = fake(90);
        let mut c = config(Duration::from_secs(3600));
        c.min_gc_interval_when_soft_limited = Duration::from_secs(3600);
        let l = limiter(&c, source);
        // Over the soft limit: one release, and it brings usage down.
        fake.freed.store(30 * MIB, Ordering::SeqCst);
        assert_eq!(l.check(true), Some(60 * MIB));
        assert_eq!(fake.releases.load(Ordering::SeqCst), 1);
        assert!(!l.must_refuse());
        // Over the soft limit again soon after: not released again.
        fake.usage.store(85 * MIB, Ordering::SeqCst);
        l.check(true);
        assert_eq!(fake.releases.load(Ordering::SeqCst), 1);
        assert!(l.must_refuse());
        // Over the hard limit: min_gc_interval_when_hard_limited is 0, so it releases.
        fake.usage.store(120 * MIB, Ordering::SeqCst);
        fake.freed.store(10 * MIB, Ordering::SeqCst);
        assert_eq!(l.check(true), Some(110 * MIB));
        assert_eq!(fake.releases.load(Ordering::SeqCst), 2);
        assert!(l.must_refuse());
    }

    #[test]
    fn unreadable_memory_keeps_the_last_answer() {
        let source = MemorySource {
            measure: Arc::new(|| None),
            release: Arc::new(|| {}),
        };
        let l = limiter(&config(Duration::from_millis(1)), source);
        assert_eq!(l.check(true), None);
        assert!(!l.must_refuse());
    }

    #[test]
    fn monitor_thread_follows_the_usage() {
        let (fake, source) = fake(10);
        let l = Arc::new(limiter(&config(Duration::from_millis(5)), source));
        let monitor = Monitor::start(l.clone()).unwrap();
        fake.usage.store(95 * MIB, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while l.last_usage() != 95 * MIB {
            assert!(Instant::now() < deadline, "the monitor never measured");
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(l.refusing.load(Ordering::SeqCst));
        monitor.stop();
        assert!(fake.releases.load(Ordering::SeqCst) >= 1);
    }

    #[test]
    fn real_process_memory_is_measured() {
        let c = MemoryLimiterConfig {
            check_interval: Duration::from_secs(1),
            limit_mib: 1 << 20, // 1 TiB: never reached
            ..Default::default()
        };
        let l = limiter(&c, MemorySource::process());
        assert!(!l.must_refuse());
        assert!(l.last_usage() > MIB);
    }
}
