//! The `memory_limiter` processor: refuses data with a retryable error while the process's
//! memory is over a soft limit, as the OpenTelemetry Collector's memorylimiterprocessor
//! does, and lets receivers refuse a request before reading its body
//! ([`teletrace_core::Consumer::admit`]). See `README.md` in this folder.

pub mod config;
mod limiter;
mod processor;

pub use config::{Limits, MemoryLimiterConfig};
pub use limiter::{Limiter, MeasureFn, MemorySource, Monitor, ReleaseFn};
pub use processor::{
    MemoryLimiterProcessor, METRIC_ACCEPTED_SPANS, METRIC_REFUSED_REQUESTS, METRIC_REFUSED_SPANS,
};

use std::sync::Arc;
use teletrace_core::memory::MIB;
use teletrace_core::{
    BuildContext, ComponentError, ConsumerRef, FactoryRef, Processor, ProcessorFactory,
    Registration, Stability,
};

/// Builds `memory_limiter` processors.
pub struct MemoryLimiterFactory;

impl ProcessorFactory for MemoryLimiterFactory {
    type Config = MemoryLimiterConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: MemoryLimiterConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        let id = ctx.id.to_string();
        let limits = Limits::resolve(&config, || {
            teletrace_core::memory::total_memory().map(|(total, source)| {
                tracing::info!(
                    processor = %id,
                    total_memory_mib = total / MIB,
                    source = ?source,
                    limit_percentage = config.limit_percentage,
                    spike_limit_percentage = config.spike_limit_percentage,
                    "Using percentage memory limiter"
                );
                total
            })
        })
        .map_err(|e| {
            ComponentError::new(format!(
                "{id}: cannot find the memory available for limit_percentage ({e}); use limit_mib"
            ))
        })?;
        tracing::info!(
            processor = %id,
            limit_mib = limits.hard / MIB,
            spike_limit_mib = limits.spike / MIB,
            check_interval = ?config.check_interval,
            "Memory limiter configured"
        );
        let limiter = Arc::new(Limiter::new(&id, &config, limits, MemorySource::process()));
        Ok(Arc::new(MemoryLimiterProcessor::new(
            &id,
            limiter,
            &ctx.metrics,
            next,
        )))
    }
}

teletrace_core::inventory::submit! {
    Registration {
        type_name: "memory_limiter",
        aliases: &[],
        stability: Stability::Beta,
        description: "refuses data (retryable) while memory is over a limit, before receivers read it",
        capabilities: &[],
        factory: FactoryRef::Processor(&MemoryLimiterFactory),
    }
}

#[cfg(test)]
mod tests;
