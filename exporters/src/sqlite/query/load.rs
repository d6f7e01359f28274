//! Reads whole spans back: one query returns each span with its attributes (stored on
//! the span row as JSON), one query each
//! returns the events and links of the selected spans, then each resource and scope is
//! loaded once.

use super::sql::Sql;
use crate::sqlite::direct::{self, with_session, Row};
use crate::sqlite::value::{
    decode_any, hex, json_to_any, kind_value, parse_double, static_type, status_value, unhex,
    SqlValue, BYTES, DOUBLE,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use sqlx::sqlite::{SqliteRow, SqliteValueRef};
use sqlx::{Row as _, SqliteConnection, TypeInfo as _, Value as _, ValueRef as _};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
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

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(format!("sqlite: {e}"))
}

/// Every span of a trace, by start time.
pub(crate) async fn trace(
    conn: &mut SqliteConnection,
    trace_id: &str,
) -> Result<Vec<StoredSpan>, StorageError> {
    let mut which = Sql::new("s.bucket IN (SELECT bucket FROM segments) AND s.trace_id = ");
    which.text_param(trace_id);
    let mut spans = load(conn, &which, None).await?;
    // Sorted here rather than by SQLite, which would sort whole rows, attributes included.
    spans.sort_by(|a, b| {
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
    let mut spans = Vec::with_capacity(rowids.len());
    for chunk in rowids.chunks(10_000) {
        let mut which = Sql::new("s.rowid IN ");
        which.list(chunk.iter().map(|r| SqlValue::Int(*r)));
        spans.extend(load(conn, &which, Some(&position)).await?);
    }
    Ok(spans)
}

/// The columns `load` selects for each span, in the order [`span_row`] reads them.
const SPAN_COLUMNS: &str = "SELECT s.span_id, s.trace_id, s.trace_state, s.parent_span_id, \
     s.name, s.kind, s.start_time_unix_nano, s.end_time_unix_nano, \
     s.dropped_span_attributes_count, s.span_status_message, s.span_status_code, \
     s.dropped_resource_attributes_count, s.dropped_events_count, s.dropped_links_count, \
     s.duration, s.ingestion_time_unix_nano, s.instrumentation_scope_id, s.resource_set_id, \
     EXISTS (SELECT 1 FROM events AS e WHERE e.span_id = s.span_id), \
     EXISTS (SELECT 1 FROM links AS l WHERE l.span_id = s.span_id), \
     s.attributes, s.rowid FROM spans AS s WHERE ";

/// Loads the spans `which` (a condition on `spans AS s`) selects: one query for the span
/// rows with their attributes, run through SQLite's C API in one call (`direct.rs`: the
/// columns are read in place, with no row copied through sqlx's worker), one each for
/// the events and links of the spans that have any, then each resource and scope once.
/// With `order` (rowid to position), the spans come in that order; otherwise in the
/// order SQLite returns them.
async fn load(
    conn: &mut SqliteConnection,
    which: &Sql,
    order: Option<&HashMap<i64, usize>>,
) -> Result<Vec<StoredSpan>, StorageError> {
    let mut sql = Sql::new(SPAN_COLUMNS);
    sql.append(which);
    let mut partials = Vec::new();
    let mut with_events = Vec::new();
    let mut with_links = Vec::new();
    let read = with_session(conn, |session| {
        session.prepare(sql.text())?.rows(sql.params(), |row| {
            let (partial, has_events, has_links) = span_row(row)?;
            if has_events {
                with_events.push(SqlValue::Text(hex(&partial.stored.span.span_id)));
            }
            if has_links {
                with_links.push(SqlValue::Text(hex(&partial.stored.span.span_id)));
            }
            partials.push(partial);
            Ok(())
        })
    })
    .await
    .map_err(backend)?;
    read.map_err(backend)?;
    if let Some(order) = order {
        partials.sort_by_key(|p| order.get(&p.rowid).copied().unwrap_or(usize::MAX));
    }

    let mut events_by_span: HashMap<String, Vec<Event>> = HashMap::new();
    for chunk in with_events.chunks(10_000) {
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
    let mut links_by_span: HashMap<String, Vec<Link>> = HashMap::new();
    for chunk in with_links.chunks(10_000) {
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
    if !events_by_span.is_empty() || !links_by_span.is_empty() {
        for p in &mut partials {
            let id = crate::sqlite::value::hex(&p.stored.span.span_id);
            if let Some(events) = events_by_span.remove(&id) {
                p.stored.span.events = events;
            }
            if let Some(links) = links_by_span.remove(&id) {
                p.stored.span.links = links;
            }
        }
    }
    assemble(conn, partials).await
}

/// A span row before its resource and scope are attached.
struct Partial {
    rowid: i64,
    stored: StoredSpan,
    resource_set_id: Option<String>,
    dropped_resource_attributes: u32,
    scope_id: i64,
}

async fn assemble(
    conn: &mut SqliteConnection,
    partials: Vec<Partial>,
) -> Result<Vec<StoredSpan>, StorageError> {
    let set_ids: BTreeSet<&str> = partials
        .iter()
        .filter_map(|p| p.resource_set_id.as_deref())
        .collect();
    let scope_ids: BTreeSet<i64> = partials.iter().map(|p| p.scope_id).collect();
    let sets = load_resource_sets(conn, &set_ids).await?;
    let scopes = load_scopes(conn, &scope_ids).await?;

    let mut out = Vec::with_capacity(partials.len());
    for p in partials {
        let mut stored = p.stored;
        stored.resource = Resource {
            attributes: p
                .resource_set_id
                .as_deref()
                .and_then(|id| sets.get(id).cloned())
                .unwrap_or_default(),
            dropped_attributes_count: p.dropped_resource_attributes,
            ..Default::default()
        };
        stored.scope = scopes.get(&p.scope_id).cloned().unwrap_or_default();
        out.push(stored);
    }
    Ok(out)
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

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_u32(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// A span row as [`SPAN_COLUMNS`] selects it: the span, and whether it has events and
/// links.
fn span_row(row: &Row<'_>) -> direct::Result<(Partial, bool, bool)> {
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
    let partial = Partial {
        rowid: row.int(21)?,
        stored: StoredSpan {
            span,
            duration_ns: to_u64(row.int(14)?),
            ingestion_time_ns: to_u64(row.int(15)?),
            ..Default::default()
        },
        resource_set_id: row.text(17)?.map(str::to_string),
        dropped_resource_attributes: to_u32(row.int(11)?),
        scope_id: row.int(16)?,
    };
    Ok((partial, row.int(18)? != 0, row.int(19)? != 0))
}

/// `[[key, type, value], ...]` as written by [`attributes_json`] and stored in
/// `spans.attributes` (see `sqlite::attributes`), read straight into `KeyValue`s.
fn parse_attributes(text: Option<&str>) -> Result<Vec<KeyValue>, StorageError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let items: Vec<StoredAttribute> = serde_json::from_str(text).map_err(backend)?;
    Ok(items.into_iter().map(|a| a.0).collect())
}

/// One stored attribute, `[key, type, value]`.
struct StoredAttribute(KeyValue);

impl<'de> Deserialize<'de> for StoredAttribute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = StoredAttribute;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute as [key, type, value]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StoredAttribute, A::Error> {
        let key: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let TypeName(type_name) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let value = seq
            .next_element_seed(ValueOfType(&type_name))?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok(StoredAttribute(KeyValue {
            key,
            value: Some(value),
            ..Default::default()
        }))
    }
}

/// An attribute's `type`, borrowed from the known names when it is one.
struct TypeName(Cow<'static, str>);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = TypeName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an attribute type name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeName, E> {
                Ok(TypeName(
                    static_type(v).map_or_else(|| Cow::Owned(v.to_string()), Cow::Borrowed),
                ))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A stored value of the given type, decoded as [`decode_any`] does; arrays and maps
/// written as JSON structures (rather than JSON text) are taken as they are.
struct ValueOfType<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for ValueOfType<'_> {
    type Value = AnyValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AnyValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueOfType<'_> {
    type Value = AnyValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Null))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Int(i64::from(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyValue, E> {
        let stored = i64::try_from(v).map_or(SqlValue::Real(v as f64), SqlValue::Int);
        Ok(decode_any(self.0, stored))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Real(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyValue, E> {
        let stored = match self.0 {
            DOUBLE => parse_double(v).map(SqlValue::Real),
            BYTES => unhex(v).map(SqlValue::Blob),
            _ => None,
        };
        Ok(decode_any(
            self.0,
            stored.unwrap_or_else(|| SqlValue::Text(v.to_string())),
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyValue, A::Error> {
        let json = Json::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(json_to_any(&json))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyValue, A::Error> {
        let json = Json::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(json_to_any(&json))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    #[test]
    fn json_attributes_decode_by_type() {
        let parsed = parse_attributes(Some(
            r#"[["d","Double","0.10000000000000001"],["b","Bytes","00FF"],["t","Bool",1],["m","Map","{\"k\":[1,2.5]}"],["e","Empty",null]]"#,
        ))
        .unwrap();
        assert_eq!(
            parsed[0].value.as_ref().unwrap().value,
            Some(Value::DoubleValue(0.1))
        );
        assert_eq!(
            parsed[1].value.as_ref().unwrap().value,
            Some(Value::BytesValue(vec![0, 255]))
        );
        assert_eq!(
            parsed[2].value.as_ref().unwrap().value,
            Some(Value::BoolValue(true))
        );
        assert!(matches!(
            parsed[3].value.as_ref().unwrap().value,
            Some(Value::KvlistValue(_))
        ));
        assert_eq!(parsed[4].value.as_ref().unwrap().value, None);
    }

    #[test]
    fn stored_attributes_keep_escapes_extremes_and_unknown_types() {
        let parsed = parse_attributes(Some(
            r#"[["k\"ey\u00e9","Str","a\nb"],["min","Int",-9223372036854775808],["big","Int",18446744073709551615],["s","Slice","[1,\"x\"]"],["nan","Double","NaN"],["raw","Slice",[true]],["odd","Custom","v"]]"#,
        ))
        .unwrap();
        let value = |i: usize| parsed[i].value.as_ref().unwrap().value.clone();
        assert_eq!(parsed[0].key, "k\"ey\u{e9}");
        assert_eq!(value(0), Some(Value::StringValue("a\nb".into())));
        assert_eq!(value(1), Some(Value::IntValue(i64::MIN)));
        assert!(matches!(value(2), Some(Value::DoubleValue(d)) if d == u64::MAX as f64));
        let Some(Value::ArrayValue(items)) = value(3) else {
            panic!("a slice stored as JSON text: {:?}", value(3));
        };
        assert_eq!(items.values.len(), 2);
        assert!(matches!(value(4), Some(Value::DoubleValue(d)) if d.is_nan()));
        assert!(matches!(value(5), Some(Value::ArrayValue(_))));
        assert_eq!(parsed[6].key, "odd");
        for bad in [
            r#"[["k","Str"]]"#,
            r#"[["k"]]"#,
            r#"[[1,"Str","v"]]"#,
            r#"{"k":1}"#,
        ] {
            assert!(parse_attributes(Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_attributes(None).unwrap().is_empty());
    }
}
