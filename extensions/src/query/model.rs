//! The Teletrace v1 API's JSON shapes, and their conversion to and from the storage
//! model in [`teletrace_core::storage`].
//!
//! Field names and shapes follow Teletrace (`pkg/model/...` and
//! `model/internalspan/v1/internal_span.go` in teletrace/teletrace): camelCase fields,
//! IDs as lowercase hex, `kind` and `status.code` as the OTLP enum numbers, attributes as
//! a flat JSON object of key to value. Unlike Teletrace, span events and links are
//! returned.
//!
//! Requests are read leniently, as Teletrace's Go server read them: unknown fields are
//! ignored, `null` stands for an absent field, and `sort` may be one object or a list.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use teletrace_core::json_writer;
use teletrace_core::span_json;
use teletrace_core::storage::{
    KeyValueFilter, Operator, Sort, SortField, Statistic, StoredSpan, Timeframe,
};

/// Spans per search page (Teletrace's `LimitOfSpanRecords` and Elasticsearch page size).
pub const PAGE_SIZE: usize = 200;

/// A request the API refuses (answered with 400 and `{"errorMessage"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

/// `timeframe`: nanoseconds since the Unix epoch. An end of 0 (or none) means now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeframeV1 {
    /// Start, in ns (0 when absent).
    #[serde(default, deserialize_with = "nanos")]
    pub start_time_unix_nano_sec: Option<u64>,
    /// End, in ns; 0 or absent means now.
    #[serde(default, deserialize_with = "nanos")]
    pub end_time_unix_nano_sec: Option<u64>,
}

/// One `{"keyValueFilter": {...}}` entry of `filters`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchFilterV1 {
    /// The filter (the only kind of filter Teletrace defines).
    #[serde(default)]
    pub key_value_filter: Option<KeyValueFilterV1>,
}

/// `keyValueFilter`: `key`, `operator` (`equals`, `not_equals`, `in`, `not_in`,
/// `contains`, `not_contains`, `exists`, `not_exists`, `gt`, `gte`, `lt`, `lte`), `value`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct KeyValueFilterV1 {
    /// Tag name, e.g. `span.attributes.http.route`.
    #[serde(default)]
    pub key: String,
    /// Operator name.
    #[serde(default)]
    pub operator: String,
    /// A JSON scalar, or a list for `in` / `not_in`; ignored by `exists` / `not_exists`.
    #[serde(default)]
    pub value: Value,
}

/// One `sort` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SortV1 {
    /// `span.startTimeUnixNano` or `externalFields.durationNano`.
    #[serde(default)]
    pub field: String,
    /// Ascending when true; descending by default.
    #[serde(default)]
    pub ascending: bool,
}

/// `sort`: a list of sort entries, or (as older Teletrace web clients sent it) one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum SortSpecV1 {
    /// A list of sort entries.
    Many(Vec<SortV1>),
    /// A single sort entry.
    One(SortV1),
}

/// Request `metadata`: the page token from a previous response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadataV1 {
    /// Token from the previous page's `metadata.nextToken`; empty or absent for the first
    /// page.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// `POST /v1/search` body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SearchRequestV1 {
    /// Spans whose start time lies in this range.
    #[serde(default)]
    pub timeframe: Option<TimeframeV1>,
    /// All must match.
    #[serde(default)]
    pub filters: Option<Vec<SearchFilterV1>>,
    /// Sort order; start time descending by default.
    #[serde(default)]
    pub sort: Option<SortSpecV1>,
    /// Paging.
    #[serde(default)]
    pub metadata: Option<RequestMetadataV1>,
}

/// `POST /v1/tags/{tag}` body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct TagValuesRequestV1 {
    /// Spans whose start time lies in this range (everything until now when absent).
    #[serde(default)]
    pub timeframe: Option<TimeframeV1>,
    /// All must match.
    #[serde(default)]
    pub filters: Option<Vec<SearchFilterV1>>,
}

/// `POST /v1/tags/{tag}/statistics` body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TagStatisticsRequestV1 {
    /// Spans whose start time lies in this range (everything until now when absent).
    #[serde(default)]
    pub timeframe: Option<TimeframeV1>,
    /// All must match.
    #[serde(default)]
    pub filters: Option<Vec<SearchFilterV1>>,
    /// Any of `min`, `max`, `avg`, `p50`, `p75`, `p90`, `p95`, `p99`.
    #[serde(default)]
    pub desired_statistics: Option<Vec<String>>,
}

/// Reads a nanosecond timestamp written as a JSON integer, a float without a fraction
/// (JavaScript clients), or a decimal string.
fn nanos<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = Option::<Value>::deserialize(d)?;
    let expected = "a non-negative integer number of nanoseconds";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                Ok(Some(v))
            } else if let Some(f) = n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0) {
                if f <= u64::MAX as f64 {
                    Ok(Some(f as u64))
                } else {
                    Err(de::Error::custom(format!("{n} is out of range")))
                }
            } else {
                Err(de::Error::custom(format!(
                    "invalid value {n}, expected {expected}"
                )))
            }
        }
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| de::Error::custom(format!("invalid value {s:?}, expected {expected}"))),
        Some(other) => Err(de::Error::custom(format!(
            "invalid value {other}, expected {expected}"
        ))),
    }
}

/// Parses a JSON object body, naming the offending field in the error. An empty body
/// reads as `{}`.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, BadRequest> {
    let body = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => b"{}".as_slice(),
        Some(b'{') => body,
        Some(_) => {
            return Err(BadRequest(
                "invalid request body: expected a JSON object".to_string(),
            ))
        }
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            BadRequest(format!("invalid request body: {inner}"))
        } else {
            BadRequest(format!("invalid request body: {path}: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| BadRequest(format!("invalid request body: {e}")))?;
    Ok(parsed)
}

impl TimeframeV1 {
    /// The storage timeframe: start defaults to 0, an end of 0 means `now_ns`. An explicit
    /// end before the start is refused; when the end is "now" and the start lies in the
    /// future (a client clock ahead of ours), the range is the start alone.
    pub fn resolve(timeframe: Option<&TimeframeV1>, now_ns: u64) -> Result<Timeframe, BadRequest> {
        let start = timeframe
            .and_then(|t| t.start_time_unix_nano_sec)
            .unwrap_or(0);
        let end = timeframe
            .and_then(|t| t.end_time_unix_nano_sec)
            .unwrap_or(0);
        if end == 0 {
            return Ok(Timeframe {
                start_ns: start,
                end_ns: now_ns.max(start),
            });
        }
        if end < start {
            return Err(BadRequest(format!(
                "timeframe: endTimeUnixNanoSec ({end}) is before startTimeUnixNanoSec ({start})"
            )));
        }
        Ok(Timeframe {
            start_ns: start,
            end_ns: end,
        })
    }
}

const OPERATORS: [(&str, Operator); 12] = [
    ("equals", Operator::Equals),
    ("not_equals", Operator::NotEquals),
    ("in", Operator::In),
    ("not_in", Operator::NotIn),
    ("contains", Operator::Contains),
    ("not_contains", Operator::NotContains),
    ("exists", Operator::Exists),
    ("not_exists", Operator::NotExists),
    ("gt", Operator::Gt),
    ("gte", Operator::Gte),
    ("lt", Operator::Lt),
    ("lte", Operator::Lte),
];

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Converts `filters` to storage filters, checking operators and value shapes.
pub fn convert_filters(
    filters: Option<&[SearchFilterV1]>,
) -> Result<Vec<KeyValueFilter>, BadRequest> {
    let mut out = Vec::new();
    for (i, filter) in filters.unwrap_or_default().iter().enumerate() {
        let at = format!("filters[{i}].keyValueFilter");
        let Some(kv) = &filter.key_value_filter else {
            return Err(BadRequest(format!("{at}: missing")));
        };
        let key = kv.key.trim();
        if key.is_empty() {
            return Err(BadRequest(format!("{at}.key: missing")));
        }
        let Some(operator) = OPERATORS
            .iter()
            .find(|(name, _)| *name == kv.operator.trim())
            .map(|(_, op)| *op)
        else {
            let names: Vec<&str> = OPERATORS.iter().map(|(n, _)| *n).collect();
            return Err(BadRequest(format!(
                "{at}.operator: unknown operator {:?}; expected one of {}",
                kv.operator,
                names.join(", ")
            )));
        };
        let value = match operator {
            Operator::Exists | Operator::NotExists => Value::Null,
            Operator::In | Operator::NotIn => match &kv.value {
                Value::Array(items) => {
                    if let Some(bad) = items.iter().position(|v| !is_scalar(v)) {
                        return Err(BadRequest(format!(
                            "{at}.value[{bad}]: expected a string, number or boolean"
                        )));
                    }
                    kv.value.clone()
                }
                v if is_scalar(v) => Value::Array(vec![v.clone()]),
                Value::Null => return Err(BadRequest(format!("{at}.value: missing"))),
                _ => {
                    return Err(BadRequest(format!(
                        "{at}.value: expected a list of values for {:?}",
                        kv.operator
                    )))
                }
            },
            _ => match &kv.value {
                v if is_scalar(v) => v.clone(),
                Value::Null => return Err(BadRequest(format!("{at}.value: missing"))),
                _ => {
                    return Err(BadRequest(format!(
                        "{at}.value: expected a string, number or boolean for {:?}",
                        kv.operator
                    )))
                }
            },
        };
        out.push(KeyValueFilter {
            key: key.to_string(),
            operator,
            value,
        });
    }
    Ok(out)
}

/// Converts `sort`; start time descending when none is given.
pub fn convert_sort(sort: Option<&SortSpecV1>) -> Result<Vec<Sort>, BadRequest> {
    let entries: Vec<&SortV1> = match sort {
        None => Vec::new(),
        Some(SortSpecV1::One(one)) => vec![one],
        Some(SortSpecV1::Many(many)) => many.iter().collect(),
    };
    let mut out = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let field = match entry.field.trim() {
            "span.startTimeUnixNano" => SortField::StartTime,
            "externalFields.durationNano" => SortField::Duration,
            other => {
                return Err(BadRequest(format!(
                    "sort[{i}].field: cannot sort by {other:?}; expected \
                     span.startTimeUnixNano or externalFields.durationNano"
                )))
            }
        };
        out.push(Sort {
            field,
            ascending: entry.ascending,
        });
    }
    if out.is_empty() {
        out.push(Sort {
            field: SortField::StartTime,
            ascending: false,
        });
    }
    Ok(out)
}

const STATISTICS: [(&str, Statistic); 8] = [
    ("min", Statistic::Min),
    ("max", Statistic::Max),
    ("avg", Statistic::Avg),
    ("p50", Statistic::P50),
    ("p75", Statistic::P75),
    ("p90", Statistic::P90),
    ("p95", Statistic::P95),
    ("p99", Statistic::P99),
];

/// Converts `desiredStatistics`, in order, without duplicates.
pub fn convert_statistics(names: Option<&[String]>) -> Result<Vec<Statistic>, BadRequest> {
    let mut out = Vec::new();
    for (i, name) in names.unwrap_or_default().iter().enumerate() {
        let Some(stat) = STATISTICS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(_, s)| *s)
        else {
            let names: Vec<&str> = STATISTICS.iter().map(|(n, _)| *n).collect();
            return Err(BadRequest(format!(
                "desiredStatistics[{i}]: unknown statistic {name:?}; expected one of {}",
                names.join(", ")
            )));
        };
        if !out.contains(&stat) {
            out.push(stat);
        }
    }
    Ok(out)
}

/// The v1 name of a statistic (`min`, `p99`, ...).
pub fn statistic_name(stat: Statistic) -> &'static str {
    STATISTICS
        .iter()
        .find(|(_, s)| *s == stat)
        .map(|(n, _)| *n)
        .unwrap_or("unknown")
}

/// Parses a trace ID written as 32 hex digits (either case).
pub fn parse_trace_id(text: &str) -> Result<[u8; 16], BadRequest> {
    let mut id = [0u8; 16];
    if text.len() != 32 || hex::decode_to_slice(text, &mut id).is_err() {
        return Err(BadRequest(format!(
            "malformed trace ID {text:?}: expected 32 hex digits"
        )));
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// `{"errorMessage": "..."}`, the body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponseV1 {
    /// What went wrong.
    pub error_message: String,
}

/// Response `metadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseMetadataV1 {
    /// Pass back in the request's `metadata.nextToken` to get the next page.
    pub next_token: String,
}

/// `POST /v1/search` answer (and `GET /v1/trace/{id}`'s, which a reader writes with
/// [`teletrace_core::storage::TraceReader::write_trace_json`]), `{"metadata": {"nextToken"} | null,
/// "spans": [...]}`, each span in the v1 shape of [`teletrace_core::span_json`], written
/// straight into the body (no tree of JSON values per span in between).
pub fn spans_response(next_token: Option<&str>, spans: &[StoredSpan]) -> Vec<u8> {
    let mut out = Vec::new();
    write_spans_response_head(&mut out, next_token);
    span_json::write_array(&mut out, spans);
    out.push(b'}');
    out
}

/// Appends the answer of [`spans_response`] up to its span list:
/// `{"metadata":...,"spans":`. The caller appends the list and the closing `}`.
pub fn write_spans_response_head(out: &mut Vec<u8>, next_token: Option<&str>) {
    out.extend_from_slice(b"{\"metadata\":");
    match next_token {
        Some(token) => {
            out.extend_from_slice(b"{\"nextToken\":");
            json_writer::string(out, token);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"spans\":");
}

/// `GET /v1/tags` answer: `{"Tags": [...]}` (capital T, as Teletrace wrote it).
#[derive(Debug, Clone, Serialize)]
pub struct TagsResponseV1 {
    /// Every known tag.
    #[serde(rename = "Tags")]
    pub tags: Vec<TagInfoV1>,
}

/// One tag and its value type.
#[derive(Debug, Clone, Serialize)]
pub struct TagInfoV1 {
    /// Tag name, e.g. `span.attributes.http.route`.
    pub name: String,
    /// Value type, as the storage names it.
    #[serde(rename = "type")]
    pub value_type: String,
}

/// `POST /v1/tags/{tag}` answer.
#[derive(Debug, Clone, Serialize)]
pub struct TagValuesResponseV1 {
    /// Always `null` (every value is returned in one answer).
    pub metadata: Option<ResponseMetadataV1>,
    /// Values, most frequent first.
    pub values: Vec<TagValueV1>,
}

/// One value of a tag.
#[derive(Debug, Clone, Serialize)]
pub struct TagValueV1 {
    /// The value (string, number or boolean).
    pub value: Value,
    /// How many matching spans carry it.
    pub count: u64,
}

/// `POST /v1/tags/{tag}/statistics` answer.
#[derive(Debug, Clone, Serialize)]
pub struct TagStatisticsResponseV1 {
    /// Statistic name to value; a statistic without a value is left out.
    pub statistics: Map<String, Value>,
}

/// `GET /v1/system-info` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemInfoV1 {
    /// The installation's stable ID.
    pub system_id: String,
    /// Usage reporting is never on in this implementation.
    pub usage_reporting_enabled: bool,
}

/// `GET /v1/system-id` answer (the older form of system-info).
#[derive(Debug, Clone, Serialize)]
pub struct SystemIdV1 {
    /// The installation's stable ID.
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeframes() {
        let tf = |s: Option<u64>, e: Option<u64>| TimeframeV1 {
            start_time_unix_nano_sec: s,
            end_time_unix_nano_sec: e,
        };
        let now = 1_000;
        assert_eq!(
            TimeframeV1::resolve(None, now).unwrap(),
            Timeframe {
                start_ns: 0,
                end_ns: 1_000
            }
        );
        assert_eq!(
            TimeframeV1::resolve(Some(&tf(Some(10), Some(0))), now).unwrap(),
            Timeframe {
                start_ns: 10,
                end_ns: 1_000
            }
        );
        assert_eq!(
            TimeframeV1::resolve(Some(&tf(Some(5_000), None)), now).unwrap(),
            Timeframe {
                start_ns: 5_000,
                end_ns: 5_000
            }
        );
        assert_eq!(
            TimeframeV1::resolve(Some(&tf(Some(10), Some(20))), now).unwrap(),
            Timeframe {
                start_ns: 10,
                end_ns: 20
            }
        );
        assert!(TimeframeV1::resolve(Some(&tf(Some(20), Some(10))), now).is_err());
    }

    #[test]
    fn nanos_accept_integers_floats_and_strings() {
        let parse = |text: &str| parse_body::<TimeframeV1>(text.as_bytes());
        assert_eq!(
            parse(r#"{"startTimeUnixNanoSec": 1.7e18, "endTimeUnixNanoSec": "42"}"#).unwrap(),
            TimeframeV1 {
                start_time_unix_nano_sec: Some(1_700_000_000_000_000_000),
                end_time_unix_nano_sec: Some(42),
            }
        );
        let err = parse(r#"{"startTimeUnixNanoSec": -1}"#).unwrap_err();
        assert!(err.0.contains("startTimeUnixNanoSec"), "{err}");
        assert!(parse(r#"{"endTimeUnixNanoSec": 1.5}"#).is_err());
        assert!(parse(r#"{"endTimeUnixNanoSec": "soon"}"#).is_err());
        assert!(parse(r#"{"endTimeUnixNanoSec": true}"#).is_err());
    }

    #[test]
    fn bodies() {
        assert_eq!(
            parse_body::<SearchRequestV1>(b"").unwrap(),
            SearchRequestV1::default()
        );
        assert!(parse_body::<SearchRequestV1>(b" null ").is_err());
        assert!(parse_body::<SearchRequestV1>(b"{} {}").is_err());
        let err = parse_body::<SearchRequestV1>(br#"{"filters": 3}"#).unwrap_err();
        assert!(err.0.contains("filters"), "{err}");
    }

    #[test]
    fn filters() {
        let f = |op: &str, value: Value| SearchFilterV1 {
            key_value_filter: Some(KeyValueFilterV1 {
                key: "span.name".into(),
                operator: op.into(),
                value,
            }),
        };
        let ok = convert_filters(Some(&[
            f("in", serde_json::json!("a")),
            f("not_in", serde_json::json!(["a", 1])),
            f("exists", serde_json::json!({"ignored": true})),
            f("gte", serde_json::json!(3)),
        ]))
        .unwrap();
        assert_eq!(ok[0].value, serde_json::json!(["a"]));
        assert_eq!(ok[0].operator, Operator::In);
        assert_eq!(ok[1].operator, Operator::NotIn);
        assert_eq!(ok[2].value, Value::Null);
        assert_eq!(ok[3].operator, Operator::Gte);
        for bad in [
            f("like", serde_json::json!("a")),
            f("equals", serde_json::json!(["a"])),
            f("equals", Value::Null),
            f("in", serde_json::json!([{"a": 1}])),
        ] {
            assert!(convert_filters(Some(&[bad])).is_err());
        }
        assert!(convert_filters(Some(&[SearchFilterV1::default()])).is_err());
        assert!(convert_filters(None).unwrap().is_empty());
    }

    #[test]
    fn sorts_and_statistics() {
        assert_eq!(
            convert_sort(None).unwrap(),
            vec![Sort {
                field: SortField::StartTime,
                ascending: false
            }]
        );
        let one = SortSpecV1::One(SortV1 {
            field: "externalFields.durationNano".into(),
            ascending: true,
        });
        assert_eq!(
            convert_sort(Some(&one)).unwrap(),
            vec![Sort {
                field: SortField::Duration,
                ascending: true
            }]
        );
        let bad = SortSpecV1::Many(vec![SortV1 {
            field: "span.name".into(),
            ascending: true,
        }]);
        assert!(convert_sort(Some(&bad)).is_err());
        let names: Vec<String> = ["max", "P99", "max"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            convert_statistics(Some(&names)).unwrap(),
            vec![Statistic::Max, Statistic::P99]
        );
        assert!(convert_statistics(Some(&["median".to_string()])).is_err());
        assert_eq!(statistic_name(Statistic::P75), "p75");
    }

    #[test]
    fn trace_ids() {
        let id = parse_trace_id("0102030405060708090A0b0c0d0e0f10").unwrap();
        assert_eq!(id[0], 1);
        assert_eq!(id[15], 16);
        assert!(parse_trace_id("0102").is_err());
        assert!(parse_trace_id("zz02030405060708090a0b0c0d0e0f10").is_err());
        assert!(parse_trace_id("é102030405060708090a0b0c0d0e0f1").is_err());
    }
}
