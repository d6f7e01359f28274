//! The path every request takes once decoded, whatever its transport: hand the batch to
//! the pipeline, count it, and turn the pipeline's answer into a response or a failure.

use crate::otlp::status::Failure;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use std::sync::Arc;
use teletrace_core::telemetry::{Counter, Metrics};
use teletrace_core::{ComponentId, ConsumeError, ConsumerRef, Traces};
use tokio_util::task::TaskTracker;

/// The transport a request came in on (the `transport` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP.
    Http,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
        }
    }
}

/// Accepted/refused span counters of one transport.
struct Counters {
    accepted: Arc<Counter>,
    refused: Arc<Counter>,
}

impl Counters {
    fn new(metrics: &Metrics, receiver: &str, transport: Transport) -> Self {
        let labels = [("receiver", receiver), ("transport", transport.label())];
        Counters {
            accepted: metrics.counter(
                "otelcol_receiver_accepted_spans",
                "Number of spans successfully pushed into the pipeline.",
                &labels,
            ),
            refused: metrics.counter(
                "otelcol_receiver_refused_spans",
                "Number of spans that could not be pushed into the pipeline.",
                &labels,
            ),
        }
    }
}

/// Hands decoded batches to the pipeline. Shared by the gRPC and HTTP servers.
pub(crate) struct Export {
    next: ConsumerRef,
    grpc: Counters,
    http: Counters,
    /// Pipeline calls in flight. Each runs in its own task so that a client hanging up
    /// after sending cannot cancel a batch halfway into the pipeline; shutdown waits
    /// for them.
    in_flight: TaskTracker,
}

impl Export {
    /// An exporter into `next`, counting under the receiver `id`.
    pub(crate) fn new(id: &ComponentId, metrics: &Metrics, next: ConsumerRef) -> Self {
        let receiver = id.to_string();
        Export {
            next,
            grpc: Counters::new(metrics, &receiver, Transport::Grpc),
            http: Counters::new(metrics, &receiver, Transport::Http),
            in_flight: TaskTracker::new(),
        }
    }

    /// Asks the pipeline whether it takes data now ([`teletrace_core::Consumer::admit`]),
    /// before the request body is read: a refusal (the `memory_limiter` over its soft
    /// limit) is answered without reading or decoding the body. The refused request's
    /// spans are not counted: they were never read.
    pub(crate) fn admit(&self) -> Result<(), Failure> {
        self.next.admit().map_err(|e| {
            tracing::debug!(error = %e, "pipeline refused a request before its body was read");
            Failure::from_consume(&e)
        })
    }

    /// Sends `traces` down the pipeline and waits for its answer.
    ///
    /// An empty batch is answered with success without reaching the pipeline, as the
    /// collector does. A partial rejection is a success carrying `partial_success`.
    pub(crate) async fn export(
        &self,
        transport: Transport,
        traces: Traces,
    ) -> Result<ExportTraceServiceResponse, Failure> {
        let counters = match transport {
            Transport::Grpc => &self.grpc,
            Transport::Http => &self.http,
        };
        let spans = traces.span_count() as u64;
        if spans == 0 {
            return Ok(ExportTraceServiceResponse::default());
        }
        let next = self.next.clone();
        let result = match self
            .in_flight
            .spawn(async move { next.consume(traces).await })
            .await
        {
            Ok(result) => result,
            Err(e) => {
                counters.refused.add(spans);
                tracing::error!(error = %e, "pipeline task failed");
                return Err(Failure::Internal(format!("pipeline failed: {e}")));
            }
        };
        match result {
            Ok(()) => {
                counters.accepted.add(spans);
                Ok(ExportTraceServiceResponse::default())
            }
            Err(ConsumeError::PartiallyRejected {
                rejected_spans,
                message,
            }) => {
                let rejected = rejected_spans.min(spans);
                counters.accepted.add(spans - rejected);
                counters.refused.add(rejected);
                Ok(ExportTraceServiceResponse {
                    partial_success: Some(ExportTracePartialSuccess {
                        rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                        error_message: message,
                    }),
                })
            }
            Err(e) => {
                counters.refused.add(spans);
                tracing::debug!(error = %e, spans, transport = transport.label(), "pipeline refused spans");
                Err(Failure::from_consume(&e))
            }
        }
    }

    /// Waits until every pipeline call started so far has returned.
    pub(crate) async fn drain(&self) {
        self.in_flight.close();
        self.in_flight.wait().await;
        self.in_flight.reopen();
    }
}
