//! Teletrace core: the data model ([`Traces`]), the component traits and registry, the
//! config format, the pipeline graph and service lifecycle, and internal telemetry.
//!
//! Component crates depend on this crate only; the `teletrace` binary links them.

pub mod allocator;
pub mod buffer_pool;
pub mod component;
pub mod config;
pub mod consumer;
pub mod exporter_helper;
pub mod json_writer;
pub mod memory;
pub mod registry;
pub mod rotated_files;
pub mod service;
pub mod span_json;
pub mod storage;
pub mod telemetry;
pub mod tls;
pub mod traces;

pub use component::{
    ComponentError, ComponentId, Exporter, Extension, Host, Kind, Lifecycle, Processor, Receiver,
    Stability,
};
pub use consumer::{ConsumeError, Consumer, ConsumerRef, FanOut};
pub use registry::{
    BuildContext, Capability, ComponentConfig, ExporterFactory, ExtensionFactory, FactoryRef,
    ProcessorFactory, ReceiverFactory, Registration,
};
pub use service::Service;
pub use traces::Traces;

/// Re-exported so component crates register with the same `inventory` version.
pub use inventory;
/// Re-exported so component crates use the same OTLP types.
pub use opentelemetry_proto as proto;
