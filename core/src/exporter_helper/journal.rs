//! The on-disk log behind the persistent sending queue: append-only segment files holding
//! the batches, and an acknowledgement file saying which of them the backend took.
//!
//! Every batch gets a sequence number (`seq`), one more than the previous batch's. A
//! segment file `segment-<first seq, 20 digits>.log` holds consecutive batches, each as one
//! record:
//!
//! ```text
//! u32 big-endian  payload length
//! u32 big-endian  CRC-32 (IEEE) of the payload
//! payload         the encoded ExportTraceServiceRequest
//! ```
//!
//! The acknowledgement file `acks.log` is a sequence of 13-byte records
//! (`u8 kind, u64 big-endian seq, u32 big-endian CRC-32 of the first 9 bytes`):
//!
//! * `H n` (kind 1, first record only): every batch before `n` is acknowledged unless an
//!   `L` record names it;
//! * `L s` (kind 2): batch `s` (before the horizon) is not acknowledged yet;
//! * `A s` (kind 3): batch `s` is acknowledged.
//!
//! Appends and acknowledgements are fsynced before they are reported done, so a crash
//! loses neither a queued batch nor an acknowledgement: a batch sent but not yet
//! acknowledged when the process died is sent again (at-least-once). Compaction rewrites
//! the acknowledgement file as `H next` plus one `L` per unacknowledged batch (written to
//! `acks.tmp`, fsynced, renamed) and deletes the segments whose batches are all
//! acknowledged. A record cut short or failing its CRC (a torn write) ends its file: it is
//! truncated there with a warning.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes before a segment's payload: length and CRC.
const RECORD_HEADER: usize = 8;
/// Size of one acknowledgement record.
const ACK_RECORD: usize = 13;
/// Acknowledgement records written before the acknowledgement file is rewritten.
const ACK_RECORDS_BEFORE_COMPACTION: usize = 4096;

const KIND_HORIZON: u8 = 1;
const KIND_LIVE: u8 = 2;
const KIND_ACKED: u8 = 3;

const ACKS_FILE: &str = "acks.log";
const ACKS_TMP: &str = "acks.tmp";

/// A batch found on disk at open that the backend has not acknowledged.
#[derive(Debug)]
pub(crate) struct Recovered {
    /// Its sequence number.
    pub seq: u64,
    /// The encoded `ExportTraceServiceRequest`.
    pub payload: Vec<u8>,
}

/// One segment file: its path and how many records it holds.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    count: u64,
}

/// The open log. Not thread-safe by itself: the queue keeps it behind a mutex and calls
/// it from blocking tasks.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    /// Segments by first sequence number; the last one is being written.
    segments: BTreeMap<u64, Segment>,
    writer: Option<File>,
    writer_first: u64,
    writer_size: u64,
    next_seq: u64,
    /// Batches written and not acknowledged.
    live: BTreeSet<u64>,
    acks: File,
    ack_records: usize,
}

/// What the acknowledgement file says.
#[derive(Debug, Default)]
struct AckState {
    horizon: u64,
    live_below: BTreeSet<u64>,
    acked: BTreeSet<u64>,
}

impl AckState {
    fn is_acked(&self, seq: u64) -> bool {
        (seq < self.horizon && !self.live_below.contains(&seq)) || self.acked.contains(&seq)
    }

    fn max_seen(&self) -> u64 {
        let last = |s: &BTreeSet<u64>| s.last().map_or(0, |s| s + 1);
        self.horizon
            .max(last(&self.live_below))
            .max(last(&self.acked))
    }
}

fn segment_name(first: u64) -> String {
    format!("segment-{first:020}.log")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn ack_record(kind: u8, seq: u64) -> [u8; ACK_RECORD] {
    let mut rec = [0u8; ACK_RECORD];
    rec[0] = kind;
    rec[1..9].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32fast::hash(&rec[..9]);
    rec[9..].copy_from_slice(&crc.to_be_bytes());
    rec
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    // Makes file creations, renames and deletions durable (a no-op where directories
    // cannot be opened, as on Windows).
    match File::open(dir) {
        Ok(d) => d.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

/// Cuts `path` at `len` after a torn or corrupt record, with a warning.
fn truncate_torn(path: &Path, len: u64, why: &str) -> io::Result<()> {
    tracing::warn!(
        file = %path.display(),
        offset = len,
        "persistent queue: {why}; truncating the file there (a write was cut short by a crash)"
    );
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Reads the acknowledgement file, truncating a torn tail.
fn read_acks(path: &Path) -> io::Result<AckState> {
    let mut state = AckState::default();
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
        Err(e) => return Err(e),
    };
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(rec) = bytes.get(pos..pos + ACK_RECORD) else {
            truncate_torn(path, pos as u64, "acknowledgement record cut short")?;
            break;
        };
        let crc = u32::from_be_bytes([rec[9], rec[10], rec[11], rec[12]]);
        if crc32fast::hash(&rec[..9]) != crc {
            truncate_torn(path, pos as u64, "acknowledgement record fails its CRC")?;
            break;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rec[1..9]);
        let seq = u64::from_be_bytes(seq);
        match rec[0] {
            KIND_HORIZON => state.horizon = seq,
            KIND_LIVE => {
                state.live_below.insert(seq);
            }
            KIND_ACKED => {
                state.acked.insert(seq);
            }
            _ => {
                truncate_torn(path, pos as u64, "unknown acknowledgement record kind")?;
                break;
            }
        }
        pos += ACK_RECORD;
    }
    Ok(state)
}

/// Reads one segment: its records' payloads in order, truncating a torn tail.
fn read_segment(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let bytes = fs::read(path)?;
    let mut records = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + RECORD_HEADER) else {
            truncate_torn(path, pos as u64, "record header cut short")?;
            break;
        };
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let start = pos + RECORD_HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            truncate_torn(path, pos as u64, "record payload cut short")?;
            break;
        };
        if crc32fast::hash(payload) != crc {
            truncate_torn(path, pos as u64, "record fails its CRC")?;
            break;
        }
        records.push(payload.to_vec());
        pos = start + len;
    }
    Ok(records)
}

impl Journal {
    /// Opens (or creates) the log in `dir` and returns it with the batches not yet
    /// acknowledged, oldest first. New segments start once the current one holds
    /// `segment_bytes`.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Journal, Vec<Recovered>)> {
        fs::create_dir_all(dir)?;
        let _ = fs::remove_file(dir.join(ACKS_TMP));
        let acked = read_acks(&dir.join(ACKS_FILE))?;

        let mut firsts = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
                firsts.push(first);
            }
        }
        firsts.sort_unstable();

        let mut segments = BTreeMap::new();
        let mut recovered = Vec::new();
        let mut live = BTreeSet::new();
        let mut next_seq = acked.max_seen();
        for first in firsts {
            let path = dir.join(segment_name(first));
            let records = read_segment(&path)?;
            let count = records.len() as u64;
            for (i, payload) in records.into_iter().enumerate() {
                let seq = first + i as u64;
                if !acked.is_acked(seq) {
                    live.insert(seq);
                    recovered.push(Recovered { seq, payload });
                }
            }
            next_seq = next_seq.max(first + count);
            segments.insert(first, Segment { path, count });
        }

        // Keep writing the last segment only if its numbering continues at `next_seq`.
        let (writer_first, writer_size) = match segments.last_key_value() {
            Some((&first, seg)) if first + seg.count == next_seq => {
                (first, fs::metadata(&seg.path)?.len())
            }
            _ => (next_seq, 0),
        };
        let writer_path = dir.join(segment_name(writer_first));
        let writer = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&writer_path)?;
        segments.entry(writer_first).or_insert(Segment {
            path: writer_path,
            count: 0,
        });
        sync_dir(dir)?;

        let acks = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(ACKS_FILE))?;
        let mut journal = Journal {
            dir: dir.to_path_buf(),
            segment_bytes,
            segments,
            writer: Some(writer),
            writer_first,
            writer_size,
            next_seq,
            live,
            acks,
            ack_records: 0,
        };
        journal.compact()?;
        Ok((journal, recovered))
    }

    /// Appends one batch, fsyncs it, and returns its sequence number.
    pub fn append(&mut self, payload: &[u8]) -> io::Result<u64> {
        let len = u32::try_from(payload.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "batch larger than 4 GiB cannot be queued",
            )
        })?;
        if self.writer.is_none() || self.writer_size >= self.segment_bytes {
            self.rotate()?;
        }
        let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_be_bytes());
        record.extend_from_slice(payload);
        let Some(writer) = self.writer.as_mut() else {
            return Err(io::Error::other("no segment open for writing"));
        };
        let written = writer.write_all(&record).and_then(|()| writer.sync_data());
        if let Err(e) = written {
            // Cut the partial record off, and start a fresh segment next time in case
            // that fails too, so that later records are not hidden behind a torn one.
            let _ = writer.set_len(self.writer_size);
            self.writer = None;
            return Err(e);
        }
        self.writer_size += record.len() as u64;
        if let Some(seg) = self.segments.get_mut(&self.writer_first) {
            seg.count += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.live.insert(seq);
        Ok(seq)
    }

    /// Records that the backend took batch `seq` (fsynced), and compacts when a segment
    /// became fully acknowledged or the acknowledgement file grew long.
    pub fn ack(&mut self, seq: u64) -> io::Result<()> {
        if !self.live.remove(&seq) {
            return Ok(());
        }
        self.acks.write_all(&ack_record(KIND_ACKED, seq))?;
        self.acks.sync_data()?;
        self.ack_records += 1;
        if self.ack_records >= ACK_RECORDS_BEFORE_COMPACTION || self.oldest_segment_done() {
            self.compact()?;
        }
        Ok(())
    }

    /// Number of batches written and not acknowledged.
    #[cfg(test)]
    pub fn unacked(&self) -> usize {
        self.live.len()
    }

    /// Number of segment files.
    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The lowest sequence number not acknowledged (or the next one to be written).
    fn low_water(&self) -> u64 {
        self.live.first().copied().unwrap_or(self.next_seq)
    }

    fn oldest_segment_done(&self) -> bool {
        self.segments.iter().next().is_some_and(|(&first, seg)| {
            first != self.writer_first && first + seg.count <= self.low_water()
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        let first = self.next_seq;
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.set_len(0)?;
        sync_dir(&self.dir)?;
        self.segments.insert(first, Segment { path, count: 0 });
        self.writer = Some(file);
        self.writer_first = first;
        self.writer_size = 0;
        Ok(())
    }

    /// Rewrites the acknowledgement file as a snapshot and deletes the segments whose
    /// batches are all acknowledged.
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.dir.join(ACKS_TMP);
        let mut snapshot = Vec::with_capacity((self.live.len() + 1) * ACK_RECORD);
        snapshot.extend_from_slice(&ack_record(KIND_HORIZON, self.next_seq));
        for &seq in &self.live {
            snapshot.extend_from_slice(&ack_record(KIND_LIVE, seq));
        }
        let mut file = File::create(&tmp)?;
        file.write_all(&snapshot)?;
        file.sync_all()?;
        drop(file);
        let acks_path = self.dir.join(ACKS_FILE);
        fs::rename(&tmp, &acks_path)?;
        sync_dir(&self.dir)?;
        self.acks = OpenOptions::new().append(true).open(&acks_path)?;
        self.ack_records = 0;

        let low = self.low_water();
        let done: Vec<u64> = self
            .segments
            .iter()
            .filter(|(&first, seg)| first != self.writer_first && first + seg.count <= low)
            .map(|(&first, _)| first)
            .collect();
        for first in done {
            if let Some(seg) = self.segments.remove(&first) {
                fs::remove_file(&seg.path)?;
            }
        }
        sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(recovered: &[Recovered]) -> Vec<(u64, Vec<u8>)> {
        recovered
            .iter()
            .map(|r| (r.seq, r.payload.clone()))
            .collect()
    }

    #[test]
    fn unacknowledged_batches_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut j, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
            assert!(rec.is_empty());
            for i in 0..5u8 {
                assert_eq!(j.append(&[i; 10]).unwrap(), u64::from(i));
            }
            j.ack(1).unwrap();
            j.ack(3).unwrap();
            assert_eq!(j.unacked(), 3);
        }
        let (mut j, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            payloads(&rec),
            vec![(0, vec![0; 10]), (2, vec![2; 10]), (4, vec![4; 10])]
        );
        // Numbering continues after the last batch.
        assert_eq!(j.append(b"next").unwrap(), 5);
        j.ack(0).unwrap();
        drop(j);
        let (_, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        let seqs: Vec<u64> = rec.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![2, 4, 5]);
    }

    #[test]
    fn fully_acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), 100).unwrap();
        // 60-byte payloads: each segment takes two records before rotating.
        for _ in 0..6 {
            j.append(&[7; 60]).unwrap();
        }
        assert_eq!(j.segment_count(), 3);
        j.ack(0).unwrap();
        assert_eq!(j.segment_count(), 3);
        j.ack(1).unwrap();
        assert_eq!(j.segment_count(), 2);
        j.ack(3).unwrap();
        assert_eq!(j.segment_count(), 2, "batch 2 holds the second segment");
        j.ack(2).unwrap();
        assert_eq!(j.segment_count(), 1);
        let files = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("segment-")
            })
            .count();
        assert_eq!(files, 1);
        drop(j);
        let (_, rec) = Journal::open(dir.path(), 100).unwrap();
        let seqs: Vec<u64> = rec.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, vec![4, 5]);
    }

    #[test]
    fn torn_tail_is_truncated_and_writing_continues() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join(segment_name(0));
        {
            let (mut j, _) = Journal::open(dir.path(), 1 << 20).unwrap();
            j.append(b"first").unwrap();
            j.append(b"second").unwrap();
        }
        let good_len = fs::metadata(&segment).unwrap().len();
        // A third record whose payload was cut short by a crash.
        let mut f = OpenOptions::new().append(true).open(&segment).unwrap();
        f.write_all(&100u32.to_be_bytes()).unwrap();
        f.write_all(&[0, 0, 0, 0]).unwrap();
        f.write_all(b"part").unwrap();
        drop(f);

        let (mut j, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(
            payloads(&rec),
            vec![(0, b"first".to_vec()), (1, b"second".to_vec())]
        );
        assert_eq!(fs::metadata(&segment).unwrap().len(), good_len);
        assert_eq!(j.append(b"third").unwrap(), 2);
        drop(j);
        let (_, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rec.len(), 3);
        assert_eq!(rec[2].payload, b"third");
    }

    #[test]
    fn corrupt_record_and_corrupt_ack_are_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join(segment_name(0));
        {
            let (mut j, _) = Journal::open(dir.path(), 1 << 20).unwrap();
            j.append(b"aaaa").unwrap();
            j.append(b"bbbb").unwrap();
            j.ack(0).unwrap();
        }
        // Flip a payload byte of the second record: its CRC no longer matches.
        let mut bytes = fs::read(&segment).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&segment, &bytes).unwrap();
        // And a half-written acknowledgement record.
        let mut acks = OpenOptions::new()
            .append(true)
            .open(dir.path().join(ACKS_FILE))
            .unwrap();
        acks.write_all(&[KIND_ACKED, 0, 0]).unwrap();
        drop(acks);

        let (_, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(rec.is_empty(), "batch 0 acked, batch 1 corrupt: {rec:?}");
        assert_eq!(fs::metadata(&segment).unwrap().len(), 12);
    }

    #[test]
    fn garbage_files_do_not_panic() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ACKS_FILE), b"\xff\xff").unwrap();
        fs::write(
            dir.path().join(segment_name(7)),
            b"\xff\xff\xff\xff\xff\xff\xff\xffxx",
        )
        .unwrap();
        fs::write(dir.path().join("unrelated.txt"), b"hello").unwrap();
        let (mut j, rec) = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(rec.is_empty());
        assert_eq!(j.append(b"x").unwrap(), 7);
    }
}
