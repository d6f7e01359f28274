//! Jaeger's JSON shapes (`model/json` of the Jaeger query service) and the conversion
//! of stored OTLP spans into them, as the OpenTelemetry-to-Jaeger translation does it:
//! span kind, status and scope become tags, events become logs, the parent becomes a
//! `CHILD_OF` reference and links `FOLLOWS_FROM` references, resources become processes.

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as OtlpKeyValue};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use teletrace_core::storage::StoredSpan;

/// Service name of a resource without `service.name` (the translation's constant).
pub const NO_SERVICE_NAME: &str = "OTLPResourceNoServiceName";

/// Jaeger's envelope for every answer: `{"data", "total", "limit", "offset", "errors"}`.
#[derive(Debug, Serialize)]
pub struct Structured<T: Serialize> {
    /// The payload (`null` on errors).
    pub data: Option<T>,
    /// Number of items in `data`.
    pub total: usize,
    /// Always 0 (no paging).
    pub limit: usize,
    /// Always 0 (no paging).
    pub offset: usize,
    /// `null`, or the errors.
    pub errors: Option<Vec<StructuredError>>,
}

impl<T: Serialize> Structured<T> {
    /// A successful answer carrying `data`, `total` items.
    pub fn ok(data: T, total: usize) -> Self {
        Structured {
            data: Some(data),
            total,
            limit: 0,
            offset: 0,
            errors: None,
        }
    }
}

/// One error of the envelope.
#[derive(Debug, Serialize)]
pub struct StructuredError {
    /// HTTP status.
    pub code: u16,
    /// What went wrong.
    pub msg: String,
}

/// A trace: its spans and the processes they reference.
#[derive(Debug, Serialize)]
pub struct Trace {
    /// Trace ID (see [`trace_id`]).
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Spans, oldest first.
    pub spans: Vec<Span>,
    /// Processes by ID (`p1`, `p2`, ...).
    pub processes: BTreeMap<String, Process>,
    /// Always `null`.
    pub warnings: Option<Vec<String>>,
}

/// A span.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    /// Trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Span ID, 16 hex digits.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Span name.
    pub operation_name: String,
    /// Parent (`CHILD_OF`, first) and links (`FOLLOWS_FROM`).
    pub references: Vec<Reference>,
    /// Start, µs since the epoch.
    pub start_time: u64,
    /// Duration, µs.
    pub duration: u64,
    /// Span attributes and the derived tags.
    pub tags: Vec<KeyValue>,
    /// Events.
    pub logs: Vec<Log>,
    /// Key into the trace's `processes`.
    #[serde(rename = "processID")]
    pub process_id: String,
    /// Always `null`.
    pub warnings: Option<Vec<String>>,
}

/// A reference to another span.
#[derive(Debug, Serialize)]
pub struct Reference {
    /// `CHILD_OF` or `FOLLOWS_FROM`.
    #[serde(rename = "refType")]
    pub ref_type: &'static str,
    /// Trace of the referenced span.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// The referenced span.
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// A typed tag.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type")]
    pub value_type: &'static str,
    /// The value (a base64 string for `binary`).
    pub value: Value,
}

/// An event.
#[derive(Debug, Serialize)]
pub struct Log {
    /// µs since the epoch.
    pub timestamp: u64,
    /// `event` (the event's name) then the event's attributes.
    pub fields: Vec<KeyValue>,
}

/// The process (resource) of spans.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    /// `service.name`.
    #[serde(rename = "serviceName")]
    pub service_name: String,
    /// The other resource attributes.
    pub tags: Vec<KeyValue>,
}

/// A Jaeger trace ID: 32 lowercase hex digits, or 16 when the high 64 bits are zero (as
/// Jaeger's `TraceID.String` prints it).
pub fn trace_id(id: &[u8]) -> String {
    if id.len() == 16 && id[..8].iter().all(|b| *b == 0) {
        hex::encode(&id[8..])
    } else {
        hex::encode(id)
    }
}

/// Parses a Jaeger trace ID: 1 to 32 hex digits, left-padded with zeros.
pub fn parse_trace_id(text: &str) -> Option<[u8; 16]> {
    let text = text.trim();
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{text:0>32}");
    let bytes = hex::decode(padded.to_ascii_lowercase()).ok()?;
    <[u8; 16]>::try_from(bytes).ok()
}

fn tag(key: &str, value_type: &'static str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value_type,
        value,
    }
}

fn string_tag(key: &str, value: &str) -> KeyValue {
    tag(key, "string", Value::String(value.to_string()))
}

/// An OTLP value as a JSON value (for arrays and maps, which become JSON text).
fn any_json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => Value::String(s.clone()),
        Some(Any::BoolValue(b)) => Value::Bool(*b),
        Some(Any::IntValue(i)) => Value::from(*i),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map_or_else(|| Value::String(d.to_string()), Value::Number),
        Some(Any::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Any::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| any_json(Some(v))).collect())
        }
        Some(Any::KvlistValue(m)) => Value::Object(
            m.values
                .iter()
                .map(|kv| (kv.key.clone(), any_json(kv.value.as_ref())))
                .collect(),
        ),
        Some(Any::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// An attribute as a tag: strings, booleans, integers and doubles keep their type, bytes
/// are `binary` (base64), arrays and maps are their JSON text.
pub fn attribute_tag(kv: &OtlpKeyValue) -> KeyValue {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => string_tag(&kv.key, s),
        Some(Any::BoolValue(b)) => tag(&kv.key, "bool", Value::Bool(*b)),
        Some(Any::IntValue(i)) => tag(&kv.key, "int64", Value::from(*i)),
        Some(Any::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => tag(&kv.key, "float64", Value::Number(n)),
            // JSON has no NaN or infinity: the text, as a string tag.
            None => string_tag(&kv.key, &d.to_string()),
        },
        Some(Any::BytesValue(b)) => tag(
            &kv.key,
            "binary",
            Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        ),
        Some(Any::ArrayValue(_)) | Some(Any::KvlistValue(_)) => {
            string_tag(&kv.key, &any_json(kv.value.as_ref()).to_string())
        }
        Some(Any::StringValueStrindex(_)) | None => string_tag(&kv.key, ""),
    }
}

/// The Jaeger `span.kind` tag value of an OTLP kind (none for unspecified).
pub fn kind_name(kind: i32) -> Option<&'static str> {
    match kind {
        1 => Some("internal"),
        2 => Some("server"),
        3 => Some("client"),
        4 => Some("producer"),
        5 => Some("consumer"),
        _ => None,
    }
}

/// The OTLP kind of a Jaeger `span.kind` value (`server`, ...; any case).
pub fn kind_value(name: &str) -> Option<i32> {
    (1..=5).find(|k| kind_name(*k).is_some_and(|n| n.eq_ignore_ascii_case(name.trim())))
}

fn process_of(stored: &StoredSpan) -> Process {
    let mut service_name = None;
    let mut tags = Vec::new();
    for kv in &stored.resource.attributes {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Any::StringValue(s)) if kv.key == "service.name" && service_name.is_none() => {
                service_name = Some(s.clone());
            }
            _ => tags.push(attribute_tag(kv)),
        }
    }
    Process {
        service_name: service_name.unwrap_or_else(|| NO_SERVICE_NAME.to_string()),
        tags,
    }
}

fn span_tags(stored: &StoredSpan) -> Vec<KeyValue> {
    let span = &stored.span;
    let mut tags = Vec::with_capacity(span.attributes.len() + 6);
    if !stored.scope.name.is_empty() {
        tags.push(string_tag("otel.scope.name", &stored.scope.name));
    }
    if !stored.scope.version.is_empty() {
        tags.push(string_tag("otel.scope.version", &stored.scope.version));
    }
    tags.extend(span.attributes.iter().map(attribute_tag));
    if let Some(kind) = kind_name(span.kind) {
        tags.push(string_tag("span.kind", kind));
    }
    let (code, message) = span
        .status
        .as_ref()
        .map_or((0, ""), |s| (s.code, s.message.as_str()));
    match code {
        1 => tags.push(string_tag("otel.status_code", "OK")),
        2 => {
            tags.push(string_tag("otel.status_code", "ERROR"));
            tags.push(tag("error", "bool", Value::Bool(true)));
        }
        _ => {}
    }
    if !message.is_empty() {
        tags.push(string_tag("otel.status_description", message));
    }
    if !span.trace_state.is_empty() {
        tags.push(string_tag("w3c.tracestate", &span.trace_state));
    }
    tags
}

/// One trace in Jaeger's shape; `spans` must all belong to it. Processes are
/// deduplicated per distinct resource, numbered `p1`, `p2`, ... in order of first use.
pub fn trace(id: &[u8], spans: &[StoredSpan]) -> Trace {
    let trace_id = trace_id(id);
    let mut processes: Vec<Process> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for stored in spans {
        let span = &stored.span;
        let process = process_of(stored);
        let index = match processes.iter().position(|p| *p == process) {
            Some(i) => i,
            None => {
                processes.push(process);
                processes.len() - 1
            }
        };
        let mut references = Vec::with_capacity(span.links.len() + 1);
        if !span.parent_span_id.is_empty() {
            references.push(Reference {
                ref_type: "CHILD_OF",
                trace_id: trace_id.clone(),
                span_id: hex::encode(&span.parent_span_id),
            });
        }
        for link in &span.links {
            references.push(Reference {
                ref_type: "FOLLOWS_FROM",
                trace_id: self::trace_id(&link.trace_id),
                span_id: hex::encode(&link.span_id),
            });
        }
        let logs = span
            .events
            .iter()
            .map(|e| {
                let mut fields = Vec::with_capacity(e.attributes.len() + 1);
                if !e.name.is_empty() {
                    fields.push(string_tag("event", &e.name));
                }
                fields.extend(e.attributes.iter().map(attribute_tag));
                Log {
                    timestamp: e.time_unix_nano / 1_000,
                    fields,
                }
            })
            .collect();
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: hex::encode(&span.span_id),
            operation_name: span.name.clone(),
            references,
            start_time: span.start_time_unix_nano / 1_000,
            duration: span
                .end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                / 1_000,
            tags: span_tags(stored),
            logs,
            process_id: format!("p{}", index + 1),
            warnings: None,
        });
    }
    Trace {
        trace_id,
        spans: out,
        processes: processes
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("p{}", i + 1), p))
            .collect(),
        warnings: None,
    }
}

/// Jaeger's operation entry of `/api/operations`.
#[derive(Debug, Serialize)]
pub struct OperationEntry {
    /// Span name.
    pub name: String,
    /// `server`, `client`, ... or `""` when unspecified.
    #[serde(rename = "spanKind")]
    pub span_kind: &'static str,
}

/// Jaeger's DependencyLink plus `errorCount`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// Calling service.
    pub parent: String,
    /// Called service.
    pub child: String,
    /// Calls.
    pub call_count: u64,
    /// Calls whose child span has status Error.
    pub error_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_print_and_parse_as_jaeger_does() {
        let mut id = [0u8; 16];
        id[15] = 0xab;
        assert_eq!(trace_id(&id), "00000000000000ab");
        id[0] = 0x01;
        assert_eq!(trace_id(&id), "010000000000000000000000000000ab");
        assert_eq!(parse_trace_id("ab").map(|i| i[15]), Some(0xab));
        assert_eq!(parse_trace_id("010000000000000000000000000000AB"), Some(id));
        assert_eq!(parse_trace_id("xyz"), None);
        assert_eq!(parse_trace_id(&"1".repeat(33)), None);
        assert_eq!(parse_trace_id(""), None);
    }

    #[test]
    fn attributes_keep_their_jaeger_types() {
        let kv = |v: Any| OtlpKeyValue {
            key: "k".into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        assert_eq!(attribute_tag(&kv(Any::IntValue(7))).value_type, "int64");
        assert_eq!(
            attribute_tag(&kv(Any::DoubleValue(1.5))).value_type,
            "float64"
        );
        assert_eq!(
            attribute_tag(&kv(Any::BoolValue(true))).value,
            Value::Bool(true)
        );
        let bytes = attribute_tag(&kv(Any::BytesValue(vec![1, 2, 3])));
        assert_eq!(
            (bytes.value_type, bytes.value),
            ("binary", Value::from("AQID"))
        );
        let nan = attribute_tag(&kv(Any::DoubleValue(f64::NAN)));
        assert_eq!(nan.value_type, "string");
    }

    #[test]
    fn kinds_round_trip() {
        for k in 1..=5 {
            assert_eq!(kind_name(k).and_then(kind_value), Some(k));
        }
        assert_eq!(kind_name(0), None);
        assert_eq!(kind_value("SERVER"), Some(2));
        assert_eq!(kind_value("bogus"), None);
    }
}
