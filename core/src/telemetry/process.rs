//! Process metrics read from `/proc/self` (Linux): resident memory and CPU time.

use super::Metrics;

/// Resident set size of this process in bytes, from `/proc/self/statm`.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// User plus system CPU time of this process in seconds, from `/proc/self/stat`.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn page_size() -> u64 {
    4096
}

fn clock_ticks() -> f64 {
    100.0
}

/// Registers `otelcol_process_memory_rss` and `otelcol_process_cpu_seconds`.
pub fn register(metrics: &Metrics) {
    metrics.gauge_fn(
        "otelcol_process_memory_rss",
        "Total physical memory (resident set size) [bytes]",
        &[],
        || rss_bytes().unwrap_or(0) as f64,
    );
    metrics.gauge_fn(
        "otelcol_process_cpu_seconds",
        "Total CPU user and system time in seconds",
        &[],
        || cpu_seconds().unwrap_or(0.0),
    );
    let start = std::time::Instant::now();
    metrics.gauge_fn(
        "otelcol_process_uptime",
        "Uptime of the process [seconds]",
        &[],
        move || start.elapsed().as_secs_f64(),
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        assert!(super::rss_bytes().unwrap() > 0);
        assert!(super::cpu_seconds().unwrap() >= 0.0);
    }
}
