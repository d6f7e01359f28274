// Rebuilds OTLP/JSON (`{"resourceSpans": [...]}`, per the OTLP spec's JSON mapping: hex
// IDs, enum integers, lowerCamelCase, 64-bit integers as strings) from v1 span records.

/**
 * An OTLP AnyValue for a v1 attribute value. `type` is the storage's tag type when known
 * (`Double` keeps whole numbers as doubles; without it whole numbers become `intValue`).
 */
export function anyValue(v, type) {
  if (v === null || v === undefined) return {};
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'number') {
    if (type === 'Double' || !Number.isInteger(v)) return { doubleValue: v };
    return { intValue: String(v) };
  }
  if (typeof v === 'string') {
    if (type === 'Double' && (v === 'NaN' || v === 'Infinity' || v === '-Infinity')) return { doubleValue: v };
    if (type === 'Bytes') return { bytesValue: v };
    return { stringValue: v };
  }
  if (Array.isArray(v)) return { arrayValue: { values: v.map((x) => anyValue(x)) } };
  if (typeof v === 'object') return { kvlistValue: { values: keyValues(v) } };
  return { stringValue: String(v) };
}

/** OTLP KeyValue list for a v1 attributes object; `types(key)` gives a tag type. */
export function keyValues(attrs, types = () => undefined) {
  return Object.entries(attrs || {}).map(([key, value]) => ({ key, value: anyValue(value, types(key)) }));
}

function nanos(v) {
  return v === undefined || v === null ? '0' : String(v);
}

/**
 * `{"resourceSpans": [...]}` for `records` (v1 span records), grouping spans by resource
 * and scope. `tagTypes` maps tag names (`span.attributes.k`) to storage types.
 */
export function toOtlp(records, tagTypes = new Map()) {
  const typed = (prefix) => (key) => tagTypes.get(`${prefix}${key}`);
  const resources = new Map();
  for (const rec of records) {
    const res = rec.resource || {};
    const rkey = JSON.stringify([res.attributes || {}, res.droppedAttributesCount || 0]);
    let r = resources.get(rkey);
    if (!r) {
      r = {
        out: {
          resource: { attributes: keyValues(res.attributes, typed('resource.attributes.')), droppedAttributesCount: res.droppedAttributesCount || 0 },
          scopeSpans: [],
        },
        scopes: new Map(),
      };
      resources.set(rkey, r);
    }
    const sc = rec.scope || {};
    const skey = JSON.stringify([sc.name || '', sc.version || '', sc.attributes || {}, sc.droppedAttributesCount || 0]);
    let s = r.scopes.get(skey);
    if (!s) {
      s = {
        scope: { name: sc.name || '', version: sc.version || '', attributes: keyValues(sc.attributes, typed('scope.attributes.')), droppedAttributesCount: sc.droppedAttributesCount || 0 },
        spans: [],
      };
      r.scopes.set(skey, s);
      r.out.scopeSpans.push(s);
    }
    s.spans.push(span(rec.span, typed('span.attributes.')));
  }
  return { resourceSpans: [...resources.values()].map((r) => r.out) };
}

function span(s, types) {
  const out = {
    traceId: s.traceId,
    spanId: s.spanId,
    traceState: s.traceState || '',
    name: s.name || '',
    kind: s.kind || 0,
    startTimeUnixNano: nanos(s.startTimeUnixNano),
    endTimeUnixNano: nanos(s.endTimeUnixNano),
    attributes: keyValues(s.attributes, types),
    droppedAttributesCount: s.droppedAttributesCount || 0,
    events: (s.events || []).map((e) => ({
      timeUnixNano: nanos(e.timeUnixNano),
      name: e.name || '',
      attributes: keyValues(e.attributes),
      droppedAttributesCount: e.droppedAttributesCount || 0,
    })),
    droppedEventsCount: s.droppedEventsCount || 0,
    links: (s.links || []).map((l) => ({
      traceId: l.traceId,
      spanId: l.spanId,
      traceState: l.traceState || '',
      attributes: keyValues(l.attributes),
      droppedAttributesCount: l.droppedAttributesCount || 0,
    })),
    droppedLinksCount: s.droppedLinksCount || 0,
    status: { message: (s.status && s.status.message) || '', code: (s.status && s.status.code) || 0 },
  };
  if (s.parentSpanId) out.parentSpanId = s.parentSpanId;
  return out;
}
