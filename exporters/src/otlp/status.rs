//! What a backend's answer means for the batch, as the collector decides it: retry (with
//! the server's delay when it gives one), drop for good, or count a partial success.
//!
//! | answer                                                        | result          |
//! |---------------------------------------------------------------|-----------------|
//! | gRPC `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `DATA_LOSS`, `CANCELLED` | retryable (`RetryInfo` delay honoured) |
//! | gRPC `RESOURCE_EXHAUSTED` with `RetryInfo`                    | retryable after its delay |
//! | any other gRPC code                                           | permanent       |
//! | HTTP 429, 502, 503, 504                                       | retryable (`Retry-After` honoured) |
//! | any other HTTP 4xx/5xx                                        | permanent       |
//! | success with `partial_success.rejected_spans > 0`             | partially rejected |

use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
use prost::Message;
use std::time::{Duration, SystemTime};
use teletrace_core::ConsumeError;

/// `google.rpc.Status` (the gRPC status details and the OTLP/HTTP error body).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<ProtoAny>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoAny {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    pub retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct ProtoDuration {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

const RETRY_INFO_TYPE_URL: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The `RetryInfo` delay packed in an encoded `google.rpc.Status`, if any.
fn retry_delay(status_details: &[u8]) -> Option<Duration> {
    let status = RpcStatus::decode(status_details).ok()?;
    let any = status
        .details
        .iter()
        .find(|d| d.type_url == RETRY_INFO_TYPE_URL)?;
    let delay = RetryInfo::decode(any.value.as_slice()).ok()?.retry_delay?;
    Some(Duration::new(
        u64::try_from(delay.seconds).unwrap_or(0),
        u32::try_from(delay.nanos).unwrap_or(0),
    ))
}

/// Maps a failed gRPC call.
pub(crate) fn from_grpc(status: &tonic::Status) -> ConsumeError {
    use tonic::Code;
    let message = format!(
        "OTLP/gRPC export failed: {:?}: {}",
        status.code(),
        status.message()
    );
    let delay = retry_delay(status.details());
    match status.code() {
        Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss
        | Code::Cancelled => ConsumeError::Retryable {
            message,
            retry_after: delay,
        },
        // Throttling only when the server says how long to wait; otherwise the request is
        // too large or a quota is spent for good.
        Code::ResourceExhausted if delay.is_some() => ConsumeError::Retryable {
            message,
            retry_after: delay,
        },
        _ => ConsumeError::permanent(message),
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP servers send.
fn httpdate(value: &str) -> Option<SystemTime> {
    let rest = value.split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let day: u64 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut hms = parts.next()?.split(':').map(|p| p.parse::<u64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if parts.next()? != "GMT" || day == 0 || day > 31 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + i64::try_from(day).ok()? - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Maps a failed HTTP response: `status`, its `Retry-After`, and its body (a
/// `google.rpc.Status` in protobuf or JSON, or text; only used for the message).
pub(crate) fn from_http(status: u16, retry_after: Option<&str>, body: &[u8]) -> ConsumeError {
    let detail = describe_body(body);
    let message = format!("OTLP/HTTP export failed: HTTP {status}: {detail}");
    match status {
        429 | 502 | 503 | 504 => ConsumeError::Retryable {
            message,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        _ => ConsumeError::permanent(message),
    }
}

/// A short readable form of an error body.
fn describe_body(body: &[u8]) -> String {
    if let Ok(status) = RpcStatus::decode(body) {
        if !status.message.is_empty() {
            return status.message;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut short: String = text.chars().take(256).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    if short.is_empty() {
        "(empty body)".into()
    } else {
        short
    }
}

/// What a successful answer's `partial_success` means: nothing, a warning (a message
/// without rejected spans), or rejected spans to count.
pub(crate) fn from_partial_success(
    partial: Option<&ExportTracePartialSuccess>,
    exporter: &str,
) -> Result<(), ConsumeError> {
    let Some(partial) = partial else {
        return Ok(());
    };
    if partial.rejected_spans > 0 {
        let message = if partial.error_message.is_empty() {
            "the backend rejected some spans".to_string()
        } else {
            partial.error_message.clone()
        };
        return Err(ConsumeError::PartiallyRejected {
            rejected_spans: u64::try_from(partial.rejected_spans).unwrap_or(0),
            message,
        });
    }
    if !partial.error_message.is_empty() {
        tracing::warn!(
            exporter,
            message = %partial.error_message,
            "partial success response with a warning"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn details_with_delay(delay: Duration) -> Vec<u8> {
        RpcStatus {
            code: Code::ResourceExhausted as i32,
            message: "slow down".into(),
            details: vec![ProtoAny {
                type_url: RETRY_INFO_TYPE_URL.into(),
                value: RetryInfo {
                    retry_delay: Some(ProtoDuration {
                        seconds: i64::try_from(delay.as_secs()).unwrap(),
                        nanos: i32::try_from(delay.subsec_nanos()).unwrap(),
                    }),
                }
                .encode_to_vec(),
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn grpc_codes_follow_the_collector() {
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::DataLoss,
            Code::Cancelled,
        ] {
            let e = from_grpc(&tonic::Status::new(code, "x"));
            assert!(e.is_retryable(), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::Internal,
            Code::Unimplemented,
            Code::ResourceExhausted,
            Code::NotFound,
            Code::Unknown,
        ] {
            let e = from_grpc(&tonic::Status::new(code, "x"));
            assert!(matches!(e, ConsumeError::Permanent { .. }), "{code:?}");
        }
    }

    #[test]
    fn retry_info_makes_resource_exhausted_retryable_with_its_delay() {
        let delay = Duration::from_millis(1500);
        let status = tonic::Status::with_details(
            Code::ResourceExhausted,
            "slow down",
            details_with_delay(delay).into(),
        );
        match from_grpc(&status) {
            ConsumeError::Retryable { retry_after, .. } => assert_eq!(retry_after, Some(delay)),
            other => panic!("{other:?}"),
        }
        let status = tonic::Status::with_details(
            Code::Unavailable,
            "down",
            details_with_delay(Duration::from_secs(3)).into(),
        );
        match from_grpc(&status) {
            ConsumeError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(3)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn http_statuses_follow_the_collector() {
        for status in [429, 502, 503, 504] {
            assert!(from_http(status, None, b"").is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 405, 413, 415, 500, 501] {
            let e = from_http(status, Some("5"), b"nope");
            assert!(matches!(e, ConsumeError::Permanent { .. }), "{status}");
            assert!(e.message().contains("nope"), "{e}");
        }
        match from_http(429, Some("7"), b"") {
            ConsumeError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        let body = RpcStatus {
            code: 8,
            message: "too busy".into(),
            details: vec![],
        }
        .encode_to_vec();
        assert!(from_http(503, None, &body).message().contains("too busy"));
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 08:49:37
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:30 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(" 12 ", now),
            Some(Duration::from_secs(12))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn partial_success() {
        assert!(from_partial_success(None, "otlp").is_ok());
        let warn = ExportTracePartialSuccess {
            rejected_spans: 0,
            error_message: "deprecated field".into(),
        };
        assert!(from_partial_success(Some(&warn), "otlp").is_ok());
        let rejected = ExportTracePartialSuccess {
            rejected_spans: 3,
            error_message: "too old".into(),
        };
        match from_partial_success(Some(&rejected), "otlp") {
            Err(ConsumeError::PartiallyRejected {
                rejected_spans,
                message,
            }) => assert_eq!((rejected_spans, message.as_str()), (3, "too old")),
            other => panic!("{other:?}"),
        }
    }
}
