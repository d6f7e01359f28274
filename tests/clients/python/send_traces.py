"""Send spans to an OTLP endpoint with the OpenTelemetry Python SDK.

Usage: send_traces.py PROTOCOL ENDPOINT SERVICE COUNT
  PROTOCOL  grpc | http
  ENDPOINT  e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)
Emits one root span with COUNT children (attributes of each type, an event, every fifth
child an error), flushes, and exits 0 only if the export succeeded.
"""
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode


class Recording:
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.ok = True

    def export(self, spans):
        result = self.inner.export(spans)
        self.ok = self.ok and result == SpanExportResult.SUCCESS
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def main():
    protocol, endpoint, service, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    recording = Recording(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(recording))
    tracer = provider.get_tracer("teletrace-python-test")
    with tracer.start_as_current_span("py-root", kind=SpanKind.SERVER):
        for i in range(count):
            with tracer.start_as_current_span(f"py-{i}", kind=SpanKind.CLIENT) as span:
                span.set_attribute("http.request.method", "POST")
                span.set_attribute("http.response.status_code", 200 + i % 3)
                span.set_attribute("ratio", i / 10)
                span.set_attribute("cache.hit", i % 2 == 0)
                span.set_attribute("tags", ["a", "b"])
                span.add_event("work", {"step": i})
                if i % 5 == 4:
                    span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    sys.exit(0 if recording.ok else 1)


if __name__ == "__main__":
    main()
