//! The index template installed at start: an explicit mapping, so that Elasticsearch's
//! dynamic mapping never guesses a type that a later span contradicts (which would
//! refuse that span).
//!
//! - IDs, names, enums: `keyword`; nanosecond times and durations: `long`; `@timestamp`:
//!   `date_nanos` (what searches and Kibana filter on).
//! - Attributes (`*attributes.*`): `subobjects: false`, so `http.request` and
//!   `http.request.method` can both exist; strings and booleans as `keyword`, integers as
//!   `long`, doubles as `double`. `index.mapping.ignore_malformed` keeps a span whose
//!   attribute has another type than the first one seen (the value stays in `_source`,
//!   unindexed), and fields past the field limit are kept unindexed too.

use super::config::MappingMode;
use serde_json::{json, Value};

/// Bumped when the template body changes; stored in `_meta.version`.
pub const TEMPLATE_VERSION: u64 = 1;

fn kw() -> Value {
    json!({"type": "keyword", "ignore_above": 1024})
}

fn long() -> Value {
    json!({"type": "long"})
}

fn attributes() -> Value {
    json!({"type": "object", "subobjects": false})
}

/// Attribute values keep the type of their JSON value; strings and booleans are keywords.
fn dynamic_templates() -> Value {
    let rule = |name: &str, match_type: &str, mapping: Value| json!({ name: {"path_match": "*attributes.*", "match_mapping_type": match_type, "mapping": mapping} });
    json!([
        rule("attributes_strings", "string", kw()),
        rule("attributes_booleans", "boolean", json!({"type": "keyword"})),
        rule("attributes_longs", "long", long()),
        rule("attributes_doubles", "double", json!({"type": "double"})),
        {"strings_as_keywords": {"match_mapping_type": "string", "mapping": kw()}},
    ])
}

fn teletrace_properties() -> Value {
    json!({
        "@timestamp": {"type": "date_nanos"},
        "resource": {"properties": {
            "attributes": attributes(),
            "droppedAttributesCount": long(),
        }},
        "scope": {"properties": {
            "name": kw(),
            "version": kw(),
            "attributes": attributes(),
            "droppedAttributesCount": long(),
        }},
        "span": {"properties": {
            "traceId": kw(),
            "spanId": kw(),
            "traceState": kw(),
            "parentSpanId": kw(),
            "name": kw(),
            "kind": {"type": "integer"},
            "startTimeUnixNano": long(),
            "endTimeUnixNano": long(),
            "attributes": attributes(),
            "droppedAttributesCount": long(),
            "events": {"properties": {
                "timeUnixNano": long(),
                "name": kw(),
                "attributes": attributes(),
                "droppedAttributesCount": long(),
            }},
            "droppedEventsCount": long(),
            "links": {"properties": {
                "traceId": kw(),
                "spanId": kw(),
                "traceState": kw(),
                "attributes": attributes(),
                "droppedAttributesCount": long(),
            }},
            "droppedLinksCount": long(),
            "status": {"properties": {
                "message": kw(),
                "code": {"type": "integer"},
            }},
        }},
        "externalFields": {"properties": {"durationNano": long()}},
        "ingestionTimeUnixNano": long(),
    })
}

fn otel_properties() -> Value {
    let scope_or_resource = |extra: Value| {
        let mut props = json!({
            "schema_url": kw(),
            "attributes": attributes(),
            "dropped_attributes_count": long(),
        });
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({ "properties": props })
    };
    json!({
        "@timestamp": {"type": "date_nanos"},
        "data_stream": {"properties": {
            "type": {"type": "constant_keyword"},
            "dataset": {"type": "constant_keyword"},
            "namespace": {"type": "constant_keyword"},
        }},
        "trace_id": kw(),
        "span_id": kw(),
        "trace_state": kw(),
        "parent_span_id": kw(),
        "name": kw(),
        "kind": kw(),
        "duration": long(),
        "event_name": kw(),
        "attributes": attributes(),
        "dropped_attributes_count": long(),
        "dropped_events_count": long(),
        "links": {"properties": {
            "trace_id": kw(),
            "span_id": kw(),
            "trace_state": kw(),
            "attributes": attributes(),
            "dropped_attributes_count": long(),
        }},
        "dropped_links_count": long(),
        "status": {"properties": {"message": kw(), "code": kw()}},
        "resource": scope_or_resource(json!({})),
        "scope": scope_or_resource(json!({"name": kw(), "version": kw()})),
    })
}

/// The body of `PUT _index_template/<name>` for `index` in `mode`. A data stream name
/// gets `data_stream: {}` so Elasticsearch creates the stream on the first write.
pub fn body(mode: MappingMode, index: &str, data_stream: bool) -> Value {
    let properties = match mode {
        MappingMode::Teletrace => teletrace_properties(),
        MappingMode::Otel => otel_properties(),
    };
    let mode_name = match mode {
        MappingMode::Teletrace => "teletrace",
        MappingMode::Otel => "otel",
    };
    let mut template = json!({
        "index_patterns": [index],
        // Above Elasticsearch's built-in `traces-*-*` templates (100..150), so the exact
        // name configured here wins.
        "priority": 500,
        "_meta": {
            "managed_by": "teletrace",
            "mapping_mode": mode_name,
            "version": TEMPLATE_VERSION,
        },
        "template": {
            "settings": {
                "index.mapping.ignore_malformed": true,
                "index.mapping.total_fields.limit": 10000,
                "index.mapping.total_fields.ignore_dynamic_beyond_limit": true,
            },
            "mappings": {
                "dynamic": true,
                "date_detection": false,
                "numeric_detection": false,
                "dynamic_templates": dynamic_templates(),
                "properties": properties,
            },
        },
    });
    if data_stream {
        template["data_stream"] = json!({});
    }
    template
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_types_for_ids_times_and_search_date() {
        let t = body(MappingMode::Teletrace, "teletrace-traces", false);
        let props = &t["template"]["mappings"]["properties"];
        assert_eq!(props["span"]["properties"]["traceId"]["type"], "keyword");
        assert_eq!(
            props["span"]["properties"]["startTimeUnixNano"]["type"],
            "long"
        );
        assert_eq!(
            props["externalFields"]["properties"]["durationNano"]["type"],
            "long"
        );
        assert_eq!(props["@timestamp"]["type"], "date_nanos");
        assert!(t.get("data_stream").is_none());
        let o = body(MappingMode::Otel, "traces-generic.otel-default", true);
        assert_eq!(o["index_patterns"][0], "traces-generic.otel-default");
        assert_eq!(
            o["template"]["mappings"]["properties"]["duration"]["type"],
            "long"
        );
        assert!(o["data_stream"].is_object());
    }
}
