//! Durations in config as the collector writes them: Go duration strings (`200ms`, `5s`,
//! `1h30m`, `1.5s`), or an integer number of nanoseconds.
//!
//! Use with `#[serde(with = "teletrace_core::config::duration")]` on a `Duration` field,
//! or [`option`] on an `Option<Duration>` field.

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Parses a Go-style duration: a sequence of decimal numbers with units
/// `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`; `0` alone is zero.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("invalid duration {text:?}: missing unit (ns, us, ms, s, m, h)")
            })?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let number: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            unit => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {unit:?} (use ns, us, ms, s, m, h)"
                ))
            }
        };
        total += number * nanos_per;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Formats a duration as the shortest Go-style string (`200ms`, `5s`, `1h0m0s` style is
/// avoided: `3600s` prints as `1h`).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    for (unit, per) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if nanos.is_multiple_of(per) {
            return format!("{}{}", nanos / per, unit);
        }
    }
    format!("{nanos}ns")
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Nanos(u64),
}

/// Deserializes a duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(d).map_err(|_| {
        serde::de::Error::custom("expected a duration such as \"200ms\", \"5s\" or \"1h\"")
    })? {
        Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        Raw::Nanos(n) => Ok(Duration::from_nanos(n)),
    }
}

/// Serializes a duration as a Go-style string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Deserializes an optional duration (null is `None`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Raw>::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration such as \"200ms\", \"5s\" or \"1h\"")
        })? {
            None => Ok(None),
            Some(Raw::Text(t)) => parse(&t).map(Some).map_err(serde::de::Error::custom),
            Some(Raw::Nanos(n)) => Ok(Some(Duration::from_nanos(n))),
        }
    }

    /// Serializes an optional duration.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("168h").unwrap(), Duration::from_secs(168 * 3600));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("10us").unwrap(), Duration::from_micros(10));
        assert!(parse("5").is_err());
        assert!(parse("5 parsecs").is_err());
        assert!(parse("").is_err());
        assert!(parse("ms").is_err());
    }

    #[test]
    fn formats_back() {
        for s in ["200ms", "5s", "1h", "90m", "0s", "7ns"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
