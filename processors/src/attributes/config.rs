//! The `attributes` processor's config: the OpenTelemetry Collector's attributesprocessor
//! keys (`actions`, `include`, `exclude`), plus Teletrace's `replace_pattern` action.

use super::actions::Actions;
use crate::matching::{MatchProperties, SpanSelector};
use serde::Deserialize;
use teletrace_core::ComponentConfig;

/// Config of the `attributes` processor.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributesConfig {
    /// Which spans the actions apply to (all when neither `include` nor `exclude` is set).
    pub include: Option<MatchProperties>,
    /// Spans the actions do not apply to.
    pub exclude: Option<MatchProperties>,
    /// The actions, applied in order to each selected span's attributes. Required.
    pub actions: Vec<ActionConfig>,
}

/// One entry of `actions`, with the collector's keys.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActionConfig {
    /// The attribute acted on.
    pub key: String,
    /// The value for `insert`, `update`, `upsert`; for `replace_pattern`, the replacement.
    pub value: Option<serde_yaml::Value>,
    /// A regexp: on keys for `delete` and `hash`; on the value for `extract` and
    /// `replace_pattern`.
    pub pattern: String,
    /// Take the value from this attribute (`insert`, `update`, `upsert`).
    pub from_attribute: String,
    /// Take the value from the request context (`insert`, `update`, `upsert`).
    pub from_context: String,
    /// Target type of `convert`: `int`, `double` or `string`.
    pub converted_type: String,
    /// `insert`, `update`, `upsert`, `delete`, `hash`, `extract`, `convert`, or
    /// Teletrace's `replace_pattern` (case-insensitive).
    pub action: String,
}

impl ComponentConfig for AttributesConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        if self.actions.is_empty() {
            return Err((
                "actions".into(),
                "missing required field: at least one action must be given".into(),
            ));
        }
        Actions::compile(&self.actions)?;
        SpanSelector::new(self.include.as_ref(), self.exclude.as_ref())?;
        Ok(())
    }
}
