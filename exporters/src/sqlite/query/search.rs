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

/// Runs a search: the page's span IDs first, then the spans themselves.
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
    let (column, index) = sort_column(sort.field);
    let direction = if sort.ascending { "ASC" } else { "DESC" };

    // Ties in the sort value are ordered by rowid, which the sort index holds after the
    // value (a span ID there would double the index and make every insert land at a
    // random place in it: see migrations/0003).
    let mut sql = Sql::new(&format!("SELECT s.span_id, s.{column}, s.rowid"));
    sql.append(&matching.from(&access, Some(index)));
    sql.append(&matching.where_clause());
    if let Some(cursor) = &cursor {
        let compare = if sort.ascending { ">" } else { "<" };
        sql.push(&format!(" AND (s.{column}, s.rowid) {compare} ("))
            .int_param(cursor.v)
            .push(", ")
            .int_param(cursor.r)
            .push(")");
    }
    sql.push(&format!(
        " ORDER BY s.{column} {direction}, s.rowid {direction} LIMIT "
    ))
    .int_param(i64::try_from(limit + 1).unwrap_or(i64::MAX));
    if matches!(access, Access::Ordered) {
        tracing::trace!(sql = sql.text(), "sqlite search walks the sort index");
    }

    let rows = sql.fetch_all(conn).await.map_err(storage_error)?;
    let mut page: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<String, _>(0)?,
                row.try_get::<i64, _>(1)?,
                row.try_get::<i64, _>(2)?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(storage_error)?;
    let next_token = if page.len() > limit {
        page.truncate(limit);
        page.last()
            .map(|(_, value, rowid)| Cursor::new(sort, *value, *rowid).encode())
    } else {
        None
    };
    let ids: Vec<String> = page.into_iter().map(|(id, _, _)| id).collect();
    let spans = load::by_ids(conn, &ids).await?;
    Ok(SearchResponse { spans, next_token })
}
