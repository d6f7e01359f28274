//! Consistent probability sampling arithmetic, per the OpenTelemetry "TraceState:
//! Probability Sampling" specification: 56-bit randomness values, rejection thresholds,
//! their `th` / `rv` hex encodings and the conversion from a probability.

/// Number of hex digits of a full-precision threshold or randomness value.
pub const NUM_HEX_DIGITS: u32 = 14;
/// 2^56: the number of distinct randomness values; a threshold equal to it rejects all.
pub const MAX_ADJUSTED_COUNT: u64 = 1 << 56;
/// The smallest probability a threshold can express: 2^-56.
pub const MIN_SAMPLING_PROBABILITY: f64 = 1.0 / MAX_ADJUSTED_COUNT as f64;

/// A rejection threshold: an item with randomness `r` is kept when `r >= threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Threshold(u64);

impl Threshold {
    /// Keeps everything (`th:0`).
    pub const ALWAYS: Threshold = Threshold(0);
    /// Keeps nothing; has no `th` encoding.
    pub const NEVER: Threshold = Threshold(MAX_ADJUSTED_COUNT);

    /// A threshold from its 56-bit unsigned value; `None` above 2^56.
    pub fn from_unsigned(value: u64) -> Option<Threshold> {
        (value <= MAX_ADJUSTED_COUNT).then_some(Threshold(value))
    }

    /// The 56-bit unsigned value.
    pub fn unsigned(self) -> u64 {
        self.0
    }

    /// The threshold keeping `probability` of all items, rounded to `precision` hex
    /// digits (more near 0 and 1, where leading `0`/`f` digits carry no information).
    /// `None` when `probability` is outside `[2^-56, 1]`.
    pub fn from_probability(probability: f64, precision: u32) -> Option<Threshold> {
        if !(MIN_SAMPLING_PROBABILITY..=1.0).contains(&probability) {
            return None;
        }
        if probability == 1.0 {
            return Some(Threshold::ALWAYS);
        }
        let precision = if precision == 0 {
            NUM_HEX_DIGITS
        } else {
            precision.min(NUM_HEX_DIGITS)
        };
        // Every factor of 16 towards 0 or 1 adds a leading 0 or f: add a digit for each.
        let extra = |x: f64| (-frexp_exponent(x)).max(0) as u32 / 4;
        let precision = NUM_HEX_DIGITS
            .min((precision + extra(probability)).max(precision + extra(1.0 - probability)));
        let scaled = (probability * MAX_ADJUSTED_COUNT as f64).round() as u64;
        let mut threshold = MAX_ADJUSTED_COUNT - scaled;
        let shift = 4 * (NUM_HEX_DIGITS - precision);
        if shift != 0 {
            threshold += 1 << (shift - 1);
            threshold >>= shift;
            threshold <<= shift;
        }
        Some(Threshold(threshold))
    }

    /// The fraction of items this threshold keeps.
    pub fn probability(self) -> f64 {
        (MAX_ADJUSTED_COUNT - self.0) as f64 / MAX_ADJUSTED_COUNT as f64
    }

    /// True when an item with this `randomness` is kept.
    pub fn should_sample(self, randomness: u64) -> bool {
        randomness >= self.0
    }

    /// The `th` value: 14 hex digits with trailing zeros removed, `0` for
    /// [`Threshold::ALWAYS`]; `None` for [`Threshold::NEVER`], which has no encoding.
    pub fn encode(self) -> Option<String> {
        match self.0 {
            0 => Some("0".into()),
            MAX_ADJUSTED_COUNT => None,
            v => {
                let digits = format!("{v:014x}");
                Some(digits.trim_end_matches('0').to_string())
            }
        }
    }

    /// Parses a `th` value: 1 to 14 hex digits, the missing ones being zeros.
    pub fn parse(text: &str) -> Result<Threshold, String> {
        if text.is_empty() || text.len() > NUM_HEX_DIGITS as usize {
            return Err(format!("th value {text:?} must have 1 to 14 hex digits"));
        }
        let value = parse_hex(text).ok_or_else(|| format!("th value {text:?} is not hex"))?;
        Ok(Threshold(
            value << (4 * (NUM_HEX_DIGITS as usize - text.len())),
        ))
    }
}

/// Parses an `rv` value: exactly 14 hex digits.
pub fn parse_randomness(text: &str) -> Result<u64, String> {
    if text.len() != NUM_HEX_DIGITS as usize {
        return Err(format!("rv value {text:?} must have exactly 14 hex digits"));
    }
    parse_hex(text).ok_or_else(|| format!("rv value {text:?} is not hex"))
}

/// Encodes a randomness value as the 14 hex digits of `rv`.
pub fn encode_randomness(randomness: u64) -> String {
    format!("{:014x}", randomness & (MAX_ADJUSTED_COUNT - 1))
}

/// The randomness of a trace ID: its least significant 56 bits (the last 7 bytes, big
/// endian). `None` for an ID that is not 16 bytes or is all zeros (invalid).
pub fn trace_id_randomness(trace_id: &[u8]) -> Option<u64> {
    let id: &[u8; 16] = trace_id.try_into().ok()?;
    if id.iter().all(|&b| b == 0) {
        return None;
    }
    let mut low = [0u8; 8];
    low[1..].copy_from_slice(&id[9..]);
    Some(u64::from_be_bytes(low))
}

fn parse_hex(text: &str) -> Option<u64> {
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(text, 16).ok()
}

/// The binary exponent `e` of `x = m * 2^e` with `m` in `[0.5, 1)`, as C's `frexp`.
fn frexp_exponent(x: f64) -> i32 {
    if x == 0.0 || !x.is_finite() {
        return 0;
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: normalise first.
        return frexp_exponent(x * 2f64.powi(64)) - 64;
    }
    exp - 1022
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_to_threshold_matches_the_spec_examples() {
        // Examples from the specification's table (precision 4 unless noted).
        let th = |p: f64, prec| {
            Threshold::from_probability(p, prec)
                .unwrap()
                .encode()
                .unwrap()
        };
        assert_eq!(th(1.0, 4), "0");
        assert_eq!(th(0.5, 4), "8");
        assert_eq!(th(0.25, 4), "c");
        assert_eq!(th(0.1, 4), "e666");
        assert_eq!(th(0.01, 4), "fd70a");
        assert_eq!(th(1.0 / 3.0, 4), "aaab");
        assert_eq!(th(2.0 / 3.0, 4), "5555");
        assert_eq!(th(0.1, 14), "e6666666666666");
        assert_eq!(Threshold::from_probability(0.0, 4), None);
        assert_eq!(Threshold::from_probability(1.5, 4), None);
    }

    #[test]
    fn threshold_round_trips_and_decides() {
        let t = Threshold::parse("c").unwrap();
        assert_eq!(t.unsigned(), 0xc << 52);
        assert_eq!(t.probability(), 0.25);
        assert!(t.should_sample(0xc0_0000_0000_0000));
        assert!(!t.should_sample(0xbf_ffff_ffff_ffff));
        assert_eq!(t.encode().unwrap(), "c");
        assert_eq!(Threshold::NEVER.encode(), None);
        assert!(!Threshold::NEVER.should_sample(MAX_ADJUSTED_COUNT - 1));
        assert!(Threshold::ALWAYS.should_sample(0));
        assert!(Threshold::parse("").is_err());
        assert!(Threshold::parse("123456789abcdef").is_err());
        assert!(Threshold::parse("xy").is_err());
    }

    #[test]
    fn randomness_comes_from_the_low_56_bits() {
        let id = [
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36,
        ];
        assert_eq!(trace_id_randomness(&id), Some(0xce929d0e0e4736));
        assert_eq!(trace_id_randomness(&[0; 16]), None);
        assert_eq!(trace_id_randomness(&[1; 8]), None);
        assert_eq!(parse_randomness("ce929d0e0e4736"), Ok(0xce929d0e0e4736));
        assert!(parse_randomness("ce929d0e0e473").is_err());
        assert_eq!(encode_randomness(0xce929d0e0e4736), "ce929d0e0e4736");
    }
}
