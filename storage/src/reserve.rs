//! Room kept so that a store opens on a full disk.
//!
//! sled writes when it opens (a snapshot of its page table, a log segment), so on a disk with
//! no byte left a sled store could not even be listed or verified. Each sled store keeps
//! `<db>/reserve`, [`RESERVE`] bytes of allocated space, and gives it up to an open that fails
//! for want of space; it is taken back by a later open once there is room.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{StoreError, durable};

/// Enough for sled to open an index of a few million entries.
pub const RESERVE: u64 = 4 * 1024 * 1024;

fn path(root: &Path) -> PathBuf {
    root.join("reserve")
}

/// Makes sure the reserve is there; on a disk without room for it, tries again next time.
pub(crate) fn keep(root: &Path) {
    let path = path(root);
    if std::fs::metadata(&path).is_ok_and(|metadata| metadata.len() == RESERVE) {
        return;
    }
    let temp = root.join("reserve.new");
    let written = File::create(&temp).and_then(|mut file| {
        let block = vec![0; 1 << 20];
        for _ in 0..RESERVE / block.len() as u64 {
            file.write_all(&block)?;
        }
        file.sync_all()
    });
    let kept = written
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|err| StoreError::Io {
            context: format!("writing {}", path.display()),
            source: err,
        })
        .and_then(|()| durable::sync_dir(root));
    if let Err(err) = kept {
        let _ = std::fs::remove_file(&temp);
        tracing::warn!(%err, "no room for the space kept to open the store on a full disk");
    }
}

/// Gives the reserve up to an open that ran out of space; returns whether there was one.
pub(crate) fn release(root: &Path) -> bool {
    let released = std::fs::remove_file(path(root)).is_ok();
    if released {
        tracing::warn!(path = %root.display(), "the disk is full: using the space kept to open");
    }
    released
}

/// Whether `err` is the disk (or the user's quota) being full.
pub(crate) fn is_disk_full(err: &StoreError) -> bool {
    let StoreError::Io { source, .. } = err else {
        return false;
    };
    matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}
