//! Reading an OTLP/HTTP request body: the size limit (on the bytes received and again on
//! the decompressed bytes, so a small compressed body cannot expand without bound) and
//! `Content-Encoding` (identity, gzip, zstd, zlib/deflate).

use crate::otlp::status::Failure;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::io::Read;

/// A request `Content-Encoding` this receiver can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    /// No compression.
    Identity,
    /// gzip (also `x-gzip`).
    Gzip,
    /// Zstandard.
    Zstd,
    /// zlib-wrapped deflate (`zlib` and `deflate`, as the collector reads both).
    Zlib,
}

impl Coding {
    /// The coding named by a `Content-Encoding` value, in the collector's names.
    fn from_name(name: &str) -> Option<(Coding, &'static str)> {
        Some(match name {
            "" | "identity" => (Coding::Identity, "identity"),
            "gzip" | "x-gzip" => (Coding::Gzip, "gzip"),
            "zstd" => (Coding::Zstd, "zstd"),
            "zlib" => (Coding::Zlib, "zlib"),
            "deflate" => (Coding::Zlib, "deflate"),
            _ => return None,
        })
    }
}

/// The encodings a server accepts (`compression_algorithms`).
#[derive(Debug, Clone)]
pub(crate) struct AcceptedCodings {
    /// Config names; empty means every supported coding.
    names: Vec<String>,
}

impl AcceptedCodings {
    /// From `compression_algorithms`.
    pub(crate) fn new(names: &[String]) -> Self {
        AcceptedCodings {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// The coding of a request, or a 400 failure naming the unsupported encoding.
    pub(crate) fn of(&self, headers: &HeaderMap) -> Result<Coding, Failure> {
        let raw = match headers.get(http::header::CONTENT_ENCODING) {
            None => return Ok(Coding::Identity),
            Some(v) => v
                .to_str()
                .map_err(|_| Failure::BadData("unsupported Content-Encoding".into()))?,
        };
        let name = raw.trim().to_ascii_lowercase();
        let unsupported = || Failure::BadData(format!("unsupported Content-Encoding: {raw:?}"));
        let (coding, config_name) = Coding::from_name(&name).ok_or_else(unsupported)?;
        let allowed = self.names.is_empty()
            || (coding == Coding::Identity
                && self.names.iter().any(|n| n.is_empty() || n == "identity"))
            || self.names.iter().any(|n| n == config_name);
        if allowed {
            Ok(coding)
        } else {
            Err(unsupported())
        }
    }
}

fn too_large(limit: usize) -> Failure {
    Failure::TooLarge(format!(
        "request body too large: the limit is {limit} bytes (max_request_body_size)"
    ))
}

/// Reads the whole body, at most `limit` bytes, and decompresses it to at most `limit`
/// bytes.
pub(crate) async fn read<B>(
    body: B,
    headers: &HeaderMap,
    coding: Coding,
    limit: usize,
) -> Result<Bytes, Failure>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let received = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                too_large(limit)
            } else {
                Failure::BadData(format!("failed to read the request body: {e}"))
            }
        })?
        .to_bytes();
    decompress(coding, received, limit)
}

/// Decompresses `body`, refusing output over `limit` bytes.
pub(crate) fn decompress(coding: Coding, body: Bytes, limit: usize) -> Result<Bytes, Failure> {
    match coding {
        Coding::Identity => Ok(body),
        Coding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(&body[..]), limit, "gzip"),
        Coding::Zlib => read_limited(flate2::read::ZlibDecoder::new(&body[..]), limit, "zlib"),
        Coding::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| Failure::Internal(format!("zstd decoder: {e}")))?;
            // Bound the window (the memory a frame may ask for): streaming encoders
            // declare up to 8 MiB (2^23) whatever the input size; beyond that, no frame
            // needs a window larger than the output it may produce.
            let window_log = usize::BITS - limit.leading_zeros();
            decoder
                .window_log_max(window_log.clamp(23, 27))
                .map_err(|e| Failure::Internal(format!("zstd decoder: {e}")))?;
            read_limited(decoder, limit, "zstd")
        }
    }
}

fn read_limited(reader: impl Read, limit: usize, name: &str) -> Result<Bytes, Failure> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Failure::BadData(format!("invalid {name}-compressed body: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn decompresses_within_the_limit() {
        let data = vec![7u8; 1000];
        let out = decompress(Coding::Gzip, gzip(&data).into(), 1000).unwrap();
        assert_eq!(&out[..], &data[..]);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            &decompress(Coding::Zstd, z.into(), 1000).unwrap()[..],
            &data[..]
        );
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&data).unwrap();
        let zl = e.finish().unwrap();
        assert_eq!(
            &decompress(Coding::Zlib, zl.into(), 1000).unwrap()[..],
            &data[..]
        );
    }

    #[test]
    fn refuses_bombs() {
        let data = vec![0u8; 10 << 20];
        let bomb = gzip(&data);
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            decompress(Coding::Gzip, bomb.into(), 1 << 20),
            Err(Failure::TooLarge(_))
        ));
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert!(matches!(
            decompress(Coding::Zstd, z.into(), 1 << 20),
            Err(Failure::TooLarge(_))
        ));
    }

    #[test]
    fn corrupt_input_is_bad_data() {
        let mut g = gzip(b"hello world, hello world");
        let n = g.len();
        g[n / 2] ^= 0xff;
        g.truncate(n - 4);
        assert!(matches!(
            decompress(Coding::Gzip, g.into(), 1000),
            Err(Failure::BadData(_))
        ));
        assert!(matches!(
            decompress(Coding::Zstd, Bytes::from_static(b"not zstd"), 1000),
            Err(Failure::BadData(_))
        ));
    }

    #[test]
    fn codings_follow_compression_algorithms() {
        let mut h = HeaderMap::new();
        let all = AcceptedCodings::new(&[]);
        assert_eq!(all.of(&h).unwrap(), Coding::Identity);
        h.insert(http::header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(all.of(&h).unwrap(), Coding::Gzip);
        let only_zstd = AcceptedCodings::new(&["zstd".to_string()]);
        assert!(only_zstd.of(&h).is_err());
        h.insert(http::header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(all.of(&h).is_err());
    }
}
