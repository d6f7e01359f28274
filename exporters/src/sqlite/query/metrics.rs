//! RED metrics of entry spans (kind Server or Consumer, and root spans of any kind), as
//! Jaeger's service performance monitoring computes them for the server side: the spans
//! in the timeframe are streamed (resource set, [name,] start, duration, error) and
//! aggregated here, so percentiles are exact (nearest rank over the stored durations).

use super::services::{service_by_set, service_of, sets_of};
use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use futures::TryStreamExt as _;
use sqlx::{Row as _, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use teletrace_core::storage::{MetricsGroup, MetricsPoint, MetricsQuery, RedSummary, StorageError};

fn clamp(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// The spans of one group, by bucket: durations and error count.
#[derive(Default)]
struct Buckets(BTreeMap<u64, (Vec<u64>, u64)>);

/// RED metrics per service, or per operation of `query.service`.
pub(crate) async fn service_metrics(
    conn: &mut SqliteConnection,
    query: &MetricsQuery<'_>,
) -> Result<Vec<MetricsGroup>, StorageError> {
    let (start, end) = (query.timeframe.start_ns, query.timeframe.end_ns);
    if start > end {
        return Ok(Vec::new());
    }
    let step = query.step_ns.max(1);
    let services = service_by_set(conn).await?;
    let by_operation = query.service.is_some();
    let mut sql = Sql::new(&format!(
        "SELECT s.resource_set_id, s.start_time_unix_nano, s.duration, \
         s.span_status_code = 'Error'{name} FROM spans AS s \
         WHERE s.start_time_unix_nano BETWEEN ",
        name = if by_operation { ", s.name" } else { "" }
    ));
    sql.int_param(clamp(start))
        .push(" AND ")
        .int_param(clamp(end))
        .push(" AND (s.kind IN ('Server', 'Consumer') OR s.parent_span_id = '')");
    if let Some(service) = query.service {
        sql.push(" AND s.resource_set_id IN (")
            .append(&sets_of(service))
            .push(")");
    }

    // Keyed by service, then operation ("" when not grouping by operation), looked up
    // by borrowed text so a row allocates nothing once its group exists.
    let mut groups: HashMap<String, HashMap<String, Buckets>> = HashMap::new();
    {
        let mut rows = sql.fetch(conn).map_err(storage_error)?;
        while let Some(row) = rows.try_next().await.map_err(storage_error)? {
            let set: Option<&str> = row.try_get(0).map_err(storage_error)?;
            let time: i64 = row.try_get(1).map_err(storage_error)?;
            let duration: i64 = row.try_get(2).map_err(storage_error)?;
            let error: bool = row.try_get(3).map_err(storage_error)?;
            let operation: &str = if by_operation {
                row.try_get::<Option<&str>, _>(4)
                    .map_err(storage_error)?
                    .unwrap_or("")
            } else {
                ""
            };
            let service = service_of(&services, set);
            if !groups.contains_key(service) {
                groups.insert(service.to_string(), HashMap::new());
            }
            let Some(operations) = groups.get_mut(service) else {
                continue;
            };
            if !operations.contains_key(operation) {
                operations.insert(operation.to_string(), Buckets::default());
            }
            let Some(buckets) = operations.get_mut(operation) else {
                continue;
            };
            let bucket = u64::try_from(time).unwrap_or(0).saturating_sub(start) / step;
            let slot = buckets.0.entry(bucket).or_default();
            slot.0.push(u64::try_from(duration).unwrap_or(0));
            slot.1 += u64::from(error);
        }
    }

    let mut out: Vec<MetricsGroup> = groups
        .into_iter()
        .flat_map(|(service, operations)| {
            operations
                .into_iter()
                .map(move |(operation, buckets)| (service.clone(), operation, buckets))
        })
        .map(|(service, operation, buckets)| {
            let operation = by_operation.then_some(operation);
            let mut all = Vec::new();
            let mut errors = 0;
            let mut series = Vec::with_capacity(buckets.0.len());
            for (bucket, (mut durations, bucket_errors)) in buckets.0 {
                all.extend_from_slice(&durations);
                errors += bucket_errors;
                series.push(MetricsPoint {
                    time_ns: start.saturating_add(bucket.saturating_mul(step)),
                    summary: RedSummary::from_durations(&mut durations, bucket_errors),
                });
            }
            MetricsGroup {
                service,
                operation,
                summary: RedSummary::from_durations(&mut all, errors),
                series,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
    Ok(out)
}
