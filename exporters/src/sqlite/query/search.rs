//! Span search with keyset paging.

use super::filter::Filter;
use super::load;
use super::plan::{sort_column, Access, Matching};
use super::sql::Sql;
use super::token::Cursor;
use crate::sqlite::errors::storage_error;
use sqlx::{Row as _, SqliteConnection};
use teletrace_core::storage::{SearchRequest, SearchResponse, Sort, SortField, StorageError};

/// Page size when the request asks for 0.
pub(crate) const DEFAULT_LIMIT: usize = 200;
/// Largest page served.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// Runs a search: the page's rowids first, then the spans themselves.
pub(crate) async fn search(
    conn: &mut SqliteConnection,
    request: &SearchRequest,
) -> Result<SearchResponse, StorageError> {
    let sort = request.sort.first().copied().unwrap_or(Sort {
        field: SortField::StartTime,
        ascending: false,
    });
    let cursor = request
        .next_token
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .map(|t| Cursor::decode(t, sort))
        .transpose()?;
    let filters = request
        .filters
        .iter()
        .map(Filter::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let limit = match request.limit {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    };
    if request.timeframe.start_ns > request.timeframe.end_ns {
        return Ok(SearchResponse::default());
    }

    let matching = Matching::new(request.timeframe, filters);
    let access = matching.choose(conn).await?;
    let want = limit + 1;
    let mut page = match (&access, sort.field) {
        (Access::Ordered, SortField::Duration) => {
            by_duration_per_segment(conn, &matching, sort.ascending, cursor.as_ref(), want).await?
        }
        _ => {
            let (column, index) = sort_column(sort.field);
            let mut sql = Sql::new(&format!("SELECT s.{column}, s.rowid"));
            sql.append(&matching.from(&access, Some(index)));
            sql.append(&matching.where_clause());
            push_order(&mut sql, column, sort.ascending, cursor.as_ref(), want);
            if matches!(access, Access::Ordered) {
                tracing::trace!(sql = sql.text(), "sqlite search walks the sort index");
            }
            keys(sql.fetch_all(conn).await.map_err(storage_error)?)?
        }
    };
    let next_token = if page.len() > limit {
        page.truncate(limit);
        page.last()
            .map(|(value, rowid)| Cursor::new(sort, *value, *rowid).encode())
    } else {
        None
    };
    let rowids: Vec<i64> = page.into_iter().map(|(_, rowid)| rowid).collect();
    let spans = load::by_rowids(conn, &rowids).await?;
    Ok(SearchResponse { spans, next_token })
}

/// Appends the keyset condition after `cursor` and `ORDER BY column, rowid ... LIMIT
/// want`. Ties in the sort value are ordered by rowid, which every index holds after
/// its columns (a span ID there would make every insert land at a random place in it:
/// see migrations/0003).
fn push_order(sql: &mut Sql, column: &str, ascending: bool, cursor: Option<&Cursor>, want: usize) {
    if let Some(cursor) = cursor {
        push_after(sql, column, ascending, cursor.v, cursor.r);
    }
    let direction = if ascending { "ASC" } else { "DESC" };
    sql.push(&format!(
        " ORDER BY s.{column} {direction}, s.rowid {direction} LIMIT "
    ))
    .int_param(i64::try_from(want).unwrap_or(i64::MAX));
}

/// ` AND (s.column, s.rowid)` after `(value, rowid)` in the page order.
fn push_after(sql: &mut Sql, column: &str, ascending: bool, value: i64, rowid: i64) {
    let compare = if ascending { ">" } else { "<" };
    sql.push(&format!(" AND (s.{column}, s.rowid) {compare} ("))
        .int_param(value)
        .push(", ")
        .int_param(rowid)
        .push(")");
}

/// (sort value, rowid) of each row.
fn keys(rows: Vec<sqlx::sqlite::SqliteRow>) -> Result<Vec<(i64, i64)>, StorageError> {
    rows.iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
        .collect::<Result<_, sqlx::Error>>()
        .map_err(storage_error)
}

/// The first `want` matches by duration, when walking an index in order is the plan.
/// `duration_index` is ordered per ingestion segment (see migrations/0004), so each
/// segment of the timeframe is walked in turn, newest first, for at most `want` rows
/// that beat the `want`-th best found so far, and the results are merged: once the page
/// is full, a segment without better rows costs one index seek.
async fn by_duration_per_segment(
    conn: &mut SqliteConnection,
    matching: &Matching,
    ascending: bool,
    cursor: Option<&Cursor>,
    want: usize,
) -> Result<Vec<(i64, i64)>, StorageError> {
    let buckets = matching.segments(conn).await?;
    let order = |a: &(i64, i64), b: &(i64, i64)| {
        if ascending {
            a.cmp(b)
        } else {
            b.cmp(a)
        }
    };
    let mut best: Vec<(i64, i64)> = Vec::with_capacity(want * 2);
    for bucket in buckets {
        let mut sql =
            Sql::new("SELECT s.duration, s.rowid FROM spans AS s INDEXED BY duration_index");
        sql.append(&matching.where_clause());
        sql.push(" AND s.bucket = ").int_param(bucket);
        if best.len() >= want {
            if let Some(&(value, rowid)) = best.last() {
                push_after(&mut sql, "duration", !ascending, value, rowid);
            }
        }
        push_order(&mut sql, "duration", ascending, cursor, want);
        best.extend(keys(
            sql.fetch_all(&mut *conn).await.map_err(storage_error)?,
        )?);
        best.sort_unstable_by(order);
        best.truncate(want);
    }
    Ok(best)
}
