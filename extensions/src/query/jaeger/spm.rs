//! `GET /v1/service-metrics`: RED metrics (rate, errors, duration percentiles) per
//! service, or per operation of one service, over a time range with a series of
//! buckets, computed by the storage from stored spans.
//!
//! Which spans count: a service's entry spans (kind Server or Consumer, and root spans
//! of any kind), as Jaeger's service performance monitoring does for server-side RED.
//! Percentiles are exact (nearest rank). Empty buckets are left out of `series`.

use super::params::Params;
use crate::query::api_v1::{ApiError, ApiState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use teletrace_core::storage::{MetricsGroup, MetricsQuery, RedSummary, Timeframe};

/// Most buckets in a series: a smaller `step` is widened to fit.
pub const MAX_BUCKETS: u64 = 500;
/// Buckets when `step` is absent.
pub const DEFAULT_BUCKETS: u64 = 60;

/// The answer.
#[derive(Debug, Serialize)]
pub struct ServiceMetricsResponse {
    /// One per service (`operation: null`) or per operation of the asked service.
    pub groups: Vec<Group>,
}

/// RED metrics of one service or operation.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    /// `service.name`.
    pub service: String,
    /// Span name, or `null` for a whole service.
    pub operation: Option<String>,
    /// Entry spans in `[start, end]`.
    pub count: u64,
    /// Of which with status Error.
    pub error_count: u64,
    /// Spans per second over `[start, end]`.
    pub rate: f64,
    /// `errorCount / count` (0 when there are none).
    pub error_rate: f64,
    /// Median duration, ns.
    pub p50: u64,
    /// 95th percentile duration, ns.
    pub p95: u64,
    /// 99th percentile duration, ns.
    pub p99: u64,
    /// Non-empty buckets, in time order.
    pub series: Vec<Point>,
}

/// One bucket.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Bucket start, ns since the epoch.
    pub time: u64,
    /// Spans in the bucket.
    pub count: u64,
    /// Of which with status Error.
    pub error_count: u64,
    /// Median duration, ns.
    pub p50: u64,
    /// 95th percentile duration, ns.
    pub p95: u64,
    /// 99th percentile duration, ns.
    pub p99: u64,
}

/// The bucket width for `[start, end]`: `step` or (end - start) / 60 by default, at
/// least 1 ns, widened so that there are at most [`MAX_BUCKETS`] buckets.
pub fn effective_step(start: u64, end: u64, step: Option<u64>) -> u64 {
    let span = end - start;
    let step = step.unwrap_or(span / DEFAULT_BUCKETS).max(1);
    // Buckets needed: floor(span / step) + 1 (both ends are inclusive).
    if span / step < MAX_BUCKETS {
        step
    } else {
        (span / MAX_BUCKETS) + 1
    }
}

fn parse(params: &Params, name: &str) -> Result<Option<u64>, ApiError> {
    match params.get(name) {
        None => Ok(None),
        Some(v) => v.trim().parse::<u64>().map(Some).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} must be a non-negative integer (ns), got {v:?}"),
            )
        }),
    }
}

fn group(g: MetricsGroup, seconds: f64) -> Group {
    let s: RedSummary = g.summary;
    Group {
        service: g.service,
        operation: g.operation,
        count: s.count,
        error_count: s.error_count,
        rate: s.count as f64 / seconds,
        error_rate: if s.count == 0 {
            0.0
        } else {
            s.error_count as f64 / s.count as f64
        },
        p50: s.p50_ns,
        p95: s.p95_ns,
        p99: s.p99_ns,
        series: g
            .series
            .into_iter()
            .map(|p| Point {
                time: p.time_ns,
                count: p.summary.count,
                error_count: p.summary.error_count,
                p50: p.summary.p50_ns,
                p95: p.summary.p95_ns,
                p99: p.summary.p99_ns,
            })
            .collect(),
    }
}

/// The handler.
pub async fn service_metrics(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<ServiceMetricsResponse>, ApiError> {
    let params = Params(
        query
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?
            .0,
    );
    let required = |name: &str| -> Result<u64, ApiError> {
        parse(&params, name)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("{name} is required (unix ns)"),
            )
        })
    };
    let start = required("start")?;
    let end = required("end")?;
    if end < start {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "end must not be before start",
        ));
    }
    let step = match parse(&params, "step")? {
        Some(0) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "step must be positive",
            ))
        }
        other => other,
    };
    let query = MetricsQuery {
        timeframe: Timeframe {
            start_ns: start,
            end_ns: end,
        },
        step_ns: effective_step(start, end, step),
        service: params.get("service"),
    };
    let groups = state.reader.service_metrics(&query).await?;
    let seconds = ((end - start) as f64 / 1e9).max(1e-9);
    Ok(Json(ServiceMetricsResponse {
        groups: groups.into_iter().map(|g| group(g, seconds)).collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_default_to_sixty_buckets_and_cap_at_five_hundred() {
        assert_eq!(effective_step(0, 60_000, None), 1_000);
        assert_eq!(effective_step(0, 10, None), 1);
        assert_eq!(effective_step(0, 1_000, Some(100)), 100);
        let step = effective_step(0, 1_000_000, Some(1));
        assert!(1_000_000 / step < MAX_BUCKETS, "{step}");
        assert_eq!(effective_step(5, 5, None), 1);
    }
}
