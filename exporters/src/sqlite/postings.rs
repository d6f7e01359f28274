//! The key/value lookup of span attributes: per-segment posting lists
//! (`span_attribute_postings`).
//!
//! A span's attributes live on its row (`spans.attributes`), so ingestion writes one
//! row per span instead of one per attribute plus an index entry each. What a search
//! needs, "which spans have k = v", is built per ingestion segment once the writer has
//! moved on to the next segment: the segment's spans are read back, and one row per
//! distinct (key, value, type) is written with the rowids of the spans having it, in
//! key order, in one transaction that also marks the segment sealed. A batch that lands
//! in a sealed segment (written concurrently with the seal) clears the mark in its own
//! transaction, and the segment is sealed again. So at every commit a segment is either
//! sealed with complete postings or unsealed and searched by scanning its spans.

use super::attributes::{self, ViewRow};
use super::insert::{InsertSpec, TableRows};
use super::value::SqlValue;
use futures::TryStreamExt as _;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Row as _};
use std::collections::HashMap;
use std::fmt::Write as _;

/// The insert statements of `span_attribute_postings`.
pub(crate) fn spec() -> InsertSpec {
    InsertSpec::new(
        "INSERT",
        "span_attribute_postings",
        &["bucket", "key", "value", "type", "span_rowids"],
        "",
    )
}

/// A posting's value, hashable (doubles by their bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PostingValue {
    Int(i64),
    Real(u64),
    Text(String),
}

impl PostingValue {
    fn from_sql(value: SqlValue) -> Option<Self> {
        match value {
            SqlValue::Int(i) => Some(PostingValue::Int(i)),
            SqlValue::Real(d) if !d.is_nan() => Some(PostingValue::Real(d.to_bits())),
            SqlValue::Text(t) => Some(PostingValue::Text(t)),
            SqlValue::Real(_) | SqlValue::Null | SqlValue::Blob(_) => None,
        }
    }

    fn into_sql(self) -> SqlValue {
        match self {
            PostingValue::Int(i) => SqlValue::Int(i),
            PostingValue::Real(bits) => SqlValue::Real(f64::from_bits(bits)),
            PostingValue::Text(t) => SqlValue::Text(t),
        }
    }
}

/// The postings of one segment, built from a snapshot of its spans at `version`.
pub(crate) struct Built {
    bucket: i64,
    version: i64,
    rows: TableRows,
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
    current: i64,
) -> Result<usize, sqlx::Error> {
    let pending = pending(conn, current).await?;
    for bucket in &pending {
        let built = build(conn, *bucket).await?;
        write(conn, spec, built).await?;
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
    let mut lists: HashMap<(String, String, PostingValue), Vec<i64>> = HashMap::new();
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
                if let Some(value) = PostingValue::from_sql(value) {
                    lists
                        .entry((key, type_name, value))
                        .or_default()
                        .push(rowid);
                }
            }
        }
    }
    tx.commit().await?;
    let mut entries: Vec<_> = lists.into_iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut rows = TableRows::default();
    for ((key, type_name, value), rowids) in entries {
        let mut list = String::with_capacity(rowids.len() * 8 + 2);
        list.push('[');
        for (i, rowid) in rowids.iter().enumerate() {
            if i > 0 {
                list.push(',');
            }
            let _ = write!(list, "{rowid}");
        }
        list.push(']');
        rows.int(bucket);
        rows.text(key);
        rows.push(value.into_sql());
        rows.text(type_name);
        rows.text(list);
    }
    Ok(Built {
        bucket,
        version,
        rows,
    })
}

/// Writes built postings and marks the segment sealed, in one transaction, unless the
/// segment changed since they were built (a batch landed in it, retention cut it) or is
/// sealed already. Must be called with the writer lock held. Returns whether it wrote.
pub(crate) async fn write(
    conn: &mut SqliteConnection,
    spec: &InsertSpec,
    built: Built,
) -> Result<bool, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let now: Option<(i64, i64)> =
        sqlx::query_as("SELECT version, sealed FROM segments WHERE bucket = ?")
            .bind(built.bucket)
            .fetch_optional(&mut *tx)
            .await?;
    if now != Some((built.version, 0)) {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("DELETE FROM span_attribute_postings WHERE bucket = ?")
        .bind(built.bucket)
        .execute(&mut *tx)
        .await?;
    for bound in built.rows.into_statements(spec)? {
        sqlx::query_with(spec.sql(bound.rows), bound.args)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE segments SET sealed = 1 WHERE bucket = ?")
        .bind(built.bucket)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::database;
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
        assert!(!write(&mut conn, &spec, stale).await.unwrap());
        let sealed: i64 = sqlx::query_scalar("SELECT sealed FROM segments")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sealed, 0);

        let fresh = build(&mut conn, 0).await.unwrap();
        assert!(write(&mut conn, &spec, fresh).await.unwrap());
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
        assert!(!write(&mut conn, &spec, again).await.unwrap());
    }
}
