//! Mounting, cutting the power, and unmounting, always: a test that panics must not leave a
//! mount behind, or every later test on the machine trips over it.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption};

use crate::fuse::Fuse;
use crate::power::{Armed, Power};
use crate::report::CutReport;
use crate::tree::{Meta, Tree};

/// The environment variable that turns "cannot mount" from a skip into a failure (CI sets it).
pub const REQUIRE_FUSE: &str = "P2P_STORE_REQUIRE_FUSE";

/// Tries an unmount refused as busy this many times, [`BUSY_PAUSE`] apart: the kernel closes a
/// killed process's files a moment after it can be reaped.
const BUSY_TRIES: u32 = 100;
const BUSY_PAUSE: Duration = Duration::from_millis(50);

/// An in-memory filesystem mounted at a directory, whose power can be cut.
pub struct PowerCutFs {
    mountpoint: PathBuf,
    power: Arc<Mutex<Power>>,
    /// `None` only after a remount failed.
    session: Option<BackgroundSession>,
}

impl PowerCutFs {
    /// Mounts an empty filesystem on `mountpoint`, an existing directory.
    ///
    /// # Errors
    /// When FUSE cannot mount: no `/dev/fuse`, or neither root nor `fusermount3`.
    pub fn mount(mountpoint: &Path) -> io::Result<Self> {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let tree = Tree::new(Meta::new(0o755, uid, gid));
        let power = Arc::new(Mutex::new(Power::new(tree)));
        let session = spawn(mountpoint, &power)?;
        Ok(Self {
            mountpoint: mountpoint.to_owned(),
            power,
            session: Some(session),
        })
    }

    /// [`PowerCutFs::mount`] for a test: `None`, said loudly on stderr, when FUSE cannot
    /// mount here, unless [`REQUIRE_FUSE`] is `1`, which makes it a panic.
    pub fn mount_or_skip(mountpoint: &Path) -> Option<Self> {
        match Self::mount(mountpoint) {
            Ok(fs) => Some(fs),
            Err(err) if std::env::var_os(REQUIRE_FUSE).is_some_and(|value| value == "1") => {
                panic!("{REQUIRE_FUSE}=1, and FUSE cannot mount: {err}")
            }
            Err(err) => {
                eprintln!(
                    "\n*** SKIPPED: FUSE cannot mount at {} ({err}). It needs /dev/fuse, and \
                     root or fusermount3; set {REQUIRE_FUSE}=1 to make this a failure. ***\n",
                    mountpoint.display()
                );
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// What a power cut now would lose.
    pub fn volatile(&self) -> CutReport {
        CutReport::of(&self.power().tree)
    }

    /// Changes made since the mount: writes, truncates, new, removed and renamed entries,
    /// syncs. A cut can be armed to fall before any one of them.
    pub fn changes(&self) -> u64 {
        self.power().changes()
    }

    /// Arms a power cut to fall just before change number `change` (counted from 0 since the
    /// mount, as [`PowerCutFs::changes`] counts): the process asking for it is killed with
    /// SIGKILL before it hears back, and every request after it fails with EIO, until
    /// [`PowerCutFs::cut_power`] remounts what it left. Nothing happens if no process gets
    /// that far.
    pub fn cut_power_at(&self, change: u64) {
        self.power().arm(Armed::At(change));
    }

    /// Arms a power cut, as [`PowerCutFs::cut_power_at`] does, to fall before the change
    /// numbered `nth` (from 0, from now) among those to the directory `dir` (relative to the
    /// mount point) or to a file in it: writes, truncates and syncs of its files, new,
    /// removed and renamed entries and syncs of the directory itself.
    ///
    /// # Errors
    /// [`io::ErrorKind::NotFound`] when `dir` is not a directory; nothing is armed.
    pub fn cut_power_in(&self, dir: &Path, nth: u64) -> io::Result<()> {
        let mut power = self.power();
        let dir = power
            .tree
            .resolve(dir)
            .map_err(|errno| io::Error::from_raw_os_error(errno.code()))?;
        power.arm(Armed::In {
            dir,
            left: nth,
            seen: 0,
        });
        Ok(())
    }

    /// Cuts the power now, or takes the cut an armed [`PowerCutFs::cut_power_at`] made:
    /// everything not durable at that moment is gone. Then the filesystem is mounted again,
    /// fresh to the kernel (no cached pages or entries), with what is left. Whoever uses the
    /// mount must be stopped first, or the unmount fails as busy.
    ///
    /// # Errors
    /// When the unmount or the remount fails; the filesystem is then left unmounted.
    pub fn cut_power(&mut self) -> io::Result<CutReport> {
        let cut = self.power().take_cut();
        let session = self
            .session
            .take()
            .ok_or_else(|| io::Error::other("not mounted since a failed remount"))?;
        unmount(&self.mountpoint, session)?;
        self.power().tree = cut.left;
        self.session = Some(spawn(&self.mountpoint, &self.power)?);
        Ok(cut.report)
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.power
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for PowerCutFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Err(err) = unmount(&self.mountpoint, session) {
            eprintln!(
                "cannot unmount {} ({err}); detaching it",
                self.mountpoint.display()
            );
            if let Ok(path) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
                // SAFETY: umount2 only reads the path.
                unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
            }
        }
    }
}

fn spawn(mountpoint: &Path, power: &Arc<Mutex<Power>>) -> io::Result<BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![MountOption::FSName("power-cut-fs".into())];
    fuser::spawn_mount(Fuse::new(Arc::clone(power)), mountpoint, &config)
}

/// Unmounts and waits for the filesystem's thread to end.
fn unmount(mountpoint: &Path, session: BackgroundSession) -> io::Result<()> {
    let path = CString::new(mountpoint.as_os_str().as_bytes())?;
    for _ in 0..BUSY_TRIES {
        // SAFETY: umount2 only reads the path.
        if unsafe { libc::umount2(path.as_ptr(), 0) } == 0 {
            return session.join();
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EBUSY) => std::thread::sleep(BUSY_PAUSE),
            // Not root: the setuid helper that mounted it unmounts it too.
            Some(libc::EPERM) => {
                let status = Command::new("fusermount3")
                    .arg("-u")
                    .arg(mountpoint)
                    .status()?;
                return match status.success() {
                    true => session.join(),
                    false => Err(io::Error::other(format!("fusermount3 -u: {status}"))),
                };
            }
            _ => return Err(err),
        }
    }
    Err(io::Error::other(format!(
        "{} still busy after {BUSY_TRIES} tries",
        mountpoint.display()
    )))
}
