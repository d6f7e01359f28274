//! The pre-built request bodies the workers cycle through.
//!
//! Everything expensive (generating spans, encoding, compressing, gRPC
//! framing) happens once in [`Workload::build`]. Sending request number
//! `seq` then costs a reference-count increment ([`Workload::payload`]), or,
//! with `--unique-ids`, a copy of the encoded body with its IDs patched (plus
//! compression and framing when those apply).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::{BufMut, Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::args::{Compression, Config, Encoding, GrpcClient, Protocol};
use crate::generate::{build_request, encode, splitmix64, GenOptions, IdLayout};

/// How an encoded message becomes the bytes put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyFormat {
    /// Prefix the message with the 5-byte gRPC length-prefixed-message header.
    pub grpc_frame: bool,
    /// gzip the message (inside the gRPC frame, if any).
    pub gzip: bool,
}

impl BodyFormat {
    /// The body format the configured transport expects.
    pub fn for_config(cfg: &Config) -> Self {
        let gzip = cfg.args.compression == Compression::Gzip;
        match (cfg.args.protocol, cfg.args.grpc_client) {
            (Protocol::Grpc, GrpcClient::Hyper) => Self {
                grpc_frame: true,
                gzip,
            },
            // tonic frames and compresses each message itself.
            (Protocol::Grpc, GrpcClient::Tonic) => Self {
                grpc_frame: false,
                gzip: false,
            },
            (Protocol::Http, _) => Self {
                grpc_frame: false,
                gzip,
            },
        }
    }

    /// Turn an encoded message into a wire body, compressing at `level`.
    pub fn wire(&self, message: Vec<u8>, level: flate2::Compression) -> Result<Bytes> {
        let payload = if self.gzip {
            gzip(&message, level)?
        } else {
            message
        };
        if !self.grpc_frame {
            return Ok(Bytes::from(payload));
        }
        let len = u32::try_from(payload.len()).context("message too large for gRPC framing")?;
        let mut out = BytesMut::with_capacity(5 + payload.len());
        out.put_u8(u8::from(self.gzip));
        out.put_u32(len);
        out.put_slice(&payload);
        Ok(out.freeze())
    }
}

/// gzip `data` at `level`.
pub fn gzip(data: &[u8], level: flate2::Compression) -> Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), level);
    enc.write_all(data)?;
    Ok(enc.finish()?)
}

/// One pre-built request.
#[derive(Debug, Clone)]
struct Prebuilt {
    /// Ready-to-send body.
    wire: Bytes,
    /// Encoded, uncompressed, unframed message (kept only for `--unique-ids`).
    message: Option<(Vec<u8>, IdLayout)>,
    /// Length of the encoded, uncompressed message.
    message_len: usize,
    spans: u32,
    error_spans: u32,
}

/// A request body ready to send, with what it contains.
#[derive(Debug, Clone)]
pub struct Payload {
    /// Bytes to send as the request body.
    pub body: Bytes,
    /// Spans in the request.
    pub spans: u32,
    /// Spans with status ERROR in the request.
    pub error_spans: u32,
}

/// The set of pre-built requests for a run.
#[derive(Debug)]
pub struct Workload {
    requests: Vec<Prebuilt>,
    /// Smaller last request for `--spans` not divisible by `--spans-per-request`.
    tail: Option<(u64, Prebuilt)>,
    format: BodyFormat,
    unique_ids: bool,
    salt: u64,
    built_unix_nanos: u64,
    /// Uncompressed encoded size of an average request (for reporting).
    pub avg_message_bytes: usize,
    /// Wire size of an average request (for reporting).
    pub avg_wire_bytes: usize,
}

/// Current time as Unix nanoseconds.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Workload {
    /// Generate, encode and frame all requests for `cfg`.
    pub fn build(cfg: &Config) -> Result<Self> {
        let a = &cfg.args;
        let seed = a.seed.unwrap_or_else(|| rand::rng().random());
        let mut rng = StdRng::seed_from_u64(seed);
        let opts = GenOptions {
            attributes: a.attributes,
            resource_attributes: a.resource_attributes,
            service: a.service.clone(),
            trace_depth: a.trace_depth,
            error_ratio: a.error_ratio,
        };
        let encoding = match a.protocol {
            Protocol::Grpc => Encoding::Proto,
            Protocol::Http => a.encoding,
        };
        let format = BodyFormat::for_config(cfg);
        let now = unix_nanos();
        // With --spans smaller than one cycle, don't build requests never sent.
        let distinct = match cfg.max_requests {
            Some(m) => {
                let full = if cfg.tail_spans > 0 { m - 1 } else { m };
                u64::from(a.distinct_requests).min(full).max(1) as u32
            }
            None => a.distinct_requests,
        };
        let mut make = |spans: u32| -> Result<Prebuilt> {
            let g = build_request(&mut rng, &opts, spans, now);
            let message = encode(&g.request, encoding)?;
            let message_len = message.len();
            // Pre-built bodies: default level, like OTLP SDK exporters.
            let wire = format.wire(message.clone(), flate2::Compression::default())?;
            let message = if a.unique_ids {
                let layout = IdLayout::locate(&message, encoding, &g)?;
                Some((message, layout))
            } else {
                None
            };
            Ok(Prebuilt {
                wire,
                message,
                message_len,
                spans: g.spans,
                error_spans: g.error_spans,
            })
        };
        let mut requests = Vec::with_capacity(distinct as usize);
        let mut message_bytes = 0;
        let mut wire_bytes = 0;
        for _ in 0..distinct {
            let p = make(a.spans_per_request)?;
            wire_bytes += p.wire.len();
            message_bytes += p.message_len;
            requests.push(p);
        }
        let tail = match cfg.max_requests {
            Some(m) if cfg.tail_spans > 0 => Some((m - 1, make(cfg.tail_spans)?)),
            _ => None,
        };
        Ok(Self {
            avg_message_bytes: message_bytes / requests.len(),
            avg_wire_bytes: wire_bytes / requests.len(),
            requests,
            tail,
            format,
            unique_ids: a.unique_ids,
            salt: splitmix64(seed ^ 0x6c6f_6164_6765_6e00),
            built_unix_nanos: now,
        })
    }

    /// Number of distinct pre-built requests.
    pub fn distinct(&self) -> usize {
        self.requests.len()
    }

    /// The body for request number `seq` (0-based, across all workers).
    pub fn payload(&self, seq: u64) -> Result<Payload> {
        let p = match &self.tail {
            Some((tail_seq, p)) if *tail_seq == seq => p,
            _ => &self.requests[(seq % self.requests.len() as u64) as usize],
        };
        let body = match (&p.message, self.unique_ids) {
            (Some((message, layout)), true) => {
                let mut buf = message.clone();
                let shift = unix_nanos().saturating_sub(self.built_unix_nanos);
                layout.apply(&mut buf, splitmix64(self.salt ^ seq), shift);
                // Compressed per request: fast level, or gzip alone would
                // limit the generator to ~1,000 requests/s per core.
                self.format.wire(buf, flate2::Compression::fast())?
            }
            _ => p.wire.clone(),
        };
        Ok(Payload {
            body,
            spans: p.spans,
            error_spans: p.error_spans,
        })
    }
}
