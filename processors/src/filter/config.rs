//! The `filter` processor's config: the OpenTelemetry Collector's filterprocessor keys for
//! traces (`error_mode`, `traces.span`, and the older `spans.include` / `spans.exclude`).

use super::ottl::parse_condition;
use crate::matching::{MatchProperties, SpanSelector};
use serde::Deserialize;
use teletrace_core::ComponentConfig;

/// What happens when a condition fails to evaluate on a span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorMode {
    /// The batch is refused with the error (nothing of it is sent on).
    #[default]
    Propagate,
    /// The error is logged, the condition counts as false, processing goes on.
    Ignore,
    /// As `ignore`, without logging.
    Silent,
}

/// Config of the `filter` processor.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// What to do when a condition fails to evaluate. Default `propagate`.
    pub error_mode: ErrorMode,
    /// OTTL conditions for traces.
    pub traces: TracesConditions,
    /// The older include/exclude form for spans.
    pub spans: Option<LegacySpans>,
    /// Conditions for logs: accepted so a shared config loads; Teletrace carries traces only.
    pub logs: Option<serde_yaml::Value>,
    /// Conditions for metrics: accepted so a shared config loads; Teletrace carries traces only.
    pub metrics: Option<serde_yaml::Value>,
}

/// The `traces` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConditions {
    /// Conditions on spans; a span matching any of them is dropped.
    pub span: Vec<String>,
    /// Conditions on span events: not supported (refused when non-empty).
    pub spanevent: Vec<String>,
}

/// The `spans` section (the collector's older form): spans matching `include` are kept,
/// spans matching `exclude` are dropped.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacySpans {
    /// Spans to keep (all when absent).
    pub include: Option<MatchProperties>,
    /// Spans to drop.
    pub exclude: Option<MatchProperties>,
}

impl ComponentConfig for FilterConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        for (i, text) in self.traces.span.iter().enumerate() {
            parse_condition(text).map_err(|e| (format!("traces.span[{i}]"), e.to_string()))?;
        }
        if !self.traces.spanevent.is_empty() {
            return Err((
                "traces.spanevent".into(),
                "span event conditions are not supported; only traces.span is".into(),
            ));
        }
        if let Some(spans) = &self.spans {
            if !self.traces.span.is_empty() {
                return Err((
                    "spans".into(),
                    "cannot use traces.span conditions and spans include/exclude at the same time"
                        .into(),
                ));
            }
            SpanSelector::new(spans.include.as_ref(), spans.exclude.as_ref())
                .map_err(|(path, message)| (format!("spans.{path}"), message))?;
        }
        Ok(())
    }
}
