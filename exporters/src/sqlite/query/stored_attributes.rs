//! Span, event and link attributes as the store keeps them on the row:
//! `[[key, type, value], ...]` (JSON text, written by `sqlite::attributes` and by
//! `load::attributes_json`), read back into OTLP `KeyValue`s ([`parse_attributes`]) or
//! written straight into the query API's JSON ([`write_attributes_json`]).
//!
//! Most attribute lists are plain (keys and strings without escapes, scalar values);
//! those are read by a scanner made for exactly that, which allocates only the keys and
//! strings it returns, and written as they are scanned. Anything else (an escape, a
//! nested array or map, a number out of `i64` range) is read by `serde_json`, with the
//! same result.

use super::super::value::{
    decode_any, json_to_any, parse_double, static_type, unhex, SqlValue, BOOL, BYTES, DOUBLE, INT,
    MAP, SLICE, STR,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value as Json;
use smallvec::SmallVec;
use std::borrow::Cow;
use std::hash::BuildHasher as _;
use teletrace_core::json_writer::{self, ValueStyle};
use teletrace_core::storage::StorageError;

/// `[[key, type, value], ...]` as written by `load::attributes_json` and stored in
/// `spans.attributes` (see `sqlite::attributes`), read straight into `KeyValue`s.
pub(crate) fn parse_attributes(text: Option<&str>) -> Result<Vec<KeyValue>, StorageError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    if let Some(plain) = parse_plain(text) {
        return Ok(plain);
    }
    parse_with_serde(text)
}

fn parse_with_serde(text: &str) -> Result<Vec<KeyValue>, StorageError> {
    let items: Vec<StoredAttribute> = serde_json::from_str(text)
        .map_err(|e| StorageError::Backend(format!("sqlite: stored attributes: {e}")))?;
    Ok(items.into_iter().map(|a| a.0).collect())
}

/// One stored attribute, `[key, type, value]`.
struct StoredAttribute(KeyValue);

impl<'de> Deserialize<'de> for StoredAttribute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(AttributeVisitor)
    }
}

struct AttributeVisitor;

impl<'de> Visitor<'de> for AttributeVisitor {
    type Value = StoredAttribute;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute as [key, type, value]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StoredAttribute, A::Error> {
        let key: String = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let TypeName(type_name) = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let value = seq
            .next_element_seed(ValueOfType(&type_name))?
            .ok_or_else(|| de::Error::invalid_length(2, &self))?;
        Ok(StoredAttribute(KeyValue {
            key,
            value: Some(value),
            ..Default::default()
        }))
    }
}

/// An attribute's `type`, borrowed from the known names when it is one.
struct TypeName(Cow<'static, str>);

impl<'de> Deserialize<'de> for TypeName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = TypeName;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an attribute type name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TypeName, E> {
                Ok(TypeName(
                    static_type(v).map_or_else(|| Cow::Owned(v.to_string()), Cow::Borrowed),
                ))
            }
        }
        d.deserialize_str(Name)
    }
}

/// A stored value of the given type, decoded as [`decode_any`] does; arrays and maps
/// written as JSON structures (rather than JSON text) are taken as they are.
struct ValueOfType<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for ValueOfType<'_> {
    type Value = AnyValue;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AnyValue, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueOfType<'_> {
    type Value = AnyValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an attribute value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Null))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Int(i64::from(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Int(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<AnyValue, E> {
        let stored = i64::try_from(v).map_or(SqlValue::Real(v as f64), SqlValue::Int);
        Ok(decode_any(self.0, stored))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<AnyValue, E> {
        Ok(decode_any(self.0, SqlValue::Real(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<AnyValue, E> {
        let stored = match self.0 {
            DOUBLE => parse_double(v).map(SqlValue::Real),
            BYTES => unhex(v).map(SqlValue::Blob),
            _ => None,
        };
        Ok(decode_any(
            self.0,
            stored.unwrap_or_else(|| SqlValue::Text(v.to_string())),
        ))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyValue, A::Error> {
        let json = Json::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
        Ok(json_to_any(&json))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyValue, A::Error> {
        let json = Json::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(json_to_any(&json))
    }
}

/// The plain-list scanner: `None` when `text` is not a plain list (the caller then
/// parses it with `serde_json`), never a different answer than that parse.
fn parse_plain(text: &str) -> Option<Vec<KeyValue>> {
    Some(
        scan_plain(text)?
            .into_iter()
            .map(|(key, value)| KeyValue {
                key: key.to_string(),
                value: Some(value.into_any()),
                ..Default::default()
            })
            .collect(),
    )
}

/// Appends the attributes stored as `text` as the query API writes attributes (a JSON
/// object, a repeated key keeping its last value; see `teletrace_core::span_json`).
///
/// A plain list is written as it is scanned, without building `KeyValue`s: keys,
/// strings, integers and booleans are copied as stored, since the stored text of each is
/// already what the query API writes (no escapes, canonical numbers); other values go
/// through `AnyValue`. Anything else, and a list repeating a key (which this store never
/// writes), is parsed whole and written from the `KeyValue`s.
pub(crate) fn write_attributes_json(
    out: &mut Vec<u8>,
    text: Option<&str>,
) -> Result<(), StorageError> {
    let Some(text) = text else {
        out.extend_from_slice(b"{}");
        return Ok(());
    };
    let mark = out.len();
    if write_plain(out, text).is_none() {
        out.truncate(mark);
        json_writer::attributes(out, &parse_attributes(Some(text))?, STYLE, 0);
    }
    Ok(())
}

/// How the query API writes attribute values.
const STYLE: ValueStyle = ValueStyle::Teletrace;

/// [`write_attributes_json`] of a plain list with distinct keys; `None`, with part of it
/// written, for anything else.
fn write_plain(out: &mut Vec<u8>, text: &str) -> Option<()> {
    let mut scan = Scan::new(text);
    // Each key's hash, to tell a repeated key (compared in full only when hashes meet);
    // on the stack for up to 16 attributes.
    let mut keys: SmallVec<[(u64, &str); 16]> = SmallVec::new();
    let hasher = foldhash::fast::FixedState::with_seed(0);
    scan.expect(b'[')?;
    out.push(b'{');
    if !scan.eat(b']') {
        loop {
            scan.expect(b'[')?;
            let quoted_key = scan.at;
            let key = scan.string()?;
            let hash = hasher.hash_one(key);
            if keys.iter().any(|(h, k)| *h == hash && *k == key) {
                return None;
            }
            keys.push((hash, key));
            if keys.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(&scan.bytes[quoted_key..scan.at]);
            out.push(b':');
            scan.expect(b',')?;
            let type_name = static_type(scan.string()?)?;
            scan.expect(b',')?;
            let value = scan.at;
            let as_stored = match (type_name, scan.peek()?) {
                (STR, b'"') => scan.string().is_some(),
                (BOOL, b't') => scan.word("true", ()).is_some(),
                (BOOL, b'f') => scan.word("false", ()).is_some(),
                (INT, b'-' | b'0'..=b'9') => matches!(scan.number(), Some(SqlValue::Int(_))),
                _ => false,
            };
            if as_stored {
                out.extend_from_slice(&scan.bytes[value..scan.at]);
            } else {
                scan.at = value;
                let any = scan.value(type_name)?.into_any();
                json_writer::any_value(out, Some(&any), STYLE, 0);
            }
            scan.expect(b']')?;
            if !scan.eat(b',') {
                break;
            }
        }
        scan.expect(b']')?;
    }
    out.push(b'}');
    scan.at_end().then_some(())
}

/// A value of a plain list, text borrowed: what [`decode_any`] makes of the stored type
/// and value, but for text, which becomes a string only when asked.
#[derive(Debug, Clone)]
enum Plain<'t> {
    /// Text that becomes a string value as it is.
    Str(&'t str),
    /// Anything else, with its type name.
    Stored(&'static str, SqlValue),
}

impl Plain<'_> {
    fn into_any(self) -> AnyValue {
        match self {
            Plain::Str(s) => decode_any(STR, SqlValue::Text(s.to_string())),
            Plain::Stored(type_name, stored) => decode_any(type_name, stored),
        }
    }
}

/// Scans a plain list into its keys and values, borrowed from `text`.
fn scan_plain(text: &str) -> Option<Vec<(&str, Plain<'_>)>> {
    let mut scan = Scan::new(text);
    // An upper bound on the attributes: each opens a bracket.
    let mut out = Vec::with_capacity(scan.bytes.iter().filter(|b| **b == b'[').count());
    scan.expect(b'[')?;
    if scan.eat(b']') {
        return scan.at_end().then_some(out);
    }
    loop {
        scan.expect(b'[')?;
        let key = scan.string()?;
        scan.expect(b',')?;
        let type_name = static_type(scan.string()?)?;
        scan.expect(b',')?;
        let value = scan.value(type_name)?;
        scan.expect(b']')?;
        out.push((key, value));
        if !scan.eat(b',') {
            break;
        }
    }
    scan.expect(b']')?;
    scan.at_end().then_some(out)
}

/// A cursor over a plain attribute list.
struct Scan<'t> {
    text: &'t str,
    bytes: &'t [u8],
    at: usize,
}

impl<'t> Scan<'t> {
    fn new(text: &'t str) -> Self {
        Scan {
            text,
            bytes: text.as_bytes(),
            at: 0,
        }
    }

    /// The value of an attribute of type `type_name`: what [`decode_any`] makes of it.
    fn value(&mut self, type_name: &'static str) -> Option<Plain<'t>> {
        Some(match self.peek()? {
            b'"' => {
                let v = self.string()?;
                let stored = match type_name {
                    DOUBLE => parse_double(v).map(SqlValue::Real),
                    BYTES => unhex(v).map(SqlValue::Blob),
                    _ => None,
                };
                match stored {
                    Some(stored) => Plain::Stored(type_name, stored),
                    // `decode_any` reads text of these types, and keeps the rest.
                    None if matches!(type_name, SLICE | MAP | DOUBLE) => {
                        Plain::Stored(type_name, SqlValue::Text(v.to_string()))
                    }
                    None => Plain::Str(v),
                }
            }
            b'n' => Plain::Stored(type_name, self.word("null", SqlValue::Null)?),
            b't' => Plain::Stored(type_name, self.word("true", SqlValue::Int(1))?),
            b'f' => Plain::Stored(type_name, self.word("false", SqlValue::Int(0))?),
            _ => Plain::Stored(type_name, self.number()?),
        })
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let here = self.peek() == Some(byte);
        if here {
            self.at += 1;
        }
        here
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn at_end(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'t str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start
            + self.bytes[start..]
                .iter()
                .position(|&b| matches!(b, b'"' | b'\\' | 0x00..=0x1f))?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    fn word<T>(&mut self, word: &str, value: T) -> Option<T> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| {
            self.at = end;
            value
        })
    }

    /// A JSON number: an integer in `i64` range, or a double.
    fn number(&mut self) -> Option<SqlValue> {
        let start = self.at;
        let mut integral = true;
        while let Some(b) = self.peek() {
            match b {
                b'0'..=b'9' | b'-' => {}
                b'.' | b'e' | b'E' | b'+' => integral = false,
                _ => break,
            }
            self.at += 1;
        }
        let text = self.text.get(start..self.at)?;
        if !valid_json_number(text) {
            return None;
        }
        // serde_json reads `-0` as the double -0.0, and so does this.
        if integral && text != "-0" {
            text.parse().ok().map(SqlValue::Int)
        } else {
            text.parse().ok().map(SqlValue::Real)
        }
    }
}

/// JSON's number grammar, which is stricter than Rust's `parse` (no `+1`, `01`, `1.`,
/// `.5`).
fn valid_json_number(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let from = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - from
    };
    let whole = i;
    match digits(&mut i) {
        0 => return false,
        n if n > 1 && b[whole] == b'0' => return false,
        _ => {}
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;

    #[test]
    fn json_attributes_decode_by_type() {
        let parsed = parse_attributes(Some(
            r#"[["d","Double","0.10000000000000001"],["b","Bytes","00FF"],["t","Bool",1],["m","Map","{\"k\":[1,2.5]}"],["e","Empty",null]]"#,
        ))
        .unwrap();
        assert_eq!(
            parsed[0].value.as_ref().unwrap().value,
            Some(Value::DoubleValue(0.1))
        );
        assert_eq!(
            parsed[1].value.as_ref().unwrap().value,
            Some(Value::BytesValue(vec![0, 255]))
        );
        assert_eq!(
            parsed[2].value.as_ref().unwrap().value,
            Some(Value::BoolValue(true))
        );
        assert!(matches!(
            parsed[3].value.as_ref().unwrap().value,
            Some(Value::KvlistValue(_))
        ));
        assert_eq!(parsed[4].value.as_ref().unwrap().value, None);
    }

    #[test]
    fn stored_attributes_keep_escapes_extremes_and_unknown_types() {
        let parsed = parse_attributes(Some(
            r#"[["k\"ey\u00e9","Str","a\nb"],["min","Int",-9223372036854775808],["big","Int",18446744073709551615],["s","Slice","[1,\"x\"]"],["nan","Double","NaN"],["raw","Slice",[true]],["odd","Custom","v"]]"#,
        ))
        .unwrap();
        let value = |i: usize| parsed[i].value.as_ref().unwrap().value.clone();
        assert_eq!(parsed[0].key, "k\"ey\u{e9}");
        assert_eq!(value(0), Some(Value::StringValue("a\nb".into())));
        assert_eq!(value(1), Some(Value::IntValue(i64::MIN)));
        assert!(matches!(value(2), Some(Value::DoubleValue(d)) if d == u64::MAX as f64));
        let Some(Value::ArrayValue(items)) = value(3) else {
            panic!("a slice stored as JSON text: {:?}", value(3));
        };
        assert_eq!(items.values.len(), 2);
        assert!(matches!(value(4), Some(Value::DoubleValue(d)) if d.is_nan()));
        assert!(matches!(value(5), Some(Value::ArrayValue(_))));
        assert_eq!(parsed[6].key, "odd");
        for bad in [
            r#"[["k","Str"]]"#,
            r#"[["k"]]"#,
            r#"[[1,"Str","v"]]"#,
            r#"{"k":1}"#,
        ] {
            assert!(parse_attributes(Some(bad)).is_err(), "{bad}");
        }
        assert!(parse_attributes(None).unwrap().is_empty());
    }

    /// Plain lists: no escapes, no nesting, numbers in range; every kind of value, some
    /// stored with a type they do not match.
    const PLAIN_LISTS: &[&str] = &[
        "[]",
        r#"[["a","Str","x"]]"#,
        r#"[["http.method","Str","GET"],["code","Int",-500],["ok","Bool",1],["no","Bool",0]]"#,
        r#"[["d","Double","0.10000000000000001"],["e","Double",2.5e-3],["f","Double",7]]"#,
        r#"[["inf","Double","-Inf"],["b","Bytes","00ff10"],["bad","Bytes","zz"]]"#,
        r#"[["n","Empty",null],["t","Bool",true],["u","Bool",false],["é✓","Str","ü"]]"#,
        r#"[["min","Int",-9223372036854775808],["zero","Int",0],["neg0","Double",-0.0]]"#,
        r#"[["s","Slice","[1]"],["m","Map","{}"],["i","Int",1.5],["j","Int","7"]]"#,
        r#"[["neg0","Int",-0],["x","Str",1],["y","Empty","text"],["z","Int",true]]"#,
        r#"[["w","Bool","true"]]"#,
        // Repeated keys: the last value is written, where the first was.
        r#"[["a","Int",1],["b","Str","x"],["a","Int",2]]"#,
    ];

    #[test]
    fn plain_lists_read_as_serde_reads_them() {
        for text in PLAIN_LISTS {
            let plain = parse_plain(text).unwrap_or_else(|| panic!("not plain: {text}"));
            let serde = parse_with_serde(text).unwrap();
            assert_eq!(format!("{plain:?}"), format!("{serde:?}"), "{text}");
        }
    }

    #[test]
    fn attributes_are_written_as_from_the_key_values() {
        let other = [
            r#"[["k\"ey","Str","v"],["k\"ey","Str","w"]]"#,
            r#"[["k","Str","a\nb"]]"#,
            r#"[["raw","Slice",[true]]]"#,
            r#"[["big","Int",18446744073709551615]]"#,
        ];
        for text in PLAIN_LISTS.iter().chain(&other) {
            let mut expected = Vec::new();
            json_writer::attributes(
                &mut expected,
                &parse_attributes(Some(text)).unwrap(),
                STYLE,
                0,
            );
            let mut written = b"before".to_vec();
            write_attributes_json(&mut written, Some(text)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&written[6..]),
                String::from_utf8_lossy(&expected),
                "{text}"
            );
            assert_eq!(&written[..6], b"before");
        }
        // Copied as stored: integers, strings and booleans; the rest re-written.
        let mut written = Vec::new();
        write_attributes_json(
            &mut written,
            Some(r#"[["i","Int",-12],["s","Str","ü"],["b","Bool",false],["d","Double",2.50]]"#),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(written).unwrap(),
            r#"{"i":-12,"s":"ü","b":false,"d":2.5}"#
        );
        let mut written = Vec::new();
        write_attributes_json(&mut written, None).unwrap();
        assert_eq!(written, b"{}");
        // What neither reader takes is an error, and nothing is left half-written.
        let mut written = b"x".to_vec();
        assert!(write_attributes_json(&mut written, Some(r#"[["k","Str"]]"#)).is_err());
        assert_eq!(written, b"x");
    }

    #[test]
    fn anything_else_is_left_to_serde() {
        for text in [
            r#"[["k\"ey","Str","v"]]"#,
            r#"[["k","Str","a\nb"]]"#,
            r#"[["raw","Slice",[true]]]"#,
            r#"[["raw","Map",{"k":1}]]"#,
            r#"[["big","Int",18446744073709551615]]"#,
            r#"[["odd","Custom","v"]]"#,
            r#"[ ["k","Str","v"]]"#,
            r#"[["k","Int",01]]"#,
            r#"[["k","Int",1.]]"#,
            r#"[["k","Int",+1]]"#,
            r#"[["k","Int",-]]"#,
            r#"[["k","Str","v"]]x"#,
            r#"[["k","Str","v"],]"#,
            r#"[["k","Str"]]"#,
            r#"[["k"]]"#,
            r#"{"k":1}"#,
            "",
        ] {
            assert!(parse_plain(text).is_none(), "{text}");
        }
    }
}
