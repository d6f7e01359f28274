//! The parsed form of a condition.

use regex::Regex;

/// A boolean expression: what a condition is.
#[derive(Debug, Clone)]
pub enum Condition {
    /// True when any part is.
    Or(Vec<Condition>),
    /// True when every part is.
    And(Vec<Condition>),
    /// True when the inner condition is false.
    Not(Box<Condition>),
    /// `true` or `false`.
    Literal(bool),
    /// A comparison of two values.
    Compare(Operand, CompareOp, Operand),
    /// `IsMatch(target, "regexp")`: an unanchored regexp search on the target's string form.
    IsMatch(Operand, Regex),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MathOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl MathOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            MathOp::Add => "+",
            MathOp::Sub => "-",
            MathOp::Mul => "*",
            MathOp::Div => "/",
        }
    }
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `nil`
    Nil,
    /// `true`, `false`
    Bool(bool),
    /// An integer, or an enum such as `SPAN_KIND_SERVER`.
    Int(i64),
    /// A float.
    Double(f64),
    /// A string.
    Str(String),
    /// `Duration("1s")`, in nanoseconds.
    Duration(i64),
}

/// A value in a comparison.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A literal.
    Literal(Literal),
    /// A field of the span, its resource or scope.
    Path(Path),
    /// Arithmetic on two values.
    Math(Box<Operand>, MathOp, Box<Operand>),
    /// A condition used as a boolean value (`IsMatch(...) == false`).
    Condition(Box<Condition>),
}

/// A key into a map (`["k"]`) or a list (`[0]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Key {
    /// A map key.
    Str(String),
    /// A list index.
    Index(i64),
}

/// The span fields a condition can read.
#[derive(Debug, Clone, PartialEq)]
pub enum Path {
    /// `name`
    Name,
    /// `kind` (an int: `SPAN_KIND_SERVER` is 2)
    Kind,
    /// `kind.string` (`Server`, `Client`, ...)
    KindString,
    /// `status.code` (an int: `STATUS_CODE_ERROR` is 2)
    StatusCode,
    /// `status.message`
    StatusMessage,
    /// `attributes["k"]...`
    Attributes(Vec<Key>),
    /// `resource.attributes["k"]...`
    ResourceAttributes(Vec<Key>),
    /// `instrumentation_scope.name`
    ScopeName,
    /// `instrumentation_scope.version`
    ScopeVersion,
    /// `start_time_unix_nano` (an int)
    StartTimeUnixNano,
    /// `end_time_unix_nano` (an int)
    EndTimeUnixNano,
    /// `start_time` (a time)
    StartTime,
    /// `end_time` (a time)
    EndTime,
    /// `trace_id.string` (lowercase hex)
    TraceIdString,
    /// `span_id.string`
    SpanIdString,
    /// `parent_span_id.string`
    ParentSpanIdString,
    /// `trace_state`
    TraceState,
    /// `dropped_attributes_count`
    DroppedAttributesCount,
    /// `dropped_events_count`
    DroppedEventsCount,
    /// `dropped_links_count`
    DroppedLinksCount,
}

/// The paths a condition may use, as listed in errors and the README.
pub const SUPPORTED_PATHS: &str = "name, kind, kind.string, status.code, status.message, \
attributes[\"k\"], resource.attributes[\"k\"], instrumentation_scope.name, \
instrumentation_scope.version, start_time_unix_nano, end_time_unix_nano, start_time, \
end_time, trace_id.string, span_id.string, parent_span_id.string, trace_state, \
dropped_attributes_count, dropped_events_count, dropped_links_count";
