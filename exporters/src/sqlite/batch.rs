//! Turns a batch of OTLP spans into rows for every table, before the write lock is taken.
//!
//! Within a batch, resource attributes, resources and scopes are written once however
//! many spans share them; a span ID seen twice keeps its first span. Resource attribute,
//! resource set and scope IDs are content hashes, so the same one maps to the same row
//! across batches and restarts (`INSERT OR IGNORE`). Span rowids and event and link IDs
//! come from counters the writer owns, so the spans' posting lists and the events' and
//! links' attributes can be made before the insert. Every batch goes to the current
//! ingestion segment (`bucket`, see the schema).

use super::insert::{InsertSpec, TableRows};
use super::postings::Lists;
use super::value::{encode_any, hex, kind_name, status_name, Fnv128, SqlValue};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use teletrace_core::telemetry::Counter;
use teletrace_core::ConsumeError;

/// The insert statements of every table, built once per exporter.
#[derive(Debug)]
pub(crate) struct Specs {
    pub scopes: InsertSpec,
    pub scope_attributes: InsertSpec,
    pub resource_attributes: InsertSpec,
    pub spans: InsertSpec,
    pub resource_set_members: InsertSpec,
    pub events: InsertSpec,
    pub event_attributes: InsertSpec,
    pub links: InsertSpec,
    pub link_attributes: InsertSpec,
    pub attribute_keys: InsertSpec,
    pub postings: InsertSpec,
}

const ATTRIBUTE_COLUMNS: [&str; 3] = ["key", "value", "type"];

fn attribute_spec(table: &str, owner: &str) -> InsertSpec {
    let mut columns = vec![owner];
    columns.extend(ATTRIBUTE_COLUMNS);
    // OR IGNORE: a repeated key within one owner keeps its first value.
    InsertSpec::new("INSERT OR IGNORE", table, &columns)
}

impl Specs {
    /// Builds the SQL of every statement.
    pub(crate) fn new() -> Self {
        Specs {
            scopes: InsertSpec::new(
                "INSERT OR IGNORE",
                "scopes",
                &["id", "name", "version", "dropped_attributes_count"],
            ),
            scope_attributes: attribute_spec("scope_attributes", "scope_id"),
            resource_attributes: attribute_spec("resource_attributes", "resource_id"),
            spans: InsertSpec::new("INSERT OR IGNORE", "spans", &SPAN_COLUMNS),
            resource_set_members: InsertSpec::new(
                "INSERT OR IGNORE",
                "resource_set_members",
                &["resource_set_id", "position", "resource_attribute_id"],
            ),
            events: InsertSpec::new(
                "INSERT",
                "events",
                &[
                    "id",
                    "span_id",
                    "time_unix_nano",
                    "name",
                    "dropped_attributes_count",
                ],
            ),
            event_attributes: attribute_spec("event_attributes", "event_id"),
            links: InsertSpec::new(
                "INSERT",
                "links",
                &[
                    "id",
                    "span_id",
                    "trace_state",
                    "dropped_attributes_count",
                    "linked_trace_id",
                    "linked_span_id",
                ],
            ),
            link_attributes: attribute_spec("link_attributes", "link_id"),
            attribute_keys: InsertSpec::new(
                "INSERT OR IGNORE",
                "attribute_keys",
                &["source", "key", "type"],
            ),
            postings: super::postings::spec(),
        }
    }
}

/// Columns of `spans`, in the order rows are bound.
pub(crate) const SPAN_COLUMNS: [&str; 23] = [
    "rowid",
    "span_id",
    "trace_id",
    "trace_state",
    "parent_span_id",
    "name",
    "kind",
    "start_time_unix_nano",
    "end_time_unix_nano",
    "dropped_span_attributes_count",
    "span_status_message",
    "span_status_code",
    "dropped_resource_attributes_count",
    "dropped_events_count",
    "dropped_links_count",
    "duration",
    "ingestion_time_unix_nano",
    "instrumentation_scope_id",
    "bucket",
    "resource_set_id",
    "attributes",
    "event_count",
    "link_count",
];

/// Where an attribute key was seen, as stored in `attribute_keys.source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Source {
    /// `spans.attributes` (the `span_attributes` view).
    Span,
    /// `resource_attributes`.
    Resource,
    /// `scope_attributes`.
    Scope,
    /// `event_attributes`.
    Event,
    /// `link_attributes`.
    Link,
}

impl Source {
    /// The stored name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Source::Span => "span",
            Source::Resource => "resource",
            Source::Scope => "scope",
            Source::Event => "event",
            Source::Link => "link",
        }
    }

    /// Parses a stored name.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "span" => Source::Span,
            "resource" => Source::Resource,
            "scope" => Source::Scope,
            "event" => Source::Event,
            "link" => Source::Link,
            _ => return None,
        })
    }
}

/// A catalog entry: source, key, type.
pub(crate) type KeyEntry = (Source, String, &'static str);

/// State the batch builder shares with the writer across batches.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Next `events.id`.
    pub next_event_id: AtomicI64,
    /// Next `links.id`.
    pub next_link_id: AtomicI64,
    /// Next `spans.rowid`: the batch builder numbers spans, so that it can make their
    /// posting lists before the write.
    pub next_span_rowid: AtomicI64,
    /// The posting lists of the segments being filled (see `postings`).
    pub postings: Mutex<super::postings::Accumulator>,
    /// Segments sealed with the lists their batches brought.
    pub sealed_from_batches: Arc<Counter>,
    /// Segments sealed by reading their spans back.
    pub sealed_from_spans: Arc<Counter>,
    /// Catalog entries known to be stored.
    pub known_keys: Mutex<HashSet<KeyEntry>>,
    /// True while a background sealer runs (see the writer).
    pub sealing: std::sync::atomic::AtomicBool,
    /// The last ingestion time given to a batch (see [`Counters::ingestion_time`]).
    pub last_ingestion_time: AtomicI64,
    /// The current ingestion segment and how many spans it holds.
    pub segment: Mutex<(i64, u64)>,
}

/// Spans per ingestion segment (see the schema): small enough that a segment's index
/// regions stay in the page cache, large enough that lookups seek few segments.
pub(crate) const SEGMENT_SPANS: u64 = 8_192;

impl Counters {
    /// The ingestion time of a new batch: `now`, or just after the previous batch's, so
    /// that no two batches share one (the writer tells a batch's rows by it).
    pub(crate) fn ingestion_time(&self, now: i64) -> i64 {
        let mut last = self.last_ingestion_time.load(Ordering::Relaxed);
        loop {
            let next = now.max(last.saturating_add(1));
            match self.last_ingestion_time.compare_exchange_weak(
                last,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// The segment batches go to now.
    pub(crate) fn current_segment(&self) -> i64 {
        self.segment.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// The segment a batch of `spans` spans goes to (a new one once the current is full).
    pub(crate) fn segment_for(&self, spans: usize) -> i64 {
        let mut segment = self.segment.lock().unwrap_or_else(|e| e.into_inner());
        if segment.1 >= SEGMENT_SPANS {
            segment.0 += 1;
            segment.1 = 0;
        }
        segment.1 += spans as u64;
        segment.0
    }
}

/// One span of the batch with what it needs from its resource and scope.
struct SpanRef<'a> {
    span: &'a Span,
    span_id: String,
    scope_id: i64,
    dropped_resource_attributes: u32,
}

/// The segment row a batch adds to: bucket, start-time range, span count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentUpdate {
    /// The segment.
    pub bucket: i64,
    /// Earliest span start in the batch.
    pub min_start: i64,
    /// Latest span start in the batch.
    pub max_start: i64,
    /// Spans in the batch.
    pub spans: i64,
}

/// A batch's rows for every table, ready to write.
pub(crate) struct Prepared<'a> {
    /// Span count after dropping repeated span IDs within the batch.
    pub span_count: usize,
    /// The segment the batch is written to.
    pub segment: SegmentUpdate,
    /// `scopes`, `scope_attributes`, `resource_attributes`, `resource_set_members`:
    /// written first.
    pub shared: Vec<(&'static str, TableRows)>,
    /// `spans`.
    pub spans: TableRows,
    /// The `ingestion_time_unix_nano` of every span of the batch (unique to it).
    pub ingestion_time: i64,
    /// Everything hanging off a span, for every span of the batch.
    pub children: Vec<(&'static str, TableRows)>,
    /// Every catalog entry (source, key, type) the batch uses.
    pub batch_keys: Vec<KeyEntry>,
    /// The posting lists of the batch's spans, for its segment's once it is committed.
    pub postings: Lists<'static>,
    spans_by_id: Vec<SpanRef<'a>>,
}

/// Table names used to pick the statement spec of a bound group.
pub(crate) mod table {
    pub const SCOPES: &str = "scopes";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_SET_MEMBERS: &str = "resource_set_members";
    pub const EVENTS: &str = "events";
    pub const EVENT_ATTRIBUTES: &str = "event_attributes";
    pub const LINKS: &str = "links";
    pub const LINK_ATTRIBUTES: &str = "link_attributes";
}

impl Specs {
    /// The spec of a table named in [`table`].
    pub(crate) fn by_table(&self, name: &str) -> &InsertSpec {
        match name {
            table::SCOPES => &self.scopes,
            table::SCOPE_ATTRIBUTES => &self.scope_attributes,
            table::RESOURCE_ATTRIBUTES => &self.resource_attributes,
            table::RESOURCE_SET_MEMBERS => &self.resource_set_members,
            table::EVENTS => &self.events,
            table::EVENT_ATTRIBUTES => &self.event_attributes,
            table::LINKS => &self.links,
            table::LINK_ATTRIBUTES => &self.link_attributes,
            _ => &self.attribute_keys,
        }
    }
}

/// Describes a span in error messages.
pub(crate) fn describe(span: &Span) -> String {
    format!(
        "span {} ({:?}) of trace {}",
        hex(&span.span_id),
        span.name,
        hex(&span.trace_id)
    )
}

fn check(span: &Span) -> Result<(i64, i64), ConsumeError> {
    let refuse =
        |why: String| ConsumeError::permanent(format!("{} refused: {why}", describe(span)));
    if span.trace_id.len() != 16 {
        return Err(refuse(format!(
            "trace_id must be 16 bytes, got {}",
            span.trace_id.len()
        )));
    }
    if span.span_id.len() != 8 {
        return Err(refuse(format!(
            "span_id must be 8 bytes, got {}",
            span.span_id.len()
        )));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Err(refuse(format!(
            "parent_span_id must be empty or 8 bytes, got {}",
            span.parent_span_id.len()
        )));
    }
    let start = i64::try_from(span.start_time_unix_nano)
        .map_err(|_| refuse("start_time_unix_nano is beyond what SQLite can store".into()))?;
    let end = i64::try_from(span.end_time_unix_nano)
        .map_err(|_| refuse("end_time_unix_nano is beyond what SQLite can store".into()))?;
    Ok((start, end))
}

/// Rows of attribute lists, with the catalog entries they use.
struct AttributeWriter<'k> {
    keys: HashSet<(Source, &'k str, &'static str)>,
}

impl<'k> AttributeWriter<'k> {
    /// Rows `(owner, key, value, type)` for each attribute.
    fn write(
        &mut self,
        rows: &mut TableRows,
        source: Source,
        owner: &SqlValue,
        attributes: &'k [KeyValue],
    ) {
        for kv in attributes {
            let (type_name, value) = encode_any(kv.value.as_ref());
            rows.push(owner.clone());
            rows.text(kv.key.as_str());
            rows.push(value);
            rows.text(type_name);
            self.keys.insert((source, kv.key.as_str(), type_name));
        }
    }
}

/// Builds the rows of `resource_spans`.
pub(crate) fn prepare<'a>(
    resource_spans: &'a [ResourceSpans],
    counters: &Counters,
    ingestion_time: i64,
) -> Result<Prepared<'a>, ConsumeError> {
    let mut attrs = AttributeWriter {
        keys: HashSet::new(),
    };
    let mut scopes = TableRows::default();
    let mut scope_attributes = TableRows::default();
    let mut resource_attributes = TableRows::default();
    let mut members = TableRows::default();
    let mut seen_resource_attributes: HashSet<u128> = HashSet::new();
    let mut seen_sets: HashSet<String> = HashSet::new();
    let mut seen_scopes: HashSet<i64> = HashSet::new();
    // Per ResourceSpans: the resource set ID (a hash of its attribute IDs, in order).
    let mut sets: Vec<Option<String>> = Vec::with_capacity(resource_spans.len());

    for rs in resource_spans {
        let resource = rs.resource.as_ref();
        let mut set_hash = Fnv128::new();
        let mut ids: Vec<String> = Vec::new();
        for kv in resource.map_or(&[][..], |r| &r.attributes[..]) {
            let (type_name, value) = encode_any(kv.value.as_ref());
            let mut h = Fnv128::new();
            h.field(kv.key.as_bytes());
            h.value(type_name, &value);
            let hash = h.finish();
            let id = format!("{:016x}", hash as u64);
            if seen_resource_attributes.insert(hash) {
                resource_attributes.text(id.as_str());
                resource_attributes.text(kv.key.as_str());
                resource_attributes.push(value);
                resource_attributes.text(type_name);
                attrs
                    .keys
                    .insert((Source::Resource, kv.key.as_str(), type_name));
            }
            if !ids.contains(&id) {
                set_hash.field(id.as_bytes());
                ids.push(id);
            }
        }
        if ids.is_empty() {
            sets.push(None);
        } else {
            let id = format!("{:016x}", set_hash.finish() as u64);
            if seen_sets.insert(id.clone()) {
                for (position, member) in ids.iter().enumerate() {
                    members.text(id.as_str());
                    members.int(position as i64);
                    members.text(member.as_str());
                }
            }
            sets.push(Some(id));
        }
    }

    let mut refs: Vec<SpanRef<'a>> = Vec::new();
    let mut set_ids: Vec<Option<String>> = Vec::new();
    for (rs, set) in resource_spans.iter().zip(&sets) {
        let dropped_resource_attributes = rs
            .resource
            .as_ref()
            .map_or(0, |r| r.dropped_attributes_count);
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref();
            let name = scope.map_or("", |s| s.name.as_str());
            let version = scope.map_or("", |s| s.version.as_str());
            let dropped = scope.map_or(0, |s| s.dropped_attributes_count);
            let scope_attrs = scope.map_or(&[][..], |s| &s.attributes[..]);
            let scope_id = scope_id(name, version, dropped, scope_attrs);
            if seen_scopes.insert(scope_id) {
                scopes.int(scope_id);
                scopes.text(name);
                scopes.text(version);
                scopes.int(i64::from(dropped));
                attrs.write(
                    &mut scope_attributes,
                    Source::Scope,
                    &SqlValue::Int(scope_id),
                    scope_attrs,
                );
            }
            for span in &ss.spans {
                set_ids.push(set.clone());
                refs.push(SpanRef {
                    span,
                    span_id: String::new(),
                    scope_id,
                    dropped_resource_attributes,
                });
            }
        }
    }
    // Sorted by span ID, so inserts walk the span-keyed indexes in order; a span ID seen
    // twice keeps its first span (the sort is stable).
    let mut order: Vec<usize> = (0..refs.len()).collect();
    order.sort_by(|a, b| refs[*a].span.span_id.cmp(&refs[*b].span.span_id));
    order.dedup_by(|later, earlier| refs[*later].span.span_id == refs[*earlier].span.span_id);

    let bucket = counters.segment_for(order.len());
    let mut segment = SegmentUpdate {
        bucket,
        min_start: i64::MAX,
        max_start: i64::MIN,
        spans: order.len() as i64,
    };
    let mut spans = TableRows::default();
    let mut postings = Lists::default();
    let mut rowid = reserve(&counters.next_span_rowid, order.len());
    let mut kept: Vec<SpanRef<'a>> = Vec::with_capacity(order.len());
    let mut kept_sets: Vec<Option<String>> = Vec::with_capacity(order.len());
    let mut slots: Vec<Option<SpanRef<'a>>> = refs.into_iter().map(Some).collect();
    for i in order {
        if let Some(r) = slots[i].take() {
            kept.push(r);
            kept_sets.push(set_ids[i].take());
        }
    }
    for (r, set) in kept.iter_mut().zip(kept_sets) {
        let span = r.span;
        let (start, end) = check(span)?;
        segment.min_start = segment.min_start.min(start);
        segment.max_start = segment.max_start.max(start);
        r.span_id = hex(&span.span_id);
        spans.int(rowid);
        spans.text(r.span_id.as_str());
        spans.text(hex(&span.trace_id));
        spans.text(span.trace_state.as_str());
        spans.text(hex(&span.parent_span_id));
        spans.text(span.name.as_str());
        spans.text(kind_name(span.kind));
        spans.int(start);
        spans.int(end);
        spans.int(i64::from(span.dropped_attributes_count));
        spans.text(span.status.as_ref().map_or("", |s| s.message.as_str()));
        spans.text(status_name(span.status.as_ref().map_or(0, |s| s.code)));
        spans.int(i64::from(r.dropped_resource_attributes));
        spans.int(i64::from(span.dropped_events_count));
        spans.int(i64::from(span.dropped_links_count));
        spans.int(end.saturating_sub(start).max(0));
        spans.int(ingestion_time);
        spans.int(r.scope_id);
        spans.int(bucket);
        spans.push(set.map_or(SqlValue::Null, SqlValue::Text));
        let (attributes, written) = super::attributes::encode(&span.attributes);
        spans.text(attributes);
        // Every event and link of a span stored is stored with it (`children_rows`).
        spans.int(i64::try_from(span.events.len()).unwrap_or(i64::MAX));
        spans.int(i64::try_from(span.links.len()).unwrap_or(i64::MAX));
        for (kv, type_name) in written {
            attrs
                .keys
                .insert((Source::Span, kv.key.as_str(), type_name));
            postings.add(rowid, &kv.key, type_name, kv.value.as_ref());
        }
        rowid += 1;
    }

    let mut prepared = Prepared {
        span_count: kept.len(),
        segment,
        shared: vec![
            (table::SCOPES, scopes),
            (table::SCOPE_ATTRIBUTES, scope_attributes),
            (table::RESOURCE_ATTRIBUTES, resource_attributes),
            (table::RESOURCE_SET_MEMBERS, members),
        ],
        spans,
        ingestion_time,
        children: Vec::new(),
        batch_keys: Vec::new(),
        postings: postings.into_owned(),
        spans_by_id: kept,
    };
    let (children, child_keys) = prepared.children_rows(counters, None);
    prepared.children = children;
    attrs.keys.extend(child_keys);

    prepared.batch_keys = attrs
        .keys
        .into_iter()
        .map(|(source, key, type_name)| (source, key.to_string(), type_name))
        .collect();
    Ok(prepared)
}

impl Prepared<'_> {
    /// The `attribute_keys` statements for the entries of this batch not in `known`, and
    /// those entries. Called with the writer lock held, so that retention (which prunes
    /// the catalog and `known` under the same lock) cannot remove an entry between this
    /// check and the commit.
    pub(crate) fn catalog_rows(&self, known: &HashSet<KeyEntry>) -> (TableRows, Vec<KeyEntry>) {
        let mut rows = TableRows::default();
        let mut added = Vec::new();
        for entry in &self.batch_keys {
            if !known.contains(entry) {
                rows.text(entry.0.name());
                rows.text(entry.1.clone());
                rows.text(entry.2);
                added.push(entry.clone());
            }
        }
        (rows, added)
    }
}

/// Rows of every table hanging off a span, grouped by table.
type ChildRows<'k> = (
    Vec<(&'static str, TableRows)>,
    Vec<(Source, &'k str, &'static str)>,
);

impl<'a> Prepared<'a> {
    /// The rows hanging off the spans (all of them, or those whose hex ID is in
    /// `only`): events and links with their attributes.
    pub(crate) fn children_rows(
        &self,
        counters: &Counters,
        only: Option<&HashSet<String>>,
    ) -> ChildRows<'a> {
        let mut attrs = AttributeWriter {
            keys: HashSet::new(),
        };
        let mut events = TableRows::default();
        let mut event_attributes = TableRows::default();
        let mut links = TableRows::default();
        let mut link_attributes = TableRows::default();
        let included = |r: &SpanRef<'_>| only.is_none_or(|set| set.contains(&r.span_id));

        let (event_count, link_count) = self
            .spans_by_id
            .iter()
            .filter(|r| included(r))
            .fold((0, 0), |(e, l), r| {
                (e + r.span.events.len(), l + r.span.links.len())
            });
        let mut event_id = reserve(&counters.next_event_id, event_count);
        let mut link_id = reserve(&counters.next_link_id, link_count);

        for r in self.spans_by_id.iter().filter(|r| included(r)) {
            let span: &'a Span = r.span;
            for event in &span.events {
                events.int(event_id);
                events.text(r.span_id.as_str());
                events.push(match i64::try_from(event.time_unix_nano) {
                    Ok(t) => SqlValue::Int(t),
                    Err(_) => SqlValue::Null,
                });
                events.text(event.name.as_str());
                events.int(i64::from(event.dropped_attributes_count));
                attrs.write(
                    &mut event_attributes,
                    Source::Event,
                    &SqlValue::Int(event_id),
                    &event.attributes,
                );
                event_id += 1;
            }
            for link in &span.links {
                links.int(link_id);
                links.text(r.span_id.as_str());
                links.text(link.trace_state.as_str());
                links.int(i64::from(link.dropped_attributes_count));
                links.text(hex(&link.trace_id));
                links.text(hex(&link.span_id));
                attrs.write(
                    &mut link_attributes,
                    Source::Link,
                    &SqlValue::Int(link_id),
                    &link.attributes,
                );
                link_id += 1;
            }
        }

        let mut out = Vec::new();
        for (name, rows) in [
            (table::EVENTS, events),
            (table::EVENT_ATTRIBUTES, event_attributes),
            (table::LINKS, links),
            (table::LINK_ATTRIBUTES, link_attributes),
        ] {
            if !rows.is_empty() {
                out.push((name, rows));
            }
        }
        (out, attrs.keys.into_iter().collect())
    }

    /// The hex IDs of the batch's spans, in insertion order.
    pub(crate) fn span_ids(&self) -> impl Iterator<Item = &str> {
        self.spans_by_id.iter().map(|r| r.span_id.as_str())
    }
}

/// Takes `n` consecutive IDs from `counter`.
fn reserve(counter: &AtomicI64, n: usize) -> i64 {
    counter.fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed)
}

/// The scope's ID: a hash of everything stored about it, in 1..2^62.
fn scope_id(name: &str, version: &str, dropped: u32, attributes: &[KeyValue]) -> i64 {
    let mut h = Fnv128::new();
    h.field(name.as_bytes());
    h.field(version.as_bytes());
    h.field(&dropped.to_le_bytes());
    for kv in attributes {
        let (type_name, value) = encode_any(kv.value.as_ref());
        h.field(kv.key.as_bytes());
        h.value(type_name, &value);
    }
    let id = (h.finish() as u64) & ((1u64 << 62) - 1);
    // The mask keeps the value below 2^62, so it always fits.
    i64::try_from(id).unwrap_or(0) + 1
}
