//! The OpenTelemetry JavaScript SDK (installed by `.ci/run` into `tests/clients/node`)
//! sends spans over gRPC, HTTP/protobuf and HTTP/JSON through a pipeline started from
//! YAML; every span arrives with its attributes, event, link and status intact.

mod common;

use common::capture;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

/// The client folder, when its `node_modules` is installed (`.ci/run` does it; CI must).
fn client_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node"));
    if dir.join("node_modules/@opentelemetry/sdk-trace").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok() {
        panic!("tests/clients/node/node_modules is missing in CI (.ci/run installs it)");
    }
    eprintln!("skipping: run `npm ci` in tests/clients/node (or .ci/run) to test the Node SDK");
    None
}

/// Runs the client; returns the trace ID it printed.
async fn send(
    dir: PathBuf,
    protocol: &str,
    endpoint: String,
    service: &str,
    count: usize,
) -> String {
    let args = [
        "send_traces.mjs".to_string(),
        protocol.to_string(),
        endpoint,
        service.to_string(),
        count.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("node runs")
    })
    .await
    .expect("client task");
    assert!(
        out.status.success(),
        "node client ({protocol}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_over_grpc_http_proto_and_http_json() {
    let Some(dir) = client_dir() else {
        return;
    };
    let yaml = format!(
        "receivers:{}\nprocessors:\n  batch:\n    timeout: 20ms\nexporters:\n  capture:\n    name: node\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [capture]\n",
        common::OTLP_EPHEMERAL
    );
    let running = common::start(&yaml).await;
    let cases = [
        ("grpc", running.grpc_endpoint(), "node-grpc", 6),
        ("http-proto", running.http_endpoint(), "node-proto", 5),
        ("http-json", running.http_endpoint(), "node-json", 7),
    ];
    let mut expected_total = 0;
    let mut traces = Vec::new();
    for (protocol, endpoint, service, count) in cases.clone() {
        traces.push(send(dir.clone(), protocol, endpoint, service, count).await);
        expected_total += count + 1;
    }
    assert!(
        common::eventually(Duration::from_secs(10), || capture::count("node")
            == expected_total)
        .await,
        "got {} spans, expected {expected_total}",
        capture::count("node")
    );
    let spans = capture::spans("node");
    for ((protocol, _, service, count), trace_id) in cases.iter().zip(&traces) {
        let mine: Vec<&Span> = spans
            .iter()
            .filter(|(s, _)| s == service)
            .map(|(_, span)| span)
            .collect();
        assert_eq!(mine.len(), count + 1, "{protocol}: spans of {service}");
        let root = mine
            .iter()
            .find(|s| s.name == "node-root")
            .unwrap_or_else(|| panic!("{protocol}: no root span"));
        assert_eq!(&hex(&root.trace_id), trace_id, "{protocol}: trace ID");
        assert!(
            root.parent_span_id.is_empty(),
            "{protocol}: root has no parent"
        );
        assert_eq!(root.kind, 2, "{protocol}: root is a server span");
        for i in 0..*count {
            let name = format!("node-{i}");
            let span = mine
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("{protocol}: {name} missing"));
            assert_eq!(span.trace_id, root.trace_id, "{protocol}: {name} trace");
            assert_eq!(
                span.parent_span_id, root.span_id,
                "{protocol}: {name} parent"
            );
            assert_eq!(span.kind, 3, "{protocol}: {name} is a client span");
            assert_eq!(
                attribute(span, "http.request.method"),
                Some(&Value::StringValue("GET".into())),
                "{protocol}: {name} string attribute"
            );
            assert_eq!(
                attribute(span, "http.response.status_code"),
                Some(&Value::IntValue(200 + (i as i64 % 3))),
                "{protocol}: {name} int attribute"
            );
            assert_eq!(
                attribute(span, "ratio"),
                Some(&Value::DoubleValue(i as f64 / 10.0 + 0.05)),
                "{protocol}: {name} double attribute"
            );
            assert_eq!(
                attribute(span, "cache.hit"),
                Some(&Value::BoolValue(i % 2 == 0)),
                "{protocol}: {name} bool attribute"
            );
            let Some(Value::ArrayValue(tags)) = attribute(span, "tags") else {
                panic!("{protocol}: {name} array attribute");
            };
            assert_eq!(tags.values.len(), 2, "{protocol}: {name} array length");
            assert_eq!(span.events.len(), 1, "{protocol}: {name} event");
            assert_eq!(span.events[0].name, "work");
            assert_eq!(span.links.len(), 1, "{protocol}: {name} link");
            assert_eq!(
                span.links[0].span_id, root.span_id,
                "{protocol}: link target"
            );
            assert_eq!(span.links[0].trace_id, root.trace_id);
            let code = span.status.as_ref().map_or(0, |s| s.code);
            assert_eq!(
                code,
                if i % 5 == 4 { 2 } else { 0 },
                "{protocol}: {name} status"
            );
            assert!(
                span.end_time_unix_nano >= span.start_time_unix_nano
                    && span.start_time_unix_nano > 0,
                "{protocol}: {name} times"
            );
        }
    }
    running.stop().await;
}
