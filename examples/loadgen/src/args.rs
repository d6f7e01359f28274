//! Command-line arguments and their validation.
//!
//! [`Args`] is what clap parses; [`Args::into_config`] checks the combinations
//! and turns them into a [`Config`], the resolved settings the rest of the
//! crate works with.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use http::Uri;

/// Default OTLP/gRPC endpoint.
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// Default OTLP/HTTP endpoint (the `/v1/traces` path is appended).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:4318";
/// Path appended to HTTP endpoints that do not carry a path of their own.
pub const HTTP_TRACES_PATH: &str = "/v1/traces";
/// Duration used when neither `--duration` nor `--spans` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

const AFTER_HELP: &str = "\
Examples:
  loadgen --duration 30s                              # gRPC, unlimited rate
  loadgen --rate 10000 --duration 30s                 # 10k spans/s on a fixed schedule
  loadgen --protocol http --encoding json --compression gzip --spans 1000000
  loadgen --unique-ids --json --quiet > result.json

Exit status: 0 when the run happened (even if requests failed), 2 for invalid
arguments, 1 when the receiver could not be reached at all.";

/// OTLP trace load generator.
///
/// Pre-builds a set of encoded ExportTraceServiceRequest messages once, then
/// sends them to an OTLP receiver as fast as possible (or at a fixed span
/// rate) from several concurrent connections with several requests in flight
/// on each. Prints a one-line progress report every second on stderr and a
/// summary at the end (human-readable, or one JSON object with --json).
#[derive(Debug, Clone, Parser)]
#[command(name = "loadgen", version, about, long_about, after_help = AFTER_HELP)]
pub struct Args {
    /// Receiver endpoint. Defaults to http://127.0.0.1:4317 for grpc and
    /// http://127.0.0.1:4318 for http. For http, /v1/traces is appended unless
    /// the endpoint already has a path. Only plain-text http:// is supported.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// OTLP transport.
    #[arg(long, value_enum, default_value_t = Protocol::Grpc)]
    pub protocol: Protocol,

    /// Body encoding for --protocol http (gRPC always uses protobuf).
    /// json is OTLP/JSON: hex trace/span IDs, integer enums, lowerCamelCase keys.
    #[arg(long, value_enum, default_value_t = Encoding::Proto)]
    pub encoding: Encoding,

    /// Request body compression. Pre-built bodies are compressed once, at the
    /// default gzip level. With --unique-ids every request is compressed as it
    /// is sent, at the fast level (1); with --grpc-client tonic, tonic
    /// compresses every request itself.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,

    /// gRPC client implementation: `hyper` sends pre-framed, pre-compressed
    /// bodies over raw HTTP/2 (fastest); `tonic` goes through a tonic Channel
    /// with a raw-bytes codec (reference implementation; compresses per request).
    #[arg(long, value_enum, default_value_t = GrpcClient::Hyper)]
    pub grpc_client: GrpcClient,

    /// Concurrent workers. Each worker owns one connection for grpc (HTTP/2,
    /// requests multiplexed) and a pool of up to --in-flight connections for
    /// http (HTTP/1.1).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub workers: u32,

    /// Requests outstanding per worker.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub in_flight: u32,

    /// Target total send rate in spans per second across all workers
    /// (0 = unlimited). Requests are sent on a fixed schedule and latency is
    /// measured from each request's scheduled send time, so a slow receiver
    /// cannot hide its queueing delay (no coordinated omission).
    #[arg(long, value_name = "SPANS_PER_SEC", default_value_t = 0.0)]
    pub rate: f64,

    /// Run time, e.g. 30s, 2m, 1h30m. When neither --duration nor --spans is
    /// given, runs for 10s. Requests still in flight at the end are waited for.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Total spans to send; the run stops when this many were sent or when
    /// --duration elapsed, whichever comes first.
    #[arg(long, value_name = "N")]
    pub spans: Option<u64>,

    /// Spans per export request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub spans_per_request: u32,

    /// Attributes per span (a mix of string, int, double and bool values with
    /// semantic-convention keys such as http.request.method, http.route,
    /// http.response.status_code, user.id).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub attributes: u32,

    /// Resource attributes per request, including service.name.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub resource_attributes: u32,

    /// Value of the service.name resource attribute.
    #[arg(long, default_value = "loadgen")]
    pub service: String,

    /// Spans per trace: each trace is a parent/child chain of this depth
    /// (the last trace of a request may be shorter).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub trace_depth: u32,

    /// Share of spans with status ERROR, 0.0 to 1.0.
    #[arg(long, default_value_t = 0.01)]
    pub error_ratio: f64,

    /// Number of different pre-built requests to cycle through. Trace and span
    /// IDs differ between them but repeat on every cycle unless --unique-ids.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub distinct_requests: u32,

    /// Give every request fresh trace/span IDs (and shift span timestamps to
    /// the send time) by patching the pre-encoded body. Costs a copy of the
    /// body per request, plus a compression pass with --compression gzip.
    #[arg(long)]
    pub unique_ids: bool,

    /// Per-request timeout; a request that takes longer counts as a TIMEOUT error.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// Seed for the generated content (IDs, attribute values); random by default.
    #[arg(long)]
    pub seed: Option<u64>,

    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Do not print the per-second progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP.
    Http,
}

/// Body encoding for OTLP/HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Binary protobuf (`application/x-protobuf`).
    Proto,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
}

/// gRPC client implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GrpcClient {
    /// Raw HTTP/2 via hyper with pre-framed bodies.
    Hyper,
    /// tonic Channel with a raw-bytes codec.
    Tonic,
}

/// Validated, resolved run settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The parsed arguments (defaults filled in).
    pub args: Args,
    /// Full endpoint URI: for http it includes the request path; for grpc it
    /// is the origin (plus an optional path prefix).
    pub endpoint: Uri,
    /// Stop starting requests after this long, if set.
    pub duration: Option<Duration>,
    /// Total number of requests to send, if limited by `--spans`.
    pub max_requests: Option<u64>,
    /// Spans in the final request when `--spans` is not a multiple of
    /// `--spans-per-request` (0 when it is, or when unlimited).
    pub tail_spans: u32,
}

impl Args {
    /// Check argument combinations and resolve defaults.
    pub fn into_config(self) -> Result<Config> {
        if !(0.0..=1.0).contains(&self.error_ratio) {
            bail!(
                "--error-ratio must be between 0.0 and 1.0, got {}",
                self.error_ratio
            );
        }
        if !self.rate.is_finite() || self.rate < 0.0 || (self.rate > 0.0 && self.rate < 0.001) {
            bail!(
                "--rate must be 0 (unlimited) or at least 0.001 spans/s, got {}",
                self.rate
            );
        }
        if self.protocol == Protocol::Grpc && self.encoding == Encoding::Json {
            bail!(
                "--encoding json is only valid with --protocol http (OTLP/gRPC is always protobuf)"
            );
        }
        if u64::from(self.workers) * u64::from(self.in_flight) > 65_536 {
            bail!("--workers x --in-flight must not exceed 65536");
        }
        if self.timeout.is_zero() {
            bail!("--timeout must be greater than zero");
        }
        if let Some(d) = self.duration {
            if d.is_zero() {
                bail!("--duration must be greater than zero");
            }
        }
        if self.spans == Some(0) {
            bail!("--spans must be greater than zero");
        }

        let endpoint = resolve_endpoint(self.endpoint.as_deref(), self.protocol)?;

        let duration = match (self.duration, self.spans) {
            (None, None) => Some(DEFAULT_DURATION),
            (d, _) => d,
        };
        let spr = u64::from(self.spans_per_request);
        let (max_requests, tail_spans) = match self.spans {
            Some(n) => (Some(n.div_ceil(spr)), (n % spr) as u32),
            None => (None, 0),
        };
        Ok(Config {
            args: self,
            endpoint,
            duration,
            max_requests,
            tail_spans,
        })
    }
}

/// Resolve the endpoint string for `protocol`: fill in the default, add the
/// `http://` scheme when missing, reject https, and append `/v1/traces` for
/// OTLP/HTTP endpoints without a path.
pub fn resolve_endpoint(endpoint: Option<&str>, protocol: Protocol) -> Result<Uri> {
    let raw = match endpoint {
        Some(e) => e.trim().to_string(),
        None => match protocol {
            Protocol::Grpc => DEFAULT_GRPC_ENDPOINT.to_string(),
            Protocol::Http => DEFAULT_HTTP_ENDPOINT.to_string(),
        },
    };
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else {
        format!("http://{raw}")
    };
    let uri: Uri = with_scheme
        .parse()
        .with_context(|| format!("invalid --endpoint {raw:?}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            bail!("--endpoint {raw:?}: https is not supported, use a plain-text http:// endpoint")
        }
        Some(other) => bail!("--endpoint {raw:?}: unsupported scheme {other:?}"),
        None => bail!("--endpoint {raw:?}: missing scheme"),
    }
    let authority = uri
        .authority()
        .with_context(|| format!("--endpoint {raw:?} has no host"))?
        .clone();
    if authority.port_u16().is_none() {
        bail!("--endpoint {raw:?} must include a port (e.g. 127.0.0.1:4317)");
    }
    let path = uri.path();
    let path = match protocol {
        Protocol::Http if path.is_empty() || path == "/" => HTTP_TRACES_PATH.to_string(),
        Protocol::Http => path.to_string(),
        // gRPC: an optional path prefix in front of the service path.
        Protocol::Grpc => path.trim_end_matches('/').to_string(),
    };
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path_and_query)
        .build()
        .with_context(|| format!("invalid --endpoint {raw:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let u = resolve_endpoint(None, Protocol::Http).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:4318/v1/traces");
        let u = resolve_endpoint(None, Protocol::Grpc).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:4317/");
        let u = resolve_endpoint(Some("127.0.0.1:9999"), Protocol::Http).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9999/v1/traces");
        let u = resolve_endpoint(Some("http://127.0.0.1:9999/custom"), Protocol::Http).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9999/custom");
        let u = resolve_endpoint(Some("http://127.0.0.1:9999/"), Protocol::Http).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9999/v1/traces");
        assert!(resolve_endpoint(Some("https://127.0.0.1:1"), Protocol::Grpc).is_err());
        assert!(resolve_endpoint(Some("http://127.0.0.1"), Protocol::Grpc).is_err());
    }

    #[test]
    fn limits() {
        let c = Args::parse_from(["loadgen"]).into_config().unwrap();
        assert_eq!(c.duration, Some(DEFAULT_DURATION));
        assert_eq!(c.max_requests, None);
        let c = Args::parse_from(["loadgen", "--spans", "250"])
            .into_config()
            .unwrap();
        assert_eq!(c.duration, None);
        assert_eq!(c.max_requests, Some(3));
        assert_eq!(c.tail_spans, 50);
        let c = Args::parse_from(["loadgen", "--spans", "200", "--duration", "1s"])
            .into_config()
            .unwrap();
        assert_eq!(c.duration, Some(Duration::from_secs(1)));
        assert_eq!(c.max_requests, Some(2));
        assert_eq!(c.tail_spans, 0);
        assert!(Args::parse_from(["loadgen", "--error-ratio", "1.5"])
            .into_config()
            .is_err());
        assert!(Args::parse_from(["loadgen", "--encoding", "json"])
            .into_config()
            .is_err());
    }
}
