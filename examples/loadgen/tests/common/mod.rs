//! In-process OTLP sinks (gRPC and HTTP) that decode and count spans.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;

/// (trace id, span id).
pub type SpanKey = (Vec<u8>, Vec<u8>);

/// What the sink answers.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Accept everything.
    Accept,
    /// Accept, but report this many rejected spans per request (partial success).
    Reject(i64),
    /// Fail every request (gRPC UNAVAILABLE / HTTP 503).
    Fail,
}

/// Counters shared by a sink and the test.
#[derive(Debug)]
pub struct Sink {
    pub mode: Mode,
    pub requests: AtomicU64,
    pub spans: AtomicU64,
    pub bad_ids: AtomicU64,
    /// (trace id, span id) pairs seen, if tracking.
    pub ids: Mutex<Option<HashSet<SpanKey>>>,
    pub duplicate_ids: AtomicU64,
}

impl Sink {
    pub fn new(mode: Mode, track_ids: bool) -> Arc<Self> {
        Arc::new(Self {
            mode,
            requests: AtomicU64::new(0),
            spans: AtomicU64::new(0),
            bad_ids: AtomicU64::new(0),
            ids: Mutex::new(track_ids.then(HashSet::new)),
            duplicate_ids: AtomicU64::new(0),
        })
    }

    fn ingest(&self, req: &ExportTraceServiceRequest) -> ExportTraceServiceResponse {
        let mut n = 0;
        let mut ids = self.ids.lock().unwrap();
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    n += 1;
                    if s.trace_id.len() != 16 || s.span_id.len() != 8 {
                        self.bad_ids.fetch_add(1, Relaxed);
                    }
                    if let Some(set) = ids.as_mut() {
                        if !set.insert((s.trace_id.clone(), s.span_id.clone())) {
                            self.duplicate_ids.fetch_add(1, Relaxed);
                        }
                    }
                }
            }
        }
        self.requests.fetch_add(1, Relaxed);
        self.spans.fetch_add(n, Relaxed);
        ExportTraceServiceResponse {
            partial_success: match self.mode {
                Mode::Reject(k) => Some(ExportTracePartialSuccess {
                    rejected_spans: k,
                    error_message: "rejected by test sink".into(),
                }),
                _ => None,
            },
        }
    }
}

struct Grpc(Arc<Sink>);

#[async_trait::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        if let Mode::Fail = self.0.mode {
            self.0.requests.fetch_add(1, Relaxed);
            return Err(tonic::Status::unavailable("sink is failing on purpose"));
        }
        Ok(tonic::Response::new(self.0.ingest(request.get_ref())))
    }
}

/// Start a tonic OTLP/gRPC sink on 127.0.0.1:0.
pub async fn grpc_sink(sink: Arc<Sink>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let svc = TraceServiceServer::new(Grpc(sink))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(64 << 20);
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

/// Start a hyper OTLP/HTTP sink (HTTP/1.1) on 127.0.0.1:0.
pub async fn http_sink(sink: Arc<Sink>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let sink = sink.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let sink = sink.clone();
                    async move { Ok::<_, std::convert::Infallible>(handle_http(&sink, req).await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn handle_http(
    sink: &Sink,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let reply = |status: u16, ct: &str, body: Vec<u8>| {
        hyper::Response::builder()
            .status(status)
            .header("content-type", ct)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    if req.uri().path() != "/v1/traces" {
        return reply(404, "text/plain", b"not found".to_vec());
    }
    let json = req
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let gzip = req
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .unwrap();
        Bytes::from(out)
    } else {
        body
    };
    let ct = if json {
        "application/json"
    } else {
        "application/x-protobuf"
    };
    if let Mode::Fail = sink.mode {
        sink.requests.fetch_add(1, Relaxed);
        return reply(
            503,
            "application/json",
            br#"{"code":14,"message":"sink is failing on purpose"}"#.to_vec(),
        );
    }
    let decoded: Result<ExportTraceServiceRequest, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        ExportTraceServiceRequest::decode(body).map_err(|e| e.to_string())
    };
    match decoded {
        Ok(r) => {
            let resp = sink.ingest(&r);
            let out = if json {
                serde_json::to_vec(&resp).unwrap()
            } else {
                resp.encode_to_vec()
            };
            reply(200, ct, out)
        }
        Err(e) => reply(400, "text/plain", e.into_bytes()),
    }
}
