//! The `filter` processor: drops spans matching OTTL conditions (`traces.span`) or the
//! older include/exclude properties (`spans`), as the OpenTelemetry Collector's
//! filterprocessor does, with the same config. See `README.md` in this folder.

pub mod config;
pub mod ottl;

pub use config::{ErrorMode, FilterConfig};

use crate::matching::SpanSelector;
use async_trait::async_trait;
use ottl::{evaluate, Condition, SpanContext};
use std::sync::Arc;
use teletrace_core::proto::tonic::common::v1::InstrumentationScope;
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::proto::tonic::trace::v1::Span;
use teletrace_core::telemetry::Counter;
use teletrace_core::{
    BuildContext, ComponentError, ConsumeError, Consumer, ConsumerRef, FactoryRef, Lifecycle,
    Processor, ProcessorFactory, Registration, Stability, Traces,
};

/// Counter of spans dropped: the collector's `otelcol_processor_filter_spans.filtered` in
/// its Prometheus form (dots become underscores; no `_total` suffix, as every Teletrace
/// counter).
pub const METRIC_SPANS_FILTERED: &str = "otelcol_processor_filter_spans_filtered";

/// How spans are chosen for dropping.
enum Rule {
    /// Drop a span when any condition is true.
    Conditions(Vec<Condition>),
    /// Keep a span only when the selector selects it.
    Legacy(Box<SpanSelector>),
    /// Keep everything.
    None,
}

/// Drops matching spans and passes the rest on; a batch left empty is not sent on.
pub struct FilterProcessor {
    id: String,
    rule: Rule,
    error_mode: ErrorMode,
    filtered: Arc<Counter>,
    next: ConsumerRef,
}

impl FilterProcessor {
    /// Builds the processor, parsing the conditions (errors name `traces::span[i]` and the
    /// column).
    pub fn new(
        id: &str,
        config: &FilterConfig,
        metrics: &teletrace_core::telemetry::Metrics,
        next: ConsumerRef,
    ) -> Result<Self, ComponentError> {
        let rule = if let Some(spans) = &config.spans {
            Rule::Legacy(Box::new(
                SpanSelector::new(spans.include.as_ref(), spans.exclude.as_ref()).map_err(
                    |(path, message)| {
                        ComponentError::new(format!(
                            "spans::{}: {message}",
                            path.replace('.', "::")
                        ))
                    },
                )?,
            ))
        } else if config.traces.span.is_empty() {
            Rule::None
        } else {
            let mut conditions = Vec::with_capacity(config.traces.span.len());
            for (i, text) in config.traces.span.iter().enumerate() {
                conditions.push(
                    ottl::parse_condition(text)
                        .map_err(|e| ComponentError::new(format!("traces::span[{i}]: {e}")))?,
                );
            }
            Rule::Conditions(conditions)
        };
        Ok(FilterProcessor {
            id: id.to_string(),
            rule,
            error_mode: config.error_mode,
            filtered: metrics.counter(
                METRIC_SPANS_FILTERED,
                "Number of spans dropped by the filter processor",
                &[("processor", id)],
            ),
            next,
        })
    }

    /// True when the span is to be dropped.
    fn drops(
        &self,
        resource: &Resource,
        scope: &InstrumentationScope,
        span: &Span,
    ) -> Result<bool, String> {
        match &self.rule {
            Rule::None => Ok(false),
            Rule::Legacy(selector) => Ok(!selector.selects(resource, scope, span)),
            Rule::Conditions(conditions) => {
                let cx = SpanContext {
                    resource,
                    scope,
                    span,
                };
                for (i, condition) in conditions.iter().enumerate() {
                    match evaluate(condition, cx) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(e) => match self.error_mode {
                            ErrorMode::Propagate => {
                                return Err(format!("traces.span[{i}]: {e}"));
                            }
                            ErrorMode::Ignore => tracing::warn!(
                                processor = %self.id,
                                condition = i,
                                error = %e,
                                "failed evaluating condition; treated as false"
                            ),
                            ErrorMode::Silent => {}
                        },
                    }
                }
                Ok(false)
            }
        }
    }

    /// Removes the spans to drop from `traces`; returns how many were dropped.
    pub fn filter(&self, traces: &mut Traces) -> Result<usize, ConsumeError> {
        if matches!(self.rule, Rule::None) || traces.is_empty() {
            return Ok(0);
        }
        let before = traces.span_count();
        let mut failure = None;
        traces.retain_spans(|resource, scope, span| {
            if failure.is_some() {
                return true;
            }
            match self.drops(resource, scope, span) {
                Ok(drop) => !drop,
                Err(e) => {
                    failure = Some(e);
                    true
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(ConsumeError::permanent(format!(
                "filter processor {}: {e}",
                self.id
            )));
        }
        let dropped = before - traces.span_count();
        self.filtered.add(dropped as u64);
        Ok(dropped)
    }
}

#[async_trait]
impl Consumer for FilterProcessor {
    /// Asks the next stage: this one refuses nothing by state.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.next.admit()
    }

    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        let dropped = self.filter(&mut traces)?;
        if dropped > 0 && traces.is_empty() {
            // Every span was dropped: nothing goes on, as in the collector.
            return Ok(());
        }
        self.next.consume(traces).await
    }
}

impl Lifecycle for FilterProcessor {}
impl Processor for FilterProcessor {}

/// Builds `filter` processors.
pub struct FilterFactory;

impl ProcessorFactory for FilterFactory {
    type Config = FilterConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: FilterConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        if config.logs.is_some() || config.metrics.is_some() {
            tracing::info!(
                processor = %ctx.id,
                "logs and metrics conditions are ignored: Teletrace pipelines carry traces only"
            );
        }
        Ok(Arc::new(FilterProcessor::new(
            &ctx.id.to_string(),
            &config,
            &ctx.metrics,
            next,
        )?))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "filter",
        aliases: &[],
        stability: Stability::Alpha,
        description: "drops spans matching OTTL conditions or include/exclude properties",
        capabilities: &[],
        factory: FactoryRef::Processor(&FilterFactory),
    }
}

#[cfg(test)]
mod tests;
