//! A recursive-descent parser for the supported subset of OTTL conditions.
//!
//! Precedence, loosest first: `or`, `and`, `not`, comparisons, `+ -`, `* /`, then
//! literals, paths, function calls and parentheses.

use super::ast::{CompareOp, Condition, Key, Literal, MathOp, Operand, Path, SUPPORTED_PATHS};
use super::lexer::{tokenize, Spanned, Token};
use regex::Regex;

/// A parse error: the 1-based column and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Column (in characters, from 1) of the offending token.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

/// Parses one condition.
pub fn parse_condition(text: &str) -> Result<Condition, ParseError> {
    let tokens = tokenize(text).map_err(|(column, message)| ParseError { column, message })?;
    let mut p = Parser { tokens, pos: 0 };
    let node = p.or()?;
    let condition = p.as_condition(node)?;
    if p.peek() != &Token::End {
        return p.fail(format!(
            "expected `and`, `or` or the end of the condition, found {}",
            p.peek().describe()
        ));
    }
    Ok(condition)
}

/// A parsed piece that may be a condition or a value (told apart by how it is used).
enum Node {
    Condition(Condition),
    Value(Operand),
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].0
    }

    fn column(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].1
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.column(),
            message: message.into(),
        })
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Ident(s) if s == word)
    }

    fn expect(&mut self, punct: &str) -> Result<(), ParseError> {
        if matches!(self.peek(), Token::Punct(p) if *p == punct) {
            self.next();
            Ok(())
        } else {
            self.fail(format!(
                "expected `{punct}`, found {}",
                self.peek().describe()
            ))
        }
    }

    fn as_condition(&self, node: Node) -> Result<Condition, ParseError> {
        match node {
            Node::Condition(c) => Ok(c),
            Node::Value(Operand::Condition(c)) => Ok(*c),
            Node::Value(Operand::Literal(Literal::Bool(b))) => Ok(Condition::Literal(b)),
            Node::Value(_) => self.fail(format!(
                "expected a comparison operator (==, !=, <, <=, >, >=), found {}",
                self.peek().describe()
            )),
        }
    }

    fn or(&mut self) -> Result<Node, ParseError> {
        let first = self.and()?;
        if !self.is_keyword("or") {
            return Ok(first);
        }
        let mut parts = vec![self.as_condition(first)?];
        while self.is_keyword("or") {
            self.next();
            let node = self.and()?;
            parts.push(self.as_condition(node)?);
        }
        Ok(Node::Condition(Condition::Or(parts)))
    }

    fn and(&mut self) -> Result<Node, ParseError> {
        let first = self.not()?;
        if !self.is_keyword("and") {
            return Ok(first);
        }
        let mut parts = vec![self.as_condition(first)?];
        while self.is_keyword("and") {
            self.next();
            let node = self.not()?;
            parts.push(self.as_condition(node)?);
        }
        Ok(Node::Condition(Condition::And(parts)))
    }

    fn not(&mut self) -> Result<Node, ParseError> {
        if self.is_keyword("not") {
            self.next();
            let node = self.not()?;
            return Ok(Node::Condition(Condition::Not(Box::new(
                self.as_condition(node)?,
            ))));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, ParseError> {
        let left = self.additive()?;
        let op = match self.peek() {
            Token::Punct("==") => CompareOp::Eq,
            Token::Punct("!=") => CompareOp::Ne,
            Token::Punct("<") => CompareOp::Lt,
            Token::Punct("<=") => CompareOp::Le,
            Token::Punct(">") => CompareOp::Gt,
            Token::Punct(">=") => CompareOp::Ge,
            _ => return Ok(Node::Value(left)),
        };
        self.next();
        let right = self.additive()?;
        Ok(Node::Condition(Condition::Compare(left, op, right)))
    }

    fn additive(&mut self) -> Result<Operand, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                Token::Punct("+") => MathOp::Add,
                Token::Punct("-") => MathOp::Sub,
                _ => return Ok(left),
            };
            self.next();
            let right = self.multiplicative()?;
            left = Operand::Math(Box::new(left), op, Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Operand, ParseError> {
        let mut left = self.primary()?;
        loop {
            let op = match self.peek() {
                Token::Punct("*") => MathOp::Mul,
                Token::Punct("/") => MathOp::Div,
                _ => return Ok(left),
            };
            self.next();
            let right = self.primary()?;
            left = Operand::Math(Box::new(left), op, Box::new(right));
        }
    }

    fn primary(&mut self) -> Result<Operand, ParseError> {
        let column = self.column();
        match self.next() {
            Token::Str(s) => Ok(Operand::Literal(Literal::Str(s))),
            Token::Int(i) => Ok(Operand::Literal(Literal::Int(i))),
            Token::Float(f) => Ok(Operand::Literal(Literal::Double(f))),
            Token::Punct("-") => match self.next() {
                Token::Int(i) => Ok(Operand::Literal(Literal::Int(-i))),
                Token::Float(f) => Ok(Operand::Literal(Literal::Double(-f))),
                other => Err(ParseError {
                    column: column + 1,
                    message: format!("expected a number after `-`, found {}", other.describe()),
                }),
            },
            Token::Punct("(") => {
                let node = self.or()?;
                self.expect(")")?;
                Ok(match node {
                    Node::Condition(c) => Operand::Condition(Box::new(c)),
                    Node::Value(v) => v,
                })
            }
            Token::Ident(name) => self.named(name, column),
            other => Err(ParseError {
                column,
                message: format!("expected a value, found {}", other.describe()),
            }),
        }
    }

    fn named(&mut self, name: String, column: usize) -> Result<Operand, ParseError> {
        match name.as_str() {
            "true" => return Ok(Operand::Literal(Literal::Bool(true))),
            "false" => return Ok(Operand::Literal(Literal::Bool(false))),
            "nil" => return Ok(Operand::Literal(Literal::Nil)),
            "and" | "or" | "not" => {
                return Err(ParseError {
                    column,
                    message: format!("expected a value, found `{name}`"),
                })
            }
            _ => {}
        }
        if self.peek() == &Token::Punct("(") {
            self.next();
            return self.call(&name, column);
        }
        if let Some(value) = enum_value(&name) {
            return Ok(Operand::Literal(Literal::Int(value)));
        }
        if name.chars().next().is_some_and(|c| c.is_ascii_uppercase()) {
            return Err(ParseError {
                column,
                message: format!(
                    "unknown enum `{name}`: supported are SPAN_KIND_* and STATUS_CODE_*"
                ),
            });
        }
        let mut segments = vec![name];
        while self.peek() == &Token::Punct(".") {
            self.next();
            match self.next() {
                Token::Ident(s) => segments.push(s),
                other => {
                    return self.fail_before(format!(
                        "expected a field name after `.`, found {}",
                        other.describe()
                    ))
                }
            }
        }
        let mut keys = Vec::new();
        while self.peek() == &Token::Punct("[") {
            self.next();
            match self.next() {
                Token::Str(s) => keys.push(Key::Str(s)),
                Token::Int(i) => keys.push(Key::Index(i)),
                other => {
                    return self.fail_before(format!(
                        "expected a string key or an index inside `[]`, found {}",
                        other.describe()
                    ))
                }
            }
            self.expect("]")?;
        }
        resolve_path(&segments, keys)
            .map(Operand::Path)
            .ok_or_else(|| ParseError {
                column,
                message: format!(
                    "unknown path `{}`; supported: {SUPPORTED_PATHS}",
                    segments.join(".")
                ),
            })
    }

    /// Fails pointing at the token just consumed.
    fn fail_before<T>(&self, message: String) -> Result<T, ParseError> {
        Err(ParseError {
            column: self.tokens[self.pos.saturating_sub(1)].1,
            message,
        })
    }

    fn call(&mut self, name: &str, column: usize) -> Result<Operand, ParseError> {
        match name {
            "IsMatch" => {
                let target = self.additive()?;
                self.expect(",")?;
                let pattern_column = self.column();
                let pattern = match self.next() {
                    Token::Str(s) => s,
                    other => {
                        return Err(ParseError {
                            column: pattern_column,
                            message: format!(
                                "IsMatch takes a string literal pattern, found {}",
                                other.describe()
                            ),
                        })
                    }
                };
                let regex = Regex::new(&pattern).map_err(|e| ParseError {
                    column: pattern_column,
                    message: format!("invalid regexp {pattern:?}: {e}"),
                })?;
                self.expect(")")?;
                Ok(Operand::Condition(Box::new(Condition::IsMatch(
                    target, regex,
                ))))
            }
            "Duration" => {
                let arg_column = self.column();
                let text = match self.next() {
                    Token::Str(s) => s,
                    other => {
                        return Err(ParseError {
                            column: arg_column,
                            message: format!(
                                "Duration takes a string literal such as \"1s\", found {}",
                                other.describe()
                            ),
                        })
                    }
                };
                let d = teletrace_core::config::duration::parse(&text).map_err(|e| ParseError {
                    column: arg_column,
                    message: format!("invalid duration {text:?}: {e}"),
                })?;
                let nanos = i64::try_from(d.as_nanos()).map_err(|_| ParseError {
                    column: arg_column,
                    message: format!("duration {text:?} is too long"),
                })?;
                self.expect(")")?;
                Ok(Operand::Literal(Literal::Duration(nanos)))
            }
            other => Err(ParseError {
                column,
                message: format!("unknown function `{other}`: supported are IsMatch and Duration"),
            }),
        }
    }
}

fn enum_value(name: &str) -> Option<i64> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

fn resolve_path(segments: &[String], keys: Vec<Key>) -> Option<Path> {
    let mut names: Vec<&str> = segments.iter().map(String::as_str).collect();
    // Newer OTTL lets paths name their context: `span.name`, `span.attributes["k"]`.
    if names.len() > 1 && names[0] == "span" {
        names.remove(0);
    }
    let keyed = !keys.is_empty();
    let path = match (names.as_slice(), keyed) {
        (["attributes"], true) => Path::Attributes(keys),
        (["resource", "attributes"], true) => Path::ResourceAttributes(keys),
        (_, true) => return None,
        (["name"], _) => Path::Name,
        (["kind"], _) => Path::Kind,
        (["kind", "string"], _) => Path::KindString,
        (["status", "code"], _) => Path::StatusCode,
        (["status", "message"], _) => Path::StatusMessage,
        (["instrumentation_scope", "name"], _) => Path::ScopeName,
        (["instrumentation_scope", "version"], _) => Path::ScopeVersion,
        (["start_time_unix_nano"], _) => Path::StartTimeUnixNano,
        (["end_time_unix_nano"], _) => Path::EndTimeUnixNano,
        (["start_time"], _) => Path::StartTime,
        (["end_time"], _) => Path::EndTime,
        (["trace_id", "string"], _) => Path::TraceIdString,
        (["span_id", "string"], _) => Path::SpanIdString,
        (["parent_span_id", "string"], _) => Path::ParentSpanIdString,
        (["trace_state"], _) => Path::TraceState,
        (["dropped_attributes_count"], _) => Path::DroppedAttributesCount,
        (["dropped_events_count"], _) => Path::DroppedEventsCount,
        (["dropped_links_count"], _) => Path::DroppedLinksCount,
        _ => return None,
    };
    Some(path)
}
