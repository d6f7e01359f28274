//! The file being written, with size-based rotation named as the collector's (lumberjack)
//! does: `data.json` is renamed `data-2022-09-14T05-02-14.173.json` and a new `data.json`
//! is started; old rotated files are deleted past `max_backups` and `max_days`.

use super::config::RotationConfig;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use teletrace_core::rotated_files::{self, split_extension};

/// Buffer in front of the file.
const BUFFER_BYTES: usize = 256 * 1024;

/// The output file.
pub(crate) struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    rotation: Option<RotationConfig>,
}

fn open_append(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::with_capacity(BUFFER_BYTES, file), size))
}

/// `2006-01-02T15-04-05.000` for `t`, shifted by `offset_secs` (local time) or not (UTC).
pub fn timestamp(t: SystemTime, offset_secs: i64) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64 + offset_secs;
    let millis = since.subsec_millis();
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{millis:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Seconds east of UTC of the local time zone at `t`.
#[cfg(unix)]
fn local_offset(t: SystemTime) -> i64 {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: localtime_r only writes into the `tm` we pass; both pointers are valid.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return 0;
        }
        tm.tm_gmtoff
    }
}

#[cfg(not(unix))]
fn local_offset(_t: SystemTime) -> i64 {
    0
}

impl RotatingFile {
    /// Opens `path` for appending (a restart never truncates).
    pub fn open(path: &Path, rotation: Option<RotationConfig>) -> io::Result<Self> {
        let (file, size) = open_append(path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    /// Writes one whole record, rotating first when it would take the file past
    /// `max_megabytes` (a record is never split between two files).
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        if let Some(rotation) = &self.rotation {
            let max = rotation.max_megabytes.saturating_mul(1 << 20);
            if self.size > 0 && self.size + record.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(record)?;
        self.size += record.len() as u64;
        Ok(())
    }

    /// Pushes buffered bytes to the file.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    /// Flushes and fsyncs.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_all()
    }

    fn rotate(&mut self) -> io::Result<()> {
        let Some(rotation) = self.rotation.clone() else {
            return Ok(());
        };
        self.file.flush()?;
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("spans")
            .to_string();
        let (stem, ext) = split_extension(&name);
        let now = SystemTime::now();
        let offset = if rotation.localtime {
            local_offset(now)
        } else {
            0
        };
        // Two rotations in the same millisecond would collide: move on a millisecond.
        let mut at = now;
        let backup = loop {
            let candidate = self
                .path
                .with_file_name(format!("{stem}-{}{ext}", timestamp(at, offset)));
            if !candidate.exists() {
                break candidate;
            }
            at += Duration::from_millis(1);
        };
        fs::rename(&self.path, &backup)?;
        let (file, size) = open_append(&self.path)?;
        self.file = file;
        self.size = size;
        if let Err(e) = self.remove_old_backups(&rotation) {
            tracing::warn!(file = %self.path.display(), error = %e, "cannot delete old rotated files");
        }
        Ok(())
    }

    fn remove_old_backups(&self, rotation: &RotationConfig) -> io::Result<()> {
        let mut backups = rotated_files::list(&self.path)?;
        if rotation.max_backups > 0 {
            let keep = usize::try_from(rotation.max_backups).unwrap_or(usize::MAX);
            let excess = backups.len().saturating_sub(keep);
            for old in backups.drain(..excess) {
                fs::remove_file(old)?;
            }
        }
        if rotation.max_days > 0 {
            let max_age = Duration::from_secs(rotation.max_days.saturating_mul(86_400));
            for old in backups {
                let modified = fs::metadata(&old)?.modified()?;
                if modified.elapsed().unwrap_or_default() > max_age {
                    fs::remove_file(old)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_lumberjack_style() {
        let t = UNIX_EPOCH + Duration::from_millis(1_663_131_734_173);
        assert_eq!(timestamp(t, 0), "2022-09-14T05-02-14.173");
        assert_eq!(timestamp(t, 3600), "2022-09-14T06-02-14.173");
        assert_eq!(timestamp(UNIX_EPOCH, 0), "1970-01-01T00-00-00.000");
        assert!(rotated_files::is_timestamp(&timestamp(t, 0)));
    }

    #[test]
    fn rotates_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let rotation = RotationConfig {
            max_megabytes: 1,
            max_backups: 2,
            ..RotationConfig::default()
        };
        let mut f = RotatingFile::open(&path, Some(rotation)).unwrap();
        let record = vec![b'x'; 600 * 1024];
        for _ in 0..5 {
            f.write_record(&record).unwrap();
        }
        f.sync().unwrap();
        let backups = rotated_files::list(&path).unwrap();
        assert_eq!(backups.len(), 2, "{backups:?}");
        for b in &backups {
            assert_eq!(fs::metadata(b).unwrap().len(), 600 * 1024);
            let name = b.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with("out-") && name.ends_with(".bin"), "{name}");
        }
        assert_eq!(fs::metadata(&path).unwrap().len(), 600 * 1024);
    }
}
