//! The query extension's HTTP layer and build checks, over an in-test `TraceReader`
//! backed by a `Vec<StoredSpan>` (the real SQLite reader is tested end to end elsewhere).

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, Span, Status};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use teletrace_core::registry::{self, BuildContext, FactoryRef};
use teletrace_core::storage::{
    KeyValueFilter, Operator, SearchRequest, SearchResponse, Sort, SortField, Statistic,
    StorageError, StoredSpan, TagInfo, TagValueCount, Timeframe, TraceReader,
};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{
    ComponentId, ConsumeError, Consumer, Exporter, Extension, Host, Kind, Lifecycle, Traces,
};
use teletrace_extensions::query::api_v1::ApiState;
use teletrace_extensions::query::server::router;
use teletrace_extensions::query::{CorsConfig, QueryConfig, QueryFactory};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// An in-memory reader
// ---------------------------------------------------------------------------------------

/// A tag call as the reader saw it: tag, timeframe, filters, statistics.
type TagCall = (String, Timeframe, Vec<KeyValueFilter>, Vec<Statistic>);

#[derive(Default)]
struct VecReader {
    spans: Vec<StoredSpan>,
    /// Answer every call with a backend error.
    broken: AtomicBool,
    last_search: Mutex<Option<SearchRequest>>,
    last_tag_call: Mutex<Option<TagCall>>,
}

impl VecReader {
    fn new(spans: Vec<StoredSpan>) -> Arc<Self> {
        Arc::new(VecReader {
            spans,
            ..Default::default()
        })
    }

    fn check(&self) -> Result<(), StorageError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StorageError::Backend("disk on fire".into()))
        } else {
            Ok(())
        }
    }

    fn matching(&self, timeframe: Timeframe, filters: &[KeyValueFilter]) -> Vec<&StoredSpan> {
        self.spans
            .iter()
            .filter(|s| {
                let t = s.span.start_time_unix_nano;
                t >= timeframe.start_ns && t <= timeframe.end_ns
            })
            .filter(|s| {
                filters.iter().all(|f| match (f.key.as_str(), f.operator) {
                    ("span.name", Operator::Equals) => f.value == json!(s.span.name),
                    _ => true,
                })
            })
            .collect()
    }
}

#[async_trait]
impl TraceReader for VecReader {
    async fn search(&self, request: &SearchRequest) -> Result<SearchResponse, StorageError> {
        self.check()?;
        *self.last_search.lock().unwrap() = Some(request.clone());
        let offset = match &request.next_token {
            None => 0,
            Some(t) => t
                .strip_prefix("offset:")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| StorageError::BadRequest(format!("bad page token {t:?}")))?,
        };
        let mut spans = self.matching(request.timeframe, &request.filters);
        spans.sort_by_key(|s| s.span.start_time_unix_nano);
        if !request.sort.first().is_some_and(|s| s.ascending) {
            spans.reverse();
        }
        let page: Vec<StoredSpan> = spans
            .iter()
            .skip(offset)
            .take(request.limit)
            .map(|s| (*s).clone())
            .collect();
        let next = offset + page.len();
        Ok(SearchResponse {
            next_token: (next < spans.len()).then(|| format!("offset:{next}")),
            spans: page,
        })
    }

    async fn get_trace(&self, trace_id: &[u8; 16]) -> Result<Vec<StoredSpan>, StorageError> {
        self.check()?;
        let mut spans: Vec<StoredSpan> = self
            .spans
            .iter()
            .filter(|s| s.span.trace_id == trace_id)
            .cloned()
            .collect();
        spans.sort_by_key(|s| s.span.start_time_unix_nano);
        Ok(spans)
    }

    async fn tags(&self) -> Result<Vec<TagInfo>, StorageError> {
        self.check()?;
        Ok(vec![
            TagInfo {
                name: "span.name".into(),
                value_type: "string".into(),
            },
            TagInfo {
                name: "span.attributes.http.status_code".into(),
                value_type: "int64".into(),
            },
        ])
    }

    async fn tag_values(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
    ) -> Result<Vec<TagValueCount>, StorageError> {
        self.check()?;
        *self.last_tag_call.lock().unwrap() =
            Some((tag.to_string(), timeframe, filters.to_vec(), Vec::new()));
        let mut counts: HashMap<String, u64> = HashMap::new();
        for s in self.matching(timeframe, filters) {
            *counts.entry(s.span.name.clone()).or_default() += 1;
        }
        let mut values: Vec<TagValueCount> = counts
            .into_iter()
            .map(|(v, count)| TagValueCount {
                value: json!(v),
                count,
            })
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.count));
        Ok(values)
    }

    async fn tag_statistics(
        &self,
        tag: &str,
        timeframe: Timeframe,
        filters: &[KeyValueFilter],
        statistics: &[Statistic],
    ) -> Result<BTreeMap<Statistic, f64>, StorageError> {
        self.check()?;
        *self.last_tag_call.lock().unwrap() = Some((
            tag.to_string(),
            timeframe,
            filters.to_vec(),
            statistics.to_vec(),
        ));
        let all = BTreeMap::from([
            (Statistic::Min, 1.0),
            (Statistic::Max, 10.0),
            (Statistic::Avg, 5.5),
            (Statistic::P99, 9.9),
        ]);
        Ok(all
            .into_iter()
            .filter(|(s, _)| statistics.contains(s))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.into())
}

const TRACE: [u8; 16] = [
    0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c,
];

/// A span using every field the API writes.
fn rich_span() -> StoredSpan {
    use any_value::Value as V;
    StoredSpan {
        resource: Arc::new(Resource {
            attributes: vec![kv("service.name", string("checkout"))],
            dropped_attributes_count: 1,
            ..Default::default()
        }),
        scope: Arc::new(InstrumentationScope {
            name: "io.opentelemetry.http".into(),
            version: "1.2.3".into(),
            attributes: vec![kv("scope.attr", V::BoolValue(true))],
            dropped_attributes_count: 2,
        }),
        span: Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31],
            trace_state: "vendor=1".into(),
            parent_span_id: vec![],
            flags: 1,
            name: "GET /cart".into(),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            attributes: vec![
                kv("http.route", string("/cart")),
                kv("http.status_code", V::IntValue(500)),
                kv("ratio", V::DoubleValue(0.25)),
                kv("retry", V::BoolValue(false)),
                kv("payload", V::BytesValue(b"hi".to_vec())),
                kv(
                    "tags",
                    V::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue {
                                value: Some(string("a")),
                            },
                            AnyValue {
                                value: Some(V::IntValue(2)),
                            },
                        ],
                    }),
                ),
                kv(
                    "nested",
                    V::KvlistValue(KeyValueList {
                        values: vec![kv("k", string("v"))],
                    }),
                ),
            ],
            dropped_attributes_count: 3,
            events: vec![span::Event {
                time_unix_nano: 1_700_000_000_100_000_000,
                name: "exception".into(),
                attributes: vec![kv("exception.message", string("boom"))],
                dropped_attributes_count: 4,
            }],
            dropped_events_count: 5,
            links: vec![span::Link {
                trace_id: vec![0x11; 16],
                span_id: vec![0x22; 8],
                trace_state: "linked=1".into(),
                attributes: vec![kv("link.kind", string("follows"))],
                dropped_attributes_count: 6,
                flags: 0,
            }],
            dropped_links_count: 7,
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
        },
        duration_ns: 250_000_000,
        ingestion_time_ns: 1_700_000_001_000_000_000,
    }
}

/// The JSON the API must write for `rich_span()`.
fn rich_span_json() -> Value {
    json!({
        "resource": {
            "attributes": {"service.name": "checkout"},
            "droppedAttributesCount": 1
        },
        "scope": {
            "name": "io.opentelemetry.http",
            "version": "1.2.3",
            "attributes": {"scope.attr": true},
            "droppedAttributesCount": 2
        },
        "span": {
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": "b7ad6b7169203331",
            "traceState": "vendor=1",
            "parentSpanId": "",
            "name": "GET /cart",
            "kind": 2,
            "startTimeUnixNano": 1_700_000_000_000_000_000_u64,
            "endTimeUnixNano": 1_700_000_000_250_000_000_u64,
            "attributes": {
                "http.route": "/cart",
                "http.status_code": 500,
                "ratio": 0.25,
                "retry": false,
                "payload": "aGk=",
                "tags": ["a", 2],
                "nested": {"k": "v"}
            },
            "droppedAttributesCount": 3,
            "events": [{
                "timeUnixNano": 1_700_000_000_100_000_000_u64,
                "name": "exception",
                "attributes": {"exception.message": "boom"},
                "droppedAttributesCount": 4
            }],
            "droppedEventsCount": 5,
            "links": [{
                "traceId": "11111111111111111111111111111111",
                "spanId": "2222222222222222",
                "traceState": "linked=1",
                "attributes": {"link.kind": "follows"},
                "droppedAttributesCount": 6
            }],
            "droppedLinksCount": 7,
            "status": {"message": "boom", "code": 2}
        },
        "externalFields": {"durationNano": 250_000_000},
        "ingestionTimeUnixNano": 1_700_000_001_000_000_000_u64
    })
}

/// `n` plain spans of one trace, started 1 µs apart from `base`.
fn many_spans(n: usize, trace: [u8; 16], base: u64, name: &str) -> Vec<StoredSpan> {
    (0..n)
        .map(|i| StoredSpan {
            span: Span {
                trace_id: trace.to_vec(),
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    vec![]
                } else {
                    1u64.to_be_bytes().to_vec()
                },
                name: name.into(),
                start_time_unix_nano: base + i as u64 * 1_000,
                end_time_unix_nano: base + i as u64 * 1_000 + 500,
                ..Default::default()
            },
            duration_ns: 500,
            ..Default::default()
        })
        .collect()
}

fn app_with(reader: Arc<VecReader>, cors: Option<&CorsConfig>) -> Router {
    router(
        ApiState {
            reader,
            system_id: "5f0c7c7e-9a9b-4c36-8a1e-6f2b0e6f3c11".into(),
        },
        cors,
    )
}

fn app(reader: Arc<VecReader>) -> Router {
    app_with(reader, None)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn error_message(&self) -> String {
        let json = self.json();
        assert_eq!(
            json.as_object().map(|o| o.len()),
            Some(1),
            "error body has exactly errorMessage: {json}"
        );
        json["errorMessage"]
            .as_str()
            .unwrap_or_else(|| panic!("no errorMessage in {json}"))
            .to_string()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, path: &str, body: impl Into<String>) -> Answer {
    send(
        app,
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.into()))
            .unwrap(),
    )
    .await
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn ping_answers_pong() {
    let answer = get(&app(VecReader::new(vec![])), "/v1/ping").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"pong");
}

#[tokio::test]
async fn search_writes_spans_field_by_field() {
    let app = app(VecReader::new(vec![rich_span()]));
    let answer = post(&app, "/v1/search", "{}").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "JSON content type"
    );
    assert_eq!(
        answer.json(),
        json!({"metadata": null, "spans": [rich_span_json()]})
    );
}

#[tokio::test]
async fn search_request_is_converted_for_the_reader() {
    let reader = VecReader::new(vec![rich_span()]);
    let app = app(reader.clone());
    let body = json!({
        "timeframe": {"startTimeUnixNanoSec": 1_600_000_000_000_000_000_u64,
                      "endTimeUnixNanoSec": 1_800_000_000_000_000_000_u64},
        "filters": [
            {"keyValueFilter": {"key": "span.attributes.http.route", "operator": "equals", "value": "/cart"}},
            {"keyValueFilter": {"key": "span.kind", "operator": "in", "value": [2, 3]}},
            {"keyValueFilter": {"key": "resource.attributes.service.name", "operator": "exists"}},
            {"keyValueFilter": {"key": "externalFields.durationNano", "operator": "gte", "value": 1000}}
        ],
        "sort": [{"field": "externalFields.durationNano", "ascending": true}],
        "metadata": {"nextToken": "offset:0"},
        "someFieldOnlyNewerClientsSend": true
    });
    let answer = post(&app, "/v1/search", body.to_string()).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let seen = reader.last_search.lock().unwrap().clone().unwrap();
    assert_eq!(
        seen.timeframe,
        Timeframe {
            start_ns: 1_600_000_000_000_000_000,
            end_ns: 1_800_000_000_000_000_000
        }
    );
    assert_eq!(
        seen.filters,
        vec![
            KeyValueFilter {
                key: "span.attributes.http.route".into(),
                operator: Operator::Equals,
                value: json!("/cart")
            },
            KeyValueFilter {
                key: "span.kind".into(),
                operator: Operator::In,
                value: json!([2, 3])
            },
            KeyValueFilter {
                key: "resource.attributes.service.name".into(),
                operator: Operator::Exists,
                value: Value::Null
            },
            KeyValueFilter {
                key: "externalFields.durationNano".into(),
                operator: Operator::Gte,
                value: json!(1000)
            },
        ]
    );
    assert_eq!(
        seen.sort,
        vec![Sort {
            field: SortField::Duration,
            ascending: true
        }]
    );
    assert_eq!(seen.next_token.as_deref(), Some("offset:0"));
    assert_eq!(seen.limit, 200, "Teletrace's page size");
}

#[tokio::test]
async fn search_defaults_and_end_time_zero_means_now() {
    let reader = VecReader::new(vec![]);
    let app = app(reader.clone());
    for body in [
        r#"{"timeframe": {"startTimeUnixNanoSec": 5, "endTimeUnixNanoSec": 0}}"#,
        r#"{"timeframe": {"startTimeUnixNanoSec": 5}}"#,
        r#"{"timeframe": {"startTimeUnixNanoSec": 5, "endTimeUnixNanoSec": null}, "filters": null, "sort": null, "metadata": {"nextToken": ""}}"#,
    ] {
        let before = now_ns();
        let answer = post(&app, "/v1/search", body).await;
        let after = now_ns();
        assert_eq!(answer.status, StatusCode::OK, "{body}");
        assert_eq!(answer.json(), json!({"metadata": null, "spans": []}));
        let seen = reader.last_search.lock().unwrap().clone().unwrap();
        assert_eq!(seen.timeframe.start_ns, 5);
        assert!(
            (before..=after).contains(&seen.timeframe.end_ns),
            "end {} not within [{before}, {after}]",
            seen.timeframe.end_ns
        );
        assert!(seen.filters.is_empty());
        assert_eq!(
            seen.sort,
            vec![Sort {
                field: SortField::StartTime,
                ascending: false
            }]
        );
        assert_eq!(seen.next_token, None, "an empty token is the first page");
    }
    // No body at all, and a body sent without a JSON content type (curl -d).
    let answer = send(
        &app,
        Request::post("/v1/search").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        reader
            .last_search
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .timeframe
            .start_ns,
        0
    );
    let answer = send(
        &app,
        Request::post("/v1/search")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(r#"{"timeframe": {"startTimeUnixNanoSec": 7}}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        reader
            .last_search
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .timeframe
            .start_ns,
        7
    );
}

#[tokio::test]
async fn search_pages_with_next_token() {
    let spans = many_spans(450, TRACE, 1_000_000, "op");
    let app = app(VecReader::new(spans));
    let mut token: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let body = match &token {
            None => json!({"timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0}}),
            Some(t) => json!({"metadata": {"nextToken": t}}),
        };
        let answer = post(&app, "/v1/search", body.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK);
        let json = answer.json();
        let spans = json["spans"].as_array().unwrap();
        assert!(spans.len() <= 200);
        seen.extend(
            spans
                .iter()
                .map(|s| s["span"]["startTimeUnixNano"].as_u64().unwrap()),
        );
        pages += 1;
        match &json["metadata"] {
            Value::Null => break,
            m => token = Some(m["nextToken"].as_str().unwrap().to_string()),
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 450);
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "newest first");
}

#[tokio::test]
async fn search_refuses_bad_requests_with_400() {
    let app = app(VecReader::new(vec![]));
    let cases: [(&str, &str); 12] = [
        (r#"{"timeframe": {"#, "invalid request body"),
        (r#"not json"#, "invalid request body"),
        (r#"[]"#, "invalid request body"),
        (
            r#"{"timeframe": {"startTimeUnixNanoSec": "yesterday"}}"#,
            "timeframe.startTimeUnixNanoSec",
        ),
        (
            r#"{"timeframe": {"startTimeUnixNanoSec": -5}}"#,
            "timeframe.startTimeUnixNanoSec",
        ),
        (
            r#"{"timeframe": {"startTimeUnixNanoSec": 20, "endTimeUnixNanoSec": 10}}"#,
            "endTimeUnixNanoSec (10) is before",
        ),
        (
            r#"{"filters": [{"keyValueFilter": {"key": "span.name", "operator": "like", "value": "x"}}]}"#,
            "unknown operator \"like\"",
        ),
        (
            r#"{"filters": [{"keyValueFilter": {"key": "span.name", "operator": "equals"}}]}"#,
            "filters[0].keyValueFilter.value: missing",
        ),
        (
            r#"{"filters": [{"keyValueFilter": {"key": "span.name", "operator": "equals", "value": [1]}}]}"#,
            "filters[0].keyValueFilter.value",
        ),
        (r#"{"filters": [{}]}"#, "filters[0].keyValueFilter: missing"),
        (
            r#"{"sort": [{"field": "span.name", "ascending": true}]}"#,
            "sort[0].field",
        ),
        (
            r#"{"metadata": {"nextToken": "garbage"}}"#,
            "bad page token",
        ),
    ];
    for (body, expected) in cases {
        let answer = post(&app, "/v1/search", body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        let message = answer.error_message();
        assert!(
            message.contains(expected),
            "{body}: {message:?} lacks {expected:?}"
        );
    }
}

#[tokio::test]
async fn backend_errors_answer_500() {
    let reader = VecReader::new(vec![rich_span()]);
    reader.broken.store(true, Ordering::SeqCst);
    let app = app(reader);
    let answers = [
        post(&app, "/v1/search", "{}").await,
        get(&app, "/v1/trace/0af7651916cd43dd8448eb211c80319c").await,
        get(&app, "/v1/tags").await,
        post(&app, "/v1/tags/span.name", "{}").await,
        post(
            &app,
            "/v1/tags/span.name/statistics",
            r#"{"desiredStatistics": ["max"]}"#,
        )
        .await,
    ];
    for answer in answers {
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(answer.error_message().contains("disk on fire"));
    }
}

#[tokio::test]
async fn trace_returns_every_span_without_a_page_cap() {
    let mut spans = many_spans(500, TRACE, 1_000, "op");
    spans.extend(many_spans(3, [9; 16], 1_000, "other"));
    let app = app(VecReader::new(spans));
    for id in [
        "0af7651916cd43dd8448eb211c80319c",
        "0AF7651916CD43DD8448EB211C80319C",
    ] {
        let answer = get(&app, &format!("/v1/trace/{id}")).await;
        assert_eq!(answer.status, StatusCode::OK);
        let json = answer.json();
        assert_eq!(json["metadata"], Value::Null);
        let spans = json["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 500);
        assert!(spans
            .iter()
            .all(|s| s["span"]["traceId"] == "0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(spans[0]["span"]["parentSpanId"], "");
        assert_eq!(spans[1]["span"]["parentSpanId"], "0000000000000001");
    }
}

#[tokio::test]
async fn trace_errors_are_404_and_400() {
    let app = app(VecReader::new(vec![rich_span()]));
    let answer = get(&app, "/v1/trace/ffffffffffffffffffffffffffffffff").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer
        .error_message()
        .contains("ffffffffffffffffffffffffffffffff"));
    for bad in [
        "xyz",
        "0af7651916cd43dd",
        "0af7651916cd43dd8448eb211c80319cff",
        "%E2%82%AC",
    ] {
        let answer = get(&app, &format!("/v1/trace/{bad}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            answer.error_message().contains("malformed trace ID"),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn tags_list_names_and_types() {
    let answer = get(&app(VecReader::new(vec![])), "/v1/tags").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"Tags": [
            {"name": "span.name", "type": "string"},
            {"name": "span.attributes.http.status_code", "type": "int64"}
        ]})
    );
}

#[tokio::test]
async fn tag_values_with_counts() {
    let mut spans = many_spans(3, TRACE, 1_000, "GET /a");
    spans.extend(many_spans(2, [2; 16], 5_000, "GET /b"));
    let reader = VecReader::new(spans);
    let app = app(reader.clone());
    let answer = post(
        &app,
        "/v1/tags/span.name",
        r#"{"timeframe": {"startTimeUnixNanoSec": 0, "endTimeUnixNanoSec": 0}, "filters": []}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"metadata": null, "values": [
            {"value": "GET /a", "count": 3},
            {"value": "GET /b", "count": 2}
        ]})
    );

    let body = json!({
        "timeframe": {"startTimeUnixNanoSec": 4_000, "endTimeUnixNanoSec": 9_000},
        "filters": [{"keyValueFilter": {"key": "span.name", "operator": "equals", "value": "GET /b"}}]
    });
    let answer = post(
        &app,
        "/v1/tags/span.attributes.http.route",
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (tag, timeframe, filters, _) = reader.last_tag_call.lock().unwrap().clone().unwrap();
    assert_eq!(tag, "span.attributes.http.route");
    assert_eq!(
        timeframe,
        Timeframe {
            start_ns: 4_000,
            end_ns: 9_000
        }
    );
    assert_eq!(filters[0].value, json!("GET /b"));

    // No body: everything until now. A percent-encoded slash stays in the tag name.
    let answer = send(
        &app,
        Request::post("/v1/tags/span.attributes.k8s%2Fpod")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let (tag, timeframe, _, _) = reader.last_tag_call.lock().unwrap().clone().unwrap();
    assert_eq!(tag, "span.attributes.k8s/pod");
    assert_eq!(timeframe.start_ns, 0);
    assert!(timeframe.end_ns > 1_600_000_000_000_000_000);

    let answer = post(&app, "/v1/tags/span.name", r#"{"filters": "#).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error_message().starts_with("invalid request body"));
}

#[tokio::test]
async fn tag_statistics_as_requested() {
    let reader = VecReader::new(vec![]);
    let app = app(reader.clone());
    let body = json!({
        "timeframe": {"startTimeUnixNanoSec": 1, "endTimeUnixNanoSec": 2},
        "filters": [{"keyValueFilter": {"key": "span.name", "operator": "contains", "value": "GET"}}],
        "desiredStatistics": ["min", "max", "avg", "p99", "p50"],
        "tag": "externalFields.durationNano"
    });
    let answer = post(
        &app,
        "/v1/tags/externalFields.durationNano/statistics",
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // p50 has no value in this store, so it is left out.
    assert_eq!(
        answer.json(),
        json!({"statistics": {"min": 1.0, "max": 10.0, "avg": 5.5, "p99": 9.9}})
    );
    let (tag, timeframe, filters, stats) = reader.last_tag_call.lock().unwrap().clone().unwrap();
    assert_eq!(tag, "externalFields.durationNano");
    assert_eq!(
        timeframe,
        Timeframe {
            start_ns: 1,
            end_ns: 2
        }
    );
    assert_eq!(filters[0].operator, Operator::Contains);
    assert_eq!(
        stats,
        vec![
            Statistic::Min,
            Statistic::Max,
            Statistic::Avg,
            Statistic::P99,
            Statistic::P50
        ]
    );

    let answer = post(
        &app,
        "/v1/tags/externalFields.durationNano/statistics",
        r#"{"desiredStatistics": ["median"]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer
        .error_message()
        .contains("unknown statistic \"median\""));

    let answer = post(
        &app,
        "/v1/tags/externalFields.durationNano/statistics",
        "{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"statistics": {}}));
}

#[tokio::test]
async fn system_info_and_system_id() {
    let app = app(VecReader::new(vec![]));
    let answer = get(&app, "/v1/system-info").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"systemId": "5f0c7c7e-9a9b-4c36-8a1e-6f2b0e6f3c11", "usageReportingEnabled": false})
    );
    let answer = get(&app, "/v1/system-id").await;
    assert_eq!(
        answer.json(),
        json!({"value": "5f0c7c7e-9a9b-4c36-8a1e-6f2b0e6f3c11"})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = app(VecReader::new(vec![]));
    let answer = get(&app, "/v1/nothing-here").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.error_message().contains("/v1/nothing-here"));
    let answer = get(&app, "/v1/search").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(answer.error_message().contains("GET"));
    let answer = send(&app, Request::head("/v1/ping").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// CORS
// ---------------------------------------------------------------------------------------

fn preflight(origin: &str) -> Request<Body> {
    Request::builder()
        .method(Method::OPTIONS)
        .uri("/v1/search")
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,x-custom",
        )
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn cors_when_configured() {
    let cors = CorsConfig {
        allowed_origins: vec![
            "https://*.example.com".into(),
            "http://localhost:3000".into(),
        ],
        allowed_headers: vec!["X-Custom".into()],
        max_age: Some(600),
    };
    let app = app_with(VecReader::new(vec![]), Some(&cors));

    let answer = send(&app, preflight("https://ui.example.com")).await;
    assert!(answer.status.is_success(), "{}", answer.status);
    let h = &answer.headers;
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://ui.example.com"
    );
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
    let methods = h[header::ACCESS_CONTROL_ALLOW_METHODS]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        methods.contains("POST") && methods.contains("GET"),
        "{methods}"
    );
    let headers = h[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        headers.contains("x-custom") && headers.contains("content-type"),
        "{headers}"
    );

    // A simple request from an allowed origin, on several routes (errors too).
    for path in ["/v1/ping", "/v1/tags", "/v1/nothing"] {
        let answer = send(
            &app,
            Request::get(path)
                .header(header::ORIGIN, "http://localhost:3000")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(
            answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://localhost:3000",
            "{path}"
        );
    }

    // Origins that do not match get no grant.
    for origin in [
        "https://example.com",
        "https://evil.com",
        "http://localhost:3001",
    ] {
        let answer = send(&app, preflight(origin)).await;
        assert!(
            !answer
                .headers
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn cors_wildcards_for_everything() {
    let cors = CorsConfig {
        allowed_origins: vec!["*".into()],
        allowed_headers: vec!["*".into()],
        max_age: None,
    };
    let app = app_with(VecReader::new(vec![]), Some(&cors));
    let answer = send(&app, preflight("http://anything.test")).await;
    assert_eq!(
        answer.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://anything.test"
    );
    let headers = answer.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("x-custom"), "{headers}");
    assert!(!answer.headers.contains_key(header::ACCESS_CONTROL_MAX_AGE));
}

#[tokio::test]
async fn no_cors_headers_unless_configured() {
    for cors in [None, Some(CorsConfig::default())] {
        let app = app_with(VecReader::new(vec![]), cors.as_ref());
        let answer = send(
            &app,
            Request::get("/v1/ping")
                .header(header::ORIGIN, "https://ui.example.com")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert!(!answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        let answer = send(&app, preflight("https://ui.example.com")).await;
        assert!(!answer
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
}

// ---------------------------------------------------------------------------------------
// Build, start, shutdown
// ---------------------------------------------------------------------------------------

/// An exporter that stores nothing, or one that offers a reader.
struct FakeExporter {
    reader: Option<Arc<dyn TraceReader>>,
}

#[async_trait]
impl Lifecycle for FakeExporter {}

#[async_trait]
impl Consumer for FakeExporter {
    async fn consume(&self, _traces: Traces) -> Result<(), ConsumeError> {
        Ok(())
    }
}

impl Exporter for FakeExporter {
    fn reader(&self) -> Option<Arc<dyn TraceReader>> {
        self.reader.clone()
    }
}

fn host_with(reader: Arc<VecReader>) -> Host {
    let mut exporters: BTreeMap<ComponentId, Arc<dyn Exporter>> = BTreeMap::new();
    exporters.insert(
        ComponentId::parse("sqlite").unwrap(),
        Arc::new(FakeExporter {
            reader: Some(reader),
        }),
    );
    exporters.insert(
        ComponentId::parse("debug").unwrap(),
        Arc::new(FakeExporter { reader: None }),
    );
    Host::new(exporters, Metrics::new())
}

/// Parses `yaml` and builds through the registered `query` factory, as the service does.
fn build(yaml: &str, host: &Host) -> Result<Arc<dyn Extension>, String> {
    teletrace_extensions::link();
    let registration = registry::find(Kind::Extension, "query").expect("query is registered");
    let FactoryRef::Extension(factory) = registration.factory else {
        panic!("query is not an extension factory");
    };
    let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
    let config = factory.parse_config(&value).map_err(|e| e.to_string())?;
    let ctx = BuildContext {
        id: ComponentId::parse("query").unwrap(),
        pipeline: None,
        metrics: Metrics::new(),
        host: host.clone(),
    };
    factory.create(&ctx, config).map_err(|e| e.to_string())
}

#[test]
fn build_errors_name_storage() {
    let host = host_with(VecReader::new(vec![]));
    let err = build("endpoint: 127.0.0.1:0", &host).err().unwrap();
    assert!(err.starts_with("storage: required"), "{err}");

    let err = build("storage: elasticsearch", &host).err().unwrap();
    assert_eq!(
        err,
        "storage: exporter \"elasticsearch\" is not in any pipeline (exporters in pipelines: debug, sqlite)"
    );

    let err = build("storage: debug", &host).err().unwrap();
    assert_eq!(
        err,
        "storage: exporter \"debug\" does not store spans; use sqlite or elasticsearch"
    );

    let err = build("storage: sqlite", &Host::default()).err().unwrap();
    assert!(
        err.contains("not in any pipeline (no exporter is in a pipeline)"),
        "{err}"
    );

    let err = build("storage: sqlite\nendpoint: localhost", &host)
        .err()
        .unwrap();
    assert!(err.starts_with("endpoint:"), "{err}");

    assert!(build("storage: sqlite", &host).is_ok());
    assert!(QueryConfig::default().storage.is_none());
    let _ = QueryFactory;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_serves_and_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let id_path = dir.path().join("system-id");
    let reader = VecReader::new(vec![rich_span()]);
    let host = host_with(reader);
    let yaml = format!(
        "storage: sqlite\nendpoint: 127.0.0.1:0\nsystem_id_path: {}",
        id_path.display()
    );
    let extension = build(&yaml, &host).unwrap();
    assert!(
        extension.listening().is_empty(),
        "nothing bound before start"
    );
    extension.start(&host).await.unwrap();
    extension.start(&host).await.unwrap(); // a second start keeps the first server
    let listening = extension.listening();
    assert_eq!(listening.len(), 1);
    let (label, address) = listening[0];
    assert_eq!(label, "http");
    assert_ne!(address.port(), 0);

    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let pong = client.get(format!("{base}/v1/ping")).send().await.unwrap();
    assert_eq!(pong.status(), 200);
    assert_eq!(pong.text().await.unwrap(), "pong");
    let trace = client
        .get(format!("{base}/v1/trace/0af7651916cd43dd8448eb211c80319c"))
        .send()
        .await
        .unwrap();
    assert_eq!(trace.status(), 200);
    let json: Value = trace.json().await.unwrap();
    assert_eq!(json["spans"][0], rich_span_json());

    let info: Value = client
        .get(format!("{base}/v1/system-info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let system_id = info["systemId"].as_str().unwrap().to_string();
    assert_eq!(system_id.len(), 36, "a UUID: {system_id}");
    assert_eq!(
        std::fs::read_to_string(&id_path).unwrap().trim(),
        system_id,
        "persisted"
    );

    extension.shutdown().await.unwrap();
    extension.shutdown().await.unwrap();
    assert!(extension.listening().is_empty());
    assert!(client.get(format!("{base}/v1/ping")).send().await.is_err());

    // A new instance (a restart) serves the same system ID.
    let again = build(&yaml, &host).unwrap();
    again.start(&host).await.unwrap();
    let address = again.listening()[0].1;
    let info: Value = client
        .get(format!("http://{address}/v1/system-info"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["systemId"], system_id.as_str());
    again.shutdown().await.unwrap();
}

#[tokio::test]
async fn bind_failure_is_a_start_error_naming_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let host = host_with(VecReader::new(vec![]));
    let yaml = format!(
        "storage: sqlite\nendpoint: 127.0.0.1:{port}\nsystem_id_path: {}",
        dir.path().join("id").display()
    );
    let extension = build(&yaml, &host).unwrap();
    let err = extension.start(&host).await.unwrap_err().to_string();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    extension.shutdown().await.unwrap();
}
