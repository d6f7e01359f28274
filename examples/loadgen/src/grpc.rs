//! OTLP/gRPC clients.
//!
//! * [`GrpcHyper`] (default) speaks gRPC directly over a hyper HTTP/2
//!   connection. Bodies arrive already encoded, compressed and framed (the
//!   5-byte gRPC message header), so sending one is a reference-count
//!   increment; many requests are multiplexed on the worker's one connection.
//! * [`GrpcTonic`] goes through a tonic `Channel` with a raw-bytes codec: the
//!   pre-encoded message is copied into tonic's buffer (no protobuf
//!   re-encoding), and tonic frames and (with gzip) compresses it per request.

use std::time::Duration;

use anyhow::{Context, Result};
use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::args::{Compression, Config};
use crate::transport::{error_chain, grpc_code_name, Outcome};

/// gRPC method path of the OTLP trace export RPC.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

const USER_AGENT: &str = concat!("loadgen/", env!("CARGO_PKG_VERSION"));

/// HTTP/2 flow-control windows we advertise (they only bound response data,
/// which is tiny, but generous values avoid WINDOW_UPDATE chatter).
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// The URI of the Export method under `endpoint` (which may carry a path prefix).
fn export_uri(endpoint: &Uri) -> Result<Uri> {
    let prefix = endpoint.path().trim_end_matches('/');
    let authority = endpoint.authority().context("endpoint has no authority")?;
    Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query(format!("{prefix}{EXPORT_PATH}"))
        .build()
        .context("building the gRPC export URI")
}

/// OTLP/gRPC over raw hyper HTTP/2; one connection per instance (clones share it).
#[derive(Clone)]
pub struct GrpcHyper {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    gzip: bool,
}

impl GrpcHyper {
    /// Create a client for `cfg.endpoint`. Connects lazily.
    pub fn new(cfg: &Config) -> Result<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(cfg.args.timeout.min(Duration::from_secs(10))));
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .http2_initial_stream_window_size(STREAM_WINDOW)
            .http2_initial_connection_window_size(CONNECTION_WINDOW)
            .http2_initial_max_send_streams(cfg.args.in_flight.max(100) as usize)
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(Self {
            client,
            uri: export_uri(&cfg.endpoint)?,
            gzip: cfg.args.compression == Compression::Gzip,
        })
    }

    /// Send one framed gRPC message body.
    pub async fn export(&self, body: Bytes) -> Outcome {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        let h = req.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        h.insert(
            "grpc-accept-encoding",
            HeaderValue::from_static("identity,gzip"),
        );
        if self.gzip {
            h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
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
        if parts.status != StatusCode::OK {
            return Outcome::server_error(
                format!("HTTP {}", parts.status.as_u16()),
                "non-200 HTTP status on a gRPC response",
            );
        }
        // Trailers-only response (typical for errors): status in the headers.
        if let Some(code) = grpc_status(&parts.headers) {
            return status_outcome(code, &parts.headers, None);
        }
        let collected = match body.collect().await {
            Ok(c) => c,
            Err(e) => return Outcome::transport_error("TRANSPORT_ERROR", error_chain(&e)),
        };
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let data = collected.to_bytes();
        match grpc_status(&trailers) {
            Some(code) => status_outcome(code, &trailers, Some((data, &parts.headers))),
            None => Outcome::server_error("INVALID_RESPONSE", "gRPC response without grpc-status"),
        }
    }
}

fn grpc_status(headers: &HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().parse::<i32>().unwrap_or(2 /* UNKNOWN */))
}

fn status_outcome(code: i32, meta: &HeaderMap, body: Option<(Bytes, &HeaderMap)>) -> Outcome {
    if code != 0 {
        let message = meta
            .get("grpc-message")
            .map(|v| percent_decode(v.as_bytes()))
            .unwrap_or_default();
        return Outcome::server_error(grpc_code_name(code), message);
    }
    let Some((data, headers)) = body else {
        // Trailers-only OK: no response message, treat as full success.
        return Outcome::Accepted { rejected_spans: 0 };
    };
    let encoding = headers.get("grpc-encoding").and_then(|v| v.to_str().ok());
    match decode_response(data, encoding) {
        Ok(resp) => accepted(&resp),
        Err(e) => Outcome::server_error("INVALID_RESPONSE", format!("{e:#}")),
    }
}

/// Map an export response (possibly carrying partial success) to an outcome.
pub fn accepted(resp: &ExportTraceServiceResponse) -> Outcome {
    let rejected = resp
        .partial_success
        .as_ref()
        .map(|p| p.rejected_spans.max(0) as u64)
        .unwrap_or(0);
    Outcome::Accepted {
        rejected_spans: rejected,
    }
}

/// Decode a gRPC response body holding one length-prefixed message.
fn decode_response(mut data: Bytes, encoding: Option<&str>) -> Result<ExportTraceServiceResponse> {
    if data.is_empty() {
        // No message at all; accept as an empty response.
        return Ok(ExportTraceServiceResponse::default());
    }
    anyhow::ensure!(data.len() >= 5, "truncated gRPC message header");
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    anyhow::ensure!(data.len() >= len, "truncated gRPC message");
    let msg = data.slice(..len);
    let msg = match (compressed, encoding) {
        (0, _) => msg,
        (_, Some("gzip")) => {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&msg[..]), &mut out)
                .context("gunzip response")?;
            Bytes::from(out)
        }
        (_, enc) => anyhow::bail!("compressed response with unsupported grpc-encoding {enc:?}"),
    };
    ExportTraceServiceResponse::decode(msg).context("decoding ExportTraceServiceResponse")
}

/// Decode the percent-encoding gRPC uses for `grpc-message`.
pub fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' && i + 2 < raw.len() {
            let hex = std::str::from_utf8(&raw[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------
// tonic
// ---------------------------------------------------------------------------

/// A tonic codec that passes pre-encoded protobuf bytes through unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// Encoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

/// Decoder half of [`RawCodec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.reserve(item.len());
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// OTLP/gRPC through a tonic `Channel`; one connection per instance.
#[derive(Clone)]
pub struct GrpcTonic {
    grpc: tonic::client::Grpc<Channel>,
    path: PathAndQuery,
}

impl GrpcTonic {
    /// Create a client for `cfg.endpoint`. Connects lazily.
    pub fn new(cfg: &Config) -> Result<Self> {
        let origin = cfg.endpoint.clone();
        let channel = Endpoint::from(origin.clone())
            .tcp_nodelay(true)
            .connect_timeout(cfg.args.timeout.min(Duration::from_secs(10)))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .user_agent(USER_AGENT)
            .context("user agent")?
            .connect_lazy();
        let mut grpc = tonic::client::Grpc::with_origin(channel, origin);
        if cfg.args.compression == Compression::Gzip {
            grpc = grpc.send_compressed(CompressionEncoding::Gzip);
        }
        grpc = grpc.accept_compressed(CompressionEncoding::Gzip);
        Ok(Self {
            grpc,
            path: PathAndQuery::from_static(EXPORT_PATH),
        })
    }

    /// Send one encoded (unframed, uncompressed) ExportTraceServiceRequest.
    pub async fn export(&self, body: Bytes) -> Outcome {
        let mut grpc = self.grpc.clone();
        if let Err(e) = grpc.ready().await {
            return Outcome::transport_error("TRANSPORT_ERROR", error_chain(&e));
        }
        match grpc
            .unary(tonic::Request::new(body), self.path.clone(), RawCodec)
            .await
        {
            Ok(resp) => match ExportTraceServiceResponse::decode(resp.into_inner()) {
                Ok(r) => accepted(&r),
                Err(e) => Outcome::server_error("INVALID_RESPONSE", e.to_string()),
            },
            // A status carrying a source error was produced locally from a
            // transport failure; one without came from the server.
            Err(status) => match std::error::Error::source(&status) {
                Some(src) => Outcome::transport_error(
                    "TRANSPORT_ERROR",
                    format!("{}: {}", status.message(), error_chain(src)),
                ),
                None => {
                    Outcome::server_error(grpc_code_name(status.code() as i32), status.message())
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        assert_eq!(percent_decode(b"queue%20full%25"), "queue full%");
        assert_eq!(percent_decode(b"bad%2"), "bad%2");
        assert_eq!(percent_decode(b"%"), "%");
    }

    #[test]
    fn export_uri_with_prefix() {
        let u: Uri = "http://127.0.0.1:4317/".parse().unwrap();
        assert_eq!(
            export_uri(&u).unwrap().to_string(),
            format!("http://127.0.0.1:4317{EXPORT_PATH}")
        );
        let u: Uri = "http://127.0.0.1:4317/prefix".parse().unwrap();
        assert_eq!(
            export_uri(&u).unwrap().to_string(),
            format!("http://127.0.0.1:4317/prefix{EXPORT_PATH}")
        );
    }

    #[test]
    fn response_decoding() {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
        let resp = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 7,
                error_message: "x".into(),
            }),
        };
        let msg = resp.encode_to_vec();
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        framed.extend_from_slice(&msg);
        let d = decode_response(Bytes::from(framed), None).unwrap();
        assert_eq!(accepted(&d), Outcome::Accepted { rejected_spans: 7 });
        assert!(decode_response(Bytes::from_static(&[0, 0, 0, 0, 9, 1]), None).is_err());
        assert!(decode_response(Bytes::new(), None).is_ok());
    }
}
