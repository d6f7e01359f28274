//! `${env:VAR}`, `${VAR}`, `${env:VAR:-default}` and `$$` expansion in config strings, as
//! the OpenTelemetry Collector does it: on scalar values after parsing, so a variable
//! cannot inject YAML structure. When a whole scalar is one variable, the expanded text
//! is read again as a YAML scalar, so `${env:PORT}` can give an integer.

use super::ConfigError;
use serde_yaml::Value;

/// Expands variables in every string of `value`, reading them through `lookup`.
pub fn expand_value(
    value: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(());
            }
            let whole_var = is_single_reference(s);
            let expanded = expand_str(s, lookup).map_err(|m| ConfigError::new(path, m))?;
            *value = if whole_var {
                reparse_scalar(expanded)
            } else {
                Value::String(expanded)
            };
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(item, &format!("{path}::{i}"), lookup)?;
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                let key = key_text(key);
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}::{key}")
                };
                expand_value(item, &child, lookup)?;
            }
        }
        Value::Tagged(tagged) => expand_value(&mut tagged.value, path, lookup)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// A mapping key as text, for paths in error messages.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

fn is_single_reference(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}') && s[2..].find('}') == Some(s.len() - 3)
}

fn reparse_scalar(text: String) -> Value {
    match serde_yaml::from_str::<Value>(&text) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        _ => Value::String(text),
    }
}

/// Expands one string. `$$` is a literal `$`; a `$` not followed by `{` or `$` stays.
pub fn expand_str(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| format!("unterminated variable reference in {s:?}"))?;
            out.push_str(&resolve_reference(&body[..end], lookup)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_reference(
    reference: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let (scheme, spec) = match reference.split_once(':') {
        Some((scheme, spec))
            if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) =>
        {
            (Some(scheme), spec)
        }
        _ => (None, reference),
    };
    if let Some(scheme) = scheme {
        if scheme != "env" {
            return Err(format!(
                "unsupported config provider {scheme:?} in ${{{reference}}}: only env is supported"
            ));
        }
    }
    let (name, default) = match spec.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (spec, None),
    };
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "invalid environment variable name {name:?} in ${{{reference}}}"
        ));
    }
    match lookup(name) {
        Some(v) if !v.is_empty() || default.is_none() => Ok(v),
        _ => match default {
            Some(d) => Ok(d.to_string()),
            None => {
                tracing::warn!(
                    variable = name,
                    "environment variable is not set; using an empty string"
                );
                Ok(String::new())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "PORT" => Some("4317".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_every_form() {
        assert_eq!(
            expand_str("${env:HOST}:${PORT}", &env).unwrap(),
            "example.com:4317"
        );
        assert_eq!(
            expand_str("${env:MISSING:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(
            expand_str("${env:EMPTY:-fallback}", &env).unwrap(),
            "fallback"
        );
        assert_eq!(
            expand_str("${env:HOST:-fallback}", &env).unwrap(),
            "example.com"
        );
        assert_eq!(expand_str("cost $$5 ${MISSING}", &env).unwrap(), "cost $5 ");
        assert_eq!(expand_str("a$b", &env).unwrap(), "a$b");
        assert_eq!(expand_str("$${env:HOST}", &env).unwrap(), "${env:HOST}");
    }

    #[test]
    fn rejects_bad_references() {
        assert!(expand_str("${env:HOST", &env)
            .unwrap_err()
            .contains("unterminated"));
        assert!(expand_str("${file:/etc/x}", &env)
            .unwrap_err()
            .contains("provider"));
        assert!(expand_str("${env:1X}", &env)
            .unwrap_err()
            .contains("invalid"));
    }

    #[test]
    fn whole_reference_keeps_its_type() {
        let mut v: Value = serde_yaml::from_str("a: ${env:PORT}\nb: port ${env:PORT}").unwrap();
        expand_value(&mut v, "", &env).unwrap();
        assert_eq!(v["a"], Value::Number(4317.into()));
        assert_eq!(v["b"], Value::String("port 4317".into()));
    }

    #[test]
    fn error_names_the_path() {
        let mut v: Value =
            serde_yaml::from_str("exporters:\n  debug:\n    x: ${bad-name}").unwrap();
        let e = expand_value(&mut v, "", &env).unwrap_err();
        assert_eq!(e.path, "exporters::debug::x");
    }
}
