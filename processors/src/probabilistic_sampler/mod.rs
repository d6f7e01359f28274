//! The `probabilistic_sampler` processor: keeps a configured share of traces, deciding
//! each span from its trace ID as the OpenTelemetry Collector's
//! probabilisticsamplerprocessor does (`hash_seed`, `proportional` and `equalizing`
//! modes, `sampling.priority`). See `README.md` in this folder.

pub mod config;
mod sampler;
pub mod threshold;
pub mod tracestate;

pub use config::{Mode, ProbabilisticSamplerConfig};
pub use sampler::{
    hash_seed_bound, hash_seed_hash, Decider, Policy, ProbabilisticSampler,
    METRIC_COUNT_TRACES_SAMPLED,
};

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, ConsumerRef, FactoryRef, Processor, ProcessorFactory,
    Registration, Stability,
};

/// Builds `probabilistic_sampler` processors.
pub struct ProbabilisticSamplerFactory;

impl ProcessorFactory for ProbabilisticSamplerFactory {
    type Config = ProbabilisticSamplerConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: ProbabilisticSamplerConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        Ok(Arc::new(ProbabilisticSampler::new(
            &ctx.id.to_string(),
            &config,
            &ctx.metrics,
            next,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "probabilistic_sampler",
        aliases: &[],
        stability: Stability::Beta,
        description: "keeps a percentage of traces, decided from the trace ID (head sampling)",
        capabilities: &[],
        factory: FactoryRef::Processor(&ProbabilisticSamplerFactory),
    }
}

#[cfg(test)]
mod tests;
