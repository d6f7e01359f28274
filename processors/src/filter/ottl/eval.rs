//! Evaluates a parsed condition against one span, with OTTL's comparison rules: values of
//! different types are never equal (numbers compare across int and double), `nil` equals
//! only `nil`, ordering applies to numbers, strings, times and durations only.

use super::ast::{CompareOp, Condition, Key, Literal, MathOp, Operand, Path};
use crate::matching::value;
use std::borrow::Cow;
use std::cmp::Ordering;
use teletrace_core::proto::tonic::common::v1::any_value::Value as Any;
use teletrace_core::proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::Span;

/// What a condition is evaluated against: a span with its resource and scope.
#[derive(Clone, Copy)]
pub struct SpanContext<'a> {
    /// The span's resource.
    pub resource: &'a Resource,
    /// The span's instrumentation scope.
    pub scope: &'a InstrumentationScope,
    /// The span.
    pub span: &'a Span,
}

/// A runtime value.
#[derive(Debug, Clone)]
enum Val<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(Cow<'a, str>),
    Bytes(&'a [u8]),
    /// A list or map attribute.
    Complex(&'a AnyValue),
    /// Nanoseconds since the Unix epoch.
    Time(i64),
    /// Nanoseconds.
    Duration(i64),
}

impl Val<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "nil",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Double(_) => "double",
            Val::Str(_) => "string",
            Val::Bytes(_) => "bytes",
            Val::Complex(v) => match v.value {
                Some(Any::ArrayValue(_)) => "slice",
                _ => "map",
            },
            Val::Time(_) => "time",
            Val::Duration(_) => "duration",
        }
    }
}

/// Evaluates `condition` for one span. Errors (arithmetic on the wrong types, division by
/// zero, indexing a value that is not a map or list) are reported, not panicked on.
pub fn evaluate(condition: &Condition, cx: SpanContext<'_>) -> Result<bool, String> {
    match condition {
        Condition::Or(parts) => {
            for p in parts {
                if evaluate(p, cx)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Condition::And(parts) => {
            for p in parts {
                if !evaluate(p, cx)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Condition::Not(inner) => Ok(!evaluate(inner, cx)?),
        Condition::Literal(b) => Ok(*b),
        Condition::Compare(l, op, r) => Ok(compare(&operand(l, cx)?, *op, &operand(r, cx)?)),
        Condition::IsMatch(target, regex) => Ok(match operand(target, cx)? {
            Val::Nil => false,
            Val::Str(s) => regex.is_match(&s),
            Val::Bool(b) => regex.is_match(if b { "true" } else { "false" }),
            Val::Int(i) => regex.is_match(&i.to_string()),
            Val::Double(d) => regex.is_match(&value::format_double(d)),
            Val::Bytes(b) => regex.is_match(&hex::encode(b)),
            Val::Complex(v) => regex.is_match(&value::as_string(v)),
            other => {
                return Err(format!(
                    "IsMatch: a {} cannot be matched against a regexp",
                    other.type_name()
                ))
            }
        }),
    }
}

fn operand<'a>(op: &'a Operand, cx: SpanContext<'a>) -> Result<Val<'a>, String> {
    match op {
        Operand::Literal(l) => Ok(match l {
            Literal::Nil => Val::Nil,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Int(i) => Val::Int(*i),
            Literal::Double(d) => Val::Double(*d),
            Literal::Str(s) => Val::Str(Cow::Borrowed(s)),
            Literal::Duration(d) => Val::Duration(*d),
        }),
        Operand::Condition(c) => evaluate(c, cx).map(Val::Bool),
        Operand::Path(p) => path(p, cx),
        Operand::Math(l, op, r) => math(operand(l, cx)?, *op, operand(r, cx)?),
    }
}

fn nanos(t: u64) -> i64 {
    i64::try_from(t).unwrap_or(i64::MAX)
}

fn path<'a>(p: &'a Path, cx: SpanContext<'a>) -> Result<Val<'a>, String> {
    let span = cx.span;
    Ok(match p {
        Path::Name => Val::Str(Cow::Borrowed(&span.name)),
        Path::Kind => Val::Int(i64::from(span.kind)),
        Path::KindString => Val::Str(Cow::Borrowed(match span.kind {
            1 => "Internal",
            2 => "Server",
            3 => "Client",
            4 => "Producer",
            5 => "Consumer",
            _ => "Unspecified",
        })),
        Path::StatusCode => Val::Int(span.status.as_ref().map_or(0, |s| i64::from(s.code))),
        Path::StatusMessage => Val::Str(Cow::Borrowed(
            span.status.as_ref().map_or("", |s| s.message.as_str()),
        )),
        Path::Attributes(keys) => lookup(&span.attributes, keys)?,
        Path::ResourceAttributes(keys) => lookup(&cx.resource.attributes, keys)?,
        Path::ScopeName => Val::Str(Cow::Borrowed(&cx.scope.name)),
        Path::ScopeVersion => Val::Str(Cow::Borrowed(&cx.scope.version)),
        Path::StartTimeUnixNano => Val::Int(nanos(span.start_time_unix_nano)),
        Path::EndTimeUnixNano => Val::Int(nanos(span.end_time_unix_nano)),
        Path::StartTime => Val::Time(nanos(span.start_time_unix_nano)),
        Path::EndTime => Val::Time(nanos(span.end_time_unix_nano)),
        Path::TraceIdString => Val::Str(Cow::Owned(hex::encode(&span.trace_id))),
        Path::SpanIdString => Val::Str(Cow::Owned(hex::encode(&span.span_id))),
        Path::ParentSpanIdString => Val::Str(Cow::Owned(hex::encode(&span.parent_span_id))),
        Path::TraceState => Val::Str(Cow::Borrowed(&span.trace_state)),
        Path::DroppedAttributesCount => Val::Int(i64::from(span.dropped_attributes_count)),
        Path::DroppedEventsCount => Val::Int(i64::from(span.dropped_events_count)),
        Path::DroppedLinksCount => Val::Int(i64::from(span.dropped_links_count)),
    })
}

fn lookup<'a>(attributes: &'a [KeyValue], keys: &'a [Key]) -> Result<Val<'a>, String> {
    let Some((Key::Str(first), rest)) = keys.split_first() else {
        return Err("attributes must be indexed with a string key".into());
    };
    let Some(mut current) = value::get(attributes, first) else {
        return Ok(Val::Nil);
    };
    for key in rest {
        let next = match (&current.value, key) {
            (Some(Any::KvlistValue(m)), Key::Str(k)) => value::get(&m.values, k),
            (Some(Any::ArrayValue(a)), Key::Index(i)) => {
                match usize::try_from(*i).ok().and_then(|i| a.values.get(i)) {
                    Some(v) => Some(v),
                    None => {
                        return Err(format!(
                            "index {i} out of bounds for a slice of {}",
                            a.values.len()
                        ))
                    }
                }
            }
            (_, Key::Str(k)) => {
                return Err(format!(
                    "type {} does not support string indexing (key {k:?})",
                    value::type_name(current)
                ))
            }
            (_, Key::Index(_)) => {
                return Err(format!(
                    "type {} does not support int indexing",
                    value::type_name(current)
                ))
            }
        };
        match next {
            Some(v) => current = v,
            None => return Ok(Val::Nil),
        }
    }
    Ok(any_to_val(current))
}

fn any_to_val(v: &AnyValue) -> Val<'_> {
    match &v.value {
        None | Some(Any::StringValueStrindex(_)) => Val::Nil,
        Some(Any::StringValue(s)) => Val::Str(Cow::Borrowed(s)),
        Some(Any::BoolValue(b)) => Val::Bool(*b),
        Some(Any::IntValue(i)) => Val::Int(*i),
        Some(Any::DoubleValue(d)) => Val::Double(*d),
        Some(Any::BytesValue(b)) => Val::Bytes(b),
        Some(Any::ArrayValue(_) | Any::KvlistValue(_)) => Val::Complex(v),
    }
}

fn math<'a>(l: Val<'a>, op: MathOp, r: Val<'a>) -> Result<Val<'a>, String> {
    let bad = |l: &Val, r: &Val| {
        Err(format!(
            "cannot apply `{}` to {} and {}",
            op.symbol(),
            l.type_name(),
            r.type_name()
        ))
    };
    match (&l, &r) {
        (Val::Int(a), Val::Int(b)) => Ok(Val::Int(match op {
            MathOp::Add => a.wrapping_add(*b),
            MathOp::Sub => a.wrapping_sub(*b),
            MathOp::Mul => a.wrapping_mul(*b),
            MathOp::Div => {
                if *b == 0 {
                    return Err("division by zero".into());
                }
                a.wrapping_div(*b)
            }
        })),
        (Val::Double(a), Val::Double(b)) => Ok(Val::Double(match op {
            MathOp::Add => a + b,
            MathOp::Sub => a - b,
            MathOp::Mul => a * b,
            MathOp::Div => {
                if *b == 0.0 {
                    return Err("division by zero".into());
                }
                a / b
            }
        })),
        (Val::Time(a), Val::Time(b)) if op == MathOp::Sub => Ok(Val::Duration(a.wrapping_sub(*b))),
        (Val::Time(a), Val::Duration(b)) => match op {
            MathOp::Add => Ok(Val::Time(a.wrapping_add(*b))),
            MathOp::Sub => Ok(Val::Time(a.wrapping_sub(*b))),
            _ => bad(&l, &r),
        },
        (Val::Duration(a), Val::Duration(b)) => match op {
            MathOp::Add => Ok(Val::Duration(a.wrapping_add(*b))),
            MathOp::Sub => Ok(Val::Duration(a.wrapping_sub(*b))),
            _ => bad(&l, &r),
        },
        _ => bad(&l, &r),
    }
}

fn ordered(ord: Option<Ordering>, op: CompareOp) -> bool {
    let Some(ord) = ord else {
        return op == CompareOp::Ne;
    };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
    }
}

fn compare(l: &Val, op: CompareOp, r: &Val) -> bool {
    let equality_only = |equal: bool| match op {
        CompareOp::Eq => equal,
        CompareOp::Ne => !equal,
        _ => false,
    };
    match (l, r) {
        (Val::Nil, Val::Nil) => equality_only(true),
        (Val::Bool(a), Val::Bool(b)) => equality_only(a == b),
        (Val::Int(a), Val::Int(b)) => ordered(Some(a.cmp(b)), op),
        (Val::Int(a), Val::Double(b)) => ordered((*a as f64).partial_cmp(b), op),
        (Val::Double(a), Val::Int(b)) => ordered(a.partial_cmp(&(*b as f64)), op),
        (Val::Double(a), Val::Double(b)) => ordered(a.partial_cmp(b), op),
        (Val::Str(a), Val::Str(b)) => ordered(Some(a.cmp(b)), op),
        (Val::Bytes(a), Val::Bytes(b)) => ordered(Some(a.cmp(b)), op),
        (Val::Time(a), Val::Time(b)) | (Val::Duration(a), Val::Duration(b)) => {
            ordered(Some(a.cmp(b)), op)
        }
        (Val::Complex(a), Val::Complex(b)) => equality_only(a == b),
        // Different types: never equal, never ordered.
        _ => equality_only(false),
    }
}
