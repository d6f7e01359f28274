//! OTLP/HTTP: `POST <traces_url_path>` with a protobuf or JSON `ExportTraceServiceRequest`,
//! answered in the request's encoding, served with hyper (HTTP/1.1 and h2c).

use crate::otlp::body::{self, AcceptedCodings};
use crate::otlp::config::HttpConfig;
use crate::otlp::cors::Cors;
use crate::otlp::export::{Export, Transport};
use crate::otlp::json;
use crate::otlp::status::Failure;
use crate::otlp::tls;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::Traces;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// `Content-Type` of binary protobuf payloads.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";
/// `Content-Type` of OTLP/JSON payloads.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The encoding of a request, and so of its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    /// From the request's `Content-Type` (parameters such as `charset` are ignored).
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let media_type = value.split(';').next()?.trim();
        if media_type.eq_ignore_ascii_case(PROTOBUF_CONTENT_TYPE) {
            Some(Encoding::Protobuf)
        } else if media_type.eq_ignore_ascii_case(JSON_CONTENT_TYPE) {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Protobuf => PROTOBUF_CONTENT_TYPE,
            Encoding::Json => JSON_CONTENT_TYPE,
        })
    }
}

type HttpResponse = Response<Full<Bytes>>;

fn response(status: StatusCode, content_type: HeaderValue, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, content_type);
    r
}

fn text(status: StatusCode, body: String) -> HttpResponse {
    response(
        status,
        HeaderValue::from_static("text/plain; charset=utf-8"),
        body,
    )
}

/// Handles the requests of one HTTP server.
pub(crate) struct HttpHandler {
    export: Arc<Export>,
    traces_path: String,
    max_body_size: usize,
    cors: Option<Cors>,
    codings: AcceptedCodings,
    response_headers: HeaderMap,
}

impl HttpHandler {
    pub(crate) fn new(export: Arc<Export>, config: &HttpConfig) -> Self {
        let mut response_headers = HeaderMap::new();
        for (name, value) in &config.response_headers {
            // Validated with the config; anything invalid is skipped.
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                response_headers.append(n, v);
            }
        }
        HttpHandler {
            export,
            traces_path: config.traces_path(),
            max_body_size: config.max_body_size(),
            cors: Cors::new(config.cors.as_ref()),
            codings: AcceptedCodings::new(&config.compression_algorithms),
            response_headers,
        }
    }

    /// Answers one request.
    pub(crate) async fn handle<B>(&self, request: Request<B>) -> Result<HttpResponse, Infallible>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let origin = request.headers().get(header::ORIGIN).cloned();
        let preflight = Cors::is_preflight(request.method(), request.headers());
        let mut response = self.route(request).await;
        if let (Some(cors), false) = (&self.cors, preflight) {
            cors.add_response_headers(origin.as_ref(), response.headers_mut());
        }
        for (name, value) in &self.response_headers {
            response.headers_mut().insert(name, value.clone());
        }
        Ok(response)
    }

    async fn route<B>(&self, request: Request<B>) -> HttpResponse
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if request.uri().path() != self.traces_path {
            return text(StatusCode::NOT_FOUND, "404 page not found".into());
        }
        if let Some(cors) = &self.cors {
            if Cors::is_preflight(request.method(), request.headers()) {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                *r.headers_mut() = cors.preflight_headers(request.headers());
                return r;
            }
        }
        if request.method() != Method::POST {
            let mut r = text(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(
                    "405 method not allowed, supported: [POST]; got {}",
                    request.method()
                ),
            );
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let Some(encoding) = Encoding::of(request.headers()) else {
            return text(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "415 unsupported media type, supported: [{JSON_CONTENT_TYPE}, {PROTOBUF_CONTENT_TYPE}]"
                ),
            );
        };
        // Before the body is read: a pipeline over its memory limit refuses here, so
        // the body is never buffered or decoded.
        if let Err(failure) = self.export.admit() {
            let mut response = error(encoding, &failure);
            if !discard_body(request.into_body(), self.max_body_size).await {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
        }
        match self.export(encoding, request).await {
            Ok(answer) => success(encoding, &answer),
            Err(failure) => {
                tracing::debug!(error = failure.message(), "OTLP/HTTP request failed");
                error(encoding, &failure)
            }
        }
    }

    async fn export<B>(
        &self,
        encoding: Encoding,
        request: Request<B>,
    ) -> Result<ExportTraceServiceResponse, Failure>
    where
        B: hyper::body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let coding = self.codings.of(request.headers())?;
        let (parts, body) = request.into_parts();
        let bytes = body::read(body, &parts.headers, coding, self.max_body_size).await?;
        let traces = match encoding {
            Encoding::Protobuf => Traces::from_encoded(bytes)
                .map_err(|e| Failure::BadData(format!("invalid OTLP request: {e}")))?,
            Encoding::Json => Traces::from_request(
                json::decode_request(&bytes).map_err(|e| Failure::BadData(e.0))?,
            ),
        };
        self.export.export(Transport::Http, traces).await
    }
}

/// Reads a refused request's body and drops each chunk as it arrives (nothing is kept
/// or decoded), so that the HTTP/1.1 connection stays usable: a server that answers
/// without reading the body has to close the connection, and a client still sending
/// sees a reset instead of the 503. Gives up at once when the body announces more than
/// `limit` bytes, and after reading `limit`; returns whether the whole body was read.
async fn discard_body<B>(body: B, limit: usize) -> bool
where
    B: hyper::body::Body,
{
    use http_body_util::BodyExt;
    let mut body = std::pin::pin!(body);
    if body.size_hint().lower() > limit as u64 {
        // Announced larger than the limit: not worth reading.
        return false;
    }
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return false;
        };
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(bytes::Buf::remaining(data));
            if read > limit {
                return false;
            }
        }
    }
    true
}

fn success(encoding: Encoding, answer: &ExportTraceServiceResponse) -> HttpResponse {
    let body = match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        Encoding::Json => json::encode_response(answer),
    };
    response(StatusCode::OK, encoding.content_type(), body)
}

fn error(encoding: Encoding, failure: &Failure) -> HttpResponse {
    let status = failure.rpc_status(false);
    let body = match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => json::encode_status(&status),
    };
    let mut r = response(failure.http_status(), encoding.content_type(), body);
    if let Some(seconds) = failure.retry_after_seconds() {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    r
}

/// Serves `handler` on `listener` (over TLS when `tls` is set) until `stop` fires, then stops accepting and waits for
/// the open connections to finish the requests they are in.
pub(crate) async fn serve(
    listener: TcpListener,
    config: &HttpConfig,
    handler: Arc<HttpHandler>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) {
    let acceptor = tls.as_ref().map(tls::acceptor);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(config.keepalives_enabled);
    if let Some(timeout) = config.read_header_timeout {
        builder.http1().header_read_timeout(timeout);
    }
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "OTLP/HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            async move { handler.handle(request).await }
        });
        if let Some(acceptor) = &acceptor {
            // The handshake runs in the connection's task, so the accept loop never waits.
            let (acceptor, builder, watcher) =
                (acceptor.clone(), builder.clone(), graceful.watcher());
            tokio::spawn(async move {
                let Some(stream) = tls::handshake(&acceptor, stream, "HTTP").await else {
                    return;
                };
                let connection = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!(error = %e, "OTLP/HTTP connection ended with an error");
                }
            });
            continue;
        }
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "OTLP/HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
