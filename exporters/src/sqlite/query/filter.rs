//! `keyValueFilter`s as SQL predicates over a span (alias `s`), every value bound.
//!
//! An attribute filter matches that key only. Positive operators (`equals`, `in`,
//! `contains`, `gt`...) match a span having a row for the key that satisfies them; the
//! negated ones (`not_equals`, `not_in`, `not_contains`) match a span that has the key but
//! no row satisfying the positive form; `exists` / `not_exists` test the key alone.
//! Values compare by type: a number matches `Int` and `Double` values, a boolean matches
//! `Bool` values, a string matches text. `contains` is a literal substring test (`instr`),
//! not `LIKE`, so `%` and `_` mean themselves.

use super::sql::Sql;
use super::tag::{Column, Tag};
use crate::sqlite::attributes::{escaped, key_prefix, triple};
use crate::sqlite::batch::Source;
use crate::sqlite::value::{
    kind_value, status_value, SqlValue, BOOL, BYTES, DOUBLE, INT, KINDS, MAP, SLICE, STATUS_CODES,
    STR,
};
use serde_json::Value as Json;
use teletrace_core::storage::{KeyValueFilter, Operator, StorageError};

/// What kind of stored values an attribute operand compares with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Number,
    Bool,
}

/// One filter, checked and resolved.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    tag: Tag,
    op: Operator,
    /// For span and scope columns: values in the column's form. For attributes: values
    /// with their class.
    operands: Vec<(SqlValue, Class)>,
}

fn bad(message: String) -> StorageError {
    StorageError::BadRequest(message)
}

/// The positive form of an operator and whether it was negated.
fn positive(op: Operator) -> (Operator, bool) {
    match op {
        Operator::NotEquals => (Operator::Equals, true),
        Operator::NotIn => (Operator::In, true),
        Operator::NotContains => (Operator::Contains, true),
        other => (other, false),
    }
}

impl Filter {
    /// Resolves a request filter.
    pub(crate) fn parse(filter: &KeyValueFilter) -> Result<Filter, StorageError> {
        let tag = Tag::parse(&filter.key)?;
        let op = filter.operator;
        let scalars: Vec<&Json> = match op {
            Operator::Exists | Operator::NotExists => Vec::new(),
            Operator::In | Operator::NotIn => match &filter.value {
                Json::Array(items) => items.iter().collect(),
                other => vec![other],
            },
            _ => match &filter.value {
                Json::Array(_) | Json::Object(_) | Json::Null => {
                    return Err(bad(format!(
                        "filter on {:?}: operator {op:?} needs a string, number or boolean value",
                        filter.key
                    )))
                }
                other => vec![other],
            },
        };
        let operands = scalars
            .into_iter()
            .map(|v| operand(&tag, op, v))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("filter on {:?}: {e}", filter.key)))?;
        Ok(Filter { tag, op, operands })
    }

    /// The predicate on span `s`.
    pub(crate) fn predicate(&self) -> Sql {
        let (op, negated) = positive(self.op);
        match &self.tag {
            Tag::Span { column, .. } => {
                let expr = format!("s.{column}");
                let optional = optional_column(column);
                match self.op {
                    Operator::Exists if optional => Sql::new(&presence_sql(&expr)),
                    Operator::Exists => Sql::new("1"),
                    Operator::NotExists => {
                        if optional {
                            let mut sql = Sql::new("NOT (");
                            sql.push(&presence_sql(&expr)).push(")");
                            sql
                        } else {
                            Sql::new("0")
                        }
                    }
                    _ => {
                        let compare = column_compare(op, &self.operands, &expr);
                        if !negated {
                            return compare;
                        }
                        let mut sql = Sql::new("NOT (");
                        sql.append(&compare).push(")");
                        if optional {
                            sql.push(" AND ").push(&presence_sql(&expr));
                        }
                        sql
                    }
                }
            }
            tag => presence_and_match(self.op, negated, has_row(tag, None), || match tag {
                Tag::Attribute {
                    source: Source::Span,
                    key,
                } => self.span_attribute_matching(op, key),
                _ => has_row(tag, Some(&self.row_predicate(op))),
            }),
        }
    }

    /// Span `s` has attribute `key` satisfying the positive operator `op`. Equality is a
    /// substring test for each exact stored form of the operands (see
    /// `sqlite::attributes`); other operators read the span's attributes as rows, after
    /// the substring test for the key has ruled out most spans.
    fn span_attribute_matching(&self, op: Operator, key: &str) -> Sql {
        if matches!(op, Operator::Equals | Operator::In) {
            let mut sql = Sql::new("(0");
            for (value, class) in &self.operands {
                let types: &[&str] = match class {
                    Class::Text => &[STR, SLICE, MAP, BYTES],
                    Class::Number => &[INT, DOUBLE],
                    Class::Bool => &[BOOL],
                };
                for type_name in types {
                    if let Some(text) = triple(key, type_name, value) {
                        sql.push(" OR instr(s.attributes, ")
                            .text_param(&text)
                            .push(") > 0");
                    }
                }
            }
            sql.push(")");
            return sql;
        }
        if let (
            Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte,
            Some((value, Class::Number)),
        ) = (op, self.operands.first())
        {
            return number_range(key, op, value);
        }
        let compare = attribute_compare(op, &self.operands, JSON_J);
        let exists = span_attribute_exists(key, Some(&compare));
        if op != Operator::Contains {
            return exists;
        }
        // A value containing the operand means the column contains the operand escaped
        // (escaping maps each character on its own), so most spans are ruled out
        // without reading their JSON.
        let SqlValue::Text(needle) = as_text(&self.operands) else {
            return exists;
        };
        let mut sql = Sql::new("(instr(s.attributes, ");
        sql.text_param(&escaped(&needle))
            .push(") > 0 AND ")
            .append(&exists)
            .push(")");
        sql
    }

    /// The predicate on the row alias of the tag's table, for the positive operator.
    fn row_predicate(&self, op: Operator) -> Sql {
        match &self.tag {
            Tag::Attribute {
                source: Source::Span,
                ..
            } => attribute_compare(op, &self.operands, JSON_J),
            Tag::Attribute { .. } => attribute_compare(op, &self.operands, TABLE_A),
            Tag::Scope { column } => column_compare(op, &self.operands, &format!("sc.{column}")),
            Tag::EventName => column_compare(op, &self.operands, "e.name"),
            Tag::Span { column, .. } => column_compare(op, &self.operands, &format!("s.{column}")),
        }
    }

    /// A query listing the rowids (as `span_rowid`) of the spans this filter matches
    /// among spans starting in `[start, end]` (and maybe others), when an index can
    /// produce them directly, so a selective filter can drive the search instead of the
    /// time index.
    pub(crate) fn driver(&self, start: i64, end: i64) -> Option<Sql> {
        let (op, negated) = positive(self.op);
        if negated
            || matches!(
                op,
                Operator::Contains | Operator::Exists | Operator::NotExists
            )
        {
            return None;
        }
        match &self.tag {
            Tag::Span { column, .. } => {
                let mut sql = Sql::new("SELECT s.rowid AS span_rowid FROM spans AS s WHERE ");
                match *column {
                    // Indexed per segment (see migrations/0004).
                    "trace_id" | "parent_span_id" | "span_id" | "duration" => {
                        sql.append(&segments_in("s", start, end)).push(" AND ");
                    }
                    "end_time_unix_nano" => {}
                    _ => return None,
                }
                sql.append(&column_compare(op, &self.operands, &format!("s.{column}")));
                Some(sql)
            }
            Tag::Attribute { source, key } => {
                let mut sql = match source {
                    Source::Span => return Some(self.span_attribute_driver(op, key, start, end)),
                    Source::Resource => Sql::new(
                        "SELECT s.rowid AS span_rowid FROM spans AS s WHERE s.resource_set_id IN \
                         (SELECT m.resource_set_id FROM resource_set_members AS m \
                         WHERE m.resource_attribute_id IN (SELECT a.resource_id FROM resource_attributes AS a \
                         WHERE a.key = ",
                    ),
                    // Events and links name their span by ID, which is indexed per
                    // segment: the segments of the timeframe are looked up.
                    Source::Event | Source::Link => {
                        let (owners, attributes, owner_id) = if *source == Source::Event {
                            ("events", "event_attributes", "event_id")
                        } else {
                            ("links", "link_attributes", "link_id")
                        };
                        let mut sql =
                            Sql::new("SELECT s.rowid AS span_rowid FROM spans AS s WHERE ");
                        sql.append(&segments_in("s", start, end)).push(&format!(
                            " AND s.span_id IN (SELECT o.span_id FROM {attributes} AS a \
                             JOIN {owners} AS o ON o.id = a.{owner_id} WHERE a.key = "
                        ));
                        sql
                    }
                    Source::Scope => return None,
                };
                sql.text_param(key).push(" AND ");
                sql.append(&attribute_compare(op, &self.operands, TABLE_A));
                match source {
                    Source::Resource => sql.push("))"),
                    _ => sql.push(")"),
                };
                Some(sql)
            }
            Tag::Scope { .. } | Tag::EventName => None,
        }
    }
}

impl Filter {
    /// Candidate spans for a positive filter on span attribute `key`: from the postings
    /// of sealed segments, and by scanning the spans of unsealed ones.
    fn span_attribute_driver(&self, op: Operator, key: &str, start: i64, end: i64) -> Sql {
        let mut sql = Sql::new(
            "SELECT j.value AS span_rowid FROM span_attribute_postings AS a \
             CROSS JOIN json_each(a.span_rowids) AS j WHERE ",
        );
        sql.append(&segments_sealed("a", true, start, end))
            .push(" AND a.key = ")
            .text_param(key)
            .push(" AND ")
            .append(&attribute_compare(op, &self.operands, TABLE_A))
            .push(" UNION ALL SELECT s.rowid AS span_rowid FROM spans AS s WHERE ")
            .append(&segments_sealed("s", false, start, end))
            .push(" AND ")
            .append(&self.span_attribute_matching(op, key));
        sql
    }
}

/// Span `s` has a number attribute `key` with `value op operand`, read straight from
/// the column: the number follows `["key","Int",` or `["key","Double",`, and SQLite's
/// `CAST` of text takes its leading number. Infinities are stored as strings and
/// matched whole; NaN matches nothing.
fn number_range(key: &str, op: Operator, operand: &SqlValue) -> Sql {
    let cmp = comparison(op);
    let prefix = key_prefix(key);
    let int = format!("{prefix}\"{INT}\",");
    let double = format!("{prefix}\"{DOUBLE}\",");
    // substr and instr count characters.
    let after = |text: &str| text.chars().count();
    let mut sql = Sql::new("((instr(s.attributes, ");
    sql.text_param(&int)
        .push(") > 0 AND CAST(substr(s.attributes, instr(s.attributes, ")
        .text_param(&int)
        .push(&format!(") + {}) AS INTEGER) {cmp} ", after(&int)))
        .param(operand.clone())
        .push(") OR (instr(s.attributes, ")
        .text_param(&double)
        .push(") > 0 AND substr(s.attributes, instr(s.attributes, ")
        .text_param(&double)
        .push(&format!(
            ") + {}, 1) != '\"' AND CAST(substr(s.attributes, instr(s.attributes, ",
            after(&double)
        ))
        .text_param(&double)
        .push(&format!(") + {}) AS REAL) {cmp} ", after(&double)))
        .param(operand.clone())
        .push(") OR instr(s.attributes, ");
    let infinity = if matches!(op, Operator::Gt | Operator::Gte) {
        "Inf"
    } else {
        "-Inf"
    };
    sql.text_param(&format!("{double}\"{infinity}\"]"))
        .push(") > 0)");
    sql
}

/// Span `s` has attribute `key` (whatever its value).
fn span_has_key(key: &str) -> Sql {
    let mut sql = Sql::new("instr(s.attributes, ");
    sql.text_param(&key_prefix(key)).push(") > 0");
    sql
}

/// Span `s` has attribute `key` satisfying `row` (over the columns of [`JSON_J`]), or
/// at all: the substring test for the key rules out most spans before the JSON is read.
pub(crate) fn span_attribute_exists(key: &str, row: Option<&Sql>) -> Sql {
    let mut sql = Sql::new("(");
    sql.append(&span_has_key(key));
    if let Some(row) = row {
        sql.push(&format!(
            " AND EXISTS (SELECT 1 FROM json_each(s.attributes) AS j WHERE {JSON_J_KEY} = "
        ))
        .text_param(key)
        .push(" AND ")
        .append(row)
        .push(")");
    }
    sql.push(")");
    sql
}

/// `alias.bucket IN (segments sealed (or not) holding spans that start in [start, end])`.
pub(crate) fn segments_sealed(alias: &str, sealed: bool, start: i64, end: i64) -> Sql {
    let mut sql = Sql::new(&format!(
        "{alias}.bucket IN (SELECT bucket FROM segments WHERE sealed = {} AND max_start_time_unix_nano >= ",
        i32::from(sealed)
    ));
    sql.int_param(start)
        .push(" AND min_start_time_unix_nano <= ")
        .int_param(end)
        .push(")");
    sql
}

/// An attribute-like filter from `any` (the span has the key or row at all) and
/// `matching` (it has one satisfying the positive operator): `exists` is `any`,
/// `not_exists` its negation, a negated operator matches spans having the key without a
/// matching value.
fn presence_and_match(
    op: Operator,
    negated: bool,
    any: Sql,
    matching: impl FnOnce() -> Sql,
) -> Sql {
    match op {
        Operator::Exists => any,
        Operator::NotExists => {
            let mut sql = Sql::new("NOT ");
            sql.append(&any);
            sql
        }
        _ if negated => {
            let mut sql = any;
            sql.push(" AND NOT ").append(&matching());
            sql
        }
        _ => matching(),
    }
}

/// `parent_span_id` and `trace_state` are stored empty when absent.
fn optional_column(column: &str) -> bool {
    matches!(column, "parent_span_id" | "trace_state")
}

fn presence_sql(expr: &str) -> String {
    format!("({expr} IS NOT NULL AND {expr} != '')")
}

/// `EXISTS` a row of the tag's table for span `s` (with the key, for attributes), and
/// satisfying `row` when given.
fn has_row(tag: &Tag, row: Option<&Sql>) -> Sql {
    let (mut sql, close) = match tag {
        Tag::Attribute { source, key } => {
            let (head, close) = match source {
                Source::Span => {
                    // `Filter::predicate` has faster forms; this is the general one, with
                    // `row` over the columns of `JSON_J`.
                    return span_attribute_exists(key, row);
                }
                Source::Resource => (
                    "(s.resource_set_id IN (SELECT m.resource_set_id FROM resource_set_members AS m \
                     WHERE m.resource_attribute_id IN (SELECT a.resource_id FROM resource_attributes AS a \
                     WHERE a.key = ",
                    ")))",
                ),
                Source::Scope => (
                    "(s.instrumentation_scope_id IN (SELECT a.scope_id FROM scope_attributes AS a \
                     WHERE a.key = ",
                    "))",
                ),
                Source::Event => (
                    "EXISTS (SELECT 1 FROM events AS e JOIN event_attributes AS a ON a.event_id = e.id \
                     WHERE e.span_id = s.span_id AND a.key = ",
                    ")",
                ),
                Source::Link => (
                    "EXISTS (SELECT 1 FROM links AS l JOIN link_attributes AS a ON a.link_id = l.id \
                     WHERE l.span_id = s.span_id AND a.key = ",
                    ")",
                ),
            };
            let mut sql = Sql::new(head);
            sql.text_param(key);
            (sql, close)
        }
        Tag::Scope { column } => (
            Sql::new(&format!(
                "(s.instrumentation_scope_id IN (SELECT sc.id FROM scopes AS sc WHERE {}",
                presence_sql(&format!("sc.{column}"))
            )),
            "))",
        ),
        Tag::EventName => (
            Sql::new("EXISTS (SELECT 1 FROM events AS e WHERE e.span_id = s.span_id"),
            ")",
        ),
        Tag::Span { .. } => (Sql::new("(1"), ")"),
    };
    if let Some(row) = row {
        sql.push(" AND ").append(row);
    }
    sql.push(close);
    sql
}

/// `s.bucket IN (segments holding spans that start in [start, end])`.
pub(crate) fn segments_in(alias: &str, start: i64, end: i64) -> Sql {
    let mut sql = Sql::new(&format!(
        "{alias}.bucket IN (SELECT bucket FROM segments WHERE max_start_time_unix_nano >= "
    ));
    sql.int_param(start)
        .push(" AND min_start_time_unix_nano <= ")
        .int_param(end)
        .push(")");
    sql
}

/// The value and type of an attribute row, as SQL expressions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttributeColumns<'a> {
    /// The value.
    pub value: &'a str,
    /// The type name.
    pub type_name: &'a str,
}

/// The columns of attribute table alias `a`.
pub(crate) const TABLE_A: AttributeColumns<'static> = AttributeColumns {
    value: "a.value",
    type_name: "a.type",
};

/// An element `j` of `json_each(s.attributes)`, read as the `span_attributes` view
/// presents it.
pub(crate) const JSON_J: AttributeColumns<'static> = AttributeColumns {
    value: "(CASE WHEN j.value ->> 1 = 'Double' AND json_type(j.value, '$[2]') = 'text' \
            THEN CASE j.value ->> 2 WHEN 'Inf' THEN 9e999 WHEN '-Inf' THEN -9e999 END \
            ELSE j.value ->> 2 END)",
    type_name: "(j.value ->> 1)",
};

/// The key of element `j` of `json_each(s.attributes)`.
pub(crate) const JSON_J_KEY: &str = "(j.value ->> 0)";

/// The type guard for an operand class.
fn guard(class: Class, columns: AttributeColumns<'_>) -> String {
    let ty = columns.type_name;
    match class {
        Class::Text => String::new(),
        Class::Number => format!(" AND {ty} IN ('Int', 'Double')"),
        Class::Bool => format!(" AND {ty} = 'Bool'"),
    }
}

/// A positive comparison of attribute rows (columns `value`, `type`).
fn attribute_compare(
    op: Operator,
    operands: &[(SqlValue, Class)],
    columns: AttributeColumns<'_>,
) -> Sql {
    let value = columns.value;
    let alias = columns;
    match op {
        Operator::In => {
            let mut sql = Sql::new("(");
            let mut first = true;
            for class in [Class::Text, Class::Number, Class::Bool] {
                let values: Vec<SqlValue> = operands
                    .iter()
                    .filter(|(_, c)| *c == class)
                    .map(|(v, _)| v.clone())
                    .collect();
                if values.is_empty() {
                    continue;
                }
                if !first {
                    sql.push(" OR ");
                }
                first = false;
                sql.push("(").push(value).push(" IN ").list(values);
                sql.push(&guard(class, alias)).push(")");
            }
            if first {
                sql.push("0");
            }
            sql.push(")");
            sql
        }
        Operator::Contains => {
            let mut sql = Sql::new(&format!("instr({value}, "));
            sql.param(as_text(operands)).push(") > 0");
            sql
        }
        _ => {
            let Some((operand, class)) = operands.first() else {
                return Sql::new("0");
            };
            let mut sql = Sql::new(&format!("({value} {} ", comparison(op)));
            sql.param(operand.clone()).push(&guard(*class, alias));
            if *class == Class::Text && op != Operator::Equals {
                // Numbers sort before all text; an ordering on text looks at strings only.
                sql.push(&format!(" AND {} = 'Str'", alias.type_name));
            }
            sql.push(")");
            sql
        }
    }
}

/// A positive comparison of a column expression.
fn column_compare(op: Operator, operands: &[(SqlValue, Class)], expr: &str) -> Sql {
    match op {
        Operator::In => {
            if operands.is_empty() {
                return Sql::new("0");
            }
            let mut sql = Sql::new(&format!("{expr} IN "));
            sql.list(operands.iter().map(|(v, _)| v.clone()));
            sql
        }
        Operator::Contains => {
            let mut sql = Sql::new(&format!("instr({expr}, "));
            sql.param(as_text(operands)).push(") > 0");
            sql
        }
        _ => {
            let Some((operand, _)) = operands.first() else {
                return Sql::new("0");
            };
            let mut sql = Sql::new(&format!("{expr} {} ", comparison(op)));
            sql.param(operand.clone());
            sql
        }
    }
}

fn comparison(op: Operator) -> &'static str {
    match op {
        Operator::Gt => ">",
        Operator::Gte => ">=",
        Operator::Lt => "<",
        Operator::Lte => "<=",
        _ => "=",
    }
}

/// The first operand as text, for `contains`.
fn as_text(operands: &[(SqlValue, Class)]) -> SqlValue {
    match operands.first() {
        Some((SqlValue::Text(t), _)) => SqlValue::Text(t.clone()),
        Some((SqlValue::Int(i), _)) => SqlValue::Text(i.to_string()),
        Some((SqlValue::Real(d), _)) => SqlValue::Text(d.to_string()),
        _ => SqlValue::Text(String::new()),
    }
}

/// Converts one JSON value for the tag and operator.
fn operand(tag: &Tag, op: Operator, value: &Json) -> Result<(SqlValue, Class), String> {
    let ordering = matches!(
        op,
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
    );
    match tag {
        Tag::Attribute { .. } => {
            let parsed = match value {
                Json::String(s) => (SqlValue::Text(s.clone()), Class::Text),
                Json::Bool(b) => (SqlValue::Int(i64::from(*b)), Class::Bool),
                Json::Number(n) => (number(n), Class::Number),
                other => return Err(format!("unsupported value {other}")),
            };
            if ordering && parsed.1 == Class::Bool {
                return Err("booleans cannot be compared with gt, gte, lt or lte".into());
            }
            Ok(parsed)
        }
        Tag::Span { kind, .. } => column_operand(*kind, value),
        Tag::Scope { .. } | Tag::EventName => column_operand(Column::Text, value),
    }
}

fn number(n: &serde_json::Number) -> SqlValue {
    match n.as_i64() {
        Some(i) => SqlValue::Int(i),
        None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
    }
}

fn column_operand(kind: Column, value: &Json) -> Result<(SqlValue, Class), String> {
    let text = |v: &Json| -> Result<String, String> {
        match v {
            Json::String(s) => Ok(s.clone()),
            Json::Number(n) => Ok(n.to_string()),
            Json::Bool(b) => Ok(b.to_string()),
            other => Err(format!("unsupported value {other}")),
        }
    };
    let named = |names: &[&str], parse: fn(&str) -> Option<i32>| -> Result<SqlValue, String> {
        let index = match value {
            Json::Number(n) => n.as_i64().and_then(|i| i32::try_from(i).ok()),
            Json::String(s) => parse(s).or_else(|| s.parse::<i32>().ok()),
            other => return Err(format!("unsupported value {other}")),
        };
        Ok(SqlValue::Text(
            index
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| names.get(i))
                .map_or_else(|| text(value).unwrap_or_default(), |n| n.to_string()),
        ))
    };
    let converted = match kind {
        Column::Text => SqlValue::Text(text(value)?),
        Column::HexId => SqlValue::Text(text(value)?.to_ascii_lowercase()),
        Column::Int => match value {
            Json::Number(n) => number(n),
            Json::String(s) => match (s.trim().parse::<i64>(), s.trim().parse::<f64>()) {
                (Ok(i), _) => SqlValue::Int(i),
                (_, Ok(d)) => SqlValue::Real(d),
                _ => return Err(format!("{s:?} is not a number")),
            },
            other => return Err(format!("{other} is not a number")),
        },
        Column::Kind => named(&KINDS, kind_value)?,
        Column::Status => named(&STATUS_CODES, status_value)?,
    };
    Ok((converted, Class::Text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(key: &str, op: Operator, value: Json) -> Filter {
        Filter::parse(&KeyValueFilter {
            key: key.into(),
            operator: op,
            value,
        })
        .unwrap()
    }

    #[test]
    fn values_are_parameters_never_text() {
        let f = filter(
            "span.attributes.q",
            Operator::Equals,
            Json::String("x' OR '1'='1".into()),
        );
        let sql = f.predicate();
        assert!(!sql.text().contains("OR '1'"), "{}", sql.text());
        let f = filter(
            "span.name",
            Operator::Contains,
            Json::String("\"; DROP TABLE spans; --".into()),
        );
        assert!(!f.predicate().text().contains("DROP"));
    }

    #[test]
    fn kinds_and_status_codes_accept_otlp_forms() {
        for v in [
            Json::from(2),
            Json::from("SPAN_KIND_SERVER"),
            Json::from("server"),
        ] {
            let f = filter("span.kind", Operator::Equals, v);
            assert_eq!(f.operands[0].0, SqlValue::Text("Server".into()));
        }
        let f = filter(
            "span.status.code",
            Operator::Equals,
            Json::from("STATUS_CODE_ERROR"),
        );
        assert_eq!(f.operands[0].0, SqlValue::Text("Error".into()));
    }

    #[test]
    fn bad_values_are_bad_requests() {
        let bad = |key: &str, op, value| {
            Filter::parse(&KeyValueFilter {
                key: String::from(key),
                operator: op,
                value,
            })
            .is_err()
        };
        assert!(bad("span.attributes.a", Operator::Gt, Json::Bool(true)));
        assert!(bad("span.attributes.a", Operator::Equals, Json::Null));
        assert!(bad(
            "externalFields.durationNano",
            Operator::Gt,
            Json::from("fast")
        ));
        assert!(bad("nope", Operator::Exists, Json::Null));
    }
}
