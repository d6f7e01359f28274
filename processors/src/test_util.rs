//! Helpers for the unit tests of this crate's processors: a sink that records batches and
//! builders of small batches.

use async_trait::async_trait;
use std::sync::Mutex;
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::proto::tonic::common::v1::{AnyValue, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use teletrace_core::{ConsumeError, Consumer, Traces};

/// Records every batch it is given.
#[derive(Default)]
pub struct Sink {
    pub batches: Mutex<Vec<Traces>>,
}

#[async_trait]
impl Consumer for Sink {
    async fn consume(&self, traces: Traces) -> Result<(), ConsumeError> {
        self.batches.lock().unwrap().push(traces);
        Ok(())
    }
}

impl Sink {
    /// Every span received, in order.
    pub fn spans(&self) -> Vec<Span> {
        let mut out = Vec::new();
        for t in self.batches.lock().unwrap().iter_mut() {
            t.for_each_span(|_, _, s| out.push(s.clone())).unwrap();
        }
        out
    }

    /// Resources of every span received, in order.
    pub fn resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        for t in self.batches.lock().unwrap().iter_mut() {
            t.for_each_span(|r, _, _| out.push(r.clone())).unwrap();
        }
        out
    }

    /// The attributes of the one span received, as (key, value) pairs.
    pub fn only_span_attributes(&self) -> Vec<(String, Value)> {
        let spans = self.spans();
        assert_eq!(spans.len(), 1, "expected one span");
        spans[0]
            .attributes
            .iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.clone().and_then(|v| v.value).unwrap(),
                )
            })
            .collect()
    }
}

/// A key-value attribute.
pub fn attr(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn int_attr(key: &str, value: i64) -> KeyValue {
    attr(key, Value::IntValue(value))
}

/// The string value of `key` in a (key, value) list.
pub fn string_of(list: &[(String, Value)], key: &str) -> Option<String> {
    list.iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// A span named `name` with `attributes`, starting at 1s and lasting `duration_ns`.
pub fn span(name: &str, attributes: Vec<(&str, Value)>, duration_ns: u64) -> Span {
    Span {
        trace_id: vec![1; 16],
        span_id: vec![2; 8],
        name: name.into(),
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + duration_ns,
        attributes: attributes.into_iter().map(|(k, v)| attr(k, v)).collect(),
        ..Default::default()
    }
}

/// A batch of the given spans under one resource of service `service`.
pub fn traces_of(service: &str, spans: Vec<Span>) -> Traces {
    Traces::new(vec![ResourceSpans {
        resource: Some(Resource {
            attributes: vec![attr("service.name", Value::StringValue(service.into()))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }])
}

/// A batch of one span of service `service`.
pub fn one_span_traces(service: &str, name: &str, attributes: Vec<(&str, Value)>) -> Traces {
    traces_of(service, vec![span(name, attributes, 1_000)])
}
