//! Request body compression for `otlp_http`, with reusable compressors.
//!
//! Each concurrent sender (the sending queue has `num_consumers` of them) takes a
//! compressor from a small pool, resets it and puts it back, so the deflate or zstd state
//! (hundreds of KiB) is allocated once per consumer rather than once per request. gzip
//! is written as a raw deflate stream between a gzip header and trailer, so the same code
//! works with whichever flate2 backend is built (zlib-rs in this workspace).

use crate::otlp::config::Compression;
use bytes::Bytes;
use std::sync::Mutex;

/// The collector's `configcompression.DefaultCompressionLevel` (zlib's -1), which Go's
/// gzip writer maps to level 6.
pub const DEFAULT_LEVEL: i32 = -1;

/// gzip level used when the config says -1 (or leaves the level unset).
const GZIP_DEFAULT: u32 = 6;

/// zstd level used when the config says -1 or 0: zstd's own default.
const ZSTD_DEFAULT: i32 = 3;

/// Compresses request bodies with one algorithm and level, reusing its compressors.
pub struct BodyCompressor {
    kind: Kind,
}

enum Kind {
    None,
    Gzip {
        level: u32,
        pool: Mutex<Vec<flate2::Compress>>,
    },
    Zstd {
        level: i32,
        pool: Mutex<Vec<zstd::bulk::Compressor<'static>>>,
    },
}

impl BodyCompressor {
    /// A compressor for `compression` at `level` (the collector's
    /// `compression_params::level`: -1 or 0 for the default, 1..=9 for gzip, any zstd
    /// level). The level is checked by the config's validation; here an out-of-range
    /// gzip level is clamped.
    pub fn new(compression: Compression, level: i32) -> Self {
        let kind = match compression {
            Compression::None => Kind::None,
            Compression::Gzip => Kind::Gzip {
                level: gzip_level(level),
                pool: Mutex::new(Vec::new()),
            },
            Compression::Zstd => Kind::Zstd {
                level: zstd_level(level),
                pool: Mutex::new(Vec::new()),
            },
        };
        BodyCompressor { kind }
    }

    /// `body`, compressed (or as it is, for `none`).
    pub fn compress(&self, body: Bytes) -> std::io::Result<Bytes> {
        match &self.kind {
            Kind::None => Ok(body),
            Kind::Gzip { level, pool } => {
                let mut deflate = take(pool).unwrap_or_else(|| {
                    flate2::Compress::new(flate2::Compression::new(*level), false)
                });
                let out = gzip(&mut deflate, &body);
                deflate.reset();
                give_back(pool, deflate);
                out.map(Bytes::from)
            }
            Kind::Zstd { level, pool } => {
                let mut zstd = match take(pool) {
                    Some(z) => z,
                    None => zstd::bulk::Compressor::new(*level)?,
                };
                let out = zstd.compress(&body);
                give_back(pool, zstd);
                out.map(Bytes::from)
            }
        }
    }
}

fn take<T>(pool: &Mutex<Vec<T>>) -> Option<T> {
    pool.lock().ok().and_then(|mut p| p.pop())
}

fn give_back<T>(pool: &Mutex<Vec<T>>, item: T) {
    if let Ok(mut p) = pool.lock() {
        p.push(item);
    }
}

/// The gzip level for a configured level: -1 and 0 (unset) are Go's default, 6.
pub fn gzip_level(level: i32) -> u32 {
    match level {
        DEFAULT_LEVEL | 0 => GZIP_DEFAULT,
        l => l.clamp(1, 9) as u32,
    }
}

/// The zstd level for a configured level: -1 and 0 are zstd's default (3); others are
/// clamped to the library's range.
pub fn zstd_level(level: i32) -> i32 {
    match level {
        DEFAULT_LEVEL | 0 => ZSTD_DEFAULT,
        l => {
            let range = zstd::compression_level_range();
            l.clamp(*range.start(), *range.end())
        }
    }
}

/// gzip member header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// One gzip member holding `input`, deflated with `deflate` (a raw deflate stream, fresh
/// or reset).
fn gzip(deflate: &mut flate2::Compress, input: &[u8]) -> std::io::Result<Vec<u8>> {
    // Spans compress 4-10x; start at a third and grow if needed.
    let mut out = Vec::with_capacity(GZIP_HEADER.len() + input.len() / 3 + 64);
    out.extend_from_slice(&GZIP_HEADER);
    let start_in = deflate.total_in();
    loop {
        let consumed = (deflate.total_in() - start_in) as usize;
        if out.len() == out.capacity() {
            out.reserve(out.capacity() / 2 + 1024);
        }
        let status = deflate
            .compress_vec(&input[consumed..], &mut out, flate2::FlushCompress::Finish)
            .map_err(std::io::Error::other)?;
        if status == flate2::Status::StreamEnd {
            break;
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn sample(seed: u8, len: usize) -> Bytes {
        // Text-like and repetitive, with a changing byte so bodies differ.
        (0..len)
            .map(|i| b"span.name=GET /api/items;"[i % 25] ^ (seed & (i as u8 % 3)))
            .collect::<Vec<u8>>()
            .into()
    }

    #[test]
    fn gzip_round_trips_with_a_reused_compressor() {
        let c = BodyCompressor::new(Compression::Gzip, DEFAULT_LEVEL);
        for (seed, len) in [(1u8, 100_000usize), (2, 0), (3, 7), (4, 1_000_000)] {
            let body = sample(seed, len);
            let gz = c.compress(body.clone()).unwrap();
            assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
            assert_eq!(gunzip(&gz), body, "seed {seed}");
            if len > 1000 {
                assert!(gz.len() < len / 4, "{} of {len}", gz.len());
            }
        }
        let Kind::Gzip { pool, .. } = &c.kind else {
            unreachable!()
        };
        assert_eq!(pool.lock().unwrap().len(), 1, "one compressor, reused");
    }

    #[test]
    fn gzip_levels_differ_and_all_decode() {
        let body = sample(9, 500_000);
        let fast = BodyCompressor::new(Compression::Gzip, 1)
            .compress(body.clone())
            .unwrap();
        let best = BodyCompressor::new(Compression::Gzip, 9)
            .compress(body.clone())
            .unwrap();
        assert_eq!(gunzip(&fast), body);
        assert_eq!(gunzip(&best), body);
        assert!(best.len() <= fast.len());
    }

    #[test]
    fn incompressible_input_grows_the_buffer() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let body: Bytes = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect::<Vec<u8>>()
            .into();
        let c = BodyCompressor::new(Compression::Gzip, 6);
        let gz = c.compress(body.clone()).unwrap();
        assert_eq!(gunzip(&gz), body);
    }

    #[test]
    fn zstd_and_none() {
        let body = sample(5, 200_000);
        let c = BodyCompressor::new(Compression::Zstd, DEFAULT_LEVEL);
        for _ in 0..2 {
            let z = c.compress(body.clone()).unwrap();
            assert_eq!(zstd::bulk::decompress(&z, 300_000).unwrap(), body);
        }
        let none = BodyCompressor::new(Compression::None, DEFAULT_LEVEL);
        assert_eq!(none.compress(body.clone()).unwrap(), body);
    }

    #[test]
    fn levels_map_like_the_collector() {
        assert_eq!(gzip_level(-1), 6);
        assert_eq!(gzip_level(0), 6);
        assert_eq!(gzip_level(1), 1);
        assert_eq!(gzip_level(9), 9);
        assert_eq!(zstd_level(0), 3);
        assert_eq!(zstd_level(11), 11);
        assert_eq!(zstd_level(1000), *zstd::compression_level_range().end());
    }
}
