//! `GET /v1/trace/{id}` written straight from the span rows into the Teletrace v1 JSON
//! (`teletrace_core::span_json`), without an OTLP `Span` or `KeyValue` per span in
//! between: each row's columns are written as they are read (plain attribute lists
//! transcoded from the stored text, see `stored_attributes.rs`), and the parts that
//! need other queries (resources, scopes, events, links) are written once each and put
//! in place when the spans, sorted as `get_trace` sorts them, are joined.
//!
//! The JSON is the same, byte for byte, as `span_json::write_array` of what `load::trace`
//! returns (a test in `tests/sqlite_query.rs` compares the two on every kind of value).

use super::load::{
    backend, load_events, load_links, to_u32, to_u64, Owners, ResourceKey, SPAN_COLUMNS,
};
use super::sql::Sql;
use super::stored_attributes::write_attributes_json;
use crate::sqlite::direct::{self, with_session, Row};
use crate::sqlite::value::{kind_value, status_value, SqlValue};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use sqlx::SqliteConnection;
use std::collections::HashMap;
use std::ops::Range;
use teletrace_core::buffer_pool;
use teletrace_core::json_writer as json;
use teletrace_core::span_json;
use teletrace_core::storage::StorageError;

/// One span read, its JSON written into the shared buffer but for the parts other
/// queries fill in.
struct Fragment {
    /// Sort key: start time, then span ID (as bytes, which is the order of their
    /// lowercase hex).
    start: u64,
    /// Where the span ID is in the rows' buffer (between the quotes `id` wrote): as
    /// `load` keys events and links, lowercase hex, empty when not hex.
    span_id: Range<usize>,
    /// `"span":{"traceId":...,"droppedAttributesCount":N`.
    head: Range<usize>,
    dropped_events: u32,
    /// `,"droppedLinksCount":N,"status":{...}},"externalFields":{...},
    /// "ingestionTimeUnixNano":N`.
    tail: Range<usize>,
    has_events: bool,
    has_links: bool,
}

/// Appends every span of the trace as a JSON array, sorted by start time and span ID;
/// returns how many.
pub(crate) async fn write_trace(
    conn: &mut SqliteConnection,
    trace_id: &str,
    out: &mut Vec<u8>,
) -> Result<usize, StorageError> {
    let mut sql = Sql::new(SPAN_COLUMNS);
    sql.push("s.bucket IN (SELECT bucket FROM segments) AND s.trace_id = ")
        .text_param(trace_id);
    // The rows' JSON, a megabyte and more for a large trace: a kept buffer, whose pages
    // need no faulting in (`buffer_pool`).
    let mut written = buffer_pool::take();
    let mut fragments = Vec::new();
    let mut owners = Owners::default();
    let read = with_session(conn, |session| {
        session.prepare(sql.text())?.rows(sql.params(), |row| {
            fragments.push(write_row(row, &mut written, &mut owners)?);
            Ok(())
        })
    })
    .await
    .map_err(backend)?;
    read.map_err(backend)?;

    let span_id = |f: &Fragment| &written[f.span_id.clone()];
    // The span ID as `load` keys events and links: the hex digits `id` wrote.
    let span_key = |f: &Fragment| std::str::from_utf8(span_id(f)).unwrap_or_default();
    let ids = |has: fn(&Fragment) -> bool| -> Vec<SqlValue> {
        fragments
            .iter()
            .filter(|f| has(f))
            .map(|f| SqlValue::Text(span_key(f).to_string()))
            .collect()
    };
    let events = load_events(conn, &ids(|f| f.has_events)).await?;
    let links = load_links(conn, &ids(|f| f.has_links)).await?;
    let (resources, scopes) = owner_json(conn, &owners).await?;

    let mut order: Vec<usize> = (0..fragments.len()).collect();
    order.sort_unstable_by(|a, b| {
        let (a, b) = (&fragments[*a], &fragments[*b]);
        (a.start, span_id(a)).cmp(&(b.start, span_id(b)))
    });
    // Every span's resource and scope is in the maps; a span whose scope row is gone
    // gets the empty scope, as `get_trace` gives it.
    let mut empty_resource = Vec::new();
    span_json::write_resource(&mut empty_resource, &Default::default());
    let empty_scope = scope_json(&InstrumentationScope::default());
    // Each span's resource and scope JSON, in the order read. Spans of one resource and
    // scope come together, so a lookup is made only where they change.
    let mut last: Option<(ResourceKey, i64, &[u8], &[u8])> = None;
    let owner_json: Vec<(&[u8], &[u8])> = owners
        .of_span
        .iter()
        .map(|owner| {
            let (resource_key, scope_id) = (owner.resource_key(), owner.scope_id);
            match last {
                Some((k, s, resource, scope)) if k == resource_key && s == scope_id => {
                    (resource, scope)
                }
                _ => {
                    let resource = resources.get(&resource_key).unwrap_or(&empty_resource);
                    let scope = scopes.get(&scope_id).unwrap_or(&empty_scope);
                    last = Some((resource_key, scope_id, resource, scope));
                    (resource.as_slice(), scope.as_slice())
                }
            }
        })
        .collect();
    let owner_bytes: usize = owner_json.iter().map(|(r, s)| r.len() + s.len()).sum();
    out.reserve(written.len() + owner_bytes + fragments.len() * 128 + 2);
    out.push(b'[');
    for (n, i) in order.iter().enumerate() {
        let (fragment, (resource, scope)) = (&fragments[*i], owner_json[*i]);
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"resource\":");
        out.extend_from_slice(resource);
        out.extend_from_slice(b",\"scope\":");
        out.extend_from_slice(scope);
        out.push(b',');
        out.extend_from_slice(&written[fragment.head.clone()]);
        out.extend_from_slice(b",\"events\":");
        let key = span_key(fragment);
        let span_events = events.get(key);
        span_json::write_events(out, span_events.map_or(&[], Vec::as_slice));
        out.extend_from_slice(b",\"droppedEventsCount\":");
        json::uint(out, fragment.dropped_events.into());
        out.extend_from_slice(b",\"links\":");
        let span_links = links.get(key);
        span_json::write_links(out, span_links.map_or(&[], Vec::as_slice));
        out.extend_from_slice(&written[fragment.tail.clone()]);
        out.push(b'}');
    }
    out.push(b']');
    Ok(fragments.len())
}

/// Writes a span row (as [`SPAN_COLUMNS`] selects it) as `load::span_row` and
/// `span_json` together would, but for its resource, scope, events and links.
fn write_row(row: &Row<'_>, out: &mut Vec<u8>, owners: &mut Owners) -> direct::Result<Fragment> {
    let text = |column| row.text(column).map(Option::unwrap_or_default);
    let start = out.len();
    out.extend_from_slice(b"\"span\":{\"traceId\":");
    id(out, row.text(1)?);
    out.extend_from_slice(b",\"spanId\":");
    let span_id = out.len() + 1..;
    id(out, row.text(0)?);
    let span_id = span_id.start..out.len() - 1;
    out.extend_from_slice(b",\"traceState\":");
    json::string(out, text(2)?);
    out.extend_from_slice(b",\"parentSpanId\":");
    id(out, row.text(3)?);
    out.extend_from_slice(b",\"name\":");
    json::string(out, text(4)?);
    out.extend_from_slice(b",\"kind\":");
    json::int(out, row.text(5)?.and_then(kind_value).unwrap_or(0).into());
    let start_time = to_u64(row.int(6)?);
    out.extend_from_slice(b",\"startTimeUnixNano\":");
    json::uint(out, start_time);
    out.extend_from_slice(b",\"endTimeUnixNano\":");
    json::uint(out, to_u64(row.int(7)?));
    out.extend_from_slice(b",\"attributes\":");
    write_attributes_json(out, row.text(20)?).map_err(|e| direct::CallError {
        code: libsqlite3_sys::SQLITE_CORRUPT,
        message: e.to_string(),
    })?;
    out.extend_from_slice(b",\"droppedAttributesCount\":");
    json::uint(out, to_u32(row.int(8)?).into());
    let head = start..out.len();

    let tail_start = out.len();
    out.extend_from_slice(b",\"droppedLinksCount\":");
    json::uint(out, to_u32(row.int(13)?).into());
    out.extend_from_slice(b",\"status\":{\"message\":");
    json::string(out, text(9)?);
    out.extend_from_slice(b",\"code\":");
    json::int(
        out,
        row.text(10)?.and_then(status_value).unwrap_or(0).into(),
    );
    out.extend_from_slice(b"}},\"externalFields\":{\"durationNano\":");
    json::uint(out, to_u64(row.int(14)?));
    out.extend_from_slice(b"},\"ingestionTimeUnixNano\":");
    json::uint(out, to_u64(row.int(15)?));
    let tail = tail_start..out.len();

    owners.push(row.text(17)?, to_u32(row.int(11)?), row.int(16)?);
    Ok(Fragment {
        start: start_time,
        span_id,
        head,
        dropped_events: to_u32(row.int(12)?),
        tail,
        has_events: row.int(18)? != 0,
        has_links: row.int(19)? != 0,
    })
}

/// An ID column as `load` reads it (hex decoded; anything else is no ID) and
/// `span_json` writes it (lowercase hex).
fn id(out: &mut Vec<u8>, text: Option<&str>) {
    out.push(b'"');
    if let Some(text) = text.filter(|t| is_hex_id(t)) {
        out.extend(text.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(b'"');
}

fn is_hex_id(text: &str) -> bool {
    text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The JSON of each resource and scope the spans name, written once each.
async fn owner_json(
    conn: &mut SqliteConnection,
    owners: &Owners,
) -> Result<(HashMap<ResourceKey, Vec<u8>>, HashMap<i64, Vec<u8>>), StorageError> {
    let resources = owners
        .resources(conn)
        .await?
        .into_iter()
        .map(|(key, resource)| {
            let mut out = Vec::new();
            span_json::write_resource(&mut out, &resource);
            (key, out)
        })
        .collect();
    let scopes = owners
        .scopes(conn)
        .await?
        .into_iter()
        .map(|(id, scope)| (id, scope_json(&scope)))
        .collect();
    Ok((resources, scopes))
}

fn scope_json(scope: &InstrumentationScope) -> Vec<u8> {
    let mut out = Vec::new();
    span_json::write_scope(&mut out, scope);
    out
}
