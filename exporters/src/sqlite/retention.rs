//! Retention: deletes spans older than the configured age (by start time) with their
//! attributes, resource links, events and links, in chunks so that ingestion interleaves.

use super::batch::Counters;
use super::postings;
use super::writer::WriterConn;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection as _;
use sqlx::Row as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Spans deleted per transaction.
const CHUNK: i64 = 5_000;

/// The background task deleting old spans every check interval.
pub(crate) struct RetentionTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl RetentionTask {
    /// Starts the task; it first runs one `interval` after start.
    pub(crate) fn spawn(
        writer: WriterConn,
        counters: Arc<Counters>,
        retention: Duration,
        interval: Duration,
    ) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => return,
                }
                match run_once(&writer, &counters, retention).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(deleted_spans = n, "sqlite retention deleted old spans")
                    }
                    Err(e) => tracing::warn!(error = %e, "sqlite retention failed"),
                }
            }
        });
        RetentionTask { stop, handle }
    }

    /// Stops the task, waiting for a pass in progress to finish its current chunk.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

/// Deletes every span that started more than `retention` ago, then what no span uses any
/// more (resources, scopes, segments, tag catalog entries). Returns the spans deleted.
pub(crate) async fn run_once(
    writer: &WriterConn,
    counters: &Counters,
    retention: Duration,
) -> Result<u64, sqlx::Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let cutoff = i64::try_from(now.saturating_sub(retention.as_nanos())).unwrap_or(i64::MAX);
    let mut total = 0u64;
    loop {
        let mut guard = writer.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Ok(total);
        };
        let deleted = delete_chunk(conn, cutoff).await?;
        total += deleted;
        if deleted < CHUNK as u64 {
            if total > 0 {
                // The batches' lists no longer match the segments retention cut; those
                // are sealed from their spans, now or (the current one) later.
                counters
                    .postings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                postings::seal_pending(
                    conn,
                    &postings::spec(),
                    counters,
                    counters.current_segment(),
                )
                .await?;
                // Still under the writer lock: no batch can be between its catalog check
                // and its commit while entries leave the catalog.
                let removed = delete_orphans(conn).await?;
                if !removed.is_empty() {
                    counters
                        .known_keys
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|(source, key, type_name)| {
                            !removed.contains(&(
                                source.name().to_string(),
                                key.clone(),
                                type_name.to_string(),
                            ))
                        });
                }
            }
            return Ok(total);
        }
        drop(guard);
        tokio::task::yield_now().await;
    }
}

const DOOMED: &str = "(SELECT span_id FROM temp.retention_doomed)";

async fn delete_chunk(conn: &mut SqliteConnection, cutoff: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS retention_doomed \
         (span_rowid INTEGER PRIMARY KEY, bucket INTEGER NOT NULL, span_id TEXT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM temp.retention_doomed")
        .execute(&mut *tx)
        .await?;
    let doomed = sqlx::query(
        "INSERT OR IGNORE INTO temp.retention_doomed SELECT rowid, bucket, span_id FROM spans \
         WHERE start_time_unix_nano < ? ORDER BY start_time_unix_nano LIMIT ?",
    )
    .bind(cutoff)
    .bind(CHUNK)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if doomed == 0 {
        tx.rollback().await?;
        return Ok(0);
    }
    for statement in [
        // The segments losing spans are sealed again (see `run_once`), so their
        // postings never list a deleted span.
        "UPDATE segments SET sealed = 0, version = version + 1 WHERE bucket IN \
         (SELECT DISTINCT bucket FROM temp.retention_doomed)"
            .to_string(),
        format!(
            "DELETE FROM event_attributes WHERE event_id IN \
             (SELECT id FROM events WHERE span_id IN {DOOMED})"
        ),
        format!("DELETE FROM events WHERE span_id IN {DOOMED}"),
        format!(
            "DELETE FROM link_attributes WHERE link_id IN \
             (SELECT id FROM links WHERE span_id IN {DOOMED})"
        ),
        format!("DELETE FROM links WHERE span_id IN {DOOMED}"),
        "DELETE FROM spans WHERE rowid IN (SELECT span_rowid FROM temp.retention_doomed)"
            .to_string(),
        "DELETE FROM temp.retention_doomed".to_string(),
    ] {
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(doomed)
}

/// Deletes what no span points at any more: resources and their attributes, scopes and
/// their attributes, segments, and tag catalog entries whose attribute rows are all gone.
/// Returns the catalog entries removed, as (source, key, type).
async fn delete_orphans(
    conn: &mut SqliteConnection,
) -> Result<HashSet<(String, String, String)>, sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for statement in [
        "DELETE FROM resource_set_members WHERE resource_set_id IN \
         (SELECT DISTINCT m.resource_set_id FROM resource_set_members AS m \
          WHERE NOT EXISTS (SELECT 1 FROM spans AS s WHERE s.resource_set_id = m.resource_set_id))",
        "DELETE FROM resource_attributes WHERE NOT EXISTS (SELECT 1 FROM resource_set_members AS m \
         WHERE m.resource_attribute_id = resource_attributes.resource_id)",
        "DELETE FROM segments WHERE NOT EXISTS \
         (SELECT 1 FROM spans AS s WHERE s.bucket = segments.bucket)",
        "DELETE FROM span_attribute_postings WHERE bucket NOT IN (SELECT bucket FROM segments)",
        // One scan of spans, whatever the number of scopes.
        "DELETE FROM scopes WHERE id NOT IN (SELECT instrumentation_scope_id FROM spans)",
        "DELETE FROM scope_attributes WHERE scope_id NOT IN (SELECT id FROM scopes)",
    ] {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    // Span attributes: the postings of sealed segments (all but the current one, after
    // the reseal above), and the spans of the rest. An attribute only ever seen without
    // a value (Empty, NaN) has no posting, so its catalog entry goes once its spans leave
    // the current segment; it comes back with the next span that has it.
    let rows = sqlx::query(
        "DELETE FROM attribute_keys AS k WHERE NOT (CASE k.source \
         WHEN 'span' THEN EXISTS (SELECT 1 FROM segments AS g WHERE g.sealed = 1 AND EXISTS \
           (SELECT 1 FROM span_attribute_postings AS a \
            WHERE a.bucket = g.bucket AND a.key = k.key AND a.type = k.type)) \
           OR EXISTS (SELECT 1 FROM spans AS s, json_each(s.attributes) AS j \
            WHERE s.bucket IN (SELECT bucket FROM segments WHERE sealed = 0) \
            AND j.value ->> 0 = k.key AND j.value ->> 1 = k.type) \
         WHEN 'resource' THEN EXISTS (SELECT 1 FROM resource_attributes AS a \
           WHERE a.key = k.key AND a.type = k.type) \
         WHEN 'scope' THEN EXISTS (SELECT 1 FROM scope_attributes AS a \
           WHERE a.key = k.key AND a.type = k.type) \
         WHEN 'event' THEN EXISTS (SELECT 1 FROM event_attributes AS a \
           WHERE a.key = k.key AND a.type = k.type) \
         WHEN 'link' THEN EXISTS (SELECT 1 FROM link_attributes AS a \
           WHERE a.key = k.key AND a.type = k.type) \
         ELSE 1 END) \
         RETURNING source, key, type",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut removed = HashSet::new();
    for row in rows {
        removed.insert((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
    }
    tx.commit().await?;
    Ok(removed)
}
