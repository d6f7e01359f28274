//! The `file` exporter and the `file` receiver end to end: spans written by the exporter
//! (both formats, with and without zstd, across rotations and a restart) come back
//! unchanged through a running pipeline `file receiver -> capture + file exporter`, and a
//! followed file delivers what is appended while the service runs.

mod common;

use common::capture;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use std::path::{Path, PathBuf};
use std::time::Duration;
use teletrace_core::rotated_files;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{Consumer, Host, Lifecycle, Traces};
use teletrace_exporters::file::{FileConfig, FileExporter, Format, RotationConfig};
use teletrace_receivers::file::{FileReceiverConfig, Tail};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("teletrace-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Batch `b` of 100 spans with attributes that zstd cannot shrink much (pseudo-random
/// hex), so that a few batches fill a 1 MiB file even compressed.
fn batch(prefix: &str, b: usize) -> Vec<ResourceSpans> {
    let mut state = (b as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut noise = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        format!("{state:016x}")
    };
    let spans = (0..100)
        .map(|i| Span {
            trace_id: vec![b as u8 + 1; 16],
            span_id: ((b * 100 + i) as u64 + 1).to_be_bytes().to_vec(),
            name: format!("{prefix}-{b}-{i}"),
            kind: 3,
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_500_000 + i as u64,
            attributes: (0..6)
                .map(|a| KeyValue {
                    key: format!("attr.{a}"),
                    value: Some(AnyValue {
                        value: Some(match a {
                            0 => Value::IntValue(-(i as i64) * 1_000_000_007),
                            1 => Value::DoubleValue(i as f64 / 7.0),
                            2 => Value::BoolValue(i % 2 == 0),
                            3 => Value::BytesValue(vec![a as u8, i as u8, 0xff]),
                            _ => Value::StringValue((0..32).map(|_| noise()).collect()),
                        }),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![KeyValue {
                key: "service.name".into(),
                value: Some(AnyValue {
                    value: Some(Value::StringValue("roundtrip".into())),
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
    }]
}

async fn write(
    path: &Path,
    format: Format,
    compression: &str,
    rotate: bool,
    batches: Vec<Vec<ResourceSpans>>,
) {
    let config = FileConfig {
        path: path.display().to_string(),
        format,
        compression: compression.into(),
        rotation: rotate.then(|| RotationConfig {
            max_megabytes: 1,
            ..RotationConfig::default()
        }),
        ..FileConfig::default()
    };
    let exporter = FileExporter::new("file", config, &Metrics::new());
    exporter.start(&Host::default()).await.unwrap();
    for rs in batches {
        exporter.consume(Traces::new(rs)).await.unwrap();
    }
    exporter.shutdown().await.unwrap();
}

fn all_spans(batches: &[Vec<ResourceSpans>]) -> Vec<Span> {
    batches
        .iter()
        .flat_map(|rs| rs[0].scope_spans[0].spans.clone())
        .collect()
}

fn read_back(path: &Path, format: &str, compression: &str) -> Vec<Span> {
    let config: FileReceiverConfig = serde_yaml::from_str(&format!(
        "{{path: '{}', format: {format}, compression: '{compression}'}}",
        path.display()
    ))
    .unwrap();
    let mut tail = Tail::new(&config).unwrap();
    let mut spans = Vec::new();
    while !tail.finished() {
        for item in tail.poll() {
            let traces = item.unwrap_or_else(|e| panic!("{e}"));
            for rs in traces.into_resource_spans().unwrap() {
                for ss in rs.scope_spans {
                    spans.extend(ss.spans);
                }
            }
        }
    }
    spans
}

async fn round_trip(format: &str, compression: &str) {
    let name = format!(
        "{format}-{}",
        if compression.is_empty() {
            "plain"
        } else {
            compression
        }
    );
    let dir = TempDir::new(&name);
    let input = dir.0.join("in.data");
    let output = dir.0.join("out.data");
    let fmt = if format == "json" {
        Format::Json
    } else {
        Format::Proto
    };
    let batches: Vec<_> = (0..48).map(|b| batch(&name, b)).collect();
    // Two runs of the exporter on the same path: the second appends, and both rotate.
    write(&input, fmt, compression, true, batches[..24].to_vec()).await;
    write(&input, fmt, compression, true, batches[24..].to_vec()).await;
    let rotated = rotated_files::list(&input).unwrap();
    assert!(!rotated.is_empty(), "{name}: expected a rotation");
    let expected = all_spans(&batches);

    let yaml = format!(
        r#"
receivers:
  file:
    path: '{input}'
    format: {format}
    compression: '{compression}'
exporters:
  capture/{name}:
    name: {name}
  file:
    path: '{output}'
    format: {format}
    compression: '{compression}'
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [file]
      exporters: [capture/{name}, file]
"#,
        input = input.display(),
        output = output.display(),
    );
    let running = common::start(&yaml).await;
    let done = common::eventually(Duration::from_secs(30), || {
        capture::count(&name) >= expected.len()
    })
    .await;
    running.stop().await;
    assert!(
        done,
        "{name}: {} of {} spans arrived",
        capture::count(&name),
        expected.len()
    );
    let captured: Vec<Span> = capture::spans(&name).into_iter().map(|(_, s)| s).collect();
    assert_eq!(captured.len(), expected.len(), "{name}");
    assert!(
        captured == expected,
        "{name}: spans changed on the way through the file"
    );

    // file -> file: the second file holds the same spans.
    assert!(
        read_back(&output, format, compression) == expected,
        "{name}: file -> file differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_round_trip() {
    round_trip("json", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_zstd_round_trip() {
    round_trip("json", "zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_round_trip() {
    round_trip("proto", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto_zstd_round_trip() {
    round_trip("proto", "zstd").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_follows_a_growing_file() {
    let dir = TempDir::new("follow");
    let path = dir.0.join("live.json");
    let yaml = format!(
        r#"
receivers:
  file:
    path: '{}'
    follow: true
    poll_interval: 20ms
exporters:
  capture/follow:
    name: follow
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [file]
      exporters: [capture/follow]
"#,
        path.display()
    );
    // The file does not exist yet when the receiver starts.
    let running = common::start(&yaml).await;
    let config = FileConfig {
        path: path.display().to_string(),
        flush_interval: Duration::ZERO,
        ..FileConfig::default()
    };
    let exporter = FileExporter::new("file", config, &Metrics::new());
    exporter.start(&Host::default()).await.unwrap();
    exporter
        .consume(Traces::new(batch("follow", 0)))
        .await
        .unwrap();
    assert!(common::eventually(Duration::from_secs(10), || capture::count("follow") == 100).await);
    exporter
        .consume(Traces::new(batch("follow", 1)))
        .await
        .unwrap();
    assert!(common::eventually(Duration::from_secs(10), || capture::count("follow") == 200).await);
    exporter.shutdown().await.unwrap();
    running.stop().await;
    let names = capture::names("follow");
    assert_eq!(names.first().map(String::as_str), Some("follow-0-0"));
    assert_eq!(names.last().map(String::as_str), Some("follow-1-99"));
}
