//! End-to-end pipelines started in-process from YAML on ephemeral ports, fed by the
//! `opentelemetry-otlp` crate and by raw OTLP/HTTP requests.

mod common;

use common::capture;
use common::otlp::{emit_trace, provider, Transport};
use std::time::Duration;

fn config(capture_names: &[&str], batch: &str) -> String {
    let exporters: String = capture_names
        .iter()
        .map(|n| format!("  capture/{n}:\n    name: {n}\n"))
        .collect();
    let ids: Vec<String> = capture_names
        .iter()
        .map(|n| format!("capture/{n}"))
        .collect();
    format!(
        "receivers:{}\nprocessors:\n  batch:\n{batch}\nexporters:\n{exporters}\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [{}]\n",
        common::OTLP_EPHEMERAL,
        ids.join(", ")
    )
}

/// The SDK sends one trace of `children + 1` spans over `transport`; every span reaches
/// the exporter with its service, attributes and events, and never decoded on the way.
async fn sdk_reaches_the_exporter(transport: Transport, name: &str, children: usize) {
    let running = common::start(&config(&[name], "    timeout: 50ms")).await;
    let endpoint = match transport {
        Transport::Grpc => running.grpc_endpoint(),
        Transport::HttpProto => running.http_endpoint(),
    };
    let service = format!("{name}-service");
    let sdk_service = service.clone();
    tokio::task::spawn_blocking(move || {
        let p = provider(transport, &endpoint, &sdk_service);
        emit_trace(&p, "t", children);
        p.shutdown().expect("sdk shutdown");
    })
    .await
    .unwrap();
    assert!(
        common::eventually(Duration::from_secs(5), || capture::count(name)
            == children + 1)
        .await,
        "got {} spans",
        capture::count(name)
    );
    let spans = capture::spans(name);
    assert!(spans.iter().all(|(svc, _)| *svc == service));
    assert!(spans.iter().any(|(_, s)| s.name == "t-root"));
    let child = spans.iter().find(|(_, s)| s.name == "t-3").unwrap();
    assert_eq!(child.1.attributes.len(), 4);
    assert_eq!(child.1.events.len(), 1);
    let (batches, encoded) = capture::batches(name);
    assert_eq!(encoded, batches, "the pass-through path never decodes");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_grpc_reaches_the_exporter() {
    sdk_reaches_the_exporter(Transport::Grpc, "grpc-sdk", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_over_http_protobuf_reaches_the_exporter() {
    sdk_reaches_the_exporter(Transport::HttpProto, "http-sdk", 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_otlp_json_post_following_the_spec_example() {
    let running = common::start(&config(&["json-raw"], "    timeout: 10ms")).await;
    let body = include_str!("fixtures/otlp-trace.json");
    let response = reqwest::Client::new()
        .post(format!("{}/v1/traces", running.http_endpoint()))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let answer: serde_json::Value = response.json().await.unwrap();
    assert!(answer
        .get("partialSuccess")
        .is_none_or(|p| p.get("rejectedSpans").is_none_or(|r| r == "0" || r == 0)));
    assert!(common::eventually(Duration::from_secs(5), || capture::count("json-raw") == 1).await);
    let spans = capture::spans("json-raw");
    let (service, span) = &spans[0];
    assert_eq!(service, "json.service");
    assert_eq!(hex(&span.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&span.span_id), "b7ad6b7169203331");
    assert_eq!(hex(&span.parent_span_id), "00f067aa0ba902b7");
    assert_eq!(span.kind, 2);
    assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_700_000_000_250_000_000);
    assert_eq!(span.attributes.len(), 3);
    assert_eq!(span.events[0].name, "cache miss");
    assert_eq!(span.status.as_ref().unwrap().code, 2);
    running.stop().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_to_pipelines_and_exporters() {
    let yaml = format!(
        r#"
receivers:{}
processors:
  batch:
    timeout: 10ms
  batch/second:
    timeout: 10ms
exporters:
  capture/a:
    name: fan-a
  capture/b:
    name: fan-b
  capture/c:
    name: fan-c
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [capture/a, capture/b]
    traces/second:
      receivers: [otlp]
      processors: [batch/second]
      exporters: [capture/c, capture/a]
"#,
        common::OTLP_EPHEMERAL
    );
    let running = common::start(&yaml).await;
    let endpoint = running.grpc_endpoint();
    tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "fan");
        emit_trace(&p, "f", 9);
        p.shutdown().expect("sdk shutdown");
    })
    .await
    .unwrap();
    // Exporter a is shared by both pipelines, so it sees every span twice.
    let done = common::eventually(Duration::from_secs(5), || {
        capture::count("fan-b") == 10
            && capture::count("fan-c") == 10
            && capture::count("fan-a") == 20
    })
    .await;
    assert!(
        done,
        "a={} b={} c={}",
        capture::count("fan-a"),
        capture::count("fan-b"),
        capture::count("fan-c")
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_spans_held_in_the_batch() {
    // A long batch timeout: the spans sit in the batch processor until shutdown flushes them.
    let running = common::start(&config(
        &["drain"],
        "    timeout: 60s\n    send_batch_size: 100000",
    ))
    .await;
    let endpoint = running.grpc_endpoint();
    tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "drain");
        emit_trace(&p, "d", 49);
        p.shutdown().expect("sdk shutdown");
    })
    .await
    .unwrap();
    assert_eq!(
        capture::count("drain"),
        0,
        "held by the batch processor until shutdown"
    );
    running.stop().await;
    assert_eq!(capture::count("drain"), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_metrics_are_served_with_the_collectors_names() {
    let yaml = format!(
        r#"
receivers:{}
processors:
  batch:
    timeout: 10ms
exporters:
  debug:
  capture:
    name: metrics
service:
  telemetry:
    metrics:
      address: 127.0.0.1:0
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug, capture]
"#,
        common::OTLP_EPHEMERAL
    );
    let running = common::start(&yaml).await;
    let endpoint = running.grpc_endpoint();
    tokio::task::spawn_blocking(move || {
        let p = provider(Transport::Grpc, &endpoint, "metrics");
        emit_trace(&p, "m", 4);
        p.shutdown().expect("sdk shutdown");
    })
    .await
    .unwrap();
    assert!(common::eventually(Duration::from_secs(5), || capture::count("metrics") == 5).await);
    let url = format!(
        "http://{}/metrics",
        running.addr("service::telemetry::metrics", "metrics")
    );
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    for line in [
        "otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\"} 5",
        "otelcol_receiver_refused_spans{receiver=\"otlp\",transport=\"grpc\"} 0",
        "otelcol_exporter_sent_spans{exporter=\"debug\"} 5",
        "otelcol_processor_batch_batch_send_size_count{processor=\"batch\"} ",
        "# TYPE otelcol_process_memory_rss gauge",
        "# TYPE otelcol_process_cpu_seconds gauge",
    ] {
        assert!(text.contains(line), "{line:?} missing from:\n{text}");
    }
    running.stop().await;
}
