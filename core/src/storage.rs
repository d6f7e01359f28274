//! The read side of exporters that store spans (SQLite, Elasticsearch): the model the
//! query extension speaks to storage in, and the [`TraceReader`] trait.
//!
//! Tag names follow the Teletrace v1 API: `span.<field>` (`span.name`, `span.kind`,
//! `span.status.code`, `span.traceId`, ...), `span.attributes.<key>`,
//! `resource.attributes.<key>`, `scope.<field>` (`scope.name`, `scope.version`),
//! `scope.attributes.<key>`, `span.events.<field>` / `span.events.attributes.<key>`,
//! and `externalFields.durationNano`.

use async_trait::async_trait;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// An error from a storage reader.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The request cannot be answered as asked (unknown operator for a value type, bad
    /// page token). The query API answers 400 with this message.
    #[error("{0}")]
    BadRequest(String),
    /// The backend failed. The query API answers 500.
    #[error("{0}")]
    Backend(String),
}

/// A time range in nanoseconds since the Unix epoch, inclusive at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Timeframe {
    /// Start, in ns.
    pub start_ns: u64,
    /// End, in ns (the query API turns the v1 API's `0 = now` into the current time).
    pub end_ns: u64,
}

/// A filter operator of the Teletrace v1 API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal to the value.
    Equals,
    /// Not equal (spans without the key do not match).
    NotEquals,
    /// Equal to one of a list of values.
    In,
    /// Equal to none of a list of values.
    NotIn,
    /// String contains the value.
    Contains,
    /// String does not contain the value.
    NotContains,
    /// The key is present.
    Exists,
    /// The key is absent.
    NotExists,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less or equal.
    Lte,
}

/// One `keyValueFilter`: `key` is a tag name, `value` a JSON scalar or (for `in`,
/// `not_in`) an array; ignored for `exists`/`not_exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyValueFilter {
    /// Tag name, e.g. `span.attributes.http.route`.
    pub key: String,
    /// Operator.
    pub operator: Operator,
    /// Value to compare with.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// What a search can sort by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortField {
    /// `span.startTimeUnixNano`.
    #[serde(rename = "span.startTimeUnixNano")]
    StartTime,
    /// `externalFields.durationNano`.
    #[serde(rename = "externalFields.durationNano")]
    Duration,
}

/// A sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// Field.
    pub field: SortField,
    /// Ascending when true.
    pub ascending: bool,
}

/// A span search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    /// Spans whose start time lies in this range.
    pub timeframe: Timeframe,
    /// All must match.
    pub filters: Vec<KeyValueFilter>,
    /// Sort order; default start time descending. Ties are broken by span ID so paging
    /// is stable.
    pub sort: Vec<Sort>,
    /// Opaque token from a previous response, to get the next page.
    pub next_token: Option<String>,
    /// Page size.
    pub limit: usize,
}

/// A stored span with its resource and scope, as read back. The spans of one resource
/// (and scope) read together share it: a trace of thousands of spans holds each
/// resource once, not a copy of its attributes per span.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredSpan {
    /// The span's resource.
    pub resource: Arc<Resource>,
    /// The span's instrumentation scope.
    pub scope: Arc<InstrumentationScope>,
    /// The span (with events and links).
    pub span: Span,
    /// End minus start, in ns.
    pub duration_ns: u64,
    /// When the store received it, in ns since the epoch.
    pub ingestion_time_ns: u64,
}

/// One page of search results.
#[derive(Debug, Clone, Default)]
pub struct SearchResponse {
    /// Matching spans, in the requested order.
    pub spans: Vec<StoredSpan>,
    /// Token for the next page, or `None` when this was the last.
    pub next_token: Option<String>,
}

/// A tag name and its value type (`string`, `int64`, `double`, `bool`, ...; see the
/// reader's documentation for the exact names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TagInfo {
    /// Tag name, e.g. `span.attributes.http.route`.
    pub name: String,
    /// Value type.
    #[serde(rename = "type")]
    pub value_type: String,
}

/// One value of a tag and how many spans carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagValueCount {
    /// The value (JSON string, number or bool).
    pub value: serde_json::Value,
    /// Number of matching spans with that value.
    pub count: u64,
}

/// A statistic over a numeric tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Statistic {
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Mean.
    Avg,
    /// Median.
    P50,
    /// 75th percentile.
    P75,
    /// 90th percentile.
    P90,
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

/// Reads back what a storing exporter wrote. The query extension finds it through
/// [`crate::Exporter::reader`].
#[async_trait]
pub trait TraceReader: Send + Sync {
    /// Searches spans.
    async fn search(&self, request: &SearchRequest) -> Result<SearchResponse, StorageError>;

    /// Every span of a trace (however many), ordered by start time. Empty when unknown.
    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Vec<StoredSpan>, StorageError>;

    /// Appends every span of a trace to `out` as a JSON array in the Teletrace v1 shape
    /// ([`crate::span_json`]), in [`TraceReader::get_trace`]'s order, and returns how many
    /// spans it wrote (`[]` and 0 when unknown). What the query API answers
    /// `GET /v1/trace/{id}` with. This default writes what `get_trace` returns; a store
    /// that can write the JSON without building every span's OTLP structs first (the
    /// `sqlite` exporter's reader does) answers faster by overriding it, with the same
    /// JSON.
    async fn write_trace_json(
        &self,
        trace_id: &[u8; 16],
        out: &mut Vec<u8>,
    ) -> Result<usize, StorageError> {
        let spans = self.get_trace(trace_id).await?;
        crate::span_json::write_array(out, &spans);
        Ok(spans.len())
    }

    /// Every tag name known to the store, with its type.
    async fn tags(&self) -> Result<Vec<TagInfo>, StorageError>;

    /// The values of `tag` among spans matching `filters` in `timeframe`, with counts,
    /// most frequent first.
    async fn tag_values(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
    ) -> Result<Vec<TagValueCount>, StorageError>;

    /// Statistics over the numeric values of `tag` among matching spans. A statistic
    /// with no value (no matching span) is left out.
    async fn tag_statistics(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
        statistics: &[Statistic],
    ) -> Result<BTreeMap<Statistic, f64>, StorageError>;

    /// Every `service.name` among stored spans, sorted.
    async fn services(&self) -> Result<Vec<String>, StorageError> {
        Err(unsupported("listing services"))
    }

    /// The distinct (span name, span kind) pairs of `service`'s spans, sorted; only
    /// those of kind `span_kind` when given.
    async fn operations(
        &self,
        service: &str,
        span_kind: Option<i32>,
    ) -> Result<Vec<Operation>, StorageError> {
        let _ = (service, span_kind);
        Err(unsupported("listing operations"))
    }

    /// IDs of the traces holding spans that match `query`, the trace with the most
    /// recent matching span first, at most `query.limit`.
    async fn find_trace_ids(&self, query: &TraceQuery) -> Result<Vec<[u8; 16]>, StorageError> {
        let _ = query;
        Err(unsupported("trace search"))
    }

    /// Service call edges among spans starting in `timeframe` (see [`DependencyLink`]),
    /// sorted by parent then child.
    async fn dependencies(
        &self,
        timeframe: Timeframe,
    ) -> Result<Vec<DependencyLink>, StorageError> {
        let _ = timeframe;
        Err(unsupported("service dependencies"))
    }

    /// RED metrics (see [`MetricsQuery`]), groups sorted by service then operation.
    async fn service_metrics(
        &self,
        query: &MetricsQuery<'_>,
    ) -> Result<Vec<MetricsGroup>, StorageError> {
        let _ = query;
        Err(unsupported("service metrics"))
    }
}

/// A Jaeger-style trace search: spans matching every given condition are found, and the
/// traces they belong to are returned, most recent match first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TraceQuery {
    /// `service.name` of the span's resource, when given.
    pub service: Option<String>,
    /// Span name, when given.
    pub operation: Option<String>,
    /// Tags that must all match, compared as text. A tag matches an attribute of the
    /// span, of its resource or of one of its events with that key and value; the Jaeger
    /// tags the OTLP translation derives also match: `error` (`true` on status Error),
    /// `span.kind` (`server`, ...), `otel.status_code` (`OK`, `ERROR`),
    /// `otel.status_description`, `otel.scope.name` and `otel.scope.version`.
    pub tags: Vec<(String, String)>,
    /// Spans starting in this range.
    pub timeframe: Timeframe,
    /// Shortest duration in ns, inclusive.
    pub min_duration_ns: Option<u64>,
    /// Longest duration in ns, inclusive.
    pub max_duration_ns: Option<u64>,
    /// Most traces returned.
    pub limit: usize,
}

/// An operation (span name) of a service and the span kind it was seen with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    /// Span name.
    pub name: String,
    /// OTLP span kind (0 unspecified, 1 internal, 2 server, 3 client, 4 producer,
    /// 5 consumer).
    pub span_kind: i32,
}

/// A call edge between two services: spans of `child` whose parent span (in the same
/// trace) belongs to `parent`, a different service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DependencyLink {
    /// The calling service (the parent span's `service.name`).
    pub parent: String,
    /// The called service (the child span's `service.name`).
    pub child: String,
    /// Number of such child spans.
    pub call_count: u64,
    /// How many of them have status Error.
    pub error_count: u64,
}

/// What [`TraceReader::service_metrics`] computes: RED metrics of entry spans (kind
/// Server or Consumer, and root spans of any kind) starting in `timeframe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsQuery<'a> {
    /// Spans starting in this range.
    pub timeframe: Timeframe,
    /// Width of each time bucket of the series, in ns (> 0). Bucket `i` starts at
    /// `timeframe.start_ns + i * step_ns`.
    pub step_ns: u64,
    /// `None`: one group per service. `Some(s)`: one group per operation of service `s`.
    pub service: Option<&'a str>,
}

/// Count, errors and exact (nearest-rank) duration percentiles of a set of spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RedSummary {
    /// Number of spans.
    pub count: u64,
    /// Spans with status Error.
    pub error_count: u64,
    /// Median duration, ns.
    pub p50_ns: u64,
    /// 95th percentile duration, ns.
    pub p95_ns: u64,
    /// 99th percentile duration, ns.
    pub p99_ns: u64,
}

impl RedSummary {
    /// The summary of `durations` (sorted in place) of which `errors` had status Error.
    /// Percentiles are nearest-rank: the smallest value with at least p of the values at
    /// or below it; all zero when `durations` is empty.
    pub fn from_durations(durations: &mut [u64], errors: u64) -> Self {
        durations.sort_unstable();
        let n = durations.len();
        let rank = |p: f64| -> u64 {
            if n == 0 {
                return 0;
            }
            // ceil(p * n), computed in integers to avoid float rounding (p in percent).
            let percent = (p * 100.0).round() as usize;
            let r = (percent * n).div_ceil(100).clamp(1, n);
            durations[r - 1]
        };
        RedSummary {
            count: n as u64,
            error_count: errors,
            p50_ns: rank(0.50),
            p95_ns: rank(0.95),
            p99_ns: rank(0.99),
        }
    }
}

/// One time bucket of a [`MetricsGroup`]'s series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsPoint {
    /// Start of the bucket, ns since the epoch.
    pub time_ns: u64,
    /// The bucket's spans.
    pub summary: RedSummary,
}

/// RED metrics of one service (or one operation of a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsGroup {
    /// `service.name`.
    pub service: String,
    /// Span name, when grouping by operation.
    pub operation: Option<String>,
    /// Over the whole timeframe.
    pub summary: RedSummary,
    /// Per bucket, in time order; buckets without spans are left out.
    pub series: Vec<MetricsPoint>,
}

fn unsupported(what: &str) -> StorageError {
    StorageError::Backend(format!("this storage does not support {what}"))
}
