//! `cargo bench -p teletrace-exporters --bench file`: file exporter throughput in MB/s of
//! file written, for each format and compression, through the exporter's `consume`
//! (encode + buffered append). Batches of 100 spans with 10 attributes, as received
//! (encoded protobuf). Plain timing loop, best of three rounds.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::Instant;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{Consumer, Host, Lifecycle, Traces};
use teletrace_exporters::file::{FileConfig, FileExporter, Format};

const BATCHES: usize = 400;

fn request() -> bytes::Bytes {
    let spans = (0..100)
        .map(|i: usize| Span {
            trace_id: [(i / 5) as u8; 16].to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("GET /api/items/{}", i % 7),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_100_000 + i as u64,
            attributes: (0..10)
                .map(|a| KeyValue {
                    key: format!("attribute.key.{a}"),
                    value: Some(AnyValue {
                        value: Some(match a % 3 {
                            0 => Value::StringValue(format!("value-{i}-{a}")),
                            1 => Value::IntValue((i * a) as i64),
                            _ => Value::BoolValue(a % 2 == 0),
                        }),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue("bench".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    request.encode_to_vec().into()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let body = request();
    for (format, compression) in [
        (Format::Proto, ""),
        (Format::Json, ""),
        (Format::Proto, "zstd"),
        (Format::Json, "zstd"),
    ] {
        let mut best = f64::MAX;
        let mut bytes = 0;
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("bench.out");
            let config = FileConfig {
                path: path.display().to_string(),
                format,
                compression: compression.into(),
                ..FileConfig::default()
            };
            let exporter = FileExporter::new("file", config, &Metrics::new());
            let seconds = runtime.block_on(async {
                exporter.start(&Host::default()).await.expect("start");
                let start = Instant::now();
                for _ in 0..BATCHES {
                    let traces = Traces::from_encoded(body.clone()).expect("valid");
                    exporter.consume(traces).await.expect("written");
                }
                exporter.shutdown().await.expect("shutdown");
                start.elapsed().as_secs_f64()
            });
            bytes = std::fs::metadata(&path).expect("file").len();
            best = best.min(seconds);
        }
        let spans = BATCHES * 100;
        println!(
            "file exporter {:>5} {:>4}: {:>7.1} MB/s written, {:>9.0} spans/s ({} bytes/span)",
            format!("{format:?}").to_lowercase(),
            if compression.is_empty() {
                "none"
            } else {
                compression
            },
            bytes as f64 / best / 1e6,
            spans as f64 / best,
            bytes / spans as u64,
        );
    }
}
