//! The Jaeger query API under `/api` (what the Jaeger UI and Grafana's Jaeger data
//! source call), and the RED metrics the web UI's service pages show
//! (`/v1/service-metrics`).
//!
//! | Route | Answer (`data`) |
//! |---|---|
//! | `GET /api/services` | service names |
//! | `GET /api/services/{service}/operations` | operation names |
//! | `GET /api/operations?service=&spanKind=` | `[{"name", "spanKind"}]` |
//! | `GET /api/traces?service=&operation=&tags=&start=&end=&minDuration=&maxDuration=&limit=&lookback=` | traces |
//! | `GET /api/traces/{traceID}` | one trace |
//! | `GET /api/dependencies?endTs=&lookback=` | `[{"parent", "child", "callCount", "errorCount"}]` |
//! | `GET /v1/service-metrics?start=&end=&step=&service=` | `{"groups": [...]}` (see [`spm`]) |
//!
//! Answers use Jaeger's envelope `{"data", "total", "limit", "offset", "errors"}`;
//! errors are `{"data": null, ..., "errors": [{"code", "msg"}]}` with that status.

pub mod model;
pub mod params;
pub mod spm;

use super::api_v1::ApiState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use model::Structured;
use params::Params;
use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use teletrace_core::storage::{StorageError, Timeframe, TraceQuery};

/// Traces returned by `/api/traces` when `limit` is absent (what the Jaeger UI asks for).
pub const DEFAULT_LIMIT: usize = 20;
/// Search window when neither `start` nor `lookback` is given (Jaeger's default).
pub const DEFAULT_TRACE_LOOKBACK: Duration = Duration::from_secs(2 * 24 * 3600);
/// Window of `/api/dependencies` when `lookback` is absent (Jaeger's default).
pub const DEFAULT_DEPENDENCY_LOOKBACK: Duration = Duration::from_secs(24 * 3600);

/// The `/api` routes and `/v1/service-metrics`, to be merged into the server's router.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(find_traces))
        .route("/api/traces/{trace_id}", get(get_trace))
        .route("/api/dependencies", get(dependencies))
        .route("/v1/service-metrics", get(spm::service_metrics))
        .with_state(state)
}

/// A Jaeger error answer: the status and the envelope with one error.
#[derive(Debug)]
pub struct JaegerError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl JaegerError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        JaegerError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "jaeger API request failed");
        }
        let body: Structured<()> = Structured {
            data: None,
            total: 0,
            limit: 0,
            offset: 0,
            errors: Some(vec![model::StructuredError {
                code: self.status.as_u16(),
                msg: self.message,
            }]),
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StorageError> for JaegerError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadRequest(m) => JaegerError::bad_request(m),
            StorageError::Backend(m) => JaegerError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("storage: {m}"),
            },
        }
    }
}

impl From<QueryRejection> for JaegerError {
    fn from(e: QueryRejection) -> Self {
        JaegerError::bad_request(e.body_text())
    }
}

impl From<PathRejection> for JaegerError {
    fn from(e: PathRejection) -> Self {
        JaegerError::bad_request(e.body_text())
    }
}

type JaegerResult<T> = Result<Json<Structured<T>>, JaegerError>;

fn ok<T: Serialize>(data: Vec<T>) -> JaegerResult<Vec<T>> {
    let total = data.len();
    Ok(Json(Structured::ok(data, total)))
}

/// The current time in ns since the epoch.
pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A time parameter in `unit_ns` units since the epoch, as ns (negative is 400).
fn time_param(params: &Params, name: &str, unit_ns: u64) -> Result<Option<u64>, JaegerError> {
    match params.int(name).map_err(JaegerError::bad_request)? {
        None => Ok(None),
        Some(v) => u64::try_from(v)
            .map(|v| Some(v.saturating_mul(unit_ns)))
            .map_err(|_| {
                JaegerError::bad_request(format!("unable to parse param '{name}': negative time"))
            }),
    }
}

async fn services(State(state): State<ApiState>) -> JaegerResult<Vec<String>> {
    ok(state.reader.services().await?)
}

async fn service_operations(
    State(state): State<ApiState>,
    service: Result<Path<String>, PathRejection>,
) -> JaegerResult<Vec<String>> {
    let Path(service) = service?;
    let mut names: Vec<String> = state
        .reader
        .operations(&service, None)
        .await?
        .into_iter()
        .map(|o| o.name)
        .collect();
    names.sort();
    names.dedup();
    ok(names)
}

async fn operations(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> JaegerResult<Vec<model::OperationEntry>> {
    let params = Params(query?.0);
    let Some(service) = params.get("service") else {
        return Err(JaegerError::bad_request("parameter 'service' is required"));
    };
    let kind = match params.get("spanKind") {
        None => None,
        Some(k) => Some(model::kind_value(k).ok_or_else(|| {
            JaegerError::bad_request(format!(
                "unsupported span kind {k:?}: use server, client, producer, consumer or internal"
            ))
        })?),
    };
    let operations = state.reader.operations(service, kind).await?;
    ok(operations
        .into_iter()
        .map(|o| model::OperationEntry {
            name: o.name,
            span_kind: model::kind_name(o.span_kind).unwrap_or(""),
        })
        .collect())
}

/// Parses `/api/traces` parameters into a storage query (`traceID` parameters aside).
fn trace_query(params: &Params, now: u64) -> Result<TraceQuery, JaegerError> {
    let bad = JaegerError::bad_request;
    let end = time_param(params, "end", 1_000)?.unwrap_or(now);
    let start = match time_param(params, "start", 1_000)? {
        Some(start) => start,
        None => {
            let lookback = params
                .duration("lookback")
                .map_err(bad)?
                .unwrap_or(DEFAULT_TRACE_LOOKBACK);
            end.saturating_sub(nanos(lookback))
        }
    };
    if start > end {
        return Err(JaegerError::bad_request("'start' must not be after 'end'"));
    }
    let min = params.duration("minDuration").map_err(bad)?.map(nanos);
    let max = params.duration("maxDuration").map_err(bad)?.map(nanos);
    if let (Some(min), Some(max)) = (min, max) {
        if max < min {
            return Err(JaegerError::bad_request(
                "'maxDuration' should be greater than 'minDuration'",
            ));
        }
    }
    let limit = match params.int("limit").map_err(bad)? {
        None => DEFAULT_LIMIT,
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        Some(_) => {
            return Err(JaegerError::bad_request(
                "'limit' must be a positive integer",
            ))
        }
    };
    Ok(TraceQuery {
        service: params.get("service").map(str::to_string),
        operation: params.get("operation").map(str::to_string),
        tags: params::parse_tags(params).map_err(bad)?,
        timeframe: Timeframe {
            start_ns: start,
            end_ns: end,
        },
        min_duration_ns: min,
        max_duration_ns: max,
        limit,
    })
}

async fn find_traces(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> JaegerResult<Vec<model::Trace>> {
    let params = Params(query?.0);
    let trace_ids: Vec<[u8; 16]> = params
        .all("traceID")
        .map(|t| {
            model::parse_trace_id(t).ok_or_else(|| {
                JaegerError::bad_request(format!("cannot parse traceID param: {t:?}"))
            })
        })
        .collect::<Result<_, _>>()?;
    let ids = if trace_ids.is_empty() {
        let query = trace_query(&params, now_ns())?;
        if query.service.is_none() {
            return Err(JaegerError::bad_request("parameter 'service' is required"));
        }
        state.reader.find_trace_ids(&query).await?
    } else {
        trace_ids
    };
    let mut traces = Vec::with_capacity(ids.len());
    for id in ids {
        let spans = state.reader.get_trace(&id).await?;
        if !spans.is_empty() {
            traces.push(model::trace(&id, &spans));
        }
    }
    ok(traces)
}

async fn get_trace(
    State(state): State<ApiState>,
    trace_id: Result<Path<String>, PathRejection>,
) -> JaegerResult<Vec<model::Trace>> {
    let Path(text) = trace_id?;
    let id = model::parse_trace_id(&text).ok_or_else(|| {
        JaegerError::bad_request(format!(
            "TraceID must be 1 to 32 hex characters, got {text:?}"
        ))
    })?;
    let spans = state.reader.get_trace(&id).await?;
    if spans.is_empty() {
        return Err(JaegerError {
            status: StatusCode::NOT_FOUND,
            message: "trace not found".into(),
        });
    }
    ok(vec![model::trace(&id, &spans)])
}

async fn dependencies(
    State(state): State<ApiState>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> JaegerResult<Vec<model::Dependency>> {
    let params = Params(query?.0);
    let end = time_param(&params, "endTs", 1_000_000)?.unwrap_or_else(now_ns);
    let lookback = match params.int("lookback").map_err(JaegerError::bad_request)? {
        None => nanos(DEFAULT_DEPENDENCY_LOOKBACK),
        Some(ms) if ms >= 0 => u64::try_from(ms).unwrap_or(0).saturating_mul(1_000_000),
        Some(_) => {
            return Err(JaegerError::bad_request(
                "unable to parse param 'lookback': negative duration",
            ))
        }
    };
    let timeframe = Timeframe {
        start_ns: end.saturating_sub(lookback),
        end_ns: end,
    };
    let links = state.reader.dependencies(timeframe).await?;
    ok(links
        .into_iter()
        .map(|l| model::Dependency {
            parent: l.parent,
            child: l.child,
            call_count: l.call_count,
            error_count: l.error_count,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn trace_query_reads_jaeger_parameters() {
        let now = 10_000_000_000_000;
        let q = trace_query(
            &params(&[
                ("service", "svc"),
                ("operation", "op"),
                ("start", "1000"),
                ("end", "2000"),
                ("minDuration", "1.2s"),
                ("maxDuration", "2s"),
                ("limit", "5"),
                ("tags", r#"{"a":"b"}"#),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(
            q.timeframe,
            Timeframe {
                start_ns: 1_000_000,
                end_ns: 2_000_000
            }
        );
        assert_eq!(q.min_duration_ns, Some(1_200_000_000));
        assert_eq!(q.max_duration_ns, Some(2_000_000_000));
        assert_eq!(q.limit, 5);
        assert_eq!(q.tags, vec![("a".to_string(), "b".to_string())]);

        let q = trace_query(&params(&[("service", "s"), ("lookback", "1h")]), now).unwrap();
        assert_eq!(q.timeframe.end_ns, now);
        assert_eq!(q.timeframe.start_ns, now - 3_600_000_000_000);
        assert_eq!(q.limit, DEFAULT_LIMIT);

        for bad in [
            &[("start", "x")][..],
            &[("start", "5"), ("end", "4")],
            &[("minDuration", "2s"), ("maxDuration", "1s")],
            &[("limit", "0")],
            &[("lookback", "soon")],
        ] {
            assert!(trace_query(&params(bad), now).is_err(), "{bad:?}");
        }
    }
}
