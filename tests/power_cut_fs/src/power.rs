//! The power supply: the tree, a count of the changes made to it, and a cut armed to fall
//! just before a given change, or before the n-th change to one directory and its files (to
//! aim at a rare phase of a program, as a compaction writing and deleting packs).
//!
//! A cut at a change index rather than after a delay lands anywhere in a program's sequence
//! of writes and syncs with the same odds however fast the machine runs, and a seed replays
//! it. The process asking for the fatal change is killed with SIGKILL before its request is
//! answered, so it never learns the change failed, as with a real cut; its other threads die
//! before they return from the kernel. Everything after the cut fails with EIO.

use fuser::Errno;

use crate::report::CutReport;
use crate::tree::{Ino, Tree};

/// Where an armed cut falls.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Armed {
    /// Before the change of this index (counted from the mount).
    At(u64),
    /// Before the change to directory `dir` or a file in it that finds `left` at 0; each
    /// such change before counts `left` down, and `seen` up.
    In { dir: Ino, left: u64, seen: u64 },
}

/// The filesystem as of a cut, and what the cut lost.
#[derive(Debug)]
pub(crate) struct Cut {
    pub(crate) report: CutReport,
    pub(crate) left: Tree,
}

#[derive(Debug)]
pub(crate) struct Power {
    pub(crate) tree: Tree,
    /// Changes made since the mount: writes, truncates, entry changes, syncs.
    changes: u64,
    armed: Option<Armed>,
    cut: Option<Cut>,
}

impl Power {
    pub(crate) fn new(tree: Tree) -> Self {
        Self {
            tree,
            changes: 0,
            armed: None,
            cut: None,
        }
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    pub(crate) fn arm(&mut self, armed: Armed) {
        self.armed = Some(armed);
    }

    /// The tree, for a request that changes nothing durable (reads, lookups, opens); EIO once
    /// the power is off.
    pub(crate) fn on(&mut self) -> Result<&mut Tree, Errno> {
        match self.cut {
            Some(_) => Err(Errno::EIO),
            None => Ok(&mut self.tree),
        }
    }

    /// The tree, for a request from process `pid` that changes `target` (a file, or the
    /// directory whose entries change); the armed cut falls first if this is its change.
    pub(crate) fn change(&mut self, pid: u32, target: Ino) -> Result<&mut Tree, Errno> {
        if self.cut.is_some() {
            return Err(Errno::EIO);
        }
        let falls = match &mut self.armed {
            Some(Armed::At(change)) => *change == self.changes,
            Some(Armed::In { dir, left, seen }) if self.tree.is_in(target, *dir) => {
                let falls = *left == 0;
                *left = left.saturating_sub(1);
                *seen += u64::from(!falls);
                falls
            }
            _ => false,
        };
        if falls {
            self.cut = Some(self.cut_now(Some(pid)));
            kill(pid);
            return Err(Errno::EIO);
        }
        self.changes += 1;
        Ok(&mut self.tree)
    }

    fn cut_now(&self, killed: Option<u32>) -> Cut {
        let mut report = CutReport::of(&self.tree);
        report.changes = self.changes;
        report.killed = killed;
        if let Some(Armed::In { seen, .. }) = self.armed {
            report.changes_in_dir = Some(seen);
        }
        Cut {
            report,
            left: self.tree.after_cut(),
        }
    }

    /// The cut that fell, or one now; the count goes on and nothing stays armed.
    pub(crate) fn take_cut(&mut self) -> Cut {
        let cut = self.cut.take().unwrap_or_else(|| self.cut_now(None));
        self.armed = None;
        cut
    }
}

/// SIGKILL for the process behind a request, unless it is the kernel's own (pid 0, which
/// `kill` would read as our whole process group) or a thread of this process.
fn kill(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    let ours = std::path::Path::new("/proc/self/task")
        .join(pid.to_string())
        .exists();
    if pid != 0 && !ours {
        // SAFETY: kill only sends a signal. A request's pid may be a thread's; kill reaches
        // its whole process all the same.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}
