//! The OpenTelemetry Python SDK (installed by `.ci/run`) sends spans over gRPC and
//! HTTP/protobuf through a pipeline started from YAML.

mod common;

use common::capture;
use std::process::Command;
use std::time::Duration;

/// The Python with the SDK installed: `TELETRACE_TEST_PYTHON` (set by `.ci/run`).
fn python() -> Option<String> {
    match std::env::var("TELETRACE_TEST_PYTHON") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("TELETRACE_TEST_PYTHON must be set in CI (.ci/run sets it)")
        }
        Err(_) => {
            eprintln!("skipping: TELETRACE_TEST_PYTHON is not set (run .ci/run, or point it at a python with opentelemetry-sdk)");
            None
        }
    }
}

async fn send(protocol: &str, endpoint: String, service: &str, count: usize) {
    let python = python().expect("checked by the caller");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/python/send_traces.py"
    );
    let service = service.to_string();
    let protocol = protocol.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .args([script, &protocol, &endpoint, &service, &count.to_string()])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_over_grpc_and_http() {
    if python().is_none() {
        return;
    }
    let yaml = format!(
        "receivers:{}\nprocessors:\n  batch:\n    timeout: 20ms\nexporters:\n  capture:\n    name: python\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [capture]\n",
        common::OTLP_EPHEMERAL
    );
    let running = common::start(&yaml).await;
    send("grpc", running.grpc_endpoint(), "py-grpc", 12).await;
    send("http", running.http_endpoint(), "py-http", 7).await;
    assert!(
        common::eventually(Duration::from_secs(5), || capture::count("python")
            == 13 + 8)
        .await,
        "got {}",
        capture::count("python")
    );
    let spans = capture::spans("python");
    assert_eq!(spans.iter().filter(|(s, _)| s == "py-grpc").count(), 13);
    assert_eq!(spans.iter().filter(|(s, _)| s == "py-http").count(), 8);
    let errors = spans
        .iter()
        .filter(|(_, s)| s.status.as_ref().is_some_and(|st| st.code == 2))
        .count();
    assert_eq!(errors, 2 + 1);
    running.stop().await;
}
