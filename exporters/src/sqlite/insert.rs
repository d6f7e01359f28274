//! Single-row `INSERT` statements and the rows collected for them.
//!
//! A batch's rows are collected per table before the writer lock is taken, then inserted
//! by one prepared statement per table, run once per row ([`insert_all`]), on the writer's
//! direct session (see `direct`): with no round trip per statement, many-row `VALUES`
//! lists gain nothing, and each one needed preparing per size.

use super::direct::{self, Session};
use super::value::SqlValue;

/// One table's insert statement.
#[derive(Debug)]
pub(crate) struct InsertSpec {
    columns: usize,
    sql: String,
}

impl InsertSpec {
    /// `verb` is `INSERT` or `INSERT OR IGNORE`.
    pub(crate) fn new(verb: &str, table: &str, columns: &[&str]) -> Self {
        InsertSpec {
            columns: columns.len(),
            sql: format!(
                "{verb} INTO {table} ({}) VALUES ({})",
                columns.join(", "),
                vec!["?"; columns.len()].join(", ")
            ),
        }
    }

    /// The SQL inserting one row.
    pub(crate) fn sql(&self) -> &str {
        &self.sql
    }
}

/// Rows collected for one table, value after value, row after row.
#[derive(Debug, Default)]
pub(crate) struct TableRows {
    values: Vec<SqlValue>,
}

impl TableRows {
    /// Appends one value of the current row.
    pub(crate) fn push(&mut self, value: SqlValue) {
        self.values.push(value);
    }

    /// Appends a text value.
    pub(crate) fn text(&mut self, value: impl Into<String>) {
        self.values.push(SqlValue::Text(value.into()));
    }

    /// Appends an integer value.
    pub(crate) fn int(&mut self, value: i64) {
        self.values.push(SqlValue::Int(value));
    }

    /// True when no row was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Inserts every row of `rows` with `spec`'s statement; returns how many rows were
/// inserted (`OR IGNORE` skips some).
pub(crate) fn insert_all(
    session: &Session<'_>,
    spec: &InsertSpec,
    rows: &TableRows,
) -> direct::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    debug_assert_eq!(rows.values.len() % spec.columns, 0, "incomplete row");
    let mut statement = session.prepare(spec.sql())?;
    let mut inserted = 0;
    for row in rows.values.chunks_exact(spec.columns) {
        inserted += statement.run(row)?.changes;
    }
    Ok(inserted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_names_every_column_once() {
        let spec = InsertSpec::new("INSERT OR IGNORE", "t", &["a", "b", "c"]);
        assert_eq!(
            spec.sql(),
            "INSERT OR IGNORE INTO t (a, b, c) VALUES (?, ?, ?)"
        );
    }
}
