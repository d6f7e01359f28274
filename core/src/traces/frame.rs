//! Top-level framing of an encoded `ExportTraceServiceRequest`: its `resource_spans`
//! entries, found without decoding them.

use super::wire;

/// Reads a base-128 varint at `*pos`, advancing it.
fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Finds the longest prefix of whole `resource_spans` entries holding at most
/// `max_spans` spans. Returns the prefix length in bytes and its span count, or `None`
/// when the buffer holds fields other than `resource_spans` (then the caller decodes).
pub(crate) fn split_at_resource_boundary(buf: &[u8], max_spans: usize) -> Option<(usize, usize)> {
    let mut pos = 0;
    let mut spans = 0;
    while pos < buf.len() {
        let start = pos;
        let tag = read_varint(buf, &mut pos)?;
        if tag != (1 << 3 | 2) {
            return None;
        }
        let len = usize::try_from(read_varint(buf, &mut pos)?).ok()?;
        let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
        let n = wire::scan_resource_spans(&buf[pos..end]).ok()?;
        if spans + n > max_spans {
            return Some((start, spans));
        }
        spans += n;
        pos = end;
    }
    Some((pos, spans))
}

/// Counts the `resource_spans` entries of an encoded request by walking its top-level
/// framing (one tag and one length per entry; nothing inside is read). `None` when the
/// framing is broken, which cannot happen for bytes that passed the wire scan.
pub(crate) fn count_resource_spans(buf: &[u8]) -> Option<usize> {
    let mut pos = 0;
    let mut count = 0;
    while pos < buf.len() {
        let tag = read_varint(buf, &mut pos)?;
        let skip = match tag & 7 {
            0 => {
                read_varint(buf, &mut pos)?;
                0
            }
            1 => 8,
            2 => usize::try_from(read_varint(buf, &mut pos)?).ok()?,
            5 => 4,
            _ => return None,
        };
        pos = pos.checked_add(skip).filter(|&end| end <= buf.len())?;
        count += usize::from(tag == (1 << 3 | 2));
    }
    Some(count)
}
