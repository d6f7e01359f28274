//! Real OpenTelemetry clients for the tests: the `opentelemetry-otlp` crate's span
//! exporters over gRPC and HTTP/protobuf, driven through an SDK tracer provider.

use opentelemetry::trace::{
    Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Which OTLP transport the SDK uses.
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    HttpProto,
}

/// A tracer provider exporting to `endpoint` with a batch span processor.
pub fn provider(transport: Transport, endpoint: &str, service: &str) -> SdkTracerProvider {
    let exporter = match transport {
        Transport::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build(),
        Transport::HttpProto => SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .build(),
    }
    .expect("exporter builds");
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

/// Emits `n` spans named `{prefix}-{i}` as children of one root span (so `n + 1` spans in
/// all), with attributes of each type, then flushes.
pub fn emit_trace(provider: &SdkTracerProvider, prefix: &str, n: usize) {
    let tracer = provider.tracer("teletrace-tests");
    let root = tracer
        .span_builder(format!("{prefix}-root"))
        .with_kind(SpanKind::Server)
        .start(&tracer);
    let cx = opentelemetry::Context::current_with_span(root);
    for i in 0..n {
        let mut span = tracer
            .span_builder(format!("{prefix}-{i}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200i64 + (i % 3) as i64),
                KeyValue::new("ratio", i as f64 / 10.0),
                KeyValue::new("cache.hit", i % 2 == 0),
            ])
            .start_with_context(&tracer, &cx);
        span.add_event("work", vec![KeyValue::new("step", i as i64)]);
        if i % 5 == 4 {
            span.set_status(Status::error("boom"));
        }
        span.end();
    }
    drop(cx);
    provider.force_flush().expect("flush");
}
