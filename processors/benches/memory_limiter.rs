//! `cargo bench -p teletrace-processors --bench memory_limiter`: what the `memory_limiter`
//! processor adds per span and per request. Requests of 100 encoded spans pass through
//! the processor into a sink that drops them; the admission check a receiver makes per
//! request, the refusal path, and the periodic measurement (RSS read, `malloc_trim`) are
//! timed on their own. Plain timing loops (best of several rounds).

use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ConsumeError, Consumer, Traces};
use teletrace_processors::memory_limiter::{
    Limiter, Limits, MemoryLimiterConfig, MemoryLimiterProcessor, MemorySource,
};

struct Drop;

#[async_trait]
impl Consumer for Drop {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        black_box(traces);
        Ok(())
    }
}

fn request(spans: usize) -> bytes::Bytes {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: [(i / 5) as u8; 16].to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("GET /api/items/{}", i % 7),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
    .into()
}

/// Best time per iteration of `f` over 7 rounds of `iters`.
fn measure(iters: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        best = best.min(start.elapsed() / iters as u32);
    }
    best
}

fn processor(limit_mib: u32) -> MemoryLimiterProcessor {
    let config = MemoryLimiterConfig {
        check_interval: Duration::from_secs(1),
        limit_mib,
        ..Default::default()
    };
    let limits = Limits::resolve(&config, || Err("fixed".into())).unwrap();
    let limiter = Arc::new(Limiter::new(
        "memory_limiter",
        &config,
        limits,
        MemorySource::process(),
    ));
    MemoryLimiterProcessor::new("memory_limiter", limiter, &Metrics::new(), Arc::new(Drop))
}

fn main() {
    let body = request(100);
    let traces = Traces::from_encoded(body).unwrap();
    println!("requests of 100 spans; times are the best of 7 rounds");

    let sink = Drop;
    let direct = measure(200_000, || {
        futures::executor::block_on(sink.consume(black_box(traces.clone()))).unwrap();
    });
    let admitting = processor(1 << 20); // 1 TiB: never over
    let through = measure(200_000, || {
        futures::executor::block_on(admitting.consume(black_box(traces.clone()))).unwrap();
    });
    let added = through.saturating_sub(direct);
    println!(
        "{:<46} {:>9.1} ns/request  {:>6.2} ns/span",
        "consume through memory_limiter (added)",
        added.as_nanos() as f64,
        added.as_nanos() as f64 / 100.0
    );
    let admit = measure(1_000_000, || {
        black_box(admitting.admit()).unwrap();
    });
    println!(
        "{:<46} {:>9.1} ns/request",
        "admit() (receiver, before reading the body)",
        admit.as_nanos() as f64
    );
    let refusing = processor(1); // any process holds more than 0.8 MiB
    let refuse_admit = measure(200_000, || {
        black_box(refusing.admit()).unwrap_err();
    });
    println!(
        "{:<46} {:>9.1} ns/request",
        "admit() refusing (builds the error)",
        refuse_admit.as_nanos() as f64
    );
    let refuse = measure(200_000, || {
        futures::executor::block_on(refusing.consume(black_box(traces.clone()))).unwrap_err();
    });
    println!(
        "{:<46} {:>9.1} ns/request  {:>6.2} ns/span",
        "consume refusing",
        refuse.as_nanos() as f64,
        refuse.as_nanos() as f64 / 100.0
    );
    let rss = measure(20_000, || {
        black_box(teletrace_core::memory::rss_bytes()).unwrap();
    });
    println!(
        "{:<46} {:>9.2} µs/check",
        "RSS read (/proc/self/statm)",
        rss.as_nanos() as f64 / 1000.0
    );
    let trim = measure(200, || {
        black_box(teletrace_core::memory::release_free_memory());
    });
    println!(
        "{:<46} {:>9.2} µs/call",
        "malloc_trim(0) (small heap)",
        trim.as_nanos() as f64 / 1000.0
    );
}
