//! WAL checkpoints off the writer's thread.
//!
//! With SQLite's automatic checkpoint, the commit that takes the WAL past
//! `wal_autocheckpoint` pages copies the WAL into the database file itself, while the
//! writer lock is held: about 1.8 s of a 1,000,000-span load (BENCHMARKS.md, session 8).
//! Here the writer connection's WAL hook (which replaces the automatic checkpoint) only
//! wakes a [`Checkpointer`]: a task with a connection of its own, so sqlx runs its
//! `PRAGMA wal_checkpoint(PASSIVE)` on that connection's thread while the writer goes on.
//! A passive checkpoint takes no lock a writer needs. When it has copied the whole WAL
//! before the next commit (the usual case: it starts right after one), the writer's next
//! transaction starts the WAL again from its beginning, so the file does not grow.
//!
//! Should the checkpointer fall behind (a reader holding an old snapshot keeps the WAL
//! from being copied), the hook checkpoints in the committing thread once the WAL holds
//! [`CHECKPOINT_INLINE_PAGES`], as SQLite's own hook does at `wal_autocheckpoint`.

use super::direct::Session;
use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;
use sqlx::Connection as _;
use std::ffi::{c_char, c_int, c_void};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// WAL pages after a commit from which the checkpointer is woken (SQLite's default
/// `wal_autocheckpoint`).
pub(crate) const WAKE_PAGES: c_int = 1_000;

/// WAL pages after a commit from which the committing thread checkpoints itself.
pub(crate) const CHECKPOINT_INLINE_PAGES: c_int = 10_000;

/// What the writer connection's WAL hook reaches: its thresholds and the checkpointer's
/// wake-up call.
pub(crate) struct WalWatch {
    /// WAL pages from which a commit wakes the checkpointer.
    wake_pages: c_int,
    /// WAL pages from which a commit checkpoints in its own thread.
    inline_pages: c_int,
    wake: Notify,
}

impl WalWatch {
    /// A watch with the thresholds [`WAKE_PAGES`] and [`CHECKPOINT_INLINE_PAGES`].
    pub(crate) fn leaked() -> &'static WalWatch {
        Self::leaked_with(WAKE_PAGES, CHECKPOINT_INLINE_PAGES)
    }

    /// A watch that lives as long as the process. The WAL hook may run as long as the
    /// writer connection is open, and sqlx closes a dropped connection later on its own
    /// thread, so no owner can tell when the watch is no longer reachable: it is leaked,
    /// one small allocation per database opened.
    fn leaked_with(wake_pages: c_int, inline_pages: c_int) -> &'static WalWatch {
        Box::leak(Box::new(WalWatch {
            wake_pages,
            inline_pages,
            wake: Notify::new(),
        }))
    }

    /// Makes every commit on `session`'s connection report the WAL's size to this watch,
    /// instead of running SQLite's automatic checkpoint.
    pub(crate) fn install(&'static self, session: &Session<'_>) {
        let context: *const WalWatch = self;
        // SAFETY: `wal_hook` is called by SQLite with the context given here, which is a
        // `&'static WalWatch` (never freed), and only reads it through a shared
        // reference; `Notify` is `Sync`, so the committing thread may use it whatever
        // thread the watch was made on.
        unsafe { session.set_wal_hook(wal_hook, context.cast_mut().cast::<c_void>()) };
    }
}

/// The WAL hook: called by SQLite after each commit on the writer connection, in the
/// committing thread, with the number of pages (frames) the WAL now holds.
///
/// # Safety
/// `context` must point to a live [`WalWatch`], and `db` and `name` be the arguments
/// SQLite passes to a WAL hook (an open connection in a commit, a database name).
unsafe extern "C" fn wal_hook(
    context: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: per the contract above, `context` is the `&'static WalWatch` installed.
    let watch = unsafe { &*context.cast_const().cast::<WalWatch>() };
    if pages >= watch.inline_pages {
        // SAFETY: `db` and `name` are SQLite's own arguments to this hook; checkpointing
        // from the hook is what SQLite's default hook does. An error (busy: the
        // checkpointer is at it) leaves the WAL for the next commit.
        let _ = unsafe { ffi::sqlite3_wal_checkpoint(db, name) };
    } else if pages >= watch.wake_pages {
        watch.wake.notify_one();
    }
    ffi::SQLITE_OK
}

/// The background checkpointer of one database.
pub(crate) struct Checkpointer {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing through `conn` (a connection of its own on the database)
    /// each time `watch` is woken.
    pub(crate) fn spawn(mut conn: SqliteConnection, watch: &'static WalWatch) -> Self {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => break,
                    () = watch.wake.notified() => {}
                }
                let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                    .fetch_one(&mut conn)
                    .await;
                match done {
                    Ok((_, wal_pages, copied)) => {
                        tracing::trace!(wal_pages, copied, "sqlite: WAL checkpoint")
                    }
                    Err(e) => tracing::debug!(error = %e, "sqlite: WAL checkpoint failed"),
                }
            }
            if let Err(e) = conn.close().await {
                tracing::debug!(error = %e, "sqlite: closing the checkpoint connection");
            }
        });
        Checkpointer { stop, task }
    }

    /// Stops after the checkpoint in progress, and closes the connection.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::direct::with_session;
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use std::path::Path;
    use std::time::Duration;

    async fn connect(path: &Path) -> SqliteConnection {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        SqliteConnection::connect_with(&options).await.unwrap()
    }

    /// Commits `pages` pages of random bytes in one transaction.
    async fn write_pages(conn: &mut SqliteConnection, pages: usize) {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
             INSERT INTO t SELECT randomblob(4000) FROM n",
        )
        .bind(pages as i64)
        .execute(conn)
        .await
        .unwrap();
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commits_wake_the_checkpointer_and_a_long_wal_is_copied_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let mut writer = connect(&path).await;
        sqlx::query("CREATE TABLE t (b BLOB)")
            .execute(&mut writer)
            .await
            .unwrap();
        // Were SQLite's automatic checkpoint still on, every commit would copy the WAL.
        sqlx::query("PRAGMA wal_autocheckpoint = 1")
            .execute(&mut writer)
            .await
            .unwrap();
        let watch = WalWatch::leaked_with(10, 200);
        with_session(&mut writer, |s| watch.install(s))
            .await
            .unwrap();
        let empty = size(&path);

        write_pages(&mut writer, 50).await;
        assert_eq!(size(&path), empty, "the commit itself copies nothing");
        // The commit left a wake-up call, which the checkpointer takes when it starts.
        let checkpointer = Checkpointer::spawn(connect(&path).await, watch);
        let mut copied = false;
        for _ in 0..500 {
            if size(&path) >= empty + 50 * 4000 {
                copied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(copied, "the checkpointer copied the WAL into the database");
        checkpointer.stop().await;

        // With no checkpointer, a WAL past the inline threshold is copied by the commit.
        let before = size(&path);
        write_pages(&mut writer, 250).await;
        assert!(
            size(&path) >= before + 200 * 4000,
            "the commit that took the WAL past 200 pages copied it"
        );
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut writer)
            .await
            .unwrap();
        assert_eq!(rows, 300);
        writer.close().await.unwrap();
    }
}
