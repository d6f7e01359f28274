//! Elasticsearch bulk encoding speed: decoded spans -> `_bulk` NDJSON, in spans/s on one
//! core, for both document shapes. Batches of 100 spans with 10 attributes each (the
//! load generator's default shape), one event and one link per span.
//!
//! Run: `cargo bench -p teletrace-exporters --bench es_bulk`.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use std::hint::black_box;
use std::time::{Duration, Instant};
use teletrace_exporters::elasticsearch::bulk::BulkEncoder;
use teletrace_exporters::elasticsearch::MappingMode;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn batch(spans: usize) -> Vec<ResourceSpans> {
    use any_value::Value as V;
    let make = |i: usize| {
        let start = 1_700_000_000_000_000_000 + i as u64 * 1_000;
        Span {
            trace_id: (i as u128 * 0x9e37_79b9_7f4a_7c15).to_be_bytes().to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: (i as u64 + 7).to_be_bytes().to_vec(),
            name: format!("GET /api/v1/items/{}", i % 50),
            kind: 2,
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1_234_567,
            attributes: (0..10)
                .map(|a| match a % 3 {
                    0 => kv(
                        &format!("attr.string.{a}"),
                        V::StringValue(format!("value-{i}-{a}")),
                    ),
                    1 => kv(&format!("attr.int.{a}"), V::IntValue(i as i64 * a)),
                    _ => kv(&format!("attr.double.{a}"), V::DoubleValue(i as f64 / 3.0)),
                })
                .collect(),
            events: vec![span::Event {
                time_unix_nano: start + 10,
                name: "event".into(),
                attributes: vec![kv("event.attr", V::StringValue("x".into()))],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link {
                trace_id: vec![3; 16],
                span_id: vec![4; 8],
                ..Default::default()
            }],
            status: Some(Status {
                message: String::new(),
                code: 1,
            }),
            ..Default::default()
        }
    };
    vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", V::StringValue("bench".into())),
                kv("host.name", V::StringValue("bench-host".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "bench".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
            spans: (0..spans).map(make).collect(),
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }]
}

fn run(name: &str, mode: MappingMode, index: &str) {
    let encoder = BulkEncoder::new(mode, index);
    let input = batch(100);
    // Warm up.
    for _ in 0..200 {
        black_box(encoder.encode(black_box(&input), 1, 5_000_000));
    }
    let mut spans = 0usize;
    let mut bytes = 0usize;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..100 {
            let chunks = encoder.encode(black_box(&input), 1, 5_000_000);
            bytes += chunks.iter().map(|c| c.body.len()).sum::<usize>();
            spans += 100;
            black_box(chunks);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "es_bulk/{name:<10} {:>10.0} spans/s  {:>7.1} MB/s NDJSON  {:>5} bytes/span",
        spans as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes / spans.max(1)
    );
}

fn main() {
    run("teletrace", MappingMode::Teletrace, "teletrace-traces");
    run("otel", MappingMode::Otel, "traces-generic.otel-default");
}
