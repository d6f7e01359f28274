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
/// WAL pages written before the writer checkpoints (SQLite's default is 1,000 = 4 MiB,
/// which at ingest rates means a checkpoint and an fsync every batch or two).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;
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
        .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
        // The multi-row inserts are long SQL texts; logging them helps nobody.
        .disable_statement_logging();
    let mut conn = SqliteConnection::connect_with(&options).await?;
    if let Err(e) = MIGRATOR.run_direct(&mut conn).await {
        let _ = conn.close().await;
        return Err(e.into());
    }
    Ok(conn)
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
