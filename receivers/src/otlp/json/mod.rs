//! OTLP/JSON: the proto3 JSON mapping with the OTLP deviations, read straight into the
//! prost types and written for responses.
//!
//! Why not the `with-serde` impls of `opentelemetry-proto` 0.33: they get hex IDs and
//! 64-bit integers (string or number) right, but they do not check ID lengths (a 2-byte
//! `traceId` passes) and take a `0x` prefix; they silently drop snake_case keys; and they
//! refuse valid OTLP/JSON: a `KeyValue` without `key`, an `arrayValue`/`kvlistValue`
//! without `values`, `null` for a repeated or ID field, `doubleValue` as `"NaN"` or
//! `"Infinity"`, 32-bit integers written as strings; their errors do not say where. This
//! module reads, as the collector does:
//!
//! * keys in lowerCamelCase (and, like the collector, the original snake_case names);
//!   unknown keys are ignored;
//! * `traceId`/`spanId`/`parentSpanId` as case-insensitive hex, checked to be 16/8 bytes
//!   (an empty string is an absent ID);
//! * 64-bit integers as numbers or decimal strings; 32-bit ones too;
//! * enums as integers (and, like the collector, as their proto names);
//! * `bytesValue` as base64 (standard or URL-safe, padding optional);
//! * `null` anywhere as the field's default.
//!
//! Errors name the JSON path of the offending value
//! (`resourceSpans[0].scopeSpans[0].spans[2].traceId: ...`).

mod de;
mod primitives;

use crate::otlp::status::RpcStatus;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use serde_json::{json, Map, Value};

/// Deepest message nesting accepted, counting the request as 1; the same limit the
/// protobuf path applies, so every batch taken in can be encoded and taken in again.
const MAX_DEPTH: usize = 64;

/// A request body that is not valid OTLP/JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Decodes the JSON body of an `ExportTraceServiceRequest`.
pub fn decode_request(body: &[u8]) -> Result<ExportTraceServiceRequest, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: de::Msg<ExportTraceServiceRequest> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                JsonError(format!("invalid OTLP/JSON: {inner}"))
            } else {
                JsonError(format!("invalid OTLP/JSON at {path}: {inner}"))
            }
        })?;
    deserializer
        .end()
        .map_err(|e| JsonError(format!("invalid OTLP/JSON: {e}")))?;
    let request = request.0;
    check_depth(&request)?;
    Ok(request)
}

/// Encodes a response: `{}` on full success, `partialSuccess` otherwise, with int64
/// written as a decimal string as proto3 JSON does.
pub fn encode_response(response: &ExportTraceServiceResponse) -> Vec<u8> {
    let mut out = Map::new();
    if let Some(partial) = &response.partial_success {
        let mut p = Map::new();
        if partial.rejected_spans != 0 {
            p.insert(
                "rejectedSpans".into(),
                Value::String(partial.rejected_spans.to_string()),
            );
        }
        if !partial.error_message.is_empty() {
            p.insert(
                "errorMessage".into(),
                Value::String(partial.error_message.clone()),
            );
        }
        out.insert("partialSuccess".into(), Value::Object(p));
    }
    serde_json::to_vec(&Value::Object(out)).unwrap_or_else(|_| b"{}".to_vec())
}

/// Encodes a `google.rpc.Status` (code and message; details are not written).
pub fn encode_status(status: &RpcStatus) -> Vec<u8> {
    let value = json!({ "code": status.code, "message": status.message });
    serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec())
}

/// Message depth of an attribute value (an `AnyValue` alone is 1).
fn value_depth(value: &AnyValue) -> usize {
    match &value.value {
        Some(any_value::Value::ArrayValue(a)) => {
            2 + a.values.iter().map(value_depth).max().unwrap_or(0)
        }
        Some(any_value::Value::KvlistValue(kv)) => 2 + attributes_depth(&kv.values),
        _ => 1,
    }
}

/// Message depth of a list of key-values (each `KeyValue` is 1, plus its value).
fn attributes_depth(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| 1 + kv.value.as_ref().map_or(0, value_depth))
        .max()
        .unwrap_or(0)
}

/// Refuses attribute values nested deeper than the protobuf path allows.
fn check_depth(request: &ExportTraceServiceRequest) -> Result<(), JsonError> {
    let mut deepest = 0;
    for rs in &request.resource_spans {
        // request 1, resource_spans 2, resource 3
        if let Some(r) = &rs.resource {
            deepest = deepest.max(3 + attributes_depth(&r.attributes));
        }
        for ss in &rs.scope_spans {
            // scope_spans 3, scope 4
            if let Some(s) = &ss.scope {
                deepest = deepest.max(4 + attributes_depth(&s.attributes));
            }
            for span in &ss.spans {
                // span 4, event/link 5
                deepest = deepest.max(4 + attributes_depth(&span.attributes));
                for e in &span.events {
                    deepest = deepest.max(5 + attributes_depth(&e.attributes));
                }
                for l in &span.links {
                    deepest = deepest.max(5 + attributes_depth(&l.attributes));
                }
            }
        }
    }
    if deepest > MAX_DEPTH {
        return Err(JsonError(format!(
            "invalid OTLP/JSON: attribute values nested deeper than {MAX_DEPTH} message levels"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
