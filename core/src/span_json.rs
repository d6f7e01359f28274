//! The Teletrace v1 JSON of a span (Teletrace's `InternalSpan`), written straight from
//! OTLP structs into a byte buffer. The query API answers `POST /v1/search` and
//! `GET /v1/trace/{id}` with it, and the elasticsearch exporter stores it as the
//! `teletrace` document (with `@timestamp` in front), so a reader can return a stored
//! document as it is.
//!
//! The shape:
//!
//! ```text
//! {"resource": {"attributes", "droppedAttributesCount"},
//!  "scope": {"name", "version", "attributes", "droppedAttributesCount"},
//!  "span": {"traceId", "spanId", "traceState", "parentSpanId", "name", "kind",
//!           "startTimeUnixNano", "endTimeUnixNano", "attributes", "droppedAttributesCount",
//!           "events": [{"timeUnixNano", "name", "attributes", "droppedAttributesCount"}],
//!           "droppedEventsCount",
//!           "links": [{"traceId", "spanId", "traceState", "attributes",
//!                      "droppedAttributesCount"}],
//!           "droppedLinksCount", "status": {"message", "code"}},
//!  "externalFields": {"durationNano"}, "ingestionTimeUnixNano"}
//! ```
//!
//! IDs are lowercase hex (empty for an absent parent), `kind` and `status.code` the OTLP
//! numbers, times integers in ns. Attributes are an object of key to value, as
//! Teletrace wrote them (the collector's `AsRaw`): strings, booleans, integers and
//! doubles as JSON scalars, arrays as lists, key-value lists as objects, bytes as
//! standard base64, an empty value as `null`, a NaN or infinite double as the string
//! `NaN`, `Infinity` or `-Infinity`; a repeated key keeps its last value.

use crate::json_writer::{self as json, ValueStyle};
use crate::storage::StoredSpan;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::Span;

const STYLE: ValueStyle = ValueStyle::Teletrace;

/// Appends stored spans as a JSON array, `[span, ...]`.
pub fn write_array(out: &mut Vec<u8>, spans: &[StoredSpan]) {
    let mut first = true;
    json::array(out, spans, |out, stored| {
        let before = out.len();
        write_stored_span(out, stored);
        if std::mem::take(&mut first) {
            // The rest are sized like the first, give or take: one allocation, not a
            // dozen doublings copying megabytes for a large trace.
            let size = out.len() - before;
            out.reserve((spans.len() - 1) * (size + size / 4 + 1) + 1);
        }
    });
}

/// Appends a stored span as one JSON object.
pub fn write_stored_span(out: &mut Vec<u8>, stored: &StoredSpan) {
    out.push(b'{');
    write_fields(
        out,
        |out| write_resource(out, &stored.resource),
        |out| write_scope(out, &stored.scope),
        &stored.span,
        stored.duration_ns,
        stored.ingestion_time_ns,
    );
    out.push(b'}');
}

/// Appends the members of a span's object, without its braces (a caller adds members of
/// its own, as the elasticsearch exporter adds `@timestamp`). `resource` and `scope`
/// write those two parts, so a caller writing many spans of one resource can copy a
/// part it wrote once.
pub fn write_fields(
    out: &mut Vec<u8>,
    resource: impl FnOnce(&mut Vec<u8>),
    scope: impl FnOnce(&mut Vec<u8>),
    span: &Span,
    duration_ns: u64,
    ingestion_time_ns: u64,
) {
    out.extend_from_slice(b"\"resource\":");
    resource(out);
    out.extend_from_slice(b",\"scope\":");
    scope(out);
    out.extend_from_slice(b",\"span\":{\"traceId\":");
    json::hex_string(out, &span.trace_id);
    out.extend_from_slice(b",\"spanId\":");
    json::hex_string(out, &span.span_id);
    out.extend_from_slice(b",\"traceState\":");
    json::string(out, &span.trace_state);
    out.extend_from_slice(b",\"parentSpanId\":");
    json::hex_string(out, &span.parent_span_id);
    out.extend_from_slice(b",\"name\":");
    json::string(out, &span.name);
    out.extend_from_slice(b",\"kind\":");
    json::int(out, span.kind.into());
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    json::uint(out, span.start_time_unix_nano);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    json::uint(out, span.end_time_unix_nano);
    out.extend_from_slice(b",\"attributes\":");
    json::attributes(out, &span.attributes, STYLE, 0);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    json::uint(out, span.dropped_attributes_count.into());
    out.extend_from_slice(b",\"events\":");
    write_events(out, &span.events);
    out.extend_from_slice(b",\"droppedEventsCount\":");
    json::uint(out, span.dropped_events_count.into());
    out.extend_from_slice(b",\"links\":");
    write_links(out, &span.links);
    out.extend_from_slice(b",\"droppedLinksCount\":");
    json::uint(out, span.dropped_links_count.into());
    let (message, code) = span
        .status
        .as_ref()
        .map_or(("", 0), |s| (s.message.as_str(), s.code));
    out.extend_from_slice(b",\"status\":{\"message\":");
    json::string(out, message);
    out.extend_from_slice(b",\"code\":");
    json::int(out, code.into());
    out.extend_from_slice(b"}},\"externalFields\":{\"durationNano\":");
    json::uint(out, duration_ns);
    out.extend_from_slice(b"},\"ingestionTimeUnixNano\":");
    json::uint(out, ingestion_time_ns);
}

/// Appends a span's `events` array.
pub fn write_events(out: &mut Vec<u8>, events: &[Event]) {
    json::array(out, events, |out, event| {
        out.extend_from_slice(b"{\"timeUnixNano\":");
        json::uint(out, event.time_unix_nano);
        out.extend_from_slice(b",\"name\":");
        json::string(out, &event.name);
        out.extend_from_slice(b",\"attributes\":");
        json::attributes(out, &event.attributes, STYLE, 0);
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        json::uint(out, event.dropped_attributes_count.into());
        out.push(b'}');
    });
}

/// Appends a span's `links` array.
pub fn write_links(out: &mut Vec<u8>, links: &[Link]) {
    json::array(out, links, |out, link| {
        out.extend_from_slice(b"{\"traceId\":");
        json::hex_string(out, &link.trace_id);
        out.extend_from_slice(b",\"spanId\":");
        json::hex_string(out, &link.span_id);
        out.extend_from_slice(b",\"traceState\":");
        json::string(out, &link.trace_state);
        out.extend_from_slice(b",\"attributes\":");
        json::attributes(out, &link.attributes, STYLE, 0);
        out.extend_from_slice(b",\"droppedAttributesCount\":");
        json::uint(out, link.dropped_attributes_count.into());
        out.push(b'}');
    });
}

/// Appends the `resource` object.
pub fn write_resource(out: &mut Vec<u8>, resource: &Resource) {
    out.extend_from_slice(b"{\"attributes\":");
    json::attributes(out, &resource.attributes, STYLE, 0);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    json::uint(out, resource.dropped_attributes_count.into());
    out.push(b'}');
}

/// Appends the `scope` object.
pub fn write_scope(out: &mut Vec<u8>, scope: &InstrumentationScope) {
    out.extend_from_slice(b"{\"name\":");
    json::string(out, &scope.name);
    out.extend_from_slice(b",\"version\":");
    json::string(out, &scope.version);
    out.extend_from_slice(b",\"attributes\":");
    json::attributes(out, &scope.attributes, STYLE, 0);
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    json::uint(out, scope.dropped_attributes_count.into());
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        any_value::Value as V, AnyValue, ArrayValue, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::trace::v1::Status;
    use serde_json::json;
    use std::sync::Arc;

    fn kv(key: &str, value: V) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn written(stored: &StoredSpan) -> serde_json::Value {
        let mut out = Vec::new();
        write_stored_span(&mut out, stored);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn a_span_with_every_part_in_the_v1_shape() {
        let stored = StoredSpan {
            resource: Arc::new(Resource {
                attributes: vec![kv("service.name", V::StringValue("shop".into()))],
                dropped_attributes_count: 1,
                ..Default::default()
            }),
            scope: Arc::new(InstrumentationScope {
                name: "lib".into(),
                version: "1.2".into(),
                attributes: vec![kv("s", V::BoolValue(true))],
                dropped_attributes_count: 2,
            }),
            span: Span {
                trace_id: vec![0xab; 16],
                span_id: vec![0x01; 8],
                trace_state: "k=v".into(),
                parent_span_id: Vec::new(),
                name: "GET /\"q\"".into(),
                kind: 2,
                start_time_unix_nano: 1_700_000_000_000_000_001,
                end_time_unix_nano: 1_700_000_000_000_000_501,
                attributes: vec![kv("n", V::IntValue(-3))],
                dropped_attributes_count: 3,
                events: vec![Event {
                    time_unix_nano: 7,
                    name: "ev".into(),
                    attributes: vec![kv("e", V::DoubleValue(0.5))],
                    dropped_attributes_count: 4,
                }],
                dropped_events_count: 5,
                links: vec![Link {
                    trace_id: vec![0x07; 16],
                    span_id: vec![0x08; 8],
                    trace_state: "l=1".into(),
                    attributes: Vec::new(),
                    dropped_attributes_count: 6,
                    flags: 0,
                }],
                dropped_links_count: 7,
                status: Some(Status {
                    message: "bad".into(),
                    code: 2,
                }),
                flags: 0,
            },
            duration_ns: 500,
            ingestion_time_ns: 1_700_000_000_000_000_999,
        };
        assert_eq!(
            written(&stored),
            json!({
                "resource": {"attributes": {"service.name": "shop"}, "droppedAttributesCount": 1},
                "scope": {"name": "lib", "version": "1.2", "attributes": {"s": true},
                          "droppedAttributesCount": 2},
                "span": {
                    "traceId": "ab".repeat(16), "spanId": "0101010101010101",
                    "traceState": "k=v", "parentSpanId": "", "name": "GET /\"q\"", "kind": 2,
                    "startTimeUnixNano": 1_700_000_000_000_000_001u64,
                    "endTimeUnixNano": 1_700_000_000_000_000_501u64,
                    "attributes": {"n": -3}, "droppedAttributesCount": 3,
                    "events": [{"timeUnixNano": 7, "name": "ev", "attributes": {"e": 0.5},
                                "droppedAttributesCount": 4}],
                    "droppedEventsCount": 5,
                    "links": [{"traceId": "07".repeat(16), "spanId": "0808080808080808",
                               "traceState": "l=1", "attributes": {},
                               "droppedAttributesCount": 6}],
                    "droppedLinksCount": 7,
                    "status": {"message": "bad", "code": 2}
                },
                "externalFields": {"durationNano": 500},
                "ingestionTimeUnixNano": 1_700_000_000_000_000_999u64
            })
        );
    }

    #[test]
    fn attribute_values_as_teletrace_wrote_them() {
        let stored = StoredSpan {
            span: Span {
                attributes: vec![
                    kv("s", V::StringValue("x".into())),
                    kv("b", V::BoolValue(false)),
                    kv("i", V::IntValue(i64::MAX)),
                    kv("d", V::DoubleValue(1.0)),
                    kv("nan", V::DoubleValue(f64::NAN)),
                    kv("inf", V::DoubleValue(f64::INFINITY)),
                    kv("-inf", V::DoubleValue(f64::NEG_INFINITY)),
                    kv("bytes", V::BytesValue(vec![0, 1, 2, 255])),
                    kv(
                        "list",
                        V::ArrayValue(ArrayValue {
                            values: vec![
                                AnyValue {
                                    value: Some(V::IntValue(1)),
                                },
                                AnyValue { value: None },
                            ],
                        }),
                    ),
                    kv(
                        "map",
                        V::KvlistValue(KeyValueList {
                            values: vec![kv("k", V::StringValue("v".into()))],
                        }),
                    ),
                    KeyValue {
                        key: "empty".into(),
                        value: None,
                        ..Default::default()
                    },
                    kv("s", V::StringValue("last".into())),
                ],
                ..Default::default()
            },
            ..Default::default()
        };
        let json = written(&stored);
        assert_eq!(
            json["span"]["attributes"],
            json!({
                "s": "last", "b": false, "i": i64::MAX, "d": 1.0, "nan": "NaN",
                "inf": "Infinity", "-inf": "-Infinity", "bytes": "AAEC/w==",
                "list": [1, null], "map": {"k": "v"}, "empty": null
            })
        );
        assert_eq!(json["span"]["status"], json!({"message": "", "code": 0}));
    }

    #[test]
    fn values_nested_past_the_limit_are_null() {
        let mut value = V::IntValue(1);
        for _ in 0..(json::MAX_DEPTH + 5) {
            value = V::ArrayValue(ArrayValue {
                values: vec![AnyValue { value: Some(value) }],
            });
        }
        let stored = StoredSpan {
            span: Span {
                attributes: vec![kv("deep", value)],
                ..Default::default()
            },
            ..Default::default()
        };
        let mut node = &written(&stored)["span"]["attributes"]["deep"];
        let mut depth = 0;
        while let Some(inner) = node.as_array() {
            node = &inner[0];
            depth += 1;
        }
        assert!(node.is_null());
        assert_eq!(depth, json::MAX_DEPTH + 1);
    }
}
