//! RED metrics of entry spans (kind Server or Consumer, and root spans of any kind), as
//! Jaeger's service performance monitoring computes them for the server side.
//!
//! SQLite does the grouping: one row per (resource set, [span name,] time slot) with
//! the span count, the error count and the slot's durations as one `group_concat` list.
//! So a million spans come back as a few hundred rows (instead of a row per span, whose
//! transfer was most of the cost), and the percentiles stay exact: nearest rank over
//! the stored durations, per slot and over the whole timeframe, computed here from the
//! lists. Resource sets are then folded into their services.
//!
//! A timeframe covering most of the stored time range is read by a plain table scan,
//! which beats walking the start-time index and fetching every row from it.

use super::services::{service_by_set, service_of, sets_of};
use super::sql::Sql;
use crate::sqlite::errors::storage_error;
use sqlx::{Row as _, SqliteConnection};
use std::collections::{BTreeMap, HashMap};
use teletrace_core::storage::{MetricsGroup, MetricsPoint, MetricsQuery, RedSummary, StorageError};

fn clamp(ns: u64) -> i64 {
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// The spans of one group, by time slot: durations and error count.
#[derive(Default)]
struct Slots(BTreeMap<u64, (Vec<u64>, u64)>);

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
    let by_operation = query.service.is_some();
    let scan = if covers_most_spans(conn, clamp(start), clamp(end)).await? {
        " NOT INDEXED"
    } else {
        ""
    };
    let mut sql = Sql::new(&format!(
        "SELECT s.resource_set_id, {name}, (s.start_time_unix_nano - ",
        name = if by_operation { "s.name" } else { "NULL" }
    ));
    sql.int_param(clamp(start))
        .push(") / ")
        .int_param(clamp(step))
        .push(&format!(
            " AS slot, count(*), sum(s.span_status_code = 'Error'), group_concat(s.duration) \
             FROM spans AS s{scan} WHERE s.start_time_unix_nano BETWEEN "
        ))
        .int_param(clamp(start))
        .push(" AND ")
        .int_param(clamp(end))
        .push(" AND (s.kind IN ('Server', 'Consumer') OR s.parent_span_id = '')");
    if let Some(service) = query.service {
        sql.push(" AND s.resource_set_id IN (")
            .append(&sets_of(service))
            .push(")");
    }
    sql.push(" GROUP BY 1, 2, 3");
    let rows = sql.fetch_all(conn).await.map_err(storage_error)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }

    let services = service_by_set(conn).await?;
    // Keyed by service, then operation ("" when not grouping by operation).
    let mut groups: HashMap<&str, HashMap<String, Slots>> = HashMap::new();
    for row in &rows {
        let set: Option<&str> = row.try_get(0).map_err(storage_error)?;
        let operation: Option<&str> = row.try_get(1).map_err(storage_error)?;
        let slot: i64 = row.try_get(2).map_err(storage_error)?;
        let count: i64 = row.try_get(3).map_err(storage_error)?;
        let errors: i64 = row.try_get(4).map_err(storage_error)?;
        let durations: &str = row.try_get(5).map_err(storage_error)?;
        let slots = groups
            .entry(service_of(&services, set))
            .or_default()
            .entry(operation.unwrap_or("").to_string())
            .or_default();
        let (all, slot_errors) = slots.0.entry(u64::try_from(slot).unwrap_or(0)).or_default();
        all.reserve(usize::try_from(count).unwrap_or(0));
        for d in durations.split(',') {
            let d: i64 = d.parse().map_err(|_| {
                StorageError::Backend(format!("service metrics: a duration reads {d:?}"))
            })?;
            all.push(u64::try_from(d).unwrap_or(0));
        }
        *slot_errors += u64::try_from(errors).unwrap_or(0);
    }

    let mut out: Vec<MetricsGroup> = groups
        .into_iter()
        .flat_map(|(service, operations)| {
            operations
                .into_iter()
                .map(move |(operation, slots)| (service, operation, slots))
        })
        .map(|(service, operation, slots)| {
            let operation = by_operation.then_some(operation);
            let mut all = Vec::new();
            let mut errors = 0;
            let mut series = Vec::with_capacity(slots.0.len());
            for (slot, (mut durations, slot_errors)) in slots.0 {
                all.extend_from_slice(&durations);
                errors += slot_errors;
                series.push(MetricsPoint {
                    time_ns: start.saturating_add(slot.saturating_mul(step)),
                    summary: RedSummary::from_durations(&mut durations, slot_errors),
                });
            }
            MetricsGroup {
                service: service.to_string(),
                operation,
                summary: RedSummary::from_durations(&mut all, errors),
                series,
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)));
    Ok(out)
}

/// Whether `start..=end` covers at least half of the stored spans' start-time range (two
/// index lookups), so that scanning the table beats walking the start-time index.
pub(super) async fn covers_most_spans(
    conn: &mut SqliteConnection,
    start: i64,
    end: i64,
) -> Result<bool, StorageError> {
    let row = sqlx::query(
        "SELECT (SELECT min(start_time_unix_nano) FROM spans), \
         (SELECT max(start_time_unix_nano) FROM spans)",
    )
    .fetch_one(conn)
    .await
    .map_err(storage_error)?;
    let first: Option<i64> = row.try_get(0).map_err(storage_error)?;
    let last: Option<i64> = row.try_get(1).map_err(storage_error)?;
    let (Some(first), Some(last)) = (first, last) else {
        return Ok(false);
    };
    let stored = i128::from(last) - i128::from(first);
    let covered = i128::from(end.min(last)) - i128::from(start.max(first));
    Ok(covered >= 0 && covered * 2 >= stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::test_support::{add_services, database, Lcg};
    use teletrace_core::storage::Timeframe;

    /// A stored span: (resource set, name, kind, root, start, duration, error).
    type Stored = (
        Option<&'static str>,
        &'static str,
        &'static str,
        bool,
        u64,
        i64,
        bool,
    );

    /// Spans of services a (two resource sets), b and no service, every kind, some roots,
    /// some negative durations (clamped to 0), start times 0..10,000.
    async fn store(conn: &mut SqliteConnection) -> Vec<Stored> {
        add_services(conn, &[("a1", "a"), ("a2", "a"), ("b", "b")]).await;
        let sets = [Some("a1"), Some("a2"), Some("b"), None];
        let names = ["GET /", "POST /pay", "work"];
        let kinds = ["Server", "Consumer", "Client", "Internal", "Producer"];
        let mut rng = Lcg(11);
        let mut stored = Vec::new();
        for i in 0..2_000u64 {
            let span: Stored = (
                sets[rng.next(4) as usize],
                names[rng.next(3) as usize],
                kinds[rng.next(5) as usize],
                rng.next(5) == 0,
                rng.next(10_000),
                rng.next(5_000) as i64 - 50,
                rng.next(7) == 0,
            );
            let (set, name, kind, root, start, duration, error) = span;
            sqlx::query(
                "INSERT INTO spans (span_id, trace_id, parent_span_id, name, kind, \
                 start_time_unix_nano, end_time_unix_nano, dropped_span_attributes_count, \
                 span_status_message, span_status_code, dropped_resource_attributes_count, \
                 dropped_events_count, dropped_links_count, duration, ingestion_time_unix_nano, \
                 instrumentation_scope_id, resource_set_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, 0, '', ?, 0, 0, 0, ?, 0, 0, ?)",
            )
            .bind(format!("{i:016x}"))
            .bind(format!("{:032x}", i / 4))
            .bind(if root {
                String::new()
            } else {
                format!("{:016x}", i + 10_000)
            })
            .bind(name)
            .bind(kind)
            .bind(start as i64)
            .bind(start as i64 + duration)
            .bind(if error { "Error" } else { "Unset" })
            .bind(duration)
            .bind(set)
            .execute(&mut *conn)
            .await
            .unwrap();
            stored.push(span);
        }
        stored
    }

    /// The metrics computed directly from the stored spans.
    fn expected(stored: &[Stored], query: &MetricsQuery<'_>) -> Vec<MetricsGroup> {
        let service = |set: Option<&str>| match set {
            Some("a1" | "a2") => "a",
            Some("b") => "b",
            _ => super::super::services::NO_SERVICE_NAME,
        };
        let (start, end, step) = (
            query.timeframe.start_ns,
            query.timeframe.end_ns,
            query.step_ns,
        );
        let mut groups: BTreeMap<(&str, Option<&str>), Slots> = BTreeMap::new();
        for &(set, name, kind, root, t, duration, error) in stored {
            let entry = root || kind == "Server" || kind == "Consumer";
            if !entry || t < start || t > end {
                continue;
            }
            // A service filter matches resources carrying that `service.name`.
            if query
                .service
                .is_some_and(|s| set.is_none() || s != service(set))
            {
                continue;
            }
            let operation = query.service.map(|_| name);
            let slot = groups
                .entry((service(set), operation))
                .or_default()
                .0
                .entry((t - start) / step)
                .or_default();
            slot.0.push(u64::try_from(duration).unwrap_or(0));
            slot.1 += u64::from(error);
        }
        groups
            .into_iter()
            .map(|((service, operation), slots)| {
                let slots = slots.0;
                let mut all: Vec<u64> = slots.values().flat_map(|s| s.0.clone()).collect();
                let errors = slots.values().map(|s| s.1).sum();
                MetricsGroup {
                    service: service.to_string(),
                    operation: operation.map(str::to_string),
                    summary: RedSummary::from_durations(&mut all, errors),
                    series: slots
                        .into_iter()
                        .map(|(slot, (mut durations, errors))| MetricsPoint {
                            time_ns: start + slot * step,
                            summary: RedSummary::from_durations(&mut durations, errors),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn grouped_in_sql_equals_the_metrics_of_the_stored_spans() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path()).await;
        let stored = store(&mut conn).await;
        // The whole range (a table scan), a narrow one (the index), per service and per
        // operation, with steps of one slot, a few and many.
        for (start_ns, end_ns) in [
            (0, u64::MAX / 2),
            (0, 9_999),
            (2_500, 3_700),
            (9_000, 20_000),
        ] {
            for step_ns in [1, 333, 20_000] {
                for service in [
                    None,
                    Some("a"),
                    Some(super::super::services::NO_SERVICE_NAME),
                    Some("absent"),
                ] {
                    let query = MetricsQuery {
                        timeframe: Timeframe { start_ns, end_ns },
                        step_ns,
                        service,
                    };
                    let want = expected(&stored, &query);
                    let got = service_metrics(&mut conn, &query).await.unwrap();
                    assert_eq!(got, want, "{start_ns}..{end_ns} step {step_ns} {service:?}");
                }
            }
        }
        // The comparison covers groups with several slots and errors.
        let whole = MetricsQuery {
            timeframe: Timeframe {
                start_ns: 0,
                end_ns: 9_999,
            },
            step_ns: 1_000,
            service: None,
        };
        let got = service_metrics(&mut conn, &whole).await.unwrap();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got
            .iter()
            .all(|g| g.series.len() == 10 && g.summary.error_count > 0));
    }
}
