//! A small metrics registry rendered as Prometheus text, with the collector's metric
//! names. Counters and gauges are atomics handed out once and updated without locks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A distribution over fixed bucket bounds.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &[f64]) -> Self {
        Histogram {
            bounds: bounds.to_vec(),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one value.
    pub fn record(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

type GaugeFn = Arc<dyn Fn() -> f64 + Send + Sync>;

enum Series {
    Counter(Arc<Counter>),
    Gauge(Arc<Gauge>),
    GaugeFn(GaugeFn),
    Histogram(Arc<Histogram>),
}

struct Family {
    help: String,
    kind: &'static str,
    series: BTreeMap<String, Series>,
}

/// The registry of a running service. Cheap to clone (a shared handle).
#[derive(Clone, Default)]
pub struct Metrics {
    families: Arc<Mutex<BTreeMap<String, Family>>>,
}

fn label_text(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

impl Metrics {
    /// A fresh, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_series<T>(
        &self,
        name: &str,
        help: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
        make: impl FnOnce() -> Series,
        pick: impl Fn(&Series) -> Option<T>,
    ) -> T {
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind,
            series: BTreeMap::new(),
        });
        let key = label_text(labels);
        if let Some(found) = family.series.get(&key).and_then(&pick) {
            return found;
        }
        let series = make();
        let out = pick(&series).expect("series built with the kind picked");
        family.series.insert(key, series);
        out
    }

    /// The counter `name` with `labels` (created on first use, shared afterwards).
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Counter> {
        self.with_series(
            name,
            help,
            "counter",
            labels,
            || Series::Counter(Arc::default()),
            |s| match s {
                Series::Counter(c) => Some(c.clone()),
                _ => None,
            },
        )
    }

    /// The gauge `name` with `labels`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Gauge> {
        self.with_series(
            name,
            help,
            "gauge",
            labels,
            || Series::Gauge(Arc::default()),
            |s| match s {
                Series::Gauge(g) => Some(g.clone()),
                _ => None,
            },
        )
    }

    /// A gauge whose value is read from `f` at each scrape.
    pub fn gauge_fn(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        let f: GaugeFn = Arc::new(f);
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.entry(name.to_string()).or_insert_with(|| Family {
            help: help.to_string(),
            kind: "gauge",
            series: BTreeMap::new(),
        });
        family.series.insert(label_text(labels), Series::GaugeFn(f));
    }

    /// The histogram `name` with `labels` and bucket upper bounds `bounds`.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
    ) -> Arc<Histogram> {
        self.with_series(
            name,
            help,
            "histogram",
            labels,
            || Series::Histogram(Arc::new(Histogram::new(bounds))),
            |s| match s {
                Series::Histogram(h) => Some(h.clone()),
                _ => None,
            },
        )
    }

    /// The sum of a counter family over all label sets (used by tests and tools).
    pub fn counter_total(&self, name: &str) -> u64 {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        families.get(name).map_or(0, |f| {
            f.series
                .values()
                .map(|s| match s {
                    Series::Counter(c) => c.get(),
                    _ => 0,
                })
                .sum()
        })
    }

    /// Renders every family in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for (name, family) in families.iter() {
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {}", family.kind);
            for (labels, series) in &family.series {
                let braces = |extra: &str| {
                    let joined = match (labels.is_empty(), extra.is_empty()) {
                        (true, true) => String::new(),
                        (true, false) => extra.to_string(),
                        (false, true) => labels.clone(),
                        (false, false) => format!("{labels},{extra}"),
                    };
                    if joined.is_empty() {
                        String::new()
                    } else {
                        format!("{{{joined}}}")
                    }
                };
                match series {
                    Series::Counter(c) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), c.get());
                    }
                    Series::Gauge(g) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), g.get());
                    }
                    Series::GaugeFn(f) => {
                        let _ = writeln!(out, "{name}{} {}", braces(""), f());
                    }
                    Series::Histogram(h) => {
                        let mut cumulative = 0;
                        for (bound, bucket) in h.bounds.iter().zip(&h.buckets) {
                            cumulative += bucket.load(Ordering::Relaxed);
                            let le = format!("le=\"{bound}\"");
                            let _ = writeln!(out, "{name}_bucket{} {cumulative}", braces(&le));
                        }
                        let _ =
                            writeln!(out, "{name}_bucket{} {}", braces("le=\"+Inf\""), h.count());
                        let sum = f64::from_bits(h.sum_bits.load(Ordering::Relaxed));
                        let _ = writeln!(out, "{name}_sum{} {sum}", braces(""));
                        let _ = writeln!(out, "{name}_count{} {}", braces(""), h.count());
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted",
            &[("receiver", "otlp"), ("transport", "grpc")],
        )
        .add(5);
        m.counter(
            "otelcol_receiver_accepted_spans",
            "Spans accepted",
            &[("receiver", "otlp"), ("transport", "grpc")],
        )
        .add(2);
        let h = m.histogram(
            "otelcol_processor_batch_batch_send_size",
            "Batch sizes",
            &[("processor", "batch")],
            &[10.0, 100.0],
        );
        h.record(5.0);
        h.record(50.0);
        h.record(500.0);
        let text = m.render();
        assert!(text.contains("# TYPE otelcol_receiver_accepted_spans counter"));
        assert!(text
            .contains("otelcol_receiver_accepted_spans{receiver=\"otlp\",transport=\"grpc\"} 7"));
        assert!(text.contains(
            "otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"100\"} 2"
        ));
        assert!(text.contains(
            "otelcol_processor_batch_batch_send_size_bucket{processor=\"batch\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains("otelcol_processor_batch_batch_send_size_count{processor=\"batch\"} 3")
        );
        assert_eq!(m.counter_total("otelcol_receiver_accepted_spans"), 7);
    }
}
