//! Reads whole spans back: one query returns each span with its attributes (stored on
//! the span row as JSON), one query each
//! returns the events and links of the selected spans, then each resource and scope is
//! loaded once.

use super::sql::Sql;
use super::stored_attributes::parse_attributes;
use crate::sqlite::direct::{self, with_session, Row};
use crate::sqlite::value::{decode_any, hex, kind_value, status_value, unhex, SqlValue};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Row as _, SqliteConnection, TypeInfo as _, Value as _, ValueRef as _};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use teletrace_core::storage::{StorageError, StoredSpan};

/// The value of attribute alias `a` in a JSON-safe form: doubles as exact text, bytes as
/// hex (JSON cannot hold blobs), NULL kept.
fn json_value(alias: &str) -> String {
    format!(
        "CASE WHEN {alias}.value IS NULL THEN NULL \
         WHEN {alias}.type = 'Double' THEN printf('%!.17g', {alias}.value) \
         WHEN {alias}.type = 'Bytes' THEN hex({alias}.value) ELSE {alias}.value END"
    )
}

/// The attributes of the owner matched by `condition`, as `[[key, type, value], ...]`.
fn attributes_json(table: &str, alias: &str, condition: &str) -> String {
    format!(
        "(SELECT json_group_array(json_array({alias}.key, {alias}.type, {value})) \
         FROM {table} AS {alias} WHERE {condition})",
        value = json_value(alias)
    )
}

pub(crate) fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("sqlite: {e}"))
}

/// Every span of a trace, by start time.
pub(crate) async fn trace(
    conn: &mut SqliteConnection,
    trace_id: &str,
) -> Result<Vec<StoredSpan>, StorageError> {
    let mut which = Sql::new("s.bucket IN (SELECT bucket FROM segments) AND s.trace_id = ");
    which.text_param(trace_id);
    let (mut spans, _) = load(conn, &which).await?;
    // Sorted here rather than by SQLite, which would sort whole rows, attributes included;
    // in place (an unstable sort allocates nothing), as the keys are unique.
    spans.sort_unstable_by(|a, b| {
        (a.span.start_time_unix_nano, &a.span.span_id)
            .cmp(&(b.span.start_time_unix_nano, &b.span.span_id))
    });
    Ok(spans)
}

/// The spans with these rowids, in the order given (rowids no longer stored are
/// skipped).
pub(crate) async fn by_rowids(
    conn: &mut SqliteConnection,
    rowids: &[i64],
) -> Result<Vec<StoredSpan>, StorageError> {
    let position: HashMap<i64, usize> = rowids.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let mut found = Vec::with_capacity(rowids.len());
    for chunk in rowids.chunks(10_000) {
        let mut which = Sql::new("s.rowid IN ");
        which.list(chunk.iter().map(|r| SqlValue::Int(*r)));
        let (spans, read) = load(conn, &which).await?;
        found.extend(read.into_iter().zip(spans));
    }
    found.sort_by_key(|(rowid, _)| position.get(rowid).copied().unwrap_or(usize::MAX));
    Ok(found.into_iter().map(|(_, span)| span).collect())
}

/// The columns `load` selects for each span, in the order [`span_row`] reads them.
pub(crate) const SPAN_COLUMNS: &str =
    "SELECT s.span_id, s.trace_id, s.trace_state, s.parent_span_id, \
     s.name, s.kind, s.start_time_unix_nano, s.end_time_unix_nano, \
     s.dropped_span_attributes_count, s.span_status_message, s.span_status_code, \
     s.dropped_resource_attributes_count, s.dropped_events_count, s.dropped_links_count, \
     s.duration, s.ingestion_time_unix_nano, s.instrumentation_scope_id, s.resource_set_id, \
     CASE WHEN s.event_count IS NULL \
     THEN EXISTS (SELECT 1 FROM events AS e WHERE e.span_id = s.span_id) \
     ELSE s.event_count > 0 END, \
     CASE WHEN s.link_count IS NULL \
     THEN EXISTS (SELECT 1 FROM links AS l WHERE l.span_id = s.span_id) \
     ELSE s.link_count > 0 END, \
     s.attributes, s.rowid FROM spans AS s WHERE ";

/// Where each span read belongs, by index into [`Owners`]' lists, until the resources
/// and scopes are loaded.
pub(crate) struct Owner {
    pub(crate) resource_set: Option<usize>,
    pub(crate) dropped_resource_attributes: u32,
    pub(crate) scope_id: i64,
}

/// The resource sets and scopes of the spans read, each once, and each span's.
#[derive(Default)]
pub(crate) struct Owners {
    /// Distinct resource set IDs, in the order first seen.
    pub(crate) sets: Vec<String>,
    set_index: HashMap<String, usize>,
    /// One per span, in the order read.
    pub(crate) of_span: Vec<Owner>,
}

/// A resource as a span row names it: its resource set (index into [`Owners::sets`]) and
/// the span's count of dropped resource attributes.
pub(crate) type ResourceKey = (Option<usize>, u32);

impl Owner {
    /// The span's resource.
    pub(crate) fn resource_key(&self) -> ResourceKey {
        (self.resource_set, self.dropped_resource_attributes)
    }
}

impl Owners {
    /// Each resource the spans name, loaded once.
    pub(crate) async fn resources(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<HashMap<ResourceKey, Arc<Resource>>, StorageError> {
        let set_ids: BTreeSet<&str> = self.sets.iter().map(String::as_str).collect();
        let sets = load_resource_sets(conn, &set_ids).await?;
        let mut resources = HashMap::new();
        for owner in &self.of_span {
            resources.entry(owner.resource_key()).or_insert_with(|| {
                let attributes = owner
                    .resource_set
                    .and_then(|i| self.sets.get(i))
                    .and_then(|id| sets.get(id.as_str()).cloned())
                    .unwrap_or_default();
                Arc::new(Resource {
                    attributes,
                    dropped_attributes_count: owner.dropped_resource_attributes,
                    ..Default::default()
                })
            });
        }
        Ok(resources)
    }

    /// Each scope the spans name, loaded once.
    pub(crate) async fn scopes(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<HashMap<i64, Arc<InstrumentationScope>>, StorageError> {
        let ids: BTreeSet<i64> = self.of_span.iter().map(|o| o.scope_id).collect();
        Ok(load_scopes(conn, &ids)
            .await?
            .into_iter()
            .map(|(id, scope)| (id, Arc::new(scope)))
            .collect())
    }

    /// Notes the resource set, dropped resource attributes and scope of the next span.
    pub(crate) fn push(
        &mut self,
        set_id: Option<&str>,
        dropped_resource_attributes: u32,
        scope_id: i64,
    ) {
        let resource_set = set_id.map(|id| {
            // Spans of one resource come together: the last set is the usual answer.
            if self.sets.last().is_some_and(|last| last == id) {
                return self.sets.len() - 1;
            }
            if let Some(index) = self.set_index.get(id) {
                return *index;
            }
            self.sets.push(id.to_string());
            self.set_index.insert(id.to_string(), self.sets.len() - 1);
            self.sets.len() - 1
        });
        self.of_span.push(Owner {
            resource_set,
            dropped_resource_attributes,
            scope_id,
        });
    }
}

/// Loads the spans `which` (a condition on `spans AS s`) selects, in the order SQLite
/// returns them, with their rowids: one query for the span rows with their attributes,
/// run through SQLite's C API in one call (`direct.rs`: the columns are read in place,
/// with no row copied through sqlx's worker), one each for the events and links of the
/// spans that have any, then each resource and scope once, shared by its spans.
async fn load(
    conn: &mut SqliteConnection,
    which: &Sql,
) -> Result<(Vec<StoredSpan>, Vec<i64>), StorageError> {
    let mut sql = Sql::new(SPAN_COLUMNS);
    sql.append(which);
    let mut spans = Vec::new();
    let mut rowids = Vec::new();
    let mut owners = Owners::default();
    let mut with_events = Vec::new();
    let mut with_links = Vec::new();
    let read = with_session(conn, |session| {
        session.prepare(sql.text())?.rows(sql.params(), |row| {
            let read = span_row(row)?;
            if read.has_events {
                with_events.push(SqlValue::Text(hex(&read.stored.span.span_id)));
            }
            if read.has_links {
                with_links.push(SqlValue::Text(hex(&read.stored.span.span_id)));
            }
            owners.push(
                read.resource_set_id,
                read.dropped_resource_attributes,
                read.scope_id,
            );
            rowids.push(read.rowid);
            spans.push(read.stored);
            Ok(())
        })
    })
    .await
    .map_err(backend)?;
    read.map_err(backend)?;

    let mut events_by_span = load_events(conn, &with_events).await?;
    let mut links_by_span = load_links(conn, &with_links).await?;
    if !events_by_span.is_empty() || !links_by_span.is_empty() {
        for stored in &mut spans {
            let id = hex(&stored.span.span_id);
            if let Some(events) = events_by_span.remove(&id) {
                stored.span.events = events;
            }
            if let Some(links) = links_by_span.remove(&id) {
                stored.span.links = links;
            }
        }
    }
    attach_owners(conn, &mut spans, owners).await?;
    Ok((spans, rowids))
}

/// The events of the spans with these IDs (hex text), by span ID, in recorded order.
pub(crate) async fn load_events(
    conn: &mut SqliteConnection,
    span_ids: &[SqlValue],
) -> Result<HashMap<String, Vec<Event>>, StorageError> {
    let mut events_by_span: HashMap<String, Vec<Event>> = HashMap::new();
    for chunk in span_ids.chunks(10_000) {
        let mut events = Sql::new(&format!(
            "SELECT e.span_id, e.time_unix_nano, e.name, e.dropped_attributes_count, {attrs} \
             FROM events AS e WHERE e.span_id IN ",
            attrs = attributes_json("event_attributes", "ea", "ea.event_id = e.id"),
        ));
        events.list(chunk.iter().cloned()).push(" ORDER BY e.id");
        for row in events.fetch_all(conn).await.map_err(backend)? {
            let attrs: Option<String> = column(&row, 4)?;
            events_by_span
                .entry(column(&row, 0)?)
                .or_default()
                .push(Event {
                    time_unix_nano: column::<Option<i64>>(&row, 1)?
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(0),
                    name: column::<Option<String>>(&row, 2)?.unwrap_or_default(),
                    dropped_attributes_count: count(&row, 3)?,
                    attributes: parse_attributes(attrs.as_deref())?,
                });
        }
    }
    Ok(events_by_span)
}

/// The links of the spans with these IDs (hex text), by span ID, in recorded order.
pub(crate) async fn load_links(
    conn: &mut SqliteConnection,
    span_ids: &[SqlValue],
) -> Result<HashMap<String, Vec<Link>>, StorageError> {
    let mut links_by_span: HashMap<String, Vec<Link>> = HashMap::new();
    for chunk in span_ids.chunks(10_000) {
        let mut links = Sql::new(&format!(
            "SELECT l.span_id, l.linked_trace_id, l.linked_span_id, l.trace_state, \
             l.dropped_attributes_count, {attrs} FROM links AS l WHERE l.span_id IN ",
            attrs = attributes_json("link_attributes", "la", "la.link_id = l.id"),
        ));
        links.list(chunk.iter().cloned()).push(" ORDER BY l.id");
        for row in links.fetch_all(conn).await.map_err(backend)? {
            let attrs: Option<String> = column(&row, 5)?;
            links_by_span
                .entry(column(&row, 0)?)
                .or_default()
                .push(Link {
                    trace_id: id_bytes(column(&row, 1)?),
                    span_id: id_bytes(column(&row, 2)?),
                    trace_state: column::<Option<String>>(&row, 3)?.unwrap_or_default(),
                    dropped_attributes_count: count(&row, 4)?,
                    attributes: parse_attributes(attrs.as_deref())?,
                    flags: 0,
                });
        }
    }
    Ok(links_by_span)
}

/// Loads each resource set and scope the spans name once, and gives each span its own
/// (shared with the spans of the same resource, dropped count and scope).
async fn attach_owners(
    conn: &mut SqliteConnection,
    spans: &mut [StoredSpan],
    owners: Owners,
) -> Result<(), StorageError> {
    let resources = owners.resources(conn).await?;
    let scopes = owners.scopes(conn).await?;
    for (stored, owner) in spans.iter_mut().zip(&owners.of_span) {
        if let Some(resource) = resources.get(&owner.resource_key()) {
            stored.resource = resource.clone();
        }
        if let Some(scope) = scopes.get(&owner.scope_id) {
            stored.scope = scope.clone();
        }
    }
    Ok(())
}

fn column<'r, T>(row: &'r SqliteRow, index: usize) -> Result<T, StorageError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get::<T, _>(index).map_err(backend)
}

fn count(row: &SqliteRow, index: usize) -> Result<u32, StorageError> {
    let v: i64 = column(row, index)?;
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

fn id_bytes(text: Option<String>) -> Vec<u8> {
    text.as_deref().and_then(unhex).unwrap_or_default()
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A span row as [`SPAN_COLUMNS`] selects it.
struct SpanRow<'r> {
    stored: StoredSpan,
    rowid: i64,
    resource_set_id: Option<&'r str>,
    dropped_resource_attributes: u32,
    scope_id: i64,
    has_events: bool,
    has_links: bool,
}

/// Reads a span row as [`SPAN_COLUMNS`] selects it.
fn span_row<'r>(row: &'r Row<'_>) -> direct::Result<SpanRow<'r>> {
    let id = |column| {
        row.text(column)
            .map(|t| t.and_then(unhex).unwrap_or_default())
    };
    let text = |column| {
        row.text(column)
            .map(|t| t.map(str::to_string).unwrap_or_default())
    };
    let attributes = parse_attributes(row.text(20)?).map_err(|e| direct::CallError {
        code: libsqlite3_sys::SQLITE_CORRUPT,
        message: e.to_string(),
    })?;
    let span = Span {
        span_id: id(0)?,
        trace_id: id(1)?,
        trace_state: text(2)?,
        parent_span_id: id(3)?,
        flags: 0,
        name: text(4)?,
        kind: row.text(5)?.and_then(kind_value).unwrap_or(0),
        start_time_unix_nano: to_u64(row.int(6)?),
        end_time_unix_nano: to_u64(row.int(7)?),
        attributes,
        dropped_attributes_count: to_u32(row.int(8)?),
        events: Vec::new(),
        dropped_events_count: to_u32(row.int(12)?),
        links: Vec::new(),
        dropped_links_count: to_u32(row.int(13)?),
        status: Some(Status {
            message: text(9)?,
            code: row.text(10)?.and_then(status_value).unwrap_or(0),
        }),
    };
    Ok(SpanRow {
        stored: StoredSpan {
            span,
            duration_ns: to_u64(row.int(14)?),
            ingestion_time_ns: to_u64(row.int(15)?),
            ..Default::default()
        },
        rowid: row.int(21)?,
        resource_set_id: row.text(17)?,
        dropped_resource_attributes: to_u32(row.int(11)?),
        scope_id: row.int(16)?,
        has_events: row.int(18)? != 0,
        has_links: row.int(19)? != 0,
    })
}

/// Reads a dynamically typed column.
pub(crate) fn read_value(row: &SqliteRow, index: usize) -> Result<SqlValue, StorageError> {
    let raw: SqliteValueRef<'_> = row.try_get_raw(index).map_err(backend)?;
    if raw.is_null() {
        return Ok(SqlValue::Null);
    }
    let owned = sqlx::ValueRef::to_owned(&raw);
    let type_name = owned.type_info().name().to_string();
    let decoded = match type_name.as_str() {
        "INTEGER" => owned.try_decode::<i64>().map(SqlValue::Int),
        "REAL" => owned.try_decode::<f64>().map(SqlValue::Real),
        "BLOB" => owned.try_decode::<Vec<u8>>().map(SqlValue::Blob),
        _ => owned.try_decode::<String>().map(SqlValue::Text),
    };
    decoded.map_err(backend)
}

/// The attributes of each resource set, in their original order.
async fn load_resource_sets(
    conn: &mut SqliteConnection,
    ids: &BTreeSet<&str>,
) -> Result<HashMap<String, Vec<KeyValue>>, StorageError> {
    let mut out: HashMap<String, Vec<KeyValue>> = HashMap::new();
    let ids: Vec<&str> = ids.iter().copied().collect();
    for chunk in ids.chunks(10_000) {
        let mut sql = Sql::new(
            "SELECT m.resource_set_id, a.key, a.type, a.value FROM resource_set_members AS m \
             JOIN resource_attributes AS a ON a.resource_id = m.resource_attribute_id \
             WHERE m.resource_set_id IN ",
        );
        sql.list(chunk.iter().map(|id| SqlValue::Text(id.to_string())))
            .push(" ORDER BY m.resource_set_id, m.position");
        for row in sql.fetch_all(conn).await.map_err(backend)? {
            let id: String = column(&row, 0)?;
            let key: String = column(&row, 1)?;
            let type_name: String = column(&row, 2)?;
            let value = decode_any(&type_name, read_value(&row, 3)?);
            out.entry(id).or_default().push(KeyValue {
                key,
                value: Some(value),
                ..Default::default()
            });
        }
    }
    Ok(out)
}

async fn load_scopes(
    conn: &mut SqliteConnection,
    ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, InstrumentationScope>, StorageError> {
    let mut scopes: HashMap<i64, InstrumentationScope> = HashMap::new();
    if ids.is_empty() {
        return Ok(scopes);
    }
    let ids: Vec<SqlValue> = ids.iter().map(|i| SqlValue::Int(*i)).collect();
    let mut sql =
        Sql::new("SELECT id, name, version, dropped_attributes_count FROM scopes WHERE id IN ");
    sql.list(ids.iter().cloned());
    for row in sql.fetch_all(conn).await.map_err(backend)? {
        scopes.insert(
            column(&row, 0)?,
            InstrumentationScope {
                name: column::<Option<String>>(&row, 1)?.unwrap_or_default(),
                version: column::<Option<String>>(&row, 2)?.unwrap_or_default(),
                attributes: Vec::new(),
                dropped_attributes_count: count(&row, 3)?,
            },
        );
    }
    let mut sql =
        Sql::new("SELECT scope_id, key, type, value FROM scope_attributes WHERE scope_id IN ");
    sql.list(ids);
    for row in sql.fetch_all(conn).await.map_err(backend)? {
        let id: i64 = column(&row, 0)?;
        let type_name: String = column(&row, 2)?;
        if let Some(scope) = scopes.get_mut(&id) {
            scope.attributes.push(KeyValue {
                key: column(&row, 1)?,
                value: Some(decode_any(&type_name, read_value(&row, 3)?)),
                ..Default::default()
            });
        }
    }
    Ok(scopes)
}
