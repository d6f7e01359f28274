//! The Teletrace v1 HTTP API: routes under `/v1` and their handlers.
//!
//! | Route | Answer |
//! |---|---|
//! | `GET /v1/ping` | `pong` |
//! | `POST /v1/search` | `{"metadata": {"nextToken"} \| null, "spans": [...]}` |
//! | `GET /v1/trace/{traceId}` | every span of the trace, same shape as search |
//! | `GET /v1/tags` | `{"Tags": [{"name", "type"}]}` |
//! | `POST /v1/tags/{tag}` | `{"metadata": null, "values": [{"value", "count"}]}` |
//! | `POST /v1/tags/{tag}/statistics` | `{"statistics": {"min": ..., ...}}` |
//! | `GET /v1/system-info` | `{"systemId", "usageReportingEnabled"}` |
//! | `GET /v1/system-id` | `{"value"}` |
//!
//! Errors answer `{"errorMessage": "..."}`: 400 for a request that cannot be served as
//! written, 404 for an unknown trace, 500 when the storage fails.

use super::model::{self, BadRequest};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use teletrace_core::buffer_pool;
use teletrace_core::storage::{SearchRequest, StorageError, TraceReader};

/// What the v1 handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The storing exporter's reader.
    pub reader: Arc<dyn TraceReader>,
    /// The installation's stable ID.
    pub system_id: Arc<str>,
}

/// The `/v1` routes, to be merged into the server's router beside other APIs.
pub fn routes(state: ApiState) -> Router {
    Router::new()
        .route("/v1/ping", get(ping))
        .route("/v1/search", post(search))
        .route("/v1/trace/{trace_id}", get(get_trace))
        .route("/v1/tags", get(tags))
        .route("/v1/tags/{tag}", post(tag_values))
        .route("/v1/tags/{tag}/statistics", post(tag_statistics))
        .route("/v1/system-info", get(system_info))
        .route("/v1/system-id", get(system_id))
        .with_state(state)
}

/// An error answer: a status and `{"errorMessage"}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, error = %self.message, "query API request failed");
        } else {
            tracing::debug!(status = %self.status, error = %self.message, "query API request refused");
        }
        (
            self.status,
            Json(model::ErrorResponseV1 {
                error_message: self.message,
            }),
        )
            .into_response()
    }
}

impl From<BadRequest> for ApiError {
    fn from(e: BadRequest) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.0)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            StorageError::Backend(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("storage: {m}"))
            }
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> Self {
        ApiError::new(
            e.status(),
            format!("cannot read request body: {}", e.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// A JSON answer written beforehand (see [`model::spans_response`]).
struct JsonBody(Bytes);

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// The current time in ns since the epoch.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

async fn ping() -> &'static str {
    "pong"
}

async fn search(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<JsonBody, ApiError> {
    let body: model::SearchRequestV1 = model::parse_body(&body?)?;
    let request = SearchRequest {
        timeframe: model::TimeframeV1::resolve(body.timeframe.as_ref(), now_ns())?,
        filters: model::convert_filters(body.filters.as_deref())?,
        sort: model::convert_sort(body.sort.as_ref())?,
        next_token: body
            .metadata
            .and_then(|m| m.next_token)
            .filter(|t| !t.is_empty()),
        limit: model::PAGE_SIZE,
    };
    let response = state.reader.search(&request).await?;
    Ok(JsonBody(
        model::spans_response(response.next_token.as_deref(), &response.spans).into(),
    ))
}

async fn get_trace(
    State(state): State<ApiState>,
    trace_id: Result<Path<String>, PathRejection>,
) -> Result<JsonBody, ApiError> {
    let Path(text) = trace_id?;
    let id = model::parse_trace_id(text.trim())?;
    // A large trace's JSON is megabytes: written into a kept buffer, which goes back
    // to the pool once the answer is sent (`buffer_pool`).
    let mut body = buffer_pool::take();
    model::write_spans_response_head(&mut body, None);
    let spans = state.reader.write_trace_json(&id, &mut body).await?;
    if spans == 0 {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("trace {} not found", hex::encode(id)),
        ));
    }
    body.push(b'}');
    Ok(JsonBody(body.into_bytes()))
}

async fn tags(State(state): State<ApiState>) -> ApiResult<model::TagsResponseV1> {
    let tags = state.reader.tags().await?;
    Ok(Json(model::TagsResponseV1 {
        tags: tags
            .into_iter()
            .map(|t| model::TagInfoV1 {
                name: t.name,
                value_type: t.value_type,
            })
            .collect(),
    }))
}

async fn tag_values(
    State(state): State<ApiState>,
    tag: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<model::TagValuesResponseV1> {
    let Path(tag) = tag?;
    let body: model::TagValuesRequestV1 = model::parse_body(&body?)?;
    let timeframe = model::TimeframeV1::resolve(body.timeframe.as_ref(), now_ns())?;
    let filters = model::convert_filters(body.filters.as_deref())?;
    let values = state
        .reader
        .tag_values(tag.trim(), timeframe, &filters)
        .await?;
    Ok(Json(model::TagValuesResponseV1 {
        metadata: None,
        values: values
            .into_iter()
            .map(|v| model::TagValueV1 {
                value: v.value,
                count: v.count,
            })
            .collect(),
    }))
}

async fn tag_statistics(
    State(state): State<ApiState>,
    tag: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<model::TagStatisticsResponseV1> {
    let Path(tag) = tag?;
    let body: model::TagStatisticsRequestV1 = model::parse_body(&body?)?;
    let timeframe = model::TimeframeV1::resolve(body.timeframe.as_ref(), now_ns())?;
    let filters = model::convert_filters(body.filters.as_deref())?;
    let wanted = model::convert_statistics(body.desired_statistics.as_deref())?;
    let mut statistics = Map::new();
    if !wanted.is_empty() {
        let values = state
            .reader
            .tag_statistics(tag.trim(), timeframe, &filters, &wanted)
            .await?;
        for (stat, value) in values {
            if !wanted.contains(&stat) {
                continue;
            }
            let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
            statistics.insert(model::statistic_name(stat).to_string(), value);
        }
    }
    Ok(Json(model::TagStatisticsResponseV1 { statistics }))
}

async fn system_info(State(state): State<ApiState>) -> Json<model::SystemInfoV1> {
    Json(model::SystemInfoV1 {
        system_id: state.system_id.to_string(),
        usage_reporting_enabled: false,
    })
}

async fn system_id(State(state): State<ApiState>) -> Json<model::SystemIdV1> {
    Json(model::SystemIdV1 {
        value: state.system_id.to_string(),
    })
}
