//! OTLP/gRPC: a hand-written `opentelemetry.proto.collector.trace.v1.TraceService`
//! (shaped like the code tonic generates) whose `Export` takes the request as raw bytes.

use crate::otlp::codec::RawRequestCodec;
use crate::otlp::config::GrpcConfig;
use crate::otlp::export::{Export, Transport};
use crate::otlp::status::Failure;
use crate::otlp::tls;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use teletrace_core::Traces;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{CompressionEncoding, EnabledCompressionEncodings};
use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;

/// The gRPC service name.
pub const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
/// The full path of the `Export` method.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The trace service.
#[derive(Clone)]
pub(crate) struct TraceService {
    export: Arc<Export>,
    max_recv_msg_size: usize,
}

impl TraceService {
    pub(crate) fn new(export: Arc<Export>, max_recv_msg_size: usize) -> Self {
        TraceService {
            export,
            max_recv_msg_size,
        }
    }
}

impl NamedService for TraceService {
    const NAME: &'static str = SERVICE_NAME;
}

/// The encodings a request may be compressed with. Responses are never compressed: an
/// `ExportTraceServiceResponse` is empty or a few bytes of partial success, and a gzip or
/// zstd stream set up for each one cost a tenth of the forwarding pipeline's CPU
/// (the compressor's state is hundreds of KiB to initialise). gRPC lets a server answer
/// uncompressed whatever the client accepts.
fn accepted_encodings() -> EnabledCompressionEncodings {
    let mut encodings = EnabledCompressionEncodings::default();
    encodings.enable(CompressionEncoding::Gzip);
    encodings.enable(CompressionEncoding::Zstd);
    encodings
}

impl<B> Service<http::Request<B>> for TraceService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            let status = tonic::Status::unimplemented(format!(
                "unknown method {} (this server has {EXPORT_PATH})",
                req.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        if let Err(failure) = self.export.admit() {
            // Answered before tonic reads the message: the body is dropped unread (h2
            // resets the stream with NO_ERROR after the response, so the client stops
            // sending), and nothing is allocated for it.
            let status = failure.to_grpc();
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let method = ExportMethod(self.export.clone());
        let max = self.max_recv_msg_size;
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec)
                .apply_compression_config(
                    accepted_encodings(),
                    EnabledCompressionEncodings::default(),
                )
                .max_decoding_message_size(max);
            let response = grpc.unary(method, req).await;
            Ok(size_limit_as_resource_exhausted(response))
        })
    }
}

/// tonic refuses a message whose length prefix is over the limit with `OUT_OF_RANGE`,
/// which OTLP clients treat as retryable; gRPC servers (and the OTLP spec) use
/// `RESOURCE_EXHAUSTED`, which is not retried. Rewrites that one status.
fn size_limit_as_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() == tonic::Code::OutOfRange && status.message().contains("too large") {
        let fixed = tonic::Status::resource_exhausted(format!(
            "request message too large: {}",
            status.message()
        ));
        if fixed.add_header(response.headers_mut()).is_err() {
            tracing::debug!("could not rewrite the size-limit status");
        }
    }
    response
}

/// The `Export` method.
struct ExportMethod(Arc<Export>);

impl UnaryService<Bytes> for ExportMethod {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let export = self.0.clone();
        Box::pin(async move {
            let traces = Traces::from_encoded(request.into_inner())
                .map_err(|e| Failure::BadData(format!("invalid OTLP request: {e}")).to_grpc())?;
            export
                .export(Transport::Grpc, traces)
                .await
                .map(tonic::Response::new)
                .map_err(|f| f.to_grpc())
        })
    }
}

/// Serves the trace service on `listener` (over TLS when `tls` is set) until `stop`
/// fires, then waits for the connections to finish their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    config: &GrpcConfig,
    service: TraceService,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let mut builder = tonic::transport::Server::builder().max_concurrent_streams(
        match config.max_concurrent_streams {
            0 => None,
            n => Some(n),
        },
    );
    if let Some(params) = config
        .keepalive
        .as_ref()
        .and_then(|k| k.server_parameters.as_ref())
    {
        builder = builder
            .http2_keepalive_interval(params.time)
            .http2_keepalive_timeout(params.timeout);
        if let Some(age) = params.max_connection_age {
            builder = builder.max_connection_age(age);
        }
        if let Some(grace) = params.max_connection_age_grace {
            builder = builder.max_connection_age_grace(grace);
        }
    }
    let router = builder.add_service(service);
    match tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
        Some(config) => {
            let incoming = tls::incoming(listener, tls::acceptor(&config), stop.clone());
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
    }
}
