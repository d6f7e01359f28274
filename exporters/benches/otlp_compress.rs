//! `cargo bench -p teletrace-exporters --bench otlp_compress`: what compressing one
//! forwarded batch costs. The batch is what `otlp -> batch -> otlp` sends: 8,192 spans
//! from loadgen's generator with its defaults (10 attributes per span, traces of 5 spans,
//! random IDs), 82 requests of 100 spans concatenated as the batch processor does, as
//! encoded protobuf. Single-threaded; best of three rounds; figures are CPU cost on this
//! machine, so compare rows of one run rather than runs on a busy machine.
//!
//! Rows: `grpc gzip` is what tonic does for the `otlp` exporter (a new
//! `flate2::read::GzEncoder` at level 6 per message, copied out in chunks); `http ...`
//! rows are `otlp_http`'s reusable [`BodyCompressor`] at the collector's default level
//! and at `compression_params: {level: 1}`; zstd for comparison.

use bytes::{Bytes, BytesMut};
use loadgen::generate::{build_request, GenOptions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;
use teletrace_exporters::otlp::compress::BodyCompressor;
use teletrace_exporters::otlp::Compression;

const SPANS: u32 = 8192;
const ROUNDS: usize = 3;
const ITERATIONS: usize = 8;

fn batch() -> Bytes {
    let opts = GenOptions {
        attributes: 10,
        resource_attributes: 5,
        service: "loadgen".into(),
        trace_depth: 5,
        error_ratio: 0.01,
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut request = ExportTraceServiceRequest::default();
    let mut made = 0;
    while made < SPANS {
        let n = 100.min(SPANS - made);
        let generated = build_request(&mut rng, &opts, n, 1_700_000_000_000_000_000);
        request
            .resource_spans
            .extend(generated.request.resource_spans);
        made += n;
    }
    request.encode_to_vec().into()
}

/// tonic 0.14's gzip step for one message (`codec::compression::compress`).
fn tonic_gzip(body: &[u8]) -> usize {
    use bytes::BufMut;
    let mut out = BytesMut::with_capacity(body.len() / 4).writer();
    let mut encoder = flate2::read::GzEncoder::new(body, flate2::Compression::new(6));
    std::io::copy(&mut encoder, &mut out).expect("gzip");
    out.into_inner().len()
}

fn measure(name: &str, body: &Bytes, mut f: impl FnMut(&Bytes) -> usize) {
    let mut best = f64::MAX;
    let mut size = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            size = f(body);
        }
        best = best.min(start.elapsed().as_secs_f64() / ITERATIONS as f64);
    }
    println!(
        "{name:<22} {:>7.1} ms/batch {:>7.1} MB/s in {:>10.0} spans/CPU-s  ratio {:>4.1} ({} -> {} bytes)",
        best * 1e3,
        body.len() as f64 / best / 1e6,
        SPANS as f64 / best,
        body.len() as f64 / size as f64,
        body.len(),
        size,
    );
}

fn main() {
    let body = batch();
    println!("batch: {SPANS} spans, {} bytes of protobuf", body.len());
    measure("grpc gzip (tonic, 6)", &body, |b| tonic_gzip(b));
    for (name, compression, level) in [
        ("http gzip default (6)", Compression::Gzip, -1),
        ("http gzip level 1", Compression::Gzip, 1),
        ("http zstd default (3)", Compression::Zstd, -1),
        ("http zstd level 1", Compression::Zstd, 1),
    ] {
        let compressor = BodyCompressor::new(compression, level);
        measure(name, &body, |b| {
            compressor.compress(b.clone()).expect("compress").len()
        });
    }
}
