//! Bodies that a read found damaged, remembered so that the next put of the same bytes
//! rewrites them and a server asks for them instead of claiming to hold them.
//!
//! A put of a part the store already holds cannot re-read the body to see whether it is
//! intact: a resumed transfer or a re-import puts thousands of held chunks again, and reading
//! each back would make that 25 to 70 times slower (`examples/reput_cost.rs`, 1 MiB bodies
//! from the page cache: 5-14 µs a part with the cheap check, 350-400 µs more to read and hash
//! the body; from the disk, more still). So a put checks only what is cheap (the body is
//! there, of the right length), and what only a whole read can see, a flipped bit, is learnt
//! from the reads that happen anyway (get, verify, export, a peer's get) and kept here by hash.
//!
//! The set is kept in `<db>/damaged` as well, one hex hash a line, so that the damage one
//! command finds (`verify`) is known to the next (`import`, `serve`). It is only a hint, written
//! without a sync: a crash may lose it, and then the next read finds the damage again.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::{PartHash, PartInfo, StoreError, VerifiedPart};

/// The hashes of bodies found damaged, in memory and, for an on-disk store, in a file.
#[derive(Debug, Default)]
pub(crate) struct DamageLog {
    file: Option<PathBuf>,
    hashes: Mutex<HashSet<PartHash>>,
}

impl DamageLog {
    /// The log kept in `file`, with what it already holds. An unreadable file or line is
    /// passed over with a warning: losing the hint loses no data.
    pub(crate) fn open(file: PathBuf) -> Self {
        let hashes = match std::fs::read_to_string(&file) {
            Ok(text) => text
                .lines()
                .filter_map(|line| match line.parse() {
                    Ok(hash) => Some(hash),
                    Err(_) => {
                        tracing::warn!(path = %file.display(), line, "ignoring a line that is not a hash");
                        None
                    }
                })
                .collect(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(err) => {
                tracing::warn!(path = %file.display(), %err, "cannot read the damage log");
                HashSet::new()
            }
        };
        Self {
            file: Some(file),
            hashes: Mutex::new(hashes),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<PartHash>> {
        self.hashes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether a read found the body of `hash` damaged since it was last written.
    pub(crate) fn is_damaged(&self, hash: &PartHash) -> bool {
        self.lock().contains(hash)
    }

    /// Checks bytes read back against the hash they were stored under, remembering a body
    /// that fails.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when they differ.
    pub(crate) fn verify_read(
        &self,
        info: &PartInfo,
        bytes: Vec<u8>,
    ) -> Result<VerifiedPart, StoreError> {
        let actual = PartHash::of(&bytes);
        if actual == info.hash {
            return Ok(VerifiedPart::checked_on_read(info, bytes));
        }
        let mut hashes = self.lock();
        if hashes.insert(info.hash) {
            tracing::info!(name = %info.name, hash = %info.hash, "remembering a damaged body");
            self.save(&hashes);
        }
        Err(StoreError::Corrupt {
            name: info.name.clone(),
            expected: info.hash,
            actual,
        })
    }

    /// Forgets the damage of bodies just written again. A read that raced with the write may
    /// remember its old damage once more; then the next put of those bytes writes them again.
    pub(crate) fn rewritten(&self, hashes: impl IntoIterator<Item = PartHash>) {
        let mut held = self.lock();
        let before = held.len();
        for hash in hashes {
            held.remove(&hash);
        }
        if held.len() != before {
            self.save(&held);
        }
    }

    fn save(&self, hashes: &HashSet<PartHash>) {
        let Some(file) = &self.file else { return };
        let text: String = hashes.iter().map(|hash| format!("{hash}\n")).collect();
        if let Err(err) = std::fs::write(file, text) {
            tracing::warn!(path = %file.display(), %err, "cannot record damage; it is known until the store closes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PartKind, PartName};

    fn info(bytes: &[u8]) -> PartInfo {
        PartInfo {
            name: PartName::new("x").unwrap(),
            size: bytes.len() as u64,
            hash: PartHash::of(bytes),
            kind: PartKind::Plain,
        }
    }

    #[test]
    fn damage_found_by_a_read_is_kept_until_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("damaged");
        let (good, bad) = (info(b"good"), info(b"bad"));
        let log = DamageLog::open(file.clone());
        assert_eq!(
            log.verify_read(&good, b"good".to_vec()).unwrap().bytes(),
            b"good"
        );
        assert!(matches!(
            log.verify_read(&bad, b"bAd".to_vec()),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(log.is_damaged(&bad.hash) && !log.is_damaged(&good.hash));

        let reopened = DamageLog::open(file.clone());
        assert!(reopened.is_damaged(&bad.hash));
        reopened.rewritten([bad.hash]);
        assert!(!reopened.is_damaged(&bad.hash));
        assert!(!DamageLog::open(file).is_damaged(&bad.hash));
    }

    #[test]
    fn a_garbled_log_is_only_a_lost_hint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("damaged");
        let hash = PartHash::of(b"x");
        std::fs::write(&file, format!("not a hash\n{hash}\n")).unwrap();
        assert!(DamageLog::open(file).is_damaged(&hash));
    }
}
