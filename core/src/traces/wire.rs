//! Schema-aware, allocation-free validation of encoded OTLP trace requests.
//!
//! [`scan_export_request`] walks the protobuf bytes of an
//! `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest` once,
//! without decoding into structs, and checks:
//!
//! * the wire framing of every field, recursively through the known trace
//!   messages (varints at most 10 bytes and not overflowing 64 bits, lengths
//!   inside the enclosing message, complete fixed32/fixed64 fields);
//! * that every known field carries the wire type the schema gives it;
//!   unknown field numbers are skipped by wire type like protobuf parsers do,
//!   except groups (wire types 3 and 4), which are rejected;
//! * that `string` fields are valid UTF-8;
//! * that `trace_id`/`span_id` in spans and links are 16/8 bytes, or empty
//!   (proto3 reads an empty field as absent; the OpenTelemetry Collector
//!   accepts both as the all-zero ID, and so do we); all-zero IDs are not
//!   rejected;
//! * that messages nest at most 64 deep (counting the request itself as
//!   depth 1), so hostile `AnyValue` nesting cannot exhaust the stack.
//!
//! The schema is the one `opentelemetry-proto` 0.33 decodes with prost,
//! including the fields prost knows that older `.proto` files lack
//! (`Resource.entity_refs`, `KeyValue.key_strindex`,
//! `AnyValue.string_value_strindex`): skipping those as unknown would accept
//! bytes that prost then rejects.
//!
//! Everything the scanner accepts is also accepted by `prost` decoding into
//! the `opentelemetry-proto` types (the scanner is stricter in places: groups,
//! ID lengths, nesting depth), and the returned span count equals the number of
//! spans such a decode produces.
//!
//! The success path does not allocate: faults are zero-sized on the hot path.
//! When a problem is found, the bytes are walked a second time with path
//! recording switched on to say what and where (see [`WireError`]).

use std::fmt;

/// Maximum message nesting depth accepted, counting the
/// `ExportTraceServiceRequest` itself as depth 1 (prost's own limit is 100).
const MAX_DEPTH: u32 = 64;

/// Wire type: varint.
const VARINT: u8 = 0;
/// Wire type: 64-bit fixed.
const I64: u8 = 1;
/// Wire type: length-delimited.
const LEN: u8 = 2;
/// Wire type: start group (deprecated, rejected).
const SGROUP: u8 = 3;
/// Wire type: end group (deprecated, rejected).
const EGROUP: u8 = 4;
/// Wire type: 32-bit fixed.
const I32: u8 = 5;

/// Largest field number a key can carry (keys must fit in 32 bits).
const MAX_FIELD: u64 = (u32::MAX >> 3) as u64;

/// Error found while scanning an encoded OTLP trace request: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset}, in {path})")]
pub struct WireError {
    /// What was wrong, e.g. `trace_id must be 16 bytes, got 5`.
    pub message: String,
    /// Offset in the scanned buffer of the byte where the problem was found
    /// (the field's key for wire-type and key problems, its length prefix for
    /// truncation, the start of its value for content problems).
    pub offset: usize,
    /// Where the problem is, e.g. `resource_spans[0].scope_spans[1].spans[3].trace_id`
    /// (relative to the scanned message; the root message's name when the
    /// problem is in the root message itself rather than in one of its fields).
    pub path: String,
}

/// Validates `buf` as an encoded ExportTraceServiceRequest and returns the number of spans in it.
pub fn scan_export_request(buf: &[u8]) -> Result<usize, WireError> {
    match run(buf, Root::Request, &mut NoTrail) {
        Ok(spans) => Ok(spans),
        Err(Stop) => Err(explain(buf, Root::Request)),
    }
}

/// Same, for the bytes of one encoded ResourceSpans message (its body, without the tag/length).
///
/// The message is scanned as if it sat inside an `ExportTraceServiceRequest`
/// (depth 2), so it is accepted exactly when it would be accepted there.
pub fn scan_resource_spans(buf: &[u8]) -> Result<usize, WireError> {
    match run(buf, Root::ResourceSpans, &mut NoTrail) {
        Ok(spans) => Ok(spans),
        Err(Stop) => Err(explain(buf, Root::ResourceSpans)),
    }
}

// ---------------------------------------------------------------------------
// Faults (built only while explaining an error)
// ---------------------------------------------------------------------------

/// Which ID field had a bad length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Id {
    Trace,
    Span,
    ParentSpan,
}

/// What went wrong (rendered into [`WireError::message`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    TruncatedVarint,
    MalformedVarint,
    /// Field number 0, or a key that does not fit in 32 bits.
    InvalidKey(u64),
    InvalidWireType {
        field: u64,
        wire_type: u8,
    },
    Group {
        field: u64,
        wire_type: u8,
    },
    WrongWireType {
        field: u32,
        got: u8,
        want: u8,
    },
    TruncatedLen,
    TruncatedFixed {
        width: u8,
    },
    InvalidUtf8,
    IdLen {
        id: Id,
        got: usize,
    },
    TooDeep,
    /// Internal inconsistency (the second walk did not fail).
    Unexplained,
}

fn wire_type_name(wire_type: u8) -> &'static str {
    match wire_type {
        VARINT => "varint",
        I64 => "64-bit",
        LEN => "length-delimited",
        SGROUP => "start-group",
        EGROUP => "end-group",
        I32 => "32-bit",
        _ => "invalid",
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::TruncatedVarint => f.write_str("truncated varint"),
            Problem::MalformedVarint => {
                f.write_str("malformed varint (longer than 10 bytes or above 64 bits)")
            }
            Problem::InvalidKey(key) if key >> 3 == 0 => f.write_str("invalid field number 0"),
            Problem::InvalidKey(key) => write!(f, "invalid field key {key} (above 32 bits)"),
            Problem::InvalidWireType { field, wire_type } => {
                write!(f, "invalid wire type {wire_type} for field {field}")
            }
            Problem::Group { field, wire_type } => write!(
                f,
                "unsupported group wire type {wire_type} for field {field}"
            ),
            Problem::WrongWireType { field, got, want } => write!(
                f,
                "wrong wire type {got} for field {field} (expected {})",
                wire_type_name(want)
            ),
            Problem::TruncatedLen => f.write_str("truncated length-delimited field"),
            Problem::TruncatedFixed { width } => write!(f, "truncated fixed{width} field"),
            Problem::InvalidUtf8 => f.write_str("invalid UTF-8 in string field"),
            Problem::IdLen { id: Id::Trace, got } => {
                write!(f, "trace_id must be 16 bytes, got {got}")
            }
            Problem::IdLen { id: Id::Span, got } => write!(f, "span_id must be 8 bytes, got {got}"),
            Problem::IdLen {
                id: Id::ParentSpan,
                got,
            } => write!(f, "parent_span_id must be empty or 8 bytes, got {got}"),
            Problem::TooDeep => write!(f, "messages nested deeper than {MAX_DEPTH} levels"),
            Problem::Unexplained => f.write_str("invalid message"),
        }
    }
}

/// A problem and the absolute offset it was found at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fault {
    problem: Problem,
    offset: usize,
}

/// Hot-path error: zero-sized, so results stay in registers. What went
/// wrong is reported to the [`Trail`] (and dropped by [`NoTrail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stop;

// ---------------------------------------------------------------------------
// Path tracking: a no-op on the fast path, a recorder when explaining an error
// ---------------------------------------------------------------------------

/// Receives the fields entered/left during a scan and the fault that stops
/// it. The fast path uses [`NoTrail`], whose methods compile to nothing.
trait Trail {
    /// Entering field `name` (element `index` of it, for repeated fields).
    fn enter(&mut self, name: &'static str, index: Option<usize>);
    /// Leaving the field most recently entered.
    fn leave(&mut self);
    /// The scan stops because of `fault`.
    fn fault(&mut self, fault: Fault) -> Stop;
}

/// Does not record anything.
struct NoTrail;

impl Trail for NoTrail {
    #[inline(always)]
    fn enter(&mut self, _name: &'static str, _index: Option<usize>) {}
    #[inline(always)]
    fn leave(&mut self) {}
    #[inline(always)]
    fn fault(&mut self, _fault: Fault) -> Stop {
        Stop
    }
}

/// Records the stack of fields entered; on a fault the scan returns early
/// without leaving, so the stack is the path to the problem.
#[derive(Default)]
struct Recorder {
    segments: Vec<(&'static str, Option<usize>)>,
    fault: Option<Fault>,
}

impl Trail for Recorder {
    fn enter(&mut self, name: &'static str, index: Option<usize>) {
        self.segments.push((name, index));
    }
    fn leave(&mut self) {
        self.segments.pop();
    }
    fn fault(&mut self, fault: Fault) -> Stop {
        self.fault = Some(fault);
        Stop
    }
}

/// The message a scan starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Request,
    ResourceSpans,
}

#[inline]
fn run<T: Trail>(buf: &[u8], root: Root, t: &mut T) -> Result<usize, Stop> {
    match root {
        Root::Request => request(buf, t),
        Root::ResourceSpans => resource_spans(buf, 0, 2, t),
    }
}

/// Re-walks `buf` recording the path, and builds the public error.
#[cold]
#[inline(never)]
fn explain(buf: &[u8], root: Root) -> WireError {
    let mut rec = Recorder::default();
    let fault = match (run(buf, root, &mut rec), rec.fault) {
        (Err(Stop), Some(fault)) => fault,
        // Cannot happen (the scan is deterministic); report what we can.
        _ => {
            rec.segments.clear();
            Fault {
                problem: Problem::Unexplained,
                offset: 0,
            }
        }
    };
    let mut path = String::new();
    for (i, (name, index)) in rec.segments.iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        path.push_str(name);
        if let Some(index) = index {
            path.push('[');
            path.push_str(&index.to_string());
            path.push(']');
        }
    }
    if path.is_empty() {
        path.push_str(match root {
            Root::Request => "ExportTraceServiceRequest",
            Root::ResourceSpans => "ResourceSpans",
        });
    }
    WireError {
        message: fault.problem.to_string(),
        offset: fault.offset,
        path,
    }
}

// ---------------------------------------------------------------------------
// Byte cursor
// ---------------------------------------------------------------------------

/// A cursor over the bytes of one message; `base` is the absolute offset of
/// `b[0]` in the scanned buffer (only used to report faults).
#[derive(Clone, Copy)]
struct Cur<'a> {
    b: &'a [u8],
    pos: usize,
    base: usize,
}

/// Reads a varint of any length at `pos`, with prost's checks: at most 10
/// bytes, and the 10th byte may only contribute the 64th bit. Returns the
/// value and the position after it.
#[inline(never)]
fn varint_slow(b: &[u8], pos: usize) -> Result<(u64, usize), Problem> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some(&byte) = b.get(pos + i) else {
            return Err(Problem::TruncatedVarint);
        };
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            if i == 9 && byte > 1 {
                return Err(Problem::MalformedVarint);
            }
            return Ok((value, pos + i + 1));
        }
    }
    Err(Problem::MalformedVarint)
}

/// Skips an unknown field whose key (`field`, `wt`) started at `at` and ended
/// at `pos`; returns the position after it. Groups are rejected.
#[inline(never)]
fn skip_field<T: Trail>(
    b: &[u8],
    base: usize,
    at: usize,
    pos: usize,
    field: u64,
    wt: u8,
    t: &mut T,
) -> Result<usize, Stop> {
    let mut c = Cur { b, pos, base };
    if field == 0 || field > MAX_FIELD {
        let key = (field << 3) | u64::from(wt);
        return Err(c.fail(at, Problem::InvalidKey(key), t));
    }
    match wt {
        VARINT => c.varint(t).map(drop)?,
        I64 => c.fixed(64, t)?,
        LEN => c.len_prefixed(t).map(drop)?,
        I32 => c.fixed(32, t)?,
        SGROUP | EGROUP => {
            let problem = Problem::Group {
                field,
                wire_type: wt,
            };
            return Err(c.fail(at, problem, t));
        }
        _ => {
            let problem = Problem::InvalidWireType {
                field,
                wire_type: wt,
            };
            return Err(c.fail(at, problem, t));
        }
    }
    Ok(c.pos)
}

impl<'a> Cur<'a> {
    #[inline(always)]
    fn new(b: &'a [u8], base: usize) -> Self {
        Cur { b, pos: 0, base }
    }

    #[inline(always)]
    fn more(&self) -> bool {
        self.pos < self.b.len()
    }

    /// Reports `problem` at `pos` (relative to this message) to the trail.
    #[inline(always)]
    fn fail<T: Trail>(&self, pos: usize, problem: Problem, t: &mut T) -> Stop {
        t.fault(Fault {
            problem,
            offset: self.base + pos,
        })
    }

    /// Reads a varint (1- and 2-byte fast paths inline).
    #[inline(always)]
    fn varint<T: Trail>(&mut self, t: &mut T) -> Result<u64, Stop> {
        let p = self.pos;
        if let Some(&b0) = self.b.get(p) {
            if b0 < 0x80 {
                self.pos = p + 1;
                return Ok(u64::from(b0));
            }
            if let Some(&b1) = self.b.get(p + 1) {
                if b1 < 0x80 {
                    self.pos = p + 2;
                    return Ok(u64::from(b0 & 0x7f) | (u64::from(b1) << 7));
                }
            }
        }
        match varint_slow(self.b, p) {
            Ok((value, next)) => {
                self.pos = next;
                Ok(value)
            }
            Err(problem) => Err(self.fail(p, problem, t)),
        }
    }

    /// Reads a field key, returning (field number, wire type). Field number 0,
    /// oversized keys and invalid wire types are only diagnosed in
    /// [`skip_field`], since they never match a known field.
    #[inline(always)]
    fn key<T: Trail>(&mut self, t: &mut T) -> Result<(u64, u8), Stop> {
        let key = self.varint(t)?;
        Ok((key >> 3, (key & 7) as u8))
    }

    /// Skips an unknown field (see [`skip_field`]).
    #[inline(always)]
    fn skip<T: Trail>(&mut self, at: usize, field: u64, wt: u8, t: &mut T) -> Result<(), Stop> {
        self.pos = skip_field(self.b, self.base, at, self.pos, field, wt, t)?;
        Ok(())
    }

    /// Reads a length prefix and returns a cursor over the bytes it covers.
    #[inline(always)]
    fn len_prefixed<T: Trail>(&mut self, t: &mut T) -> Result<Cur<'a>, Stop> {
        let start = self.pos;
        let len = self.varint(t)?;
        let data = self.pos;
        let rest = &self.b[data..];
        if len > rest.len() as u64 {
            return Err(self.fail(start, Problem::TruncatedLen, t));
        }
        let len = len as usize;
        self.pos = data + len;
        Ok(Cur {
            b: &rest[..len],
            pos: 0,
            base: self.base + data,
        })
    }

    #[inline(always)]
    fn want<T: Trail>(
        &self,
        at: usize,
        field: u32,
        got: u8,
        want: u8,
        t: &mut T,
    ) -> Result<(), Stop> {
        if got == want {
            Ok(())
        } else {
            Err(self.fail(at, Problem::WrongWireType { field, got, want }, t))
        }
    }

    /// A nested message field: checks the wire type and depth, returns its body.
    /// `depth` is the depth of the message containing the field.
    #[inline(always)]
    fn message<T: Trail>(
        &mut self,
        at: usize,
        field: u32,
        wt: u8,
        depth: u32,
        t: &mut T,
    ) -> Result<Cur<'a>, Stop> {
        self.want(at, field, wt, LEN, t)?;
        if depth >= MAX_DEPTH {
            return Err(self.fail(at, Problem::TooDeep, t));
        }
        self.len_prefixed(t)
    }

    /// A `bytes` field: returns its contents.
    #[inline(always)]
    fn bytes<T: Trail>(
        &mut self,
        at: usize,
        field: u32,
        wt: u8,
        t: &mut T,
    ) -> Result<Cur<'a>, Stop> {
        self.want(at, field, wt, LEN, t)?;
        self.len_prefixed(t)
    }

    /// A `string` field: checks framing and UTF-8.
    #[inline(always)]
    fn string<T: Trail>(&mut self, at: usize, field: u32, wt: u8, t: &mut T) -> Result<(), Stop> {
        let s = self.bytes(at, field, wt, t)?;
        if utf8_ok(s.b) {
            Ok(())
        } else {
            Err(s.fail(0, Problem::InvalidUtf8, t))
        }
    }

    /// An ID `bytes` field whose length must suit `id`.
    #[inline(always)]
    fn id<T: Trail>(
        &mut self,
        at: usize,
        field: u32,
        wt: u8,
        id: Id,
        t: &mut T,
    ) -> Result<(), Stop> {
        let v = self.bytes(at, field, wt, t)?;
        let got = v.b.len();
        let ok = match id {
            // Empty is the same as absent in proto3 (the collector accepts both and
            // reads an all-zero ID); any other length is refused.
            Id::Trace => got == 16 || got == 0,
            Id::Span | Id::ParentSpan => got == 8 || got == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(v.fail(0, Problem::IdLen { id, got }, t))
        }
    }

    /// A varint scalar field (int32/int64/uint32/bool/enum).
    #[inline(always)]
    fn scalar_varint<T: Trail>(
        &mut self,
        at: usize,
        field: u32,
        wt: u8,
        t: &mut T,
    ) -> Result<(), Stop> {
        self.want(at, field, wt, VARINT, t)?;
        self.varint(t).map(drop)
    }

    #[inline(always)]
    fn fixed<T: Trail>(&mut self, width: u8, t: &mut T) -> Result<(), Stop> {
        let n = usize::from(width / 8);
        if self.b.len() - self.pos < n {
            return Err(self.fail(self.pos, Problem::TruncatedFixed { width }, t));
        }
        self.pos += n;
        Ok(())
    }

    /// A fixed64/double field.
    #[inline(always)]
    fn fixed64<T: Trail>(&mut self, at: usize, field: u32, wt: u8, t: &mut T) -> Result<(), Stop> {
        self.want(at, field, wt, I64, t)?;
        self.fixed(64, t)
    }

    /// A fixed32 field.
    #[inline(always)]
    fn fixed32<T: Trail>(&mut self, at: usize, field: u32, wt: u8, t: &mut T) -> Result<(), Stop> {
        self.want(at, field, wt, I32, t)?;
        self.fixed(32, t)
    }
}

/// UTF-8 check with an inlined ASCII fast path (attribute keys and most
/// values are short ASCII).
#[inline(always)]
fn utf8_ok(s: &[u8]) -> bool {
    ascii(s) || std::str::from_utf8(s).is_ok()
}

/// High bits of every byte of `s` are set in the result only if set in some
/// byte of `s` (so `s` is ASCII iff `high_bits(s) & HIGH == 0`). Always
/// inlined, and mostly branch-free for the short strings a span is made of
/// (overlapping word loads rather than a loop whose trip count changes from
/// one string to the next).
#[inline(always)]
fn high_bits(s: &[u8]) -> u64 {
    let word = |w: &[u8; 8]| u64::from_ne_bytes(*w);
    let n = s.len();
    if let (Some(first), Some(last)) = (s.first_chunk::<8>(), s.last_chunk::<8>()) {
        let mut acc = word(first) | word(last);
        if n > 16 {
            if n <= 32 {
                // Four overlapping words cover 17..=32 bytes.
                if let (Some(a), Some(b)) =
                    (s[8..].first_chunk::<8>(), s[..n - 8].last_chunk::<8>())
                {
                    acc |= word(a) | word(b);
                }
            } else {
                let (words, _) = s.as_chunks::<8>();
                for w in words {
                    acc |= word(w);
                }
            }
        }
        acc
    } else if let (Some(first), Some(last)) = (s.first_chunk::<4>(), s.last_chunk::<4>()) {
        u64::from(u32::from_ne_bytes(*first) | u32::from_ne_bytes(*last))
    } else if let (Some(&first), Some(&last)) = (s.first(), s.last()) {
        // 1..=3 bytes: first, middle and last cover them all.
        u64::from(first | s[n / 2] | last)
    } else {
        0
    }
}

/// The high bit of every byte (see [`high_bits`]).
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Whether `s` is all ASCII.
#[inline(always)]
fn ascii(s: &[u8]) -> bool {
    high_bits(s) & HIGH == 0
}

// ---------------------------------------------------------------------------
// Message scanners. `depth` is the depth of the message being scanned.
// Field numbers and wire types follow opentelemetry-proto v1.x
// (collector/trace/v1, trace/v1, common/v1, resource/v1).
// ---------------------------------------------------------------------------

/// opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest
fn request<T: Trail>(b: &[u8], t: &mut T) -> Result<usize, Stop> {
    let mut c = Cur::new(b, 0);
    const DEPTH: u32 = 1;
    let mut spans = 0usize;
    let mut n_rs = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("resource_spans", Some(n_rs));
                n_rs += 1;
                let m = c.message(at, 1, wt, DEPTH, t)?;
                spans += resource_spans(m.b, m.base, DEPTH + 1, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(spans)
}

/// opentelemetry.proto.trace.v1.ResourceSpans
fn resource_spans<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<usize, Stop> {
    let mut c = Cur::new(b, base);
    let mut spans = 0usize;
    let mut n_ss = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("resource", None);
                let m = c.message(at, 1, wt, depth, t)?;
                resource(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            2 => {
                t.enter("scope_spans", Some(n_ss));
                n_ss += 1;
                let m = c.message(at, 2, wt, depth, t)?;
                spans += scope_spans(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            3 => {
                t.enter("schema_url", None);
                c.string(at, 3, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(spans)
}

/// opentelemetry.proto.resource.v1.Resource
fn resource<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n_attr = 0usize;
    let mut n_ent = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("attributes", Some(n_attr));
                n_attr += 1;
                let m = c.message(at, 1, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
            }
            2 => {
                t.enter("dropped_attributes_count", None);
                c.scalar_varint(at, 2, wt, t)?;
                t.leave();
            }
            3 => {
                // prost decodes entity_refs, so they are checked too (a skipped
                // malformed EntityRef would make a later decode fail).
                t.enter("entity_refs", Some(n_ent));
                n_ent += 1;
                let m = c.message(at, 3, wt, depth, t)?;
                entity_ref(m.b, m.base, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.common.v1.EntityRef (all fields are strings).
fn entity_ref<T: Trail>(b: &[u8], base: usize, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let (mut n_id, mut n_desc) = (0usize, 0usize);
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        let (name, index) = match field {
            1 => ("schema_url", None),
            2 => ("type", None),
            3 => {
                n_id += 1;
                ("id_keys", Some(n_id - 1))
            }
            4 => {
                n_desc += 1;
                ("description_keys", Some(n_desc - 1))
            }
            _ => {
                c.skip(at, field, wt, t)?;
                continue;
            }
        };
        t.enter(name, index);
        c.string(at, field as u32, wt, t)?;
        t.leave();
    }
    Ok(())
}

/// opentelemetry.proto.trace.v1.ScopeSpans
fn scope_spans<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<usize, Stop> {
    let mut c = Cur::new(b, base);
    let mut spans = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("scope", None);
                let m = c.message(at, 1, wt, depth, t)?;
                scope(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            2 => {
                let (mut at, mut wt) = (at, wt);
                loop {
                    t.enter("spans", Some(spans));
                    spans += 1;
                    let m = c.message(at, 2, wt, depth, t)?;
                    span(m.b, m.base, depth + 1, t)?;
                    t.leave();
                    // Spans come in runs: take the next one directly.
                    if c.b.get(c.pos) != Some(&(2 << 3 | LEN)) {
                        break;
                    }
                    (at, wt) = (c.pos, LEN);
                    c.pos += 1;
                }
            }
            3 => {
                t.enter("schema_url", None);
                c.string(at, 3, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(spans)
}

/// opentelemetry.proto.common.v1.InstrumentationScope
fn scope<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n_attr = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("name", None);
                c.string(at, 1, wt, t)?;
                t.leave();
            }
            2 => {
                t.enter("version", None);
                c.string(at, 2, wt, t)?;
                t.leave();
            }
            3 => {
                t.enter("attributes", Some(n_attr));
                n_attr += 1;
                let m = c.message(at, 3, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
            }
            4 => {
                t.enter("dropped_attributes_count", None);
                c.scalar_varint(at, 4, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// Element counts of a span's repeated fields so far (for error paths).
#[derive(Default)]
struct SpanCounts {
    attributes: usize,
    events: usize,
    links: usize,
}

/// opentelemetry.proto.trace.v1.Span
fn span<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n = SpanCounts::default();
    // Encoders write fields in field-number order: take the usual leading
    // fields with straight-line checks (which predict well, unlike the
    // dispatch below), then handle whatever remains in any order.
    macro_rules! in_order {
        ($($field:literal: $wt:expr),*) => {$(
            if c.b.get(c.pos) == Some(&($field << 3 | $wt)) {
                let at = c.pos;
                c.pos += 1;
                span_field(&mut c, &mut n, at, $field, $wt, depth, t)?;
            }
        )*};
    }
    in_order!(1: LEN, 2: LEN, 3: LEN, 4: LEN, 5: LEN, 6: VARINT, 7: I64, 8: I64, 9: LEN);
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        span_field(&mut c, &mut n, at, field, wt, depth, t)?;
    }
    Ok(())
}

/// One field of a span whose key (`field`, `wt`) started at `at`.
#[inline(always)]
fn span_field<T: Trail>(
    c: &mut Cur<'_>,
    n: &mut SpanCounts,
    at: usize,
    field: u64,
    wt: u8,
    depth: u32,
    t: &mut T,
) -> Result<(), Stop> {
    match field {
        1 => {
            t.enter("trace_id", None);
            c.id(at, 1, wt, Id::Trace, t)?;
            t.leave();
        }
        2 => {
            t.enter("span_id", None);
            c.id(at, 2, wt, Id::Span, t)?;
            t.leave();
        }
        3 => {
            t.enter("trace_state", None);
            c.string(at, 3, wt, t)?;
            t.leave();
        }
        4 => {
            t.enter("parent_span_id", None);
            c.id(at, 4, wt, Id::ParentSpan, t)?;
            t.leave();
        }
        5 => {
            t.enter("name", None);
            c.string(at, 5, wt, t)?;
            t.leave();
        }
        6 => {
            t.enter("kind", None);
            c.scalar_varint(at, 6, wt, t)?;
            t.leave();
        }
        7 => {
            t.enter("start_time_unix_nano", None);
            c.fixed64(at, 7, wt, t)?;
            t.leave();
        }
        8 => {
            t.enter("end_time_unix_nano", None);
            c.fixed64(at, 8, wt, t)?;
            t.leave();
        }
        9 => {
            let (mut at, mut wt) = (at, wt);
            loop {
                t.enter("attributes", Some(n.attributes));
                n.attributes += 1;
                let m = c.message(at, 9, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
                // Attributes come in runs: take the next one without
                // going back through the field dispatch.
                if c.b.get(c.pos) != Some(&(9 << 3 | LEN)) {
                    break;
                }
                (at, wt) = (c.pos, LEN);
                c.pos += 1;
            }
        }
        10 => {
            t.enter("dropped_attributes_count", None);
            c.scalar_varint(at, 10, wt, t)?;
            t.leave();
        }
        11 => {
            t.enter("events", Some(n.events));
            n.events += 1;
            let m = c.message(at, 11, wt, depth, t)?;
            event(m.b, m.base, depth + 1, t)?;
            t.leave();
        }
        12 => {
            t.enter("dropped_events_count", None);
            c.scalar_varint(at, 12, wt, t)?;
            t.leave();
        }
        13 => {
            t.enter("links", Some(n.links));
            n.links += 1;
            let m = c.message(at, 13, wt, depth, t)?;
            link(m.b, m.base, depth + 1, t)?;
            t.leave();
        }
        14 => {
            t.enter("dropped_links_count", None);
            c.scalar_varint(at, 14, wt, t)?;
            t.leave();
        }
        15 => {
            t.enter("status", None);
            let m = c.message(at, 15, wt, depth, t)?;
            status(m.b, m.base, t)?;
            t.leave();
        }
        16 => {
            t.enter("flags", None);
            c.fixed32(at, 16, wt, t)?;
            t.leave();
        }
        _ => c.skip(at, field, wt, t)?,
    }
    Ok(())
}

/// opentelemetry.proto.trace.v1.Span.Event
fn event<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n_attr = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("time_unix_nano", None);
                c.fixed64(at, 1, wt, t)?;
                t.leave();
            }
            2 => {
                t.enter("name", None);
                c.string(at, 2, wt, t)?;
                t.leave();
            }
            3 => {
                t.enter("attributes", Some(n_attr));
                n_attr += 1;
                let m = c.message(at, 3, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
            }
            4 => {
                t.enter("dropped_attributes_count", None);
                c.scalar_varint(at, 4, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.trace.v1.Span.Link
fn link<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n_attr = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("trace_id", None);
                c.id(at, 1, wt, Id::Trace, t)?;
                t.leave();
            }
            2 => {
                t.enter("span_id", None);
                c.id(at, 2, wt, Id::Span, t)?;
                t.leave();
            }
            3 => {
                t.enter("trace_state", None);
                c.string(at, 3, wt, t)?;
                t.leave();
            }
            4 => {
                t.enter("attributes", Some(n_attr));
                n_attr += 1;
                let m = c.message(at, 4, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
            }
            5 => {
                t.enter("dropped_attributes_count", None);
                c.scalar_varint(at, 5, wt, t)?;
                t.leave();
            }
            6 => {
                t.enter("flags", None);
                c.fixed32(at, 6, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.trace.v1.Status (field 1 is reserved: skipped as unknown).
fn status<T: Trail>(b: &[u8], base: usize, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            2 => {
                t.enter("message", None);
                c.string(at, 2, wt, t)?;
                t.leave();
            }
            3 => {
                t.enter("code", None);
                c.scalar_varint(at, 3, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// A `KeyValue` body at `depth`. The common shapes (a key and a scalar
/// value, one-byte lengths) are recognised inline; anything else, including
/// every malformed input, goes through [`key_value`].
#[inline(always)]
fn attribute<T: Trail>(m: Cur<'_>, depth: u32, t: &mut T) -> Result<(), Stop> {
    if depth < MAX_DEPTH && simple_key_value(m.b) {
        Ok(())
    } else {
        key_value(m.b, m.base, depth, t)
    }
}

/// `0a <len> key 12 <len> value` with one-byte lengths, an ASCII key and an
/// `AnyValue` holding nothing, one ASCII string (one-byte length), a bool, an
/// int or a double: exactly what [`key_value`] would accept for these bytes.
/// (Non-ASCII strings take the general path.)
#[inline(always)]
fn simple_key_value(b: &[u8]) -> bool {
    let [0x0a, klen, rest @ ..] = b else {
        return false;
    };
    let klen = usize::from(*klen);
    if klen >= 0x80 || rest.len() < klen {
        return false;
    }
    let (key, rest) = rest.split_at(klen);
    let [0x12, vlen, value @ ..] = rest else {
        return false;
    };
    if *vlen >= 0x80 || usize::from(*vlen) != value.len() {
        return false;
    }
    match value {
        [0x0a, slen, s @ ..] => {
            // Key and string checked together: one test instead of two.
            *slen < 0x80
                && usize::from(*slen) == s.len()
                && (high_bits(key) | high_bits(s)) & HIGH == 0
        }
        [0x10 | 0x18, n @ ..] => exact_varint(n) && ascii(key),
        [0x21, n @ ..] => n.len() == 8 && ascii(key),
        [] => ascii(key),
        _ => false,
    }
}

/// `n` is exactly one valid varint.
#[inline(always)]
fn exact_varint(n: &[u8]) -> bool {
    match n.split_last() {
        Some((&last, init)) => {
            last < 0x80
                && init.len() < 10
                && init.iter().all(|&b| b >= 0x80)
                && (init.len() < 9 || last <= 1)
        }
        None => false,
    }
}

/// opentelemetry.proto.common.v1.KeyValue (general path, see [`attribute`]).
fn key_value<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("key", None);
                c.string(at, 1, wt, t)?;
                t.leave();
            }
            2 => {
                t.enter("value", None);
                let m = c.message(at, 2, wt, depth, t)?;
                any_value(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            3 => {
                // key_strindex (int32), known to opentelemetry-proto >= 0.31.
                t.enter("key_strindex", None);
                c.scalar_varint(at, 3, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.common.v1.AnyValue (a oneof; repeated or mixed
/// members are accepted, as protobuf parsers merge them).
#[inline]
fn any_value<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("string_value", None);
                c.string(at, 1, wt, t)?;
                t.leave();
            }
            2 => {
                t.enter("bool_value", None);
                c.scalar_varint(at, 2, wt, t)?;
                t.leave();
            }
            3 => {
                t.enter("int_value", None);
                c.scalar_varint(at, 3, wt, t)?;
                t.leave();
            }
            4 => {
                t.enter("double_value", None);
                c.fixed64(at, 4, wt, t)?;
                t.leave();
            }
            5 => {
                t.enter("array_value", None);
                let m = c.message(at, 5, wt, depth, t)?;
                array_value(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            6 => {
                t.enter("kvlist_value", None);
                let m = c.message(at, 6, wt, depth, t)?;
                kvlist_value(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            7 => {
                t.enter("bytes_value", None);
                c.bytes(at, 7, wt, t)?;
                t.leave();
            }
            8 => {
                // string_value_strindex (int32), known to opentelemetry-proto >= 0.31.
                t.enter("string_value_strindex", None);
                c.scalar_varint(at, 8, wt, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.common.v1.ArrayValue
fn array_value<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("values", Some(n));
                n += 1;
                let m = c.message(at, 1, wt, depth, t)?;
                any_value(m.b, m.base, depth + 1, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

/// opentelemetry.proto.common.v1.KeyValueList
fn kvlist_value<T: Trail>(b: &[u8], base: usize, depth: u32, t: &mut T) -> Result<(), Stop> {
    let mut c = Cur::new(b, base);
    let mut n = 0usize;
    while c.more() {
        let at = c.pos;
        let (field, wt) = c.key(t)?;
        match field {
            1 => {
                t.enter("values", Some(n));
                n += 1;
                let m = c.message(at, 1, wt, depth, t)?;
                attribute(m, depth + 1, t)?;
                t.leave();
            }
            _ => c.skip(at, field, wt, t)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        any_value, AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        span, status, ResourceSpans, ScopeSpans, Span, Status,
    };
    use prost::encoding::encode_varint;
    use prost::Message;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    // ----- builders -------------------------------------------------------

    fn kv(key: &str, value: Option<any_value::Value>) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value }),
            key_strindex: 0,
        }
    }

    fn sv(v: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(v.to_string()))
    }

    fn iv(v: i64) -> Option<any_value::Value> {
        Some(any_value::Value::IntValue(v))
    }

    fn min_span(i: u8) -> Span {
        Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            name: format!("s{i}"),
            ..Default::default()
        }
    }

    /// A span with every field set, including events, links, status, nested
    /// array/kvlist attributes and bytes values.
    fn full_span(i: u8) -> Span {
        use any_value::Value;
        Span {
            trace_id: vec![i; 16],
            span_id: vec![i.wrapping_add(1); 8],
            trace_state: "rojo=00f067aa0ba902b7".into(),
            parent_span_id: vec![7; 8],
            flags: 0x301,
            name: format!("GET /users/{i} ✓"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_123_456_789,
            attributes: vec![
                kv("http.method", sv("GET")),
                kv("http.status_code", iv(200)),
                kv("negative", iv(-5)),
                kv("ok", Some(Value::BoolValue(true))),
                kv("ratio", Some(Value::DoubleValue(0.25))),
                kv("blob", Some(Value::BytesValue(vec![0, 0xff, 0x80]))),
                kv(
                    "arr",
                    Some(Value::ArrayValue(ArrayValue {
                        values: vec![
                            AnyValue { value: sv("x") },
                            AnyValue { value: None },
                            AnyValue {
                                value: Some(Value::KvlistValue(KeyValueList {
                                    values: vec![
                                        kv("nested", iv(1)),
                                        kv(
                                            "deeper",
                                            Some(Value::ArrayValue(ArrayValue {
                                                values: vec![AnyValue { value: iv(2) }],
                                            })),
                                        ),
                                    ],
                                })),
                            },
                        ],
                    })),
                ),
                kv("empty", None),
                kv("ünïcödé", sv("日本語 🚀")),
            ],
            dropped_attributes_count: 3,
            events: vec![
                span::Event {
                    time_unix_nano: 5,
                    name: "exception".into(),
                    attributes: vec![kv("exception.message", sv("boom"))],
                    dropped_attributes_count: 1,
                },
                span::Event::default(),
            ],
            dropped_events_count: 2,
            links: vec![span::Link {
                trace_id: vec![1; 16],
                span_id: vec![2; 8],
                trace_state: "a=b".into(),
                attributes: vec![kv("link.attr", iv(3))],
                dropped_attributes_count: 4,
                flags: 1,
            }],
            dropped_links_count: 5,
            status: Some(Status {
                message: "boom".into(),
                code: status::StatusCode::Error as i32,
            }),
        }
    }

    fn resource() -> Resource {
        Resource {
            attributes: vec![kv("service.name", sv("checkout")), kv("pid", iv(42))],
            dropped_attributes_count: 1,
            entity_refs: vec![EntityRef {
                schema_url: "https://opentelemetry.io/schemas/1.0".into(),
                r#type: "service".into(),
                id_keys: vec!["service.name".into()],
                description_keys: vec!["pid".into(), "ü".into()],
            }],
        }
    }

    fn scope() -> InstrumentationScope {
        InstrumentationScope {
            name: "lib".into(),
            version: "1.2.3".into(),
            attributes: vec![kv("scope.attr", sv("v"))],
            dropped_attributes_count: 2,
        }
    }

    fn encode(resource_spans: Vec<ResourceSpans>) -> Vec<u8> {
        ExportTraceServiceRequest { resource_spans }.encode_to_vec()
    }

    fn prost_count(buf: &[u8]) -> Result<usize, prost::DecodeError> {
        let req = ExportTraceServiceRequest::decode(buf)?;
        Ok(req
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum())
    }

    /// Appends a length-delimited field.
    fn put_len(out: &mut Vec<u8>, field: u32, body: &[u8]) {
        encode_varint(u64::from(field << 3 | 2), out);
        encode_varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// Request { resource_spans { scope_spans { spans: <span body> } } }, by hand.
    fn request_with_span_body(span: &[u8]) -> Vec<u8> {
        let mut ss = Vec::new();
        put_len(&mut ss, 2, span);
        let mut rs = Vec::new();
        put_len(&mut rs, 2, &ss);
        let mut req = Vec::new();
        put_len(&mut req, 1, &rs);
        req
    }

    fn find(haystack: &[u8], needle: &[u8]) -> usize {
        haystack
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("marker present")
    }

    // ----- random valid requests -------------------------------------------

    fn rand_string(rng: &mut StdRng) -> String {
        const POOL: &[&str] = &[
            "",
            "a",
            "http.method",
            "service.name",
            "héllo wörld",
            "日本語",
            "emoji 🚀🔥",
        ];
        if rng.random_bool(0.5) {
            POOL[rng.random_range(0..POOL.len())].to_string()
        } else {
            let n = rng.random_range(0..200);
            (0..n)
                .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                .collect()
        }
    }

    fn rand_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
        (0..n).map(|_| rng.random()).collect()
    }

    fn rand_any(rng: &mut StdRng, depth: u32) -> AnyValue {
        use any_value::Value;
        let kinds = if depth >= 3 { 5 } else { 8 };
        let value = match rng.random_range(0..kinds) {
            0 => Some(Value::StringValue(rand_string(rng))),
            1 => Some(Value::BoolValue(rng.random())),
            2 => Some(Value::IntValue(rng.random())),
            3 => Some(Value::DoubleValue(rng.random())),
            4 => {
                let n = rng.random_range(0..300);
                Some(Value::BytesValue(rand_bytes(rng, n)))
            }
            5 => Some(Value::ArrayValue(ArrayValue {
                values: (0..rng.random_range(0..4))
                    .map(|_| rand_any(rng, depth + 1))
                    .collect(),
            })),
            6 => Some(Value::KvlistValue(KeyValueList {
                values: (0..rng.random_range(0..4))
                    .map(|_| rand_kv(rng, depth + 1))
                    .collect(),
            })),
            _ => None,
        };
        AnyValue { value }
    }

    fn rand_kv(rng: &mut StdRng, depth: u32) -> KeyValue {
        KeyValue {
            key: rand_string(rng),
            value: rng.random_bool(0.95).then(|| rand_any(rng, depth)),
            key_strindex: 0,
        }
    }

    fn rand_attrs(rng: &mut StdRng, max: usize) -> Vec<KeyValue> {
        (0..rng.random_range(0..=max))
            .map(|_| rand_kv(rng, 0))
            .collect()
    }

    fn rand_span(rng: &mut StdRng) -> Span {
        Span {
            trace_id: rand_bytes(rng, 16),
            span_id: rand_bytes(rng, 8),
            trace_state: if rng.random_bool(0.2) {
                rand_string(rng)
            } else {
                String::new()
            },
            parent_span_id: if rng.random_bool(0.5) {
                rand_bytes(rng, 8)
            } else {
                Vec::new()
            },
            flags: rng.random(),
            name: rand_string(rng),
            kind: rng.random_range(0..6),
            start_time_unix_nano: rng.random(),
            end_time_unix_nano: rng.random(),
            attributes: rand_attrs(rng, 12),
            dropped_attributes_count: rng.random_range(0..3),
            events: (0..rng.random_range(0..3))
                .map(|_| span::Event {
                    time_unix_nano: rng.random(),
                    name: rand_string(rng),
                    attributes: rand_attrs(rng, 3),
                    dropped_attributes_count: rng.random_range(0..2),
                })
                .collect(),
            dropped_events_count: rng.random_range(0..2),
            links: (0..rng.random_range(0..3))
                .map(|_| span::Link {
                    trace_id: rand_bytes(rng, 16),
                    span_id: rand_bytes(rng, 8),
                    trace_state: rand_string(rng),
                    attributes: rand_attrs(rng, 2),
                    dropped_attributes_count: rng.random(),
                    flags: rng.random(),
                })
                .collect(),
            dropped_links_count: rng.random(),
            status: rng.random_bool(0.5).then(|| Status {
                message: rand_string(rng),
                code: rng.random_range(0..3),
            }),
        }
    }

    fn rand_request(rng: &mut StdRng) -> ExportTraceServiceRequest {
        let resource_spans = (0..rng.random_range(0..4))
            .map(|_| ResourceSpans {
                resource: rng.random_bool(0.8).then(|| Resource {
                    attributes: rand_attrs(rng, 5),
                    dropped_attributes_count: rng.random_range(0..2),
                    entity_refs: if rng.random_bool(0.2) {
                        vec![EntityRef {
                            schema_url: rand_string(rng),
                            r#type: rand_string(rng),
                            id_keys: vec![rand_string(rng)],
                            description_keys: vec![rand_string(rng), rand_string(rng)],
                        }]
                    } else {
                        Vec::new()
                    },
                }),
                scope_spans: (0..rng.random_range(0..4))
                    .map(|_| ScopeSpans {
                        scope: rng.random_bool(0.7).then(|| InstrumentationScope {
                            name: rand_string(rng),
                            version: rand_string(rng),
                            attributes: rand_attrs(rng, 2),
                            dropped_attributes_count: rng.random_range(0..2),
                        }),
                        spans: (0..rng.random_range(0..6))
                            .map(|_| rand_span(rng))
                            .collect(),
                        schema_url: rand_string(rng),
                    })
                    .collect(),
                schema_url: rand_string(rng),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }
    }

    fn full_request() -> Vec<u8> {
        encode(vec![
            ResourceSpans {
                resource: Some(resource()),
                scope_spans: vec![
                    ScopeSpans {
                        scope: Some(scope()),
                        spans: vec![full_span(1), full_span(2), min_span(3)],
                        schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
                    },
                    ScopeSpans::default(),
                ],
                schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![full_span(4), min_span(5)],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            },
        ])
    }

    // ----- valid input ------------------------------------------------------

    #[test]
    fn valid_shapes_scan_with_right_count() {
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (Vec::new(), 0),
            (encode(vec![ResourceSpans::default()]), 0),
            (
                encode(vec![ResourceSpans {
                    resource: Some(resource()),
                    scope_spans: vec![ScopeSpans::default(), ScopeSpans::default()],
                    schema_url: "s".into(),
                }]),
                0,
            ),
            (
                encode(vec![ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        scope: Some(scope()),
                        spans: vec![min_span(1)],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }]),
                1,
            ),
            (
                encode(vec![ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        scope: None,
                        // Absent IDs are not checked (only present ones are).
                        spans: vec![Span::default(), full_span(9)],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }]),
                2,
            ),
            (full_request(), 5),
        ];
        for (buf, want) in cases {
            assert_eq!(scan_export_request(&buf), Ok(want));
            assert_eq!(prost_count(&buf).expect("prost decodes"), want);
        }
    }

    #[test]
    fn scan_resource_spans_counts_one_message() {
        let req = ExportTraceServiceRequest::decode(full_request().as_slice()).expect("decode");
        let mut total = 0;
        for rs in &req.resource_spans {
            let n = scan_resource_spans(&rs.encode_to_vec()).expect("valid");
            assert_eq!(
                n,
                rs.scope_spans.iter().map(|s| s.spans.len()).sum::<usize>()
            );
            total += n;
        }
        assert_eq!(total, 5);
        // Errors are located relative to the ResourceSpans body.
        let mut bad = ResourceSpans::default();
        bad.scope_spans.push(ScopeSpans {
            spans: vec![Span {
                span_id: vec![1; 3],
                ..min_span(1)
            }],
            ..Default::default()
        });
        let err = scan_resource_spans(&bad.encode_to_vec()).unwrap_err();
        assert_eq!(err.path, "scope_spans[0].spans[0].span_id");
        assert_eq!(err.message, "span_id must be 8 bytes, got 3");
    }

    #[test]
    fn random_valid_requests_agree_with_prost() {
        let mut rng = StdRng::seed_from_u64(0x07e1_e7ace);
        let mut spans = 0;
        for _ in 0..300 {
            let buf = rand_request(&mut rng).encode_to_vec();
            let n = scan_export_request(&buf).expect("valid request");
            assert_eq!(n, prost_count(&buf).expect("prost decodes"));
            spans += n;
        }
        assert!(spans > 800, "generator produced too few spans: {spans}");
    }

    // ----- truncation and fuzzing -------------------------------------------

    fn check_accepted_implies_prost(buf: &[u8]) -> bool {
        match scan_export_request(buf) {
            Ok(n) => {
                match prost_count(buf) {
                    Ok(m) => assert_eq!(n, m, "span count disagrees with prost"),
                    Err(e) => panic!("scanner accepted what prost rejects ({e}): {buf:02x?}"),
                }
                true
            }
            Err(e) => {
                assert!(e.offset <= buf.len(), "offset past the end: {e}");
                assert!(!e.path.is_empty() && !e.message.is_empty());
                false
            }
        }
    }

    #[test]
    fn truncations_never_accepted_when_prost_rejects() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut bufs = vec![full_request()];
        while bufs.len() < 6 {
            let buf = rand_request(&mut rng).encode_to_vec();
            if (500..6000).contains(&buf.len()) {
                bufs.push(buf);
            }
        }
        let mut rejected = 0;
        for buf in &bufs {
            for cut in 0..buf.len() {
                if !check_accepted_implies_prost(&buf[..cut]) {
                    rejected += 1;
                }
            }
        }
        assert!(rejected > 0);
    }

    #[test]
    fn bit_flip_fuzz_never_accepts_what_prost_rejects() {
        let mut rng = StdRng::seed_from_u64(0xf1a5);
        let mut bases = vec![full_request()];
        while bases.len() < 25 {
            let buf = rand_request(&mut rng).encode_to_vec();
            if !buf.is_empty() {
                bases.push(buf);
            }
        }
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..6000 {
            let mut buf = bases[rng.random_range(0..bases.len())].clone();
            for _ in 0..rng.random_range(1..=3) {
                let i = rng.random_range(0..buf.len());
                match rng.random_range(0..10) {
                    0 => buf[i] = rng.random(),
                    1 => buf.truncate(i.max(1)),
                    2 => buf.insert(i, rng.random()),
                    _ => buf[i] ^= 1 << rng.random_range(0..8),
                }
            }
            if check_accepted_implies_prost(&buf) {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        println!("bit-flip fuzz: {accepted} accepted, {rejected} rejected");
        assert!(accepted > 100 && rejected > 100, "{accepted} / {rejected}");
    }

    #[test]
    fn ascii_and_utf8_checks_match_std() {
        for n in 0..80 {
            let mut s: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(ascii(&s) && utf8_ok(&s), "len {n}");
            for i in 0..n {
                let keep = s[i];
                s[i] = 0x80 | keep;
                assert!(!ascii(&s), "len {n}, high bit at {i}");
                assert_eq!(utf8_ok(&s), std::str::from_utf8(&s).is_ok());
                s[i] = keep;
            }
        }
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..20_000 {
            let n = rng.random_range(0..40);
            let s: Vec<u8> = (0..n)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        rng.random_range(0..0x80)
                    } else {
                        rng.random()
                    }
                })
                .collect();
            assert_eq!(ascii(&s), s.is_ascii());
            assert_eq!(utf8_ok(&s), std::str::from_utf8(&s).is_ok());
        }
    }

    /// The inline fast path for attributes never accepts what the general
    /// `KeyValue` scanner rejects.
    #[test]
    fn attribute_fast_path_agrees_with_general_scanner() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut fast = 0;
        for i in 0..20_000 {
            let mut b = rand_kv(&mut rng, 2).encode_to_vec();
            if i % 2 == 1 && !b.is_empty() {
                let at = rng.random_range(0..b.len());
                b[at] ^= 1 << rng.random_range(0..8);
            }
            let general = key_value(&b, 0, 5, &mut NoTrail).is_ok();
            if simple_key_value(&b) {
                fast += 1;
                assert!(general, "fast path accepted {b:02x?}");
            }
        }
        assert!(fast > 1000, "fast path rarely taken: {fast}");
    }

    // ----- invalid input ----------------------------------------------------

    #[test]
    fn bad_trace_id_length_is_located() {
        let mut spans: Vec<Span> = (0..4).map(min_span).collect();
        spans[3].trace_id = vec![0xab; 5];
        let buf = encode(vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![
                ScopeSpans {
                    spans: vec![min_span(9)],
                    ..Default::default()
                },
                ScopeSpans {
                    spans,
                    ..Default::default()
                },
            ],
            schema_url: String::new(),
        }]);
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(err.message, "trace_id must be 16 bytes, got 5");
        assert_eq!(
            err.path,
            "resource_spans[0].scope_spans[1].spans[3].trace_id"
        );
        assert_eq!(&buf[err.offset..err.offset + 5], &[0xab; 5]);
        assert_eq!(
            err.to_string(),
            format!(
                "trace_id must be 16 bytes, got 5 (at byte {}, in \
                 resource_spans[0].scope_spans[1].spans[3].trace_id)",
                err.offset
            )
        );
    }

    #[test]
    fn bad_id_lengths() {
        let one = |s: Span| {
            encode(vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![s],
                    ..Default::default()
                }],
                ..Default::default()
            }])
        };
        let cases = [
            (
                Span {
                    span_id: vec![1; 16],
                    ..min_span(1)
                },
                "span_id must be 8 bytes, got 16",
                "resource_spans[0].scope_spans[0].spans[0].span_id",
            ),
            (
                Span {
                    parent_span_id: vec![1; 3],
                    ..min_span(1)
                },
                "parent_span_id must be empty or 8 bytes, got 3",
                "resource_spans[0].scope_spans[0].spans[0].parent_span_id",
            ),
            (
                Span {
                    links: vec![span::Link::default(), {
                        let mut l = full_span(1).links.remove(0);
                        l.trace_id = vec![1; 15];
                        l
                    }],
                    ..min_span(1)
                },
                "trace_id must be 16 bytes, got 15",
                "resource_spans[0].scope_spans[0].spans[0].links[1].trace_id",
            ),
            (
                Span {
                    links: vec![span::Link {
                        trace_id: vec![1; 16],
                        span_id: vec![1; 7],
                        ..Default::default()
                    }],
                    ..min_span(1)
                },
                "span_id must be 8 bytes, got 7",
                "resource_spans[0].scope_spans[0].spans[0].links[0].span_id",
            ),
        ];
        for (s, message, path) in cases {
            let buf = one(s);
            // prost itself does not care about ID lengths.
            assert!(prost_count(&buf).is_ok());
            let err = scan_export_request(&buf).unwrap_err();
            assert_eq!((err.message.as_str(), err.path.as_str()), (message, path));
        }
        // All-zero IDs and an empty parent are fine.
        let ok = one(Span {
            trace_id: vec![0; 16],
            span_id: vec![0; 8],
            parent_span_id: Vec::new(),
            ..Default::default()
        });
        assert_eq!(scan_export_request(&ok), Ok(1));
    }

    #[test]
    fn invalid_utf8_in_span_name_and_attribute_key() {
        let mut s = full_span(1);
        s.name = "NAME-MARKER".into();
        s.attributes[1].key = "KEY-MARKER".into();
        let good = encode(vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![min_span(0), s],
                ..Default::default()
            }],
            ..Default::default()
        }]);
        assert_eq!(scan_export_request(&good), Ok(2));

        let mut bad = good.clone();
        let at = find(&bad, b"NAME-MARKER");
        bad[at + 2] = 0xff;
        assert!(prost_count(&bad).is_err());
        let err = scan_export_request(&bad).unwrap_err();
        assert_eq!(err.message, "invalid UTF-8 in string field");
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[1].name");
        assert_eq!(err.offset, at);

        let mut bad = good;
        let at = find(&bad, b"KEY-MARKER");
        bad[at] = 0xc3; // lead byte followed by ASCII
        assert!(prost_count(&bad).is_err());
        let err = scan_export_request(&bad).unwrap_err();
        assert_eq!(err.message, "invalid UTF-8 in string field");
        assert_eq!(
            err.path,
            "resource_spans[0].scope_spans[0].spans[1].attributes[1].key"
        );
    }

    #[test]
    fn wrong_wire_type_for_known_field() {
        let mut body = min_span(1).encode_to_vec();
        body.extend_from_slice(&[5 << 3, 0x01]); // name as a varint
        let buf = request_with_span_body(&body);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(
            err.message,
            "wrong wire type 0 for field 5 (expected length-delimited)"
        );
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[0].name");
        assert_eq!(err.offset, buf.len() - 2);

        // flags (16) must be fixed32; AnyValue 8 (string_value_strindex) a varint.
        let mut body = min_span(1).encode_to_vec();
        encode_varint(16 << 3 | 1, &mut body);
        body.extend_from_slice(&[0; 8]);
        let buf = request_with_span_body(&body);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(
            err.message,
            "wrong wire type 1 for field 16 (expected 32-bit)"
        );

        let mut any = Vec::new();
        put_len(&mut any, 8, b"x");
        let mut kvb = Vec::new();
        put_len(&mut kvb, 2, &any);
        let mut body = min_span(1).encode_to_vec();
        put_len(&mut body, 9, &kvb);
        let buf = request_with_span_body(&body);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(
            err.path,
            "resource_spans[0].scope_spans[0].spans[0].attributes[0].value.string_value_strindex"
        );

        // A message field sent as a varint.
        let buf = [0x08, 0x01];
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(err.path, "resource_spans[0]");
        assert_eq!(err.offset, 0);
    }

    #[test]
    fn unknown_fields_are_skipped_groups_rejected() {
        let mut body = min_span(1).encode_to_vec();
        encode_varint(100 << 3, &mut body); // varint, max 10-byte value
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        encode_varint(101 << 3 | 1, &mut body); // i64
        body.extend_from_slice(&[1; 8]);
        put_len(&mut body, 102, b"hello"); // len
        encode_varint(103 << 3 | 5, &mut body); // i32
        body.extend_from_slice(&[2; 4]);
        encode_varint(u64::from(MAX_FIELD as u32) << 3, &mut body); // largest field number
        body.push(0);
        let buf = request_with_span_body(&body);
        assert_eq!(scan_export_request(&buf), Ok(1));
        let decoded = ExportTraceServiceRequest::decode(buf.as_slice()).expect("prost decodes");
        assert_eq!(
            decoded.resource_spans[0].scope_spans[0].spans[0],
            min_span(1)
        );

        // Unknown fields in every other message as well.
        let mut rs = Vec::new();
        put_len(&mut rs, 99, b"\xff\xfe not utf-8 but unknown");
        let mut req = Vec::new();
        put_len(&mut req, 1, &rs);
        encode_varint(7 << 3 | 5, &mut req);
        req.extend_from_slice(&[0; 4]);
        assert_eq!(scan_export_request(&req), Ok(0));
        assert!(prost_count(&req).is_ok());

        // Groups are not accepted (prost would skip them; we are stricter).
        let mut body = min_span(1).encode_to_vec();
        encode_varint(104 << 3 | 3, &mut body);
        encode_varint(104 << 3 | 4, &mut body);
        let err = scan_export_request(&request_with_span_body(&body)).unwrap_err();
        assert_eq!(err.message, "unsupported group wire type 3 for field 104");
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[0]");

        // Wire types 6/7, field number 0 and keys over 32 bits are invalid.
        for key in [104u64 << 3 | 6, 104 << 3 | 7, 0, 1 << 32] {
            let mut body = min_span(1).encode_to_vec();
            encode_varint(key, &mut body);
            body.push(0);
            let buf = request_with_span_body(&body);
            assert!(prost_count(&buf).is_err());
            assert!(scan_export_request(&buf).is_err(), "key {key}");
        }
    }

    #[test]
    fn malformed_varints_and_truncated_fixed_fields() {
        let with_kind = |varint: &[u8]| {
            let mut body = min_span(1).encode_to_vec();
            body.push(6 << 3);
            body.extend_from_slice(varint);
            request_with_span_body(&body)
        };
        // 11 bytes.
        let buf = with_kind(&[
            0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
        ]);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert!(err.message.starts_with("malformed varint"), "{err}");
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[0].kind");
        // 10 bytes, overflowing 64 bits.
        let buf = with_kind(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert!(prost_count(&buf).is_err());
        assert!(scan_export_request(&buf).is_err());
        // 10 bytes, u64::MAX: fine.
        let buf = with_kind(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(prost_count(&buf).is_ok());
        assert_eq!(scan_export_request(&buf), Ok(1));
        // Non-minimal encodings are valid.
        let buf = with_kind(&[0x81, 0x80, 0x80, 0x00]);
        assert!(prost_count(&buf).is_ok());
        assert_eq!(scan_export_request(&buf), Ok(1));

        // Truncated varint at the end of the span.
        let buf = with_kind(&[0x81]);
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(err.message, "truncated varint");

        // Truncated fixed64 / fixed32.
        let mut body = min_span(1).encode_to_vec();
        body.extend_from_slice(&[7 << 3 | 1, 1, 2, 3]);
        let buf = request_with_span_body(&body);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(err.message, "truncated fixed64 field");
        assert_eq!(
            err.path,
            "resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano"
        );
        assert_eq!(err.offset, buf.len() - 3);
        let mut body = min_span(1).encode_to_vec();
        body.extend_from_slice(&[0x85, 0x01, 1, 2]); // field 16, i32
        let err = scan_export_request(&request_with_span_body(&body)).unwrap_err();
        assert_eq!(err.message, "truncated fixed32 field");
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[0].flags");

        // A length past the end of the enclosing message.
        let mut body = min_span(1).encode_to_vec();
        body.extend_from_slice(&[5 << 3 | 2, 10, b'a']);
        let buf = request_with_span_body(&body);
        assert!(prost_count(&buf).is_err());
        let err = scan_export_request(&buf).unwrap_err();
        assert_eq!(err.message, "truncated length-delimited field");
        assert_eq!(err.path, "resource_spans[0].scope_spans[0].spans[0].name");
        assert_eq!(err.offset, buf.len() - 2);
    }

    /// A request whose one span has one attribute holding `levels` nested
    /// single-element arrays around an int, encoded by hand.
    fn nested_request(levels: usize) -> Vec<u8> {
        let mut any = vec![3 << 3, 0x01]; // int_value: 1
        for _ in 0..levels {
            let mut array = Vec::new();
            put_len(&mut array, 1, &any);
            any.clear();
            put_len(&mut any, 5, &array);
        }
        let mut kvb = Vec::new();
        put_len(&mut kvb, 1, b"k");
        put_len(&mut kvb, 2, &any);
        let mut body = min_span(1).encode_to_vec();
        put_len(&mut body, 9, &kvb);
        request_with_span_body(&body)
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // request(1) > resource_spans(2) > scope_spans(3) > span(4) > key_value(5)
        // > any_value(6), then two messages per level: 6 + 2 * 29 = 64.
        let ok = nested_request(29);
        assert_eq!(scan_export_request(&ok), Ok(1));
        assert!(prost_count(&ok).is_ok());

        let err = scan_export_request(&nested_request(30)).unwrap_err();
        assert_eq!(err.message, "messages nested deeper than 64 levels");
        assert!(err.path.starts_with(
            "resource_spans[0].scope_spans[0].spans[0].attributes[0].value.array_value.values[0]"
        ));
        assert!(err.path.ends_with(".array_value"), "{}", err.path);

        let deep = nested_request(1000);
        assert!(prost_count(&deep).is_err());
        let err = scan_export_request(&deep).unwrap_err();
        assert_eq!(err.message, "messages nested deeper than 64 levels");

        // kvlist nesting counts too.
        let mut any = vec![3 << 3, 0x01];
        for _ in 0..1000 {
            let mut kvb = Vec::new();
            put_len(&mut kvb, 1, b"k");
            put_len(&mut kvb, 2, &any);
            let mut list = Vec::new();
            put_len(&mut list, 1, &kvb);
            any.clear();
            put_len(&mut any, 6, &list);
        }
        let mut kvb = Vec::new();
        put_len(&mut kvb, 2, &any);
        let mut body = min_span(1).encode_to_vec();
        put_len(&mut body, 9, &kvb);
        let err = scan_export_request(&request_with_span_body(&body)).unwrap_err();
        assert_eq!(err.message, "messages nested deeper than 64 levels");
    }

    // ----- throughput ---------------------------------------------------------

    /// Throughput of the scanner (and of a prost decode, for reference) on
    /// 1000 spans of 10 attributes each:
    /// `cargo test --release -p teletrace-core wire::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "measurement, run explicitly in release mode"]
    fn throughput() {
        use std::time::Instant;
        let spans: Vec<Span> = (0..1000u32)
            .map(|i| {
                let mut s = min_span((i % 251) as u8);
                s.parent_span_id = vec![3; 8];
                s.name = format!("GET /api/v1/users/{{id}} #{}", i % 10);
                s.kind = 2;
                s.start_time_unix_nano = 1_700_000_000_000_000_000 + u64::from(i);
                s.end_time_unix_nano = s.start_time_unix_nano + 1_000_000;
                s.status = Some(Status {
                    message: String::new(),
                    code: 1,
                });
                s.attributes = vec![
                    kv("http.request.method", sv("GET")),
                    kv("url.path", sv("/api/v1/users/12345")),
                    kv("url.scheme", sv("https")),
                    kv("server.address", sv("api.example.com")),
                    kv("server.port", iv(443)),
                    kv("http.response.status_code", iv(200)),
                    kv("user_agent.original", sv("Mozilla/5.0 (X11; Linux x86_64)")),
                    kv("network.protocol.version", sv("1.1")),
                    kv("client.address", sv("10.1.2.3")),
                    kv("http.route", sv("/api/v1/users/{id}")),
                ];
                s
            })
            .collect();
        let buf = encode(vec![ResourceSpans {
            resource: Some(resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }]);
        assert_eq!(scan_export_request(&buf), Ok(1000));

        // CPU time of this thread (Linux), so that other load on the machine
        // does not skew the figure; wall time elsewhere.
        fn cpu_ns() -> Option<u64> {
            let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
            stat.split_whitespace().next()?.parse().ok()
        }
        // Best and median of 15 rounds of about 0.2 s, as CPU time of this
        // thread where available, so that other load on the machine skews the
        // figures less.
        let measure = |name: &str, f: &dyn Fn() -> usize| {
            let mut rates = Vec::new();
            for _ in 0..15 {
                let (start, cpu_start) = (Instant::now(), cpu_ns());
                let mut spans = 0usize;
                while start.elapsed().as_secs_f64() < 0.2 {
                    for _ in 0..10 {
                        spans += std::hint::black_box(f());
                    }
                }
                let secs = match (cpu_start, cpu_ns()) {
                    (Some(a), Some(b)) if b > a => (b - a) as f64 / 1e9,
                    _ => start.elapsed().as_secs_f64(),
                };
                rates.push(spans as f64 / secs);
            }
            rates.sort_by(f64::total_cmp);
            let bytes_per_span = buf.len() as f64 / 1000.0;
            println!(
                "{name}: best {:.2} M spans/s ({:.0} MB/s), median {:.2} M spans/s \
                 ({} bytes/request of 1000 spans)",
                rates[14] / 1e6,
                rates[14] * bytes_per_span / 1e6,
                rates[7] / 1e6,
                buf.len(),
            );
        };
        measure("scan_export_request", &|| {
            scan_export_request(std::hint::black_box(&buf)).unwrap_or(0)
        });
        measure("prost decode (reference)", &|| {
            prost_count(std::hint::black_box(&buf)).unwrap_or(0)
        });
    }
}
