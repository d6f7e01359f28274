//! The naming of rotated files, shared by the `file` exporter (which rotates) and the
//! `file` receiver (which replays): `data.json` rotates to
//! `data-2022-09-14T05-02-14.173.json` in the same directory, as the collector's file
//! exporter (lumberjack) names them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `data.json` -> (`data`, `.json`); `data` -> (`data`, ``), as Go's `filepath.Ext`.
pub fn split_extension(file_name: &str) -> (&str, &str) {
    match file_name.rfind('.') {
        Some(i) if i > 0 => file_name.split_at(i),
        _ => (file_name, ""),
    }
}

/// True when `s` has the shape of a rotation timestamp, `2006-01-02T15-04-05.000`.
pub fn is_timestamp(s: &str) -> bool {
    let shape = b"dddd-dd-ddTdd-dd-dd.ddd";
    s.len() == shape.len()
        && s.bytes().zip(shape.iter()).all(|(c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

/// The rotated files of `path` (`<stem>-<timestamp><ext>` in its directory), oldest
/// first (the fixed-width timestamp sorts chronologically). A missing directory has none.
pub fn list(path: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let (stem, ext) = split_extension(name);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(candidate) = file_name.to_str() else {
            continue;
        };
        let middle = candidate
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.strip_suffix(ext));
        if middle.is_some_and(is_timestamp) {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_listing() {
        assert_eq!(split_extension("data.json"), ("data", ".json"));
        assert_eq!(split_extension("data"), ("data", ""));
        assert_eq!(split_extension("a.tar.gz"), ("a.tar", ".gz"));
        assert_eq!(split_extension(".hidden"), (".hidden", ""));
        assert!(is_timestamp("2022-09-14T05-02-14.173"));
        assert!(!is_timestamp("2022-09-14T05:02:14.173"));
        assert!(!is_timestamp("2022-09-14"));
        let dir = std::env::temp_dir().join(format!("teletrace-rotated-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for name in [
            "data.json",
            "data-2022-09-14T05-02-14.173.json",
            "data-2021-01-01T00-00-00.000.json",
            "data-notatime.json",
            "other-2022-09-14T05-02-14.173.json",
            "data-2022-09-14T05-02-14.173.proto",
        ] {
            fs::write(dir.join(name), b"").unwrap();
        }
        let found: Vec<String> = list(&dir.join("data.json"))
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [
                "data-2021-01-01T00-00-00.000.json",
                "data-2022-09-14T05-02-14.173.json"
            ]
        );
        assert!(list(&dir.join("missing/data.json")).unwrap().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
