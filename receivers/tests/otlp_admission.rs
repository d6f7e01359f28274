//! Admission control: when the pipeline refuses data ([`Consumer::admit`], e.g. a
//! `memory_limiter` over its soft limit), the receiver answers `UNAVAILABLE` / 503 before
//! it reads the request body.

mod common;

use async_trait::async_trait;
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::{ConsumeError, Consumer, Lifecycle, Traces};
use teletrace_receivers::otlp::status::RpcStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// A pipeline that refuses admission while closed and counts what reaches it.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    admits: AtomicUsize,
    spans: AtomicUsize,
}

#[async_trait]
impl Consumer for Gate {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.spans.fetch_add(traces.span_count(), Ordering::SeqCst);
        Ok(())
    }

    fn admit(&self) -> Result<(), ConsumeError> {
        self.admits.fetch_add(1, Ordering::SeqCst);
        if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(ConsumeError::retryable(
                "data refused due to high memory usage (memory limit 100 MiB)",
            ))
        }
    }
}

#[tokio::test]
async fn grpc_refuses_before_reading_the_message() {
    let gate = Arc::new(Gate::default());
    let running = start(&yaml("    max_recv_msg_size_mib: 1\n", ""), gate.clone()).await;
    let mut client = TraceServiceClient::connect(running.grpc_url())
        .await
        .expect("connects");

    // Over max_recv_msg_size: read, it would be RESOURCE_EXHAUSTED; it is not read.
    let mut big = span(1, 1);
    big.name = "x".repeat(2_000_000);
    let status = client.export(request(vec![big])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("memory limit"), "{status:?}");
    let status = client.export(request(vec![span(1, 2)])).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(gate.spans.load(Ordering::SeqCst), 0);
    assert_eq!(gate.admits.load(Ordering::SeqCst), 2);

    // The same connection carries on once the pipeline admits again.
    gate.open.store(true, Ordering::SeqCst);
    client
        .export(request(vec![span(1, 3), span(1, 4)]))
        .await
        .expect("admitted");
    assert_eq!(gate.spans.load(Ordering::SeqCst), 2);
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "grpc"),
        2
    );
    running.receiver.shutdown().await.unwrap();
}

/// Sends request headers announcing a 100 MB body and only 16 bytes of it, and returns
/// what the server answers (it must answer without waiting for the rest).
async fn headers_only(running: &Running, content_type: &str) -> String {
    let addr = running.addresses.http.expect("http enabled");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {content_type}\r\n\
         content-length: 100000000\r\n\r\n0123456789abcdef"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let n = stream.read(&mut buf).await.unwrap_or(0);
            answer.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&answer);
            if n == 0 || text.contains("\r\n\r\n") && body_complete(&text) {
                break;
            }
        }
    })
    .await
    .expect("answered without the body");
    String::from_utf8_lossy(&answer).into_owned()
}

fn body_complete(response: &str) -> bool {
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

#[tokio::test]
async fn http_refuses_before_reading_the_body() {
    let gate = Arc::new(Gate::default());
    let running = start(&yaml("", ""), gate.clone()).await;

    let answer = headers_only(&running, "application/x-protobuf").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // Announced over max_request_body_size: not drained, the connection is closed.
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let body = answer.split_once("\r\n\r\n").unwrap().1.as_bytes();
    let status = RpcStatus::decode(body).expect("protobuf google.rpc.Status");
    assert_eq!(status.code, Code::Unavailable as i32);
    assert!(status.message.contains("memory limit"), "{status:?}");

    let answer = headers_only(&running, "application/json").await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"code\":14"), "{answer}");
    assert_eq!(gate.spans.load(Ordering::SeqCst), 0);

    // Once admitted, requests go through again.
    gate.open.store(true, Ordering::SeqCst);
    let response = reqwest::Client::new()
        .post(running.http_url("/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request(vec![span(2, 1)]).encode_to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(gate.spans.load(Ordering::SeqCst), 1);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_http_request_leaves_the_connection_usable() {
    // The refused body is read and dropped, so the keep-alive connection carries on.
    let gate = Arc::new(Gate::default());
    let running = start(&yaml("", ""), gate.clone()).await;
    let addr = running.addresses.http.expect("http enabled");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = request(vec![span(3, 1)]).encode_to_vec();
    let mut answers = Vec::new();
    for open in [false, true] {
        gate.open.store(open, Ordering::SeqCst);
        let head = format!(
            "POST /v1/traces HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-protobuf\r\n\
             content-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "the connection was closed");
                answer.extend_from_slice(&buf[..n]);
                if body_complete(&String::from_utf8_lossy(&answer)) {
                    break;
                }
            }
        })
        .await
        .expect("answered");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        answers.push(answer);
    }
    assert!(answers[0].starts_with("HTTP/1.1 503"), "{}", answers[0]);
    assert!(answers[1].starts_with("HTTP/1.1 200"), "{}", answers[1]);
    assert_eq!(gate.spans.load(Ordering::SeqCst), 1);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn other_errors_come_before_admission() {
    // A wrong path or content type is answered as before; admission is not asked.
    let gate = Arc::new(Gate::default());
    let running = start(&yaml("", ""), gate.clone()).await;
    let client = reqwest::Client::new();
    let r = client
        .post(running.http_url("/v1/traces"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = client
        .post(running.http_url("/v1/nothing"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(gate.admits.load(Ordering::SeqCst), 0);
    running.receiver.shutdown().await.unwrap();
}
