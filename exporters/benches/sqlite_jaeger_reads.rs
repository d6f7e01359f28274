//! How long the Jaeger API's reads take on a large SQLite store: services, operations,
//! dependencies, RED metrics and trace search over `SPANS` spans (default 1,000,000;
//! set `SPANS=...` to change), written through the exporter.
//!
//! Each trace has 5 spans over 3 services (frontend server -> frontend client ->
//! backend server -> backend internal, backend -> db server), one in ten with an error.
//! Span IDs are scrambled (a bijective mix of a counter), so they are as scattered over
//! the span-ID index as the random IDs of real SDKs.
//!
//! `cargo bench -p teletrace-exporters --bench sqlite_jaeger_reads`

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use std::collections::BTreeMap;
use std::time::Instant;
use teletrace_core::storage::{MetricsQuery, Timeframe, TraceQuery, TraceReader};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{Consumer as _, Host, Lifecycle as _, Traces};
use teletrace_exporters::sqlite::{SqliteConfig, SqliteExporter};

const BASE_NS: u64 = 1_700_000_000_000_000_000;
const TRACE_GAP_NS: u64 = 1_000_000; // a trace per ms

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            string("service.name", service),
            string("host.name", "bench"),
        ],
        ..Default::default()
    }
}

/// The splitmix64 finalizer: a bijection on u64, so distinct counters stay distinct
/// IDs, spread like random ones (never 0 for the counters used here, which start at 1).
fn scramble(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[allow(clippy::too_many_arguments)]
fn span(
    trace: u64,
    id: u64,
    parent: u64,
    name: &str,
    kind: SpanKind,
    start: u64,
    duration: u64,
    error: bool,
) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(trace + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&(trace * 7 + 3).to_be_bytes());
    Span {
        trace_id: trace_id.to_vec(),
        span_id: scramble(id).to_be_bytes().to_vec(),
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            scramble(parent).to_be_bytes().to_vec()
        },
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes: vec![string("http.route", name)],
        status: Some(Status {
            code: if error {
                StatusCode::Error as i32
            } else {
                StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// Traces `from..to` as one batch: a ResourceSpans per service.
fn batch(from: u64, to: u64) -> Traces {
    let mut by_service: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
    for t in from..to {
        let start = BASE_NS + t * TRACE_GAP_NS;
        let id = t * 8 + 1;
        let error = t % 10 == 0;
        let d = (t % 97 + 1) * 100_000;
        let front = by_service.entry("frontend").or_default();
        front.push(span(
            t,
            id,
            0,
            "GET /",
            SpanKind::Server,
            start,
            5 * d,
            error,
        ));
        front.push(span(
            t,
            id + 1,
            id,
            "call",
            SpanKind::Client,
            start + 1,
            4 * d,
            error,
        ));
        let back = by_service.entry("backend").or_default();
        back.push(span(
            t,
            id + 2,
            id + 1,
            "handle",
            SpanKind::Server,
            start + 2,
            3 * d,
            error,
        ));
        back.push(span(
            t,
            id + 3,
            id + 2,
            "work",
            SpanKind::Internal,
            start + 3,
            d,
            false,
        ));
        by_service.entry("db").or_default().push(span(
            t,
            id + 4,
            id + 3,
            "SELECT",
            SpanKind::Server,
            start + 4,
            d,
            false,
        ));
    }
    Traces::new(
        by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(resource(service)),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    )
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let t = Instant::now();
    let out = f.await;
    println!("{what:<48} {:>9.1} ms", t.elapsed().as_secs_f64() * 1e3);
    out
}

#[tokio::main]
async fn main() {
    let spans: u64 = std::env::var("SPANS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let traces = spans / 5;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = SqliteConfig {
        path: dir.path().join("bench.db").display().to_string(),
        ..Default::default()
    };
    let exporter = SqliteExporter::new("sqlite", config, &Metrics::new());
    exporter.start(&Host::default()).await.expect("starts");
    let t = Instant::now();
    let per_batch = 1_000;
    let mut from = 0;
    while from < traces {
        let to = (from + per_batch).min(traces);
        exporter.consume(batch(from, to)).await.expect("stored");
        from = to;
    }
    println!(
        "wrote {} spans in {:.1} s",
        traces * 5,
        t.elapsed().as_secs_f64()
    );
    let reader = exporter.sqlite_reader();
    let all = Timeframe {
        start_ns: BASE_NS,
        end_ns: BASE_NS + traces * TRACE_GAP_NS,
    };
    let tenth = Timeframe {
        start_ns: all.end_ns - (all.end_ns - all.start_ns) / 10,
        end_ns: all.end_ns,
    };

    let services = timed("services", reader.services())
        .await
        .expect("services");
    assert_eq!(services.len(), 3);
    timed("operations(backend)", reader.operations("backend", None))
        .await
        .expect("operations");
    let deps = timed("dependencies (all spans)", reader.dependencies(all))
        .await
        .expect("dependencies");
    assert_eq!(deps.len(), 2, "{deps:?}");
    timed("dependencies (last 10%)", reader.dependencies(tenth))
        .await
        .expect("dependencies");
    let step = (all.end_ns - all.start_ns) / 60 + 1;
    let metrics = MetricsQuery {
        timeframe: all,
        step_ns: step,
        service: None,
    };
    timed(
        "service metrics per service (all spans)",
        reader.service_metrics(&metrics),
    )
    .await
    .expect("metrics");
    let by_op = MetricsQuery {
        service: Some("backend"),
        ..metrics
    };
    timed(
        "service metrics per operation (all spans)",
        reader.service_metrics(&by_op),
    )
    .await
    .expect("metrics");
    let last = MetricsQuery {
        timeframe: tenth,
        ..metrics
    };
    timed(
        "service metrics per service (last 10%)",
        reader.service_metrics(&last),
    )
    .await
    .expect("metrics");
    let search = TraceQuery {
        service: Some("backend".into()),
        timeframe: all,
        limit: 20,
        ..Default::default()
    };
    timed(
        "find traces: service, limit 20",
        reader.find_trace_ids(&search),
    )
    .await
    .expect("search");
    let tagged = TraceQuery {
        tags: vec![("error".into(), "true".into())],
        operation: Some("handle".into()),
        ..search.clone()
    };
    timed(
        "find traces: service+operation+error=true",
        reader.find_trace_ids(&tagged),
    )
    .await
    .expect("search");
    let slow = TraceQuery {
        min_duration_ns: Some(40_000_000),
        ..search
    };
    timed(
        "find traces: service+minDuration (rare)",
        reader.find_trace_ids(&slow),
    )
    .await
    .expect("search");
    exporter.shutdown().await.expect("shutdown");
}
