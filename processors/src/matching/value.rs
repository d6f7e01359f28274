//! Attribute values as the collector's pdata sees them: YAML config values turned into
//! OTLP `AnyValue`s (pdata's `FromRaw`), values rendered as strings (pdata's `AsString`),
//! and attribute lookup in a list of `KeyValue`s.

use teletrace_core::proto::tonic::common::v1::any_value::Value;
use teletrace_core::proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};

/// Converts a YAML config value into an OTLP `AnyValue`, as the collector's `FromRaw`
/// does for the values in its configs: strings, integers, floats, booleans, lists and
/// maps. `null` yields `None` (the collector treats a null `value` as "not set").
pub fn yaml_to_any_value(value: &serde_yaml::Value) -> Option<AnyValue> {
    let v = match value {
        serde_yaml::Value::Null => return None,
        serde_yaml::Value::Bool(b) => Value::BoolValue(*b),
        serde_yaml::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_yaml::Value::String(s) => Value::StringValue(s.clone()),
        serde_yaml::Value::Sequence(items) => Value::ArrayValue(ArrayValue {
            values: items
                .iter()
                .map(|i| yaml_to_any_value(i).unwrap_or_default())
                .collect(),
        }),
        serde_yaml::Value::Mapping(map) => Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: match k {
                        serde_yaml::Value::String(s) => s.clone(),
                        other => serde_yaml::to_string(other)
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    },
                    value: yaml_to_any_value(v),
                    ..Default::default()
                })
                .collect(),
        }),
        serde_yaml::Value::Tagged(tagged) => return yaml_to_any_value(&tagged.value),
    };
    Some(AnyValue { value: Some(v) })
}

/// A short name of the value's type, for messages (`Str`, `Int`, `Double`, ...).
pub fn type_name(value: &AnyValue) -> &'static str {
    match &value.value {
        None => "Empty",
        Some(Value::StringValue(_)) => "Str",
        Some(Value::BoolValue(_)) => "Bool",
        Some(Value::IntValue(_)) => "Int",
        Some(Value::DoubleValue(_)) => "Double",
        Some(Value::ArrayValue(_)) => "Slice",
        Some(Value::KvlistValue(_)) => "Map",
        Some(Value::BytesValue(_)) => "Bytes",
        Some(Value::StringValueStrindex(_)) => "StrIndex",
    }
}

/// The value of the attribute `key`, if present.
pub fn get<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    static EMPTY: AnyValue = AnyValue { value: None };
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.as_ref().unwrap_or(&EMPTY))
}

/// The value of the attribute `key` for changing in place, if present.
pub fn get_mut<'a>(attributes: &'a mut [KeyValue], key: &str) -> Option<&'a mut AnyValue> {
    attributes
        .iter_mut()
        .find(|kv| kv.key == key)
        .map(|kv| kv.value.get_or_insert_with(AnyValue::default))
}

/// Sets `key` to `value`, replacing the existing value or appending the attribute.
pub fn put(attributes: &mut Vec<KeyValue>, key: &str, value: AnyValue) {
    match attributes.iter_mut().find(|kv| kv.key == key) {
        Some(kv) => kv.value = Some(value),
        None => attributes.push(KeyValue {
            key: key.to_string(),
            value: Some(value),
            ..Default::default()
        }),
    }
}

/// A string `AnyValue`.
pub fn string_value(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(Value::StringValue(s.into())),
    }
}

/// The value as a string for matching, as the collector's attribute matcher renders it:
/// strings as they are, booleans, integers and doubles in their decimal form; `None` for
/// other types (which a regexp attribute match never matches).
pub fn scalar_string(value: &AnyValue) -> Option<std::borrow::Cow<'_, str>> {
    use std::borrow::Cow;
    match &value.value {
        Some(Value::StringValue(s)) => Some(Cow::Borrowed(s)),
        Some(Value::BoolValue(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Some(Value::IntValue(i)) => Some(Cow::Owned(i.to_string())),
        Some(Value::DoubleValue(d)) => Some(Cow::Owned(format_double(*d))),
        _ => None,
    }
}

/// The value rendered as a string like pdata's `AsString`: scalars in their plain form,
/// bytes in standard base64, lists and maps as JSON, an empty value as `""`.
pub fn as_string(value: &AnyValue) -> String {
    match &value.value {
        None => String::new(),
        Some(Value::BytesValue(b)) => base64(b),
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => to_json(value).to_string(),
        Some(_) => scalar_string(value)
            .map(|s| s.into_owned())
            .unwrap_or_default(),
    }
}

/// A double in Go's shortest `'f'` form: no exponent, `NaN`, `+Inf`, `-Inf`.
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        "NaN".into()
    } else if d.is_infinite() {
        if d > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{d}")
    }
}

fn to_json(value: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.value {
        None | Some(Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(Value::BytesValue(b)) => J::String(base64(b)),
        Some(Value::ArrayValue(a)) => J::Array(a.values.iter().map(to_json).collect()),
        Some(Value::KvlistValue(m)) => J::Object(
            m.values
                .iter()
                .map(|kv| {
                    let v = kv.value.as_ref().map_or(J::Null, to_json);
                    (kv.key.clone(), v)
                })
                .collect(),
        ),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> serde_yaml::Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn yaml_scalars_become_typed_values() {
        assert_eq!(
            yaml_to_any_value(&yaml("42")).unwrap().value,
            Some(Value::IntValue(42))
        );
        assert_eq!(
            yaml_to_any_value(&yaml("4.5")).unwrap().value,
            Some(Value::DoubleValue(4.5))
        );
        assert_eq!(
            yaml_to_any_value(&yaml("true")).unwrap().value,
            Some(Value::BoolValue(true))
        );
        assert_eq!(
            yaml_to_any_value(&yaml("\"42\"")).unwrap().value,
            Some(Value::StringValue("42".into()))
        );
        assert!(yaml_to_any_value(&yaml("null")).is_none());
        assert_eq!(
            as_string(&yaml_to_any_value(&yaml("[1, a]")).unwrap()),
            "[1,\"a\"]"
        );
    }

    #[test]
    fn renders_like_pdata() {
        assert_eq!(
            as_string(&AnyValue {
                value: Some(Value::DoubleValue(1.5))
            }),
            "1.5"
        );
        assert_eq!(
            as_string(&AnyValue {
                value: Some(Value::DoubleValue(3.0))
            }),
            "3"
        );
        assert_eq!(
            as_string(&AnyValue {
                value: Some(Value::BytesValue(b"hello".to_vec()))
            }),
            "aGVsbG8="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }
}
