//! The `otlp` exporter's sender: OTLP/gRPC through tonic's client, with a codec that
//! writes the batch's encoded `ExportTraceServiceRequest` as it is (no decode, no
//! re-encode) and reads the response with prost.

use crate::otlp::config::{Compression, OtlpGrpcConfig};
use crate::otlp::status;
use async_trait::async_trait;
use bytes::{BufMut, Bytes};
use http::uri::PathAndQuery;
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
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue, MetadataMap};
use tonic::transport::{Channel, Endpoint};
use tonic::Status;

/// The full path of the trace service's `Export` method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends one batch per unary `Export` call.
pub struct GrpcSender {
    id: String,
    grpc: tonic::client::Grpc<Channel>,
    metadata: MetadataMap,
    timeout: std::time::Duration,
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
        let mut grpc = tonic::client::Grpc::new(channel)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd)
            .max_decoding_message_size(64 * 1024 * 1024);
        grpc = match config.compression {
            Compression::Gzip => grpc.send_compressed(CompressionEncoding::Gzip),
            Compression::Zstd => grpc.send_compressed(CompressionEncoding::Zstd),
            Compression::None => grpc,
        };
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.headers {
            let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|e| ComponentError::new(format!("headers: invalid name {name:?}: {e}")))?;
            let value = AsciiMetadataValue::try_from(value.as_str()).map_err(|e| {
                ComponentError::new(format!("headers: invalid value for {name:?}: {e}"))
            })?;
            metadata.insert(key, value);
        }
        Ok(GrpcSender {
            id: id.to_string(),
            grpc,
            metadata,
            timeout: config.timeout,
        })
    }
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
        let mut request = tonic::Request::new(traces.to_encoded());
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        let mut grpc = self.grpc.clone();
        grpc.ready()
            .await
            .map_err(|e| ConsumeError::retryable(format!("OTLP/gRPC connection not ready: {e}")))?;
        let answer = grpc
            .unary(
                request,
                PathAndQuery::from_static(EXPORT_PATH),
                RawTracesCodec,
            )
            .await;
        match answer {
            Ok(response) => {
                status::from_partial_success(response.get_ref().partial_success.as_ref(), &self.id)
            }
            Err(s) => Err(status::from_grpc(&s)),
        }
    }
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

/// Writes the request bytes as they are; reads `ExportTraceServiceResponse`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawTracesCodec;

impl Codec for RawTracesCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ResponseDecoder
    }
}

/// Copies the encoded request into tonic's frame buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Decodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseDecoder;

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("invalid ExportTraceServiceResponse: {e}")))
    }
}
