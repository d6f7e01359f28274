//! The `_bulk` request body (NDJSON: an action line and a document line per item) and
//! the per-item answer.

use super::config::MappingMode;
use super::document::{self, DataStream};
use bytes::Bytes;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde::Deserialize;
use std::ops::Range;
use teletrace_core::json_writer as json;
use teletrace_core::span_json;

/// Turns decoded spans into `_bulk` bodies.
#[derive(Debug, Clone)]
pub struct BulkEncoder {
    mode: MappingMode,
    /// `{"index":{"_index":"...","_id":"` (or `create` for a data stream).
    action_prefix: Vec<u8>,
    data_stream: Option<DataStream>,
}

/// One document of a bulk body: which span it belongs to and where its two lines are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The span's position in the batch (a span event document shares its span's).
    pub span: usize,
    /// Byte range of the action and document lines (newlines included) in the body.
    pub bytes: Range<usize>,
}

/// A `_bulk` body and the documents in it, in order.
#[derive(Debug, Clone, Default)]
pub struct BulkChunk {
    /// NDJSON.
    pub body: Bytes,
    /// Documents, in body order (the answer lists them in the same order).
    pub items: Vec<Item>,
}

impl BulkChunk {
    /// A body holding only the items at `positions` (in that order), to resend them.
    pub fn subset(&self, positions: &[usize]) -> BulkChunk {
        let mut body = Vec::new();
        let mut items = Vec::with_capacity(positions.len());
        for &p in positions {
            let Some(item) = self.items.get(p) else {
                continue;
            };
            let start = body.len();
            body.extend_from_slice(&self.body[item.bytes.clone()]);
            items.push(Item {
                span: item.span,
                bytes: start..body.len(),
            });
        }
        BulkChunk {
            body: body.into(),
            items,
        }
    }
}

impl BulkEncoder {
    /// An encoder writing into `index` in `mode`. A data stream name
    /// (`traces-<dataset>-<namespace>`) gets `create` actions (the only kind a data stream
    /// takes); a plain index gets `index`, so a resent document replaces itself.
    pub fn new(mode: MappingMode, index: &str) -> Self {
        let data_stream = DataStream::parse(index);
        let op = if data_stream.is_some() {
            "create"
        } else {
            "index"
        };
        let mut action_prefix = Vec::new();
        action_prefix.extend_from_slice(b"{\"");
        action_prefix.extend_from_slice(op.as_bytes());
        action_prefix.extend_from_slice(b"\":{\"_index\":");
        json::string(&mut action_prefix, index);
        action_prefix.extend_from_slice(b",\"_id\":\"");
        BulkEncoder {
            mode,
            action_prefix,
            data_stream: data_stream.filter(|_| mode == MappingMode::Otel),
        }
    }

    /// True when documents are sent with `create` (a data stream): a 409 answer then
    /// means the document is already stored.
    pub fn uses_create(&self) -> bool {
        self.action_prefix.starts_with(b"{\"create\"")
    }

    /// Encodes every span of `resource_spans`, cutting a new body whenever one reaches
    /// `max_bytes` (a single larger document still goes, alone).
    pub fn encode(
        &self,
        resource_spans: &[ResourceSpans],
        ingestion_ns: u64,
        max_bytes: usize,
    ) -> Vec<BulkChunk> {
        let mut chunks = Vec::new();
        let mut body: Vec<u8> = Vec::new();
        let mut items: Vec<Item> = Vec::new();
        let mut span_index = 0usize;
        let mut resource_part = Vec::new();
        let mut scope_part = Vec::new();
        let empty_resource = Default::default();
        let empty_scope = Default::default();
        for rs in resource_spans {
            let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
            resource_part.clear();
            match self.mode {
                MappingMode::Teletrace => span_json::write_resource(&mut resource_part, resource),
                MappingMode::Otel => {
                    document::otel_resource(&mut resource_part, resource, &rs.schema_url)
                }
            }
            for ss in &rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
                scope_part.clear();
                match self.mode {
                    MappingMode::Teletrace => span_json::write_scope(&mut scope_part, scope),
                    MappingMode::Otel => {
                        document::otel_scope(&mut scope_part, scope, &ss.schema_url)
                    }
                }
                for span in &ss.spans {
                    let start = body.len();
                    self.action(&mut body, &span.trace_id, &span.span_id, None);
                    match self.mode {
                        MappingMode::Teletrace => document::teletrace_span(
                            &mut body,
                            &resource_part,
                            &scope_part,
                            span,
                            ingestion_ns,
                        ),
                        MappingMode::Otel => document::otel_span(
                            &mut body,
                            &resource_part,
                            &scope_part,
                            span,
                            self.data_stream.as_ref(),
                        ),
                    }
                    body.push(b'\n');
                    items.push(Item {
                        span: span_index,
                        bytes: start..body.len(),
                    });
                    if self.mode == MappingMode::Otel {
                        for e in 0..span.events.len() {
                            let start = body.len();
                            self.action(&mut body, &span.trace_id, &span.span_id, Some(e));
                            document::otel_span_event(
                                &mut body,
                                &resource_part,
                                &scope_part,
                                span,
                                e,
                                self.data_stream.as_ref(),
                            );
                            body.push(b'\n');
                            items.push(Item {
                                span: span_index,
                                bytes: start..body.len(),
                            });
                        }
                    }
                    span_index += 1;
                    if body.len() >= max_bytes {
                        chunks.push(BulkChunk {
                            body: std::mem::take(&mut body).into(),
                            items: std::mem::take(&mut items),
                        });
                    }
                }
            }
        }
        if !items.is_empty() {
            chunks.push(BulkChunk {
                body: body.into(),
                items,
            });
        }
        chunks
    }

    /// The action line. `_id` is the trace ID and span ID in hex (48 digits; an event
    /// document adds `-e<index>`), so a resent document lands on itself.
    fn action(&self, out: &mut Vec<u8>, trace_id: &[u8], span_id: &[u8], event: Option<usize>) {
        out.extend_from_slice(&self.action_prefix);
        json::hex_raw(out, trace_id);
        json::hex_raw(out, span_id);
        if let Some(e) = event {
            out.extend_from_slice(b"-e");
            json::uint(out, e as u64);
        }
        out.extend_from_slice(b"\"}}\n");
    }
}

/// The document ID the exporter gives a span: trace ID and span ID in lowercase hex.
pub fn document_id(trace_id: &[u8], span_id: &[u8]) -> String {
    let mut out = Vec::with_capacity(48);
    json::hex_raw(&mut out, trace_id);
    json::hex_raw(&mut out, span_id);
    String::from_utf8(out).unwrap_or_default()
}

/// The `_bulk` answer, as much of it as the exporter reads (the request asks for no more
/// with `filter_path`).
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    /// True when at least one item failed.
    #[serde(default)]
    pub errors: bool,
    /// One entry per document, in request order: `{"<action>": {...}}`.
    #[serde(default)]
    pub items: Vec<std::collections::HashMap<String, ItemResult>>,
}

/// The answer for one document.
#[derive(Debug, Deserialize)]
pub struct ItemResult {
    /// HTTP status of this document.
    pub status: u16,
    /// Elasticsearch's error, when it failed.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

impl ItemResult {
    /// `type: reason` of the error (or the status when there is none).
    pub fn reason(&self) -> String {
        match &self.error {
            Some(serde_json::Value::Object(e)) => {
                let kind = e.get("type").and_then(|v| v.as_str()).unwrap_or("error");
                let reason = e.get("reason").and_then(|v| v.as_str()).unwrap_or("");
                format!("{kind}: {reason}")
            }
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => format!("status {}", self.status),
        }
    }
}

/// What happens to a document given its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Stored (or, for `create`, already there).
    Stored,
    /// Throttled (429) or a server-side failure (5xx): send it again.
    Retry,
    /// Refused for good (4xx): counted and logged.
    Rejected,
}

/// Classifies one document's status.
pub fn classify(status: u16, uses_create: bool) -> ItemOutcome {
    match status {
        200..=299 => ItemOutcome::Stored,
        409 if uses_create => ItemOutcome::Stored,
        429 | 500..=599 => ItemOutcome::Retry,
        _ => ItemOutcome::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    fn spans(n: usize) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: (0..n)
                    .map(|i| Span {
                        trace_id: vec![1; 16],
                        span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                        name: format!("s{i}"),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    #[test]
    fn chunks_cut_at_the_size_limit_and_subsets_keep_lines() {
        let encoder = BulkEncoder::new(MappingMode::Teletrace, "idx");
        let all = encoder.encode(&spans(10), 0, usize::MAX);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].items.len(), 10);
        let one_size = all[0].items[0].bytes.len();
        let cut = encoder.encode(&spans(10), 0, one_size * 3);
        assert_eq!(cut.len(), 4);
        assert_eq!(
            cut.iter().map(|c| c.items.len()).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        assert_eq!(cut[3].items[0].span, 9);
        let sub = all[0].subset(&[2, 5]);
        let text = String::from_utf8(sub.body.to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with(r#"{"index":{"_index":"idx","_id":"0101"#));
        assert!(lines[1].contains(r#""name":"s2""#));
        assert!(lines[3].contains(r#""name":"s5""#));
    }

    #[test]
    fn data_streams_get_create() {
        assert!(BulkEncoder::new(MappingMode::Otel, "traces-generic.otel-default").uses_create());
        assert!(!BulkEncoder::new(MappingMode::Teletrace, "teletrace-traces").uses_create());
        assert_eq!(classify(409, true), ItemOutcome::Stored);
        assert_eq!(classify(409, false), ItemOutcome::Rejected);
        assert_eq!(classify(429, false), ItemOutcome::Retry);
        assert_eq!(classify(503, false), ItemOutcome::Retry);
        assert_eq!(classify(400, false), ItemOutcome::Rejected);
        assert_eq!(classify(201, false), ItemOutcome::Stored);
    }
}
