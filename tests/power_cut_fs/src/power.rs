//! The power supply: the tree, a count of the changes made to it, and a cut armed to fall
//! just before a given change.
//!
//! A cut at a change index rather than after a delay lands anywhere in a program's sequence
//! of writes and syncs with the same odds however fast the machine runs, and a seed replays
//! it. The process asking for the fatal change is killed with SIGKILL before its request is
//! answered, so it never learns the change failed, as with a real cut; its other threads die
//! before they return from the kernel. Everything after the cut fails with EIO.

use fuser::Errno;

use crate::report::CutReport;
use crate::tree::Tree;

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
    armed_at: Option<u64>,
    cut: Option<Cut>,
}

impl Power {
    pub(crate) fn new(tree: Tree) -> Self {
        Self {
            tree,
            changes: 0,
            armed_at: None,
            cut: None,
        }
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    pub(crate) fn arm(&mut self, change: u64) {
        self.armed_at = Some(change);
    }

    /// The tree, for a request that changes nothing durable (reads, lookups, opens); EIO once
    /// the power is off.
    pub(crate) fn on(&mut self) -> Result<&mut Tree, Errno> {
        match self.cut {
            Some(_) => Err(Errno::EIO),
            None => Ok(&mut self.tree),
        }
    }

    /// The tree, for a request from process `pid` that changes it; the armed cut falls first
    /// if this is its change.
    pub(crate) fn change(&mut self, pid: u32) -> Result<&mut Tree, Errno> {
        if self.cut.is_some() {
            return Err(Errno::EIO);
        }
        if self.armed_at == Some(self.changes) {
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
        Cut {
            report,
            left: self.tree.after_cut(),
        }
    }

    /// The cut that fell, or one now; the count goes on and nothing stays armed.
    pub(crate) fn take_cut(&mut self) -> Cut {
        self.armed_at = None;
        self.cut.take().unwrap_or_else(|| self.cut_now(None))
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
