//! Where config comes from: files, `yaml:` and `env:` URIs, the embedded default; how
//! several sources merge; and `--set` overrides.

use super::expand::key_text;
use super::ConfigError;
use serde_yaml::{Mapping, Value};

/// One `--config` argument, as the collector accepts them: a path (optionally
/// `file:PATH`), `env:VAR` (the variable holds YAML) or `yaml:INLINE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A YAML file.
    File(String),
    /// YAML text held in an environment variable.
    Env(String),
    /// Inline YAML (`yaml:exporters::debug::verbosity: detailed` is also accepted, as the
    /// collector accepts it).
    Inline(String),
    /// YAML text given by the program (the embedded default), with a name for messages.
    Embedded {
        /// Name shown in messages.
        name: String,
        /// The YAML text.
        text: String,
    },
}

impl ConfigSource {
    /// Reads a `--config` argument.
    pub fn parse(arg: &str) -> Self {
        if let Some(path) = arg.strip_prefix("file:") {
            ConfigSource::File(path.to_string())
        } else if let Some(var) = arg.strip_prefix("env:") {
            ConfigSource::Env(var.to_string())
        } else if let Some(yaml) = arg.strip_prefix("yaml:") {
            ConfigSource::Inline(yaml.to_string())
        } else {
            ConfigSource::File(arg.to_string())
        }
    }

    /// A short name for messages.
    pub fn describe(&self) -> String {
        match self {
            ConfigSource::File(p) => p.clone(),
            ConfigSource::Env(v) => format!("env:{v}"),
            ConfigSource::Inline(_) => "yaml:<inline>".into(),
            ConfigSource::Embedded { name, .. } => name.clone(),
        }
    }

    /// Reads and parses the source into a YAML value.
    pub fn load(&self) -> Result<Value, ConfigError> {
        let text = match self {
            ConfigSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new("", format!("cannot read config file {path}: {e}"))
            })?,
            ConfigSource::Env(var) => std::env::var(var).map_err(|_| {
                ConfigError::new("", format!("config source env:{var}: variable is not set"))
            })?,
            ConfigSource::Inline(text) => inline_to_yaml(text),
            ConfigSource::Embedded { text, .. } => text.clone(),
        };
        let value: Value = serde_yaml::from_str(&text)
            .map_err(|e| ConfigError::new("", format!("{}: invalid YAML: {e}", self.describe())))?;
        match value {
            Value::Null => Ok(Value::Mapping(Mapping::new())),
            Value::Mapping(_) => Ok(value),
            _ => Err(ConfigError::new(
                "",
                format!("{}: the config must be a YAML mapping", self.describe()),
            )),
        }
    }
}

/// `yaml:a::b::c: value` is the collector's short form for `{a: {b: {c: value}}}`.
fn inline_to_yaml(text: &str) -> String {
    let Some((key, value)) = text.split_once(": ") else {
        return text.to_string();
    };
    if !key.contains("::") || key.contains('\n') {
        return text.to_string();
    }
    let mut out = String::new();
    let parts: Vec<&str> = key.split("::").collect();
    for (depth, part) in parts.iter().enumerate() {
        out.push_str(&"  ".repeat(depth));
        out.push_str(part);
        out.push(':');
        if depth + 1 < parts.len() {
            out.push('\n');
        }
    }
    out.push(' ');
    out.push_str(value);
    out
}

/// Merges `overlay` into `base`: mappings merge key by key, anything else is replaced.
pub fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Mapping(base_map), Value::Mapping(overlay_map)) => {
            for (key, value) in overlay_map {
                match base_map.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base_map.insert(key, value);
                    }
                }
            }
        }
        (base, overlay) => *base = overlay,
    }
}

/// Applies one `--set key=value` override. Keys are separated by `::` (the collector's
/// current form) or `.` (its older form); the value is read as YAML.
pub fn apply_set(root: &mut Value, assignment: &str) -> Result<(), ConfigError> {
    let (key, raw_value) = assignment.split_once('=').ok_or_else(|| {
        ConfigError::new(
            "",
            format!("--set {assignment:?}: expected key=value, e.g. exporters::debug::verbosity=detailed"),
        )
    })?;
    let parts: Vec<&str> = if key.contains("::") {
        key.split("::").collect()
    } else {
        key.split('.').collect()
    };
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err(ConfigError::new(
            "",
            format!("--set {assignment:?}: empty key part"),
        ));
    }
    let value: Value = if raw_value.trim().is_empty() {
        Value::String(raw_value.to_string())
    } else {
        serde_yaml::from_str(raw_value).unwrap_or_else(|_| Value::String(raw_value.to_string()))
    };
    let mut overlay = value;
    for part in parts.iter().rev() {
        let mut map = Mapping::new();
        map.insert(Value::String(part.trim().to_string()), overlay);
        overlay = Value::Mapping(map);
    }
    merge(root, overlay);
    Ok(())
}

/// Loads every source, merges them in order, applies the overrides, then expands
/// environment variables.
pub fn load_merged(
    sources: &[ConfigSource],
    sets: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Value, ConfigError> {
    let mut root = Value::Mapping(Mapping::new());
    for source in sources {
        merge(&mut root, source.load()?);
    }
    for assignment in sets {
        apply_set(&mut root, assignment)?;
    }
    super::expand::expand_value(&mut root, "", lookup)?;
    Ok(root)
}

/// Text of a mapping key, for messages.
pub(crate) fn key_name(key: &Value) -> String {
    key_text(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn later_sources_win_and_maps_merge() {
        let mut base = yaml("exporters: {debug: {verbosity: basic}, file: {path: a}}");
        merge(&mut base, yaml("exporters: {debug: {verbosity: detailed}}"));
        assert_eq!(
            base,
            yaml("exporters: {debug: {verbosity: detailed}, file: {path: a}}")
        );
    }

    #[test]
    fn set_accepts_both_separators() {
        let mut root = yaml("exporters: {debug: {verbosity: basic}}");
        apply_set(&mut root, "exporters.debug.verbosity=detailed").unwrap();
        assert_eq!(
            root["exporters"]["debug"]["verbosity"],
            Value::String("detailed".into())
        );
        apply_set(&mut root, "extensions::query::endpoint=0.0.0.0:8080").unwrap();
        assert_eq!(
            root["extensions"]["query"]["endpoint"],
            Value::String("0.0.0.0:8080".into())
        );
        apply_set(&mut root, "processors::batch::send_batch_size=10").unwrap();
        assert_eq!(
            root["processors"]["batch"]["send_batch_size"],
            Value::Number(10.into())
        );
        assert!(apply_set(&mut root, "novalue").is_err());
    }

    #[test]
    fn inline_short_form() {
        let v: Value =
            serde_yaml::from_str(&inline_to_yaml("exporters::debug::verbosity: detailed")).unwrap();
        assert_eq!(
            v["exporters"]["debug"]["verbosity"],
            Value::String("detailed".into())
        );
    }
}
