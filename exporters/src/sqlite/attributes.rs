//! The `spans.attributes` column: a span's attributes as one JSON array of
//! `[key, type, value]` (see migration 0002 for the value forms).
//!
//! The writer produces one canonical text for a given attribute (no spaces, the escapes
//! below, doubles in shortest round-trip form), so a search can test "this span has
//! attribute k = v" with a substring test on the column (`instr`) instead of parsing the
//! JSON: the triple's text cannot occur anywhere else, because every quote inside a
//! string is escaped.

use super::value::{any_json, SqlValue, BOOL, BYTES, DOUBLE, EMPTY, INT, MAP, SLICE, STR};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde::Deserialize;
use serde_json::Value as Json;
use std::fmt::Write as _;

/// Appends `text` as a JSON string: quotes, backslashes and control characters escaped,
/// as serde_json does (`\b \f \n \r \t`, otherwise `\u00xx`).
pub(crate) fn push_string(out: &mut String, text: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape: &str = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&text[plain..]);
    out.push('"');
}

/// Appends a double: shortest round-trip form (`1.5`, `42.0`, `1e300`), or a string for
/// NaN and the infinities.
fn push_double(out: &mut String, d: f64) {
    if d.is_nan() {
        out.push_str("\"NaN\"");
    } else if d.is_infinite() {
        out.push_str(if d > 0.0 { "\"Inf\"" } else { "\"-Inf\"" });
    } else {
        let mut buffer = ryu::Buffer::new();
        out.push_str(buffer.format_finite(d));
    }
}

/// The type name of an OTLP value.
fn type_of(value: Option<&Value>) -> &'static str {
    match value {
        Some(Value::StringValue(_)) => STR,
        Some(Value::IntValue(_)) => INT,
        Some(Value::DoubleValue(_)) => DOUBLE,
        Some(Value::BoolValue(_)) => BOOL,
        Some(Value::BytesValue(_)) => BYTES,
        Some(Value::ArrayValue(_)) => SLICE,
        Some(Value::KvlistValue(_)) => MAP,
        Some(Value::StringValueStrindex(_)) | None => EMPTY,
    }
}

/// Appends one `[key, type, value]` triple for an OTLP value; returns the type name.
fn push_any(out: &mut String, key: &str, value: Option<&AnyValue>) -> &'static str {
    let inner = value.and_then(|v| v.value.as_ref());
    let type_name = type_of(inner);
    out.push('[');
    push_string(out, key);
    out.push(',');
    push_string(out, type_name);
    out.push(',');
    match inner {
        Some(Value::StringValue(s)) => push_string(out, s),
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => push_double(out, *d),
        Some(Value::BoolValue(b)) => out.push_str(if *b { "true" } else { "false" }),
        Some(Value::BytesValue(b)) => {
            out.push('"');
            out.push_str(&super::value::hex(b));
            out.push('"');
        }
        Some(Value::ArrayValue(_) | Value::KvlistValue(_)) => {
            let text = value.map(any_json).unwrap_or(Json::Null).to_string();
            push_string(out, &text);
        }
        Some(Value::StringValueStrindex(_)) | None => out.push_str("null"),
    }
    out.push(']');
    type_name
}

/// The column text for a span's attributes (the first of repeated keys kept), and each
/// attribute written with its type.
pub(crate) fn encode(attributes: &[KeyValue]) -> (String, Vec<(&KeyValue, &'static str)>) {
    let mut out = String::with_capacity(2 + attributes.len() * 48);
    let mut written: Vec<(&KeyValue, &'static str)> = Vec::with_capacity(attributes.len());
    // Repeated keys are rare: a linear look for the usual handful, a set past that.
    let mut seen: Option<std::collections::HashSet<&str>> =
        (attributes.len() > 16).then(std::collections::HashSet::new);
    out.push('[');
    for kv in attributes {
        let repeated = match seen.as_mut() {
            Some(seen) => !seen.insert(kv.key.as_str()),
            None => written.iter().any(|(k, _)| k.key == kv.key),
        };
        if repeated {
            continue;
        }
        if !written.is_empty() {
            out.push(',');
        }
        let type_name = push_any(&mut out, &kv.key, kv.value.as_ref());
        written.push((kv, type_name));
    }
    out.push(']');
    (out, written)
}

/// `text` as it appears inside a JSON string in the column (escaped, no quotes).
pub(crate) fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    push_string(&mut out, text);
    out[1..out.len() - 1].to_string()
}

/// The text that opens any attribute `key` in the column: `["key",`.
pub(crate) fn key_prefix(key: &str) -> String {
    let mut out = String::from("[");
    push_string(&mut out, key);
    out.push(',');
    out
}

/// The exact triple text of attribute `key` with `type_name` and `value` in the form the
/// `span_attributes` view returns (text for Str, Bytes (hex), Slice and Map; 0/1 for
/// Bool). `None` when no stored attribute has that form (a non-integral number as Int).
pub(crate) fn triple(key: &str, type_name: &str, value: &SqlValue) -> Option<String> {
    let mut out = key_prefix(key);
    push_string(&mut out, type_name);
    out.push(',');
    match (type_name, value) {
        (STR | SLICE | MAP | BYTES, SqlValue::Text(t)) => push_string(&mut out, t),
        (INT, SqlValue::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        (INT, SqlValue::Real(d)) if d.fract() == 0.0 && d.abs() < 9.2e18 => {
            let _ = write!(out, "{}", *d as i64);
        }
        (DOUBLE, SqlValue::Int(i)) => push_double(&mut out, *i as f64),
        (DOUBLE, SqlValue::Real(d)) => push_double(&mut out, *d),
        (BOOL, SqlValue::Int(i)) => out.push_str(if *i != 0 { "true" } else { "false" }),
        _ => return None,
    }
    out.push(']');
    Some(out)
}

/// One stored attribute as the `span_attributes` view presents it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ViewRow {
    /// The attribute key.
    pub key: String,
    /// The type name.
    pub type_name: String,
    /// The value (`Null` for Empty and NaN).
    pub value: SqlValue,
}

#[derive(Deserialize)]
struct Triple(String, String, Json);

/// Parses a column value into view rows.
pub(crate) fn parse(text: &str) -> Result<Vec<ViewRow>, serde_json::Error> {
    let triples: Vec<Triple> = serde_json::from_str(text)?;
    Ok(triples
        .into_iter()
        .map(|Triple(key, type_name, value)| {
            let value = match value {
                Json::Null => SqlValue::Null,
                Json::Bool(b) => SqlValue::Int(i64::from(b)),
                Json::Number(n) => match n.as_i64() {
                    Some(i) if type_name != DOUBLE => SqlValue::Int(i),
                    _ => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                Json::String(s) if type_name == DOUBLE => match s.as_str() {
                    "Inf" => SqlValue::Real(f64::INFINITY),
                    "-Inf" => SqlValue::Real(f64::NEG_INFINITY),
                    _ => SqlValue::Null,
                },
                Json::String(s) => SqlValue::Text(s),
                other => SqlValue::Text(other.to_string()),
            };
            ViewRow {
                key,
                type_name,
                value,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn canonical_text_for_every_type() {
        let attributes = vec![
            kv("s", Value::StringValue("a \"q\" \\ \n\u{1}é".into())),
            kv("i", Value::IntValue(-42)),
            kv("d", Value::DoubleValue(1.5)),
            kv("whole", Value::DoubleValue(42.0)),
            kv("nan", Value::DoubleValue(f64::NAN)),
            kv("b", Value::BoolValue(true)),
            kv("x", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "arr",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("k", Value::StringValue("v".into()))],
                }),
            ),
            kv("s", Value::StringValue("second".into())),
        ];
        let (text, written) = encode(&attributes);
        assert_eq!(
            text,
            r#"[["s","Str","a \"q\" \\ \n\u0001é"],["i","Int",-42],["d","Double",1.5],["whole","Double",42.0],["nan","Double","NaN"],["b","Bool",true],["x","Bytes","dead"],["arr","Slice","[1]"],["map","Map","{\"k\":\"v\"}"]]"#
        );
        assert_eq!(written.len(), 9, "the repeated key keeps its first value");
        // serde_json reads what was written, and escapes strings the same way.
        let json: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(json[0][2], "a \"q\" \\ \n\u{1}é");
        assert_eq!(
            serde_json::to_string("a \"q\" \\ \n\u{1}é").unwrap(),
            r#""a \"q\" \\ \n\u0001é""#
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_first_value_in_long_lists_too() {
        let mut attributes: Vec<KeyValue> = (0..40)
            .map(|i| kv(&format!("k{i}"), Value::IntValue(i)))
            .collect();
        attributes.push(kv("k7", Value::IntValue(-1)));
        let (text, written) = encode(&attributes);
        assert_eq!(written.len(), 40);
        assert!(text.contains(r#"["k7","Int",7]"#) && !text.contains("-1"));
    }

    #[test]
    fn triples_match_the_encoding() {
        let (text, _) = encode(&[
            kv("code", Value::IntValue(200)),
            kv("ratio", Value::DoubleValue(0.1)),
            kv("ok", Value::BoolValue(false)),
        ]);
        for (type_name, value) in [
            (INT, SqlValue::Int(200)),
            (INT, SqlValue::Real(200.0)),
            (DOUBLE, SqlValue::Real(0.1)),
            (BOOL, SqlValue::Int(0)),
        ] {
            let key = match type_name {
                INT => "code",
                DOUBLE => "ratio",
                _ => "ok",
            };
            let t = triple(key, type_name, &value).unwrap();
            assert!(text.contains(&t), "{t} in {text}");
        }
        assert!(!text.contains(&triple("code", DOUBLE, &SqlValue::Int(200)).unwrap()));
        assert_eq!(triple("code", INT, &SqlValue::Real(1.5)), None);
        assert!(text.contains(&key_prefix("ratio")));
    }

    #[test]
    fn parse_gives_view_rows() {
        let (text, _) = encode(&[
            kv("d", Value::DoubleValue(2.0)),
            kv("inf", Value::DoubleValue(f64::INFINITY)),
            kv("b", Value::BoolValue(true)),
            kv("x", Value::BytesValue(vec![1])),
        ]);
        let rows = parse(&text).unwrap();
        assert_eq!(rows[0].value, SqlValue::Real(2.0));
        assert_eq!(rows[1].value, SqlValue::Real(f64::INFINITY));
        assert_eq!(rows[2].value, SqlValue::Int(1));
        assert_eq!(rows[3].value, SqlValue::Text("01".into()));
    }
}
