//! Component factories and the link-time registry that collects them.
//!
//! A component author implements one of the typed factory traits ([`ReceiverFactory`],
//! [`ProcessorFactory`], [`ExporterFactory`], [`ExtensionFactory`]) and registers it:
//!
//! ```ignore
//! inventory::submit! {
//!     Registration {
//!         type_name: "batch",
//!         aliases: &[],
//!         stability: Stability::Beta,
//!         description: "groups spans into batches",
//!         capabilities: &[],
//!         factory: FactoryRef::Processor(&BatchFactory),
//!     }
//! }
//! ```
//! The registry finds every registration linked into the binary.

use crate::component::Host;
use crate::component::{
    ComponentError, ComponentId, Exporter, Extension, Kind, Processor, Receiver, Stability,
};
use crate::config::ConfigError;
use crate::consumer::ConsumerRef;
use crate::telemetry::Metrics;
use serde::de::DeserializeOwned;
use std::any::Any;
use std::sync::Arc;

/// A component's typed config, after parsing and before building.
pub type AnyConfig = Box<dyn Any + Send + Sync>;

/// What every component config provides beyond serde: a check of values that serde's
/// types cannot express. Errors name the key they are about (`"timeout: must be > 0"`),
/// and the engine prefixes the component's path.
pub trait ComponentConfig: DeserializeOwned + Default + Send + Sync + 'static {
    /// Checks the values; returns the key path (relative to the component, `.`-separated,
    /// empty for the whole component) and a message.
    fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}

/// Everything a factory gets when building a component.
pub struct BuildContext {
    /// The component's ID in the config.
    pub id: ComponentId,
    /// The pipeline the component belongs to (processors only).
    pub pipeline: Option<String>,
    /// Internal metrics.
    pub metrics: Metrics,
    /// The service's exporters (filled for extensions, which are built last).
    pub host: Host,
}

/// Builds receivers of one type.
pub trait ReceiverFactory: Sync + 'static {
    /// The config struct.
    type Config: ComponentConfig;
    /// Builds a receiver that feeds `next`.
    fn create(
        &self,
        ctx: &BuildContext,
        config: Self::Config,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Receiver>, ComponentError>;
}

/// Builds processors of one type.
pub trait ProcessorFactory: Sync + 'static {
    /// The config struct.
    type Config: ComponentConfig;
    /// Builds a processor that passes batches on to `next`.
    fn create(
        &self,
        ctx: &BuildContext,
        config: Self::Config,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError>;
}

/// Builds exporters of one type.
pub trait ExporterFactory: Sync + 'static {
    /// The config struct.
    type Config: ComponentConfig;
    /// Builds an exporter.
    fn create(
        &self,
        ctx: &BuildContext,
        config: Self::Config,
    ) -> Result<Arc<dyn Exporter>, ComponentError>;
}

/// Builds extensions of one type.
pub trait ExtensionFactory: Sync + 'static {
    /// The config struct.
    type Config: ComponentConfig;
    /// Builds an extension.
    fn create(
        &self,
        ctx: &BuildContext,
        config: Self::Config,
    ) -> Result<Arc<dyn Extension>, ComponentError>;
}

/// Parses a component's YAML value into its typed config, naming the failing key.
pub fn parse_typed_config<C: ComponentConfig>(value: &serde_yaml::Value) -> Result<C, ConfigError> {
    let value = match value {
        serde_yaml::Value::Null => serde_yaml::Value::Mapping(Default::default()),
        other => other.clone(),
    };
    let config: C = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        ConfigError::new(path.replace('.', "::"), e.into_inner().to_string())
    })?;
    config
        .validate()
        .map_err(|(path, message)| ConfigError::new(path.replace('.', "::"), message))?;
    Ok(config)
}

fn downcast<C: 'static>(config: AnyConfig) -> Result<C, ComponentError> {
    config
        .downcast::<C>()
        .map(|c| *c)
        .map_err(|_| ComponentError::new("internal error: config of the wrong type"))
}

/// Type-erased receiver factory (implemented for every [`ReceiverFactory`]).
pub trait DynReceiverFactory: Sync {
    /// Parses the config.
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError>;
    /// Builds the receiver.
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Receiver>, ComponentError>;
}

impl<F: ReceiverFactory> DynReceiverFactory for F {
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError> {
        Ok(Box::new(parse_typed_config::<F::Config>(value)?))
    }
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Receiver>, ComponentError> {
        ReceiverFactory::create(self, ctx, downcast(config)?, next)
    }
}

/// Type-erased processor factory (implemented for every [`ProcessorFactory`]).
pub trait DynProcessorFactory: Sync {
    /// Parses the config.
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError>;
    /// Builds the processor.
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError>;
}

impl<F: ProcessorFactory> DynProcessorFactory for F {
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError> {
        Ok(Box::new(parse_typed_config::<F::Config>(value)?))
    }
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Processor>, ComponentError> {
        ProcessorFactory::create(self, ctx, downcast(config)?, next)
    }
}

/// Type-erased exporter factory (implemented for every [`ExporterFactory`]).
pub trait DynExporterFactory: Sync {
    /// Parses the config.
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError>;
    /// Builds the exporter.
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError>;
}

impl<F: ExporterFactory> DynExporterFactory for F {
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError> {
        Ok(Box::new(parse_typed_config::<F::Config>(value)?))
    }
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
    ) -> Result<Arc<dyn Exporter>, ComponentError> {
        ExporterFactory::create(self, ctx, downcast(config)?)
    }
}

/// Type-erased extension factory (implemented for every [`ExtensionFactory`]).
pub trait DynExtensionFactory: Sync {
    /// Parses the config.
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError>;
    /// Builds the extension.
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
    ) -> Result<Arc<dyn Extension>, ComponentError>;
}

impl<F: ExtensionFactory> DynExtensionFactory for F {
    fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError> {
        Ok(Box::new(parse_typed_config::<F::Config>(value)?))
    }
    fn create(
        &self,
        ctx: &BuildContext,
        config: AnyConfig,
    ) -> Result<Arc<dyn Extension>, ComponentError> {
        ExtensionFactory::create(self, ctx, downcast(config)?)
    }
}

/// A factory of one kind, behind a static reference.
#[derive(Clone, Copy)]
pub enum FactoryRef {
    /// Builds receivers.
    Receiver(&'static dyn DynReceiverFactory),
    /// Builds processors.
    Processor(&'static dyn DynProcessorFactory),
    /// Builds exporters.
    Exporter(&'static dyn DynExporterFactory),
    /// Builds extensions.
    Extension(&'static dyn DynExtensionFactory),
}

impl FactoryRef {
    /// The kind of component this factory builds.
    pub fn kind(&self) -> Kind {
        match self {
            FactoryRef::Receiver(_) => Kind::Receiver,
            FactoryRef::Processor(_) => Kind::Processor,
            FactoryRef::Exporter(_) => Kind::Exporter,
            FactoryRef::Extension(_) => Kind::Extension,
        }
    }

    /// Parses a config for this factory.
    pub fn parse_config(&self, value: &serde_yaml::Value) -> Result<AnyConfig, ConfigError> {
        match self {
            FactoryRef::Receiver(f) => f.parse_config(value),
            FactoryRef::Processor(f) => f.parse_config(value),
            FactoryRef::Exporter(f) => f.parse_config(value),
            FactoryRef::Extension(f) => f.parse_config(value),
        }
    }
}

/// Something a component offers that others may depend on, checked when a config is
/// resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// The exporter stores spans and can read them back ([`crate::Exporter::reader`]).
    TraceStorage,
}

/// One component type linked into the binary, registered with `inventory::submit!`.
pub struct Registration {
    /// The type name used in configs (`otlp`, `batch`, `sqlite`).
    pub type_name: &'static str,
    /// Other names accepted for the same type (`otlp_grpc` for `otlp`).
    pub aliases: &'static [&'static str],
    /// Stability level, printed by `teletrace components`.
    pub stability: Stability,
    /// One line on what the component does.
    pub description: &'static str,
    /// What the component offers to others.
    pub capabilities: &'static [Capability],
    /// The factory.
    pub factory: FactoryRef,
}

inventory::collect!(Registration);

impl Registration {
    /// The kind of component.
    pub fn kind(&self) -> Kind {
        self.factory.kind()
    }

    /// True when `name` is this type's name or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.type_name == name || self.aliases.contains(&name)
    }

    /// True when the component offers `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }
}

/// Every registration linked into the binary.
pub fn all() -> impl Iterator<Item = &'static Registration> {
    inventory::iter::<Registration>.into_iter()
}

/// The registration of `kind` answering to `type_name`.
pub fn find(kind: Kind, type_name: &str) -> Option<&'static Registration> {
    all().find(|r| r.kind() == kind && r.answers_to(type_name))
}

/// The type names of every registered component of `kind`, sorted.
pub fn type_names(kind: Kind) -> Vec<&'static str> {
    let mut names: Vec<_> = all()
        .filter(|r| r.kind() == kind)
        .map(|r| r.type_name)
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
