//! How a failed export is answered: the OTLP error mapping for both transports, and the
//! `google.rpc` messages it needs (written by hand: three small messages do not justify a
//! dependency).
//!
//! | failure                         | gRPC                              | HTTP                    |
//! |---------------------------------|-----------------------------------|-------------------------|
//! | malformed request, permanent    | `INVALID_ARGUMENT`                | 400                     |
//! | request too large               | `RESOURCE_EXHAUSTED`              | 413                     |
//! | retryable                       | `UNAVAILABLE`                     | 503                     |
//! | retryable with retry-after      | `UNAVAILABLE` + `RetryInfo`       | 429 + `Retry-After`     |
//! | internal (pipeline panicked)    | `INTERNAL`                        | 500                     |

use bytes::Bytes;
use prost::Message;
use std::time::Duration;
use teletrace_core::ConsumeError;

/// `google.rpc.Status`: the body of OTLP/HTTP error responses and the
/// `grpc-status-details-bin` of gRPC errors.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code` value.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Developer-facing message.
    #[prost(string, tag = "2")]
    pub message: String,
    /// Details, such as a `RetryInfo`.
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoAny {
    /// `type.googleapis.com/<full message name>`.
    #[prost(string, tag = "1")]
    pub type_url: String,
    /// The encoded message.
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`: how long a client should wait before retrying.
#[derive(Clone, PartialEq, Message)]
pub struct RetryInfo {
    /// The delay.
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub struct ProtoDuration {
    /// Whole seconds.
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    /// Nanoseconds past `seconds`.
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

/// The `type_url` of a packed `RetryInfo`.
pub const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

impl RetryInfo {
    /// A `RetryInfo` asking to wait `delay`.
    pub fn after(delay: Duration) -> Self {
        RetryInfo {
            retry_delay: Some(ProtoDuration {
                seconds: i64::try_from(delay.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(delay.subsec_nanos()).unwrap_or(0),
            }),
        }
    }

    /// The delay as a `Duration` (negative parts read as zero).
    pub fn delay(&self) -> Option<Duration> {
        let d = self.retry_delay.as_ref()?;
        Some(Duration::new(
            u64::try_from(d.seconds).unwrap_or(0),
            u32::try_from(d.nanos).unwrap_or(0),
        ))
    }
}

/// Why an export failed, independent of the transport.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The request cannot be decoded or the pipeline refused it for good.
    BadData(String),
    /// The request is larger than the configured limit.
    TooLarge(String),
    /// The pipeline cannot take the data now; `retry_after` when it said how long.
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Something broke inside Teletrace.
    Internal(String),
}

impl Failure {
    /// Maps a pipeline error that is not a partial success.
    pub(crate) fn from_consume(e: &ConsumeError) -> Failure {
        match e {
            ConsumeError::Retryable {
                message,
                retry_after,
            } => Failure::Unavailable {
                message: message.clone(),
                retry_after: *retry_after,
            },
            ConsumeError::Permanent { message } => Failure::BadData(message.clone()),
            // Callers turn partial success into a success response; kept total here.
            ConsumeError::PartiallyRejected { message, .. } => Failure::BadData(message.clone()),
        }
    }

    /// The message for the client.
    pub(crate) fn message(&self) -> &str {
        match self {
            Failure::BadData(m) | Failure::TooLarge(m) | Failure::Internal(m) => m,
            Failure::Unavailable { message, .. } => message,
        }
    }

    /// The gRPC status code.
    pub(crate) fn grpc_code(&self) -> tonic::Code {
        match self {
            Failure::BadData(_) => tonic::Code::InvalidArgument,
            Failure::TooLarge(_) => tonic::Code::ResourceExhausted,
            Failure::Unavailable { .. } => tonic::Code::Unavailable,
            Failure::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The HTTP status code.
    pub(crate) fn http_status(&self) -> http::StatusCode {
        match self {
            Failure::BadData(_) => http::StatusCode::BAD_REQUEST,
            Failure::TooLarge(_) => http::StatusCode::PAYLOAD_TOO_LARGE,
            Failure::Unavailable {
                retry_after: Some(_),
                ..
            } => http::StatusCode::TOO_MANY_REQUESTS,
            Failure::Unavailable { .. } => http::StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal(_) => http::StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` header value (whole seconds, rounded up, at least 1).
    pub(crate) fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Failure::Unavailable {
                retry_after: Some(d),
                ..
            } => {
                let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0));
                Some(secs.max(1))
            }
            _ => None,
        }
    }

    /// The `google.rpc.Status` describing the failure; with a `RetryInfo` detail when
    /// `with_retry_info` and the failure carries a delay.
    pub(crate) fn rpc_status(&self, with_retry_info: bool) -> RpcStatus {
        let mut details = Vec::new();
        if let (
            true,
            Failure::Unavailable {
                retry_after: Some(d),
                ..
            },
        ) = (with_retry_info, self)
        {
            details.push(ProtoAny {
                type_url: RETRY_INFO_TYPE_URL.into(),
                value: RetryInfo::after(*d).encode_to_vec(),
            });
        }
        RpcStatus {
            code: self.grpc_code() as i32,
            message: self.message().to_string(),
            details,
        }
    }

    /// The gRPC status to answer with (throttling carries a `RetryInfo` detail).
    pub(crate) fn to_grpc(&self) -> tonic::Status {
        let status = self.rpc_status(true);
        if status.details.is_empty() {
            tonic::Status::new(self.grpc_code(), self.message())
        } else {
            tonic::Status::with_details(
                self.grpc_code(),
                self.message(),
                Bytes::from(status.encode_to_vec()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_consume_errors() {
        let f = Failure::from_consume(&ConsumeError::retryable("queue full"));
        assert_eq!(f.grpc_code(), tonic::Code::Unavailable);
        assert_eq!(f.http_status(), 503);
        assert_eq!(f.retry_after_seconds(), None);

        let f = Failure::from_consume(&ConsumeError::throttled(
            "slow down",
            Duration::from_millis(1500),
        ));
        assert_eq!(f.grpc_code(), tonic::Code::Unavailable);
        assert_eq!(f.http_status(), 429);
        assert_eq!(f.retry_after_seconds(), Some(2));

        let f = Failure::from_consume(&ConsumeError::permanent("bad"));
        assert_eq!(f.grpc_code(), tonic::Code::InvalidArgument);
        assert_eq!(f.http_status(), 400);
    }

    #[test]
    fn throttling_status_carries_retry_info() {
        let f = Failure::Unavailable {
            message: "slow down".into(),
            retry_after: Some(Duration::from_secs(7)),
        };
        let status = f.to_grpc();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let decoded = RpcStatus::decode(status.details()).unwrap();
        assert_eq!(decoded.details.len(), 1);
        assert_eq!(decoded.details[0].type_url, RETRY_INFO_TYPE_URL);
        let info = RetryInfo::decode(decoded.details[0].value.as_slice()).unwrap();
        assert_eq!(info.delay(), Some(Duration::from_secs(7)));
    }
}
