//! The `otlp` and `otlp_http` exporters end to end: one Teletrace forwards to another
//! over OTLP/gRPC, OTLP/HTTP with protobuf and OTLP/HTTP with JSON, and every span
//! arrives unchanged; against a scripted backend, failures are retried until every span
//! arrives exactly once, and a 400 is not retried.

mod common;

use bytes::Bytes;
use common::capture;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use teletrace_core::proto::tonic::common::v1::{any_value, AnyValue, ArrayValue, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A request of `n` spans named `{prefix}-{i}` with unique IDs and attributes of every
/// kind (so the JSON path has something to get wrong).
fn request(prefix: &str, n: usize) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| {
            let mut span_id = [0u8; 8];
            span_id[..4].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            span_id[4..].copy_from_slice(&(prefix.len() as u32).to_be_bytes());
            Span {
                trace_id: vec![0xa1; 16],
                span_id: span_id.to_vec(),
                parent_span_id: if i == 0 { vec![] } else { vec![0xee; 8] },
                name: format!("{prefix}-{i}"),
                kind: 3,
                start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                end_time_unix_nano: 1_700_000_000_500_000_000 + i as u64,
                attributes: vec![
                    kv("s", any_value::Value::StringValue(format!("v\"{i}\"\n"))),
                    kv("i", any_value::Value::IntValue(-(1 << 60) + i as i64)),
                    kv("d", any_value::Value::DoubleValue(0.25 * i as f64)),
                    kv("b", any_value::Value::BoolValue(i % 2 == 0)),
                    kv("raw", any_value::Value::BytesValue(vec![0, 1, 2, 255])),
                    kv(
                        "list",
                        any_value::Value::ArrayValue(ArrayValue {
                            values: vec![AnyValue {
                                value: Some(any_value::Value::IntValue(7)),
                            }],
                        }),
                    ),
                ],
                events: vec![span::Event {
                    time_unix_nano: 1_700_000_000_100_000_000,
                    name: "event".into(),
                    attributes: vec![kv("n", any_value::Value::IntValue(i as i64))],
                    dropped_attributes_count: 0,
                }],
                links: vec![span::Link {
                    trace_id: vec![0xb2; 16],
                    span_id: vec![0xc3; 8],
                    flags: 0x100,
                    ..Default::default()
                }],
                status: Some(Status {
                    message: if i % 3 == 0 {
                        "bad".into()
                    } else {
                        String::new()
                    },
                    code: if i % 3 == 0 { 2 } else { 1 },
                }),
                flags: 0x101,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    any_value::Value::StringValue(format!("{prefix}-svc")),
                )],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: None,
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Posts `request` as protobuf to an OTLP/HTTP receiver; returns the status code.
async fn post(http_endpoint: &str, request: &ExportTraceServiceRequest) -> u16 {
    reqwest::Client::new()
        .post(format!("{http_endpoint}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(request.encode_to_vec())
        .send()
        .await
        .expect("the first collector answers")
        .status()
        .as_u16()
}

/// A backend Teletrace (OTLP receiver into a capture exporter named `name`).
async fn backend(name: &str) -> common::Running {
    common::start(&format!(
        "receivers:{}\nexporters:\n  capture:\n    name: {name}\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [capture]\n",
        common::OTLP_EPHEMERAL
    ))
    .await
}

/// A forwarding Teletrace: OTLP receiver into the exporter described by `exporter` (YAML
/// under `exporters:`, id `exporter_id`).
async fn forwarder(exporter_id: &str, exporter: &str) -> common::Running {
    common::start(&format!(
        "receivers:{}\nexporters:\n  {exporter_id}:\n{exporter}\nservice:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [{exporter_id}]\n",
        common::OTLP_EPHEMERAL
    ))
    .await
}

/// Sends two batches through `exporter` into a backend and checks every span arrives
/// exactly as sent.
async fn forwards_unchanged(
    name: &str,
    exporter_id: &str,
    exporter: impl Fn(&common::Running) -> String,
) {
    let back = backend(name).await;
    let front = forwarder(exporter_id, &exporter(&back)).await;
    let first = request(&format!("{name}-a"), 7);
    let second = request(&format!("{name}-b"), 5);
    assert_eq!(post(&front.http_endpoint(), &first).await, 200);
    assert_eq!(post(&front.http_endpoint(), &second).await, 200);
    assert!(
        common::eventually(Duration::from_secs(10), || capture::count(name) == 12).await,
        "{name}: got {} spans",
        capture::count(name)
    );
    let received: HashMap<String, (String, Span)> = capture::spans(name)
        .into_iter()
        .map(|(svc, s)| (s.name.clone(), (svc, s)))
        .collect();
    assert_eq!(received.len(), 12, "no span twice");
    for (req, prefix) in [
        (&first, format!("{name}-a")),
        (&second, format!("{name}-b")),
    ] {
        for sent in &req.resource_spans[0].scope_spans[0].spans {
            let (svc, got) = &received[&sent.name];
            assert_eq!(*svc, format!("{prefix}-svc"));
            assert_eq!(got, sent, "{name}: span {} changed on the way", sent.name);
        }
    }
    front.stop().await;
    back.stop().await;
}

#[tokio::test]
async fn grpc_collector_to_collector() {
    forwards_unchanged("fwd-grpc", "otlp", |back| {
        format!(
            "    endpoint: {}\n    tls:\n      insecure: true\n",
            back.addr("receivers::otlp", "grpc")
        )
    })
    .await;
}

#[tokio::test]
async fn grpc_alias_with_http_scheme_and_zstd() {
    forwards_unchanged("fwd-grpc-zstd", "otlp_grpc", |back| {
        format!(
            "    endpoint: {}\n    compression: zstd\n    headers:\n      x-tenant: t1\n",
            back.grpc_endpoint()
        )
    })
    .await;
}

#[tokio::test]
async fn http_protobuf_collector_to_collector() {
    forwards_unchanged("fwd-http-proto", "otlp_http", |back| {
        format!("    endpoint: {}\n", back.http_endpoint())
    })
    .await;
}

#[tokio::test]
async fn http_json_collector_to_collector() {
    forwards_unchanged("fwd-http-json", "otlphttp", |back| {
        format!(
            "    traces_endpoint: {}/v1/traces\n    encoding: json\n    compression: none\n",
            back.http_endpoint()
        )
    })
    .await;
}

/// What the scripted backend saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: http::HeaderMap,
    spans: Vec<Span>,
}

/// One scripted answer: a status and an optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

/// An OTLP/HTTP backend that answers from a script (status, `Retry-After`), then 200.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The status given once the script is over.
    then: u16,
}

impl Scripted {
    async fn start(script: &[Answer], then: u16) -> (Scripted, SocketAddr) {
        let backend = Scripted {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            seen: Arc::default(),
            then,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let this = backend.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let this = this.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let this = this.clone();
                        async move { this.answer(req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (backend, addr)
    }

    async fn answer(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<Full<Bytes>>, std::convert::Infallible> {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body = match parts.headers.get("content-encoding").map(|v| v.as_bytes()) {
            Some(b"gzip") => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(body.as_ref())
                    .read_to_end(&mut out)
                    .expect("valid gzip");
                Bytes::from(out)
            }
            _ => body,
        };
        let request = ExportTraceServiceRequest::decode(body).expect("valid protobuf");
        let spans = request
            .resource_spans
            .into_iter()
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect();
        self.seen.lock().unwrap().push(Seen {
            headers: parts.headers,
            spans,
        });
        let (status, retry_after) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or((self.then, None));
        let body = if status == 200 {
            ExportTraceServiceResponse::default().encode_to_vec()
        } else {
            b"scripted failure".to_vec()
        };
        let mut response = http::Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
        response.headers_mut().insert(
            "content-type",
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        if let Some(after) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", http::HeaderValue::from_static(after));
        }
        Ok(response)
    }

    fn requests(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Span names in the requests answered 200 (the script's failures come first).
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Needs the exporter helper's retry loop (being written in `core/src/exporter_helper/`):
/// until it lands, each batch gets one attempt and the spans of the failed attempts are
/// lost, so this test fails on the span count.
#[tokio::test]
async fn a_backend_that_recovers_gets_every_span_exactly_once() {
    let script = [(503, None), (429, Some("1")), (502, None), (504, None)];
    let (backend, addr) = Scripted::start(&script, 200).await;
    let front = forwarder(
        "otlp_http",
        &format!(
            "    endpoint: http://{addr}\n    headers:\n      x-tenant: t1\n    retry_on_failure:\n      initial_interval: 50ms\n      max_interval: 200ms\n      max_elapsed_time: 30s\n    sending_queue:\n      num_consumers: 2\n"
        ),
    )
    .await;
    for batch in ["r1", "r2", "r3"] {
        // Queued or not, the spans must all reach the backend eventually.
        let _ = post(&front.http_endpoint(), &request(batch, 4)).await;
    }
    let delivered = |backend: &Scripted| -> Vec<String> {
        let seen = backend.seen();
        // The first `script.len()` requests were answered with failures.
        seen.iter()
            .skip(script.len())
            .flat_map(|s| s.spans.iter().map(|sp| sp.name.clone()))
            .collect()
    };
    let complete =
        common::eventually(Duration::from_secs(15), || delivered(&backend).len() >= 12).await;
    let mut names = delivered(&backend);
    assert!(
        complete,
        "expected 12 spans delivered after the backend recovered, got {} in {} requests",
        names.len(),
        backend.requests()
    );
    names.sort();
    let unique = names.len();
    names.dedup();
    assert_eq!(names.len(), unique, "a span was delivered twice: {names:?}");
    assert_eq!(names.len(), 12);
    for seen in backend.seen() {
        assert_eq!(seen.headers["x-tenant"], "t1");
        assert_eq!(seen.headers["content-encoding"], "gzip");
        assert_eq!(seen.headers["content-type"], "application/x-protobuf");
    }
    front.stop().await;
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let (backend, addr) = Scripted::start(&[], 400).await;
    let front = forwarder(
        "otlp_http",
        &format!(
            "    endpoint: http://{addr}\n    retry_on_failure:\n      initial_interval: 20ms\n      max_interval: 50ms\n"
        ),
    )
    .await;
    let _ = post(&front.http_endpoint(), &request("bad", 3)).await;
    assert!(common::eventually(Duration::from_secs(5), || backend.requests() >= 1).await);
    // Ten times the retry interval: a retry would have happened by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        backend.requests(),
        1,
        "a permanent error must not be retried"
    );
    front.stop().await;
}
