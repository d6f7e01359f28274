//! Reading what the `file` exporter wrote: records (JSON lines, or 4-byte big-endian
//! length-prefixed messages, each optionally zstd-compressed) from the rotated files and
//! the file itself, optionally following it as it grows and across rotations.

use super::config::{FileReceiverConfig, Format, StartAt};
use crate::otlp::json;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use teletrace_core::Traces;

/// Bytes read per step.
const CHUNK: usize = 1 << 20;
/// A length prefix above this is taken as corruption (the framing cannot be trusted after).
const MAX_RECORD: usize = 1 << 30;

/// A record that could not be read: names the file and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {at}: {message}")]
pub struct ReadError {
    /// The file.
    pub file: String,
    /// `line N` (JSON lines) or `offset N` (bytes, length-prefixed records).
    pub at: String,
    /// What is wrong.
    pub message: String,
}

/// How records are framed and decoded.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    format: Format,
    zstd: bool,
}

impl Decoder {
    /// The decoder for a config.
    pub fn new(format: Format, zstd: bool) -> Self {
        Decoder { format, zstd }
    }

    fn lines(&self) -> bool {
        self.format == Format::Json && !self.zstd
    }

    fn decode_message(&self, message: &[u8]) -> Result<Traces, String> {
        let raw;
        let message = if self.zstd {
            raw = zstd::stream::decode_all(message).map_err(|e| format!("zstd: {e}"))?;
            &raw[..]
        } else {
            message
        };
        match self.format {
            Format::Proto => Traces::from_encoded(Bytes::copy_from_slice(message))
                .map_err(|e| format!("invalid OTLP protobuf: {e}")),
            Format::Json => json::decode_request(message)
                .map(Traces::from_request)
                .map_err(|e| e.to_string()),
        }
    }
}

/// One open file being read.
struct Open {
    file: File,
    name: PathBuf,
    /// File offset of `buf[0]`.
    offset: u64,
    /// Lines fully read (JSON lines).
    line: u64,
    buf: Vec<u8>,
    /// The file's identity, to notice a rotation (unix inode).
    id: Option<u64>,
    is_main: bool,
    /// The framing broke: nothing more can be read from this file.
    broken: bool,
}

#[cfg(unix)]
fn file_id(meta: &fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &fs::Metadata) -> Option<u64> {
    None
}

/// What one step of reading produced.
pub type Item = Result<Traces, ReadError>;

/// Reads the files of one `file` receiver. Blocking; the receiver runs it on a blocking
/// thread.
pub struct Tail {
    decoder: Decoder,
    path: PathBuf,
    follow: bool,
    backlog: VecDeque<PathBuf>,
    current: Option<Open>,
    /// Where to start in the main file the first time it is opened.
    start_at_end: bool,
    main_opened: bool,
    finished: bool,
}

impl Tail {
    /// Prepares reading per `config` (lists the rotated files now).
    pub fn new(config: &FileReceiverConfig) -> io::Result<Self> {
        let path = PathBuf::from(&config.path);
        let mut backlog = VecDeque::new();
        if config.include_rotated && config.start_at == StartAt::Beginning {
            backlog.extend(teletrace_core::rotated_files::list(&path)?);
        }
        Ok(Tail {
            decoder: Decoder::new(config.format, config.compression == "zstd"),
            path,
            follow: config.follow,
            backlog,
            current: None,
            start_at_end: config.start_at == StartAt::End,
            main_opened: false,
            finished: false,
        })
    }

    /// True once everything was read and the file is not followed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Reads what is available now (at most about one chunk of records per call).
    pub fn poll(&mut self) -> Vec<Item> {
        let mut out = Vec::new();
        while out.is_empty() && !self.finished {
            if self.current.is_none() && !self.open_next(&mut out) {
                break;
            }
            let Some(open) = self.current.as_mut() else {
                break;
            };
            match read_step(open, self.decoder, &mut out) {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => {
                    out.push(Err(error(
                        &open.name,
                        format!("offset {}", open.offset),
                        e.to_string(),
                    )));
                    open.broken = true;
                }
            }
            // At the end of this file for now.
            let rotated = open.is_main && self.follow && main_was_replaced(&self.path, open);
            if !open.is_main || rotated || !self.follow {
                if !open.buf.is_empty() && !open.broken {
                    out.push(Err(error(
                        &open.name,
                        location(open, self.decoder),
                        format!(
                            "incomplete record at the end of the file ({} bytes)",
                            open.buf.len()
                        ),
                    )));
                }
                let was_main = open.is_main;
                self.current = None;
                if was_main && !self.follow {
                    self.finished = true;
                }
                continue;
            }
            break;
        }
        out
    }

    /// Opens the next file to read. False when there is nothing to open now.
    fn open_next(&mut self, out: &mut Vec<Item>) -> bool {
        if let Some(path) = self.backlog.pop_front() {
            match open(&path, false, false) {
                Ok(open) => self.current = Some(open),
                Err(e) => out.push(Err(error(&path, "open".into(), e.to_string()))),
            }
            return true;
        }
        let from_end = self.start_at_end && !self.main_opened;
        match open(&self.path, true, from_end) {
            Ok(open) => {
                self.main_opened = true;
                self.current = Some(open);
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.follow => false,
            Err(e) => {
                out.push(Err(error(&self.path, "open".into(), e.to_string())));
                self.finished = true;
                false
            }
        }
    }
}

fn error(file: &Path, at: String, message: String) -> ReadError {
    ReadError {
        file: file.display().to_string(),
        at,
        message,
    }
}

fn location(open: &Open, decoder: Decoder) -> String {
    if decoder.lines() {
        format!("line {}", open.line + 1)
    } else {
        format!("offset {}", open.offset)
    }
}

/// Opens `path`; `from_end` positions at its end.
fn open(path: &Path, is_main: bool, from_end: bool) -> io::Result<Open> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let offset = if from_end {
        file.seek(SeekFrom::End(0))?
    } else {
        0
    };
    Ok(Open {
        file,
        name: path.to_path_buf(),
        offset,
        line: 0,
        buf: Vec::new(),
        id: file_id(&meta),
        is_main,
        broken: false,
    })
}

/// True when `path` now names another file than the one open (rotated), or the open file
/// was truncated (then it is read again from its start).
fn main_was_replaced(path: &Path, open: &mut Open) -> bool {
    match fs::metadata(path) {
        Ok(meta) => {
            if file_id(&meta) != open.id {
                return true;
            }
            if meta.len() < open.offset + open.buf.len() as u64 {
                // Truncated in place: start over.
                if open.file.seek(SeekFrom::Start(0)).is_ok() {
                    open.offset = 0;
                    open.line = 0;
                    open.buf.clear();
                    open.broken = false;
                }
            }
            false
        }
        Err(_) => false,
    }
}

/// Reads one chunk and decodes the whole records in the buffer. `Ok(true)` when bytes
/// were read, `Ok(false)` at the end of the file.
fn read_step(open: &mut Open, decoder: Decoder, out: &mut Vec<Item>) -> io::Result<bool> {
    if open.broken {
        return Ok(false);
    }
    let start = open.buf.len();
    open.buf.resize(start + CHUNK, 0);
    let n = open.file.read(&mut open.buf[start..])?;
    open.buf.truncate(start + n);
    if n == 0 {
        return Ok(false);
    }
    let consumed = if decoder.lines() {
        decode_lines(open, decoder, out)
    } else {
        decode_frames(open, decoder, out)
    };
    open.buf.drain(..consumed);
    open.offset += consumed as u64;
    Ok(true)
}

fn decode_lines(open: &mut Open, decoder: Decoder, out: &mut Vec<Item>) -> usize {
    let mut pos = 0;
    while let Some(end) = open.buf[pos..].iter().position(|&b| b == b'\n') {
        let line = &open.buf[pos..pos + end];
        open.line += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(
                decoder
                    .decode_message(line)
                    .map_err(|message| error(&open.name, format!("line {}", open.line), message)),
            );
        }
        pos += end + 1;
    }
    pos
}

fn decode_frames(open: &mut Open, decoder: Decoder, out: &mut Vec<Item>) -> usize {
    let mut pos = 0;
    while let Some(header) = open.buf.get(pos..pos + 4) {
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let at = open.offset + pos as u64;
        if len > MAX_RECORD {
            out.push(Err(error(
                &open.name,
                format!("offset {at}"),
                format!("record length {len} is not plausible: the file is not length-prefixed {} or is corrupt; the rest of the file is skipped", if decoder.format == Format::Json { "JSON" } else { "protobuf" }),
            )));
            open.broken = true;
            return open.buf.len();
        }
        let Some(message) = open.buf.get(pos + 4..pos + 4 + len) else {
            break;
        };
        out.push(
            decoder
                .decode_message(message)
                .map_err(|message| error(&open.name, format!("offset {at}"), message)),
        );
        pos += 4 + len;
    }
    pos
}
