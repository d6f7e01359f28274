//! The `batch` processor: groups spans into bigger batches by size or by timeout, as the
//! OpenTelemetry Collector's batchprocessor does, without decoding encoded batches.
//! See `README.md` in this folder.

mod batcher;
pub mod config;

pub use batcher::{
    buffer_capacity, BatchProcessor, METRIC_DROPPED_SPANS, METRIC_SEND_SIZE, METRIC_SIZE_TRIGGER,
    METRIC_TIMEOUT_TRIGGER, SEND_SIZE_BUCKETS,
};
pub use config::BatchConfig;

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, ConsumerRef, FactoryRef, Processor, ProcessorFactory,
    Registration, Stability,
};

/// Builds `batch` processors.
pub struct BatchFactory;

impl ProcessorFactory for BatchFactory {
    type Config = BatchConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: BatchConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        if !config.metadata_keys.is_empty() {
            tracing::info!(
                processor = %ctx.id,
                metadata_keys = ?config.metadata_keys,
                "metadata_keys: the pipeline carries no request metadata, so all spans share one batch"
            );
        }
        let id = ctx.id.to_string();
        Ok(Arc::new(BatchProcessor::new(
            &id,
            &config,
            &ctx.metrics,
            next,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "batch",
        aliases: &[],
        stability: Stability::Beta,
        description: "groups spans into batches by size or timeout before they go on",
        capabilities: &[],
        factory: FactoryRef::Processor(&BatchFactory),
    }
}

#[cfg(test)]
mod tests;
