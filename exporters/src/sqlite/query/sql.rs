//! SQL text with its parameters, built together so every value is bound (never spliced
//! into the text) and parameters line up with their `?`.

use crate::sqlite::value::SqlValue;
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Arguments as _, SqliteConnection};

/// A statement under construction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    text: String,
    params: Vec<SqlValue>,
}

impl Sql {
    /// Starts with `text`.
    pub(crate) fn new(text: &str) -> Self {
        Sql {
            text: text.to_string(),
            params: Vec::new(),
        }
    }

    /// Appends SQL text (never a value: values go through [`Sql::param`]).
    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` bound to `value`.
    pub(crate) fn param(&mut self, value: SqlValue) -> &mut Self {
        self.text.push('?');
        self.params.push(value);
        self
    }

    /// Appends a `?` bound to a string.
    pub(crate) fn text_param(&mut self, value: &str) -> &mut Self {
        self.param(SqlValue::Text(value.to_string()))
    }

    /// Appends a `?` bound to an integer.
    pub(crate) fn int_param(&mut self, value: i64) -> &mut Self {
        self.param(SqlValue::Int(value))
    }

    /// Appends `(?, ?, ...)` bound to `values`.
    pub(crate) fn list(&mut self, values: impl IntoIterator<Item = SqlValue>) -> &mut Self {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.param(v);
        }
        self.text.push(')');
        self
    }

    /// Appends another statement fragment with its parameters.
    pub(crate) fn append(&mut self, other: &Sql) -> &mut Self {
        self.text.push_str(&other.text);
        self.params.extend(other.params.iter().cloned());
        self
    }

    /// The SQL text.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The values bound to the `?`s, in order.
    pub(crate) fn params(&self) -> &[SqlValue] {
        &self.params
    }

    fn arguments(&self) -> Result<SqliteArguments<'static>, sqlx::Error> {
        let mut args = SqliteArguments::default();
        for p in &self.params {
            match p.clone() {
                SqlValue::Null => args.add(Option::<i64>::None),
                SqlValue::Int(i) => args.add(i),
                SqlValue::Real(d) => args.add(d),
                SqlValue::Text(t) => args.add(t),
                SqlValue::Blob(b) => args.add(b),
            }
            .map_err(sqlx::Error::Encode)?;
        }
        Ok(args)
    }

    /// Runs the statement and returns its rows.
    pub(crate) async fn fetch_all(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        sqlx::query_with(&self.text, self.arguments()?)
            .fetch_all(conn)
            .await
    }

    /// Runs the statement and streams its rows (so a caller can stop early).
    pub(crate) fn fetch<'c>(
        &'c self,
        conn: &'c mut SqliteConnection,
    ) -> Result<futures::stream::BoxStream<'c, Result<SqliteRow, sqlx::Error>>, sqlx::Error> {
        Ok(sqlx::query_with(&self.text, self.arguments()?).fetch(conn))
    }

    /// Runs the statement and returns its first row, if any.
    pub(crate) async fn fetch_optional(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Option<SqliteRow>, sqlx::Error> {
        sqlx::query_with(&self.text, self.arguments()?)
            .fetch_optional(conn)
            .await
    }
}
