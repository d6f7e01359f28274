//! `cargo bench -p teletrace-core`: what the receive path costs per span. Requests of 100
//! spans with 10 attributes each (the shape DESIGN.md quotes): the one-pass wire scan
//! done for every received request, against a full prost decode and decode + encode.
//! Plain timing loops (best of several rounds), so no benchmark framework is needed.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::hint::black_box;
use std::time::Instant;
use teletrace_core::Traces;

fn attribute(i: usize) -> KeyValue {
    let value = match i % 4 {
        0 => Value::StringValue(format!("value-{i}")),
        1 => Value::IntValue(i as i64 * 1000),
        2 => Value::DoubleValue(i as f64 / 3.0),
        _ => Value::BoolValue(i.is_multiple_of(2)),
    };
    KeyValue {
        key: format!("attribute.key.{i}"),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn request(spans: usize) -> Vec<u8> {
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: [(i / 5) as u8; 16].to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            parent_span_id: if i % 5 == 0 {
                vec![]
            } else {
                (i as u64).to_be_bytes().to_vec()
            },
            name: format!("GET /api/items/{}", i % 7),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_001_000_000 + i as u64,
            attributes: (0..10).map(attribute).collect(),
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: (0..5).map(attribute).collect(),
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Runs `f` over `rounds` rounds of `iters` iterations; returns the best spans/s.
fn measure(name: &str, spans_per_iter: usize, iters: usize, mut f: impl FnMut()) {
    let mut best = 0f64;
    for _ in 0..7 {
        let start = Instant::now();
        for _ in 0..iters {
            f();
        }
        let rate = (spans_per_iter * iters) as f64 / start.elapsed().as_secs_f64();
        best = best.max(rate);
    }
    println!(
        "{name:<40} {:>14.0} spans/s  ({:.1} ns/span)",
        best,
        1e9 / best
    );
}

fn main() {
    let body = bytes::Bytes::from(request(100));
    println!("request: 100 spans x 10 attributes, {} bytes", body.len());
    measure("wire scan (Traces::from_encoded)", 100, 20_000, || {
        black_box(Traces::from_encoded(black_box(body.clone())).unwrap());
    });
    measure("prost decode", 100, 2_000, || {
        black_box(ExportTraceServiceRequest::decode(black_box(body.clone())).unwrap());
    });
    measure("prost decode + encode", 100, 2_000, || {
        let r = ExportTraceServiceRequest::decode(black_box(body.clone())).unwrap();
        black_box(r.encode_to_vec());
    });
    let parts: Vec<Traces> = (0..82)
        .map(|_| Traces::from_encoded(body.clone()).unwrap())
        .collect();
    measure("batch join of 82 requests (concat)", 8200, 500, || {
        black_box(Traces::concat(black_box(parts.clone())).unwrap());
    });
}
