//! What the policies need to know about a trace, gathered span by span as the trace
//! arrives, so spans can be held encoded and never decoded again at decision time.
//!
//! Every policy of the collector looks at a trace in one of a few ways: its span count,
//! its earliest start and latest end, whether any span has a given status, whether any
//! span (or resource) matches an attribute or tracestate condition, or its trace ID. The
//! first three are kept directly; each condition ("matcher") gets one bit that is set
//! once anything in the trace matches it.

use opentelemetry_proto::tonic::common::v1::{any_value::Value, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::Span;
use regex::Regex;
use std::collections::HashSet;

/// Facts about one trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    /// Spans received so far.
    pub span_count: u64,
    /// Earliest span start, Unix nanoseconds (`u64::MAX` before the first span).
    pub min_start: u64,
    /// Latest span end, Unix nanoseconds.
    pub max_end: u64,
    /// Bit `1 << code` for each status code seen (0 unset, 1 ok, 2 error).
    pub statuses: u8,
    /// Matchers that matched something in the trace.
    pub matched: Bits,
}

impl Default for TraceSummary {
    fn default() -> Self {
        TraceSummary {
            span_count: 0,
            min_start: u64::MAX,
            max_end: 0,
            statuses: 0,
            matched: Bits::default(),
        }
    }
}

impl TraceSummary {
    /// Adds what another part of the same trace showed.
    pub fn merge(&mut self, other: &TraceSummary) {
        self.span_count += other.span_count;
        self.min_start = self.min_start.min(other.min_start);
        self.max_end = self.max_end.max(other.max_end);
        self.statuses |= other.statuses;
        self.matched.union(&other.matched);
    }

    /// Trace duration in whole milliseconds: latest end minus earliest start.
    pub fn duration_ms(&self) -> i64 {
        if self.span_count == 0 || self.max_end < self.min_start {
            return 0;
        }
        ((self.max_end - self.min_start) / 1_000_000) as i64
    }

    /// Records one span (with its resource already seen by [`Matchers::observe_resource`]).
    pub fn observe_span(&mut self, span: &Span, matchers: &Matchers) {
        self.span_count += 1;
        self.min_start = self.min_start.min(span.start_time_unix_nano);
        self.max_end = self.max_end.max(span.end_time_unix_nano);
        let code = span.status.as_ref().map_or(0, |s| s.code).clamp(0, 2);
        self.statuses |= 1 << code;
        for (i, m) in matchers.list.iter().enumerate() {
            if !self.matched.get(i) && m.matches_span(span) {
                self.matched.set(i);
            }
        }
    }
}

/// A small bit set: 64 bits inline, more on the heap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bits {
    inline: u64,
    spill: Vec<u64>,
}

impl Bits {
    /// True when bit `i` is set.
    pub fn get(&self, i: usize) -> bool {
        if i < 64 {
            self.inline & (1 << i) != 0
        } else {
            self.spill
                .get(i / 64 - 1)
                .is_some_and(|w| w & (1 << (i % 64)) != 0)
        }
    }

    /// Sets bit `i`.
    pub fn set(&mut self, i: usize) {
        if i < 64 {
            self.inline |= 1 << i;
        } else {
            let w = i / 64 - 1;
            if self.spill.len() <= w {
                self.spill.resize(w + 1, 0);
            }
            self.spill[w] |= 1 << (i % 64);
        }
    }

    fn union(&mut self, other: &Bits) {
        self.inline |= other.inline;
        if self.spill.len() < other.spill.len() {
            self.spill.resize(other.spill.len(), 0);
        }
        for (a, b) in self.spill.iter_mut().zip(&other.spill) {
            *a |= b;
        }
    }
}

/// One condition on attributes or tracestate.
#[derive(Debug)]
pub enum Matcher {
    /// A string attribute equal to one of the values.
    StringExact {
        key: String,
        values: HashSet<String>,
    },
    /// A string attribute matching one of the regexes (unanchored).
    StringRegex { key: String, regexes: Vec<Regex> },
    /// An integer attribute within bounds (inclusive).
    Numeric { key: String, min: i64, max: i64 },
    /// A boolean attribute equal to the value.
    Boolean { key: String, value: bool },
    /// A tracestate list member `key` with one of the values (spans only).
    TraceState {
        key: String,
        values: HashSet<String>,
    },
}

impl Matcher {
    fn matches_value(&self, attributes: &[KeyValue]) -> bool {
        let key = match self {
            Matcher::StringExact { key, .. }
            | Matcher::StringRegex { key, .. }
            | Matcher::Numeric { key, .. }
            | Matcher::Boolean { key, .. } => key,
            Matcher::TraceState { .. } => return false,
        };
        let Some(value) = attributes
            .iter()
            .find(|kv| &kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
        else {
            return false;
        };
        match (self, value) {
            (Matcher::StringExact { values, .. }, Value::StringValue(s)) => values.contains(s),
            (Matcher::StringRegex { regexes, .. }, Value::StringValue(s)) => {
                regexes.iter().any(|r| r.is_match(s))
            }
            (Matcher::Numeric { min, max, .. }, Value::IntValue(i)) => (*min..=*max).contains(i),
            (Matcher::Boolean { value: want, .. }, Value::BoolValue(b)) => b == want,
            _ => false,
        }
    }

    /// True when the span's attributes (or tracestate) match.
    pub fn matches_span(&self, span: &Span) -> bool {
        match self {
            Matcher::TraceState { key, values } => span
                .trace_state
                .split(',')
                .filter_map(|m| m.trim_matches([' ', '\t']).split_once('='))
                .any(|(k, v)| k == key && values.contains(v)),
            _ => self.matches_value(&span.attributes),
        }
    }

    /// True when the resource's attributes match.
    pub fn matches_resource(&self, resource: &Resource) -> bool {
        self.matches_value(&resource.attributes)
    }
}

/// Every matcher of a processor's policies, indexed by bit.
#[derive(Debug, Default)]
pub struct Matchers {
    /// The matchers; matcher `i` owns bit `i` of [`TraceSummary::matched`].
    pub list: Vec<Matcher>,
}

impl Matchers {
    /// Adds a matcher and returns its bit.
    pub fn add(&mut self, m: Matcher) -> usize {
        self.list.push(m);
        self.list.len() - 1
    }

    /// Records the matches of a resource into `summary`.
    pub fn observe_resource(&self, resource: &Resource, summary: &mut TraceSummary) {
        for (i, m) in self.list.iter().enumerate() {
            if !summary.matched.get(i) && m.matches_resource(resource) {
                summary.matched.set(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_beyond_64_spill() {
        let mut b = Bits::default();
        b.set(3);
        b.set(130);
        assert!(b.get(3) && b.get(130) && !b.get(4) && !b.get(129) && !b.get(500));
        let mut c = Bits::default();
        c.set(70);
        c.union(&b);
        assert!(c.get(3) && c.get(70) && c.get(130));
    }
}
