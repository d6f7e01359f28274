//! The `sqlite` exporter: stores every batch in one transaction on a single writer
//! connection, and hands out a reader over the same file.

use super::batch::{self, describe, Counters, Prepared, Specs};
use super::checkpoint::{Checkpointer, WalWatch};
use super::config::SqliteConfig;
use super::direct::{self, with_session, Session};
use super::errors::{consume_error, is_refusal};
use super::insert::insert_all;
use super::postings;
use super::reader::{PoolCell, SqliteReader};
use super::retention::RetentionTask;
use super::schema;
use super::value::SqlValue;
use async_trait::async_trait;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Row as _};
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{SystemTime, UNIX_EPOCH};
use teletrace_core::exporter_helper::Sender;
use teletrace_core::storage::TraceReader;
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{ComponentError, ConsumeError, Consumer, Exporter, Host, Lifecycle, Traces};
use tokio::sync::Mutex;

/// Segments sealed, labelled by where their posting lists came from (`batches`: the
/// lists the batches brought; `spans`: read back from the stored spans).
const SEALED_METRIC: &str = "teletrace_sqlite_segments_sealed";
const SEALED_HELP: &str = "Ingestion segments whose attribute postings were written.";

/// The writer connection, shared with the retention task; `None` before start and after
/// shutdown.
pub(crate) type WriterConn = Arc<Mutex<Option<SqliteConnection>>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Built,
    Running,
    Stopped,
}

/// The `sqlite` exporter. Building it touches no file; [`Lifecycle::start`] opens (and
/// creates) the database, applies migrations and opens the read pool.
pub struct SqliteExporter {
    id: String,
    config: SqliteConfig,
    specs: Arc<Specs>,
    counters: Arc<Counters>,
    writer: WriterConn,
    pool: Arc<PoolCell>,
    reader: Arc<SqliteReader>,
    phase: StdMutex<Phase>,
    retention: Mutex<Option<RetentionTask>>,
    /// Copies the WAL into the database off the writer's thread (WAL mode only).
    checkpointer: Mutex<Option<Checkpointer>>,
    sent: Arc<Counter>,
    failed: Arc<Counter>,
}

impl SqliteExporter {
    /// Builds the exporter `id` (for metric labels) without opening the database.
    pub fn new(id: &str, config: SqliteConfig, metrics: &Metrics) -> Self {
        let labels = [("exporter", id)];
        let pool = Arc::new(PoolCell::default());
        SqliteExporter {
            id: id.to_string(),
            config,
            specs: Arc::new(Specs::new()),
            counters: Arc::new(Counters {
                sealed_from_batches: metrics.counter(
                    SEALED_METRIC,
                    SEALED_HELP,
                    &[("exporter", id), ("from", "batches")],
                ),
                sealed_from_spans: metrics.counter(
                    SEALED_METRIC,
                    SEALED_HELP,
                    &[("exporter", id), ("from", "spans")],
                ),
                ..Counters::default()
            }),
            writer: Arc::new(Mutex::new(None)),
            reader: Arc::new(SqliteReader::new(pool.clone())),
            pool,
            phase: StdMutex::new(Phase::Built),
            retention: Mutex::new(None),
            checkpointer: Mutex::new(None),
            sent: metrics.counter(
                "otelcol_exporter_sent_spans",
                "Number of spans successfully sent to destination.",
                &labels,
            ),
            failed: metrics.counter(
                "otelcol_exporter_send_failed_spans",
                "Number of spans in failed attempts to send to destination.",
                &labels,
            ),
        }
    }

    /// The reader over this exporter's database (usable once started).
    pub fn sqlite_reader(&self) -> Arc<SqliteReader> {
        self.reader.clone()
    }

    /// Runs one retention pass now, as the background task does every
    /// `retention_check_interval`: deletes spans that started before now minus
    /// `retention`, with everything hanging off them. Returns how many spans went.
    pub async fn enforce_retention(&self) -> Result<u64, ComponentError> {
        if self.config.retention.is_zero() {
            return Ok(0);
        }
        super::retention::run_once(&self.writer, &self.counters, self.config.retention)
            .await
            .map_err(|e| ComponentError::new(format!("sqlite retention failed: {e}")))
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    async fn open(&self) -> Result<(), sqlx::Error> {
        let mut conn = schema::open_writer(&self.config).await?;
        let max_event: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&mut conn)
            .await?;
        let max_link: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM links")
            .fetch_one(&mut conn)
            .await?;
        let max_span: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(rowid), 0) FROM spans")
            .fetch_one(&mut conn)
            .await?;
        self.counters
            .next_span_rowid
            .store(max_span + 1, Ordering::Relaxed);
        self.counters
            .next_event_id
            .store(max_event + 1, Ordering::Relaxed);
        self.counters
            .next_link_id
            .store(max_link + 1, Ordering::Relaxed);
        // A new ingestion segment after every start.
        let next_bucket: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(bucket), -1) + 1 FROM segments")
                .fetch_one(&mut conn)
                .await?;
        *self
            .counters
            .segment
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = (next_bucket, 0);
        // The segment the previous run was filling.
        postings::seal_pending(&mut conn, &self.specs.postings, &self.counters, next_bucket)
            .await?;
        let keys = sqlx::query("SELECT source, key, type FROM attribute_keys")
            .fetch_all(&mut conn)
            .await?;
        {
            let mut known = self
                .counters
                .known_keys
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for row in keys {
                let (Ok(source), Ok(key), Ok(type_name)) = (
                    row.try_get::<String, _>(0),
                    row.try_get::<String, _>(1),
                    row.try_get::<String, _>(2),
                ) else {
                    continue;
                };
                let (Some(source), Some(type_name)) = (
                    batch::Source::parse(&source),
                    super::value::static_type(&type_name),
                ) else {
                    continue;
                };
                known.insert((source, key, type_name));
            }
        }
        if self.config.journal_mode.eq_ignore_ascii_case("wal") {
            let watch = WalWatch::leaked();
            with_session(&mut conn, |s| watch.install(s)).await?;
            let checkpoints = schema::open_checkpointer(&self.config).await?;
            *self.checkpointer.lock().await = Some(Checkpointer::spawn(checkpoints, watch));
        }
        let pool = schema::open_readers(&self.config)?;
        *self.writer.lock().await = Some(conn);
        if self.pool.set(pool).is_err() {
            tracing::warn!(exporter = %self.id, "sqlite read pool was already open");
        }
        Ok(())
    }

    async fn store(&self, traces: Traces) -> Result<(), ConsumeError> {
        match self.phase() {
            Phase::Running => {}
            Phase::Built => return Err(ConsumeError::retryable("sqlite exporter is not started")),
            Phase::Stopped => return Err(ConsumeError::retryable("sqlite exporter is shut down")),
        }
        let resource_spans = traces.into_resource_spans()?;
        let specs = self.specs.clone();
        let counters = self.counters.clone();
        let writer = self.writer.clone();
        let pool = self.pool.clone();
        // The write runs in its own task so that a caller giving up (a receiver timeout)
        // cannot stop it halfway, and shutdown can wait for it by taking the lock.
        tokio::spawn(
            async move { write_batch(resource_spans, &specs, &counters, &writer, &pool).await },
        )
        .await
        .map_err(|e| ConsumeError::retryable(format!("sqlite write task failed: {e}")))?
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Prepares `resource_spans` (before taking the lock) and writes them in one transaction.
async fn write_batch(
    resource_spans: Vec<ResourceSpans>,
    specs: &Arc<Specs>,
    counters: &Arc<Counters>,
    writer: &WriterConn,
    pool: &Arc<PoolCell>,
) -> Result<(), ConsumeError> {
    let ingestion_time = counters.ingestion_time(now_ns());
    let mut prepared = batch::prepare(&resource_spans, counters, ingestion_time)?;
    let lists = std::mem::take(&mut prepared.postings);
    let mut guard = writer.lock().await;
    let conn = guard
        .as_mut()
        .ok_or_else(|| ConsumeError::retryable("sqlite exporter is shut down"))?;
    let bucket = prepared.segment.bucket;
    let written =
        match with_session(conn, |s| write_prepared(s, specs, counters, prepared, true)).await {
            Ok(written) => written,
            Err(e) => return Err(consume_error(&e)),
        };
    match written {
        Ok(written) => {
            counters
                .known_keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(written.new_keys);
            // Still under the writer lock, so segments get their batches' lists in
            // commit order.
            if let Some(version) = written.version {
                counters
                    .postings
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(bucket, version, lists, written.complete);
            }
            let current = counters.current_segment().max(bucket);
            match postings::pending(conn, current).await {
                Ok(pending) if !pending.is_empty() => {
                    Sealer {
                        writer: writer.clone(),
                        pool: pool.clone(),
                        specs: specs.clone(),
                        counters: counters.clone(),
                    }
                    .spawn(pending);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sqlite: cannot list the segments to seal"),
            }
            Ok(())
        }
        Err(e) => {
            let e = sqlx::Error::from(e);
            if !is_refusal(&e) {
                return Err(consume_error(&e));
            }
            let refused = with_session(conn, |s| {
                find_refused_span(s, specs, counters, &resource_spans)
            })
            .await
            .ok()
            .flatten();
            Err(refused.unwrap_or_else(|| consume_error(&e)))
        }
    }
}

/// Seals the segments the writer has moved past (see `postings`) in a task of its own:
/// the spans are read and the postings built on a read connection while batches keep
/// being written, and only the write of the postings takes the writer lock. One sealer
/// runs at a time; a segment left unsealed (a failure, a trigger while one runs) is still
/// searched, by scanning its spans, and is sealed after a later batch.
struct Sealer {
    writer: WriterConn,
    pool: Arc<PoolCell>,
    specs: Arc<Specs>,
    counters: Arc<Counters>,
}

/// Builds of a segment the sealer tries before leaving it for a later batch (each
/// failed try means a batch landed in it meanwhile).
const SEAL_ATTEMPTS: usize = 3;

impl Sealer {
    fn spawn(self, buckets: Vec<i64>) {
        if self.counters.sealing.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            let mut buckets = buckets;
            loop {
                let sealed = self.seal_all(&buckets).await;
                // Batches that found this sealer running did not start another: look
                // for what became pending meanwhile, while there is progress.
                buckets = self.pending().await;
                if sealed > 0 && !buckets.is_empty() {
                    continue;
                }
                self.counters.sealing.store(false, Ordering::Release);
                // A batch may have seen the flag set just before it was cleared.
                buckets = self.pending().await;
                if sealed == 0
                    || buckets.is_empty()
                    || self.counters.sealing.swap(true, Ordering::AcqRel)
                {
                    break;
                }
            }
        });
    }

    /// Seals `buckets`; returns how many it sealed.
    async fn seal_all(&self, buckets: &[i64]) -> usize {
        let mut sealed = 0;
        for &bucket in buckets {
            for _ in 0..SEAL_ATTEMPTS {
                match self.seal(bucket).await {
                    Ok(true) => {
                        sealed += 1;
                        break;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(bucket, error = %e, "sqlite: could not seal a segment");
                        break;
                    }
                }
            }
        }
        sealed
    }

    /// The segments waiting to be sealed (none when they cannot be read).
    async fn pending(&self) -> Vec<i64> {
        let Some(pool) = self.pool.get_pool() else {
            return Vec::new();
        };
        let Ok(mut conn) = pool.acquire().await else {
            return Vec::new();
        };
        postings::pending(&mut conn, self.counters.current_segment())
            .await
            .unwrap_or_default()
    }

    /// Builds and writes one segment's postings, from the lists its batches brought
    /// when they are complete, else from its spans; false when the segment changed while
    /// they were built, or the exporter is shutting down.
    async fn seal(&self, bucket: i64) -> Result<bool, sqlx::Error> {
        let held = self
            .counters
            .postings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(bucket);
        let (built, counter) = match held {
            Some((version, lists)) => (
                postings::Built::new(bucket, version, lists),
                &self.counters.sealed_from_batches,
            ),
            None => {
                let Some(pool) = self.pool.get_pool() else {
                    return Ok(false);
                };
                let mut conn = pool.acquire().await?;
                (
                    postings::build(&mut conn, bucket).await?,
                    &self.counters.sealed_from_spans,
                )
            }
        };
        let mut guard = self.writer.lock().await;
        let Some(conn) = guard.as_mut() else {
            return Ok(false);
        };
        let wrote =
            with_session(conn, |s| postings::write(s, &self.specs.postings, &built)).await??;
        if wrote {
            counter.add(1);
        }
        Ok(wrote)
    }
}

/// What a committed batch did.
#[derive(Default)]
struct Written {
    /// The catalog entries the batch added, for the caller to remember.
    new_keys: Vec<batch::KeyEntry>,
    /// The version the batch gave its segment (`None` for an empty batch).
    version: Option<i64>,
    /// False when some of its spans were stored already (a client retrying).
    complete: bool,
}

/// Writes a prepared batch in one transaction; commits when `commit`, rolls back
/// otherwise (used to test spans one by one). Must be called with the writer lock held.
fn write_prepared(
    session: &Session<'_>,
    specs: &Specs,
    counters: &Counters,
    mut prepared: Prepared<'_>,
    commit: bool,
) -> direct::Result<Written> {
    let (key_rows, new_keys) = {
        let known = counters
            .known_keys
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        prepared.catalog_rows(&known)
    };
    let tx = session.begin_immediate()?;
    for (table, rows) in &prepared.shared {
        insert_all(session, specs.by_table(table), rows)?;
    }
    let inserted = insert_all(session, &specs.spans, &prepared.spans)?;
    let complete = inserted == prepared.span_count as u64;
    let children = if complete {
        std::mem::take(&mut prepared.children)
    } else {
        // Some spans were stored already (a client retrying): skip everything hanging
        // off those, so their events and links are not stored twice. The batch's own
        // rows are those of its segment with its ingestion time.
        let mut is_fresh = session.prepare(
            "SELECT count(*) FROM spans WHERE bucket = ? AND span_id = ? \
             AND ingestion_time_unix_nano = ?",
        )?;
        let mut fresh: HashSet<String> = HashSet::with_capacity(inserted as usize);
        for id in prepared.span_ids() {
            let key = [
                SqlValue::Int(prepared.segment.bucket),
                SqlValue::Text(id.to_string()),
                SqlValue::Int(prepared.ingestion_time),
            ];
            if is_fresh.run(&key)?.first.unwrap_or(0) > 0 {
                fresh.insert(id.to_string());
            }
        }
        tracing::debug!(
            skipped = prepared.span_count - fresh.len(),
            "sqlite: spans already stored were skipped"
        );
        prepared.children_rows(counters, Some(&fresh)).0
    };
    for (table, rows) in &children {
        insert_all(session, specs.by_table(table), rows)?;
    }
    let mut version = None;
    if prepared.span_count > 0 {
        let segment = prepared.segment;
        version = session
            .prepare(
                "INSERT INTO segments (bucket, min_start_time_unix_nano, max_start_time_unix_nano, spans) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (bucket) DO UPDATE SET sealed = 0, version = version + 1, \
                 min_start_time_unix_nano = min(min_start_time_unix_nano, excluded.min_start_time_unix_nano), \
                 max_start_time_unix_nano = max(max_start_time_unix_nano, excluded.max_start_time_unix_nano), \
                 spans = spans + excluded.spans RETURNING version",
            )?
            .run(&[
                SqlValue::Int(segment.bucket),
                SqlValue::Int(segment.min_start),
                SqlValue::Int(segment.max_start),
                SqlValue::Int(segment.spans),
            ])?
            .first;
    }
    insert_all(session, &specs.attribute_keys, &key_rows)?;
    if !commit {
        // Dropping the transaction rolls it back.
        return Ok(Written::default());
    }
    tx.commit()?;
    Ok(Written {
        new_keys,
        version,
        complete,
    })
}

/// After the database refused a batch: writes its spans one at a time (rolling each
/// back) to name the first span it refuses.
fn find_refused_span(
    session: &Session<'_>,
    specs: &Specs,
    counters: &Counters,
    resource_spans: &[ResourceSpans],
) -> Option<ConsumeError> {
    for rs in resource_spans {
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let single = [ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        scope: ss.scope.clone(),
                        spans: vec![span.clone()],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }];
                let prepared = match batch::prepare(&single, counters, now_ns()) {
                    Ok(p) => p,
                    Err(e) => return Some(e),
                };
                if let Err(e) = write_prepared(session, specs, counters, prepared, false) {
                    let e = sqlx::Error::from(e);
                    return Some(if is_refusal(&e) {
                        ConsumeError::permanent(format!(
                            "{} refused by the database: {e}",
                            describe(span)
                        ))
                    } else {
                        consume_error(&e)
                    });
                }
            }
        }
    }
    None
}

#[async_trait]
impl Lifecycle for SqliteExporter {
    async fn start(&self, _host: &Host) -> Result<(), ComponentError> {
        match self.phase() {
            Phase::Running => return Ok(()),
            Phase::Stopped => {
                return Err(ComponentError::new(
                    "sqlite exporter cannot start again after shutdown",
                ))
            }
            Phase::Built => {}
        }
        self.open().await.map_err(|e| {
            ComponentError::new(format!(
                "exporter {}: cannot open sqlite database {:?}: {e}",
                self.id, self.config.path
            ))
        })?;
        if !self.config.retention.is_zero() {
            *self.retention.lock().await = Some(RetentionTask::spawn(
                self.writer.clone(),
                self.counters.clone(),
                self.config.retention,
                self.config.retention_check_interval,
            ));
        }
        self.set_phase(Phase::Running);
        tracing::info!(exporter = %self.id, path = %self.config.path, "sqlite exporter started");
        Ok(())
    }

    async fn shutdown(&self) -> Result<(), ComponentError> {
        if self.phase() != Phase::Running {
            self.set_phase(Phase::Stopped);
            return Ok(());
        }
        self.set_phase(Phase::Stopped);
        if let Some(task) = self.retention.lock().await.take() {
            task.stop().await;
        }
        if let Some(checkpointer) = self.checkpointer.lock().await.take() {
            checkpointer.stop().await;
        }
        // Waits for the write in progress, which holds the lock.
        let conn = self.writer.lock().await.take();
        if let Some(mut conn) = conn {
            if let Err(e) = sqlx::query("PRAGMA optimize").execute(&mut conn).await {
                tracing::debug!(error = %e, "sqlite: PRAGMA optimize failed");
            }
            conn.close()
                .await
                .map_err(|e| ComponentError::new(format!("closing sqlite database: {e}")))?;
        }
        if let Some(pool) = self.pool.get_pool() {
            pool.close().await;
        }
        Ok(())
    }
}

/// The service runs the exporter behind the exporter helper (`sending_queue`,
/// `retry_on_failure`), which counts what is sent and what fails.
#[async_trait]
impl Sender for SqliteExporter {
    async fn send(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        self.store(traces).await
    }

    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        Some(self.reader.clone())
    }
}

/// Stores each batch in the caller's task, with no queue and no retry, and counts the
/// outcome as the exporter helper would: for embedding the store (tests, benchmarks).
#[async_trait]
impl Consumer for SqliteExporter {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        if traces.is_empty() {
            return Ok(());
        }
        let count = traces.span_count() as u64;
        let result = self.store(traces).await;
        match &result {
            Ok(()) => self.sent.add(count),
            Err(e) => {
                self.failed.add(count);
                tracing::warn!(exporter = %self.id, error = %e, "sqlite exporter could not store a batch");
            }
        }
        result
    }
}

impl Exporter for SqliteExporter {
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        Some(self.reader.clone())
    }
}
