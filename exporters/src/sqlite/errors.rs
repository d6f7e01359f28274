//! Which SQLite failures a retry can fix.

use teletrace_core::storage::StorageError;
use teletrace_core::ConsumeError;

/// SQLite primary result codes the exporter tells apart.
mod code {
    pub const CORRUPT: i32 = 11;
    pub const TOOBIG: i32 = 18;
    pub const CONSTRAINT: i32 = 19;
    pub const MISMATCH: i32 = 20;
    pub const RANGE: i32 = 25;
}

/// The primary SQLite result code of a database error, if it is one.
pub(crate) fn sqlite_code(error: &sqlx::Error) -> Option<i32> {
    match error {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|extended| extended & 0xff),
        _ => None,
    }
}

/// True when the data itself was refused (a constraint, a type or size the schema does
/// not take): sending it again fails again. Everything else (busy or locked database,
/// full disk, I/O, a closed pool) is worth retrying.
pub(crate) fn is_refusal(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Encode(_) => true,
        _ => matches!(
            sqlite_code(error),
            Some(code::CONSTRAINT | code::MISMATCH | code::TOOBIG | code::RANGE)
        ),
    }
}

/// A write failure as the pipeline reports it.
pub(crate) fn consume_error(error: &sqlx::Error) -> ConsumeError {
    if is_refusal(error) {
        ConsumeError::permanent(format!("sqlite refused the batch: {error}"))
    } else if sqlite_code(error) == Some(code::CORRUPT) {
        ConsumeError::retryable(format!("sqlite database is corrupt: {error}"))
    } else {
        ConsumeError::retryable(format!("sqlite write failed: {error}"))
    }
}

/// A read failure as the query API reports it.
pub(crate) fn storage_error(error: sqlx::Error) -> StorageError {
    StorageError::Backend(format!("sqlite: {error}"))
}
