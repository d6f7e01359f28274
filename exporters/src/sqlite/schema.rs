//! The database: embedded migrations, connection settings, and opening the writer
//! connection and the read pool.

use super::config::SqliteConfig;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Connection as _};
use std::path::Path;
use std::str::FromStr as _;

/// The schema, versioned: `migrations/NNNN_*.sql`, applied in order on start and
/// recorded in `_sqlx_migrations`.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("src/sqlite/migrations");

/// Every table of the Teletrace layout (`span_resource_attributes` is a view here).
pub const TABLES: &[&str] = &[
    "scopes",
    "spans",
    "events",
    "links",
    "scope_attributes",
    "span_attributes",
    "resource_attributes",
    "event_attributes",
    "link_attributes",
    "span_resource_attributes",
];

/// Page cache of the writer connection, in KiB (`PRAGMA cache_size` takes negative KiB).
const WRITER_CACHE_KIB: i64 = 128 * 1024;
/// Page cache of each read connection, in KiB.
const READER_CACHE_KIB: i64 = 32 * 1024;
/// Memory-mapped I/O per connection, in bytes.
const MMAP_BYTES: i64 = 1 << 30;
/// The WAL is truncated back to this size after checkpoints.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// Statements kept prepared per connection (the writer's multi-row inserts need about
/// 130).
const STATEMENT_CACHE: usize = 256;

fn base_options(config: &SqliteConfig) -> Result<SqliteConnectOptions, sqlx::Error> {
    let synchronous = SqliteSynchronous::from_str(&config.synchronous)?;
    Ok(SqliteConnectOptions::new()
        .filename(&config.path)
        .busy_timeout(config.busy_timeout)
        .synchronous(synchronous)
        .foreign_keys(false)
        .statement_cache_capacity(STATEMENT_CACHE)
        .pragma("temp_store", "memory")
        .pragma("mmap_size", MMAP_BYTES.to_string()))
}

/// Opens (creating it and its directory when missing) the writer connection and brings
/// the schema up to date.
pub(crate) async fn open_writer(config: &SqliteConfig) -> Result<SqliteConnection, sqlx::Error> {
    if let Some(dir) = Path::new(&config.path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let journal_mode = SqliteJournalMode::from_str(&config.journal_mode)?;
    let options = base_options(config)?
        .create_if_missing(true)
        .journal_mode(journal_mode)
        .pragma("cache_size", (-WRITER_CACHE_KIB).to_string())
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string())
        // The multi-row inserts are long SQL texts; logging them helps nobody.
        .disable_statement_logging();
    let mut conn = SqliteConnection::connect_with(&options).await?;
    if let Err(e) = MIGRATOR.run_direct(&mut conn).await {
        let _ = conn.close().await;
        return Err(e.into());
    }
    Ok(conn)
}

/// Opens the connection the background checkpointer copies the WAL into the database
/// through (see `checkpoint.rs`); the writer has created the database by then.
pub(crate) async fn open_checkpointer(
    config: &SqliteConfig,
) -> Result<SqliteConnection, sqlx::Error> {
    SqliteConnection::connect_with(&base_options(config)?.disable_statement_logging()).await
}

/// Opens the read pool (connections are made on demand, read-only).
pub(crate) fn open_readers(config: &SqliteConfig) -> Result<SqlitePool, sqlx::Error> {
    let options = base_options(config)?
        .pragma("cache_size", (-READER_CACHE_KIB).to_string())
        .pragma("query_only", "ON");
    Ok(SqlitePoolOptions::new()
        .max_connections(config.max_connections)
        .min_connections(0)
        .connect_lazy_with(options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::migrate::Migrator;
    use std::borrow::Cow;

    const SPAN_COLUMNS: &str = "span_id, trace_id, parent_span_id, name, kind, \
        start_time_unix_nano, end_time_unix_nano, dropped_span_attributes_count, \
        span_status_message, span_status_code, dropped_resource_attributes_count, \
        dropped_events_count, dropped_links_count, duration, ingestion_time_unix_nano, \
        instrumentation_scope_id, bucket, attributes";

    async fn add_span(
        conn: &mut SqliteConnection,
        or_ignore: bool,
        rowid: Option<i64>,
        id: &str,
        start: i64,
    ) -> u64 {
        let verb = if or_ignore {
            "INSERT OR IGNORE"
        } else {
            "INSERT"
        };
        sqlx::query(&format!(
            "{verb} INTO spans (rowid, {SPAN_COLUMNS}) VALUES (?, ?, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', '', \
             'op', 'Server', ?, ?, 0, '', 'Unset', 0, 0, 0, 5, 1, 1, 0, '[[\"k\",\"Str\",\"v\"]]')"
        ))
        .bind(rowid)
        .bind(id)
        .bind(start)
        .bind(start + 5)
        .execute(&mut *conn)
        .await
        .unwrap()
        .rows_affected()
    }

    /// Migration 0004 rebuilds `spans`, `events` and `links`: a database written under
    /// 0003 keeps every row, the spans' rowids (which postings and tokens hold), and its
    /// views; afterwards a span is unique by start time and span ID.
    #[tokio::test]
    async fn migration_0004_keeps_rows_and_rowids() {
        let dir = tempfile::tempdir().unwrap();
        let config = SqliteConfig {
            path: dir.path().join("old.db").display().to_string(),
            ..Default::default()
        };
        let options = base_options(&config).unwrap().create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        let before_0004 = Migrator {
            migrations: Cow::Owned(MIGRATOR.migrations[..3].to_vec()),
            ignore_missing: false,
            locking: true,
            no_tx: false,
        };
        before_0004.run_direct(&mut conn).await.unwrap();
        for (rowid, id, start) in [(5, "000000000000000a", 100), (9, "000000000000000b", 200)] {
            add_span(&mut conn, false, Some(rowid), id, start).await;
        }
        // Under 0003 the span ID was the primary key.
        assert!(sqlx::query(&format!(
            "INSERT INTO spans ({SPAN_COLUMNS}) SELECT {SPAN_COLUMNS} FROM spans WHERE rowid = 5"
        ))
        .execute(&mut conn)
        .await
        .is_err());
        sqlx::query("INSERT INTO events (id, span_id, time_unix_nano, name, dropped_attributes_count) VALUES (3, '000000000000000b', 150, 'e', 0)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO links (id, span_id, trace_state, dropped_attributes_count, linked_trace_id, linked_span_id) VALUES (4, '000000000000000b', '', 0, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', '000000000000000c')")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();

        let mut conn = open_writer(&config).await.unwrap();
        let spans: Vec<(i64, String, i64)> =
            sqlx::query_as("SELECT rowid, span_id, start_time_unix_nano FROM spans ORDER BY rowid")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(
            spans,
            [(5, "000000000000000a", 100), (9, "000000000000000b", 200)]
                .map(|(r, id, t)| (r, id.to_string(), t))
                .to_vec()
        );
        let events: Vec<(i64, String)> = sqlx::query_as("SELECT id, span_id FROM events")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(events, vec![(3, "000000000000000b".to_string())]);
        let links: Vec<(i64, String)> = sqlx::query_as("SELECT id, linked_span_id FROM links")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(links, vec![(4, "000000000000000c".to_string())]);
        let view: Vec<(String, String, String)> =
            sqlx::query_as("SELECT span_id, key, value FROM span_attributes ORDER BY span_id")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(view.len(), 2);
        assert_eq!(view[0], ("000000000000000a".into(), "k".into(), "v".into()));
        // Foreign keys name unique parents only (none names spans.span_id any more).
        sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        // The same span again (a client retry) is ignored; the same span ID with another
        // start time is another span.
        assert_eq!(
            add_span(&mut conn, true, None, "000000000000000a", 100).await,
            0
        );
        assert_eq!(
            add_span(&mut conn, true, None, "000000000000000a", 101).await,
            1
        );
        let next: i64 = sqlx::query_scalar("SELECT max(rowid) FROM spans")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(next, 10);
        conn.close().await.unwrap();
    }
}
