// The server's APIs: the Teletrace v1 API and the RED metrics and dependencies endpoints.

const TIME_FIELDS = /"(startTimeUnixNano|endTimeUnixNano|timeUnixNano|ingestionTimeUnixNano)":(-?\d+)/g;

/** Parses a v1 answer keeping nanosecond times exact: they exceed 2^53, so they are read as strings. */
function parseExact(text) {
  return JSON.parse(text.replace(TIME_FIELDS, '"$1":"$2"'));
}

/** An error answer from the server, with its status. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(method, path, body, signal) {
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const r = await fetch(path, init);
  const text = await r.text();
  if (!r.ok) {
    let message = text;
    try {
      message = JSON.parse(text).errorMessage || text;
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, `${r.status}: ${message}`);
  }
  return parseExact(text);
}

/** A v1 timeframe from ms since the epoch (ns sent as decimal strings, exact). */
export function timeframe(startMs, endMs) {
  return {
    startTimeUnixNanoSec: (BigInt(Math.floor(startMs)) * 1000000n).toString(),
    endTimeUnixNanoSec: (BigInt(Math.floor(endMs)) * 1000000n).toString(),
  };
}

/** A v1 filter. */
export function kv(key, operator, value) {
  return { keyValueFilter: { key, operator, value } };
}

/** `POST /v1/search`. */
export function search(body, signal) {
  return call('POST', '/v1/search', body, signal);
}

/** `GET /v1/trace/{id}`. */
export function trace(id, signal) {
  return call('GET', `/v1/trace/${encodeURIComponent(id)}`, undefined, signal);
}

/** `GET /v1/tags`: the tag names and types. */
export async function tags(signal) {
  const r = await call('GET', '/v1/tags', undefined, signal);
  return r.Tags || [];
}

/** `POST /v1/tags/{tag}`: values of a tag with counts among matching spans. */
export async function tagValues(tag, body, signal) {
  const r = await call('POST', `/v1/tags/${encodeURIComponent(tag)}`, body, signal);
  return r.values || [];
}

/** `GET /v1/service-metrics`: RED metrics per service (or per operation of `service`). */
export function serviceMetrics(startMs, endMs, stepMs, service, signal) {
  const ns = (ms) => (BigInt(Math.floor(ms)) * 1000000n).toString();
  const q = new URLSearchParams({ start: ns(startMs), end: ns(endMs), step: ns(stepMs) });
  if (service) q.set('service', service);
  return call('GET', `/v1/service-metrics?${q}`, undefined, signal);
}

/** `GET /api/dependencies`: service call edges. */
export function dependencies(endMs, lookbackMs, signal) {
  const q = new URLSearchParams({ endTs: String(Math.floor(endMs)), lookback: String(Math.floor(lookbackMs)) });
  return call('GET', `/api/dependencies?${q}`, undefined, signal);
}
