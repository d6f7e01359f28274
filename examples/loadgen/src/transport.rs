//! The transport-independent view of sending one request.

use anyhow::Result;
use bytes::Bytes;

use crate::args::{Config, GrpcClient, Protocol};
use crate::grpc::{GrpcHyper, GrpcTonic};
use crate::http::HttpExporter;

/// Result of one export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver accepted the request; `rejected_spans` comes from an OTLP
    /// partial-success response (0 when absent).
    Accepted {
        /// Spans the receiver reported as rejected.
        rejected_spans: u64,
    },
    /// The request failed.
    Failed {
        /// Error category, e.g. `UNAVAILABLE`, `HTTP 503`, `CONNECT_ERROR`.
        label: String,
        /// Human-readable detail (gRPC message, response body, error chain).
        message: String,
        /// Whether the receiver answered at all (false for connect errors,
        /// broken connections and timeouts).
        responded: bool,
    },
}

impl Outcome {
    /// A failure for which the receiver sent a response.
    pub fn server_error(label: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Failed {
            label: label.into(),
            message: message.into(),
            responded: true,
        }
    }

    /// A failure without any response (connection problems).
    pub fn transport_error(label: impl Into<String>, message: impl Into<String>) -> Self {
        Outcome::Failed {
            label: label.into(),
            message: message.into(),
            responded: false,
        }
    }
}

/// Canonical gRPC status code name (`UNAVAILABLE`, ...).
pub fn grpc_code_name(code: i32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map(|s| s.to_string())
        .unwrap_or_else(|| format!("GRPC_CODE_{code}"))
}

/// Format an error with its whole `source()` chain.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// A connection (or, for HTTP/1.1, a small pool of connections) to the
/// receiver. Cheap to clone; clones share the connection(s).
#[derive(Clone)]
pub enum Transport {
    /// OTLP/gRPC over raw hyper HTTP/2.
    GrpcHyper(GrpcHyper),
    /// OTLP/gRPC through tonic.
    GrpcTonic(GrpcTonic),
    /// OTLP/HTTP.
    Http(HttpExporter),
}

impl Transport {
    /// Create a new, independent transport (its own connection) for `cfg`.
    /// Connections are opened lazily on the first request.
    pub fn new(cfg: &Config) -> Result<Self> {
        Ok(match (cfg.args.protocol, cfg.args.grpc_client) {
            (Protocol::Grpc, GrpcClient::Hyper) => Transport::GrpcHyper(GrpcHyper::new(cfg)?),
            (Protocol::Grpc, GrpcClient::Tonic) => Transport::GrpcTonic(GrpcTonic::new(cfg)?),
            (Protocol::Http, _) => Transport::Http(HttpExporter::new(cfg)?),
        })
    }

    /// Send one pre-built body (as produced by [`crate::workload::Workload`]).
    pub async fn export(&self, body: Bytes) -> Outcome {
        match self {
            Transport::GrpcHyper(t) => t.export(body).await,
            Transport::GrpcTonic(t) => t.export(body).await,
            Transport::Http(t) => t.export(body).await,
        }
    }
}
