//! The `otlp` receiver: OTLP/gRPC and OTLP/HTTP (binary protobuf and JSON), configured
//! with the OpenTelemetry Collector's `otlpreceiver` keys. `README.md` in this folder lists
//! every key with its default.
//!
//! The gRPC side hands the request bytes to the pipeline without decoding them
//! ([`teletrace_core::Traces::from_encoded`] validates them in one pass); the HTTP side
//! does the same for protobuf and reads JSON into the OTLP structs.

mod body;
mod codec;
pub mod config;
mod cors;
mod export;
mod grpc;
mod http;
pub mod json;
mod receiver;
pub mod status;
mod tls;

pub use config::OtlpConfig;
pub use grpc::{EXPORT_PATH, SERVICE_NAME};
pub use http::{JSON_CONTENT_TYPE, PROTOBUF_CONTENT_TYPE};
pub use receiver::{BoundAddresses, OtlpReceiver};

use std::sync::Arc;
use teletrace_core::{
    BuildContext, ComponentError, ConsumerRef, FactoryRef, Receiver, ReceiverFactory, Registration,
    Stability,
};

/// Builds `otlp` receivers.
pub struct OtlpReceiverFactory;

impl ReceiverFactory for OtlpReceiverFactory {
    type Config = OtlpConfig;

    fn create(
        &self,
        ctx: &BuildContext,
        config: OtlpConfig,
        next: ConsumerRef,
    ) -> Result<Arc<dyn Receiver>, ComponentError> {
        // Reads the certificates now, so a bad `tls` block fails the build with its path.
        config.server_tls()?;
        Ok(Arc::new(OtlpReceiver::new(
            ctx.id.clone(),
            config,
            &ctx.metrics,
            next,
        )))
    }
}

inventory::submit! {
    Registration {
        type_name: "otlp",
        aliases: &[],
        stability: Stability::Beta,
        description: "takes spans in over OTLP/gRPC and OTLP/HTTP (protobuf and JSON)",
        capabilities: &[],
        factory: FactoryRef::Receiver(&OtlpReceiverFactory),
    }
}
