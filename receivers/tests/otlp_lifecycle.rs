//! Registration, start, shutdown and draining of the OTLP receiver.

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::registry::{self, BuildContext};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{ComponentId, FactoryRef, Host, Kind, Lifecycle};
use teletrace_receivers::otlp::{OtlpConfig, OtlpReceiver};

#[tokio::test]
async fn registered_and_built_from_yaml() {
    teletrace_receivers::link();
    let registration = registry::find(Kind::Receiver, "otlp").expect("otlp is registered");
    let FactoryRef::Receiver(factory) = registration.factory else {
        panic!("a receiver factory")
    };
    let value: serde_yaml::Value = serde_yaml::from_str(&yaml("", "")).unwrap();
    let config = factory.parse_config(&value).expect("valid");
    let ctx = BuildContext {
        id: ComponentId::parse("otlp/in").unwrap(),
        pipeline: None,
        metrics: Metrics::new(),
        host: Host::default(),
    };
    let receiver = factory
        .create(&ctx, config, Arc::new(Recorder::default()))
        .expect("builds");
    assert!(receiver.listening().is_empty());
    receiver.start(&Host::default()).await.unwrap();
    let listening = receiver.listening();
    assert_eq!(listening.len(), 2);
    assert_eq!(listening[0].0, "grpc");
    assert_eq!(listening[1].0, "http");
    assert!(listening.iter().all(|(_, a)| a.port() != 0));
    receiver.shutdown().await.unwrap();
    receiver.shutdown().await.unwrap();

    // The default config names no protocol and is refused with a clear message.
    let e = factory
        .parse_config(&serde_yaml::Value::Null)
        .err()
        .unwrap();
    assert_eq!(e.path, "protocols");
    assert!(e.message.contains("must enable at least one protocol"));
}

#[tokio::test]
async fn bind_failure_names_the_endpoint() {
    let running = start(&yaml("", ""), Arc::new(Recorder::default())).await;
    let taken = running.addresses.http.unwrap();
    let value: serde_yaml::Value = serde_yaml::from_str(&format!(
        "protocols:\n  grpc:\n    endpoint: 127.0.0.1:0\n  http:\n    endpoint: {taken}\n"
    ))
    .unwrap();
    let config: OtlpConfig = registry::parse_typed_config(&value).unwrap();
    let second = OtlpReceiver::new(
        ComponentId::parse("otlp").unwrap(),
        config,
        &Metrics::new(),
        Arc::new(Recorder::default()),
    );
    let e = second.start(&Host::default()).await.unwrap_err();
    assert!(e.0.contains(&taken.to_string()), "{e}");
    assert!(e.0.contains("HTTP"), "{e}");
    // Nothing is left bound by the failed start, and shutdown is harmless.
    assert_eq!(second.bound_addresses(), Default::default());
    second.shutdown().await.unwrap();
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_is_safe_twice_and_before_start() {
    let value: serde_yaml::Value = serde_yaml::from_str(&yaml("", "")).unwrap();
    let config: OtlpConfig = registry::parse_typed_config(&value).unwrap();
    let receiver = OtlpReceiver::new(
        ComponentId::parse("otlp").unwrap(),
        config,
        &Metrics::new(),
        Arc::new(Recorder::default()),
    );
    receiver.shutdown().await.unwrap();
    receiver.start(&Host::default()).await.unwrap();
    assert!(receiver.start(&Host::default()).await.is_err());
    let http = receiver.bound_addresses().http.unwrap();
    receiver.shutdown().await.unwrap();
    receiver.shutdown().await.unwrap();
    // Stopped accepting.
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

#[tokio::test]
async fn only_the_named_protocol_is_served() {
    let value: serde_yaml::Value =
        serde_yaml::from_str("protocols:\n  http:\n    endpoint: 127.0.0.1:0\n").unwrap();
    let config: OtlpConfig = registry::parse_typed_config(&value).unwrap();
    let receiver = OtlpReceiver::new(
        ComponentId::parse("otlp").unwrap(),
        config,
        &Metrics::new(),
        Arc::new(Recorder::default()),
    );
    receiver.start(&Host::default()).await.unwrap();
    let bound = receiver.bound_addresses();
    assert!(bound.grpc.is_none());
    assert!(bound.http.is_some());
    receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_waits_for_http_requests_in_flight() {
    let slow = Arc::new(Slow::new(Duration::from_millis(400)));
    let running = Arc::new(start(&yaml("", ""), slow.clone()).await);
    let url = running.http_url("/v1/traces");
    let sending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(request(vec![span(1, 1), span(1, 2)]).encode_to_vec())
            .send()
            .await
            .map(|r| r.status())
    });
    slow.entered.notified().await;
    running.receiver.shutdown().await.unwrap();
    // The spans reached the pipeline before shutdown returned.
    assert_eq!(slow.inner.span_count(), 2);
    assert_eq!(sending.await.unwrap().unwrap(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn shutdown_waits_for_grpc_requests_in_flight() {
    let slow = Arc::new(Slow::new(Duration::from_millis(400)));
    let running = start(&yaml("", ""), slow.clone()).await;
    let mut client = TraceServiceClient::connect(running.grpc_url())
        .await
        .unwrap();
    let sending = tokio::spawn(async move { client.export(request(vec![span(1, 1)])).await });
    slow.entered.notified().await;
    running.receiver.shutdown().await.unwrap();
    assert_eq!(slow.inner.span_count(), 1);
    assert!(sending.await.unwrap().is_ok());
}

#[tokio::test]
async fn a_client_hanging_up_does_not_cancel_the_batch() {
    let slow = Arc::new(Slow::new(Duration::from_millis(300)));
    let running = start(&yaml("", ""), slow.clone()).await;
    let url = running.http_url("/v1/traces");
    let sending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-protobuf")
            .body(request(vec![span(1, 1)]).encode_to_vec())
            .send()
            .await
    });
    slow.entered.notified().await;
    sending.abort();
    running.receiver.shutdown().await.unwrap();
    assert_eq!(slow.inner.span_count(), 1);
}
