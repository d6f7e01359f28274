//! Text renderings of a batch, in the OpenTelemetry Collector's debug exporter styles.
//! Pure functions returning `String`, so the output is tested without a logger.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, Span};
use std::fmt::Write as _;
use std::time::Duration;
use teletrace_core::Traces;

/// What the basic verbosity prints: counts known without decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of `ResourceSpans` in the batch.
    pub resource_spans: usize,
    /// Number of spans.
    pub spans: usize,
}

/// Counts what the basic line needs, without decoding: [`Traces`] knows its span count
/// and counts its resources from the encoded framing.
pub fn summarize(traces: &Traces) -> Summary {
    Summary {
        resource_spans: traces.resource_count(),
        spans: traces.span_count(),
    }
}

/// The basic line, in the collector's style: `Traces {"resource spans": 1, "spans": 2}`
/// (the collector's message is `TracesExporter`).
pub fn basic_line(summary: &Summary) -> String {
    format!(
        "Traces {{\"resource spans\": {}, \"spans\": {}}}",
        summary.resource_spans, summary.spans
    )
}

/// The normal verbosity: one line per span (see [`normal_line`]), lines separated by `\n`.
pub fn normal_text(resource_spans: &[ResourceSpans]) -> String {
    let mut out = String::new();
    for r in resource_spans {
        for s in &r.scope_spans {
            for span in &s.spans {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&normal_line(span));
            }
        }
    }
    out
}

/// One span on one line: name, trace ID, span ID (as the collector's normal verbosity),
/// then kind, duration, status (with its message when set) and the attributes as
/// `key=value`.
///
/// `checkout 0102…0f10 1112131415161718 kind=Server duration=1.5ms status=Error("boom") http.method=GET`
pub fn normal_line(span: &Span) -> String {
    let mut line = format!(
        "{} {} {} kind={} duration={:?} status={}",
        span.name,
        format_id(&span.trace_id),
        format_id(&span.span_id),
        kind_name(span.kind),
        Duration::from_nanos(
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
        ),
        status_code_name(span.status.as_ref().map_or(0, |s| s.code)),
    );
    if let Some(status) = span.status.as_ref().filter(|s| !s.message.is_empty()) {
        let _ = write!(line, "({:?})", status.message);
    }
    for kv in &span.attributes {
        let _ = write!(line, " {}={}", kv.key, value_as_string(kv.value.as_ref()));
    }
    line
}

/// The detailed verbosity: everything, in the collector's multi-line layout
/// (`ResourceSpans #0`, `Resource attributes:`, `ScopeSpans #0`, `Span #0`, `Trace ID
/// : …`, `Attributes:` with `-> key: Type(value)`, `Events:`, `Links:`). Ends without a
/// trailing newline.
pub fn detailed_text(resource_spans: &[ResourceSpans]) -> String {
    let mut b = Text::default();
    for (i, r) in resource_spans.iter().enumerate() {
        b.line(format_args!("ResourceSpans #{i}"));
        b.line(format_args!("Resource SchemaURL: {}", r.schema_url));
        if let Some(resource) = &r.resource {
            b.attributes("Resource attributes", &resource.attributes);
        }
        for (j, s) in r.scope_spans.iter().enumerate() {
            b.line(format_args!("ScopeSpans #{j}"));
            b.line(format_args!("ScopeSpans SchemaURL: {}", s.schema_url));
            b.scope(s.scope.as_ref());
            for (k, span) in s.spans.iter().enumerate() {
                b.line(format_args!("Span #{k}"));
                b.span(span);
            }
        }
    }
    let mut text = b.0;
    if text.ends_with('\n') {
        text.pop();
    }
    text
}

/// The collector's `dataBuffer`: one entry per line.
#[derive(Default)]
struct Text(String);

impl Text {
    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        let _ = self.0.write_fmt(args);
        self.0.push('\n');
    }

    /// `    Name           : value` (the label padded to 15).
    fn field(&mut self, label: &str, value: impl std::fmt::Display) {
        self.line(format_args!("    {label:<15}: {value}"));
    }

    /// `Header:` then `     -> key: Type(value)`; for a header itself starting with
    /// `->`-style indentation (`     -> Attributes:`), the entries move right by it.
    fn attributes(&mut self, header: &str, attributes: &[KeyValue]) {
        if attributes.is_empty() {
            return;
        }
        self.line(format_args!("{header}:"));
        let prefix = match header.split_once("->") {
            Some((indent, _)) => format!("{indent}     ->"),
            None => "     ->".to_string(),
        };
        for kv in attributes {
            self.line(format_args!(
                "{prefix} {}: {}",
                kv.key,
                typed_value(kv.value.as_ref())
            ));
        }
    }

    fn scope(&mut self, scope: Option<&InstrumentationScope>) {
        let (name, version) = scope.map_or(("", ""), |s| (s.name.as_str(), s.version.as_str()));
        self.line(format_args!("InstrumentationScope {name} {version}"));
        if let Some(scope) = scope {
            self.attributes("InstrumentationScope attributes", &scope.attributes);
        }
    }

    fn span(&mut self, span: &Span) {
        self.field("Trace ID", format_id(&span.trace_id));
        self.field("Parent ID", format_id(&span.parent_span_id));
        self.field("ID", format_id(&span.span_id));
        self.field("Name", &span.name);
        self.field("Kind", kind_name(span.kind));
        if !span.trace_state.is_empty() {
            self.field("TraceState", &span.trace_state);
        }
        self.field("Start time", format_timestamp(span.start_time_unix_nano));
        self.field("End time", format_timestamp(span.end_time_unix_nano));
        let (code, message) = span
            .status
            .as_ref()
            .map_or((0, ""), |s| (s.code, s.message.as_str()));
        self.field("Status code", status_code_name(code));
        self.field("Status message", message);
        self.field("DroppedAttributesCount", span.dropped_attributes_count);
        self.field("DroppedEventsCount", span.dropped_events_count);
        self.field("DroppedLinksCount", span.dropped_links_count);
        self.attributes("Attributes", &span.attributes);
        self.events(&span.events);
        self.links(&span.links);
    }

    fn events(&mut self, events: &[span::Event]) {
        if events.is_empty() {
            return;
        }
        self.line(format_args!("Events:"));
        for (i, e) in events.iter().enumerate() {
            self.line(format_args!("SpanEvent #{i}"));
            self.line(format_args!("     -> Name: {}", e.name));
            self.line(format_args!(
                "     -> Timestamp: {}",
                format_timestamp(e.time_unix_nano)
            ));
            self.line(format_args!(
                "     -> DroppedAttributesCount: {}",
                e.dropped_attributes_count
            ));
            self.attributes("     -> Attributes:", &e.attributes);
        }
    }

    fn links(&mut self, links: &[span::Link]) {
        if links.is_empty() {
            return;
        }
        self.line(format_args!("Links:"));
        for (i, l) in links.iter().enumerate() {
            self.line(format_args!("SpanLink #{i}"));
            self.line(format_args!("     -> Trace ID: {}", format_id(&l.trace_id)));
            self.line(format_args!("     -> ID: {}", format_id(&l.span_id)));
            self.line(format_args!("     -> TraceState: {}", l.trace_state));
            self.line(format_args!(
                "     -> DroppedAttributesCount: {}",
                l.dropped_attributes_count
            ));
            self.attributes("     -> Attributes:", &l.attributes);
        }
    }
}

/// A trace or span ID in lowercase hex; empty when the ID is absent or all zeros (as the
/// collector prints an empty ID).
pub fn format_id(id: &[u8]) -> String {
    if id.iter().all(|&b| b == 0) {
        return String::new();
    }
    let mut out = String::with_capacity(id.len() * 2);
    for b in id {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The span kind as the collector names it (`Unspecified`, `Internal`, `Server`,
/// `Client`, `Producer`, `Consumer`).
pub fn kind_name(kind: i32) -> String {
    match kind {
        0 => "Unspecified".into(),
        1 => "Internal".into(),
        2 => "Server".into(),
        3 => "Client".into(),
        4 => "Producer".into(),
        5 => "Consumer".into(),
        other => format!("SpanKind({other})"),
    }
}

/// The status code as the collector names it (`Unset`, `Ok`, `Error`).
pub fn status_code_name(code: i32) -> String {
    match code {
        0 => "Unset".into(),
        1 => "Ok".into(),
        2 => "Error".into(),
        other => format!("StatusCode({other})"),
    }
}

/// Nanoseconds since the Unix epoch as Go prints a UTC time:
/// `2020-02-11 20:26:12.000000321 +0000 UTC` (fraction without trailing zeros, and no
/// fraction when it is zero).
pub fn format_timestamp(unix_nanos: u64) -> String {
    let secs = unix_nanos / 1_000_000_000;
    let nanos = unix_nanos % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A value as the collector's detailed output shows it: `Type(value)`, with the pdata
/// type names `Str`, `Int`, `Double`, `Bool`, `Map`, `Slice`, `Bytes`, `Empty`.
pub fn typed_value(value: Option<&AnyValue>) -> String {
    let type_name = match value.and_then(|v| v.value.as_ref()) {
        None => "Empty",
        Some(any_value::Value::StringValue(_)) => "Str",
        Some(any_value::Value::BoolValue(_)) => "Bool",
        Some(any_value::Value::IntValue(_)) => "Int",
        Some(any_value::Value::DoubleValue(_)) => "Double",
        Some(any_value::Value::ArrayValue(_)) => "Slice",
        Some(any_value::Value::KvlistValue(_)) => "Map",
        Some(any_value::Value::BytesValue(_)) => "Bytes",
        Some(any_value::Value::StringValueStrindex(_)) => "Strindex",
    };
    format!("{type_name}({})", value_as_string(value))
}

/// A value as text, as pdata's `AsString`: strings as they are, numbers and booleans in
/// their usual form, bytes in base64, maps and slices as JSON, empty as nothing.
pub fn value_as_string(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => format_double(*d),
        Some(any_value::Value::BytesValue(b)) => base64(b),
        Some(any_value::Value::StringValueStrindex(i)) => i.to_string(),
        Some(v @ (any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_))) => {
            to_json(Some(v)).to_string()
        }
    }
}

fn to_json(value: Option<&any_value::Value>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        None => J::Null,
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(base64(b)),
        Some(any_value::Value::StringValueStrindex(i)) => J::from(*i),
        Some(any_value::Value::ArrayValue(a)) => {
            J::Array(a.values.iter().map(|v| to_json(v.value.as_ref())).collect())
        }
        Some(any_value::Value::KvlistValue(m)) => J::Object(
            m.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        to_json(kv.value.as_ref().and_then(|v| v.value.as_ref())),
                    )
                })
                .collect(),
        ),
    }
}

/// A double as Go's pdata prints it: plain decimal, exponent form below 1e-6 and from
/// 1e21 (`1e-7`, `1e+21`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let abs = d.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{d:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
            _ => text,
        }
    } else {
        format!("{d}")
    }
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
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
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Status};
    use prost::Message;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn str_kv(key: &str, value: &str) -> KeyValue {
        kv(key, any_value::Value::StringValue(value.into()))
    }

    /// The collector's own test span (`two_spans.out`), with attributes added.
    fn known_span() -> Span {
        Span {
            trace_id: (1..=16).collect(),
            span_id: (0x11..=0x18).collect(),
            parent_span_id: vec![],
            trace_state: "ot=th:0".into(),
            name: "operationA".into(),
            kind: 2,
            start_time_unix_nano: 1_581_452_772_000_000_321,
            end_time_unix_nano: 1_581_452_773_000_000_789,
            attributes: vec![
                str_kv("http.method", "GET"),
                kv("http.status_code", any_value::Value::IntValue(500)),
            ],
            dropped_attributes_count: 1,
            events: vec![span::Event {
                time_unix_nano: 1_581_452_773_000_000_123,
                name: "event-with-attr".into(),
                attributes: vec![str_kv("span-event-attr", "span-event-attr-val")],
                dropped_attributes_count: 2,
            }],
            dropped_events_count: 1,
            links: vec![span::Link {
                trace_id: vec![0xab; 16],
                span_id: vec![0xcd; 8],
                trace_state: String::new(),
                attributes: vec![str_kv("span-link-attr", "span-link-attr-val")],
                dropped_attributes_count: 4,
                flags: 0,
            }],
            dropped_links_count: 0,
            status: Some(Status {
                message: "status-cancelled".into(),
                code: 2,
            }),
            flags: 0,
        }
    }

    fn known_batch() -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![str_kv("resource-attr", "resource-attr-val-1")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans: vec![
                    known_span(),
                    Span {
                        name: "operationB".into(),
                        ..Default::default()
                    },
                ],
                schema_url: String::new(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.4.0".into(),
        }]
    }

    #[test]
    fn detailed_output_in_the_collectors_layout() {
        let expected = "\
ResourceSpans #0
Resource SchemaURL: https://opentelemetry.io/schemas/1.4.0
Resource attributes:
     -> resource-attr: Str(resource-attr-val-1)
ScopeSpans #0
ScopeSpans SchemaURL: 
InstrumentationScope lib 1.0
Span #0
    Trace ID       : 0102030405060708090a0b0c0d0e0f10
    Parent ID      : 
    ID             : 1112131415161718
    Name           : operationA
    Kind           : Server
    TraceState     : ot=th:0
    Start time     : 2020-02-11 20:26:12.000000321 +0000 UTC
    End time       : 2020-02-11 20:26:13.000000789 +0000 UTC
    Status code    : Error
    Status message : status-cancelled
    DroppedAttributesCount: 1
    DroppedEventsCount: 1
    DroppedLinksCount: 0
Attributes:
     -> http.method: Str(GET)
     -> http.status_code: Int(500)
Events:
SpanEvent #0
     -> Name: event-with-attr
     -> Timestamp: 2020-02-11 20:26:13.000000123 +0000 UTC
     -> DroppedAttributesCount: 2
     -> Attributes::
          -> span-event-attr: Str(span-event-attr-val)
Links:
SpanLink #0
     -> Trace ID: abababababababababababababababab
     -> ID: cdcdcdcdcdcdcdcd
     -> TraceState: 
     -> DroppedAttributesCount: 4
     -> Attributes::
          -> span-link-attr: Str(span-link-attr-val)
Span #1
    Trace ID       : 
    Parent ID      : 
    ID             : 
    Name           : operationB
    Kind           : Unspecified
    Start time     : 1970-01-01 00:00:00 +0000 UTC
    End time       : 1970-01-01 00:00:00 +0000 UTC
    Status code    : Unset
    Status message : 
    DroppedAttributesCount: 0
    DroppedEventsCount: 0
    DroppedLinksCount: 0";
        assert_eq!(detailed_text(&known_batch()), expected);
    }

    #[test]
    fn normal_output_is_one_line_per_span() {
        assert_eq!(
            normal_text(&known_batch()),
            "operationA 0102030405060708090a0b0c0d0e0f10 1112131415161718 kind=Server \
             duration=1.000000468s status=Error(\"status-cancelled\") http.method=GET \
             http.status_code=500\n\
             operationB   kind=Unspecified duration=0ns status=Unset"
        );
    }

    #[test]
    fn basic_line_counts_without_decoding() {
        let bytes = ExportTraceServiceRequest {
            resource_spans: vec![known_batch()[0].clone(), known_batch()[0].clone()],
        }
        .encode_to_vec();
        let traces = Traces::from_encoded(bytes.into()).unwrap();
        let summary = summarize(&traces);
        assert!(traces.is_encoded(), "summarizing never decodes");
        assert_eq!(
            summary,
            Summary {
                resource_spans: 2,
                spans: 4
            }
        );
        assert_eq!(
            basic_line(&summary),
            "Traces {\"resource spans\": 2, \"spans\": 4}"
        );
        let decoded = Traces::new(known_batch());
        assert_eq!(
            basic_line(&summarize(&decoded)),
            "Traces {\"resource spans\": 1, \"spans\": 2}"
        );
    }

    #[test]
    fn timestamps_print_as_go_does() {
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            format_timestamp(1_699_678_143_509_493_770),
            "2023-11-11 04:49:03.50949377 +0000 UTC"
        );
        assert_eq!(
            format_timestamp(951_782_400_500_000_000),
            "2000-02-29 00:00:00.5 +0000 UTC"
        );
        assert_eq!(
            format_timestamp(4_102_444_799_000_000_000),
            "2099-12-31 23:59:59 +0000 UTC"
        );
    }

    #[test]
    fn values_print_as_pdata_does() {
        let v = |value| Some(AnyValue { value: Some(value) });
        assert_eq!(typed_value(None), "Empty()");
        assert_eq!(
            typed_value(v(any_value::Value::BoolValue(true)).as_ref()),
            "Bool(true)"
        );
        assert_eq!(
            typed_value(v(any_value::Value::DoubleValue(1.5)).as_ref()),
            "Double(1.5)"
        );
        assert_eq!(
            typed_value(v(any_value::Value::DoubleValue(100.0)).as_ref()),
            "Double(100)"
        );
        assert_eq!(format_double(1e-7), "1e-7");
        assert_eq!(format_double(1e21), "1e+21");
        assert_eq!(format_double(f64::NAN), "NaN");
        assert_eq!(
            typed_value(v(any_value::Value::BytesValue(b"hello".to_vec())).as_ref()),
            "Bytes(aGVsbG8=)"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        let array = any_value::Value::ArrayValue(ArrayValue {
            values: vec![
                AnyValue {
                    value: Some(any_value::Value::StringValue("a".into())),
                },
                AnyValue {
                    value: Some(any_value::Value::IntValue(1)),
                },
            ],
        });
        assert_eq!(typed_value(v(array).as_ref()), "Slice([\"a\",1])");
        let map = any_value::Value::KvlistValue(KeyValueList {
            values: vec![kv("k", any_value::Value::BoolValue(false))],
        });
        assert_eq!(typed_value(v(map).as_ref()), "Map({\"k\":false})");
    }

    #[test]
    fn ids_and_enums() {
        assert_eq!(format_id(&[]), "");
        assert_eq!(format_id(&[0; 8]), "");
        assert_eq!(format_id(&[0, 0xff]), "00ff");
        assert_eq!(kind_name(3), "Client");
        assert_eq!(kind_name(9), "SpanKind(9)");
        assert_eq!(status_code_name(1), "Ok");
    }
}
