//! The installation's stable system ID: a UUID v4 created on first start and kept in a
//! file, served by `/v1/system-info`.

use std::path::Path;

/// A new random (version 4) UUID, in its usual text form.
pub fn new_uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Reads the ID kept at `path`, or creates one there. Any non-empty first line is taken
/// as the ID, so an operator may set one. When the file cannot be written, the new ID is
/// still returned (and logged): the API works, but the ID changes at the next start.
pub async fn load_or_create(path: &Path) -> String {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => {
            let id = text.lines().next().unwrap_or("").trim();
            if !id.is_empty() {
                return id.to_string();
            }
            tracing::warn!(path = %path.display(), "system ID file is empty; writing a new ID");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let id = new_uuid_v4();
            tracing::warn!(path = %path.display(), error = %e,
                "cannot read the system ID file; using a new ID for this run only");
            return id;
        }
    }
    let id = new_uuid_v4();
    if let Err(e) = write_atomically(path, &id).await {
        tracing::warn!(path = %path.display(), error = %e,
            "cannot write the system ID file; using a new ID for this run only");
    } else {
        tracing::info!(path = %path.display(), system_id = %id, "created the system ID");
    }
    id
}

async fn write_atomically(path: &Path, id: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    tokio::fs::write(&tmp, format!("{id}\n")).await?;
    if let Err(e) = tokio::fs::rename(&tmp, path).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let id = new_uuid_v4();
        assert_eq!(id.len(), 36);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(id, new_uuid_v4());
    }

    #[tokio::test]
    async fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("system-id");
        let first = load_or_create(&path).await;
        assert_eq!(load_or_create(&path).await, first);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{first}\n")
        );
        std::fs::write(&path, "operator-chosen\n").unwrap();
        assert_eq!(load_or_create(&path).await, "operator-chosen");
        std::fs::write(&path, "  \n").unwrap();
        let replaced = load_or_create(&path).await;
        assert_eq!(replaced.len(), 36);
    }
}
