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

/// Seals every unsealed segment except `current` (the one the writer fills). Must be
/// called with the writer lock held. Returns how many segments were sealed.
pub(crate) async fn seal_pending(
    conn: &mut SqliteConnection,
    spec: &InsertSpec,
    current: i64,
) -> Result<usize, sqlx::Error> {
    let pending: Vec<i64> =
        sqlx::query_scalar("SELECT bucket FROM segments WHERE sealed = 0 AND bucket != ?")
            .bind(current)
            .fetch_all(&mut *conn)
            .await?;
    for bucket in &pending {
        seal(conn, spec, *bucket).await?;
    }
    Ok(pending.len())
}

/// Writes the postings of one segment and marks it sealed, in one transaction.
async fn seal(
    conn: &mut SqliteConnection,
    spec: &InsertSpec,
    bucket: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
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
    sqlx::query("DELETE FROM span_attribute_postings WHERE bucket = ?")
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
    for bound in rows.into_statements(spec)? {
        sqlx::query_with(spec.sql(bound.rows), bound.args)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE segments SET sealed = 1 WHERE bucket = ?")
        .bind(bucket)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
