//! The `attributes` processor: inserts, updates, deletes, hashes, extracts, converts and
//! masks span attributes, as the OpenTelemetry Collector's attributesprocessor does, with
//! the same config. See `README.md` in this folder.

mod actions;
pub mod config;

pub use actions::{hash_value, Actions};
pub use config::{ActionConfig, AttributesConfig};

use crate::matching::SpanSelector;
use async_trait::async_trait;
use std::sync::Arc;
use teletrace_core::proto::tonic::common::v1::InstrumentationScope;
use teletrace_core::proto::tonic::resource::v1::Resource;
use teletrace_core::{
    BuildContext, ComponentError, ConsumeError, Consumer, ConsumerRef, FactoryRef, Lifecycle,
    Processor, ProcessorFactory, Registration, Stability, Traces,
};

/// Applies the configured actions to the attributes of the selected spans, then passes the
/// batch on.
pub struct AttributesProcessor {
    actions: Actions,
    selector: SpanSelector,
    next: ConsumerRef,
}

impl AttributesProcessor {
    /// Builds the processor from a config (checked again here, so a config that skipped
    /// `validate` is still refused with the key named).
    pub fn new(config: &AttributesConfig, next: ConsumerRef) -> Result<Self, ComponentError> {
        let named = |(path, message): (String, String)| {
            ComponentError::new(format!("{}: {message}", path.replace('.', "::")))
        };
        if config.actions.is_empty() {
            return Err(ComponentError::new(
                "actions: missing required field: at least one action must be given",
            ));
        }
        Ok(AttributesProcessor {
            actions: Actions::compile(&config.actions).map_err(named)?,
            selector: SpanSelector::new(config.include.as_ref(), config.exclude.as_ref())
                .map_err(named)?,
            next,
        })
    }

    /// Applies the actions to every selected span of `traces`, in place.
    pub fn process(&self, traces: &mut Traces) -> Result<(), ConsumeError> {
        let empty_resource = Resource::default();
        let empty_scope = InstrumentationScope::default();
        for rs in traces.resource_spans_mut()? {
            let resource = rs.resource.as_ref().unwrap_or(&empty_resource);
            for ss in &mut rs.scope_spans {
                let scope = ss.scope.as_ref().unwrap_or(&empty_scope);
                for span in &mut ss.spans {
                    if self.selector.selects_all() || self.selector.selects(resource, scope, span) {
                        self.actions.apply(&mut span.attributes);
                    }
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Consumer for AttributesProcessor {
    /// Asks the next stage: this one refuses nothing by state.
    fn admit(&self) -> Result<(), ConsumeError> {
        self.next.admit()
    }

    async fn consume(&self, mut traces: Traces) -> Result<(), ConsumeError> {
        if !traces.is_empty() {
            self.process(&mut traces)?;
        }
        self.next.consume(traces).await
    }
}

impl Lifecycle for AttributesProcessor {}
impl Processor for AttributesProcessor {}

/// Builds `attributes` processors.
pub struct AttributesFactory;

impl ProcessorFactory for AttributesFactory {
    type Config = AttributesConfig;

    fn create(
        &self,
        _ctx: &BuildContext,
        config: AttributesConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        Ok(Arc::new(AttributesProcessor::new(&config, next)?))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "attributes",
        aliases: &[],
        stability: Stability::Beta,
        description: "inserts, updates, deletes, hashes, extracts, converts and masks span attributes",
        capabilities: &[],
        factory: FactoryRef::Processor(&AttributesFactory),
    }
}

#[cfg(test)]
mod tests;
