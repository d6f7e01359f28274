//! The key/value lookup of span attributes: per-segment posting lists
//! (`span_attribute_postings`).
//!
//! A span's attributes live on its row (`spans.attributes`), so ingestion writes one
//! row per span instead of one per attribute plus an index entry each. What a search
//! needs, "which spans have k = v", is written per ingestion segment once the writer has
//! moved on to the next segment: one row per distinct (key, value, type) with the rowids
//! of the spans having it, in key order, in one transaction that also marks the segment
//! sealed. A batch that lands in a sealed segment (written concurrently with the seal)
//! clears the mark in its own transaction, and the segment is sealed again. So at every
//! commit a segment is either sealed with complete postings or unsealed and searched by
//! scanning its spans.
//!
//! The lists come from one of two places, which give the same rows:
//! - **the batches** ([`Accumulator`]): each batch brings the lists of its spans, built
//!   from the OTLP values while it is prepared; the writer adds them to its segment's
//!   once the batch is committed. This is the usual way, and reads nothing back.
//! - **the spans** ([`build`]): the segment's rows are read back and their attributes
//!   parsed. Used when the batches' lists are not complete: after a restart, after
//!   retention cut a segment, after a batch that was partly stored already (a retry).

use super::attributes::{self, ViewRow};
use super::batch::Counters;
use super::direct::{self, with_session, Session};
use super::insert::{insert_all, InsertSpec, TableRows};
use super::value::{any_json, hex, static_type, SqlValue};
use futures::TryStreamExt as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Row as _};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The insert statements of `span_attribute_postings`.
pub(crate) fn spec() -> InsertSpec {
    InsertSpec::new(
        "INSERT",
        "span_attribute_postings",
        &["bucket", "key", "value", "type", "span_rowids"],
    )
}

/// A posting's value, hashable (doubles by their bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum PostingValue<'a> {
    Int(i64),
    Real(u64),
    Text(Cow<'a, str>),
}

impl<'a> PostingValue<'a> {
    fn from_sql(value: SqlValue) -> Option<Self> {
        match value {
            SqlValue::Int(i) => Some(PostingValue::Int(i)),
            SqlValue::Real(d) if !d.is_nan() => Some(PostingValue::Real(d.to_bits())),
            SqlValue::Text(t) => Some(PostingValue::Text(Cow::Owned(t))),
            SqlValue::Real(_) | SqlValue::Null | SqlValue::Blob(_) => None,
        }
    }

    /// The posting value of an OTLP attribute value, as [`attributes::parse`] reads it
    /// back from the column: `None` where the column holds null (an empty value, NaN).
    pub(crate) fn of(value: Option<&'a AnyValue>) -> Option<Self> {
        let value = value?;
        Some(match value.value.as_ref()? {
            Value::StringValue(s) => PostingValue::Text(Cow::Borrowed(s)),
            Value::IntValue(i) => PostingValue::Int(*i),
            Value::DoubleValue(d) if d.is_nan() => return None,
            Value::DoubleValue(d) => PostingValue::Real(d.to_bits()),
            Value::BoolValue(b) => PostingValue::Int(i64::from(*b)),
            Value::BytesValue(b) => PostingValue::Text(Cow::Owned(hex(b))),
            Value::ArrayValue(_) | Value::KvlistValue(_) => {
                PostingValue::Text(Cow::Owned(any_json(value).to_string()))
            }
            Value::StringValueStrindex(_) => return None,
        })
    }

    fn into_owned(self) -> PostingValue<'static> {
        match self {
            PostingValue::Int(i) => PostingValue::Int(i),
            PostingValue::Real(bits) => PostingValue::Real(bits),
            PostingValue::Text(t) => PostingValue::Text(Cow::Owned(t.into_owned())),
        }
    }

    fn into_sql(self) -> SqlValue {
        match self {
            PostingValue::Int(i) => SqlValue::Int(i),
            PostingValue::Real(bits) => SqlValue::Real(f64::from_bits(bits)),
            PostingValue::Text(t) => SqlValue::Text(t.into_owned()),
        }
    }
}

/// What a posting row is keyed by: attribute key, type name, value.
pub(crate) type PostingKey<'a> = (Cow<'a, str>, &'static str, PostingValue<'a>);

/// Posting lists: the rowids of the spans having each (key, type, value).
#[derive(Debug, Default)]
pub(crate) struct Lists<'a>(HashMap<PostingKey<'a>, Vec<i64>, foldhash::fast::RandomState>);

impl<'a> Lists<'a> {
    /// Adds span `rowid`'s attribute `key` of type `type_name` (when it has a posting
    /// value).
    pub(crate) fn add(
        &mut self,
        rowid: i64,
        key: &'a str,
        type_name: &'static str,
        value: Option<&'a AnyValue>,
    ) {
        if let Some(value) = PostingValue::of(value) {
            self.push((Cow::Borrowed(key), type_name, value), rowid);
        }
    }

    /// Adds span `rowid`'s attribute, owned.
    fn add_owned(
        &mut self,
        rowid: i64,
        key: String,
        type_name: &'static str,
        value: PostingValue<'a>,
    ) {
        self.push((Cow::Owned(key), type_name, value), rowid);
    }

    fn push(&mut self, key: PostingKey<'a>, rowid: i64) {
        self.0.entry(key).or_default().push(rowid);
    }

    /// The same lists, owning their keys and values.
    pub(crate) fn into_owned(self) -> Lists<'static> {
        Lists(
            self.0
                .into_iter()
                .map(|((key, type_name, value), rowids)| {
                    (
                        (Cow::Owned(key.into_owned()), type_name, value.into_owned()),
                        rowids,
                    )
                })
                .collect(),
        )
    }

    /// Adds every list of `other`.
    fn merge(&mut self, other: Lists<'a>) {
        if self.0.is_empty() {
            self.0 = other.0;
            return;
        }
        for (key, rowids) in other.0 {
            self.0.entry(key).or_default().extend(rowids);
        }
    }
}

/// The lists of the segments the writer's committed batches went to, for the sealer
/// to write without reading the spans back. A segment's lists are kept only while they
/// hold every batch of it: `version` (the segment row's, bumped by every batch and by
/// retention) must follow on from the last batch added.
#[derive(Debug, Default)]
pub(crate) struct Accumulator {
    segments: HashMap<i64, (i64, Lists<'static>)>,
}

impl Accumulator {
    /// Adds a committed batch's lists to segment `bucket`, whose version the batch set
    /// to `version`. `complete` is false when some of the batch's spans were not stored
    /// (stored before: a retry); the segment's lists are then dropped, as they are when
    /// a batch is missing (a version skipped).
    pub(crate) fn add(&mut self, bucket: i64, version: i64, lists: Lists<'static>, complete: bool) {
        match self.segments.get_mut(&bucket) {
            Some((last, held)) if complete && *last + 1 == version => {
                held.merge(lists);
                *last = version;
            }
            None if complete && version == 0 => {
                self.segments.insert(bucket, (version, lists));
            }
            _ => {
                self.segments.remove(&bucket);
            }
        }
    }

    /// Takes segment `bucket`'s lists, when complete, with the version they reflect.
    pub(crate) fn take(&mut self, bucket: i64) -> Option<(i64, Lists<'static>)> {
        self.segments.remove(&bucket)
    }

    /// Drops every segment's lists (retention changed segments behind their back).
    pub(crate) fn clear(&mut self) {
        self.segments.clear();
    }
}

/// The posting rows of one segment, built at `version` of it (before the writer lock is
/// taken).
pub(crate) struct Built {
    bucket: i64,
    version: i64,
    rows: TableRows,
}

impl Built {
    /// The rows of segment `bucket`'s `lists`.
    pub(crate) fn new(bucket: i64, version: i64, lists: Lists<'_>) -> Built {
        let mut rows = TableRows::default();
        for ((key, type_name, value), list) in sorted_rows(lists) {
            rows.int(bucket);
            rows.text(key);
            rows.push(value.into_sql());
            rows.text(type_name);
            rows.text(list);
        }
        Built {
            bucket,
            version,
            rows,
        }
    }
}

/// The posting rows of `lists`: in key order, each list a JSON array in rowid order.
fn sorted_rows(lists: Lists<'_>) -> Vec<(PostingKey<'_>, String)> {
    let mut entries: Vec<_> = lists.0.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    entries
        .into_iter()
        .map(|(key, mut rowids)| {
            if !rowids.is_sorted() {
                rowids.sort_unstable();
            }
            let mut list = String::with_capacity(rowids.len() * 8 + 2);
            list.push('[');
            for (i, rowid) in rowids.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                let _ = write!(list, "{rowid}");
            }
            list.push(']');
            (key, list)
        })
        .collect()
}

/// The unsealed segments other than `current` (the one the writer fills).
pub(crate) async fn pending(
    conn: &mut SqliteConnection,
    current: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT bucket FROM segments WHERE sealed = 0 AND bucket != ?")
        .bind(current)
        .fetch_all(&mut *conn)
        .await
}

/// Seals every unsealed segment except `current`, on the writer connection (at start
/// and after retention; batches use [`Sealer`]). Must be called with the writer lock
/// held. Returns how many segments were sealed.
pub(crate) async fn seal_pending(
    conn: &mut SqliteConnection,
    spec: &InsertSpec,
    counters: &Counters,
    current: i64,
) -> Result<usize, sqlx::Error> {
    let pending = pending(conn, current).await?;
    for bucket in &pending {
        let built = build(conn, *bucket).await?;
        if with_session(conn, |s| write(s, spec, &built)).await?? {
            counters.sealed_from_spans.add(1);
        }
    }
    Ok(pending.len())
}

/// Reads a segment's spans (in one read transaction, so the version and the rows
/// agree) and builds its postings. Needs no lock: [`write`] checks that the segment did
/// not change since.
pub(crate) async fn build(conn: &mut SqliteConnection, bucket: i64) -> Result<Built, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let version: i64 = sqlx::query_scalar("SELECT version FROM segments WHERE bucket = ?")
        .bind(bucket)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
    let mut lists = Lists::default();
    {
        let mut rows =
            sqlx::query("SELECT rowid, attributes FROM spans WHERE bucket = ? ORDER BY rowid")
                .bind(bucket)
                .fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            let rowid: i64 = row.try_get(0)?;
            let text: &str = row.try_get(1)?;
            let parsed = match attributes::parse(text) {
                Ok(parsed) => parsed,
                Err(e) => {
                    // Written by this exporter, so never expected; the span stays findable
                    // by everything but its attributes rather than failing the segment.
                    tracing::warn!(rowid, error = %e, "sqlite: span attributes are not valid JSON");
                    continue;
                }
            };
            for ViewRow {
                key,
                type_name,
                value,
            } in parsed
            {
                if let (Some(type_name), Some(value)) =
                    (static_type(&type_name), PostingValue::from_sql(value))
                {
                    lists.add_owned(rowid, key, type_name, value);
                }
            }
        }
    }
    tx.commit().await?;
    Ok(Built::new(bucket, version, lists))
}

/// Writes built postings and marks the segment sealed, in one transaction, unless the
/// segment changed since they were built (a batch landed in it, retention cut it) or is
/// sealed already. Must be called with the writer lock held. Returns whether it wrote.
pub(crate) fn write(
    session: &Session<'_>,
    spec: &InsertSpec,
    built: &Built,
) -> direct::Result<bool> {
    let tx = session.begin_immediate()?;
    let bucket = [SqlValue::Int(built.bucket)];
    let current = session
        .prepare("SELECT version FROM segments WHERE bucket = ? AND sealed = 0")?
        .run(&bucket)?
        .first;
    if current != Some(built.version) {
        return Ok(false);
    }
    session
        .prepare("DELETE FROM span_attribute_postings WHERE bucket = ?")?
        .run(&bucket)?;
    insert_all(session, spec, &built.rows)?;
    session
        .prepare("UPDATE segments SET sealed = 1 WHERE bucket = ?")?
        .run(&bucket)?;
    tx.commit()?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::database;
    use super::super::value::{INT, STR};
    use super::*;

    async fn add_span(conn: &mut SqliteConnection, id: &str, attributes: &str) {
        sqlx::query(
            "INSERT INTO spans (span_id, trace_id, start_time_unix_nano, end_time_unix_nano, \
             dropped_span_attributes_count, span_status_message, span_status_code, \
             dropped_resource_attributes_count, dropped_events_count, dropped_links_count, \
             duration, ingestion_time_unix_nano, instrumentation_scope_id, bucket, attributes) \
             VALUES (?, '0123456789abcdef0123456789abcdef', 1, 2, 0, '', 'Unset', 0, 0, 0, 1, 1, 1, 0, ?)",
        )
        .bind(id)
        .bind(attributes)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO segments (bucket, min_start_time_unix_nano, max_start_time_unix_nano, spans) \
             VALUES (0, 1, 1, 1) ON CONFLICT (bucket) DO UPDATE SET sealed = 0, \
             version = version + 1, spans = spans + 1",
        )
        .execute(&mut *conn)
        .await
        .unwrap();
    }

    async fn write_locked(conn: &mut SqliteConnection, spec: &InsertSpec, built: &Built) -> bool {
        with_session(conn, |s| write(s, spec, built))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn postings_built_before_a_change_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path()).await;
        let spec = spec();
        add_span(
            &mut conn,
            "0000000000000001",
            r#"[["k","Str","a"],["n","Int",1]]"#,
        )
        .await;
        let stale = build(&mut conn, 0).await.unwrap();
        // A batch lands in the segment after the build.
        add_span(&mut conn, "0000000000000002", r#"[["k","Str","a"]]"#).await;
        assert!(!write_locked(&mut conn, &spec, &stale).await);
        let sealed: i64 = sqlx::query_scalar("SELECT sealed FROM segments")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sealed, 0);

        let fresh = build(&mut conn, 0).await.unwrap();
        assert!(write_locked(&mut conn, &spec, &fresh).await);
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT key, CAST(value AS TEXT), span_rowids FROM span_attribute_postings ORDER BY key",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            rows,
            vec![
                ("k".into(), "a".into(), "[1,2]".into()),
                ("n".into(), "1".into(), "[1]".into()),
            ]
        );
        // Sealed already: a second write of the same build is refused.
        let again = build(&mut conn, 0).await.unwrap();
        assert!(!write_locked(&mut conn, &spec, &again).await);
    }

    fn any(value: Value) -> AnyValue {
        AnyValue { value: Some(value) }
    }

    /// Every kind of value, with the edges of doubles and escapes in strings.
    fn values() -> Vec<Option<AnyValue>> {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, KeyValueList};
        let mut out = vec![
            None,
            Some(AnyValue { value: None }),
            Some(any(Value::StringValue(String::new()))),
            Some(any(Value::StringValue("a \"q\" \\ \n\u{1}é ✓".into()))),
            Some(any(Value::BoolValue(true))),
            Some(any(Value::BoolValue(false))),
            Some(any(Value::BytesValue(vec![0, 0xde, 0xad]))),
            Some(any(Value::ArrayValue(ArrayValue {
                values: vec![any(Value::IntValue(1)), any(Value::StringValue("x".into()))],
            }))),
            Some(any(Value::KvlistValue(KeyValueList {
                values: vec![KeyValue {
                    key: "k".into(),
                    value: Some(any(Value::DoubleValue(0.5))),
                    ..Default::default()
                }],
            }))),
            Some(any(Value::StringValueStrindex(3))),
        ];
        for i in [0, -1, 1, i64::MIN, i64::MAX, 9_007_199_254_740_993] {
            out.push(Some(any(Value::IntValue(i))));
        }
        for d in [
            0.0,
            -0.0,
            0.1,
            42.0,
            -1.5e-300,
            1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            9_007_199_254_740_993.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            out.push(Some(any(Value::DoubleValue(d))));
        }
        out
    }

    #[test]
    fn lists_from_otlp_values_equal_lists_read_back_from_the_column() {
        use opentelemetry_proto::tonic::common::v1::KeyValue;
        let attributes: Vec<KeyValue> = values()
            .into_iter()
            .enumerate()
            .map(|(n, value)| KeyValue {
                key: format!("k{n}"),
                value,
                ..Default::default()
            })
            .collect();
        let (text, written) = attributes::encode(&attributes);
        let mut from_values = Lists::default();
        for (kv, type_name) in written {
            from_values.add(7, &kv.key, type_name, kv.value.as_ref());
        }
        let mut read_back = Lists::default();
        for row in attributes::parse(&text).unwrap() {
            if let (Some(type_name), Some(value)) = (
                static_type(&row.type_name),
                PostingValue::from_sql(row.value),
            ) {
                read_back.add_owned(7, row.key, type_name, value);
            }
        }
        let sorted = |lists: Lists<'_>| {
            let mut entries: Vec<_> = lists
                .into_owned()
                .0
                .into_iter()
                .map(|((k, t, v), rowids)| (k.into_owned(), t, v, rowids))
                .collect();
            entries.sort_by(|a, b| (&a.0, a.1, &a.2).cmp(&(&b.0, b.1, &b.2)));
            entries
        };
        let (ours, theirs) = (sorted(from_values), sorted(read_back));
        // Every value but the empty ones and NaN has a posting.
        assert_eq!(ours.len(), values().len() - 4);
        assert_eq!(ours, theirs);
    }

    fn one(rowid: i64) -> Lists<'static> {
        let mut lists = Lists::default();
        lists.add_owned(rowid, "k".into(), STR, PostingValue::Text("v".into()));
        lists
    }

    #[test]
    fn the_accumulator_keeps_a_segment_only_while_it_has_every_batch() {
        let mut acc = Accumulator::default();
        // A segment's first batch (version 0), then the next two.
        acc.add(1, 0, one(10), true);
        acc.add(1, 1, one(11), true);
        acc.add(1, 2, one(12), true);
        let (version, lists) = acc.take(1).unwrap();
        assert_eq!(version, 2);
        assert_eq!(lists.0.values().next().unwrap(), &vec![10, 11, 12]);
        assert!(acc.take(1).is_none(), "taken");

        // A segment first seen past version 0 (it existed before): not held.
        acc.add(2, 3, one(20), true);
        assert!(acc.take(2).is_none());
        // A version skipped (retention bumped it in between): dropped.
        acc.add(3, 0, one(30), true);
        acc.add(3, 2, one(31), true);
        assert!(acc.take(3).is_none());
        // A batch partly stored before (a retry): dropped.
        acc.add(4, 0, one(40), true);
        acc.add(4, 1, one(41), false);
        assert!(acc.take(4).is_none());
        // Cleared by retention.
        acc.add(5, 0, one(50), true);
        acc.clear();
        assert!(acc.take(5).is_none());
    }

    #[test]
    fn built_lists_are_in_rowid_order_whatever_order_batches_committed_in() {
        let mut acc = Accumulator::default();
        acc.add(1, 0, one(20), true);
        acc.add(1, 1, one(10), true);
        let mut other = one(15);
        other.add_owned(15, "a".into(), INT, PostingValue::Int(2));
        acc.add(1, 2, other, true);
        let (_, lists) = acc.take(1).unwrap();
        let rows: Vec<(String, String)> = sorted_rows(lists)
            .into_iter()
            .map(|((key, _, _), list)| (key.into_owned(), list))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("a".into(), "[15]".into()),
                ("k".into(), "[10,15,20]".into())
            ]
        );
    }
}
