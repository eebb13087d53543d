//! `serve --watch DIR`: files that appear or change in DIR are imported once complete and
//! served like any other; a file still being written is taken once, whole; links, hidden
//! names, FIFOs and subdirectories are left alone. Real processes, a
//! real directory and store in temp dirs, the listing read over the network.

mod support;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use storage::BackendKind;
use support::files::write_random_file;
use support::{PATIENCE, Server, list_from, names_in, p, run, start_server};

/// Long beside the gaps of the slow writer below (100 ms), so a busy machine cannot make a
/// pause look like the end of the file.
const SETTLE_SECS: &str = "3";

/// Polls the server's listing until `name` shows `hash`, at most [`PATIENCE`].
fn wait_for_hash(server: &Server, name: &str, hash: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listing = list_from(server);
        let found = listing
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name);
        if found.is_some_and(|entry| entry["hash"] == hash) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never showed {hash}: {listing}\nserve's log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// How many times the server logged that it stored `name` from the watched directory.
fn times_stored(server: &Server, name: &str) -> usize {
    let logged = server.log();
    let mine = format!("name=\"{name}\"");
    logged
        .lines()
        .filter(|line| line.contains("watch: stored") && line.contains(&mine))
        .count()
}

#[test]
fn files_that_appear_or_change_in_the_watched_directory_are_served_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let watched = dir.path().join("watched");
    std::fs::create_dir_all(watched.join("sub")).unwrap();
    std::fs::write(watched.join("before.txt"), b"there before serve started\n").unwrap();
    std::fs::write(watched.join(".hidden"), b"an editor's swap file").unwrap();
    std::fs::write(watched.join("sub/inner.txt"), b"in a subdirectory").unwrap();
    // A link to a file outside, which whoever can write into DIR could point anywhere.
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, b"not for peers").unwrap();
    std::os::unix::fs::symlink(&secret, watched.join("link.txt")).unwrap();
    let fifo = std::ffi::CString::new(watched.join("pipe").into_os_string().into_encoded_bytes());
    // SAFETY: mkfifo only reads the NUL-terminated path it is given.
    assert_eq!(unsafe { libc::mkfifo(fifo.unwrap().as_ptr(), 0o600) }, 0);
    let db = dir.path().join("peer.db");
    let watch_args = ["--watch", p(&watched), "--watch-settle", SETTLE_SECS, "-v"];
    let server = start_server(&db, BackendKind::Sled, &watch_args);

    let before = blake3::hash(b"there before serve started\n")
        .to_hex()
        .to_string();
    wait_for_hash(&server, "before.txt", &before);

    // Written in 24 pieces over about 2.4 s, chunked once whole (3 MiB > 1 MiB chunks).
    let pieces: Vec<Vec<u8>> = (0..24u8).map(|i| vec![i; 128 * 1024]).collect();
    let mut growing = std::fs::File::create(watched.join("growing.bin")).unwrap();
    for piece in &pieces {
        growing.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(growing);
    let whole = pieces.concat();
    wait_for_hash(
        &server,
        "growing.bin",
        blake3::hash(&whole).to_hex().as_ref(),
    );
    assert_eq!(times_stored(&server, "growing.bin"), 1, "{}", server.log());

    // A changed file replaces what its name held; one written elsewhere and renamed in is taken.
    let changed = watched.join("before.txt");
    let hash = write_random_file(&changed, 7, 200_000);
    wait_for_hash(&server, "before.txt", &hash.to_string());
    let staged = dir.path().join("staged.bin");
    let staged_hash = write_random_file(&staged, 8, 50_000);
    std::fs::rename(&staged, watched.join("moved-in.bin")).unwrap();
    wait_for_hash(&server, "moved-in.bin", &staged_hash.to_string());

    let out = dir.path().join("out");
    run(["export", "--from", &server.at(), p(&out), "growing.bin"]).ok();
    assert_eq!(
        std::fs::read(out.join("growing.bin_recebida")).unwrap(),
        whole
    );
    let names = names_in(&list_from(&server));
    let expected = ["before.txt", "growing.bin", "moved-in.bin"];
    assert_eq!(names, expected.map(String::from).into(), "{}", server.log());
    server.stop();
}

/// A directory that cannot be watched is refused at startup, with what is wrong.
#[test]
fn watching_a_directory_that_is_not_there_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let db = dir.path().join("peer.db");
    let args = [
        "--db",
        p(&db),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--watch",
        p(&missing),
    ];
    let refused = run(args).fails(1);
    assert!(refused.stderr().contains("missing"), "{}", refused.stderr());
    assert!(!Path::new(&missing).exists());
}

/// Watching a store's own directory would serve its identity key; watching the export
/// directory would import every export again. Both are refused before anything is imported.
#[test]
fn watching_a_store_or_the_export_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peer.db");
    run(["--db", p(&db), "id"]).ok();
    let serve = |extra: &[&str]| {
        let mut args = vec!["--db", p(&db), "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        run(args).fails(1).stderr()
    };
    let inside_store = serve(&["--watch", p(&db)]);
    assert!(inside_store.contains("inside a store"), "{inside_store}");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let same = serve(&["--watch", p(&out), "--export-dir", p(&out)]);
    assert!(same.contains("same directory"), "{same}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
}

/// SIGTERM while a huge file is being imported from the watched directory: `serve` stops
/// within seconds, as with a mirror's pull, instead of waiting for the import to finish.
/// Found by stopping `serve --watch` while it imported a 64 GiB file: it went on for minutes.
#[test]
fn serve_stops_within_seconds_while_a_huge_watched_file_is_imported() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let server = start_server(
        &dir.path().join("s.db"),
        BackendKind::Sled,
        &["--watch", p(&shared), "--watch-settle", "1"],
    );
    // Sparse: 64 GiB to read and hash, almost nothing on disk.
    let huge = std::fs::File::create(shared.join("huge.bin")).unwrap();
    huge.set_len(64 << 30).unwrap();
    drop(huge);
    // Settled after a second and a look a second later: the import is then under way.
    std::thread::sleep(Duration::from_secs(4));
    // Server::stop fails the test if serve has not exited within PATIENCE; the import it
    // abandoned leaves no file behind (hashing 64 GiB would take minutes here).
    server.stop();
    let listed = run(["--db", p(&dir.path().join("s.db")), "list", "--json"])
        .ok()
        .json();
    assert_eq!(
        listed,
        serde_json::json!([]),
        "the abandoned import left a file"
    );
}

/// A watched directory that is removed ends the watch: `serve` says so in its log rather than
/// going on silently while files put in a directory made again under that name are never
/// imported. Found by `rm -rf` of the watched directory under a running `serve --watch`.
#[test]
fn removing_the_watched_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let server = start_server(
        &dir.path().join("s.db"),
        BackendKind::Sled,
        &["--watch", p(&shared)],
    );
    std::fs::remove_dir(&shared).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("the watched directory was removed") {
        assert!(
            Instant::now() < deadline,
            "nothing said the watch ended; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
}
