use super::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::time::Duration;
use teletrace_core::component::Kind;
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, Host, Traces};

fn batch(name: &str) -> Traces {
    Traces::new(vec![ResourceSpans {
        scope_spans: vec![ScopeSpans {
            spans: vec![Span {
                trace_id: vec![3; 16],
                span_id: vec![4; 8],
                name: name.into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Span::default()
            }],
            ..ScopeSpans::default()
        }],
        ..ResourceSpans::default()
    }])
}

fn build(yaml: &str) -> Result<Arc<dyn Exporter>, String> {
    let registration = teletrace_core::registry::find(Kind::Exporter, "file").unwrap();
    let FactoryRef::Exporter(factory) = registration.factory else {
        panic!("not an exporter factory");
    };
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let config = factory.parse_config(&value).map_err(|e| e.to_string())?;
    let ctx = BuildContext {
        id: ComponentId::parse("file").unwrap(),
        pipeline: None,
        metrics: Metrics::new(),
        host: Host::default(),
    };
    factory.create(&ctx, config).map_err(|e| e.to_string())
}

/// Splits length-prefixed records.
fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(bytes[pos + 4..pos + 4 + len].to_vec());
        pos += 4 + len;
    }
    out
}

fn span_name(request: &ExportTraceServiceRequest) -> &str {
    &request.resource_spans[0].scope_spans[0].spans[0].name
}

#[tokio::test]
async fn restart_appends_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/spans.json");
    let yaml = format!("path: {}", path.display());
    for name in ["first", "second"] {
        let exporter = build(&yaml).unwrap();
        exporter.start(&Host::default()).await.unwrap();
        exporter.consume(batch(name)).await.unwrap();
        exporter.shutdown().await.unwrap();
        exporter.shutdown().await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    let span = &second["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(span["name"], "second");
    assert_eq!(span["traceId"], "03030303030303030303030303030303");
    assert_eq!(span["startTimeUnixNano"], "1");
}

#[tokio::test]
async fn proto_with_zstd_compresses_each_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.pb");
    let yaml = format!(
        "{{path: {}, format: proto, compression: zstd, flush_interval: 0s}}",
        path.display()
    );
    let exporter = build(&yaml).unwrap();
    exporter.start(&Host::default()).await.unwrap();
    exporter.consume(batch("a")).await.unwrap();
    exporter.consume(batch("b")).await.unwrap();
    // flush_interval 0: on disk without shutdown.
    let records = frames(&std::fs::read(&path).unwrap());
    assert_eq!(records.len(), 2);
    let names: Vec<String> = records
        .iter()
        .map(|r| {
            let raw = zstd::stream::decode_all(&r[..]).unwrap();
            span_name(&ExportTraceServiceRequest::decode(&raw[..]).unwrap()).to_string()
        })
        .collect();
    assert_eq!(names, ["a", "b"]);
    exporter.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn buffered_writes_reach_the_file_at_the_flush_interval() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.json");
    let yaml = format!("{{path: {}, flush_interval: 2s}}", path.display());
    let exporter = build(&yaml).unwrap();
    exporter.start(&Host::default()).await.unwrap();
    exporter.consume(batch("a")).await.unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The flush runs on a blocking thread: give it real time to land.
    for _ in 0..100 {
        if std::fs::metadata(&path).unwrap().len() > 0 {
            break;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    exporter.shutdown().await.unwrap();
}

#[test]
fn bad_config_names_the_key() {
    for (yaml, key) in [
        ("{}", "path"),
        ("{path: x, compression: gzip}", "compression"),
        ("{path: x, format: xml}", "format"),
        ("{path: x, append: false}", "append"),
        ("{path: x, group_by: {enabled: true}}", "group_by::enabled"),
        (
            "{path: x, rotation: {max_megabytes: 0}}",
            "rotation::max_megabytes",
        ),
        ("{path: x, rotation: {max_size: 1}}", "rotation"),
    ] {
        let err = build(yaml)
            .err()
            .unwrap_or_else(|| panic!("{yaml} accepted"));
        assert!(err.contains(key), "{yaml}: {err}");
    }
}
