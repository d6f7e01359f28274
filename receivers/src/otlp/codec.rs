//! The gRPC codec of the trace service: requests are not decoded but handed over as the
//! raw bytes of the `ExportTraceServiceRequest` (validated later in one pass by
//! [`teletrace_core::Traces::from_encoded`]); responses are encoded with prost.

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// Decodes requests to their raw bytes, encodes `ExportTraceServiceResponse`s.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// Yields the message bytes as they are (no copy: tonic's buffer is split off).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

/// Encodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(
        &mut self,
        item: ExportTraceServiceResponse,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}
