//! The `tail_sampling` processor: waits for the spans of each trace, then keeps or drops
//! the whole trace by policies (errors, latency, attributes, rates...), as the
//! OpenTelemetry Collector's tailsamplingprocessor does. See `README.md` in this folder.

mod cache;
pub mod config;
pub mod policy;
mod processor;
pub mod summary;

pub use cache::DecisionCache;
pub use config::TailSamplingConfig;
pub use processor::{
    TailSampler, MAX_BATCH_SPANS, METRIC_CACHE_DECISIONS, METRIC_COUNT_TRACES_SAMPLED,
    METRIC_DROPPED_SPANS, METRIC_DROPPED_TOO_EARLY, METRIC_GLOBAL_COUNT_TRACES_SAMPLED,
    METRIC_NEW_TRACE_ID_RECEIVED, METRIC_TRACES_ON_MEMORY,
};

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, ConsumerRef, FactoryRef, Processor, ProcessorFactory,
    Registration, Stability,
};

/// Builds `tail_sampling` processors.
pub struct TailSamplingFactory;

impl ProcessorFactory for TailSamplingFactory {
    type Config = TailSamplingConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: TailSamplingConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        let id = ctx.id.to_string();
        let sampler = TailSampler::new(&id, &config, &ctx.metrics, next)
            .map_err(|e| ComponentError::new(format!("{id}: policies: {e}")))?;
        Ok(Arc::new(sampler))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "tail_sampling",
        aliases: &[],
        stability: Stability::Beta,
        description: "keeps or drops whole traces by policies once all their spans arrived",
        capabilities: &[],
        factory: FactoryRef::Processor(&TailSamplingFactory),
    }
}

#[cfg(test)]
mod tests;
