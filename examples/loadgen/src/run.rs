//! The load loop: workers, in-flight slots, pacing, progress and summary.
//!
//! Requests are numbered globally (`seq`). Every in-flight slot repeatedly
//! claims the next number and sends the corresponding pre-built body, so the
//! total is exact however many slots there are. With `--rate`, request `seq`
//! is scheduled at `start + seq * interval`; a slot that claims a number whose
//! time has already passed (because every slot was busy waiting for the
//! receiver) sends immediately and its latency is measured from the scheduled
//! time, which is how coordinated omission is avoided.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::args::{Config, Protocol};
use crate::stats::{
    fmt_ms, new_histogram, thousands, Counters, Errors, LatencySummary, Recorder, Summary,
};
use crate::transport::{Outcome, Transport};
use crate::workload::Workload;

/// A request that starts this much after its scheduled time counts as late.
const LATE_THRESHOLD: Duration = Duration::from_millis(1);

/// Pause of an unpaced slot after a request got no response at all.
const TRANSPORT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Stop signal shared by all slots (deadline, `--spans` reached, Ctrl-C).
#[derive(Debug, Default)]
pub struct Stop {
    flag: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Ask every slot to stop starting new requests.
    pub fn trigger(&self) {
        self.flag.store(true, Relaxed);
        self.notify.notify_waiters();
    }

    /// Whether stop was requested.
    pub fn is_set(&self) -> bool {
        self.flag.load(Relaxed)
    }

    /// Wait until stop is requested.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        if self.is_set() {
            return;
        }
        notified.await;
    }
}

/// Shared state of a run.
struct Shared {
    workload: Workload,
    counters: Counters,
    errors: Errors,
    stop: Stop,
    next_seq: AtomicU64,
    max_requests: u64,
    start: Instant,
    deadline: Option<Instant>,
    /// Time between scheduled request starts when rate-limited.
    interval: Option<Duration>,
    timeout: Duration,
}

/// Check that the endpoint accepts TCP connections, so an obviously wrong
/// address fails fast with a clear message.
pub async fn preflight(cfg: &Config) -> Result<()> {
    let authority = cfg.endpoint.authority().context("endpoint has no host")?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().context("endpoint has no port")?;
    let connect = TcpStream::connect((host, port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(anyhow::anyhow!("could not connect to {authority}: {e}")),
        Err(_) => Err(anyhow::anyhow!(
            "could not connect to {authority}: timed out after 5s"
        )),
    }
}

/// Resolves on Ctrl-C; never if the signal handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Build the workload and run the load test described by `cfg`.
///
/// Does not check connectivity first (see [`preflight`]). Progress lines go
/// to stderr unless `--quiet`. A Ctrl-C stops the run early; in-flight
/// requests are still awaited and the summary covers what was sent.
pub async fn run(cfg: Config) -> Result<Summary> {
    let workload = Workload::build(&cfg)?;
    run_with_workload(cfg, workload).await
}

/// Like [`run`], with an already-built workload.
pub async fn run_with_workload(cfg: Config, workload: Workload) -> Result<Summary> {
    let a = &cfg.args;
    let interval =
        (a.rate > 0.0).then(|| Duration::from_secs_f64(f64::from(a.spans_per_request) / a.rate));
    let start = Instant::now();
    let shared = Arc::new(Shared {
        workload,
        counters: Counters::default(),
        errors: Errors::default(),
        stop: Stop::default(),
        next_seq: AtomicU64::new(0),
        max_requests: cfg.max_requests.unwrap_or(u64::MAX),
        start,
        deadline: cfg.duration.map(|d| start + d),
        interval,
        timeout: a.timeout,
    });

    let mut recorders = Vec::with_capacity(a.workers as usize);
    let mut slots = JoinSet::new();
    for _ in 0..a.workers {
        let transport = Transport::new(&cfg)?;
        let recorder = Arc::new(Recorder::default());
        for _ in 0..a.in_flight {
            slots.spawn(slot(shared.clone(), transport.clone(), recorder.clone()));
        }
        recorders.push(recorder);
    }

    // Deadline / Ctrl-C.
    let watcher = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let deadline = async {
                match shared.deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = deadline => {}
                _ = ctrl_c() => eprintln!("loadgen: interrupted, waiting for in-flight requests"),
                _ = shared.stop.wait() => {}
            }
            shared.stop.trigger();
            Instant::now()
        })
    };

    let reporter = (!a.quiet).then(|| {
        let shared = shared.clone();
        let recorders = recorders.clone();
        tokio::spawn(progress(shared, recorders))
    });

    while let Some(res) = slots.join_next().await {
        res.context("request task panicked")?;
    }
    let end = Instant::now();
    let elapsed = end - start;
    shared.stop.trigger();
    let mut stopped_at = watcher.await.unwrap_or(end).min(end);
    if let Some(d) = shared.deadline {
        stopped_at = stopped_at.min(d);
    }
    if let Some(r) = reporter {
        r.abort();
        let _ = r.await;
    }

    let mut latency = new_histogram();
    let mut service = new_histogram();
    for r in &recorders {
        r.merge_totals(&mut latency, &mut service);
    }
    let c = shared.counters.snapshot();
    // Rate-limited: requests whose scheduled time passed before the run
    // stopped but that were never sent because every slot was busy.
    let missed_requests = match interval {
        Some(iv) => {
            let (ran, iv) = ((stopped_at - start).as_nanos(), iv.as_nanos().max(1));
            let due = u64::try_from(ran.div_ceil(iv)).unwrap_or(u64::MAX);
            due.min(shared.max_requests).saturating_sub(c.requests_sent)
        }
        None => 0,
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(Summary {
        endpoint: cfg.endpoint.to_string(),
        protocol: a.protocol,
        grpc_client: (a.protocol == Protocol::Grpc).then_some(a.grpc_client),
        encoding: match a.protocol {
            Protocol::Grpc => crate::args::Encoding::Proto,
            Protocol::Http => a.encoding,
        },
        compression: a.compression,
        workers: a.workers,
        in_flight: a.in_flight,
        spans_per_request: a.spans_per_request,
        distinct_requests: shared.workload.distinct() as u64,
        unique_ids: a.unique_ids,
        target_rate: (a.rate > 0.0).then_some(a.rate),
        request_bytes: shared.workload.avg_message_bytes as u64,
        wire_bytes: match c.requests_sent {
            0 => shared.workload.avg_wire_bytes as u64,
            n => c.bytes_sent / n,
        },
        elapsed_secs: (secs * 1000.0).round() / 1000.0,
        requests_sent: c.requests_sent,
        requests_ok: c.requests_ok,
        requests_failed: c.requests_failed,
        responses: c.responses,
        spans_sent: c.spans_sent,
        spans_accepted: c.spans_accepted,
        spans_rejected: c.spans_rejected,
        error_spans_sent: c.error_spans_sent,
        spans_per_sec: (c.spans_accepted as f64 / secs).round(),
        sent_spans_per_sec: (c.spans_sent as f64 / secs).round(),
        requests_per_sec: (c.requests_sent as f64 / secs * 10.0).round() / 10.0,
        bytes_per_sec: (c.bytes_sent as f64 / secs).round(),
        late_requests: c.late_requests,
        missed_requests,
        latency: LatencySummary::from_histogram(&latency),
        service_time: LatencySummary::from_histogram(&service),
        errors: shared.errors.snapshot(),
    })
}

/// One in-flight slot: claim a request number, wait for its scheduled time
/// (if rate-limited), send, record; until stopped.
async fn slot(shared: Arc<Shared>, transport: Transport, recorder: Arc<Recorder>) {
    let s = &*shared;
    loop {
        if s.stop.is_set() {
            return;
        }
        let seq = s.next_seq.fetch_add(1, Relaxed);
        if seq >= s.max_requests {
            // Not a global stop: other slots may still be waiting to send
            // their (lower-numbered) scheduled requests.
            return;
        }
        // Prepare the body before waiting, so per-request work (--unique-ids)
        // does not delay the scheduled send.
        let payload = match s.workload.payload(seq) {
            Ok(p) => p,
            Err(e) => {
                s.errors.record("GENERATOR_ERROR", &format!("{e:#}"));
                s.stop.trigger();
                return;
            }
        };
        // `intended` is what latency is measured from.
        let intended = match s.interval {
            None => {
                if s.deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                None
            }
            Some(interval) => {
                let scheduled = s.start + interval.mul_f64(seq as f64);
                if s.deadline.is_some_and(|d| scheduled >= d) {
                    return;
                }
                let now = Instant::now();
                if scheduled > now {
                    // Idle slot: wait for the schedule. Timer lateness here is
                    // ours, not the receiver's, so measure from the actual send.
                    tokio::select! {
                        _ = tokio::time::sleep_until(scheduled.into()) => {}
                        _ = s.stop.wait() => return,
                    }
                    None
                } else {
                    if now - scheduled > LATE_THRESHOLD {
                        s.counters.late_requests.fetch_add(1, Relaxed);
                    }
                    Some(scheduled)
                }
            }
        };

        let c = &s.counters;
        let spans = u64::from(payload.spans);
        c.requests_sent.fetch_add(1, Relaxed);
        c.spans_sent.fetch_add(spans, Relaxed);
        c.error_spans_sent
            .fetch_add(u64::from(payload.error_spans), Relaxed);
        c.bytes_sent.fetch_add(payload.body.len() as u64, Relaxed);

        let sent_at = Instant::now();
        let outcome = match tokio::time::timeout(s.timeout, transport.export(payload.body)).await {
            Ok(o) => o,
            Err(_) => Outcome::transport_error(
                "TIMEOUT",
                format!(
                    "no response within {}",
                    humantime::format_duration(s.timeout)
                ),
            ),
        };
        let done = Instant::now();
        match outcome {
            Outcome::Accepted { rejected_spans } => {
                let rejected = rejected_spans.min(spans);
                c.responses.fetch_add(1, Relaxed);
                c.requests_ok.fetch_add(1, Relaxed);
                c.spans_accepted.fetch_add(spans - rejected, Relaxed);
                c.spans_rejected.fetch_add(rejected, Relaxed);
                recorder.record(done - intended.unwrap_or(sent_at), done - sent_at);
            }
            Outcome::Failed {
                label,
                message,
                responded,
            } => {
                if responded {
                    c.responses.fetch_add(1, Relaxed);
                }
                c.requests_failed.fetch_add(1, Relaxed);
                s.errors.record(&label, &message);
                // Receiver unreachable: don't spin on connect errors when
                // unpaced (paced runs keep their schedule).
                if !responded && s.interval.is_none() {
                    tokio::select! {
                        _ = tokio::time::sleep(TRANSPORT_ERROR_BACKOFF) => {}
                        _ = s.stop.wait() => return,
                    }
                }
            }
        }
    }
}

/// Print one progress line per second on stderr.
async fn progress(shared: Arc<Shared>, recorders: Vec<Arc<Recorder>>) {
    let mut ticker = tokio::time::interval_at(
        (shared.start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prev = shared.counters.snapshot();
    let mut prev_t = shared.start;
    let mut interval = new_histogram();
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let c = shared.counters.snapshot();
        let dt = (now - prev_t).as_secs_f64().max(1e-9);
        interval.reset();
        for r in &recorders {
            r.drain_interval(&mut interval);
        }
        let lat = if interval.is_empty() {
            "p50 -  p99 -".to_string()
        } else {
            format!(
                "p50 {}  p99 {}",
                fmt_ms(interval.value_at_quantile(0.5) as f64 / 1000.0),
                fmt_ms(interval.value_at_quantile(0.99) as f64 / 1000.0)
            )
        };
        eprintln!(
            "[{:>6.1}s] {:>9} spans/s  {:>7} req/s | accepted {} of {} spans | {} | failed {}",
            (now - shared.start).as_secs_f64(),
            thousands(((c.spans_accepted - prev.spans_accepted) as f64 / dt).round() as u64),
            thousands(((c.requests_sent - prev.requests_sent) as f64 / dt).round() as u64),
            thousands(c.spans_accepted),
            thousands(c.spans_sent),
            lat,
            thousands(c.requests_failed),
        );
        prev = c;
        prev_t = now;
    }
}
