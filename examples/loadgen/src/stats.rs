//! Counters, latency histograms, progress lines and the final summary.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Run-wide counters, updated lock-free by all request tasks.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests started.
    pub requests_sent: AtomicU64,
    /// Requests the receiver accepted (fully or partially).
    pub requests_ok: AtomicU64,
    /// Requests that failed (error status, transport error or timeout).
    pub requests_failed: AtomicU64,
    /// Requests that got any response from the receiver (success or error status).
    pub responses: AtomicU64,
    /// Spans in all started requests.
    pub spans_sent: AtomicU64,
    /// Spans accepted: spans of successful requests minus partial-success rejections.
    pub spans_accepted: AtomicU64,
    /// Spans rejected through OTLP partial success.
    pub spans_rejected: AtomicU64,
    /// Spans with status ERROR in all started requests.
    pub error_spans_sent: AtomicU64,
    /// Request body bytes (as sent, i.e. after compression) of all started requests.
    pub bytes_sent: AtomicU64,
    /// Rate-limited runs: requests that started more than 1ms after their
    /// scheduled time because all in-flight slots were busy.
    pub late_requests: AtomicU64,
}

/// A point-in-time copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// See [`Counters::requests_sent`].
    pub requests_sent: u64,
    /// See [`Counters::requests_ok`].
    pub requests_ok: u64,
    /// See [`Counters::requests_failed`].
    pub requests_failed: u64,
    /// See [`Counters::responses`].
    pub responses: u64,
    /// See [`Counters::spans_sent`].
    pub spans_sent: u64,
    /// See [`Counters::spans_accepted`].
    pub spans_accepted: u64,
    /// See [`Counters::spans_rejected`].
    pub spans_rejected: u64,
    /// See [`Counters::error_spans_sent`].
    pub error_spans_sent: u64,
    /// See [`Counters::bytes_sent`].
    pub bytes_sent: u64,
    /// See [`Counters::late_requests`].
    pub late_requests: u64,
}

impl Counters {
    /// Read all counters.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            requests_sent: self.requests_sent.load(Relaxed),
            requests_ok: self.requests_ok.load(Relaxed),
            requests_failed: self.requests_failed.load(Relaxed),
            responses: self.responses.load(Relaxed),
            spans_sent: self.spans_sent.load(Relaxed),
            spans_accepted: self.spans_accepted.load(Relaxed),
            spans_rejected: self.spans_rejected.load(Relaxed),
            error_spans_sent: self.error_spans_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            late_requests: self.late_requests.load(Relaxed),
        }
    }
}

/// Failed requests by label (gRPC code name such as `UNAVAILABLE`, `HTTP 503`,
/// `CONNECT_ERROR`, `TRANSPORT_ERROR`, `TIMEOUT`, `INVALID_RESPONSE`), with
/// the first message seen for each.
#[derive(Debug, Default)]
pub struct Errors {
    inner: Mutex<BTreeMap<String, ErrorCount>>,
}

/// Count and example message of one error label.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ErrorCount {
    /// Number of failed requests with this label.
    pub count: u64,
    /// First error message seen with this label (may be empty).
    pub example: String,
}

impl Errors {
    /// Count one failure.
    pub fn record(&self, label: &str, message: &str) {
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(label) {
            Some(e) => e.count += 1,
            None => {
                let mut example = message.trim().to_string();
                if example.len() > 300 {
                    let mut cut = 300;
                    while !example.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    example.truncate(cut);
                    example.push('…');
                }
                map.insert(label.to_string(), ErrorCount { count: 1, example });
            }
        }
    }

    /// Copy of the table.
    pub fn snapshot(&self) -> BTreeMap<String, ErrorCount> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Microsecond-resolution HDR histogram (3 significant digits, auto-resizing).
pub fn new_histogram() -> Histogram<u64> {
    // `new` enables auto-resize, so any value can be recorded.
    Histogram::new(3).expect("3 significant figures is a valid histogram setting")
}

/// Latency histograms of one worker, shared by its in-flight request tasks.
#[derive(Debug)]
pub struct Recorder {
    inner: Mutex<Hists>,
}

#[derive(Debug)]
struct Hists {
    /// Response time since the last progress tick.
    interval: Histogram<u64>,
    /// Response time over the whole run (from the scheduled send time when rate-limited).
    latency: Histogram<u64>,
    /// Service time over the whole run (from the actual send time).
    service: Histogram<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Hists {
                interval: new_histogram(),
                latency: new_histogram(),
                service: new_histogram(),
            }),
        }
    }
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Recorder {
    /// Record one successful request.
    pub fn record(&self, latency: Duration, service: Duration) {
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let l = micros(latency);
        // Auto-resizing histograms: `record` only fails on absurd values.
        let _ = h.interval.record(l);
        let _ = h.latency.record(l);
        let _ = h.service.record(micros(service));
    }

    /// Add the interval histogram into `into` and reset it.
    pub fn drain_interval(&self, into: &mut Histogram<u64>) {
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = into.add(&h.interval);
        h.interval.reset();
    }

    /// Add the whole-run histograms into `latency` and `service`.
    pub fn merge_totals(&self, latency: &mut Histogram<u64>, service: &mut Histogram<u64>) {
        let h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = latency.add(&h.latency);
        let _ = service.add(&h.service);
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencySummary {
    /// Number of recorded requests.
    pub count: u64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Maximum.
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarize a microsecond histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: round3(h.mean() / 1000.0),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// The final report of a run (also the `--json` output).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Endpoint the requests went to.
    pub endpoint: String,
    /// `grpc` or `http`.
    pub protocol: crate::args::Protocol,
    /// gRPC client implementation (`hyper` or `tonic`); absent for http.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_client: Option<crate::args::GrpcClient>,
    /// `proto` or `json`.
    pub encoding: crate::args::Encoding,
    /// `none` or `gzip`.
    pub compression: crate::args::Compression,
    /// Concurrent workers (connections for grpc).
    pub workers: u32,
    /// Requests in flight per worker.
    pub in_flight: u32,
    /// Spans per request.
    pub spans_per_request: u32,
    /// Distinct pre-built requests cycled through.
    pub distinct_requests: u64,
    /// Whether IDs were made unique per request.
    pub unique_ids: bool,
    /// Target rate in spans/s, or null when unlimited.
    pub target_rate: Option<f64>,
    /// Average uncompressed encoded request size in bytes.
    pub request_bytes: u64,
    /// Average body size of the requests sent, in bytes (after compression).
    pub wire_bytes: u64,
    /// Wall-clock time from the first request to the last response, seconds.
    pub elapsed_secs: f64,
    /// Requests started.
    pub requests_sent: u64,
    /// Requests accepted.
    pub requests_ok: u64,
    /// Requests failed.
    pub requests_failed: u64,
    /// Requests that got any response from the receiver.
    pub responses: u64,
    /// Spans in all started requests.
    pub spans_sent: u64,
    /// Spans accepted by the receiver.
    pub spans_accepted: u64,
    /// Spans rejected through OTLP partial success.
    pub spans_rejected: u64,
    /// Spans with status ERROR among those sent.
    pub error_spans_sent: u64,
    /// Accepted spans per second.
    pub spans_per_sec: f64,
    /// Sent spans per second.
    pub sent_spans_per_sec: f64,
    /// Started requests per second.
    pub requests_per_sec: f64,
    /// Request body bytes sent per second (after compression).
    pub bytes_per_sec: f64,
    /// Requests that started more than 1ms behind schedule (rate-limited runs).
    pub late_requests: u64,
    /// Rate-limited runs: requests that were due before the run stopped but
    /// never sent because every in-flight slot was busy (the receiver could
    /// not keep up with the target rate).
    pub missed_requests: u64,
    /// Latency of successful requests. When rate-limited, measured from each
    /// request's scheduled send time (includes queueing behind busy slots).
    pub latency: LatencySummary,
    /// Time from actual send to response of successful requests.
    pub service_time: LatencySummary,
    /// Failed requests by label.
    pub errors: BTreeMap<String, ErrorCount>,
}

/// Format an integer with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Format milliseconds compactly (e.g. `0.412ms`, `12.3ms`, `1.52s`).
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 10.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.3}ms")
    }
}

fn fmt_latency(l: &LatencySummary) -> String {
    if l.count == 0 {
        return "n/a".to_string();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {}  (n={})",
        fmt_ms(l.p50_ms),
        fmt_ms(l.p90_ms),
        fmt_ms(l.p99_ms),
        fmt_ms(l.p999_ms),
        fmt_ms(l.max_ms),
        fmt_ms(l.mean_ms),
        thousands(l.count)
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match (self.protocol, self.grpc_client) {
            (crate::args::Protocol::Grpc, Some(c)) => format!("grpc ({c:?} client)").to_lowercase(),
            (p, _) => format!("{p:?}/{:?}", self.encoding).to_lowercase(),
        };
        writeln!(f, "loadgen summary")?;
        writeln!(
            f,
            "  target       {} {} compression={:?}",
            proto, self.endpoint, self.compression
        )?;
        let rate = match self.target_rate {
            Some(r) => format!("{} spans/s target", thousands(r.round() as u64)),
            None => "unlimited rate".to_string(),
        };
        writeln!(
            f,
            "  load         {} workers x {} in flight, {} spans/request, {}",
            self.workers, self.in_flight, self.spans_per_request, rate
        )?;
        writeln!(
            f,
            "  requests     {} distinct{}, {} bytes encoded, {} bytes on the wire",
            self.distinct_requests,
            if self.unique_ids {
                " (unique IDs per request)"
            } else {
                ""
            },
            thousands(self.request_bytes),
            thousands(self.wire_bytes)
        )?;
        writeln!(f, "  elapsed      {:.2}s", self.elapsed_secs)?;
        writeln!(
            f,
            "  requests     {} sent, {} ok, {} failed",
            thousands(self.requests_sent),
            thousands(self.requests_ok),
            thousands(self.requests_failed)
        )?;
        writeln!(
            f,
            "  spans        {} sent, {} accepted, {} rejected (partial success), {} with status ERROR",
            thousands(self.spans_sent),
            thousands(self.spans_accepted),
            thousands(self.spans_rejected),
            thousands(self.error_spans_sent)
        )?;
        writeln!(
            f,
            "  throughput   {} spans/s accepted ({} sent), {} requests/s, {:.1} MB/s",
            thousands(self.spans_per_sec.round() as u64),
            thousands(self.sent_spans_per_sec.round() as u64),
            thousands(self.requests_per_sec.round() as u64),
            self.bytes_per_sec / 1e6
        )?;
        if self.target_rate.is_some() {
            writeln!(
                f,
                "  latency      {}  (from scheduled send time)",
                fmt_latency(&self.latency)
            )?;
            writeln!(f, "  service time {}", fmt_latency(&self.service_time))?;
            writeln!(
                f,
                "  schedule     {} requests started >1ms late, {} due requests never sent",
                thousands(self.late_requests),
                thousands(self.missed_requests)
            )?;
        } else {
            writeln!(f, "  latency      {}", fmt_latency(&self.latency))?;
        }
        if self.errors.is_empty() {
            writeln!(f, "  errors       none")?;
        } else {
            writeln!(f, "  errors")?;
            for (label, e) in &self.errors {
                if e.example.is_empty() {
                    writeln!(f, "    {label:<20} {}", thousands(e.count))?;
                } else {
                    writeln!(
                        f,
                        "    {label:<20} {}  e.g. {:?}",
                        thousands(e.count),
                        e.example
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(fmt_ms(0.4123), "0.412ms");
        assert_eq!(fmt_ms(1520.0), "1.52s");
    }

    #[test]
    fn recorder() {
        let r = Recorder::default();
        for ms in 1..=100 {
            r.record(Duration::from_millis(ms), Duration::from_millis(ms));
        }
        let mut lat = new_histogram();
        let mut svc = new_histogram();
        r.merge_totals(&mut lat, &mut svc);
        let s = LatencySummary::from_histogram(&lat);
        assert_eq!(s.count, 100);
        assert!((s.p50_ms - 50.0).abs() < 0.1, "{}", s.p50_ms);
        assert!((s.max_ms - 100.0).abs() < 0.1);
        let mut iv = new_histogram();
        r.drain_interval(&mut iv);
        assert_eq!(iv.len(), 100);
        let mut iv2 = new_histogram();
        r.drain_interval(&mut iv2);
        assert_eq!(iv2.len(), 0);
    }

    #[test]
    fn errors_keep_first_example() {
        let e = Errors::default();
        e.record("UNAVAILABLE", "first");
        e.record("UNAVAILABLE", "second");
        let s = e.snapshot();
        assert_eq!(s["UNAVAILABLE"].count, 2);
        assert_eq!(s["UNAVAILABLE"].example, "first");
    }
}
