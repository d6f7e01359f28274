//! OTLP/JSON writer: an `ExportTraceServiceRequest` in the proto3 JSON mapping with the
//! OTLP rules (lowerCamelCase keys, trace and span IDs as lowercase hex, 64-bit integers
//! as decimal strings, enums as integers, bytes as base64, `NaN`/`Infinity` as strings),
//! fields at their default value left out. The receivers' OTLP/JSON reader reads it back.
//!
//! Written straight into a byte buffer (no intermediate `serde_json::Value`), so it keeps
//! up with the file exporter. Not written: `Resource.entity_refs` (development-stage in
//! OTLP and not read by the collector's JSON unmarshaler either).

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

/// Appends the OTLP/JSON form of the request holding `resource_spans` to `out`, on one
/// line (no newline is added).
pub fn write_request(resource_spans: &[ResourceSpans], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"resourceSpans\":[");
    for (i, rs) in resource_spans.iter().enumerate() {
        comma(out, i);
        write_resource_spans(rs, out);
    }
    out.extend_from_slice(b"]}");
}

/// The OTLP/JSON form of the request holding `resource_spans`.
pub fn request_to_vec(resource_spans: &[ResourceSpans]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_request(resource_spans, &mut out);
    out
}

/// Writes `{` ... `}` with a comma before every field but the first.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    fields: usize,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, fields: 0 }
    }

    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        comma(self.out, self.fields);
        self.fields += 1;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            let out = self.key(key);
            string(out, value);
        }
    }

    fn hex(&mut self, key: &str, value: &[u8]) {
        if !value.is_empty() {
            let out = self.key(key);
            hex(out, value);
        }
    }

    fn u32(&mut self, key: &str, value: u32) {
        if value != 0 {
            let out = self.key(key);
            out.extend_from_slice(value.to_string().as_bytes());
        }
    }

    fn i32(&mut self, key: &str, value: i32) {
        if value != 0 {
            let out = self.key(key);
            out.extend_from_slice(value.to_string().as_bytes());
        }
    }

    fn u64_string(&mut self, key: &str, value: u64) {
        if value != 0 {
            let out = self.key(key);
            out.push(b'"');
            out.extend_from_slice(value.to_string().as_bytes());
            out.push(b'"');
        }
    }

    fn attributes(&mut self, key: &str, attributes: &[KeyValue]) {
        if !attributes.is_empty() {
            let out = self.key(key);
            key_values(out, attributes);
        }
    }

    fn list<T>(&mut self, key: &str, items: &[T], write: impl Fn(&T, &mut Vec<u8>)) {
        if !items.is_empty() {
            let out = self.key(key);
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                comma(out, i);
                write(item, out);
            }
            out.push(b']');
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

fn comma(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

fn string(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping; writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0xf)]);
    }
    out.push(b'"');
}

fn base64(out: &mut Vec<u8>, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    out.push(b'"');
    for chunk in bytes.chunks(3) {
        let n = match *chunk {
            [a, b, c] => u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c),
            [a, b] => u32::from(a) << 16 | u32::from(b) << 8,
            [a] => u32::from(a) << 16,
            _ => 0,
        };
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out.push(b'"');
}

fn write_resource_spans(rs: &ResourceSpans, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    if let Some(resource) = &rs.resource {
        write_resource(resource, o.key("resource"));
    }
    o.list("scopeSpans", &rs.scope_spans, write_scope_spans);
    o.str("schemaUrl", &rs.schema_url);
    o.end();
}

fn write_resource(resource: &Resource, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.attributes("attributes", &resource.attributes);
    o.u32("droppedAttributesCount", resource.dropped_attributes_count);
    o.end();
}

fn write_scope_spans(ss: &ScopeSpans, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    if let Some(scope) = &ss.scope {
        write_scope(scope, o.key("scope"));
    }
    o.list("spans", &ss.spans, write_span);
    o.str("schemaUrl", &ss.schema_url);
    o.end();
}

fn write_scope(scope: &InstrumentationScope, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.str("name", &scope.name);
    o.str("version", &scope.version);
    o.attributes("attributes", &scope.attributes);
    o.u32("droppedAttributesCount", scope.dropped_attributes_count);
    o.end();
}

fn write_span(span: &Span, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.hex("traceId", &span.trace_id);
    o.hex("spanId", &span.span_id);
    o.str("traceState", &span.trace_state);
    o.hex("parentSpanId", &span.parent_span_id);
    o.u32("flags", span.flags);
    o.str("name", &span.name);
    o.i32("kind", span.kind);
    o.u64_string("startTimeUnixNano", span.start_time_unix_nano);
    o.u64_string("endTimeUnixNano", span.end_time_unix_nano);
    o.attributes("attributes", &span.attributes);
    o.u32("droppedAttributesCount", span.dropped_attributes_count);
    o.list("events", &span.events, write_event);
    o.u32("droppedEventsCount", span.dropped_events_count);
    o.list("links", &span.links, write_link);
    o.u32("droppedLinksCount", span.dropped_links_count);
    if let Some(status) = &span.status {
        write_status(status, o.key("status"));
    }
    o.end();
}

fn write_event(event: &Event, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.u64_string("timeUnixNano", event.time_unix_nano);
    o.str("name", &event.name);
    o.attributes("attributes", &event.attributes);
    o.u32("droppedAttributesCount", event.dropped_attributes_count);
    o.end();
}

fn write_link(link: &Link, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.hex("traceId", &link.trace_id);
    o.hex("spanId", &link.span_id);
    o.str("traceState", &link.trace_state);
    o.attributes("attributes", &link.attributes);
    o.u32("droppedAttributesCount", link.dropped_attributes_count);
    o.u32("flags", link.flags);
    o.end();
}

fn write_status(status: &Status, out: &mut Vec<u8>) {
    let mut o = Obj::new(out);
    o.str("message", &status.message);
    o.i32("code", status.code);
    o.end();
}

fn key_values(out: &mut Vec<u8>, attributes: &[KeyValue]) {
    out.push(b'[');
    for (i, kv) in attributes.iter().enumerate() {
        comma(out, i);
        let mut o = Obj::new(out);
        string(o.key("key"), &kv.key);
        if let Some(value) = &kv.value {
            write_any_value(value, o.key("value"));
        }
        o.end();
    }
    out.push(b']');
}

fn write_any_value(value: &AnyValue, out: &mut Vec<u8>) {
    use any_value::Value as V;
    let mut o = Obj::new(out);
    match &value.value {
        None => {}
        Some(V::StringValue(s)) => string(o.key("stringValue"), s),
        Some(V::BoolValue(b)) => {
            o.key("boolValue")
                .extend_from_slice(if *b { b"true" } else { b"false" })
        }
        Some(V::IntValue(n)) => {
            let out = o.key("intValue");
            out.push(b'"');
            out.extend_from_slice(n.to_string().as_bytes());
            out.push(b'"');
        }
        Some(V::DoubleValue(d)) => {
            let out = o.key("doubleValue");
            if d.is_nan() {
                out.extend_from_slice(b"\"NaN\"");
            } else if d.is_infinite() {
                let text: &[u8] = if *d > 0.0 {
                    b"\"Infinity\""
                } else {
                    b"\"-Infinity\""
                };
                out.extend_from_slice(text);
            } else {
                let _ = serde_json::to_writer(&mut *out, d);
            }
        }
        Some(V::ArrayValue(a)) => {
            let out = o.key("arrayValue");
            let mut inner = Obj::new(out);
            inner.list("values", &a.values, write_any_value);
            inner.end();
        }
        Some(V::KvlistValue(kv)) => {
            let out = o.key("kvlistValue");
            let mut inner = Obj::new(out);
            if !kv.values.is_empty() {
                key_values(inner.key("values"), &kv.values);
            }
            inner.end();
        }
        Some(V::BytesValue(b)) => base64(o.key("bytesValue"), b),
        Some(V::StringValueStrindex(i)) => {
            // Profiles' string-table index; not used by traces, kept as a plain integer.
            let _ = serde_json::to_writer(o.key("stringValueStrindex"), i);
        }
    }
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        }
    }

    #[test]
    fn follows_the_otlp_json_mapping() {
        use any_value::Value as V;
        let rs = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", V::StringValue("a\"b".into()))],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..InstrumentationScope::default()
                }),
                spans: vec![Span {
                    trace_id: vec![0xab; 16],
                    span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
                    name: "op".into(),
                    kind: 2,
                    start_time_unix_nano: 1_700_000_000_000_000_000,
                    end_time_unix_nano: u64::MAX,
                    attributes: vec![
                        kv("i", V::IntValue(-5)),
                        kv("d", V::DoubleValue(f64::NAN)),
                        kv("b", V::BytesValue(vec![0xff, 0, 1, 2])),
                        kv(
                            "a",
                            V::ArrayValue(ArrayValue {
                                values: vec![AnyValue {
                                    value: Some(V::BoolValue(true)),
                                }],
                            }),
                        ),
                        kv("k", V::KvlistValue(KeyValueList { values: vec![] })),
                    ],
                    status: Some(Status {
                        message: String::new(),
                        code: 2,
                    }),
                    ..Span::default()
                }],
                ..ScopeSpans::default()
            }],
            schema_url: "https://x".into(),
        };
        let text = String::from_utf8(request_to_vec(&[rs])).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let span = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "abababababababababababababababab");
        assert_eq!(span["spanId"], "0102030405060708");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(span["endTimeUnixNano"], u64::MAX.to_string());
        assert_eq!(span["attributes"][0]["value"]["intValue"], "-5");
        assert_eq!(span["attributes"][1]["value"]["doubleValue"], "NaN");
        assert_eq!(span["attributes"][2]["value"]["bytesValue"], "/wABAg==");
        assert_eq!(
            span["attributes"][3]["value"]["arrayValue"]["values"][0]["boolValue"],
            true
        );
        assert_eq!(
            span["attributes"][4]["value"]["kvlistValue"],
            serde_json::json!({})
        );
        assert_eq!(span["status"], serde_json::json!({"code": 2}));
        assert!(span.get("parentSpanId").is_none(), "defaults are left out");
        assert_eq!(
            v["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"],
            "a\"b"
        );
        assert_eq!(v["resourceSpans"][0]["schemaUrl"], "https://x");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn base64_pads() {
        for (input, expected) in [
            (&b""[..], "\"\""),
            (b"f", "\"Zg==\""),
            (b"fo", "\"Zm8=\""),
            (b"foo", "\"Zm9v\""),
            (b"foob", "\"Zm9vYg==\""),
        ] {
            let mut out = Vec::new();
            base64(&mut out, input);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
