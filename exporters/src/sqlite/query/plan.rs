//! How a search reaches its spans.
//!
//! SQLite's planner sees one average per index; the cost of a search depends on how many
//! spans each filter matches. So before searching, the reader counts (up to
//! [`DRIVE_CAP`]) the spans in the timeframe and the spans each indexable filter
//! matches, and picks:
//! - a *selective filter* (fewer than `DRIVE_CAP` matches): its index lists the candidate
//!   spans, the other conditions are checked on each, and the few are sorted;
//! - a *small timeframe*: the start-time index lists the candidates;
//! - otherwise the *sort index* is walked in order, checking each span, until the page
//!   is full: broad filters fill a page quickly. The start-time index is one order; the
//!   duration index is ordered per ingestion segment, so `search` walks each segment's
//!   part and merges them.

use super::filter::Filter;
use super::sql::Sql;
use sqlx::SqliteConnection;
use teletrace_core::storage::{SortField, StorageError, Timeframe};

/// Below this many candidate spans, listing candidates and sorting them beats walking an
/// index in order.
pub(crate) const DRIVE_CAP: i64 = 5_000;

/// How the spans table is reached.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// Candidate spans (their rowids) from a filter's index.
    Driver(Sql),
    /// The start-time index over the timeframe.
    TimeIndex,
    /// Walk the sort index (for aggregates: let SQLite choose).
    Ordered,
}

/// Spans matching a timeframe and filters.
#[derive(Debug, Clone)]
pub(crate) struct Matching {
    start: i64,
    end: i64,
    filters: Vec<Filter>,
}

fn clamp(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

impl Matching {
    /// Resolves the timeframe and filters.
    pub(crate) fn new(timeframe: Timeframe, filters: Vec<Filter>) -> Self {
        Matching {
            start: clamp(timeframe.start_ns),
            end: clamp(timeframe.end_ns),
            filters,
        }
    }

    /// Picks the access path (see the module documentation).
    pub(crate) async fn choose(&self, conn: &mut SqliteConnection) -> Result<Access, StorageError> {
        let mut in_time = Sql::new(
            "SELECT 1 FROM spans AS s INDEXED BY start_time_index WHERE s.start_time_unix_nano BETWEEN ",
        );
        in_time
            .int_param(self.start)
            .push(" AND ")
            .int_param(self.end);
        let time_count = count_capped(conn, &in_time).await?;
        let mut best: Option<(i64, Sql)> = None;
        for filter in &self.filters {
            if let Some(driver) = filter.driver(self.start, self.end) {
                let n = count_capped(conn, &driver).await?;
                if best.as_ref().is_none_or(|(m, _)| n < *m) {
                    best = Some((n, driver));
                }
            }
        }
        Ok(match best {
            Some((n, driver)) if n < DRIVE_CAP && n < time_count => Access::Driver(driver),
            _ if time_count < DRIVE_CAP => Access::TimeIndex,
            _ => Access::Ordered,
        })
    }

    /// `FROM ...` reaching spans as `s`. `sort_index` names the index to walk for
    /// [`Access::Ordered`] (none: SQLite chooses).
    pub(crate) fn from(&self, access: &Access, sort_index: Option<&str>) -> Sql {
        match access {
            Access::Driver(driver) => {
                let mut sql = Sql::new(" FROM (");
                sql.append(driver)
                    .push(") AS d CROSS JOIN spans AS s ON s.rowid = d.span_rowid");
                sql
            }
            Access::TimeIndex => Sql::new(" FROM spans AS s INDEXED BY start_time_index"),
            Access::Ordered => match sort_index {
                Some(index) => Sql::new(&format!(" FROM spans AS s INDEXED BY {index}")),
                None => Sql::new(" FROM spans AS s"),
            },
        }
    }

    /// The ingestion segments holding spans that start in the timeframe, newest first.
    pub(crate) async fn segments(
        &self,
        conn: &mut SqliteConnection,
    ) -> Result<Vec<i64>, StorageError> {
        sqlx::query_scalar(
            "SELECT bucket FROM segments WHERE max_start_time_unix_nano >= ? \
             AND min_start_time_unix_nano <= ? ORDER BY bucket DESC",
        )
        .bind(self.start)
        .bind(self.end)
        .fetch_all(conn)
        .await
        .map_err(crate::sqlite::errors::storage_error)
    }

    /// ` WHERE ...`: timeframe and every filter.
    pub(crate) fn where_clause(&self) -> Sql {
        let mut sql = Sql::new(" WHERE s.start_time_unix_nano BETWEEN ");
        sql.int_param(self.start).push(" AND ").int_param(self.end);
        for filter in &self.filters {
            sql.push(" AND ").append(&filter.predicate());
        }
        sql
    }
}

/// The `spans` column and index of a sort field.
pub(crate) fn sort_column(field: SortField) -> (&'static str, &'static str) {
    match field {
        SortField::StartTime => ("start_time_unix_nano", "start_time_index"),
        SortField::Duration => ("duration", "duration_index"),
    }
}

/// `count(*)` of `sql`'s rows, stopping at [`DRIVE_CAP`].
async fn count_capped(conn: &mut SqliteConnection, sql: &Sql) -> Result<i64, StorageError> {
    let mut count = Sql::new("SELECT count(*) FROM (");
    count
        .append(sql)
        .push(" LIMIT ")
        .int_param(DRIVE_CAP)
        .push(")");
    let row = count
        .fetch_optional(conn)
        .await
        .map_err(crate::sqlite::errors::storage_error)?;
    Ok(match row {
        Some(row) => {
            sqlx::Row::try_get::<i64, _>(&row, 0).map_err(crate::sqlite::errors::storage_error)?
        }
        None => 0,
    })
}
