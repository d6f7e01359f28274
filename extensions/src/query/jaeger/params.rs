//! Query parameters of the Jaeger API, parsed as Jaeger's `query_parser.go` does:
//! times in µs (`/api/traces`) or ms (`/api/dependencies`), Go durations
//! (`minDuration=1.2s`), tags as a JSON object (`tags={"k":"v"}`), as `tag=k:v`, or as
//! the logfmt the Jaeger UI's search form takes (`tags=k=v k2="v 2"`).

use std::time::Duration;

/// The parameters of a request, in order, repeated keys kept.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `name` as an integer, if present.
    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        self.get(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|e| format!("unable to parse param '{name}': {e}"))
            })
            .transpose()
    }

    /// `name` as a Go duration (`300ms`, `1.2s`), if present.
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, String> {
        self.get(name)
            .map(|v| parse_duration(v).map_err(|e| format!("unable to parse param '{name}': {e}")))
            .transpose()
    }
}

/// A Go duration, plus days (`2d`), which the Jaeger UI's lookback uses.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Some(days) = t.strip_suffix('d') {
        if let Ok(n) = days.parse::<u64>() {
            return n
                .checked_mul(86_400)
                .map(Duration::from_secs)
                .ok_or_else(|| format!("invalid duration {text:?}: too large"));
        }
    }
    teletrace_core::config::duration::parse(t)
}

/// Tags from `tag=key:value` parameters and `tags=` parameters (a JSON object of
/// strings, numbers or booleans, or logfmt `key=value key2="value 2"`).
pub fn parse_tags(params: &Params) -> Result<Vec<(String, String)>, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    let mut put = |k: String, v: String| {
        tags.retain(|(key, _)| *key != k);
        tags.push((k, v));
    };
    for tag in params.all("tag") {
        match tag.split_once(':') {
            Some((k, v)) => put(k.to_string(), v.to_string()),
            None => {
                return Err(format!(
                    "malformed 'tag' parameter, expecting key:value, received: {tag}"
                ))
            }
        }
    }
    for text in params.all("tags") {
        if text.trim_start().starts_with('{') {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
                .map_err(|e| format!("malformed 'tags' parameter, cannot unmarshal JSON: {e}"))?;
            for (k, v) in map {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::Bool(b) => b.to_string(),
                    other => {
                        return Err(format!(
                        "malformed 'tags' parameter: value of {k:?} must be a string, got {other}"
                    ))
                    }
                };
                put(k, v);
            }
        } else {
            for (k, v) in logfmt(text)? {
                put(k, v);
            }
        }
    }
    Ok(tags)
}

/// `key=value key2="value 2" key3` (a bare key is an error: Jaeger tags need values).
fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!(
                "malformed 'tags' parameter: expected key=value, got {key:?}"
            ));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err("malformed 'tags' parameter: unterminated quote".into());
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn tags_from_json_logfmt_and_tag_params() {
        let p = params(&[
            ("tags", r#"{"http.status_code":"500","retry":true,"n":3}"#),
            ("tag", "a:b:c"),
        ]);
        let mut tags = parse_tags(&p).unwrap();
        tags.sort();
        assert_eq!(
            tags,
            vec![
                ("a".into(), "b:c".into()),
                ("http.status_code".into(), "500".into()),
                ("n".into(), "3".into()),
                ("retry".into(), "true".into()),
            ]
        );
        let p = params(&[("tags", r#"error=true  http.route="/a b" x=\"#)]);
        assert_eq!(
            parse_tags(&p).unwrap(),
            vec![
                ("error".into(), "true".into()),
                ("http.route".into(), "/a b".into()),
                ("x".into(), "\\".into()),
            ]
        );
        assert!(parse_tags(&params(&[("tags", "{nope")])).is_err());
        assert!(parse_tags(&params(&[("tags", "lonely")])).is_err());
        assert!(parse_tags(&params(&[("tags", r#"k="open"#)])).is_err());
        assert!(parse_tags(&params(&[("tag", "nocolon")])).is_err());
        assert!(parse_tags(&params(&[("tags", r#"{"k":[1]}"#)])).is_err());
    }

    #[test]
    fn durations_in_go_syntax_and_days() {
        assert_eq!(parse_duration("1.2s"), Ok(Duration::from_millis(1200)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_duration("fast").is_err());
        let p = params(&[("limit", "x"), ("minDuration", "1x")]);
        assert!(p.int("limit").is_err());
        assert!(p.duration("minDuration").is_err());
        assert_eq!(p.int("absent"), Ok(None));
    }
}
