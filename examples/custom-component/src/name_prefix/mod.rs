//! The `name_prefix` processor: puts a fixed prefix in front of every span name.

mod config;
mod processor;

pub use config::NamePrefixConfig;
pub use processor::NamePrefix;

use std::sync::Arc;
use teletrace_core::registry::BuildContext;
use teletrace_core::{
    ComponentError, ConsumerRef, FactoryRef, Processor, ProcessorFactory, Registration, Stability,
};

/// Builds `name_prefix` processors.
pub struct NamePrefixFactory;

impl ProcessorFactory for NamePrefixFactory {
    type Config = NamePrefixConfig;

    fn create(
        &self,
        _ctx: &BuildContext,
        config: NamePrefixConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        Ok(Arc::new(NamePrefix::new(config.prefix, next)))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "name_prefix",
        aliases: &[],
        stability: Stability::Development,
        description: "example: prefixes every span name",
        capabilities: &[],
        factory: FactoryRef::Processor(&NamePrefixFactory),
    }
}
