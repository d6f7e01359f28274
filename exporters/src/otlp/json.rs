//! An OTLP/JSON writer for `ExportTraceServiceRequest`, following the OTLP spec's JSON
//! mapping: lowerCamelCase keys, trace and span IDs as hex (not base64), enums as
//! integers, 64-bit integers as decimal strings, `bytesValue` as base64, and fields at
//! their default value left out (as protobuf's JSON mapping does).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use std::fmt::Write;

/// Writes `request` as OTLP/JSON.
pub fn encode_request(request: &ExportTraceServiceRequest) -> Vec<u8> {
    let mut w = JsonWriter::default();
    w.open('{');
    w.key("resourceSpans");
    w.array(&request.resource_spans, JsonWriter::resource_spans);
    w.close('}');
    w.out.into_bytes()
}

/// Appends JSON to a string, tracking whether a comma is due.
#[derive(Default)]
struct JsonWriter {
    out: String,
    /// True right after `{` or `[`, when the next member needs no comma.
    first: bool,
}

impl JsonWriter {
    fn open(&mut self, c: char) {
        self.out.push(c);
        self.first = true;
    }

    fn close(&mut self, c: char) {
        self.out.push(c);
        self.first = false;
    }

    fn comma(&mut self) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
    }

    fn key(&mut self, key: &str) {
        self.comma();
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
        self.first = true;
    }

    fn string(&mut self, s: &str) {
        self.comma();
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", u32::from(c));
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    fn raw(&mut self, text: impl std::fmt::Display) {
        self.comma();
        let _ = write!(self.out, "{text}");
    }

    fn str_field(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.key(key);
            self.string(value);
        }
    }

    fn hex_field(&mut self, key: &str, bytes: &[u8]) {
        if !bytes.is_empty() {
            self.key(key);
            self.comma();
            self.out.push('"');
            for b in bytes {
                let _ = write!(self.out, "{b:02x}");
            }
            self.out.push('"');
        }
    }

    /// A 64-bit integer, as a string.
    fn u64_field(&mut self, key: &str, value: u64) {
        if value != 0 {
            self.key(key);
            self.raw(format_args!("\"{value}\""));
        }
    }

    /// A 32-bit integer or an enum, as a number.
    fn int_field(&mut self, key: &str, value: impl Into<i64>) {
        let value = value.into();
        if value != 0 {
            self.key(key);
            self.raw(value);
        }
    }

    fn array<T>(&mut self, items: &[T], mut write: impl FnMut(&mut Self, &T)) {
        self.comma();
        self.open('[');
        for item in items {
            write(self, item);
        }
        self.close(']');
    }

    fn array_field<T>(&mut self, key: &str, items: &[T], write: impl FnMut(&mut Self, &T)) {
        if !items.is_empty() {
            self.key(key);
            self.array(items, write);
        }
    }

    fn resource_spans(&mut self, rs: &ResourceSpans) {
        self.comma();
        self.open('{');
        if let Some(resource) = &rs.resource {
            self.key("resource");
            self.resource(resource);
        }
        self.array_field("scopeSpans", &rs.scope_spans, Self::scope_spans);
        self.str_field("schemaUrl", &rs.schema_url);
        self.close('}');
    }

    fn resource(&mut self, resource: &Resource) {
        self.comma();
        self.open('{');
        self.array_field("attributes", &resource.attributes, Self::key_value);
        self.int_field("droppedAttributesCount", resource.dropped_attributes_count);
        self.close('}');
    }

    fn scope_spans(&mut self, ss: &ScopeSpans) {
        self.comma();
        self.open('{');
        if let Some(scope) = &ss.scope {
            self.key("scope");
            self.scope(scope);
        }
        self.array_field("spans", &ss.spans, Self::span);
        self.str_field("schemaUrl", &ss.schema_url);
        self.close('}');
    }

    fn scope(&mut self, scope: &InstrumentationScope) {
        self.comma();
        self.open('{');
        self.str_field("name", &scope.name);
        self.str_field("version", &scope.version);
        self.array_field("attributes", &scope.attributes, Self::key_value);
        self.int_field("droppedAttributesCount", scope.dropped_attributes_count);
        self.close('}');
    }

    fn span(&mut self, span: &Span) {
        self.comma();
        self.open('{');
        self.hex_field("traceId", &span.trace_id);
        self.hex_field("spanId", &span.span_id);
        self.str_field("traceState", &span.trace_state);
        self.hex_field("parentSpanId", &span.parent_span_id);
        self.int_field("flags", span.flags);
        self.str_field("name", &span.name);
        self.int_field("kind", span.kind);
        self.u64_field("startTimeUnixNano", span.start_time_unix_nano);
        self.u64_field("endTimeUnixNano", span.end_time_unix_nano);
        self.array_field("attributes", &span.attributes, Self::key_value);
        self.int_field("droppedAttributesCount", span.dropped_attributes_count);
        self.array_field("events", &span.events, Self::event);
        self.int_field("droppedEventsCount", span.dropped_events_count);
        self.array_field("links", &span.links, Self::link);
        self.int_field("droppedLinksCount", span.dropped_links_count);
        if let Some(status) = &span.status {
            self.key("status");
            self.status(status);
        }
        self.close('}');
    }

    fn event(&mut self, event: &Event) {
        self.comma();
        self.open('{');
        self.u64_field("timeUnixNano", event.time_unix_nano);
        self.str_field("name", &event.name);
        self.array_field("attributes", &event.attributes, Self::key_value);
        self.int_field("droppedAttributesCount", event.dropped_attributes_count);
        self.close('}');
    }

    fn link(&mut self, link: &Link) {
        self.comma();
        self.open('{');
        self.hex_field("traceId", &link.trace_id);
        self.hex_field("spanId", &link.span_id);
        self.str_field("traceState", &link.trace_state);
        self.array_field("attributes", &link.attributes, Self::key_value);
        self.int_field("droppedAttributesCount", link.dropped_attributes_count);
        self.int_field("flags", link.flags);
        self.close('}');
    }

    fn status(&mut self, status: &Status) {
        self.comma();
        self.open('{');
        self.str_field("message", &status.message);
        self.int_field("code", status.code);
        self.close('}');
    }

    fn key_value(&mut self, kv: &KeyValue) {
        self.comma();
        self.open('{');
        self.key("key");
        self.string(&kv.key);
        self.key("value");
        self.any_value(kv.value.as_ref());
        self.close('}');
    }

    fn any_value(&mut self, value: Option<&AnyValue>) {
        self.comma();
        self.open('{');
        match value.and_then(|v| v.value.as_ref()) {
            None => {}
            Some(Value::StringValue(s)) => {
                self.key("stringValue");
                self.string(s);
            }
            Some(Value::BoolValue(b)) => {
                self.key("boolValue");
                self.raw(b);
            }
            Some(Value::IntValue(i)) => {
                self.key("intValue");
                self.raw(format_args!("\"{i}\""));
            }
            Some(Value::DoubleValue(d)) => {
                self.key("doubleValue");
                if d.is_nan() {
                    self.string("NaN");
                } else if d.is_infinite() {
                    self.string(if *d > 0.0 { "Infinity" } else { "-Infinity" });
                } else {
                    self.raw(d);
                }
            }
            Some(Value::ArrayValue(array)) => {
                self.key("arrayValue");
                self.comma();
                self.open('{');
                self.array_field("values", &array.values, |w, v| w.any_value(Some(v)));
                self.close('}');
            }
            Some(Value::KvlistValue(list)) => {
                self.key("kvlistValue");
                self.comma();
                self.open('{');
                self.array_field("values", &list.values, Self::key_value);
                self.close('}');
            }
            Some(Value::BytesValue(bytes)) => {
                self.key("bytesValue");
                self.string(&base64(bytes));
            }
            // An index into a profile's string table; meaningless in traces, kept as is.
            Some(Value::StringValueStrindex(index)) => {
                self.key("stringValueStrindex");
                self.raw(index);
            }
        }
        self.close('}');
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use serde_json::{json, Value as Json};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn writes_the_otlp_json_mapping() {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", Value::StringValue("svc \"q\"\n".into()))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lib".into(),
                        version: "1.0".into(),
                        ..Default::default()
                    }),
                    spans: vec![Span {
                        trace_id: vec![0xab; 16],
                        span_id: vec![0x01, 0x02, 0, 0, 0, 0, 0, 0xff],
                        parent_span_id: vec![],
                        name: "GET /".into(),
                        kind: 2,
                        start_time_unix_nano: 1_700_000_000_000_000_001,
                        end_time_unix_nano: 1_700_000_000_000_000_002,
                        attributes: vec![
                            kv("int", Value::IntValue(-9_007_199_254_740_993)),
                            kv("double", Value::DoubleValue(1.5)),
                            kv("nan", Value::DoubleValue(f64::NAN)),
                            kv("bool", Value::BoolValue(true)),
                            kv("bytes", Value::BytesValue(b"hello".to_vec())),
                            kv(
                                "array",
                                Value::ArrayValue(ArrayValue {
                                    values: vec![AnyValue {
                                        value: Some(Value::StringValue("x".into())),
                                    }],
                                }),
                            ),
                            kv(
                                "map",
                                Value::KvlistValue(KeyValueList {
                                    values: vec![kv("k", Value::IntValue(1))],
                                }),
                            ),
                        ],
                        events: vec![Event {
                            time_unix_nano: 5,
                            name: "e".into(),
                            ..Default::default()
                        }],
                        links: vec![Link {
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            flags: 256,
                            ..Default::default()
                        }],
                        status: Some(Status {
                            message: "boom".into(),
                            code: 2,
                        }),
                        flags: 257,
                        ..Default::default()
                    }],
                    schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
                }],
                schema_url: String::new(),
            }],
        };
        let written: Json = serde_json::from_slice(&encode_request(&request)).unwrap();
        let expected = json!({"resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "svc \"q\"\n"}}]},
            "scopeSpans": [{
                "scope": {"name": "lib", "version": "1.0"},
                "spans": [{
                    "traceId": "abababababababababababababababab",
                    "spanId": "01020000000000ff",
                    "flags": 257,
                    "name": "GET /",
                    "kind": 2,
                    "startTimeUnixNano": "1700000000000000001",
                    "endTimeUnixNano": "1700000000000000002",
                    "attributes": [
                        {"key": "int", "value": {"intValue": "-9007199254740993"}},
                        {"key": "double", "value": {"doubleValue": 1.5}},
                        {"key": "nan", "value": {"doubleValue": "NaN"}},
                        {"key": "bool", "value": {"boolValue": true}},
                        {"key": "bytes", "value": {"bytesValue": "aGVsbG8="}},
                        {"key": "array", "value": {"arrayValue": {"values": [{"stringValue": "x"}]}}},
                        {"key": "map", "value": {"kvlistValue": {"values": [
                            {"key": "k", "value": {"intValue": "1"}}]}}}
                    ],
                    "events": [{"timeUnixNano": "5", "name": "e"}],
                    "links": [{"traceId": "01010101010101010101010101010101",
                               "spanId": "0202020202020202", "flags": 256}],
                    "status": {"message": "boom", "code": 2}
                }],
                "schemaUrl": "https://opentelemetry.io/schemas/1.21.0"
            }]
        }]});
        assert_eq!(written, expected);
    }

    #[test]
    fn empty_request_and_base64_padding() {
        let written = encode_request(&ExportTraceServiceRequest::default());
        assert_eq!(written, br#"{"resourceSpans":[]}"#);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0xfc]), "//79/A==");
    }
}
