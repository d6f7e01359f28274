//! Service dependencies: every span with a parent is joined to its parent (by the span
//! ID primary key, checked to be of the same trace), the pairs are counted per
//! (parent resource set, child resource set) in SQL, and the few resource-set pairs are
//! folded into service pairs here, dropping calls within one service.

use super::services::{service_by_set, service_of};
use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use sqlx::{Row as _, SqliteConnection};
use std::collections::BTreeMap;
use teletrace_core::storage::{DependencyLink, StorageError, Timeframe};

fn clamp(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// Call edges among child spans starting in `timeframe`, sorted by (parent, child).
pub(crate) async fn dependencies(
    conn: &mut SqliteConnection,
    timeframe: Timeframe,
) -> Result<Vec<DependencyLink>, StorageError> {
    if timeframe.start_ns > timeframe.end_ns {
        return Ok(Vec::new());
    }
    // CROSS JOIN keeps the child spans outside: they are walked once (by the start-time
    // range) and each parent is one primary-key lookup.
    let mut sql = Sql::new(
        "SELECT p.resource_set_id, s.resource_set_id, count(*), \
         sum(s.span_status_code = 'Error') \
         FROM spans AS s CROSS JOIN spans AS p ON p.span_id = s.parent_span_id \
         WHERE s.start_time_unix_nano BETWEEN ",
    );
    sql.int_param(clamp(timeframe.start_ns))
        .push(" AND ")
        .int_param(clamp(timeframe.end_ns))
        .push(
            " AND s.parent_span_id != '' AND p.trace_id = s.trace_id \
             AND p.resource_set_id IS NOT s.resource_set_id GROUP BY 1, 2",
        );
    let rows = sql.fetch_all(conn).await.map_err(storage_error)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let services = service_by_set(conn).await?;
    let mut edges: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for row in &rows {
        let parent: Option<String> = row.try_get(0).map_err(storage_error)?;
        let child: Option<String> = row.try_get(1).map_err(storage_error)?;
        let calls: i64 = row.try_get(2).map_err(storage_error)?;
        let errors: Option<i64> = row.try_get(3).map_err(storage_error)?;
        let parent = service_of(&services, parent.as_deref());
        let child = service_of(&services, child.as_deref());
        if parent == child {
            continue;
        }
        let edge = edges.entry((parent, child)).or_default();
        edge.0 += u64::try_from(calls).unwrap_or(0);
        edge.1 += errors.and_then(|e| u64::try_from(e).ok()).unwrap_or(0);
    }
    Ok(edges
        .into_iter()
        .map(
            |((parent, child), (call_count, error_count))| DependencyLink {
                parent: parent.to_string(),
                child: child.to_string(),
                call_count,
                error_count,
            },
        )
        .collect())
}
