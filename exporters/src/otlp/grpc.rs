//! The `otlp` exporter's sender: one unary OTLP/gRPC `Export` call per batch over
//! tonic's channel (HTTP/2, reconnects, TLS connector). The call is framed here rather
//! than by tonic's client so that the message is the batch's encoded
//! `ExportTraceServiceRequest` as it is (no decode, no re-encode) and is compressed by
//! the exporter's [`BodyCompressor`] (reusable compressors, one per concurrent send;
//! tonic would build a gzip encoder per message and stream it in small steps). The
//! response is read with prost and its status with tonic's `Status`.

use crate::otlp::compress::BodyCompressor;
use crate::otlp::config::{Compression, OtlpGrpcConfig};
use crate::otlp::status;
use async_trait::async_trait;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, TE};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use rustls::pki_types::ServerName;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use teletrace_core::exporter_helper::Sender;
use teletrace_core::{ComponentError, ConsumeError, Lifecycle, Traces};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};
use tower::{Service, ServiceExt};

/// The full path of the trace service's `Export` method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends one batch per unary `Export` call.
pub struct GrpcSender {
    id: String,
    channel: Channel,
    /// `content-type`, `te`, `grpc-encoding`, `grpc-timeout` and the configured headers.
    headers: HeaderMap,
    compressed: bool,
    compressor: BodyCompressor,
}

impl GrpcSender {
    /// Builds the sender; the connection is made on first use (and remade when lost).
    pub fn new(id: &str, config: &OtlpGrpcConfig) -> Result<Self, ComponentError> {
        let target = config
            .target()
            .map_err(|e| ComponentError::new(format!("endpoint: {e}")))?;
        // The channel connects to an `http://` URI (tonic's own TLS, when some crate enables
        // it, would refuse an `https://` one with a custom connector); `origin` keeps
        // `:scheme` right.
        let plain = format!("http://{}:{}", target.host, target.port);
        let origin: http::Uri = target
            .uri()
            .parse()
            .map_err(|e| ComponentError::new(format!("endpoint: {e}")))?;
        let endpoint = Endpoint::from_shared(plain)
            .map_err(|e| ComponentError::new(format!("endpoint: {e}")))?
            .origin(origin)
            .user_agent(concat!("teletrace/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| ComponentError::new(format!("user agent: {e}")))?
            .connect_timeout(config.timeout)
            .tcp_nodelay(true);
        let channel = if target.tls {
            let tls = config
                .tls
                .client_config(&[b"h2"])
                .map_err(|e| ComponentError::new(format!("tls::{e}")))?;
            let server_name = config
                .tls
                .server_name(&target.host)
                .map_err(|e| ComponentError::new(format!("tls::{e}")))?;
            endpoint.connect_with_connector_lazy(TlsConnector {
                tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
                server_name,
            })
        } else {
            endpoint.connect_lazy()
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(TE, HeaderValue::from_static("trailers"));
        // Only what can be read back; a server answers uncompressed otherwise.
        headers.insert(
            HeaderName::from_static("grpc-accept-encoding"),
            HeaderValue::from_static("gzip,zstd"),
        );
        let encoding = match config.compression {
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
            Compression::None => None,
        };
        if let Some(encoding) = encoding {
            headers.insert(
                HeaderName::from_static("grpc-encoding"),
                HeaderValue::from_static(encoding),
            );
        }
        headers.insert(
            HeaderName::from_static("grpc-timeout"),
            grpc_timeout(config.timeout),
        );
        for (name, value) in &config.headers {
            let key = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| ComponentError::new(format!("headers: invalid name {name:?}: {e}")))?;
            let value = HeaderValue::try_from(value.as_str()).map_err(|e| {
                ComponentError::new(format!("headers: invalid value for {name:?}: {e}"))
            })?;
            headers.insert(key, value);
        }
        Ok(GrpcSender {
            id: id.to_string(),
            channel,
            headers,
            compressed: encoding.is_some(),
            // configgrpc has no compression_params: the default level (gzip 6, as
            // grpc-go's gzip compressor).
            compressor: BodyCompressor::new(
                config.compression,
                crate::otlp::compress::DEFAULT_LEVEL,
            ),
        })
    }

    /// The length-prefixed message: compressed flag, big-endian length, bytes.
    fn frame(&self, traces: &Traces) -> Result<Bytes, ConsumeError> {
        let message = self
            .compressor
            .compress(traces.to_encoded())
            .map_err(|e| ConsumeError::permanent(format!("compressing the request: {e}")))?;
        let len = u32::try_from(message.len()).map_err(|_| {
            ConsumeError::permanent(format!(
                "a request of {} bytes is too large for gRPC",
                message.len()
            ))
        })?;
        let mut frame = BytesMut::with_capacity(5 + message.len());
        frame.put_u8(u8::from(self.compressed));
        frame.put_u32(len);
        frame.extend_from_slice(&message);
        Ok(frame.freeze())
    }
}

/// `grpc-timeout` for `timeout`: at most 8 digits, in milliseconds or, when too long for
/// that, seconds.
fn grpc_timeout(timeout: std::time::Duration) -> HeaderValue {
    let ms = timeout.as_millis().max(1);
    let text = if ms < 100_000_000 {
        format!("{ms}m")
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("99999999S"))
}

/// The gRPC status of a call that did not end with one: from the HTTP status, as
/// gRPC's HTTP-to-gRPC status mapping says.
fn status_from_http(code: http::StatusCode) -> Status {
    let grpc = match code {
        http::StatusCode::BAD_REQUEST => Code::Internal,
        http::StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        http::StatusCode::FORBIDDEN => Code::PermissionDenied,
        http::StatusCode::NOT_FOUND => Code::Unimplemented,
        http::StatusCode::TOO_MANY_REQUESTS
        | http::StatusCode::BAD_GATEWAY
        | http::StatusCode::SERVICE_UNAVAILABLE
        | http::StatusCode::GATEWAY_TIMEOUT => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(grpc, format!("HTTP status {code} without a gRPC status"))
}

/// The response message of a successful call (`None` when the server sent none).
fn response_message(
    headers: &HeaderMap,
    mut data: Bytes,
) -> Result<Option<ExportTraceServiceResponse>, String> {
    if data.is_empty() {
        return Ok(None);
    }
    if data.len() < 5 {
        return Err(format!("truncated gRPC message ({} bytes)", data.len()));
    }
    let flag = data.get_u8();
    let len = data.get_u32() as usize;
    if data.len() < len {
        return Err(format!("gRPC message of {len} bytes cut at {}", data.len()));
    }
    let message = data.split_to(len);
    let plain = if flag == 0 {
        message
    } else {
        let encoding = headers
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity");
        decompress(encoding, &message)?
    };
    ExportTraceServiceResponse::decode(plain)
        .map(Some)
        .map_err(|e| format!("invalid ExportTraceServiceResponse: {e}"))
}

/// A compressed response message (responses are small; bounded at 4 MiB).
fn decompress(encoding: &str, message: &[u8]) -> Result<Bytes, String> {
    use std::io::Read;
    const LIMIT: u64 = 4 << 20;
    let mut out = Vec::new();
    match encoding {
        "gzip" => flate2::read::GzDecoder::new(message)
            .take(LIMIT)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip response: {e}"))?,
        "zstd" => zstd::stream::read::Decoder::new(message)
            .map_err(|e| format!("zstd response: {e}"))?
            .take(LIMIT)
            .read_to_end(&mut out)
            .map_err(|e| format!("zstd response: {e}"))?,
        other => return Err(format!("response compressed with {other:?}")),
    };
    Ok(Bytes::from(out))
}

#[async_trait]
impl Lifecycle for GrpcSender {}

#[async_trait]
impl Sender for GrpcSender {
    async fn send(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            // Nothing to send: no request, as the collector does.
            return Ok(());
        }
        let mut request = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(
            self.frame(&traces)?,
        )));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static(EXPORT_PATH);
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = self.headers.clone();
        let unavailable = |what: &str, e: &dyn std::error::Error| {
            ConsumeError::retryable(format!("OTLP/gRPC {what}: {}", error_chain(e)))
        };
        let mut channel = self.channel.clone();
        let ready = channel
            .ready()
            .await
            .map_err(|e| unavailable("connection not ready", &e))?;
        let response = ready
            .call(request)
            .await
            .map_err(|e| unavailable("request failed", &e))?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .map_err(|e| from_body_error(e, unavailable))?;
        let trailers = body.trailers().cloned();
        let data = body.to_bytes();
        let status = trailers
            .as_ref()
            .and_then(Status::from_header_map)
            .or_else(|| Status::from_header_map(&parts.headers));
        let status = match status {
            Some(status) => status,
            None if parts.status != http::StatusCode::OK => status_from_http(parts.status),
            None => Status::unknown("the server ended the call without a gRPC status"),
        };
        if status.code() != Code::Ok {
            return Err(status::from_grpc(&status));
        }
        let message = response_message(&parts.headers, data).map_err(ConsumeError::permanent)?;
        status::from_partial_success(
            message.as_ref().and_then(|m| m.partial_success.as_ref()),
            &self.id,
        )
    }
}

/// A failure while reading the response body: a gRPC status when it carries one (a
/// reset stream), unavailable otherwise.
fn from_body_error(
    e: tonic::Status,
    unavailable: impl Fn(&str, &dyn std::error::Error) -> ConsumeError,
) -> ConsumeError {
    if e.code() == Code::Unknown {
        unavailable("reading the response", &e)
    } else {
        status::from_grpc(&e)
    }
}

/// An error with its causes (hyper's own message is terse).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Connects TCP, then TLS, for `https` channels.
#[derive(Clone)]
struct TlsConnector {
    tls: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

type Connecting = Pin<
    Box<
        dyn Future<Output = std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>>
            + Send,
    >,
>;

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = std::io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
                .ok_or_else(|| std::io::Error::other(format!("no host in {uri}")))?;
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let tls = this.tls.connect(this.server_name, tcp).await?;
            Ok(TokioIo::new(tls))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    use std::io::Write;
    use std::time::Duration;

    fn framed(flag: u8, message: &[u8]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(flag);
        b.put_u32(message.len() as u32);
        b.extend_from_slice(message);
        b.freeze()
    }

    fn answer(rejected: i64) -> Vec<u8> {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: "too old".into(),
            }),
        }
        .encode_to_vec()
    }

    #[test]
    fn response_messages_plain_and_compressed() {
        let none = HeaderMap::new();
        assert!(response_message(&none, Bytes::new()).unwrap().is_none());
        let m = response_message(&none, framed(0, &answer(3)))
            .unwrap()
            .unwrap();
        assert_eq!(m.partial_success.unwrap().rejected_spans, 3);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&answer(4)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        let m = response_message(&headers, framed(1, &gz.finish().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(m.partial_success.unwrap().rejected_spans, 4);

        headers.insert("grpc-encoding", HeaderValue::from_static("zstd"));
        let z = zstd::bulk::compress(&answer(5), 3).unwrap();
        let m = response_message(&headers, framed(1, &z)).unwrap().unwrap();
        assert_eq!(m.partial_success.unwrap().rejected_spans, 5);

        assert!(response_message(&none, Bytes::from_static(&[0, 0, 0])).is_err());
        let cut = framed(0, &answer(1)).slice(..8);
        assert!(response_message(&none, cut).unwrap_err().contains("cut"));
        assert!(response_message(&none, framed(1, b"x")).is_err());
    }

    #[test]
    fn timeouts_and_http_statuses() {
        assert_eq!(grpc_timeout(Duration::from_secs(5)), "5000m");
        assert_eq!(grpc_timeout(Duration::ZERO), "1m");
        assert_eq!(grpc_timeout(Duration::from_secs(200_000)), "200000S");
        assert_eq!(
            status_from_http(http::StatusCode::SERVICE_UNAVAILABLE).code(),
            Code::Unavailable
        );
        assert_eq!(
            status_from_http(http::StatusCode::UNAUTHORIZED).code(),
            Code::Unauthenticated
        );
        assert_eq!(
            status_from_http(http::StatusCode::IM_A_TEAPOT).code(),
            Code::Unknown
        );
    }
}
