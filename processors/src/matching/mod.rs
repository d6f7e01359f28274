//! `include` / `exclude` span selection shared by processors, with the OpenTelemetry
//! Collector's keys and rules (its `internal/filter` packages): `match_type` `strict` or
//! `regexp`, and `services`, `span_names`, `span_kinds`, `attributes`, `resources`,
//! `libraries`. Every property given must match; within `services`, `span_names` and
//! `span_kinds` one entry matching is enough; within `attributes`, `resources` and
//! `libraries` every entry must match. Regexps are unanchored searches, as Go's
//! `regexp.MatchString`.

pub mod value;

use regex::Regex;
use serde::Deserialize;
use teletrace_core::proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::Span;

/// The span kinds as the collector names them in `span_kinds`.
const SPAN_KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];

/// The collector's name of a span kind number (`SPAN_KIND_SERVER` for 2).
pub fn span_kind_name(kind: i32) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|k| SPAN_KIND_NAMES.get(k))
        .copied()
        .unwrap_or("SPAN_KIND_UNSPECIFIED")
}

/// One `include` or `exclude` block.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchProperties {
    /// `strict` (exact equality) or `regexp` (unanchored regular expression search).
    pub match_type: String,
    /// Accepted for compatibility: the collector's regexp cache settings.
    pub regexp: Option<RegexpConfig>,
    /// Service names (`service.name` of the resource); one must match.
    pub services: Vec<String>,
    /// Span names; one must match.
    pub span_names: Vec<String>,
    /// Span kinds (`SPAN_KIND_SERVER`, ...); one must match.
    pub span_kinds: Vec<String>,
    /// Span attributes; all must match.
    pub attributes: Vec<AttributeMatch>,
    /// Resource attributes; all must match.
    pub resources: Vec<AttributeMatch>,
    /// Instrumentation scopes (name and optional version); all must match.
    pub libraries: Vec<LibraryMatch>,
}

/// The collector's `regexp` block of a match, accepted so configs load; matching does not
/// need a cache here.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegexpConfig {
    /// Accepted, no effect.
    pub cacheenabled: bool,
    /// Accepted, no effect.
    pub cachemaxnumentries: u64,
}

/// An attribute to match: its key, and optionally its value (any value when absent).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeMatch {
    /// The attribute key; required.
    pub key: String,
    /// The value (`strict`: equal, type included) or pattern (`regexp`: a string).
    pub value: Option<serde_yaml::Value>,
}

/// An instrumentation scope to match.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryMatch {
    /// The scope name.
    pub name: String,
    /// The scope version; any version when absent.
    pub version: Option<String>,
}

/// A list of strings or patterns, one of which must match.
#[derive(Debug)]
enum StringSet {
    Strict(Vec<String>),
    Regexp(Vec<Regex>),
}

impl StringSet {
    fn new(match_type: &str, items: &[String], what: &str) -> Result<StringSet, String> {
        match match_type {
            "strict" => Ok(StringSet::Strict(items.to_vec())),
            "regexp" => items
                .iter()
                .map(|p| Regex::new(p).map_err(|e| format!("{what}: invalid regexp {p:?}: {e}")))
                .collect::<Result<_, _>>()
                .map(StringSet::Regexp),
            other => Err(format!(
                "match_type: unrecognized match_type {other:?}, valid types are: [regexp strict]"
            )),
        }
    }

    fn matches(&self, s: &str) -> bool {
        match self {
            StringSet::Strict(items) => items.iter().any(|i| i == s),
            StringSet::Regexp(res) => res.iter().any(|r| r.is_match(s)),
        }
    }
}

#[derive(Debug)]
enum ValueCheck {
    Exists,
    Equals(AnyValue),
    Pattern(Regex),
}

#[derive(Debug)]
struct AttributeMatcher {
    key: String,
    check: ValueCheck,
}

fn attribute_matchers(
    match_type: &str,
    list: &[AttributeMatch],
    what: &str,
) -> Result<Vec<AttributeMatcher>, String> {
    let mut out = Vec::with_capacity(list.len());
    for (i, a) in list.iter().enumerate() {
        if a.key.is_empty() {
            return Err(format!(
                "{what}[{i}].key: can't have empty key in the list of {what}"
            ));
        }
        let check = match a.value.as_ref().and_then(value::yaml_to_any_value) {
            None => ValueCheck::Exists,
            Some(v) => match match_type {
                "strict" => ValueCheck::Equals(v),
                "regexp" => match &v.value {
                    Some(teletrace_core::proto::tonic::common::v1::any_value::Value::StringValue(p)) => {
                        ValueCheck::Pattern(Regex::new(p).map_err(|e| {
                            format!("{what}[{i}].value: invalid regexp {p:?}: {e}")
                        })?)
                    }
                    _ => {
                        return Err(format!(
                            "{what}[{i}].value: match_type=regexp for {:?} only supports Str, but found {}",
                            a.key,
                            value::type_name(&v)
                        ))
                    }
                },
                other => {
                    return Err(format!(
                        "match_type: unrecognized match_type {other:?}, valid types are: [regexp strict]"
                    ))
                }
            },
        };
        out.push(AttributeMatcher {
            key: a.key.clone(),
            check,
        });
    }
    Ok(out)
}

fn attributes_match(matchers: &[AttributeMatcher], attributes: &[KeyValue]) -> bool {
    if matchers.is_empty() {
        return true;
    }
    matchers.iter().all(|m| {
        let Some(v) = value::get(attributes, &m.key) else {
            return false;
        };
        match &m.check {
            ValueCheck::Exists => true,
            ValueCheck::Equals(expected) => expected == v,
            ValueCheck::Pattern(re) => value::scalar_string(v).is_some_and(|s| re.is_match(&s)),
        }
    })
}

/// One compiled `include` or `exclude` block.
#[derive(Debug)]
pub struct PropertiesMatcher {
    services: Option<StringSet>,
    names: Option<StringSet>,
    kinds: Option<StringSet>,
    libraries: Vec<(StringSet, Option<StringSet>)>,
    attributes: Vec<AttributeMatcher>,
    resources: Vec<AttributeMatcher>,
}

impl PropertiesMatcher {
    /// Checks and compiles a block. Errors start with the key inside the block they are
    /// about (`span_names: invalid regexp ...`).
    pub fn new(p: &MatchProperties) -> Result<Self, String> {
        if p.services.is_empty()
            && p.span_names.is_empty()
            && p.attributes.is_empty()
            && p.libraries.is_empty()
            && p.resources.is_empty()
            && p.span_kinds.is_empty()
        {
            return Err(
                "at least one of \"services\", \"span_names\", \"span_kinds\", \"attributes\", \"libraries\" or \"resources\" must be specified"
                    .into(),
            );
        }
        if p.match_type == "strict" {
            if let Some(bad) = p
                .span_kinds
                .iter()
                .find(|k| !SPAN_KIND_NAMES[1..].contains(&k.as_str()))
            {
                return Err(format!(
                    "span_kinds: {bad:?} is not a span kind; with match_type=strict use one of {:?}",
                    &SPAN_KIND_NAMES[1..]
                ));
            }
        }
        let set = |items: &[String], what: &str| {
            if items.is_empty() {
                Ok(None)
            } else {
                StringSet::new(&p.match_type, items, what).map(Some)
            }
        };
        let mut libraries = Vec::with_capacity(p.libraries.len());
        for (i, l) in p.libraries.iter().enumerate() {
            let what = format!("libraries[{i}]");
            let name = StringSet::new(&p.match_type, std::slice::from_ref(&l.name), &what)?;
            let version = match &l.version {
                Some(v) => Some(StringSet::new(
                    &p.match_type,
                    std::slice::from_ref(v),
                    &what,
                )?),
                None => None,
            };
            libraries.push((name, version));
        }
        Ok(PropertiesMatcher {
            services: set(&p.services, "services")?,
            names: set(&p.span_names, "span_names")?,
            kinds: set(&p.span_kinds, "span_kinds")?,
            libraries,
            attributes: attribute_matchers(&p.match_type, &p.attributes, "attributes")?,
            resources: attribute_matchers(&p.match_type, &p.resources, "resources")?,
        })
    }

    /// True when the span, with its resource and scope, has every property of the block.
    pub fn matches(&self, resource: &Resource, scope: &InstrumentationScope, span: &Span) -> bool {
        if let Some(services) = &self.services {
            let service = value::get(&resource.attributes, "service.name")
                .map(value::as_string)
                .unwrap_or_else(|| "<nil-service-name>".into());
            if !services.matches(&service) {
                return false;
            }
        }
        if let Some(names) = &self.names {
            if !names.matches(&span.name) {
                return false;
            }
        }
        if let Some(kinds) = &self.kinds {
            if !kinds.matches(span_kind_name(span.kind)) {
                return false;
            }
        }
        for (name, version) in &self.libraries {
            if !name.matches(&scope.name) {
                return false;
            }
            if version.as_ref().is_some_and(|v| !v.matches(&scope.version)) {
                return false;
            }
        }
        attributes_match(&self.resources, &resource.attributes)
            && attributes_match(&self.attributes, &span.attributes)
    }
}

/// Compiled `include` and `exclude`: decides which spans a processor acts on.
#[derive(Debug, Default)]
pub struct SpanSelector {
    include: Option<PropertiesMatcher>,
    exclude: Option<PropertiesMatcher>,
}

impl SpanSelector {
    /// Compiles `include` and `exclude`. Errors carry the key path from the processor's
    /// config root (`include.span_names`) and a message.
    pub fn new(
        include: Option<&MatchProperties>,
        exclude: Option<&MatchProperties>,
    ) -> Result<Self, (String, String)> {
        let compile = |p: Option<&MatchProperties>, name: &str| {
            p.map(|p| {
                PropertiesMatcher::new(p).map_err(|e| match e.split_once(": ") {
                    Some((key, msg)) if !key.contains(' ') => {
                        (format!("{name}.{key}"), msg.to_string())
                    }
                    _ => (name.to_string(), e),
                })
            })
            .transpose()
        };
        Ok(SpanSelector {
            include: compile(include, "include")?,
            exclude: compile(exclude, "exclude")?,
        })
    }

    /// True when neither `include` nor `exclude` is set: every span is selected.
    pub fn selects_all(&self) -> bool {
        self.include.is_none() && self.exclude.is_none()
    }

    /// True when the processor should act on the span: it matches `include` (when set)
    /// and does not match `exclude` (when set).
    pub fn selects(&self, resource: &Resource, scope: &InstrumentationScope, span: &Span) -> bool {
        if let Some(include) = &self.include {
            if !include.matches(resource, scope, span) {
                return false;
            }
        }
        if let Some(exclude) = &self.exclude {
            if exclude.matches(resource, scope, span) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
