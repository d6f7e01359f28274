//! The two document shapes, written straight from OTLP structs into the bulk buffer.
//!
//! - **teletrace**: the JSON of a span in the query API (`teletrace_core::span_json`):
//!   `resource`, `scope`, `span` (with events and links, IDs in hex, kind and status code
//!   as OTLP numbers, times in ns), `externalFields.durationNano`,
//!   `ingestionTimeUnixNano`, plus `@timestamp` (the start time) for search.
//!   A future Elasticsearch reader can return `_source` as is, minus `@timestamp`.
//! - **otel**: the collector's elasticsearch exporter in `mapping::mode: otel`
//!   (`@timestamp`, `data_stream`, `trace_id`, `span_id`, `parent_span_id`, `name`, `kind`,
//!   `duration`, `attributes`, `links`, `status`, `resource`, `scope`, ...), with each span
//!   event as a document of its own, as the collector writes them.
//!
//! The resource and scope parts are the same for every span under them, so they are
//! written once per resource / scope and copied into each document.

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, Span};
use teletrace_core::json_writer::{self as json, ValueStyle};
use teletrace_core::span_json;

/// Attributes the collector's otel mode keeps out of `attributes` (they steer routing).
const OTEL_RESERVED_ATTRIBUTES: &[&str] = &[
    "data_stream.type",
    "data_stream.dataset",
    "data_stream.namespace",
    "elasticsearch.mapping.hints",
    "elasticsearch.mapping.mode",
    "elasticsearch.document_id",
    "elasticsearch.document_pipeline",
    "elasticsearch.index",
];

/// The `data_stream` fields of a data stream named `type-dataset-namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStream {
    /// `traces` or `logs`, ...
    pub kind: String,
    /// e.g. `generic.otel`.
    pub dataset: String,
    /// e.g. `default`.
    pub namespace: String,
}

impl DataStream {
    /// Splits a data stream name (`traces-generic.otel-default`); `None` for a plain index.
    pub fn parse(index: &str) -> Option<DataStream> {
        let (kind, rest) = index.split_once('-')?;
        let (dataset, namespace) = rest.rsplit_once('-')?;
        let known = matches!(kind, "traces" | "logs" | "metrics");
        (known && !dataset.is_empty() && !namespace.is_empty()).then(|| DataStream {
            kind: kind.to_string(),
            dataset: dataset.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

/// One span in the teletrace shape (the query API's, [`span_json`]) with `@timestamp`
/// in front; `resource` and `scope` are the parts written once per resource and scope
/// (`span_json::write_resource`, `span_json::write_scope`).
pub fn teletrace_span(
    out: &mut Vec<u8>,
    resource: &[u8],
    scope: &[u8],
    span: &Span,
    ingestion_ns: u64,
) {
    out.extend_from_slice(b"{\"@timestamp\":");
    json::epoch_millis_nanos(out, span.start_time_unix_nano);
    out.push(b',');
    span_json::write_fields(
        out,
        |out| out.extend_from_slice(resource),
        |out| out.extend_from_slice(scope),
        span,
        duration_ns(span),
        ingestion_ns,
    );
    out.push(b'}');
}

/// End minus start, 0 when the end comes first.
pub fn duration_ns(span: &Span) -> u64 {
    span.end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano)
}

fn skip_empty_string(out: &mut Vec<u8>, name: &str, value: &str) {
    if !value.is_empty() {
        out.push(b',');
        json::key(out, name);
        json::string(out, value);
    }
}

fn skip_zero(out: &mut Vec<u8>, name: &str, value: u32) {
    if value != 0 {
        out.push(b',');
        json::key(out, name);
        json::uint(out, value.into());
    }
}

fn skip_empty_id(out: &mut Vec<u8>, name: &str, id: &[u8]) {
    if id.iter().any(|b| *b != 0) {
        out.push(b',');
        json::key(out, name);
        json::hex_string(out, id);
    }
}

fn otel_attributes(out: &mut Vec<u8>, attrs: &[KeyValue]) {
    if !attrs.is_empty() {
        out.extend_from_slice(b",\"attributes\":");
        json::attributes_except(out, attrs, ValueStyle::Otel, 0, OTEL_RESERVED_ATTRIBUTES);
    }
}

/// `,"resource":{...}` of the otel shape (leading comma included), written once per
/// resource.
pub fn otel_resource(out: &mut Vec<u8>, resource: &Resource, schema_url: &str) {
    out.extend_from_slice(b",\"resource\":{");
    let start = out.len();
    skip_empty_string(out, "schema_url", schema_url);
    otel_attributes(out, &resource.attributes);
    skip_zero(
        out,
        "dropped_attributes_count",
        resource.dropped_attributes_count,
    );
    drop_leading_comma(out, start);
    out.push(b'}');
}

/// `,"scope":{...}` of the otel shape (leading comma included), written once per scope.
pub fn otel_scope(out: &mut Vec<u8>, scope: &InstrumentationScope, schema_url: &str) {
    out.extend_from_slice(b",\"scope\":{");
    let start = out.len();
    skip_empty_string(out, "schema_url", schema_url);
    skip_empty_string(out, "name", &scope.name);
    skip_empty_string(out, "version", &scope.version);
    otel_attributes(out, &scope.attributes);
    skip_zero(
        out,
        "dropped_attributes_count",
        scope.dropped_attributes_count,
    );
    drop_leading_comma(out, start);
    out.push(b'}');
}

/// Object members are written with a leading comma; the first one loses it.
fn drop_leading_comma(out: &mut Vec<u8>, start: usize) {
    if out.get(start) == Some(&b',') {
        out.remove(start);
    }
}

/// `{"@timestamp":...,"data_stream":{...}` — the head every otel document starts with.
fn otel_head(out: &mut Vec<u8>, time_ns: u64, data_stream: Option<&DataStream>) {
    out.extend_from_slice(b"{\"@timestamp\":");
    json::epoch_millis_nanos(out, time_ns);
    if let Some(ds) = data_stream {
        out.extend_from_slice(b",\"data_stream\":{\"type\":");
        json::string(out, &ds.kind);
        out.extend_from_slice(b",\"dataset\":");
        json::string(out, &ds.dataset);
        out.extend_from_slice(b",\"namespace\":");
        json::string(out, &ds.namespace);
        out.push(b'}');
    }
}

/// The collector's (pdata's) name of a span kind.
pub fn otel_kind(kind: i32) -> &'static str {
    match span::SpanKind::try_from(kind) {
        Ok(span::SpanKind::Internal) => "Internal",
        Ok(span::SpanKind::Server) => "Server",
        Ok(span::SpanKind::Client) => "Client",
        Ok(span::SpanKind::Producer) => "Producer",
        Ok(span::SpanKind::Consumer) => "Consumer",
        _ => "Unspecified",
    }
}

/// The collector's (pdata's) name of a status code.
pub fn otel_status_code(code: i32) -> &'static str {
    match code {
        1 => "Ok",
        2 => "Error",
        _ => "Unset",
    }
}

/// One span in the otel shape; `resource` and `scope` are the pre-written parts.
pub fn otel_span(
    out: &mut Vec<u8>,
    resource: &[u8],
    scope: &[u8],
    span: &Span,
    data_stream: Option<&DataStream>,
) {
    otel_head(out, span.start_time_unix_nano, data_stream);
    skip_empty_id(out, "trace_id", &span.trace_id);
    skip_empty_id(out, "span_id", &span.span_id);
    skip_empty_string(out, "trace_state", &span.trace_state);
    skip_empty_id(out, "parent_span_id", &span.parent_span_id);
    skip_empty_string(out, "name", &span.name);
    skip_empty_string(out, "kind", otel_kind(span.kind));
    out.extend_from_slice(b",\"duration\":");
    json::uint(out, duration_ns(span));
    otel_attributes(out, &span.attributes);
    skip_zero(
        out,
        "dropped_attributes_count",
        span.dropped_attributes_count,
    );
    skip_zero(out, "dropped_events_count", span.dropped_events_count);
    out.extend_from_slice(b",\"links\":[");
    for (i, link) in span.links.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        let start = out.len();
        skip_empty_id(out, "trace_id", &link.trace_id);
        skip_empty_id(out, "span_id", &link.span_id);
        skip_empty_string(out, "trace_state", &link.trace_state);
        otel_attributes(out, &link.attributes);
        skip_zero(
            out,
            "dropped_attributes_count",
            link.dropped_attributes_count,
        );
        drop_leading_comma(out, start);
        out.push(b'}');
    }
    out.push(b']');
    skip_zero(out, "dropped_links_count", span.dropped_links_count);
    let (message, code) = span
        .status
        .as_ref()
        .map_or(("", 0), |s| (s.message.as_str(), s.code));
    out.extend_from_slice(b",\"status\":{");
    let start = out.len();
    skip_empty_string(out, "message", message);
    skip_empty_string(out, "code", otel_status_code(code));
    drop_leading_comma(out, start);
    out.push(b'}');
    out.extend_from_slice(resource);
    out.extend_from_slice(scope);
    out.push(b'}');
}

/// Event `index` of `span` as a document of its own (the collector's otel mode), with
/// the event name also under `attributes["event.name"]`.
pub fn otel_span_event(
    out: &mut Vec<u8>,
    resource: &[u8],
    scope: &[u8],
    span: &Span,
    index: usize,
    data_stream: Option<&DataStream>,
) {
    let Some(event) = span.events.get(index) else {
        return;
    };
    otel_head(out, event.time_unix_nano, data_stream);
    skip_empty_id(out, "trace_id", &span.trace_id);
    skip_empty_id(out, "span_id", &span.span_id);
    skip_zero(
        out,
        "dropped_attributes_count",
        event.dropped_attributes_count,
    );
    skip_empty_string(out, "event_name", &event.name);
    if !event.name.is_empty() {
        out.extend_from_slice(b",\"attributes\":");
        let mut skip: Vec<&str> = OTEL_RESERVED_ATTRIBUTES.to_vec();
        skip.push("event.name");
        let len = out.len();
        json::attributes_except(out, &event.attributes, ValueStyle::Otel, 0, &skip);
        // Reopen the object to add the name last.
        out.pop();
        if out.len() > len + 1 {
            out.push(b',');
        }
        json::key(out, "event.name");
        json::string(out, &event.name);
        out.push(b'}');
    } else {
        otel_attributes(out, &event.attributes);
    }
    out.extend_from_slice(resource);
    out.extend_from_slice(scope);
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stream_names() {
        let ds = DataStream::parse("traces-generic.otel-default").unwrap();
        assert_eq!(
            (ds.kind.as_str(), ds.dataset.as_str(), ds.namespace.as_str()),
            ("traces", "generic.otel", "default")
        );
        assert!(DataStream::parse("teletrace-traces").is_none());
        assert!(DataStream::parse("traces-x").is_none());
        assert!(DataStream::parse("traces--default").is_none());
    }

    #[test]
    fn kinds_and_codes_use_pdata_names() {
        assert_eq!(otel_kind(2), "Server");
        assert_eq!(otel_kind(0), "Unspecified");
        assert_eq!(otel_kind(99), "Unspecified");
        assert_eq!(otel_status_code(2), "Error");
        assert_eq!(otel_status_code(0), "Unset");
    }
}
