//! A file of trusted peer IDs (`serve --trust-file`): one ID a line, blank lines and `#`
//! comments ignored, so a list can say whose each ID is.

use std::path::{Path, PathBuf};

use super::{PeerId, PeerIdError};

/// Why a trust file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustFileError {
    #[error("cannot read the trust file {path}: {cause}")]
    Unreadable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}, line {line}: {cause}")]
    BadId {
        path: PathBuf,
        line: usize,
        cause: PeerIdError,
    },
}

/// The IDs a trust file lists.
///
/// # Errors
/// When it cannot be read or a line is not an ID: one typo must not lock a peer out unnoticed.
pub fn read_trust_file(path: &Path) -> Result<Vec<PeerId>, TrustFileError> {
    let text = std::fs::read_to_string(path).map_err(|cause| TrustFileError::Unreadable {
        path: path.to_owned(),
        cause,
    })?;
    let mut ids = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or("").trim();
        if id.is_empty() {
            continue;
        }
        ids.push(id.parse().map_err(|cause| TrustFileError::BadId {
            path: path.to_owned(),
            line: index + 1,
            cause,
        })?);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_comments_and_typos() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted");
        let id = PeerId::of_public_key(b"a key");
        std::fs::write(&path, format!("# the lab\n\n{id}  # peer 1\n")).unwrap();
        assert_eq!(read_trust_file(&path).unwrap(), vec![id]);
        std::fs::write(&path, "AAAA\n").unwrap();
        assert!(matches!(
            read_trust_file(&path),
            Err(TrustFileError::BadId { line: 1, .. })
        ));
    }
}
