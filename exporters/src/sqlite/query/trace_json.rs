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
use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;
use teletrace_core::json_writer as json;
use teletrace_core::span_json;
use teletrace_core::storage::StorageError;

/// One span read, its JSON written into the shared buffer but for the parts other
/// queries fill in.
struct Fragment {
    /// Sort key: start time, then span ID (as bytes, which is the order of their
    /// lowercase hex).
    start: u64,
    span_id: String,
    /// `"span":{"traceId":...,"droppedAttributesCount":N`.
    head: Range<usize>,
    dropped_events: u32,
    /// `,"droppedLinksCount":N,"status":{...}},"externalFields":{...},
    /// "ingestionTimeUnixNano":N`.
    tail: Range<usize>,
    has_events: bool,
    has_links: bool,
}

/// Traces of at least this many spans are read on two connections at once, when the
/// read pool has a second one idle: reading rows and writing their JSON is most of the
/// work, and it splits evenly.
const SPLIT_AT: usize = 512;

/// How long a read waits for a connection the pool has room for (opening one takes about
/// a millisecond) before it reads the whole trace on its own.
const SPARE_CONNECTION_WAIT: Duration = Duration::from_millis(20);

/// The most a read sets aside for span JSON before it has read the spans.
const MAX_PRESIZE: usize = 16 << 20;

/// Rowids per `IN` list (SQLite allows 32,766 parameters).
const ROWIDS_PER_QUERY: usize = 10_000;

/// Appends every span of the trace as a JSON array, sorted by start time and span ID;
/// returns how many.
///
/// The trace's rowids come from `trace_id_index` alone; the rows are then read in rowid
/// order (the table's), and a trace of [`SPLIT_AT`] spans or more is read in two halves,
/// the second on another connection of `pool` in a task of its own, when one is idle
/// (under load, the whole trace is read on `conn`, as a split would only queue).
pub(crate) async fn write_trace(
    conn: &mut SqliteConnection,
    pool: &SqlitePool,
    trace_id: &str,
    out: &mut Vec<u8>,
) -> Result<usize, StorageError> {
    let mut rowids = trace_rowids(conn, trace_id).await?;
    rowids.sort_unstable();
    let second = match rowids.len() >= SPLIT_AT {
        true => spare_connection(pool).await,
        false => None,
    };
    let Rows {
        written,
        fragments,
        owners,
    } = match second {
        Some(mut other) => {
            let half = rowids.split_off(rowids.len() / 2);
            let second_half = tokio::spawn(async move { read_rows(&mut other, &half).await });
            let mut rows = read_rows(conn, &rowids).await?;
            let second_half = second_half
                .await
                .map_err(|e| backend(format!("reading half a trace: {e}")))??;
            rows.append(second_half);
            rows
        }
        None => read_rows(conn, &rowids).await?,
    };

    let ids = |has: fn(&Fragment) -> bool| -> Vec<SqlValue> {
        fragments
            .iter()
            .filter(|f| has(f))
            .map(|f| SqlValue::Text(f.span_id.clone()))
            .collect()
    };
    let events = load_events(conn, &ids(|f| f.has_events)).await?;
    let links = load_links(conn, &ids(|f| f.has_links)).await?;
    let (resources, scopes) = owner_json(conn, &owners).await?;

    let mut order: Vec<usize> = (0..fragments.len()).collect();
    order.sort_unstable_by(|a, b| {
        let (a, b) = (&fragments[*a], &fragments[*b]);
        (a.start, &a.span_id).cmp(&(b.start, &b.span_id))
    });
    let owner_bytes: usize = order
        .iter()
        .map(|i| {
            let owner = &owners.of_span[*i];
            resources.get(&owner.resource_key()).map_or(0, Vec::len)
                + scopes.get(&owner.scope_id).map_or(0, Vec::len)
        })
        .sum();
    out.reserve(written.len() + owner_bytes + fragments.len() * 128 + 2);
    // Every span's resource and scope is in the maps; a span whose scope row is gone
    // gets the empty scope, as `get_trace` gives it.
    let mut empty_resource = Vec::new();
    span_json::write_resource(&mut empty_resource, &Default::default());
    let empty_scope = scope_json(&InstrumentationScope::default());
    out.push(b'[');
    for (n, i) in order.iter().enumerate() {
        let (fragment, owner) = (&fragments[*i], &owners.of_span[*i]);
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"resource\":");
        out.extend_from_slice(
            resources
                .get(&owner.resource_key())
                .unwrap_or(&empty_resource),
        );
        out.extend_from_slice(b",\"scope\":");
        out.extend_from_slice(scopes.get(&owner.scope_id).unwrap_or(&empty_scope));
        out.push(b',');
        out.extend_from_slice(&written[fragment.head.clone()]);
        out.extend_from_slice(b",\"events\":");
        let span_events = events.get(&fragment.span_id);
        span_json::write_events(out, span_events.map_or(&[], Vec::as_slice));
        out.extend_from_slice(b",\"droppedEventsCount\":");
        json::uint(out, fragment.dropped_events.into());
        out.extend_from_slice(b",\"links\":");
        let span_links = links.get(&fragment.span_id);
        span_json::write_links(out, span_links.map_or(&[], Vec::as_slice));
        out.extend_from_slice(&written[fragment.tail.clone()]);
        out.push(b'}');
    }
    out.push(b']');
    Ok(fragments.len())
}

/// Span rows read and written, but for the parts other queries fill in.
#[derive(Default)]
struct Rows {
    /// The fragments' JSON, one after another.
    written: Vec<u8>,
    fragments: Vec<Fragment>,
    owners: Owners,
}

impl Rows {
    /// Adds `other`'s spans after these.
    fn append(&mut self, other: Rows) {
        let offset = self.written.len();
        let shift = |r: Range<usize>| r.start + offset..r.end + offset;
        self.written.extend_from_slice(&other.written);
        self.fragments
            .extend(other.fragments.into_iter().map(|f| Fragment {
                head: shift(f.head.clone()),
                tail: shift(f.tail.clone()),
                ..f
            }));
        self.owners.append(other.owners);
    }
}

/// A second connection of `pool` for the other half of a trace, if one is idle or the
/// pool has room to open one; `None` rather than waiting for a busy one (the first read
/// of a large trace opens it, later ones find it idle).
async fn spare_connection(pool: &SqlitePool) -> Option<PoolConnection<Sqlite>> {
    if let Some(idle) = pool.try_acquire() {
        return Some(idle);
    }
    if pool.size() >= pool.options().get_max_connections() {
        return None;
    }
    // Another task may take the room first: wait a little for a connection, no longer.
    tokio::time::timeout(SPARE_CONNECTION_WAIT, pool.acquire())
        .await
        .ok()?
        .ok()
}

/// The rowids of the trace's spans, read from `trace_id_index` alone.
async fn trace_rowids(
    conn: &mut SqliteConnection,
    trace_id: &str,
) -> Result<Vec<i64>, StorageError> {
    let mut sql =
        Sql::new("SELECT s.rowid FROM spans AS s WHERE s.bucket IN (SELECT bucket FROM segments) AND s.trace_id = ");
    sql.text_param(trace_id);
    let mut rowids = Vec::new();
    let read = with_session(conn, |session| {
        session.prepare(sql.text())?.rows(sql.params(), |row| {
            rowids.push(row.int(0)?);
            Ok(())
        })
    })
    .await
    .map_err(backend)?;
    read.map_err(backend)?;
    Ok(rowids)
}

/// Reads and writes the span rows with these rowids (rows deleted since are skipped).
async fn read_rows(conn: &mut SqliteConnection, rowids: &[i64]) -> Result<Rows, StorageError> {
    let mut rows = Rows {
        fragments: Vec::with_capacity(rowids.len()),
        ..Rows::default()
    };
    let read = with_session(conn, |session| {
        for chunk in rowids.chunks(ROWIDS_PER_QUERY) {
            let mut sql = Sql::new(SPAN_COLUMNS);
            sql.push("s.rowid IN ")
                .list(chunk.iter().map(|r| SqlValue::Int(*r)));
            session.prepare(sql.text())?.rows(sql.params(), |row| {
                let fragment = write_row(row, &mut rows.written, &mut rows.owners)?;
                if rows.fragments.is_empty() {
                    // Sized once from the first span, rather than grown (and copied) by
                    // doubling: the spans of a trace are usually alike. Capped, in case
                    // the first is an outlier.
                    let per_span = rows.written.len() + rows.written.len() / 4;
                    let rest = per_span.saturating_mul(rowids.len().saturating_sub(1));
                    rows.written.reserve(rest.min(MAX_PRESIZE));
                }
                rows.fragments.push(fragment);
                Ok(())
            })?;
        }
        Ok::<_, direct::CallError>(())
    })
    .await
    .map_err(backend)?;
    read.map_err(backend)?;
    Ok(rows)
}

/// Writes a span row (as [`SPAN_COLUMNS`] selects it) as `load::span_row` and
/// `span_json` together would, but for its resource, scope, events and links.
fn write_row(row: &Row<'_>, out: &mut Vec<u8>, owners: &mut Owners) -> direct::Result<Fragment> {
    let text = |column| row.text(column).map(Option::unwrap_or_default);
    let start = out.len();
    out.extend_from_slice(b"\"span\":{\"traceId\":");
    id(out, row.text(1)?);
    out.extend_from_slice(b",\"spanId\":");
    let span_id = row.text(0)?;
    id(out, span_id);
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
        // As `load` keys events and links: the span ID decoded and written again.
        span_id: normalized_id(span_id).unwrap_or_default(),
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

/// The lowercase form of hex text of whole bytes; `None` when it is not that.
fn normalized_id(text: Option<&str>) -> Option<String> {
    text.filter(|t| is_hex_id(t)).map(str::to_ascii_lowercase)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::config::SqliteConfig;
    use crate::sqlite::query::load;
    use crate::sqlite::schema::open_readers;
    use crate::sqlite::test_support::{add_services, database};

    const TRACE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A trace of `spans` spans (rowids in span order, start times falling) and one span
    /// of another trace. The first half of the spans belong to resource set `set-a`; the
    /// second alternates, starting with `set-b`, so each half numbers the two sets
    /// differently.
    async fn store(dir: &std::path::Path, spans: i64) {
        let mut conn = database(dir).await;
        add_services(&mut conn, &[("set-a", "front"), ("set-b", "back")]).await;
        for sql in [
            "INSERT INTO scopes (id, name, version, dropped_attributes_count) \
             VALUES (1, 'lib', '1', 0)",
            "INSERT INTO segments (bucket, min_start_time_unix_nano, max_start_time_unix_nano, \
             spans) VALUES (0, 1, 10000, 1)",
        ] {
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        }
        sqlx::query(
            "WITH RECURSIVE n(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM n WHERE k + 1 < ?1) \
             INSERT INTO spans (span_id, trace_id, name, kind, start_time_unix_nano, \
             end_time_unix_nano, dropped_span_attributes_count, span_status_message, \
             span_status_code, dropped_resource_attributes_count, dropped_events_count, \
             dropped_links_count, duration, ingestion_time_unix_nano, \
             instrumentation_scope_id, bucket, resource_set_id, attributes, event_count, \
             link_count) \
             SELECT printf('%016x', k + 1), ?2, 'op' || k, 'Server', 10000 - k, 20000, 0, '', \
             'Unset', 0, 0, 0, 10000 + k, 1, 1, 0, \
             CASE WHEN k < ?1 / 2 OR k % 2 = 1 THEN 'set-a' ELSE 'set-b' END, \
             '[[\"k\",\"Int\",' || k || ']]', 0, 0 FROM n \
             UNION ALL SELECT 'ffffffffffffffff', 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'other', \
             'Server', 1, 2, 0, '', 'Unset', 0, 0, 0, 1, 1, 1, 0, NULL, '[]', 0, 0",
        )
        .bind(spans)
        .bind(TRACE)
        .execute(&mut conn)
        .await
        .unwrap();
    }

    async fn written(pool: &SqlitePool) -> (usize, Vec<u8>) {
        let mut conn = pool.acquire().await.unwrap();
        let mut out = Vec::new();
        let count = write_trace(&mut conn, pool, TRACE, &mut out).await.unwrap();
        (count, out)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_trace_read_in_two_halves_is_the_trace_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let spans = SPLIT_AT as i64 + 100;
        store(dir.path(), spans).await;
        let config = |max_connections| SqliteConfig {
            path: dir.path().join("test.db").display().to_string(),
            max_connections,
            ..Default::default()
        };

        // One connection: no second one to split onto.
        let whole = open_readers(&config(1)).unwrap();
        let (count, expected) = written(&whole).await;
        assert_eq!(count, spans as usize);
        assert_eq!(whole.size(), 1);
        // What `get_trace` reads, written by `span_json`.
        let mut conn = whole.acquire().await.unwrap();
        let mut from_structs = Vec::new();
        span_json::write_array(
            &mut from_structs,
            &load::trace(&mut conn, TRACE).await.unwrap(),
        );
        assert!(
            expected == from_structs,
            "rows and structs written differently"
        );

        // Room for two: the second half is read on a second connection, which stays open
        // for the next read.
        let split = open_readers(&config(4)).unwrap();
        for _ in 0..2 {
            let (count, json) = written(&split).await;
            assert_eq!(count, spans as usize);
            assert_eq!(split.size(), 2);
            assert!(json == expected, "the halves joined differ from the whole");
        }
        let parsed: serde_json::Value = serde_json::from_slice(&expected).unwrap();
        let service = |n: usize| parsed[n]["resource"]["attributes"]["service.name"].clone();
        // Sorted by start time: the last span stored comes first.
        assert_eq!(parsed[0]["span"]["name"], format!("op{}", spans - 1));
        assert_eq!(service(0), "front", "odd k: set-a");
        assert_eq!(service(1), "back", "even k in the second half: set-b");
        assert_eq!(service(spans as usize - 1), "front");
    }
}
