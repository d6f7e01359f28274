//! Tag names of the Teletrace v1 API and where each lives in the schema.

use crate::sqlite::batch::Source;
use teletrace_core::storage::StorageError;

/// How a `spans` column compares and prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    /// Free text.
    Text,
    /// A lowercase hex ID (values are lowercased before comparing).
    HexId,
    /// An integer (times, counts, duration).
    Int,
    /// A span kind name (`Server`; also matched from `SPAN_KIND_SERVER` or `2`).
    Kind,
    /// A status code name (`Error`; also matched from `STATUS_CODE_ERROR` or `2`).
    Status,
}

/// A tag, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tag {
    /// A column of `spans`.
    Span { column: &'static str, kind: Column },
    /// An attribute of the span, its resource, scope, events or links.
    Attribute { source: Source, key: String },
    /// A column of `scopes` (`name`, `version`).
    Scope { column: &'static str },
    /// `span.events.name`.
    EventName,
}

/// The fixed tags, with their column and the type name `tags` reports.
pub(crate) const FIXED: &[(&str, &str, Column, &str)] = &[
    ("span.spanId", "span_id", Column::HexId, "Str"),
    ("span.traceId", "trace_id", Column::HexId, "Str"),
    ("span.traceState", "trace_state", Column::Text, "Str"),
    ("span.parentSpanId", "parent_span_id", Column::HexId, "Str"),
    ("span.name", "name", Column::Text, "Str"),
    ("span.kind", "kind", Column::Kind, "Str"),
    (
        "span.startTimeUnixNano",
        "start_time_unix_nano",
        Column::Int,
        "Int",
    ),
    (
        "span.endTimeUnixNano",
        "end_time_unix_nano",
        Column::Int,
        "Int",
    ),
    (
        "span.droppedAttributesCount",
        "dropped_span_attributes_count",
        Column::Int,
        "Int",
    ),
    (
        "span.status.message",
        "span_status_message",
        Column::Text,
        "Str",
    ),
    (
        "span.status.code",
        "span_status_code",
        Column::Status,
        "Str",
    ),
    (
        "span.droppedResourceAttributesCount",
        "dropped_resource_attributes_count",
        Column::Int,
        "Int",
    ),
    (
        "span.droppedEventsCount",
        "dropped_events_count",
        Column::Int,
        "Int",
    ),
    (
        "span.droppedLinksCount",
        "dropped_links_count",
        Column::Int,
        "Int",
    ),
    (
        "externalFields.durationNano",
        "duration",
        Column::Int,
        "Int",
    ),
    (
        "externalFields.ingestionTimeUnixNano",
        "ingestion_time_unix_nano",
        Column::Int,
        "Int",
    ),
];

/// Other fixed tags `tags` lists: (name, type).
pub(crate) const FIXED_OTHER: &[(&str, &str)] = &[
    ("scope.name", "Str"),
    ("scope.version", "Str"),
    ("span.events.name", "Str"),
];

/// Names the Teletrace sqlite reader accepted for the same columns.
const ALIASES: &[(&str, &str)] = &[
    ("span.id", "span.spanId"),
    ("span.parentId", "span.parentSpanId"),
    ("span.durationNano", "externalFields.durationNano"),
];

/// Attribute tag prefixes and the table each reads.
pub(crate) const PREFIXES: &[(&str, Source)] = &[
    ("span.attributes.", Source::Span),
    ("resource.attributes.", Source::Resource),
    ("scope.attributes.", Source::Scope),
    ("span.events.attributes.", Source::Event),
    ("span.links.attributes.", Source::Link),
];

/// The tag-name prefix of attributes from `source`.
pub(crate) fn prefix(source: Source) -> &'static str {
    PREFIXES
        .iter()
        .find(|(_, s)| *s == source)
        .map_or("", |(p, _)| p)
}

impl Tag {
    /// Resolves a tag name; unknown names are a bad request.
    pub(crate) fn parse(name: &str) -> Result<Tag, StorageError> {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, real)| real);
        if let Some((_, column, kind, _)) = FIXED.iter().find(|(n, ..)| *n == name) {
            return Ok(Tag::Span {
                column,
                kind: *kind,
            });
        }
        match name {
            "scope.name" => return Ok(Tag::Scope { column: "name" }),
            "scope.version" => return Ok(Tag::Scope { column: "version" }),
            "span.events.name" => return Ok(Tag::EventName),
            _ => {}
        }
        for (prefix, source) in PREFIXES {
            if let Some(key) = name.strip_prefix(prefix) {
                if key.is_empty() {
                    break;
                }
                return Ok(Tag::Attribute {
                    source: *source,
                    key: key.to_string(),
                });
            }
        }
        Err(StorageError::BadRequest(format!("unknown tag {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names() {
        assert_eq!(
            Tag::parse("span.attributes.http.route").unwrap(),
            Tag::Attribute {
                source: Source::Span,
                key: "http.route".into()
            }
        );
        assert_eq!(
            Tag::parse("span.events.attributes.exception.type").unwrap(),
            Tag::Attribute {
                source: Source::Event,
                key: "exception.type".into()
            }
        );
        assert_eq!(
            Tag::parse("externalFields.durationNano").unwrap(),
            Tag::Span {
                column: "duration",
                kind: Column::Int
            }
        );
        assert_eq!(
            Tag::parse("span.parentId").unwrap(),
            Tag::parse("span.parentSpanId").unwrap()
        );
        assert!(Tag::parse("span.attributes.").is_err());
        assert!(Tag::parse("spans; DROP TABLE spans").is_err());
    }
}
