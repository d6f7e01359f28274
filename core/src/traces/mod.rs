//! `Traces`: the batch of spans that flows through a pipeline.
//!
//! A `Traces` owns the OTLP message either as it was received (the encoded bytes of an
//! `ExportTraceServiceRequest`) or decoded (`Vec<ResourceSpans>`), and decodes on the first
//! access that needs fields. A pipeline that only forwards (`otlp -> batch -> otlp`) never
//! decodes: the receiver validates the bytes in one pass ([`wire::scan_export_request`]),
//! the batch processor concatenates encoded requests (repeated fields of concatenated
//! protobuf messages merge), and the exporter sends the bytes.

mod frame;
pub mod json;
pub mod wire;

use bytes::{Bytes, BytesMut};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use std::collections::HashMap;

pub use wire::WireError;

/// Error raised when an encoded batch cannot be decoded into OTLP structs.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed OTLP trace data: {0}")]
pub struct DecodeError(pub String);

/// The two shapes a batch can be held in.
#[derive(Debug, Clone)]
enum Repr {
    /// The encoded body of an `ExportTraceServiceRequest`, already validated.
    Encoded(Bytes),
    /// Decoded resource spans.
    Decoded(Vec<ResourceSpans>),
}

/// A batch of spans in the pipeline: a thin owner of OTLP `ResourceSpans`.
#[derive(Debug, Clone)]
pub struct Traces {
    repr: Repr,
    span_count: usize,
}

impl Default for Traces {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl Traces {
    /// Wraps decoded resource spans.
    pub fn new(resource_spans: Vec<ResourceSpans>) -> Self {
        let span_count = count_spans(&resource_spans);
        Traces {
            repr: Repr::Decoded(resource_spans),
            span_count,
        }
    }

    /// Wraps the encoded body of an `ExportTraceServiceRequest` after validating its
    /// framing, field types, UTF-8 strings and ID lengths in one pass, so that a later
    /// decode cannot fail.
    pub fn from_encoded(bytes: Bytes) -> Result<Self, WireError> {
        let span_count = wire::scan_export_request(&bytes)?;
        Ok(Traces {
            repr: Repr::Encoded(bytes),
            span_count,
        })
    }

    /// Wraps a decoded request.
    pub fn from_request(request: ExportTraceServiceRequest) -> Self {
        Self::new(request.resource_spans)
    }

    /// Number of spans in the batch (known without decoding).
    pub fn span_count(&self) -> usize {
        self.span_count
    }

    /// True when the batch holds no span.
    pub fn is_empty(&self) -> bool {
        self.span_count == 0
    }

    /// Number of `ResourceSpans` in the batch, counted without decoding.
    pub fn resource_count(&self) -> usize {
        match &self.repr {
            Repr::Encoded(bytes) => frame::count_resource_spans(bytes).unwrap_or(0),
            Repr::Decoded(rs) => rs.len(),
        }
    }

    /// True when the batch holds nothing at all (no span and no resource).
    fn is_blank(&self) -> bool {
        match &self.repr {
            Repr::Encoded(bytes) => bytes.is_empty(),
            Repr::Decoded(rs) => rs.is_empty(),
        }
    }

    /// Joins batches in order with one allocation when all are encoded (decoding none),
    /// otherwise by decoding and moving the resource spans.
    pub fn concat(parts: Vec<Traces>) -> Result<Traces, DecodeError> {
        let mut parts: Vec<Traces> = parts.into_iter().filter(|p| !p.is_blank()).collect();
        if parts.len() <= 1 {
            return Ok(parts.pop().unwrap_or_default());
        }
        let span_count = parts.iter().map(|p| p.span_count).sum();
        if parts.iter().all(Traces::is_encoded) {
            let len = parts.iter().map(|p| match &p.repr {
                Repr::Encoded(b) => b.len(),
                Repr::Decoded(_) => 0,
            });
            let mut joined = BytesMut::with_capacity(len.sum());
            for part in &parts {
                if let Repr::Encoded(b) = &part.repr {
                    joined.extend_from_slice(b);
                }
            }
            return Ok(Traces {
                repr: Repr::Encoded(joined.freeze()),
                span_count,
            });
        }
        let mut all = Vec::new();
        for part in parts {
            all.extend(part.into_resource_spans()?);
        }
        Ok(Traces {
            repr: Repr::Decoded(all),
            span_count,
        })
    }

    /// True while the batch is still held as received bytes.
    pub fn is_encoded(&self) -> bool {
        matches!(self.repr, Repr::Encoded(_))
    }

    /// The batch as the encoded body of an `ExportTraceServiceRequest`. Free when the
    /// batch was never decoded; encodes otherwise.
    pub fn to_encoded(&self) -> Bytes {
        match &self.repr {
            Repr::Encoded(bytes) => bytes.clone(),
            Repr::Decoded(rs) => encode_resource_spans(rs),
        }
    }

    /// Decodes in place if needed and gives mutable access to the resource spans.
    ///
    /// The caller may add or remove spans; the span count is recomputed on the next
    /// [`Traces::span_count`] after [`Traces::recount`], which mutating helpers call.
    pub fn resource_spans_mut(&mut self) -> Result<&mut Vec<ResourceSpans>, DecodeError> {
        self.decode()?;
        match &mut self.repr {
            Repr::Decoded(rs) => Ok(rs),
            Repr::Encoded(_) => unreachable!("decode() leaves the batch decoded"),
        }
    }

    /// Decodes in place if needed and gives read access to the resource spans.
    pub fn resource_spans(&mut self) -> Result<&[ResourceSpans], DecodeError> {
        self.resource_spans_mut().map(|rs| &rs[..])
    }

    /// Consumes the batch and returns its decoded resource spans.
    pub fn into_resource_spans(mut self) -> Result<Vec<ResourceSpans>, DecodeError> {
        self.decode()?;
        match self.repr {
            Repr::Decoded(rs) => Ok(rs),
            Repr::Encoded(_) => unreachable!("decode() leaves the batch decoded"),
        }
    }

    /// Consumes the batch and returns it as an OTLP request message.
    pub fn into_request(self) -> Result<ExportTraceServiceRequest, DecodeError> {
        Ok(ExportTraceServiceRequest {
            resource_spans: self.into_resource_spans()?,
        })
    }

    /// Recomputes the span count after the resource spans were changed in place.
    pub fn recount(&mut self) {
        if let Repr::Decoded(rs) = &self.repr {
            self.span_count = count_spans(rs);
        }
    }

    /// Applies `keep` to every span (with its resource and scope) and removes the spans for
    /// which it returns false; empty scopes and resources are removed too.
    pub fn retain_spans(
        &mut self,
        mut keep: impl FnMut(&Resource, &InstrumentationScope, &mut Span) -> bool,
    ) -> Result<(), DecodeError> {
        let rs = self.resource_spans_mut()?;
        let empty_resource = Resource::default();
        let empty_scope = InstrumentationScope::default();
        for r in rs.iter_mut() {
            let resource = r.resource.take();
            for s in r.scope_spans.iter_mut() {
                let scope = s.scope.take();
                s.spans.retain_mut(|span| {
                    keep(
                        resource.as_ref().unwrap_or(&empty_resource),
                        scope.as_ref().unwrap_or(&empty_scope),
                        span,
                    )
                });
                s.scope = scope;
            }
            r.resource = resource;
            r.scope_spans.retain(|s| !s.spans.is_empty());
        }
        rs.retain(|r| !r.scope_spans.is_empty());
        self.recount();
        Ok(())
    }

    /// Calls `f` for every span with its resource and scope.
    pub fn for_each_span(
        &mut self,
        mut f: impl FnMut(&Resource, &InstrumentationScope, &Span),
    ) -> Result<(), DecodeError> {
        let empty_resource = Resource::default();
        let empty_scope = InstrumentationScope::default();
        for r in self.resource_spans()? {
            let resource = r.resource.as_ref().unwrap_or(&empty_resource);
            for s in &r.scope_spans {
                let scope = s.scope.as_ref().unwrap_or(&empty_scope);
                for span in &s.spans {
                    f(resource, scope, span);
                }
            }
        }
        Ok(())
    }

    /// Appends `other` to this batch. Two encoded batches are joined by concatenating
    /// their bytes, without decoding; otherwise both are decoded and merged.
    pub fn append(&mut self, other: Traces) -> Result<(), DecodeError> {
        if other.is_blank() {
            return Ok(());
        }
        if self.is_blank() {
            *self = other;
            return Ok(());
        }
        match (&mut self.repr, other.repr) {
            (Repr::Encoded(mine), Repr::Encoded(theirs)) => {
                let mut joined = BytesMut::with_capacity(mine.len() + theirs.len());
                joined.extend_from_slice(mine);
                joined.extend_from_slice(&theirs);
                *mine = joined.freeze();
                self.span_count += other.span_count;
            }
            (_, other_repr) => {
                let theirs = Traces {
                    repr: other_repr,
                    span_count: other.span_count,
                }
                .into_resource_spans()?;
                self.resource_spans_mut()?.extend(theirs);
                self.span_count += other.span_count;
            }
        }
        Ok(())
    }

    /// Splits off at most `max_spans` spans from the front into a new batch and leaves the
    /// rest in `self`. An encoded batch is cut between whole `ResourceSpans` without
    /// decoding (the front then holds as many whole resources as fit); only when the first
    /// resource alone holds more than `max_spans` is the batch decoded and cut at exactly
    /// `max_spans`, copying resource and scope into both halves.
    pub fn split_front(&mut self, max_spans: usize) -> Result<Traces, DecodeError> {
        if max_spans >= self.span_count {
            return Ok(std::mem::take(self));
        }
        if let Repr::Encoded(bytes) = &self.repr {
            if let Some((head, head_spans)) = frame::split_at_resource_boundary(bytes, max_spans) {
                if head_spans > 0 {
                    let tail = bytes.slice(head..);
                    let front = bytes.slice(..head);
                    self.repr = Repr::Encoded(tail);
                    self.span_count -= head_spans;
                    return Ok(Traces {
                        repr: Repr::Encoded(front),
                        span_count: head_spans,
                    });
                }
            }
        }
        let rs = self.resource_spans_mut()?;
        // Whole resources that fit go over in one drain; the next one is cut.
        let mut remaining = max_spans;
        let mut whole = 0;
        for r in rs.iter() {
            let n: usize = r.scope_spans.iter().map(|s| s.spans.len()).sum();
            if n > remaining {
                break;
            }
            remaining -= n;
            whole += 1;
        }
        let mut front: Vec<ResourceSpans> = rs.drain(..whole).collect();
        if remaining > 0 {
            if let Some(r) = rs.first_mut() {
                front.push(split_resource_front(r, remaining));
            }
        }
        self.recount();
        Ok(Traces::new(front))
    }

    /// Splits the batch into one batch per trace ID, keeping resource and scope with
    /// each span. Used by components that route or decide per trace.
    pub fn group_by_trace(self) -> Result<HashMap<[u8; 16], Traces>, DecodeError> {
        let mut groups: HashMap<[u8; 16], Vec<ResourceSpans>> = HashMap::new();
        for r in self.into_resource_spans()? {
            let ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            } = r;
            for s in scope_spans {
                let ScopeSpans {
                    scope,
                    spans,
                    schema_url: scope_schema,
                } = s;
                for span in spans {
                    let id = trace_id_array(&span.trace_id);
                    let list = groups.entry(id).or_default();
                    push_span(list, &resource, &schema_url, &scope, &scope_schema, span);
                }
            }
        }
        Ok(groups
            .into_iter()
            .map(|(id, rs)| (id, Traces::new(rs)))
            .collect())
    }
}

/// Converts a trace ID of any length into the 16-byte array form (left-aligned, zero
/// padded), as used for keys.
pub fn trace_id_array(id: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = id.len().min(16);
    out[..n].copy_from_slice(&id[..n]);
    out
}

/// Moves the first `n` spans of `r` (fewer than it holds) into a new `ResourceSpans`
/// with the same resource; whole scopes move in one drain, the next one is cut.
fn split_resource_front(r: &mut ResourceSpans, mut n: usize) -> ResourceSpans {
    let mut whole = 0;
    for s in &r.scope_spans {
        if s.spans.len() > n {
            break;
        }
        n -= s.spans.len();
        whole += 1;
    }
    let mut scope_spans: Vec<ScopeSpans> = r.scope_spans.drain(..whole).collect();
    if n > 0 {
        if let Some(s) = r.scope_spans.first_mut() {
            scope_spans.push(ScopeSpans {
                scope: s.scope.clone(),
                spans: s.spans.drain(..n).collect(),
                schema_url: s.schema_url.clone(),
            });
        }
    }
    ResourceSpans {
        resource: r.resource.clone(),
        scope_spans,
        schema_url: r.schema_url.clone(),
    }
}

/// Appends `span` to `list`, reusing the last resource/scope entry when it is the same.
fn push_span(
    list: &mut Vec<ResourceSpans>,
    resource: &Option<Resource>,
    resource_schema: &str,
    scope: &Option<InstrumentationScope>,
    scope_schema: &str,
    span: Span,
) {
    let same_resource = list
        .last()
        .is_some_and(|r| &r.resource == resource && r.schema_url == resource_schema);
    if !same_resource {
        list.push(ResourceSpans {
            resource: resource.clone(),
            scope_spans: Vec::new(),
            schema_url: resource_schema.to_string(),
        });
    }
    let r = list.last_mut().expect("pushed above");
    let same_scope = r
        .scope_spans
        .last()
        .is_some_and(|s| &s.scope == scope && s.schema_url == scope_schema);
    if !same_scope {
        r.scope_spans.push(ScopeSpans {
            scope: scope.clone(),
            spans: Vec::new(),
            schema_url: scope_schema.to_string(),
        });
    }
    r.scope_spans
        .last_mut()
        .expect("pushed above")
        .spans
        .push(span);
}

fn count_spans(rs: &[ResourceSpans]) -> usize {
    rs.iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum()
}

fn encode_resource_spans(rs: &[ResourceSpans]) -> Bytes {
    // Encoding each ResourceSpans as field 1 of the request, without cloning them.
    let len: usize = rs
        .iter()
        .map(|r| prost::encoding::message::encoded_len(1, r))
        .sum();
    let mut buf = BytesMut::with_capacity(len);
    for r in rs {
        prost::encoding::message::encode(1, r, &mut buf);
    }
    buf.freeze()
}

impl Traces {
    fn decode(&mut self) -> Result<(), DecodeError> {
        if let Repr::Encoded(bytes) = &self.repr {
            let request = ExportTraceServiceRequest::decode(bytes.clone())
                .map_err(|e| DecodeError(e.to_string()))?;
            self.repr = Repr::Decoded(request.resource_spans);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
