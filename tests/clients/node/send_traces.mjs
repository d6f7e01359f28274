// Sends spans to an OTLP endpoint with the OpenTelemetry JavaScript SDK.
//
// Usage: node send_traces.mjs PROTOCOL ENDPOINT SERVICE COUNT
//   PROTOCOL  grpc | http-proto | http-json
//   ENDPOINT  e.g. http://127.0.0.1:4317 (grpc) or http://127.0.0.1:4318 (http)
// Emits one root span with COUNT children (attributes of each type, an event, a link to
// the root, every fifth child an error), flushes, and exits 0 only if every export
// succeeded. Prints the trace ID on stdout.
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

const [protocol, endpoint, service, countText] = process.argv.slice(2);
const count = Number.parseInt(countText ?? "", 10);
if (!protocol || !endpoint || !service || !Number.isInteger(count)) {
  console.error("usage: send_traces.mjs grpc|http-proto|http-json ENDPOINT SERVICE COUNT");
  process.exit(2);
}

async function exporterFor(protocol) {
  const base = endpoint.replace(/\/$/, "");
  switch (protocol) {
    case "grpc": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-grpc");
      return new OTLPTraceExporter({ url: base });
    }
    case "http-proto": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-proto");
      return new OTLPTraceExporter({ url: `${base}/v1/traces` });
    }
    case "http-json": {
      const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
      return new OTLPTraceExporter({ url: `${base}/v1/traces` });
    }
    default:
      throw new Error(`unknown protocol ${protocol}`);
  }
}

// Wraps an exporter and remembers whether every export succeeded.
class Recording {
  constructor(inner) {
    this.inner = inner;
    this.failures = [];
  }
  export(spans, done) {
    this.inner.export(spans, (result) => {
      if (result.code !== 0) this.failures.push(String(result.error ?? result.code));
      done(result);
    });
  }
  shutdown() {
    return this.inner.shutdown();
  }
  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }
}

const recording = new Recording(await exporterFor(protocol));
const provider = new TracerProvider({
  resource: resourceFromAttributes({ "service.name": service }),
  spanProcessors: [new SimpleSpanProcessor({ exporter: recording })],
});
const tracer = provider.getTracer("teletrace-node-test", "1.2.3");

const root = tracer.startSpan("node-root", { kind: SpanKind.SERVER });
const parent = trace.setSpan(context.active(), root);
for (let i = 0; i < count; i++) {
  const span = tracer.startSpan(
    `node-${i}`,
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "http.request.method": "GET",
        "http.response.status_code": 200 + (i % 3),
        ratio: i / 10 + 0.05, // never a whole number, which JS would send as an int
        "cache.hit": i % 2 === 0,
        tags: ["a", "b"],
      },
      links: [{ context: root.spanContext(), attributes: { "link.index": i } }],
    },
    parent,
  );
  span.addEvent("work", { step: i });
  if (i % 5 === 4) span.setStatus({ code: SpanStatusCode.ERROR, message: "boom" });
  span.end();
}
root.end();
try {
  await provider.forceFlush();
} catch (err) {
  recording.failures.push(String(err));
}
await provider.shutdown();
if (recording.failures.length > 0) {
  console.error(`export failed: ${recording.failures.join("; ")}`);
  process.exit(1);
}
console.log(root.spanContext().traceId);
