//! Attribute values between OTLP `AnyValue` and the `value` / `type` columns of the
//! attribute tables, and the small encodings shared by writer and reader (hex IDs, span
//! kind and status code names).
//!
//! `type` is the pdata type name Teletrace wrote: `Str`, `Int`, `Double`, `Bool`,
//! `Bytes`, `Slice`, `Map` (and `Empty` for a value-less attribute). `value` holds TEXT,
//! INTEGER (also `Bool`, as 0/1), REAL, BLOB (`Bytes`), or JSON text (`Slice`, `Map`).

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use serde_json::Value as Json;

/// A value as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlValue {
    /// NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(String),
    /// BLOB.
    Blob(Vec<u8>),
}

/// The `type` column for a string.
pub(crate) const STR: &str = "Str";
/// The `type` column for an integer.
pub(crate) const INT: &str = "Int";
/// The `type` column for a double.
pub(crate) const DOUBLE: &str = "Double";
/// The `type` column for a boolean.
pub(crate) const BOOL: &str = "Bool";
/// The `type` column for bytes.
pub(crate) const BYTES: &str = "Bytes";
/// The `type` column for an array (stored as JSON text).
pub(crate) const SLICE: &str = "Slice";
/// The `type` column for a key-value list (stored as a JSON object).
pub(crate) const MAP: &str = "Map";
/// The `type` column for an attribute without a value.
pub(crate) const EMPTY: &str = "Empty";

/// Splits an attribute value into its `type` name and stored value.
pub(crate) fn encode_any(value: Option<&AnyValue>) -> (&'static str, SqlValue) {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => (STR, SqlValue::Text(s.clone())),
        Some(Value::IntValue(i)) => (INT, SqlValue::Int(*i)),
        Some(Value::DoubleValue(d)) => (DOUBLE, SqlValue::Real(*d)),
        Some(Value::BoolValue(b)) => (BOOL, SqlValue::Int(i64::from(*b))),
        Some(Value::BytesValue(b)) => (BYTES, SqlValue::Blob(b.clone())),
        Some(Value::ArrayValue(a)) => (SLICE, SqlValue::Text(array_json(a).to_string())),
        Some(Value::KvlistValue(m)) => (MAP, SqlValue::Text(kvlist_json(m).to_string())),
        Some(Value::StringValueStrindex(_)) | None => (EMPTY, SqlValue::Null),
    }
}

/// Rebuilds an attribute value from its `type` name and stored value. A value that does
/// not fit its type is returned as the closest thing (text as a string, and so on).
pub(crate) fn decode_any(type_name: &str, value: SqlValue) -> AnyValue {
    let value = match (type_name, value) {
        (_, SqlValue::Null) if type_name == DOUBLE => Some(Value::DoubleValue(f64::NAN)),
        (_, SqlValue::Null) => None,
        (BOOL, SqlValue::Int(i)) => Some(Value::BoolValue(i != 0)),
        (SLICE | MAP, SqlValue::Text(text)) => match serde_json::from_str::<Json>(&text) {
            Ok(json) => json_to_any(&json).value,
            Err(_) => Some(Value::StringValue(text)),
        },
        (DOUBLE, SqlValue::Int(i)) => Some(Value::DoubleValue(i as f64)),
        (DOUBLE, SqlValue::Text(t)) => {
            Some(parse_double(&t).map_or(Value::StringValue(t), Value::DoubleValue))
        }
        (_, SqlValue::Int(i)) => Some(Value::IntValue(i)),
        (_, SqlValue::Real(d)) => Some(Value::DoubleValue(d)),
        (_, SqlValue::Text(t)) => Some(Value::StringValue(t)),
        (_, SqlValue::Blob(b)) => Some(Value::BytesValue(b)),
    };
    AnyValue { value }
}

/// Parses a double as SQLite's `printf('%!.17g')` writes it (`Inf`, `-Inf` included).
pub(crate) fn parse_double(text: &str) -> Option<f64> {
    match text {
        "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// An attribute value as JSON, for arrays and maps stored as JSON text. Bytes become
/// base64 strings (as in OTLP/JSON); NaN and infinities become strings.
pub(crate) fn any_json(value: &AnyValue) -> Json {
    match &value.value {
        Some(Value::StringValue(s)) => Json::String(s.clone()),
        Some(Value::IntValue(i)) => Json::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(d.to_string())),
        Some(Value::BoolValue(b)) => Json::Bool(*b),
        Some(Value::BytesValue(b)) => {
            Json::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Some(Value::ArrayValue(a)) => array_json(a),
        Some(Value::KvlistValue(m)) => kvlist_json(m),
        Some(Value::StringValueStrindex(_)) | None => Json::Null,
    }
}

fn array_json(array: &ArrayValue) -> Json {
    Json::Array(array.values.iter().map(any_json).collect())
}

fn kvlist_json(list: &KeyValueList) -> Json {
    let mut map = serde_json::Map::new();
    for kv in &list.values {
        map.insert(
            kv.key.clone(),
            kv.value.as_ref().map_or(Json::Null, any_json),
        );
    }
    Json::Object(map)
}

/// The inverse of [`any_json`] (up to bytes, which come back as strings).
pub(crate) fn json_to_any(json: &Json) -> AnyValue {
    let value = match json {
        Json::Null => None,
        Json::Bool(b) => Some(Value::BoolValue(*b)),
        Json::Number(n) => Some(match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        }),
        Json::String(s) => Some(Value::StringValue(s.clone())),
        Json::Array(items) => Some(Value::ArrayValue(ArrayValue {
            values: items.iter().map(json_to_any).collect(),
        })),
        Json::Object(map) => Some(Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(json_to_any(v)),
                    ..Default::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

/// A stored attribute value as the JSON the query API returns (tag values).
pub(crate) fn sql_value_json(type_name: &str, value: SqlValue) -> Json {
    match (type_name, value) {
        (_, SqlValue::Null) => Json::Null,
        (BOOL, SqlValue::Int(i)) => Json::Bool(i != 0),
        (_, SqlValue::Int(i)) => Json::from(i),
        (_, SqlValue::Real(d)) => serde_json::Number::from_f64(d)
            .map(Json::Number)
            .unwrap_or_else(|| Json::String(d.to_string())),
        (_, SqlValue::Text(t)) => Json::String(t),
        (_, SqlValue::Blob(b)) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A stored type name as the static string of its constant (`None` for an unknown name).
pub(crate) fn static_type(name: &str) -> Option<&'static str> {
    [STR, INT, DOUBLE, BOOL, BYTES, SLICE, MAP, EMPTY]
        .into_iter()
        .find(|t| *t == name)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Bytes from hex (either case); `None` when `text` is not hex.
pub(crate) fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// Span kind names as stored in `spans.kind`, indexed by the OTLP enum value.
pub(crate) const KINDS: [&str; 6] = [
    "Unspecified",
    "Internal",
    "Server",
    "Client",
    "Producer",
    "Consumer",
];

/// Status code names as stored in `spans.span_status_code`, indexed by the OTLP value.
pub(crate) const STATUS_CODES: [&str; 3] = ["Unset", "Ok", "Error"];

/// The stored name of an OTLP span kind (`Unspecified` for unknown values).
pub(crate) fn kind_name(kind: i32) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|k| KINDS.get(k))
        .copied()
        .unwrap_or(KINDS[0])
}

/// The OTLP value of a stored span kind name (also accepts `SPAN_KIND_SERVER` style).
pub(crate) fn kind_value(name: &str) -> Option<i32> {
    let name = strip_prefix_ignore_case(name, "SPAN_KIND_");
    KINDS
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .and_then(|p| i32::try_from(p).ok())
}

/// The stored name of an OTLP status code (`Unset` for unknown values).
pub(crate) fn status_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|c| STATUS_CODES.get(c))
        .copied()
        .unwrap_or(STATUS_CODES[0])
}

/// The OTLP value of a stored status code name (also accepts `STATUS_CODE_OK` style).
pub(crate) fn status_value(name: &str) -> Option<i32> {
    let name = strip_prefix_ignore_case(name, "STATUS_CODE_");
    STATUS_CODES
        .iter()
        .position(|k| k.eq_ignore_ascii_case(name))
        .and_then(|p| i32::try_from(p).ok())
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> &'a str {
    match text.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &text[prefix.len()..],
        _ => text,
    }
}

/// FNV-1a, 128 bits: a stable content hash (the same across runs and builds) for IDs
/// derived from content (resource attribute IDs, scope IDs).
#[derive(Clone, Copy)]
pub(crate) struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013b;

    /// A fresh hasher.
    pub(crate) fn new() -> Self {
        Fnv128(Self::OFFSET)
    }

    /// Feeds bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Feeds a length-prefixed field, so that ("ab", "c") and ("a", "bc") differ.
    pub(crate) fn field(&mut self, bytes: &[u8]) {
        self.write(&(bytes.len() as u64).to_le_bytes());
        self.write(bytes);
    }

    /// Feeds a stored value with its type.
    pub(crate) fn value(&mut self, type_name: &str, value: &SqlValue) {
        self.field(type_name.as_bytes());
        match value {
            SqlValue::Null => self.field(b""),
            SqlValue::Int(i) => self.field(&i.to_le_bytes()),
            SqlValue::Real(d) => self.field(&d.to_bits().to_le_bytes()),
            SqlValue::Text(t) => self.field(t.as_bytes()),
            SqlValue::Blob(b) => self.field(b),
        }
    }

    /// The hash.
    pub(crate) fn finish(self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(v: Value) -> AnyValue {
        AnyValue { value: Some(v) }
    }

    #[test]
    fn every_type_round_trips() {
        let nested = any(Value::KvlistValue(KeyValueList {
            values: vec![KeyValue {
                key: "a".into(),
                value: Some(any(Value::ArrayValue(ArrayValue {
                    values: vec![
                        any(Value::IntValue(1)),
                        any(Value::DoubleValue(1.0)),
                        any(Value::BoolValue(true)),
                    ],
                }))),
                ..Default::default()
            }],
        }));
        for (value, type_name) in [
            (any(Value::StringValue("x'y".into())), STR),
            (any(Value::IntValue(i64::MIN)), INT),
            (any(Value::DoubleValue(0.1)), DOUBLE),
            (any(Value::BoolValue(false)), BOOL),
            (any(Value::BytesValue(vec![0, 255])), BYTES),
            (
                any(Value::ArrayValue(ArrayValue {
                    values: vec![any(Value::StringValue("s".into()))],
                })),
                SLICE,
            ),
            (nested, MAP),
            (AnyValue { value: None }, EMPTY),
        ] {
            let (t, stored) = encode_any(Some(&value));
            assert_eq!(t, type_name);
            assert_eq!(decode_any(t, stored), value, "{type_name}");
        }
    }

    #[test]
    fn hex_and_names() {
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(unhex("0AfF"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(kind_name(2), "Server");
        assert_eq!(kind_name(99), "Unspecified");
        assert_eq!(kind_value("SPAN_KIND_CLIENT"), Some(3));
        assert_eq!(kind_value("server"), Some(2));
        assert_eq!(status_name(2), "Error");
        assert_eq!(status_value("STATUS_CODE_OK"), Some(1));
    }
}
