//! The W3C `tracestate` header and its OpenTelemetry entry (`ot=th:...;rv:...`), parsed
//! and written back as the collector's `pkg/sampling` does: the `ot` entry goes first,
//! `rv` before `th`, other entries and other `ot` fields keep their order.

use super::threshold::{self, Threshold};

/// Most list members a W3C tracestate may hold.
const MAX_MEMBERS: usize = 32;
/// Longest OpenTelemetry (`ot`) value accepted.
const MAX_OTEL_VALUE_LEN: usize = 256;

/// A parsed W3C tracestate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct W3cTraceState {
    /// The `ot` entry.
    pub otel: OtelTraceState,
    /// The other list members, verbatim (`key=value`), in order.
    others: Vec<String>,
}

/// The fields of the OpenTelemetry (`ot`) tracestate entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtelTraceState {
    /// The explicit randomness (`rv`), when present.
    pub randomness: Option<u64>,
    /// The rejection threshold (`th`), when present.
    pub threshold: Option<Threshold>,
    /// Other `key:value` fields, verbatim, in order.
    extra: Vec<String>,
}

impl W3cTraceState {
    /// Parses a tracestate header value. The empty string is an empty tracestate.
    pub fn parse(text: &str) -> Result<W3cTraceState, String> {
        let mut state = W3cTraceState::default();
        let mut members = 0;
        let mut seen_otel = false;
        for member in text.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            members += 1;
            if members > MAX_MEMBERS {
                return Err(format!("tracestate has more than {MAX_MEMBERS} members"));
            }
            let (key, value) = member
                .split_once('=')
                .ok_or_else(|| format!("tracestate member {member:?} has no '='"))?;
            if !valid_key(key) || !valid_value(value) {
                return Err(format!("tracestate member {member:?} is malformed"));
            }
            if key == "ot" {
                if seen_otel {
                    return Err("tracestate has two ot entries".into());
                }
                seen_otel = true;
                state.otel = OtelTraceState::parse(value)?;
            } else {
                state.others.push(member.to_string());
            }
        }
        Ok(state)
    }

    /// Writes the tracestate back: the `ot` entry (when it has any field) first.
    pub fn serialize(&self) -> String {
        let mut out = String::new();
        let otel = self.otel.serialize();
        if !otel.is_empty() {
            out.push_str("ot=");
            out.push_str(&otel);
        }
        for member in &self.others {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(member);
        }
        out
    }
}

impl OtelTraceState {
    /// Parses the value of the `ot` entry: `key:value` fields separated by `;`.
    pub fn parse(text: &str) -> Result<OtelTraceState, String> {
        if text.len() > MAX_OTEL_VALUE_LEN {
            return Err(format!(
                "ot tracestate value longer than {MAX_OTEL_VALUE_LEN}"
            ));
        }
        let mut state = OtelTraceState::default();
        for field in text.split(';') {
            let (key, value) = field
                .split_once(':')
                .ok_or_else(|| format!("ot tracestate field {field:?} has no ':'"))?;
            let key_ok = key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            let value_ok = value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !key_ok || !value_ok {
                return Err(format!("ot tracestate field {field:?} is malformed"));
            }
            match key {
                "rv" => state.randomness = Some(threshold::parse_randomness(value)?),
                "th" => state.threshold = Some(Threshold::parse(value)?),
                _ => state.extra.push(field.to_string()),
            }
        }
        Ok(state)
    }

    /// Raises the threshold to `th` after a sampler kept the item with it. Refused (and
    /// left unchanged) when the existing threshold is higher: a stage can lower the
    /// sampling probability, never raise it.
    pub fn update_threshold(&mut self, th: Threshold) -> Result<(), String> {
        if let Some(existing) = self.threshold {
            if existing > th {
                return Err("inconsistent sampling: threshold would be lowered".into());
            }
        }
        self.threshold = (th != Threshold::NEVER).then_some(th);
        Ok(())
    }

    /// The value of the `ot` entry: `rv`, then `th`, then the other fields; empty when
    /// there is nothing to write.
    pub fn serialize(&self) -> String {
        let mut fields: Vec<String> = Vec::with_capacity(2 + self.extra.len());
        if let Some(rv) = self.randomness {
            fields.push(format!("rv:{}", threshold::encode_randomness(rv)));
        }
        if let Some(th) = self.threshold.and_then(Threshold::encode) {
            fields.push(format!("th:{th}"));
        }
        fields.extend(self.extra.iter().cloned());
        fields.join(";")
    }
}

/// W3C list-member key: `lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")`,
/// optionally `tenant@system`.
fn valid_key(key: &str) -> bool {
    let ok = |part: &str, first_digit: bool| {
        let mut bytes = part.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || (first_digit && b.is_ascii_digit()))
            && bytes.all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'*' | b'/')
            })
    };
    if key.len() > 256 {
        return false;
    }
    match key.split_once('@') {
        Some((tenant, system)) => ok(tenant, true) && ok(system, false) && system.len() <= 14,
        None => ok(key, false),
    }
}

/// W3C list-member value: printable ASCII except `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back_with_ot_first() {
        let mut s =
            W3cTraceState::parse("vendor=abc, ot=th:c;rv:0123456789abcd;x:y,b@t=1").unwrap();
        assert_eq!(s.otel.threshold, Threshold::parse("c").ok());
        assert_eq!(s.otel.randomness, Some(0x0123456789abcd));
        assert_eq!(
            s.serialize(),
            "ot=rv:0123456789abcd;th:c;x:y,vendor=abc,b@t=1"
        );
        s.otel
            .update_threshold(Threshold::parse("e").unwrap())
            .unwrap();
        assert_eq!(
            s.serialize(),
            "ot=rv:0123456789abcd;th:e;x:y,vendor=abc,b@t=1"
        );
        assert!(s
            .otel
            .update_threshold(Threshold::parse("8").unwrap())
            .is_err());
        assert_eq!(W3cTraceState::parse("").unwrap().serialize(), "");
        assert_eq!(W3cTraceState::parse("a=1").unwrap().serialize(), "a=1");
    }

    #[test]
    fn rejects_malformed_states() {
        for bad in [
            "ot=th:zz",
            "ot=rv:123",
            "ot=th",
            "novalue",
            "Upper=1",
            "ot=th:8,ot=th:c",
            "a=b=c",
        ] {
            assert!(W3cTraceState::parse(bad).is_err(), "{bad}");
        }
    }
}
