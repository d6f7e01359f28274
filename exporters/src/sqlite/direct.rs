//! The writer's transactions, run through SQLite's C API in one synchronous call.
//!
//! sqlx runs a connection on a worker thread and sends it one statement at a time; a
//! batch of 8,192 spans was dozens of round trips between that thread and the async task
//! driving it, and the writer thread sat idle for about 15% of an ingest run waiting for
//! its next statement (BENCHMARKS.md, session 7). sqlx also copies every bound value.
//! Here a [`Session`] takes the connection's handle from sqlx's worker
//! (`SqliteConnection::lock_handle`), and a whole transaction runs on the calling thread
//! without awaiting: single-row statements prepared once per session, values bound
//! without copies (`SQLITE_STATIC`), stepped, reset. Reads and migrations stay on sqlx.
//!
//! Soundness rests on three rules the types keep:
//! - the handle is used only while the [`Session`] holds sqlx's lock on it, and a
//!   [`Statement`] borrows its session, so no statement outlives the lock;
//! - a statement is finalised when dropped, before the session's lock is released;
//! - values bound without a copy are only read by `sqlite3_step` within the call that
//!   bound them ([`Statement::run`] binds every parameter, steps, and resets before it
//!   returns; a later call binds every parameter again before it steps).

use super::value::SqlValue;
use libsqlite3_sys as ffi;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};
use std::borrow::Cow;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr::NonNull;

/// An error SQLite returned to a direct call: its extended result code and message.
/// It is a `sqlx::error::DatabaseError`, so `sqlx::Error::from` makes it a
/// `sqlx::Error::Database`, classified like errors from sqlx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallError {
    /// SQLite's extended result code.
    pub code: c_int,
    /// What SQLite said, or what this module found wrong.
    pub message: String,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for CallError {}

impl DatabaseError for CallError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// The result of a direct call.
pub(crate) type Result<T> = std::result::Result<T, CallError>;

/// The writer connection's handle, taken from sqlx's worker for one or more
/// transactions.
pub(crate) struct Session<'c> {
    db: NonNull<ffi::sqlite3>,
    /// sqlx's lock on the handle: its worker cannot use the connection while it is held.
    _lock: LockedSqliteHandle<'c>,
}

impl<'c> Session<'c> {
    /// Takes `conn`'s handle (waits for sqlx's worker to finish what it is doing).
    pub(crate) async fn lock(
        conn: &'c mut SqliteConnection,
    ) -> std::result::Result<Self, sqlx::Error> {
        let mut lock = conn.lock_handle().await?;
        let db = lock.as_raw_handle();
        Ok(Session { db, _lock: lock })
    }

    /// The error SQLite recorded on this connection for the call that returned `rc`.
    fn error(&self, rc: c_int) -> CallError {
        // SAFETY: the handle is open and ours (the session holds the lock); errmsg
        // returns a NUL-terminated string owned by SQLite, valid until the next call on
        // the connection, and is copied at once.
        let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(self.db.as_ptr())) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above.
        let extended = unsafe { ffi::sqlite3_extended_errcode(self.db.as_ptr()) };
        CallError {
            code: if extended & 0xff == rc & 0xff {
                extended
            } else {
                rc
            },
            message,
        }
    }

    /// Runs SQL without parameters or results (`BEGIN IMMEDIATE`, `COMMIT`, ...).
    pub(crate) fn exec(&self, sql: &str) -> Result<()> {
        let sql = CString::new(sql).map_err(|_| misuse("SQL holds a NUL byte"))?;
        // SAFETY: the handle is ours (see above); `sql` is NUL-terminated and lives
        // across the call; no callback, so no callback argument; the error message
        // pointer is null, so SQLite allocates none.
        let rc = unsafe {
            ffi::sqlite3_exec(
                self.db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            Err(self.error(rc))
        }
    }

    /// Prepares one statement (`sql` must hold exactly one).
    pub(crate) fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        let len = c_int::try_from(sql.len()).map_err(|_| misuse("SQL text too long"))?;
        let mut stmt: *mut ffi::sqlite3_stmt = std::ptr::null_mut();
        // SAFETY: the handle is ours; `sql` is valid for `len` bytes (SQLite reads no
        // further when given the length); `stmt` is a valid out-pointer; the tail
        // pointer is null (not wanted). PERSISTENT: the statement is reused many times.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(self.error(rc));
        }
        let stmt = NonNull::new(stmt).ok_or_else(|| misuse("SQL holds no statement"))?;
        // SAFETY: `stmt` was just prepared and is not finalised.
        let parameters = unsafe { ffi::sqlite3_bind_parameter_count(stmt.as_ptr()) };
        // SAFETY: as above.
        let columns = unsafe { ffi::sqlite3_column_count(stmt.as_ptr()) };
        Ok(Statement {
            stmt,
            parameters: usize::try_from(parameters).unwrap_or(0),
            columns,
            session: self,
        })
    }

    /// Sets this connection's WAL hook (`sqlite3_wal_hook`): after each commit, SQLite
    /// calls `hook` with `context`, the connection, the database name and the pages the
    /// WAL holds. It replaces SQLite's automatic checkpoint (`wal_autocheckpoint`) and
    /// stays set after the session ends, for as long as the connection is open.
    ///
    /// # Safety
    /// `hook` must be sound to call, from whichever thread commits on this connection,
    /// with `context` and SQLite's arguments, for as long as the connection is open.
    pub(crate) unsafe fn set_wal_hook(
        &self,
        hook: unsafe extern "C" fn(*mut c_void, *mut ffi::sqlite3, *const c_char, c_int) -> c_int,
        context: *mut c_void,
    ) {
        // SAFETY: the handle is ours (the session holds the lock); the caller vouches for
        // `hook` and `context`. The previous hook's context is returned and not needed.
        unsafe { ffi::sqlite3_wal_hook(self.db.as_ptr(), Some(hook), context) };
    }

    /// A transaction that rolls back unless [`Transaction::commit`] is called.
    pub(crate) fn begin_immediate(&self) -> Result<Transaction<'_, 'c>> {
        self.exec("BEGIN IMMEDIATE")?;
        Ok(Transaction {
            session: self,
            open: true,
        })
    }
}

/// An open transaction of a [`Session`]; dropped without [`commit`](Self::commit), it
/// rolls back.
pub(crate) struct Transaction<'s, 'c> {
    session: &'s Session<'c>,
    open: bool,
}

impl Transaction<'_, '_> {
    /// Commits.
    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        self.session.exec("COMMIT").inspect_err(|_| {
            // A failed COMMIT (SQLITE_BUSY) leaves the transaction open.
            let _ = self.session.exec("ROLLBACK");
        })
    }
}

impl Drop for Transaction<'_, '_> {
    fn drop(&mut self) {
        if self.open {
            if let Err(e) = self.session.exec("ROLLBACK") {
                tracing::debug!(error = %e, "sqlite: rollback failed");
            }
        }
    }
}

fn misuse(message: &str) -> CallError {
    CallError {
        code: ffi::SQLITE_MISUSE,
        message: message.to_string(),
    }
}

/// A prepared statement of a [`Session`], finalised when dropped.
pub(crate) struct Statement<'s> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    parameters: usize,
    /// Columns of each result row.
    columns: c_int,
    session: &'s Session<'s>,
}

/// The current result row of a statement stepped by [`Statement::rows`]. It lives only
/// within one call of the caller's closure, before the next step, so the text its
/// columns lend stays valid as long as it does.
pub(crate) struct Row<'r> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    columns: c_int,
    _current: std::marker::PhantomData<&'r ()>,
}

impl Row<'_> {
    fn check(&self, column: c_int) -> Result<()> {
        if (0..self.columns).contains(&column) {
            Ok(())
        } else {
            Err(misuse(&format!(
                "column {column} of a row of {} columns",
                self.columns
            )))
        }
    }

    /// Whether the column is NULL.
    pub(crate) fn is_null(&self, column: c_int) -> Result<bool> {
        self.check(column)?;
        // SAFETY: a row is current (a `Row` exists only between a step that returned
        // SQLITE_ROW and the next one) and `column` is in range.
        Ok(unsafe { ffi::sqlite3_column_type(self.stmt.as_ptr(), column) } == ffi::SQLITE_NULL)
    }

    /// The column as an integer (SQLite's conversion: NULL is 0).
    pub(crate) fn int(&self, column: c_int) -> Result<i64> {
        self.check(column)?;
        // SAFETY: as in `is_null`.
        Ok(unsafe { ffi::sqlite3_column_int64(self.stmt.as_ptr(), column) })
    }

    /// The column as text; `None` when NULL. Text that is not UTF-8 is an error.
    pub(crate) fn text(&self, column: c_int) -> Result<Option<&str>> {
        self.check(column)?;
        let stmt = self.stmt.as_ptr();
        // SAFETY: as in `is_null`. `column_text` is called before `column_bytes`, as
        // SQLite asks, so the length is that of the UTF-8 text returned.
        let (text, len) = unsafe {
            (
                ffi::sqlite3_column_text(stmt, column),
                ffi::sqlite3_column_bytes(stmt, column),
            )
        };
        if text.is_null() {
            // NULL, or out of memory while converting (SQLite's own way to tell them
            // apart: the type of a value it could not convert is not NULL).
            return if self.is_null(column)? {
                Ok(None)
            } else {
                Err(misuse("SQLite returned no text for a column"))
            };
        }
        // SAFETY: SQLite returned `len` bytes at `text`, which stay valid until the next
        // step, reset or finalize of the statement, none of which can happen while this
        // row (which the returned borrow is tied to) is in use.
        let bytes = unsafe { std::slice::from_raw_parts(text, usize::try_from(len).unwrap_or(0)) };
        std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| misuse(&format!("column {column} holds text that is not UTF-8")))
    }
}

/// What a [`Statement::run`] saw: rows changed, and the first column of the first
/// result row (for `RETURNING` and single-value queries).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Rows the statement inserted, updated or deleted.
    pub changes: u64,
    /// The first result row's first column, as an integer.
    pub first: Option<i64>,
}

impl Statement<'_> {
    /// How many values one run binds.
    #[cfg(test)]
    pub(crate) fn parameters(&self) -> usize {
        self.parameters
    }

    /// Binds `values` (one per parameter), steps the statement to its end, and resets it.
    pub(crate) fn run(&mut self, values: &[SqlValue]) -> Result<Outcome> {
        if values.len() != self.parameters {
            return Err(misuse(&format!(
                "{} values for {} parameters",
                values.len(),
                self.parameters
            )));
        }
        let outcome = self.bind_all(values).and_then(|()| self.step_to_end());
        // SAFETY: the statement is live. Reset returns the last step's error again,
        // which `outcome` holds already.
        unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
        outcome
    }

    /// Binds `values` (one per parameter), steps through every result row, calling
    /// `each` with it, and resets. Stops at the first error, `each`'s or SQLite's.
    pub(crate) fn rows(
        &mut self,
        values: &[SqlValue],
        mut each: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        if values.len() != self.parameters {
            return Err(misuse(&format!(
                "{} values for {} parameters",
                values.len(),
                self.parameters
            )));
        }
        let stepped = self.bind_all(values).and_then(|()| loop {
            // SAFETY: the statement is live with every parameter bound.
            match unsafe { ffi::sqlite3_step(self.stmt.as_ptr()) } {
                ffi::SQLITE_ROW => each(&Row {
                    stmt: self.stmt,
                    columns: self.columns,
                    _current: std::marker::PhantomData,
                })?,
                ffi::SQLITE_DONE => break Ok(()),
                rc => break Err(self.session.error(rc)),
            }
        });
        // SAFETY: the statement is live; see `run`.
        unsafe { ffi::sqlite3_reset(self.stmt.as_ptr()) };
        stepped
    }

    fn bind_all(&mut self, values: &[SqlValue]) -> Result<()> {
        let stmt = self.stmt.as_ptr();
        for (i, value) in values.iter().enumerate() {
            // Parameters are numbered from 1; `values.len()` fits: it equals a c_int count.
            let at = (i + 1) as c_int;
            // SAFETY: `stmt` is live and not running (reset after every run); `at` is a
            // parameter of it. Text and blob pointers are bound without a copy
            // (SQLITE_STATIC): `values` outlives this run, during which `step` reads them,
            // and every later run binds every parameter again before stepping (module doc).
            let rc = unsafe {
                match value {
                    SqlValue::Null => ffi::sqlite3_bind_null(stmt, at),
                    SqlValue::Int(v) => ffi::sqlite3_bind_int64(stmt, at, *v),
                    SqlValue::Real(v) => ffi::sqlite3_bind_double(stmt, at, *v),
                    SqlValue::Text(t) => ffi::sqlite3_bind_text64(
                        stmt,
                        at,
                        t.as_ptr().cast::<c_char>(),
                        t.len() as ffi::sqlite3_uint64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    SqlValue::Blob(b) => ffi::sqlite3_bind_blob64(
                        stmt,
                        at,
                        b.as_ptr().cast(),
                        b.len() as ffi::sqlite3_uint64,
                        ffi::SQLITE_STATIC(),
                    ),
                }
            };
            if rc != ffi::SQLITE_OK {
                return Err(self.session.error(rc));
            }
        }
        Ok(())
    }

    fn step_to_end(&mut self) -> Result<Outcome> {
        let stmt = self.stmt.as_ptr();
        let mut first = None;
        loop {
            // SAFETY: `stmt` is live with every parameter bound (see `bind_all`).
            let rc = unsafe { ffi::sqlite3_step(stmt) };
            match rc {
                ffi::SQLITE_ROW => {
                    // SAFETY: a row is current; column 0 exists in any result row.
                    if first.is_none() && unsafe { ffi::sqlite3_column_count(stmt) } > 0 {
                        // SAFETY: as above.
                        first = Some(unsafe { ffi::sqlite3_column_int64(stmt, 0) });
                    }
                }
                ffi::SQLITE_DONE => break,
                rc => return Err(self.session.error(rc)),
            }
        }
        // SAFETY: the handle is ours; changes() reads the last statement's count.
        let changes = unsafe { ffi::sqlite3_changes64(self.session.db.as_ptr()) };
        Ok(Outcome {
            changes: u64::try_from(changes).unwrap_or(0),
            first,
        })
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalised once, here, while its session
        // still holds the lock (it borrows the session).
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

/// Takes `conn`'s handle and runs `f` with it in one synchronous call (see [`blocking`]):
/// how the writer runs each of its transactions.
pub(crate) async fn with_session<R>(
    conn: &mut SqliteConnection,
    f: impl FnOnce(&Session<'_>) -> R,
) -> std::result::Result<R, sqlx::Error> {
    let session = Session::lock(conn).await?;
    Ok(blocking(|| f(&session)))
}

/// Runs `f`, which blocks its thread for a while (a direct transaction): on a
/// multi-threaded Tokio runtime the worker's other tasks move elsewhere meanwhile; on a
/// single-threaded one (tests) it runs in place.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection as _;

    async fn memory() -> SqliteConnection {
        SqliteConnection::connect("sqlite::memory:").await.unwrap()
    }

    #[tokio::test]
    async fn rows_lend_each_column_and_stop_at_the_first_error() {
        let mut conn = memory().await;
        sqlx::query(
            "CREATE TABLE t (a INTEGER, b TEXT); \
             INSERT INTO t VALUES (1, 'one'), (2, NULL), (3, 'dr\u{e9}i'), (4, CAST(x'ff' AS TEXT)), \
             (-1, ''), (0, x'')",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let session = Session::lock(&mut conn).await.unwrap();
        let mut select = session
            .prepare("SELECT a, b FROM t WHERE a <= ? ORDER BY a")
            .unwrap();
        let mut seen = Vec::new();
        select
            .rows(&[SqlValue::Int(3)], |row| {
                seen.push((
                    row.int(0)?,
                    row.text(1)?.map(str::to_string),
                    row.is_null(1)?,
                ));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            [
                // Empty text and an empty blob are empty text, not NULL.
                (-1, Some(String::new()), false),
                (0, Some(String::new()), false),
                (1, Some("one".to_string()), false),
                (2, None, true),
                (3, Some("dr\u{e9}i".to_string()), false)
            ]
        );
        // A column past the row's end is an error, not a read out of bounds.
        let err = select
            .rows(&[SqlValue::Int(1)], |row| row.int(2).map(drop))
            .unwrap_err();
        assert_eq!(err.code, ffi::SQLITE_MISUSE, "{err}");
        // Text that is not UTF-8 is refused, and the error stops the rows.
        let mut calls = 0;
        let err = select
            .rows(&[SqlValue::Int(4)], |row| {
                calls += 1;
                row.text(1).map(drop)
            })
            .unwrap_err();
        assert!(err.message.contains("not UTF-8"), "{err}");
        assert_eq!(calls, 6);
        // Reset after an error: the statement runs again.
        let mut count = 0;
        select
            .rows(&[SqlValue::Int(2)], |_| {
                count += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(count, 4);
        assert!(
            select.rows(&[], |_| Ok(())).is_err(),
            "parameters are counted"
        );
    }

    #[tokio::test]
    async fn runs_statements_and_reads_the_first_column() {
        let mut conn = memory().await;
        sqlx::query("CREATE TABLE t (a INTEGER, b TEXT, c REAL, d BLOB, UNIQUE (a))")
            .execute(&mut conn)
            .await
            .unwrap();
        {
            let session = Session::lock(&mut conn).await.unwrap();
            let tx = session.begin_immediate().unwrap();
            let mut insert = session
                .prepare("INSERT OR IGNORE INTO t (a, b, c, d) VALUES (?, ?, ?, ?)")
                .unwrap();
            assert_eq!(insert.parameters(), 4);
            for (a, changed) in [(1, 1), (2, 1), (2, 0)] {
                // A fresh String per row: the statement must not keep the last one.
                let row = vec![
                    SqlValue::Int(a),
                    SqlValue::Text(format!("row {a} with 'quotes' and \0 a NUL")),
                    SqlValue::Real(0.5),
                    SqlValue::Blob(vec![0, 1, 2]),
                ];
                assert_eq!(insert.run(&row).unwrap().changes, changed);
            }
            let mut count = session
                .prepare("SELECT count(*) FROM t WHERE a >= ?")
                .unwrap();
            assert_eq!(count.run(&[SqlValue::Int(0)]).unwrap().first, Some(2));
            assert_eq!(count.run(&[SqlValue::Int(2)]).unwrap().first, Some(1));
            drop((insert, count));
            tx.commit().unwrap();
        }
        let rows: Vec<(i64, String, f64, Vec<u8>)> =
            sqlx::query_as("SELECT a, b, c, d FROM t ORDER BY a")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].1, "row 2 with 'quotes' and \0 a NUL");
        assert_eq!((rows[1].2, rows[1].3.clone()), (0.5, vec![0, 1, 2]));
    }

    #[tokio::test]
    async fn errors_carry_sqlite_codes_and_a_dropped_transaction_rolls_back() {
        let mut conn = memory().await;
        sqlx::query("CREATE TABLE t (a INTEGER NOT NULL UNIQUE)")
            .execute(&mut conn)
            .await
            .unwrap();
        {
            let session = Session::lock(&mut conn).await.unwrap();
            let _tx = session.begin_immediate().unwrap();
            let mut insert = session.prepare("INSERT INTO t (a) VALUES (?)").unwrap();
            insert.run(&[SqlValue::Int(1)]).unwrap();
            let e = insert.run(&[SqlValue::Int(1)]).unwrap_err();
            assert_eq!(e.code, ffi::SQLITE_CONSTRAINT_UNIQUE);
            assert_eq!(e.kind(), ErrorKind::UniqueViolation);
            let e = insert.run(&[SqlValue::Null]).unwrap_err();
            assert_eq!(e.code, ffi::SQLITE_CONSTRAINT_NOTNULL);
            assert_eq!(insert.run(&[]).unwrap_err().code, ffi::SQLITE_MISUSE);
            assert!(session.prepare("INSERT INTO nowhere VALUES (1)").is_err());
            let as_sqlx: sqlx::Error = e.into();
            assert_eq!(super::super::errors::sqlite_code(&as_sqlx), Some(19));
        }
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 0, "the dropped transaction rolled back");
    }
}
