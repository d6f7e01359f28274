//! Readers for the scalar JSON values of OTLP/JSON: strings, integers (number or string),
//! doubles (with `NaN`/`Infinity`), booleans, hex IDs, base64 bytes and enums. Each
//! reads `null` as the default value.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A string field.
pub(crate) struct Str(pub String);

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str, E> {
                Ok(Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str, E> {
                Ok(Str(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Str, E> {
                Ok(Str(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A repeated field: a JSON array (or `null`).
pub(crate) struct List<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List<T>, A::Error> {
                // The hint comes from the input; cap what it may reserve.
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element()? {
                    out.push(item);
                }
                Ok(List(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<List<T>, E> {
                Ok(List(Vec::new()))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Reads a string list (`idKeys`).
pub(crate) fn strings(list: List<Str>) -> Vec<String> {
    list.0.into_iter().map(|s| s.0).collect()
}

/// An integer field of type `T`: a JSON number (integral, exponent form allowed) or a
/// decimal string, as proto3 JSON allows for every integer type.
pub(crate) struct Int<T>(pub T);

/// The integer types OTLP uses.
pub(crate) trait IntType: Sized + Default + Copy + TryFrom<i64> + TryFrom<u64> {
    const NAME: &'static str;
}
impl IntType for i32 {
    const NAME: &'static str = "int32";
}
impl IntType for u32 {
    const NAME: &'static str = "uint32";
}
impl IntType for i64 {
    const NAME: &'static str = "int64";
}
impl IntType for u64 {
    const NAME: &'static str = "uint64";
}

fn out_of_range<T: IntType, E: de::Error>(v: impl fmt::Display) -> E {
    E::custom(format!("{v} is out of range for {}", T::NAME))
}

fn int_from_f64<T: IntType, E: de::Error>(v: f64) -> Result<T, E> {
    if v.fract() != 0.0 || !v.is_finite() {
        return Err(E::custom(format!("{v} is not an integer ({})", T::NAME)));
    }
    if (0.0..18_446_744_073_709_551_616.0).contains(&v) {
        T::try_from(v as u64).map_err(|_| out_of_range::<T, E>(v))
    } else if (-9_223_372_036_854_775_808.0..0.0).contains(&v) {
        T::try_from(v as i64).map_err(|_| out_of_range::<T, E>(v))
    } else {
        Err(out_of_range::<T, E>(v))
    }
}

impl<'de, T: IntType> Deserialize<'de> for Int<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: IntType> Visitor<'de> for V<T> {
            type Value = Int<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(
                    f,
                    "an integer ({}) as a number or a decimal string",
                    T::NAME
                )
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int<T>, E> {
                T::try_from(v).map(Int).map_err(|_| out_of_range::<T, E>(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int<T>, E> {
                T::try_from(v).map(Int).map_err(|_| out_of_range::<T, E>(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Int<T>, E> {
                int_from_f64(v).map(Int)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int<T>, E> {
                let t = v.trim();
                if let Ok(n) = t.parse::<u64>() {
                    return self.visit_u64(n);
                }
                if let Ok(n) = t.parse::<i64>() {
                    return self.visit_i64(n);
                }
                match t.parse::<f64>() {
                    Ok(f)
                        if !t.is_empty()
                            && t.bytes()
                                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) =>
                    {
                        int_from_f64(f).map(Int)
                    }
                    _ => Err(E::custom(format!("{v:?} is not an integer ({})", T::NAME))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Int<T>, E> {
                Ok(Int(T::default()))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A double: a JSON number, a numeric string, or `"NaN"`, `"Infinity"`, `"-Infinity"`.
pub(crate) struct Double(pub f64);

impl<'de> Deserialize<'de> for Double {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Double;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number, or \"NaN\", \"Infinity\", \"-Infinity\"")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                Ok(Double(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                Ok(Double(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                match v {
                    "NaN" => Ok(Double(f64::NAN)),
                    "Infinity" => Ok(Double(f64::INFINITY)),
                    "-Infinity" => Ok(Double(f64::NEG_INFINITY)),
                    _ => v
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(Double)
                        .ok_or_else(|| E::custom(format!("{v:?} is not a number"))),
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Double, E> {
                Ok(Double(0.0))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean.
pub(crate) struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Bool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bool, E> {
                Ok(Bool(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Bool, E> {
                Ok(Bool(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// A trace ID (`N` = 16) or span ID (`N` = 8): hex, case-insensitive. An empty string
/// (or `null`) is an absent ID; anything else must be exactly `N` bytes.
pub(crate) struct HexId<const N: usize>(pub Vec<u8>);

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `text` as an `n`-byte hex ID.
pub(crate) fn decode_hex_id(text: &str, n: usize) -> Result<Vec<u8>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let bytes = text.as_bytes();
    if let Some(i) = bytes.iter().position(|b| hex_digit(*b).is_none()) {
        let c = text[i..].chars().next().unwrap_or('?');
        return Err(format!(
            "must be hex-encoded ({} hex digits), found {c:?} at position {i}",
            2 * n
        ));
    }
    if bytes.len() != 2 * n {
        return Err(format!(
            "must be {n} bytes ({} hex digits), got {} hex digits",
            2 * n,
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(2)
        .filter_map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
        .collect())
}

impl<'de, const N: usize> Deserialize<'de> for HexId<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const N: usize>;
        impl<'de, const N: usize> Visitor<'de> for V<N> {
            type Value = HexId<N>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a hex string of {} digits", 2 * N)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HexId<N>, E> {
                decode_hex_id(v, N).map(HexId).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<HexId<N>, E> {
                Ok(HexId(Vec::new()))
            }
        }
        d.deserialize_any(V::<N>)
    }
}

/// A `bytes` field: base64, standard or URL-safe alphabet, padding optional.
pub(crate) struct Base64(pub Vec<u8>);

fn base64_digit(b: u8) -> Option<u32> {
    Some(u32::from(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// Decodes base64 (either alphabet, padding optional).
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return Err("invalid base64: too much padding".into());
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for (i, b) in body.bytes().enumerate() {
        let d =
            base64_digit(b).ok_or_else(|| format!("invalid base64 character at position {i}"))?;
        acc = acc << 6 | d;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("invalid base64: truncated".into());
    }
    Ok(out)
}

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Base64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Base64, E> {
                decode_base64(v).map(Base64).map_err(E::custom)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Base64, E> {
                Ok(Base64(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Enum names accepted besides integers.
pub(crate) trait EnumNames {
    /// The value of a proto enum name.
    fn value_of(name: &str) -> Option<i32>;
}

/// An enum field: an integer (as OTLP/JSON requires), or its proto name (as the
/// collector also accepts).
pub(crate) struct Enum<T>(pub i32, PhantomData<T>);

impl<'de, T: EnumNames> Deserialize<'de> for Enum<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: EnumNames> Visitor<'de> for V<T> {
            type Value = Enum<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an enum value (integer)")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Enum<T>, E> {
                i32::try_from(v)
                    .map(|n| Enum(n, PhantomData))
                    .map_err(|_| E::custom(format!("enum value {v} is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Enum<T>, E> {
                i32::try_from(v)
                    .map(|n| Enum(n, PhantomData))
                    .map_err(|_| E::custom(format!("enum value {v} is out of range")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Enum<T>, E> {
                int_from_f64::<i32, E>(v).map(|n| Enum(n, PhantomData))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Enum<T>, E> {
                if let Some(n) = T::value_of(v) {
                    return Ok(Enum(n, PhantomData));
                }
                v.trim()
                    .parse::<i32>()
                    .map(|n| Enum(n, PhantomData))
                    .map_err(|_| E::custom(format!("unknown enum value {v:?}")))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Enum<T>, E> {
                Ok(Enum(0, PhantomData))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids() {
        assert_eq!(decode_hex_id("", 8).unwrap(), Vec::<u8>::new());
        assert_eq!(
            decode_hex_id("EEE19B7EC3C1B174", 8).unwrap(),
            vec![0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        assert!(decode_hex_id("eee19b7e", 8)
            .unwrap_err()
            .contains("got 8 hex digits"));
        assert!(decode_hex_id("zee19b7ec3c1b174", 8)
            .unwrap_err()
            .contains("'z'"));
        assert!(decode_hex_id("0xe19b7ec3c1b174", 8).is_err());
        assert!(decode_hex_id("é", 8).unwrap_err().contains("'é'"));
    }

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("-_8").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_base64("").unwrap(), Vec::<u8>::new());
        assert!(decode_base64("a").is_err());
        assert!(decode_base64("a$==").is_err());
    }

    #[test]
    fn integers_as_numbers_or_strings() {
        let u: Int<u64> = serde_json::from_str("\"18446744073709551615\"").unwrap();
        assert_eq!(u.0, u64::MAX);
        let u: Int<u64> = serde_json::from_str("1544712660000000000").unwrap();
        assert_eq!(u.0, 1_544_712_660_000_000_000);
        let i: Int<i64> = serde_json::from_str("\"-5\"").unwrap();
        assert_eq!(i.0, -5);
        let i: Int<u32> = serde_json::from_str("1e3").unwrap();
        assert_eq!(i.0, 1000);
        assert!(serde_json::from_str::<Int<u32>>("-1").is_err());
        assert!(serde_json::from_str::<Int<u32>>("1.5").is_err());
        assert!(serde_json::from_str::<Int<u64>>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Int<u64>>("true").is_err());
        assert_eq!(serde_json::from_str::<Int<u64>>("null").unwrap().0, 0);
    }

    #[test]
    fn doubles() {
        assert!(serde_json::from_str::<Double>("\"NaN\"")
            .unwrap()
            .0
            .is_nan());
        assert_eq!(
            serde_json::from_str::<Double>("\"-Infinity\"").unwrap().0,
            f64::NEG_INFINITY
        );
        assert_eq!(serde_json::from_str::<Double>("\"2.5\"").unwrap().0, 2.5);
        assert_eq!(serde_json::from_str::<Double>("3").unwrap().0, 3.0);
    }
}
