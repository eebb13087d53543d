//! What a power cut loses, path by path: the diagnosis a failing durability test needs, since
//! "part X is gone" says little until it comes with "and `index/blobs/17` was never synced".

use std::fmt;
use std::path::{Path, PathBuf};

use crate::contents::Unsynced;
use crate::tree::{Body, Ino, ROOT, Tree};

/// One path whose state a power cut changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volatile {
    /// Relative to the mount point.
    pub path: PathBuf,
    pub loss: Loss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The path leads somewhere else, or nowhere, after the cut: it was created or renamed
    /// onto since its directory's last fsync. For a directory, so is everything under it.
    Entry { dir: bool },
    /// The file was written or resized since its last fsync.
    Data(Unsynced),
    /// The path was removed, or renamed away or over, since its directory's last fsync: what
    /// it held comes back.
    Removal,
}

/// What one power cut lost: every [`Volatile`] path, in path order within each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CutReport {
    pub volatile: Vec<Volatile>,
    /// Changes made since the mount when the power went.
    pub changes: u64,
    /// The process an armed cut killed.
    pub killed: Option<u32>,
    /// For a cut armed in a directory: the changes to it and its files before the cut.
    pub changes_in_dir: Option<u64>,
}

impl CutReport {
    pub(crate) fn of(tree: &Tree) -> Self {
        let mut volatile = Vec::new();
        walk_now(tree, ROOT, Path::new(""), true, &mut volatile);
        walk_durable(tree, ROOT, Path::new(""), &mut volatile);
        Self {
            volatile,
            ..Self::default()
        }
    }

    /// The volatile paths under `prefix` (relative to the mount point).
    pub fn under<'a>(&'a self, prefix: &'a Path) -> impl Iterator<Item = &'a Volatile> + 'a {
        self.volatile
            .iter()
            .filter(move |volatile| volatile.path.starts_with(prefix))
    }
}

/// The paths readers see: entries and data not yet durable.
fn walk_now(tree: &Tree, dir: Ino, path: &Path, durable: bool, out: &mut Vec<Volatile>) {
    let Ok(entries) = tree.dir(dir) else {
        return;
    };
    for (name, &ino) in &entries.now {
        let path = path.join(name);
        let Ok(inode) = tree.inode(ino) else {
            continue;
        };
        let entry_durable = durable && entries.durable.get(name) == Some(&ino);
        if durable && !entry_durable {
            let dir = matches!(inode.body, Body::Dir(_));
            out.push(Volatile {
                path: path.clone(),
                loss: Loss::Entry { dir },
            });
        }
        match &inode.body {
            Body::File(contents) => {
                if let Some(unsynced) = contents.unsynced() {
                    out.push(Volatile {
                        path,
                        loss: Loss::Data(unsynced),
                    });
                }
            }
            Body::Dir(_) => walk_now(tree, ino, &path, entry_durable, out),
        }
    }
}

/// The paths a cut brings back.
fn walk_durable(tree: &Tree, dir: Ino, path: &Path, out: &mut Vec<Volatile>) {
    let Ok(entries) = tree.dir(dir) else {
        return;
    };
    for (name, &ino) in &entries.durable {
        let path = path.join(name);
        if entries.now.get(name) == Some(&ino) {
            walk_durable(tree, ino, &path, out);
        } else {
            out.push(Volatile {
                path,
                loss: Loss::Removal,
            });
        }
    }
}

impl fmt::Display for Volatile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        match self.loss {
            Loss::Entry { dir: false } => write!(f, "{path}: entry not synced in its directory"),
            Loss::Entry { dir: true } => write!(
                f,
                "{path}/: directory entry not synced (everything under it goes too)"
            ),
            Loss::Data(Unsynced {
                dirty_pages,
                len,
                durable_len,
            }) => write!(
                f,
                "{path}: {dirty_pages} pages written since its last fsync \
                 (length {len}, {durable_len} durable)"
            ),
            Loss::Removal => write!(f, "{path}: removal or rename not synced (comes back)"),
        }
    }
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "power cut after {} changes", self.changes)?;
        if let Some(pid) = self.killed {
            write!(f, ", killing process {pid}")?;
        }
        writeln!(f)?;
        if self.volatile.is_empty() {
            return writeln!(f, "  nothing volatile");
        }
        for volatile in &self.volatile {
            writeln!(f, "  {volatile}")?;
        }
        Ok(())
    }
}
