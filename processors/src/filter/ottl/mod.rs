//! A subset of the OpenTelemetry Transformation Language (OTTL) for span conditions: the
//! part of the collector's condition language that filter configs use in practice.
//! `lexer` splits the text, `parser` builds a [`Condition`], `eval` runs it on a span.

pub mod ast;
mod eval;
mod lexer;
mod parser;

pub use ast::Condition;
pub use eval::{evaluate, SpanContext};
pub use parser::{parse_condition, ParseError};

#[cfg(test)]
mod tests;
