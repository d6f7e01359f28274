//! Helpers for the sqlite exporter tests: OTLP builders and a started exporter on a temp
//! file.
#![allow(dead_code)]

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use sqlx::{Connection as _, SqliteConnection};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use teletrace_core::storage::{KeyValueFilter, Operator, SearchRequest, Timeframe, TraceReader};
use teletrace_core::telemetry::Metrics;
use teletrace_core::{Exporter, Host, Lifecycle, Traces};
use teletrace_exporters::sqlite::{SqliteConfig, SqliteExporter};

pub fn s(v: &str) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(v.into())),
    }
}
pub fn i(v: i64) -> AnyValue {
    AnyValue {
        value: Some(Value::IntValue(v)),
    }
}
pub fn d(v: f64) -> AnyValue {
    AnyValue {
        value: Some(Value::DoubleValue(v)),
    }
}
pub fn b(v: bool) -> AnyValue {
    AnyValue {
        value: Some(Value::BoolValue(v)),
    }
}
pub fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..Default::default()
    }
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A trace ID from a number.
pub fn trace_id(n: u64) -> Vec<u8> {
    let mut id = vec![0xab; 8];
    id.extend_from_slice(&n.to_be_bytes());
    id
}

/// A span ID from a number (never zero).
pub fn span_id(n: u64) -> Vec<u8> {
    (n + 1).to_be_bytes().to_vec()
}

/// A span with the basics set.
pub fn span(
    trace: u64,
    id: u64,
    name: &str,
    start: u64,
    duration: u64,
    attributes: Vec<KeyValue>,
) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(id),
        name: name.into(),
        kind: 2,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        attributes,
        ..Default::default()
    }
}

/// One resource and scope around `spans`.
pub fn batch(resource: Vec<KeyValue>, spans: Vec<Span>) -> Traces {
    Traces::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: resource,
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "test-scope".into(),
                version: "1.0".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

/// A started exporter on `dir/name`, with `tweak` applied to its config.
pub struct Store {
    pub exporter: Arc<SqliteExporter>,
    pub reader: Arc<dyn TraceReader>,
    pub path: PathBuf,
    pub metrics: Metrics,
}

impl Store {
    pub async fn open(dir: &Path, tweak: impl FnOnce(&mut SqliteConfig)) -> Store {
        let path = dir.join("embedded_spans.db");
        let mut config = SqliteConfig {
            path: path.display().to_string(),
            ..Default::default()
        };
        tweak(&mut config);
        let metrics = Metrics::new();
        let exporter = Arc::new(SqliteExporter::new("sqlite", config, &metrics));
        let reader = exporter.reader().expect("a reader right after build");
        exporter.start(&Host::default()).await.expect("start");
        Store {
            exporter,
            reader,
            path,
            metrics,
        }
    }

    /// A separate connection on the same file, for checks and sabotage.
    pub async fn raw(&self) -> SqliteConnection {
        SqliteConnection::connect(&format!("sqlite://{}", self.path.display()))
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = self.raw().await;
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }
}

/// Everything, sorted by start time descending.
pub fn everything() -> Timeframe {
    Timeframe {
        start_ns: 0,
        end_ns: u64::MAX,
    }
}

pub fn filter(key: &str, operator: Operator, value: serde_json::Value) -> KeyValueFilter {
    KeyValueFilter {
        key: key.into(),
        operator,
        value,
    }
}

pub fn request(filters: Vec<KeyValueFilter>, limit: usize) -> SearchRequest {
    SearchRequest {
        timeframe: everything(),
        filters,
        sort: Vec::new(),
        next_token: None,
        limit,
    }
}

/// Span names a search returns (all pages).
pub async fn names(reader: &dyn TraceReader, filters: Vec<KeyValueFilter>) -> Vec<String> {
    let mut req = request(filters, 1000);
    let mut out = Vec::new();
    loop {
        let page = reader.search(&req).await.unwrap();
        out.extend(page.spans.iter().map(|s| s.span.name.clone()));
        match page.next_token {
            Some(t) => req.next_token = Some(t),
            None => break,
        }
    }
    out.sort();
    out
}
