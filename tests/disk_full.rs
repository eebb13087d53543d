//! A disk that fills up under a serving peer: pushes past the space are refused, never
//! acknowledged; the store stays readable; once space frees, the same push completes. The disk
//! is a small tmpfs mounted for the test (root is needed; without it the test says so and
//! passes without running, except in CI, where it fails).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use storage::{BackendKind, PartHash};
use support::{list_from, p, random_bytes, run, start_server, write_files};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|err| format!("cannot run mount: {err}"))?;
        if output.status.success() {
            Ok(Self(at.to_owned()))
        } else {
            Err(format!(
                "cannot mount a tmpfs (root is needed): {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_refuses_pushes_without_acknowledging_them_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let disk = match Tmpfs::mount(&dir.path().join("disk"), "24m") {
        Ok(disk) => disk,
        Err(why) => {
            support::skip(&why);
            return;
        }
    };
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![0; 14_000_000]).unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..14)
        .map(|i| (format!("part{i:02}.bin"), random_bytes(i, 1_000_000)))
        .collect();
    let named: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let paths = write_files(&dir.path().join("in"), &named);
    let path_args: Vec<&str> = paths.iter().map(|path| p(path)).collect();

    let db = disk.0.join("db");
    let server = start_server(&db, BackendKind::Sled, &[]);
    let at = server.at();
    let mut send = vec!["send", "--to", &at, "--json"];
    send.extend(&path_args);
    let first = run(&send).fails(1).json();
    let stored = first["stored"].as_u64().unwrap();
    assert!(
        first["rejected"].as_u64().unwrap() > 0,
        "the disk never filled: {first}"
    );
    assert!(stored > 0, "nothing fitted: {first}");
    assert!(
        server.log().contains("No space left on device"),
        "{}",
        server.log()
    );

    // Exactly the acknowledged parts are there, and they read back intact.
    let listing = list_from(&server);
    let listed = listing.as_array().unwrap();
    assert_eq!(listed.len() as u64, stored, "{listing}");
    for entry in listed {
        let (_, bytes) = files.iter().find(|(n, _)| entry["name"] == *n).unwrap();
        assert_eq!(entry["hash"], PartHash::of(bytes).to_hex());
    }
    let out = dir.path().join("out");
    run(["export", "--from", &at, p(&out)]).ok();

    std::fs::remove_file(&filler).unwrap();
    let second = run(&send).ok().json();
    assert_eq!(second["stored"].as_u64().unwrap(), 14 - stored, "{second}");
    assert_eq!(second["already_had"].as_u64().unwrap(), stored, "{second}");
    server.stop();
    let verified = run(["--db", p(&db), "verify", "--json"]).ok().json();
    assert_eq!(verified["intact"], 14, "{verified}");
}

/// Writes `path` until the disk is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0; 1 << 16];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
}

/// A file too large for the disk fails to import without filling it: the failed append is cut
/// back at once (the chunks of earlier batches stay), the store opens on a disk with no byte
/// left, `gc` collects the chunks there, and the file stored before reads back intact.
#[test]
fn a_failed_import_is_cut_back_and_the_store_opens_on_a_full_disk() {
    for backend in [BackendKind::Sled, BackendKind::Fs] {
        let dir = tempfile::tempdir().unwrap();
        let disk = match Tmpfs::mount(&dir.path().join("disk"), "64m") {
            Ok(disk) => disk,
            Err(why) => {
                support::skip(&why);
                return;
            }
        };
        let small = dir.path().join("small.txt");
        std::fs::write(&small, random_bytes(1, 20_000)).unwrap();
        let big = dir.path().join("big.bin");
        std::fs::write(&big, random_bytes(2, 100_000_000)).unwrap();
        let db = disk.0.join("db");
        let store = ["--db", p(&db), "--backend", backend.name()];
        run([&store[..], &["import", p(&small)]].concat()).ok();
        let failed = run([&store[..], &["import", p(&big)]].concat()).fails(1);
        assert!(
            failed.stdout().contains("No space left on device")
                || failed.stderr().contains("No space left on device"),
            "{}{}",
            failed.stdout(),
            failed.stderr()
        );
        // Opened again and again on a disk with no byte left.
        let filler = disk.0.join("filler");
        fill(&filler);
        for _ in 0..2 {
            let listing = run([&store[..], &["list", "--json"]].concat()).ok().json();
            assert_eq!(listing.as_array().unwrap().len(), 1, "{backend}: {listing}");
            run([&store[..], &["verify"]].concat()).ok();
        }
        // Removing is how a full store makes room: gc works on the full disk.
        run([&store[..], &["gc"]].concat()).ok();
        let used = storage::disk_usage(&db).unwrap();
        assert!(
            used < 8 << 20,
            "{backend}: {used} bytes still used after gc"
        );
        std::fs::remove_file(&filler).unwrap();
        let other = dir.path().join("other.txt");
        std::fs::write(&other, random_bytes(3, 20_000)).unwrap();
        run([&store[..], &["import", p(&other)]].concat()).ok();
        let listing = run([&store[..], &["list", "--json"]].concat()).ok().json();
        assert_eq!(listing.as_array().unwrap().len(), 2, "{backend}: {listing}");
        let grown = Command::new("mount")
            .args(["-o", "remount,size=256m"])
            .arg(&disk.0)
            .status()
            .unwrap();
        assert!(grown.success());
        run([&store[..], &["import", p(&big)]].concat()).ok();
        run([&store[..], &["verify"]].concat()).ok();
    }
}
