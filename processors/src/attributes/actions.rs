//! The attribute actions, checked and compiled from config, and applied to one attribute
//! list. Semantics follow the collector's `internal/coreinternal/attraction`.

use super::config::ActionConfig;
use crate::matching::value;
use regex::Regex;
use sha2::{Digest, Sha256};
use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::proto::tonic::common::v1::{AnyValue, KeyValue};

/// Where `insert`, `update` and `upsert` take their value from.
#[derive(Debug, Clone)]
enum Source {
    /// The configured `value`.
    Value(AnyValue),
    /// Another attribute of the same span (`from_attribute`).
    Attribute(String),
    /// The request context (`from_context`). The pipeline carries no request metadata,
    /// so it is never found and the action does nothing (as in the collector for a
    /// request without that metadata).
    Context,
}

/// The target of `convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvertTo {
    Int,
    Double,
    String,
}

/// One compiled action.
#[derive(Debug, Clone)]
enum Action {
    Insert {
        key: String,
        source: Source,
    },
    Update {
        key: String,
        source: Source,
    },
    Upsert {
        key: String,
        source: Source,
    },
    Delete {
        key: String,
        pattern: Option<Regex>,
    },
    Hash {
        key: String,
        pattern: Option<Regex>,
    },
    Extract {
        key: String,
        regex: Regex,
        names: Vec<String>,
    },
    Convert {
        key: String,
        to: ConvertTo,
    },
    ReplacePattern {
        key: String,
        regex: Regex,
        replacement: String,
    },
}

/// The compiled `actions` list.
#[derive(Debug, Clone)]
pub struct Actions(Vec<Action>);

type ConfigResult<T> = Result<T, (String, String)>;

const SOURCES: &str = "\"value\", \"from_attribute\", \"from_context\"";
const ACTIONS: &str = "insert, update, upsert, delete, hash, extract, convert, replace_pattern";

fn err<T>(i: usize, key: &str, message: impl Into<String>) -> ConfigResult<T> {
    let path = if key.is_empty() {
        format!("actions[{i}]")
    } else {
        format!("actions[{i}].{key}")
    };
    Err((path, message.into()))
}

impl Actions {
    /// Checks and compiles the configured actions, with the collector's rules on which
    /// keys each action needs and refuses. Errors name `actions[i].key`.
    pub fn compile(configs: &[ActionConfig]) -> ConfigResult<Actions> {
        configs
            .iter()
            .enumerate()
            .map(|(i, a)| compile_one(i, a))
            .collect::<Result<_, _>>()
            .map(Actions)
    }

    /// Applies every action in order to one attribute list.
    pub fn apply(&self, attributes: &mut Vec<KeyValue>) {
        for action in &self.0 {
            apply_one(action, attributes);
        }
    }
}

fn compile_regex(i: usize, pattern: &str) -> ConfigResult<Regex> {
    Regex::new(pattern).or_else(|e| err(i, "pattern", format!("invalid pattern {pattern:?}: {e}")))
}

fn compile_one(i: usize, a: &ActionConfig) -> ConfigResult<Action> {
    let name = a.action.to_lowercase();
    let value = a.value.as_ref().and_then(value::yaml_to_any_value);
    let sources = usize::from(value.is_some())
        + usize::from(!a.from_attribute.is_empty())
        + usize::from(!a.from_context.is_empty());
    let key = a.key.clone();
    let no_converted_type = || {
        if a.converted_type.is_empty() {
            Ok(())
        } else {
            err(
                i,
                "converted_type",
                format!("action {name:?} does not use \"converted_type\""),
            )
        }
    };
    match name.as_str() {
        "delete" | "hash" => {
            if a.key.is_empty() && a.pattern.is_empty() {
                return err(
                    i,
                    "key",
                    "missing required field: at least one of \"key\" and \"pattern\" must be set",
                );
            }
        }
        "" => return err(i, "action", "missing required field"),
        _ => {
            if a.key.is_empty() {
                return err(i, "key", "missing required field");
            }
        }
    }
    match name.as_str() {
        "insert" | "update" | "upsert" => {
            if sources == 0 {
                return err(i, "", format!("action {name:?} needs one of {SOURCES}"));
            }
            if sources > 1 {
                return err(i, "", format!("only one of {SOURCES} may be set"));
            }
            if !a.pattern.is_empty() {
                let message = format!("action {name:?} does not use \"pattern\"");
                return err(i, "pattern", message);
            }
            no_converted_type()?;
            let source = match value {
                Some(v) => Source::Value(v),
                None if !a.from_attribute.is_empty() => Source::Attribute(a.from_attribute.clone()),
                None => Source::Context,
            };
            Ok(match name.as_str() {
                "insert" => Action::Insert { key, source },
                "update" => Action::Update { key, source },
                _ => Action::Upsert { key, source },
            })
        }
        "delete" | "hash" => {
            if value.is_some() || !a.from_attribute.is_empty() {
                let message =
                    format!("action {name:?} does not use \"value\" or \"from_attribute\"");
                return err(i, "", message);
            }
            no_converted_type()?;
            let pattern = if a.pattern.is_empty() {
                None
            } else {
                Some(compile_regex(i, &a.pattern)?)
            };
            Ok(if name == "delete" {
                Action::Delete { key, pattern }
            } else {
                Action::Hash { key, pattern }
            })
        }
        "extract" => {
            if sources > 0 {
                return err(i, "", format!("action \"extract\" does not use {SOURCES}"));
            }
            if a.pattern.is_empty() {
                return err(
                    i,
                    "pattern",
                    "missing required field for action \"extract\"",
                );
            }
            no_converted_type()?;
            let regex = compile_regex(i, &a.pattern)?;
            let names: Vec<String> = regex
                .capture_names()
                .skip(1)
                .map(|n| n.unwrap_or_default().to_string())
                .collect();
            if names.is_empty() {
                return err(i, "pattern", "contains no named matcher groups");
            }
            if names.iter().any(String::is_empty) {
                let message = "contains an unnamed matcher group; all groups must be named";
                return err(i, "pattern", message);
            }
            Ok(Action::Extract { key, regex, names })
        }
        "convert" => {
            if sources > 0 || !a.pattern.is_empty() {
                let message = format!("action \"convert\" does not use {SOURCES} or \"pattern\"");
                return err(i, "", message);
            }
            let to = match a.converted_type.as_str() {
                "int" => ConvertTo::Int,
                "double" => ConvertTo::Double,
                "string" => ConvertTo::String,
                "" => {
                    let message = "missing required field for action \"convert\"";
                    return err(i, "converted_type", message);
                }
                other => {
                    return err(
                        i,
                        "converted_type",
                        format!("invalid value {other:?}: expected int, double or string"),
                    )
                }
            };
            Ok(Action::Convert { key, to })
        }
        "replace_pattern" => {
            if !a.from_attribute.is_empty() || !a.from_context.is_empty() {
                let message = "action \"replace_pattern\" does not use \"from_attribute\" or \"from_context\"";
                return err(i, "", message);
            }
            if a.pattern.is_empty() {
                let message = "missing required field for action \"replace_pattern\"";
                return err(i, "pattern", message);
            }
            no_converted_type()?;
            let replacement = match &value.and_then(|v| v.value) {
                Some(Value::StringValue(s)) => s.clone(),
                _ => {
                    let message =
                        "action \"replace_pattern\" needs the replacement string in \"value\"";
                    return err(i, "value", message);
                }
            };
            Ok(Action::ReplacePattern {
                key,
                regex: compile_regex(i, &a.pattern)?,
                replacement,
            })
        }
        other => err(
            i,
            "action",
            format!("unsupported action {other:?}: expected one of {ACTIONS}"),
        ),
    }
}

fn source_value(source: &Source, attributes: &[KeyValue]) -> Option<AnyValue> {
    match source {
        Source::Value(v) => Some(v.clone()),
        Source::Attribute(from) => value::get(attributes, from).cloned(),
        Source::Context => None,
    }
}

fn apply_one(action: &Action, attributes: &mut Vec<KeyValue>) {
    match action {
        Action::Insert { key, source } => {
            if value::get(attributes, key).is_none() {
                if let Some(v) = source_value(source, attributes) {
                    value::put(attributes, key, v);
                }
            }
        }
        Action::Update { key, source } => {
            if value::get(attributes, key).is_some() {
                if let Some(v) = source_value(source, attributes) {
                    value::put(attributes, key, v);
                }
            }
        }
        Action::Upsert { key, source } => {
            if let Some(v) = source_value(source, attributes) {
                value::put(attributes, key, v);
            }
        }
        Action::Delete { key, pattern } => {
            attributes.retain(|kv| {
                kv.key != *key && !pattern.as_ref().is_some_and(|p| p.is_match(&kv.key))
            });
        }
        Action::Hash { key, pattern } => {
            // As in the collector: the key first, then every key the pattern matches (a
            // key matched by both is hashed twice).
            if let Some(v) = value::get_mut(attributes, key) {
                hash_value(v);
            }
            if let Some(p) = pattern {
                for kv in attributes.iter_mut().filter(|kv| p.is_match(&kv.key)) {
                    hash_value(kv.value.get_or_insert_with(AnyValue::default));
                }
            }
        }
        Action::Extract { key, regex, names } => {
            let Some(Value::StringValue(s)) =
                value::get(attributes, key).and_then(|v| v.value.as_ref())
            else {
                return;
            };
            let Some(caps) = regex.captures(s) else {
                return;
            };
            let extracted: Vec<(usize, String)> = (1..=names.len())
                .map(|g| (g, caps.get(g).map_or("", |m| m.as_str()).to_string()))
                .collect();
            for (g, text) in extracted {
                value::put(attributes, &names[g - 1], value::string_value(text));
            }
        }
        Action::Convert { key, to } => {
            if let Some(v) = value::get_mut(attributes, key) {
                convert_value(v, *to);
            }
        }
        Action::ReplacePattern {
            key,
            regex,
            replacement,
        } => {
            if let Some(AnyValue {
                value: Some(Value::StringValue(s)),
            }) = value::get_mut(attributes, key)
            {
                if let std::borrow::Cow::Owned(replaced) =
                    regex.replace_all(s, replacement.as_str())
                {
                    *s = replaced;
                }
            }
        }
    }
}

/// Replaces the value with the hex SHA-256 of its bytes, as the collector encodes them:
/// a string's UTF-8 bytes, a boolean as one byte 1/0, an int or double as 8 little-endian
/// bytes. Other types become the empty string.
pub fn hash_value(v: &mut AnyValue) {
    let bytes: Option<Vec<u8>> = match &v.value {
        Some(Value::StringValue(s)) => Some(s.as_bytes().to_vec()),
        Some(Value::BoolValue(b)) => Some(vec![u8::from(*b)]),
        Some(Value::IntValue(i)) => Some(i.to_le_bytes().to_vec()),
        Some(Value::DoubleValue(d)) => Some(d.to_bits().to_le_bytes().to_vec()),
        _ => None,
    };
    let hashed = match bytes {
        Some(b) if !b.is_empty() => hex::encode(Sha256::digest(&b)),
        _ => String::new(),
    };
    v.value = Some(Value::StringValue(hashed));
}

fn convert_value(v: &mut AnyValue, to: ConvertTo) {
    let new = match (to, &v.value) {
        (ConvertTo::String, Some(Value::StringValue(_))) => return,
        (ConvertTo::String, _) => Value::StringValue(value::as_string(v)),
        (ConvertTo::Int, Some(Value::DoubleValue(d))) => Value::IntValue(*d as i64),
        (ConvertTo::Int, Some(Value::BoolValue(b))) => Value::IntValue(i64::from(*b)),
        (ConvertTo::Int, Some(Value::StringValue(s))) => match s.parse::<i64>() {
            Ok(n) => Value::IntValue(n),
            Err(_) => return,
        },
        (ConvertTo::Double, Some(Value::IntValue(i))) => Value::DoubleValue(*i as f64),
        (ConvertTo::Double, Some(Value::BoolValue(b))) => {
            Value::DoubleValue(if *b { 1.0 } else { 0.0 })
        }
        (ConvertTo::Double, Some(Value::StringValue(s))) => match s.parse::<f64>() {
            Ok(n) => Value::DoubleValue(n),
            Err(_) => return,
        },
        _ => return,
    };
    v.value = Some(new);
}
