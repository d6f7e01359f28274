//! The OTLP trace messages read from JSON objects, field by field, into the prost types.

use super::primitives::{strings, Base64, Bool, Double, Enum, EnumNames, HexId, Int, List, Str};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A message read from a JSON object.
pub(crate) trait JsonMessage: Default {
    /// The proto message name, for errors.
    const NAME: &'static str;
    /// Reads the value of `key` from `map` into the message. Keys are matched in
    /// lowerCamelCase and snake_case; unknown keys are skipped.
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

/// Reads a message from a JSON object (or `null`, the empty message).
pub(crate) struct Msg<T>(pub T);

/// An object key, borrowed from the input when it has no escapes.
enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key::Owned(v))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de, T: JsonMessage> Deserialize<'de> for Msg<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: JsonMessage> Visitor<'de> for V<T> {
            type Value = Msg<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a JSON object ({})", T::NAME)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Msg<T>, E> {
                Ok(Msg(T::default()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Msg<T>, A::Error> {
                let mut message = T::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    message.read_field(key.as_str(), &mut map)?;
                }
                Ok(Msg(message))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Reads a value of type `W` and converts it.
fn value<'de, A: MapAccess<'de>, W: Deserialize<'de>, T>(
    map: &mut A,
    convert: impl FnOnce(W) -> T,
) -> Result<T, A::Error> {
    map.next_value::<W>().map(convert)
}

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(drop)
}

fn messages<T: JsonMessage>(list: List<Msg<T>>) -> Vec<T> {
    list.0.into_iter().map(|m| m.0).collect()
}

fn message<T: JsonMessage>(m: Msg<T>) -> Option<T> {
    Some(m.0)
}

impl JsonMessage for ExportTraceServiceRequest {
    const NAME: &'static str = "ExportTraceServiceRequest";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "resourceSpans" | "resource_spans" => self.resource_spans = value(map, messages)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for ResourceSpans {
    const NAME: &'static str = "ResourceSpans";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "resource" => self.resource = value(map, message)?,
            "scopeSpans" | "scope_spans" => self.scope_spans = value(map, messages)?,
            "schemaUrl" | "schema_url" => self.schema_url = value(map, |s: Str| s.0)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for Resource {
    const NAME: &'static str = "Resource";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "attributes" => self.attributes = value(map, messages)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                self.dropped_attributes_count = value(map, |n: Int<u32>| n.0)?
            }
            "entityRefs" | "entity_refs" => self.entity_refs = value(map, messages)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for EntityRef {
    const NAME: &'static str = "EntityRef";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "schemaUrl" | "schema_url" => self.schema_url = value(map, |s: Str| s.0)?,
            "type" => self.r#type = value(map, |s: Str| s.0)?,
            "idKeys" | "id_keys" => self.id_keys = value(map, strings)?,
            "descriptionKeys" | "description_keys" => self.description_keys = value(map, strings)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for ScopeSpans {
    const NAME: &'static str = "ScopeSpans";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "scope" => self.scope = value(map, message)?,
            "spans" => self.spans = value(map, messages)?,
            "schemaUrl" | "schema_url" => self.schema_url = value(map, |s: Str| s.0)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for InstrumentationScope {
    const NAME: &'static str = "InstrumentationScope";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "name" => self.name = value(map, |s: Str| s.0)?,
            "version" => self.version = value(map, |s: Str| s.0)?,
            "attributes" => self.attributes = value(map, messages)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                self.dropped_attributes_count = value(map, |n: Int<u32>| n.0)?
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// `Span.SpanKind` names.
pub(crate) struct SpanKindNames;
impl EnumNames for SpanKindNames {
    fn value_of(name: &str) -> Option<i32> {
        span::SpanKind::from_str_name(name).map(|k| k as i32)
    }
}

/// `Status.StatusCode` names.
pub(crate) struct StatusCodeNames;
impl EnumNames for StatusCodeNames {
    fn value_of(name: &str) -> Option<i32> {
        opentelemetry_proto::tonic::trace::v1::status::StatusCode::from_str_name(name)
            .map(|c| c as i32)
    }
}

impl JsonMessage for Span {
    const NAME: &'static str = "Span";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "traceId" | "trace_id" => self.trace_id = value(map, |id: HexId<16>| id.0)?,
            "spanId" | "span_id" => self.span_id = value(map, |id: HexId<8>| id.0)?,
            "traceState" | "trace_state" => self.trace_state = value(map, |s: Str| s.0)?,
            "parentSpanId" | "parent_span_id" => {
                self.parent_span_id = value(map, |id: HexId<8>| id.0)?
            }
            "flags" => self.flags = value(map, |n: Int<u32>| n.0)?,
            "name" => self.name = value(map, |s: Str| s.0)?,
            "kind" => self.kind = value(map, |e: Enum<SpanKindNames>| e.0)?,
            "startTimeUnixNano" | "start_time_unix_nano" => {
                self.start_time_unix_nano = value(map, |n: Int<u64>| n.0)?
            }
            "endTimeUnixNano" | "end_time_unix_nano" => {
                self.end_time_unix_nano = value(map, |n: Int<u64>| n.0)?
            }
            "attributes" => self.attributes = value(map, messages)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                self.dropped_attributes_count = value(map, |n: Int<u32>| n.0)?
            }
            "events" => self.events = value(map, messages)?,
            "droppedEventsCount" | "dropped_events_count" => {
                self.dropped_events_count = value(map, |n: Int<u32>| n.0)?
            }
            "links" => self.links = value(map, messages)?,
            "droppedLinksCount" | "dropped_links_count" => {
                self.dropped_links_count = value(map, |n: Int<u32>| n.0)?
            }
            "status" => self.status = value(map, message)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for span::Event {
    const NAME: &'static str = "Span.Event";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "timeUnixNano" | "time_unix_nano" => {
                self.time_unix_nano = value(map, |n: Int<u64>| n.0)?
            }
            "name" => self.name = value(map, |s: Str| s.0)?,
            "attributes" => self.attributes = value(map, messages)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                self.dropped_attributes_count = value(map, |n: Int<u32>| n.0)?
            }
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for span::Link {
    const NAME: &'static str = "Span.Link";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "traceId" | "trace_id" => self.trace_id = value(map, |id: HexId<16>| id.0)?,
            "spanId" | "span_id" => self.span_id = value(map, |id: HexId<8>| id.0)?,
            "traceState" | "trace_state" => self.trace_state = value(map, |s: Str| s.0)?,
            "attributes" => self.attributes = value(map, messages)?,
            "droppedAttributesCount" | "dropped_attributes_count" => {
                self.dropped_attributes_count = value(map, |n: Int<u32>| n.0)?
            }
            "flags" => self.flags = value(map, |n: Int<u32>| n.0)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for Status {
    const NAME: &'static str = "Status";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "message" => self.message = value(map, |s: Str| s.0)?,
            "code" => self.code = value(map, |e: Enum<StatusCodeNames>| e.0)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for KeyValue {
    const NAME: &'static str = "KeyValue";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "key" => self.key = value(map, |s: Str| s.0)?,
            "value" => self.value = value(map, message)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for AnyValue {
    const NAME: &'static str = "AnyValue";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        use any_value::Value as V;
        // A `null` member leaves the value unset, as an absent one would.
        let set = match key {
            "stringValue" | "string_value" => map
                .next_value::<Option<Str>>()?
                .map(|s| V::StringValue(s.0)),
            "boolValue" | "bool_value" => {
                map.next_value::<Option<Bool>>()?.map(|b| V::BoolValue(b.0))
            }
            "intValue" | "int_value" => map
                .next_value::<Option<Int<i64>>>()?
                .map(|n| V::IntValue(n.0)),
            "doubleValue" | "double_value" => map
                .next_value::<Option<Double>>()?
                .map(|d| V::DoubleValue(d.0)),
            "arrayValue" | "array_value" => map
                .next_value::<Option<Msg<ArrayValue>>>()?
                .map(|a| V::ArrayValue(a.0)),
            "kvlistValue" | "kvlist_value" => map
                .next_value::<Option<Msg<KeyValueList>>>()?
                .map(|l| V::KvlistValue(l.0)),
            "bytesValue" | "bytes_value" => map
                .next_value::<Option<Base64>>()?
                .map(|b| V::BytesValue(b.0)),
            _ => {
                skip(map)?;
                None
            }
        };
        if set.is_some() {
            self.value = set;
        }
        Ok(())
    }
}

impl JsonMessage for ArrayValue {
    const NAME: &'static str = "ArrayValue";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "values" => self.values = value(map, messages)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

impl JsonMessage for KeyValueList {
    const NAME: &'static str = "KeyValueList";
    fn read_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "values" => self.values = value(map, messages)?,
            _ => skip(map)?,
        }
        Ok(())
    }
}
