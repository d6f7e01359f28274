//! The debug exporter: prints each batch (sampled) and counts its spans as sent.

use super::config::{DebugConfig, Verbosity};
use super::format::{basic_line, detailed_text, normal_text, summarize};
use async_trait::async_trait;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::traces::DecodeError;
use teletrace_core::{ConsumeError, Consumer, Exporter, Lifecycle, Traces};

/// Counter of spans the exporter handled (label `exporter`), as in the collector.
pub const METRIC_SENT_SPANS: &str = "otelcol_exporter_sent_spans";
/// Counter of spans the exporter could not handle (label `exporter`), as in the collector.
pub const METRIC_SEND_FAILED_SPANS: &str = "otelcol_exporter_send_failed_spans";

/// What to print for one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The basic summary line (`Traces {"resource spans": 1, "spans": 2}`).
    pub summary: String,
    /// The per-span text for `normal` and `detailed`; `None` for `basic`.
    pub body: Option<String>,
}

/// Renders `traces` at `verbosity`. `basic` never decodes; `normal` and `detailed` decode
/// the batch in place (it is the exporter's own copy).
pub fn render(verbosity: Verbosity, traces: &mut Traces) -> Result<Rendered, DecodeError> {
    let summary = summarize(traces);
    let body = match verbosity {
        Verbosity::Basic => None,
        Verbosity::Normal => Some(normal_text(traces.resource_spans()?)),
        Verbosity::Detailed => Some(detailed_text(traces.resource_spans()?)),
    };
    Ok(Rendered {
        summary: basic_line(&summary),
        body,
    })
}

/// Log sampling as the collector's debug exporter does it (zap's sampler, one-second
/// windows): in each window the first `initial` batches are printed, then every
/// `thereafter`-th one (`1`: all of them, `0`: none).
#[derive(Debug)]
pub struct Sampler {
    initial: u64,
    thereafter: u64,
    window: Mutex<(Option<Instant>, u64)>,
}

impl Sampler {
    /// Length of a sampling window.
    pub const TICK: Duration = Duration::from_secs(1);

    /// A sampler printing `initial` batches per second, then every `thereafter`-th.
    pub fn new(initial: u32, thereafter: u32) -> Self {
        Sampler {
            initial: initial.into(),
            thereafter: thereafter.into(),
            window: Mutex::new((None, 0)),
        }
    }

    /// Whether the batch arriving at `now` is printed.
    pub fn sample(&self, now: Instant) -> bool {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = &mut *window;
        if start.is_none_or(|s| now.saturating_duration_since(s) >= Self::TICK) {
            *start = Some(now);
            *count = 0;
        }
        *count += 1;
        *count <= self.initial
            || (self.thereafter > 0 && (*count - self.initial).is_multiple_of(self.thereafter))
    }
}

/// The `debug` exporter.
pub struct DebugExporter {
    id: String,
    verbosity: Verbosity,
    use_internal_logger: bool,
    sampler: Sampler,
    sent: Arc<Counter>,
    failed: Arc<Counter>,
}

impl DebugExporter {
    /// Builds the exporter with ID `id`; its counters are registered in `metrics` with the
    /// label `exporter=<id>`.
    pub fn new(id: &str, config: &DebugConfig, metrics: &Metrics) -> Self {
        let labels = [("exporter", id)];
        DebugExporter {
            id: id.to_string(),
            verbosity: config.verbosity,
            use_internal_logger: config.use_internal_logger,
            sampler: Sampler::new(config.sampling_initial, config.sampling_thereafter),
            sent: metrics.counter(
                METRIC_SENT_SPANS,
                "Number of spans successfully sent to destination",
                &labels,
            ),
            failed: metrics.counter(
                METRIC_SEND_FAILED_SPANS,
                "Number of spans in failed attempts to send to destination",
                &labels,
            ),
        }
    }

    fn emit(&self, rendered: &Rendered) {
        if self.use_internal_logger {
            tracing::info!(exporter = %self.id, "{}", rendered.summary);
            if let Some(body) = rendered.body.as_deref().filter(|b| !b.is_empty()) {
                tracing::info!(exporter = %self.id, "{body}");
            }
        } else {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", rendered.summary);
            if let Some(body) = rendered.body.as_deref().filter(|b| !b.is_empty()) {
                let _ = writeln!(out, "{body}");
            }
            let _ = out.flush();
        }
    }
}

#[async_trait]
impl Consumer for DebugExporter {
    /// Prints the batch (when sampled) and counts its spans as sent. Fails only on a
    /// batch that cannot be decoded, which the receiver's validation rules out.
    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        let spans = traces.span_count() as u64;
        if self.sampler.sample(Instant::now()) {
            match render(self.verbosity, &mut traces) {
                Ok(rendered) => self.emit(&rendered),
                Err(e) => {
                    self.failed.add(spans);
                    tracing::error!(exporter = %self.id, error = %e, spans, "cannot print batch");
                    return Err(ConsumeError::permanent(e.to_string()));
                }
            }
        }
        self.sent.add(spans);
        Ok(())
    }
}

impl Lifecycle for DebugExporter {}

impl Exporter for DebugExporter {}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn encoded(spans: usize) -> Traces {
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: (0..spans)
                        .map(|i| Span {
                            trace_id: vec![1; 16],
                            span_id: vec![i as u8 + 1; 8],
                            name: format!("s{i}"),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        Traces::from_encoded(request.encode_to_vec().into()).unwrap()
    }

    #[test]
    fn basic_render_keeps_the_batch_encoded() {
        let mut traces = encoded(3);
        let r = render(Verbosity::Basic, &mut traces).unwrap();
        assert!(traces.is_encoded());
        assert_eq!(r.summary, "Traces {\"resource spans\": 1, \"spans\": 3}");
        assert_eq!(r.body, None);
    }

    #[test]
    fn normal_and_detailed_render_the_spans() {
        let r = render(Verbosity::Normal, &mut encoded(2)).unwrap();
        assert_eq!(r.body.unwrap().lines().count(), 2);
        let r = render(Verbosity::Detailed, &mut encoded(2)).unwrap();
        let body = r.body.unwrap();
        assert!(body.starts_with("ResourceSpans #0\n"), "{body}");
        assert!(
            body.contains("Span #1\n    Trace ID       : 01010101"),
            "{body}"
        );
        // A decoded batch still gets its resource count.
        let mut decoded = Traces::new(encoded(2).into_resource_spans().unwrap());
        let r = render(Verbosity::Basic, &mut decoded).unwrap();
        assert_eq!(r.summary, "Traces {\"resource spans\": 1, \"spans\": 2}");
    }

    #[test]
    fn sampler_prints_initial_then_every_mth_per_second() {
        let t0 = Instant::now();
        let s = Sampler::new(2, 3);
        let got: Vec<bool> = (0..8).map(|_| s.sample(t0)).collect();
        assert_eq!(got, [true, true, false, false, true, false, false, true]);
        // A new window starts over.
        assert!(s.sample(t0 + Duration::from_secs(1)));
        assert!(s.sample(t0 + Duration::from_millis(1500)));
        assert!(!s.sample(t0 + Duration::from_millis(1600)));

        let all = Sampler::new(2, 1);
        assert!((0..100).all(|_| all.sample(t0)));
        let none_after = Sampler::new(1, 0);
        assert!(none_after.sample(t0));
        assert!((0..100).all(|_| !none_after.sample(t0)));
    }

    #[tokio::test]
    async fn counts_sent_spans_even_when_sampled_out() {
        let metrics = Metrics::new();
        let config = DebugConfig {
            sampling_initial: 1,
            sampling_thereafter: 0,
            ..Default::default()
        };
        let exporter = DebugExporter::new("debug/x", &config, &metrics);
        for n in [0, 2, 3] {
            exporter.consume(encoded(n)).await.unwrap();
        }
        exporter.shutdown().await.unwrap();
        exporter.shutdown().await.unwrap();
        assert!(metrics
            .render()
            .contains("otelcol_exporter_sent_spans{exporter=\"debug/x\"} 5"));
        assert_eq!(metrics.counter_total(METRIC_SEND_FAILED_SPANS), 0);
    }
}
