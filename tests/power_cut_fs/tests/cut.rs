//! The harness tested as the store uses it, through a real mount: what was synced survives a
//! cut, what was not is gone, and the report names it.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use power_cut_fs::{Loss, PowerCutFs};
use tempfile::TempDir;

/// A mounted filesystem over a temp dir; the mount goes first when it is dropped.
struct Mounted {
    fs: PowerCutFs,
    _dir: TempDir,
}

impl Mounted {
    fn new() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let fs = PowerCutFs::mount_or_skip(dir.path())?;
        Some(Self { fs, _dir: dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.fs.path().join(name)
    }

    /// Cuts the power and returns the report's lines.
    fn cut(&mut self) -> Vec<String> {
        let report = self.fs.cut_power().unwrap();
        report.volatile.iter().map(ToString::to_string).collect()
    }
}

fn write_synced(path: &Path, bytes: &[u8]) {
    let mut file = File::create(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

fn sync_dir(path: &Path) {
    File::open(path).unwrap().sync_all().unwrap();
}

#[test]
fn a_synced_file_in_a_synced_directory_survives() {
    let Some(mut fs) = Mounted::new() else { return };
    fs::create_dir(fs.path("d")).unwrap();
    sync_dir(fs.fs.path());
    write_synced(&fs.path("d/f"), b"kept");
    sync_dir(&fs.path("d"));
    assert_eq!(fs.cut(), Vec::<String>::new());
    assert_eq!(fs::read(fs.path("d/f")).unwrap(), b"kept");
}

#[test]
fn a_write_without_fsync_vanishes() {
    let Some(mut fs) = Mounted::new() else { return };
    write_synced(&fs.path("f"), b"synced");
    sync_dir(fs.fs.path());
    let mut file = OpenOptions::new().append(true).open(fs.path("f")).unwrap();
    file.write_all(b" and not").unwrap();
    file.set_len(3).unwrap();
    file.set_len(100).unwrap();
    drop(file);
    assert_eq!(fs::read(fs.path("f")).unwrap().len(), 100);
    let lost = fs.cut();
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert!(lost[0].starts_with("f: "), "{lost:?}");
    assert_eq!(fs::read(fs.path("f")).unwrap(), b"synced");
}

#[test]
fn a_file_synced_in_a_directory_that_was_not_vanishes() {
    let Some(mut fs) = Mounted::new() else { return };
    write_synced(&fs.path("f"), b"data");
    let report = fs.fs.volatile();
    assert_eq!(report.volatile.len(), 1, "{report}");
    assert_eq!(report.volatile[0].loss, Loss::Entry { dir: false });
    fs.cut();
    assert!(!fs.path("f").exists());
}

#[test]
fn a_rename_or_unlink_without_a_directory_fsync_reverts() {
    let Some(mut fs) = Mounted::new() else { return };
    write_synced(&fs.path("a"), b"a");
    write_synced(&fs.path("gone"), b"gone");
    sync_dir(fs.fs.path());
    fs::rename(fs.path("a"), fs.path("b")).unwrap();
    fs::remove_file(fs.path("gone")).unwrap();
    let lost = fs.cut();
    assert_eq!(lost.len(), 3, "{lost:?}");
    assert_eq!(fs::read(fs.path("a")).unwrap(), b"a");
    assert_eq!(fs::read(fs.path("gone")).unwrap(), b"gone");
    assert!(!fs.path("b").exists());
}

#[test]
fn a_rename_over_a_file_is_durable_with_its_directory() {
    let Some(mut fs) = Mounted::new() else { return };
    write_synced(&fs.path("x"), b"old");
    sync_dir(fs.fs.path());
    write_synced(&fs.path("tmp"), b"new");
    fs::rename(fs.path("tmp"), fs.path("x")).unwrap();
    sync_dir(fs.fs.path());
    assert_eq!(fs.cut(), Vec::<String>::new());
    assert_eq!(fs::read(fs.path("x")).unwrap(), b"new");
    assert_eq!(fs::read_dir(fs.fs.path()).unwrap().count(), 1);
}

#[test]
fn flock_works_and_a_second_lock_is_refused() {
    let Some(fs) = Mounted::new() else { return };
    let first = File::create(fs.path("LOCK")).unwrap();
    let second = File::open(fs.path("LOCK")).unwrap();
    let lock = |file: &File| {
        // SAFETY: flock only takes a lock on the open descriptor.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }
    };
    assert_eq!(lock(&first), 0);
    assert_ne!(lock(&second), 0);
}

#[test]
fn an_armed_cut_kills_the_writer_mid_way_and_keeps_what_it_synced() {
    let Some(mut fs) = Mounted::new() else { return };
    // Each file is written, synced, and then its directory entry is synced.
    let script =
        "for i in $(seq 1 20); do echo \"file $i\" > f$i && sync f$i && sync . || exit 1; done";
    fs.fs.cut_power_at(fs.fs.changes() + 40);
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(fs.fs.path())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let report = fs.fs.cut_power().unwrap();
    assert!(report.killed.is_some(), "{report}");
    let mut left: Vec<usize> = fs::read_dir(fs.fs.path())
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_prefix('f').unwrap().parse().unwrap()
        })
        .collect();
    left.sort_unstable();
    assert!(!left.is_empty() && left.len() < 20, "{left:?}\n{report}");
    assert_eq!(left, (1..=left.len()).collect::<Vec<_>>(), "{report}");
    for i in left {
        let text = fs::read_to_string(fs.path(&format!("f{i}"))).unwrap();
        assert_eq!(text, format!("file {i}\n"));
    }
}

#[test]
fn a_cut_armed_in_a_directory_counts_only_its_changes() {
    let Some(mut fs) = Mounted::new() else { return };
    fs::create_dir(fs.path("a")).unwrap();
    fs::create_dir(fs.path("b")).unwrap();
    sync_dir(fs.fs.path());
    // Three or four changes in b/ per file (create, write, fsync, perhaps a truncate), as many
    // in a/ before each: the 7th change in b/ falls on its second or third file.
    fs.fs.cut_power_in(Path::new("b"), 6).unwrap();
    let script = "for i in $(seq 1 10); do for d in a b; do \
                  echo $i > $d/f$i && sync $d/f$i || exit 1; done; done";
    let status = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(fs.fs.path())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    let report = fs.fs.cut_power().unwrap();
    let created = |path: &str| {
        report
            .volatile
            .iter()
            .any(|volatile| volatile.path == Path::new(path))
    };
    assert!(created("a/f2") && created("b/f1"), "{report}");
    assert!(!created("b/f4") && !created("a/f5"), "{report}");
    assert!(fs.fs.cut_power_in(Path::new("c"), 0).is_err());
}
