//! A FUSE filesystem for durability tests: it keeps in memory what a disk's page cache keeps,
//! and on command drops it, as a power cut does (the semantics of LazyFS).
//!
//! Every write, truncate, new directory entry, removal and rename lives in a volatile layer
//! until it is made durable: a file's data and size by `fsync`/`fdatasync` of that file, the
//! entries of a directory by `fsync` of that directory. [`PowerCutFs::cut_power`] throws the
//! volatile layer away, remounts what is left, and reports, path by path, what was lost
//! ([`CutReport`]); [`PowerCutFs::cut_power_at`] arms the cut to fall just before a given
//! change, killing the process that asks for it, and [`PowerCutFs::cut_power_in`] before the
//! n-th change within one directory. Reads always see the latest writes, as on a real
//! machine.
//!
//! Threading: the filesystem runs on one thread of the test process, started by
//! `fuser::spawn_mount`; programs on the mount must be separate processes or threads. The
//! state is behind one lock, shared with the [`PowerCutFs`] handle.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use std::io::Write;
//! let dir = tempfile::tempdir()?;
//! let mut fs = power_cut_fs::PowerCutFs::mount(dir.path())?;
//! let mut file = std::fs::File::create(dir.path().join("f"))?;
//! file.write_all(b"lost")?;
//! drop(file);
//! let report = fs.cut_power()?;
//! assert!(!dir.path().join("f").exists(), "{report}");
//! # Ok(())
//! # }
//! ```

mod attr;
mod contents;
mod fuse;
mod mount;
mod power;
mod report;
mod tree;

pub use contents::Unsynced;
pub use mount::{PowerCutFs, REQUIRE_FUSE};
pub use report::{CutReport, Loss, Volatile};
