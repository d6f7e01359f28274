//! OTLP/HTTP client (protobuf or JSON bodies over HTTP/1.1).
//!
//! Each worker has one [`HttpExporter`] whose hyper connection pool keeps up
//! to `--in-flight` keep-alive connections, one per outstanding request.

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;

use crate::args::{Compression, Config, Encoding};
use crate::grpc::accepted;
use crate::transport::{error_chain, Outcome};

const USER_AGENT: &str = concat!("loadgen/", env!("CARGO_PKG_VERSION"));

/// `google.rpc.Status`, the body OTLP/HTTP receivers send with errors.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// OTLP/HTTP exporter with a pool of keep-alive connections.
#[derive(Clone)]
pub struct HttpExporter {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    content_type: HeaderValue,
    gzip: bool,
}

impl HttpExporter {
    /// Create an exporter posting to `cfg.endpoint` (which includes the path).
    pub fn new(cfg: &Config) -> Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.args.timeout.min(Duration::from_secs(10))));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(cfg.args.in_flight as usize)
            .pool_idle_timeout(Duration::from_secs(90))
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        let content_type = match cfg.args.encoding {
            Encoding::Proto => HeaderValue::from_static("application/x-protobuf"),
            Encoding::Json => HeaderValue::from_static("application/json"),
        };
        Ok(Self {
            client,
            uri: cfg.endpoint.clone(),
            content_type,
            gzip: cfg.args.compression == Compression::Gzip,
        })
    }

    /// POST one pre-built (already compressed if configured) body.
    pub async fn export(&self, body: Bytes) -> Outcome {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        h.insert(header::CONTENT_TYPE, self.content_type.clone());
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        if self.gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }

        let resp = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                let label = if e.is_connect() {
                    "CONNECT_ERROR"
                } else {
                    "TRANSPORT_ERROR"
                };
                return Outcome::transport_error(label, error_chain(&e));
            }
        };
        let (parts, body) = resp.into_parts();
        let data = match body.collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) => return Outcome::transport_error("TRANSPORT_ERROR", error_chain(&e)),
        };
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.contains("json"));
        if !parts.status.is_success() {
            return Outcome::server_error(
                format!("HTTP {}", parts.status.as_u16()),
                error_message(&data, is_json),
            );
        }
        if data.is_empty() {
            return Outcome::Accepted { rejected_spans: 0 };
        }
        let decoded = if is_json {
            serde_json::from_slice::<ExportTraceServiceResponse>(&data).map_err(|e| e.to_string())
        } else {
            ExportTraceServiceResponse::decode(data).map_err(|e| e.to_string())
        };
        match decoded {
            Ok(r) => accepted(&r),
            Err(e) => Outcome::server_error(
                "INVALID_RESPONSE",
                format!("undecodable ExportTraceServiceResponse: {e}"),
            ),
        }
    }
}

/// Best-effort message from an error response body.
fn error_message(data: &Bytes, is_json: bool) -> String {
    if data.is_empty() {
        return String::new();
    }
    if is_json {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
            if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
                return m.to_string();
            }
        }
    } else if let Ok(s) = RpcStatus::decode(data.clone()) {
        if !s.message.is_empty() {
            return s.message;
        }
    }
    String::from_utf8_lossy(&data[..data.len().min(300)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages() {
        let s = RpcStatus {
            code: 8,
            message: "memory limit exceeded".into(),
        };
        assert_eq!(
            error_message(&Bytes::from(s.encode_to_vec()), false),
            "memory limit exceeded"
        );
        assert_eq!(
            error_message(
                &Bytes::from_static(br#"{"code":14,"message":"busy"}"#),
                true
            ),
            "busy"
        );
        assert_eq!(
            error_message(&Bytes::from_static(b"plain text"), true),
            "plain text"
        );
    }
}
