//! OTLP/gRPC against the receiver, with tonic's generated client and a raw-bytes client.

mod common;

use bytes::{Buf, BufMut, Bytes};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use teletrace_core::{ConsumeError, Lifecycle};
use teletrace_receivers::otlp::status::{RetryInfo, RpcStatus, RETRY_INFO_TYPE_URL};
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::Code;

async fn client(running: &Running) -> TraceServiceClient<Channel> {
    TraceServiceClient::connect(running.grpc_url())
        .await
        .expect("connects")
}

/// A client codec that sends any bytes as the request message.
#[derive(Default)]
struct RawCodec;
struct RawEncoder;
struct ResponseDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        ExportTraceServiceResponse::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

async fn send_raw(
    running: &Running,
    body: Vec<u8>,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(teletrace_receivers::otlp::EXPORT_PATH);
    grpc.unary(tonic::Request::new(Bytes::from(body)), path, RawCodec)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn export_plain_gzip_and_zstd() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    let mut plain = client(&running).await;
    let answer = plain
        .export(request(vec![span(1, 1), span(1, 2)]))
        .await
        .expect("plain export");
    assert_eq!(answer.into_inner().partial_success, None);

    let mut gzip = client(&running)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let answer = gzip
        .export(request(vec![span(2, 1)]))
        .await
        .expect("gzip export");
    // Responses go back uncompressed even to a client that accepts gzip: they are a few
    // bytes, and setting up a compressor for each cost more than the request.
    assert!(
        answer.metadata().get("grpc-encoding").is_none(),
        "{:?}",
        answer.metadata()
    );

    let mut zstd = client(&running)
        .await
        .send_compressed(CompressionEncoding::Zstd)
        .accept_compressed(CompressionEncoding::Zstd);
    let answer = zstd
        .export(request(vec![span(3, 1)]))
        .await
        .expect("zstd export");
    assert!(answer.metadata().get("grpc-encoding").is_none());

    let spans = recorder.spans();
    assert_eq!(spans.len(), 4);
    assert_eq!(spans[0], span(1, 1));
    assert_eq!(spans[2].trace_id, vec![2; 16]);
    assert_eq!(spans[3].name, "span-3-1");
    // Passed down as received, without decoding.
    assert!(recorder.batches().iter().all(|b| b.is_encoded()));
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "grpc"),
        4
    );
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "grpc"), 0);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn empty_request_succeeds_without_reaching_the_pipeline() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;
    client(&running)
        .await
        .export(ExportTraceServiceRequest::default())
        .await
        .expect("empty export");
    assert!(recorder.batches().is_empty());
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_and_the_server_keeps_serving() {
    let recorder = Arc::new(Recorder::default());
    let running = start(&yaml("", ""), recorder.clone()).await;

    let mut truncated = request(vec![span(1, 1)]).encode_to_vec();
    truncated.truncate(truncated.len() - 3);
    let status = send_raw(&running, truncated).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("invalid OTLP request"),
        "{status:?}"
    );

    let mut short_id = span(1, 1);
    short_id.trace_id = vec![1; 5];
    let status = send_raw(&running, request(vec![short_id]).encode_to_vec())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("trace_id must be 16 bytes, got 5"),
        "{status:?}"
    );

    let status = send_raw(&running, vec![0xff, 0xff, 0xff])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);

    // Still serving.
    send_raw(&running, request(vec![span(9, 9)]).encode_to_vec())
        .await
        .expect("valid raw request");
    assert_eq!(recorder.span_count(), 1);
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "grpc"),
        1
    );
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "grpc"), 0);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_large_messages_are_resource_exhausted() {
    let recorder = Arc::new(Recorder::default());
    let running = start(
        &yaml("    max_recv_msg_size_mib: 1\n", ""),
        recorder.clone(),
    )
    .await;
    let mut big = span(1, 1);
    big.name = "x".repeat(1_200_000);
    let status = client(&running)
        .await
        .export(request(vec![big.clone()]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");

    // Compressed below the limit, too large once decompressed.
    let status = client(&running)
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .export(request(vec![big]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // A message under the limit still goes through.
    let mut fits = span(1, 2);
    fits.name = "x".repeat(500_000);
    client(&running)
        .await
        .export(request(vec![fits]))
        .await
        .expect("fits");
    assert_eq!(recorder.span_count(), 1);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_method_is_unimplemented() {
    let running = start(&yaml("", ""), Arc::new(Recorder::default())).await;
    let channel = Channel::from_shared(running.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Other",
    );
    let status = grpc
        .unary(tonic::Request::new(Bytes::new()), path, RawCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    running.receiver.shutdown().await.unwrap();
}

async fn export_with(
    error: ConsumeError,
) -> (Result<ExportTraceServiceResponse, tonic::Status>, Running) {
    let running = start(&yaml("", ""), Arc::new(Failing(error))).await;
    let result = client(&running)
        .await
        .export(request(vec![span(1, 1), span(1, 2), span(1, 3)]))
        .await
        .map(|r| r.into_inner());
    (result, running)
}

#[tokio::test]
async fn retryable_is_unavailable() {
    let (result, running) = export_with(ConsumeError::retryable("queue is full")).await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "queue is full");
    assert!(status.details().is_empty());
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "grpc"), 3);
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "grpc"),
        0
    );
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn throttled_is_unavailable_with_retry_info() {
    let (result, running) =
        export_with(ConsumeError::throttled("slow down", Duration::from_secs(7))).await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let details = RpcStatus::decode(status.details()).expect("google.rpc.Status details");
    assert_eq!(details.code, Code::Unavailable as i32);
    assert_eq!(details.details.len(), 1);
    assert_eq!(details.details[0].type_url, RETRY_INFO_TYPE_URL);
    let info = RetryInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.delay(), Some(Duration::from_secs(7)));
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn permanent_is_invalid_argument() {
    let (result, running) = export_with(ConsumeError::permanent("spans too old")).await;
    let status = result.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "spans too old");
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "grpc"), 3);
    running.receiver.shutdown().await.unwrap();
}

#[tokio::test]
async fn partial_rejection_is_success_with_partial_success() {
    let (result, running) = export_with(ConsumeError::PartiallyRejected {
        rejected_spans: 2,
        message: "2 spans too old".into(),
    })
    .await;
    let partial = result
        .expect("success")
        .partial_success
        .expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert_eq!(partial.error_message, "2 spans too old");
    assert_eq!(
        running.counter("otelcol_receiver_accepted_spans", "grpc"),
        1
    );
    assert_eq!(running.counter("otelcol_receiver_refused_spans", "grpc"), 2);
    running.receiver.shutdown().await.unwrap();
}
