//! Multi-row `INSERT` statements.
//!
//! Rows of one table are bound into statements of many rows each, within SQLite's limit
//! of 32,766 parameters per statement. Statement sizes are powers of two (a batch of 1,000
//! rows runs as 512 + 256 + 128 + 64 + 32 + 8), so each table needs only a dozen distinct
//! SQL texts, which every connection prepares once and keeps in its statement cache.

use super::value::SqlValue;
use sqlx::sqlite::SqliteArguments;
use sqlx::Arguments as _;

/// SQLite's default `SQLITE_MAX_VARIABLE_NUMBER` since 3.32.
pub(crate) const MAX_PARAMS: usize = 32_766;

/// Most rows one statement carries, whatever the parameter count allows.
const MAX_ROWS: usize = 4096;

/// One table's insert: its SQL for every power-of-two row count up to the maximum.
#[derive(Debug)]
pub(crate) struct InsertSpec {
    columns: usize,
    max_rows: usize,
    /// `sql[k]` inserts `2^k` rows.
    sql: Vec<String>,
}

impl InsertSpec {
    /// `verb` is `INSERT` or `INSERT OR IGNORE`; `suffix` is appended (a `RETURNING`).
    pub(crate) fn new(verb: &str, table: &str, columns: &[&str], suffix: &str) -> Self {
        let mut max_rows = 1;
        while max_rows * 2 * columns.len() <= MAX_PARAMS && max_rows * 2 <= MAX_ROWS {
            max_rows *= 2;
        }
        let head = format!("{verb} INTO {table} ({}) VALUES ", columns.join(", "));
        let tuple = format!("({})", vec!["?"; columns.len()].join(","));
        let mut sql = Vec::new();
        let mut rows = 1;
        while rows <= max_rows {
            let mut text =
                String::with_capacity(head.len() + rows * (tuple.len() + 1) + suffix.len());
            text.push_str(&head);
            for i in 0..rows {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&tuple);
            }
            text.push_str(suffix);
            sql.push(text);
            rows *= 2;
        }
        InsertSpec {
            columns: columns.len(),
            max_rows,
            sql,
        }
    }

    /// The SQL inserting `rows` rows (a power of two up to the maximum).
    pub(crate) fn sql(&self, rows: usize) -> &str {
        &self.sql[rows.trailing_zeros() as usize]
    }

    /// Statement sizes for `total` rows: full statements, then powers of two, largest first.
    pub(crate) fn chunk_sizes(&self, total: usize) -> Vec<usize> {
        let mut sizes = vec![self.max_rows; total / self.max_rows];
        let rest = total % self.max_rows;
        let mut bit = self.max_rows;
        while bit > 0 {
            if rest & bit != 0 {
                sizes.push(bit);
            }
            bit >>= 1;
        }
        sizes
    }
}

/// Rows collected for one table, bound into statements by [`TableRows::into_statements`].
#[derive(Debug, Default)]
pub(crate) struct TableRows {
    values: Vec<SqlValue>,
}

/// A bound statement: how many rows, and its arguments.
pub(crate) struct Bound {
    /// Rows the statement inserts.
    pub rows: usize,
    /// The arguments, in column order, row after row.
    pub args: SqliteArguments<'static>,
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

    /// Binds the rows into statements of `spec`.
    pub(crate) fn into_statements(self, spec: &InsertSpec) -> Result<Vec<Bound>, sqlx::Error> {
        debug_assert_eq!(self.values.len() % spec.columns, 0, "incomplete row");
        let total = self.values.len() / spec.columns;
        let mut values = self.values.into_iter();
        let mut out = Vec::new();
        for rows in spec.chunk_sizes(total) {
            let mut args = SqliteArguments::default();
            args.reserve(rows * spec.columns, 0);
            for value in values.by_ref().take(rows * spec.columns) {
                bind(&mut args, value)?;
            }
            out.push(Bound { rows, args });
        }
        Ok(out)
    }
}

/// Adds one value to `args`.
pub(crate) fn bind(
    args: &mut SqliteArguments<'static>,
    value: SqlValue,
) -> Result<(), sqlx::Error> {
    match value {
        SqlValue::Null => args.add(Option::<i64>::None),
        SqlValue::Int(i) => args.add(i),
        SqlValue::Real(d) => args.add(d),
        SqlValue::Text(t) => args.add(t),
        SqlValue::Blob(b) => args.add(b),
    }
    .map_err(sqlx::Error::Encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_powers_of_two_within_the_parameter_limit() {
        let spec = InsertSpec::new("INSERT", "t", &["a", "b", "c", "d"], "");
        assert_eq!(spec.max_rows, 4096);
        assert_eq!(spec.chunk_sizes(1000), vec![512, 256, 128, 64, 32, 8]);
        assert_eq!(spec.chunk_sizes(9000), vec![4096, 4096, 512, 256, 32, 8]);
        assert!(spec.chunk_sizes(0).is_empty());
        let wide = InsertSpec::new("INSERT", "t", &["c"; 17], "");
        assert_eq!(wide.max_rows, 1024);
        assert!(wide.max_rows * 17 <= MAX_PARAMS);
        assert_eq!(
            spec.sql(2),
            "INSERT INTO t (a, b, c, d) VALUES (?,?,?,?),(?,?,?,?)"
        );
    }
}
