//! A small JSON writer appending straight to a byte buffer, for JSON written per span
//! where building a `serde_json::Value` (or any tree) first would cost more than the
//! writing: the query API's responses and the elasticsearch exporter's documents (see
//! [`crate::span_json`] for the Teletrace v1 span shape both use).

use base64::Engine as _;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use std::collections::HashMap;

/// Nesting deeper than this is written as `null` (as the query API does).
pub const MAX_DEPTH: usize = 64;

/// How attribute values that JSON has no native form for are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueStyle {
    /// The query API's form: bytes as standard base64, doubles as serde_json writes them.
    Teletrace,
    /// The collector's otel mode: bytes as lowercase hex, doubles always with a radix
    /// point (`1.0`), so Elasticsearch's dynamic mapping sees a float.
    Otel,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Which bytes a JSON string cannot hold as they are: the quote, the backslash and the
/// control characters.
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Appends `s` as a JSON string (quotes included).
pub fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    // Runs without escapes are copied whole.
    while let Some(offset) = bytes[start..]
        .iter()
        .position(|&b| NEEDS_ESCAPE[usize::from(b)])
    {
        let i = start + offset;
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `"key":`.
pub fn key(out: &mut Vec<u8>, k: &str) {
    string(out, k);
    out.push(b':');
}

/// Appends an unsigned integer.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a signed integer.
pub fn int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends bytes as a quoted lowercase hex string.
pub fn hex_string(out: &mut Vec<u8>, id: &[u8]) {
    out.push(b'"');
    hex_raw(out, id);
    out.push(b'"');
}

/// Appends bytes as lowercase hex, unquoted.
pub fn hex_raw(out: &mut Vec<u8>, id: &[u8]) {
    out.reserve(id.len() * 2);
    for &b in id {
        out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
    }
}

/// Appends `[item, ...]`, each item written by `each`.
pub fn array<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

/// Appends a double. JSON has no NaN or infinities: they are written as the strings
/// `NaN`, `Infinity`, `-Infinity` (as the query API does).
pub fn double(out: &mut Vec<u8>, d: f64, style: ValueStyle) {
    if d.is_finite() {
        let mut buf = ryu::Buffer::new();
        let text = buf.format_finite(d);
        out.extend_from_slice(text.as_bytes());
        // ryu writes `1e16` for large integral values; both styles want a float there.
        if style == ValueStyle::Otel && !text.contains(['.', 'e', 'E']) {
            out.extend_from_slice(b".0");
        }
    } else if d.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if d > 0.0 {
        out.extend_from_slice(b"\"Infinity\"");
    } else {
        out.extend_from_slice(b"\"-Infinity\"");
    }
}

/// Appends a nanosecond timestamp as Elasticsearch's `epoch_millis` with a fraction
/// (`"1700000000123.000456"`), which a `date_nanos` field reads without loss.
pub fn epoch_millis_nanos(out: &mut Vec<u8>, ns: u64) {
    let millis = ns / 1_000_000;
    let rest = ns % 1_000_000;
    out.push(b'"');
    uint(out, millis);
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut r = rest;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (r % 10) as u8;
        r /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'"');
}

/// Appends an attribute value.
pub fn any_value(out: &mut Vec<u8>, value: Option<&AnyValue>, style: ValueStyle, depth: usize) {
    if depth > MAX_DEPTH {
        out.extend_from_slice(b"null");
        return;
    }
    let Some(v) = value.and_then(|v| v.value.as_ref()) else {
        out.extend_from_slice(b"null");
        return;
    };
    match v {
        any_value::Value::StringValue(s) => string(out, s),
        any_value::Value::BoolValue(true) => out.extend_from_slice(b"true"),
        any_value::Value::BoolValue(false) => out.extend_from_slice(b"false"),
        any_value::Value::IntValue(i) => int(out, *i),
        any_value::Value::DoubleValue(d) => double(out, *d, style),
        any_value::Value::ArrayValue(a) => array(out, &a.values, |out, item| {
            any_value(out, Some(item), style, depth + 1)
        }),
        any_value::Value::KvlistValue(kv) => attributes(out, &kv.values, style, depth + 1),
        any_value::Value::BytesValue(b) => match style {
            ValueStyle::Teletrace => {
                out.push(b'"');
                let start = out.len();
                let encoded_len = base64::encoded_len(b.len(), true).unwrap_or(0);
                out.resize(start + encoded_len, 0);
                let written = base64::engine::general_purpose::STANDARD
                    .encode_slice(b, &mut out[start..])
                    .unwrap_or(0);
                out.truncate(start + written);
                out.push(b'"');
            }
            ValueStyle::Otel => hex_string(out, b),
        },
        // A profiling-only string-table reference: no meaning for spans.
        any_value::Value::StringValueStrindex(_) => out.extend_from_slice(b"null"),
    }
}

/// Appends attributes as a JSON object of key to value. A repeated key keeps its last
/// value: Elasticsearch refuses a document with a duplicate field.
pub fn attributes(out: &mut Vec<u8>, attrs: &[KeyValue], style: ValueStyle, depth: usize) {
    attributes_except(out, attrs, style, depth, &[]);
}

/// [`attributes`], leaving out the keys in `skip`.
pub fn attributes_except(
    out: &mut Vec<u8>,
    attrs: &[KeyValue],
    style: ValueStyle,
    depth: usize,
    skip: &[&str],
) {
    out.push(b'{');
    let mut first = true;
    for_each_last(
        attrs,
        |kv| kv.key.as_str(),
        |kv| {
            if skip.contains(&kv.key.as_str()) {
                return;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            key(out, &kv.key);
            any_value(out, kv.value.as_ref(), style, depth);
        },
    );
    out.push(b'}');
}

/// Calls `f` for each item whose key (as `key` reads it) does not appear again later in
/// the list, in order: how an attribute list becomes a JSON object where a repeated key
/// keeps its last value.
fn for_each_last<'a, T>(items: &'a [T], key: impl Fn(&'a T) -> &'a str, mut f: impl FnMut(&'a T)) {
    if items.len() <= 16 {
        for (i, item) in items.iter().enumerate() {
            let k = key(item);
            if !items[i + 1..].iter().any(|later| key(later) == k) {
                f(item);
            }
        }
    } else {
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            last.insert(key(item), i);
        }
        for (i, item) in items.iter().enumerate() {
            if last.get(key(item)) == Some(&i) {
                f(item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_escape_like_serde_json() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "ctl\u{1}\u{1f}\n\r\t",
            "ünï€😀",
            "",
        ] {
            let ours = text(|o| string(o, s));
            assert_eq!(ours, serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn numbers_and_times() {
        assert_eq!(text(|o| double(o, 1.0, ValueStyle::Teletrace)), "1.0");
        assert_eq!(text(|o| double(o, 1e16, ValueStyle::Otel)), "1e16");
        assert_eq!(text(|o| double(o, 0.25, ValueStyle::Otel)), "0.25");
        assert_eq!(text(|o| double(o, f64::NAN, ValueStyle::Otel)), "\"NaN\"");
        assert_eq!(text(|o| int(o, i64::MIN)), i64::MIN.to_string());
        assert_eq!(
            text(|o| epoch_millis_nanos(o, 1_700_000_000_123_000_456)),
            "\"1700000000123.000456\""
        );
        assert_eq!(text(|o| epoch_millis_nanos(o, 5)), "\"0.000005\"");
    }

    #[test]
    fn repeated_keys_keep_the_last_value() {
        let kv = |k: &str, v: i64| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(v)),
            }),
            ..Default::default()
        };
        let small = vec![kv("a", 1), kv("b", 2), kv("a", 3)];
        assert_eq!(
            text(|o| attributes(o, &small, ValueStyle::Teletrace, 0)),
            r#"{"b":2,"a":3}"#
        );
        let mut many: Vec<KeyValue> = (0..40).map(|i| kv(&format!("k{i}"), i)).collect();
        many.push(kv("k0", 99));
        let json: serde_json::Value =
            serde_json::from_str(&text(|o| attributes(o, &many, ValueStyle::Teletrace, 0)))
                .unwrap();
        assert_eq!(json.as_object().unwrap().len(), 40);
        assert_eq!(json["k0"], 99);
    }
}
