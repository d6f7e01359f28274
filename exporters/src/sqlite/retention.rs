//! Retention: deletes spans older than the configured age (by start time) with their
//! attributes, resource links, events and links, in chunks so that ingestion interleaves.

use super::writer::WriterConn;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection as _;
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
    pub(crate) fn spawn(writer: WriterConn, retention: Duration, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => return,
                }
                match run_once(&writer, retention).await {
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

/// Deletes every span that started more than `retention` ago. Returns the number deleted.
pub(crate) async fn run_once(writer: &WriterConn, retention: Duration) -> Result<u64, sqlx::Error> {
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
                delete_orphans(conn).await?;
            }
            return Ok(total);
        }
        drop(guard);
        tokio::task::yield_now().await;
    }
}

const DOOMED: &str = "(SELECT span_id FROM temp.retention_doomed)";
const DOOMED_KEYS: &str = "(SELECT bucket, span_id FROM temp.retention_doomed)";

async fn delete_chunk(conn: &mut SqliteConnection, cutoff: i64) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS retention_doomed \
         (bucket INTEGER NOT NULL, span_id TEXT NOT NULL, PRIMARY KEY (bucket, span_id)) WITHOUT ROWID",
    )
    .execute(&mut *conn)
    .await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("DELETE FROM temp.retention_doomed")
        .execute(&mut *tx)
        .await?;
    let doomed = sqlx::query(
        "INSERT OR IGNORE INTO temp.retention_doomed SELECT bucket, span_id FROM spans \
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
        format!("DELETE FROM span_attributes WHERE (bucket, span_id) IN {DOOMED_KEYS}"),
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
        format!("DELETE FROM spans WHERE span_id IN {DOOMED}"),
        "DELETE FROM temp.retention_doomed".to_string(),
    ] {
        sqlx::query(&statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(doomed)
}

/// Resources, resource attributes and segments no span points at any more.
async fn delete_orphans(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for statement in [
        "DELETE FROM resource_set_members WHERE resource_set_id IN \
         (SELECT DISTINCT m.resource_set_id FROM resource_set_members AS m \
          WHERE NOT EXISTS (SELECT 1 FROM spans AS s WHERE s.resource_set_id = m.resource_set_id))",
        "DELETE FROM resource_attributes WHERE NOT EXISTS (SELECT 1 FROM resource_set_members AS m \
         WHERE m.resource_attribute_id = resource_attributes.resource_id)",
        "DELETE FROM segments WHERE NOT EXISTS \
         (SELECT 1 FROM spans AS s WHERE s.bucket = segments.bucket)",
    ] {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}
