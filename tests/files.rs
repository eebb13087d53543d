//! Files larger than one part, end to end: stored as content-addressed chunks plus a manifest,
//! listed and exported whole, sent and fetched, deduplicated, resumed after a kill -9, and
//! refused when damaged or forged. Real processes, real stores in temp dirs, servers on
//! 127.0.0.1:0; most files use `--part-size 65536` so that many chunks stay small.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use net::message::{ErrorCode, Request, Response};
use serde_json::{Value, json};
use storage::{BackendKind, DEFAULT_CHUNK_SIZE, Manifest, PartHash, PartKind};

use support::relay::Relay;
use support::{
    BACKENDS, PATIENCE, RawPeer, Run, body, expected_listing_in_parts, list_from, names_in, p,
    random_bytes, run, signal, start_server, write_files,
};

/// The part size of most tests, as a number and as the CLI takes it.
const PART: usize = 64 * 1024;
const PART_SIZE: &str = "65536";

// ---- Round trips ----

/// Every size around the part size: nothing, a byte, exactly one part (still a plain part),
/// one byte more (two chunks, the last of one byte), and many chunks.
fn sizes_around_a_part() -> [(&'static str, Vec<u8>); 5] {
    [
        ("empty", Vec::new()),
        ("one byte", vec![0x5a]),
        ("exactly one part.bin", random_bytes(11, PART)),
        ("one part and a byte.bin", random_bytes(12, PART + 1)),
        (
            "eleven parts – ünïcødé.bin",
            random_bytes(13, 10 * PART + 4321),
        ),
    ]
}

#[test]
fn files_of_every_size_round_trip_through_import_and_export_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = sizes_around_a_part();
        let paths = write_files(&dir.path().join("in"), &files);
        let store = Store::new(dir.path(), "local.db", backend);

        let imported = store.run(&with_paths(&["import", "--part-size", PART_SIZE], &paths));
        let mut lines: String = files
            .iter()
            .map(|(name, _)| format!("stored {name}\n"))
            .collect();
        lines.push_str("5 stored, 0 already had, 0 rejected\n");
        assert_eq!(
            imported.ok().stdout(),
            lines,
            "{backend:?}: a line per file"
        );

        let listing = expected_listing_in_parts(&files, PART as u64);
        assert_eq!(store.run(&["list", "--json"]).ok().json(), listing);
        let text = store.run(&["list"]).ok().stdout();
        assert_eq!(text, listing_as_text(&listing), "{backend:?}");
        let everything = store.run(&["list", "--all", "--json"]).ok().json();
        assert_eq!(everything, listing_with_chunks(&files, PART), "{backend:?}");

        let out = dir.path().join("out");
        let exported = store.run(&["export", p(&out)]).ok().stdout();
        assert!(exported.ends_with("5 exported, 0 failed\n"), "{exported}");
        assert_exported_exactly(&out, &files);

        let verified = store.run(&["verify", "--json"]).ok().json();
        let bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        let whole = json!({"intact": 5, "bytes": bytes, "corrupt": []});
        assert_eq!(
            verified, whole,
            "{backend:?}: a file is one entry, read whole"
        );
    }
}

#[test]
fn files_of_every_size_round_trip_through_send_fetch_and_export_from_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = sizes_around_a_part();
        let paths = write_files(&dir.path().join("in"), &files);
        let server = start_server(&dir.path().join("served.db"), backend, &[]);
        let at = server.at();
        let send = ["send", "--to", &at, "--part-size", PART_SIZE, "--json"];
        let moved = bytes_moved(&files, PART);

        let sent = run(with_paths(&send, &paths)).ok().json();
        let all_new = json!({"stored": 5, "already_had": 0, "rejected": 0, "bytes_sent": moved});
        assert_eq!(
            sent, all_new,
            "{backend:?}: chunks and manifests, all counted"
        );

        let listing = expected_listing_in_parts(&files, PART as u64);
        assert_eq!(list_from(&server), listing, "{backend:?}");
        let everything = run(["list", "--from", &at, "--all", "--json"]).ok().json();
        assert_eq!(everything, listing_with_chunks(&files, PART), "{backend:?}");

        let fetched = Store::new(dir.path(), "fetched.db", backend);
        let summary = fetched.run(&["fetch", "--from", &at, "--json"]).ok().json();
        assert_fetched(&summary, 5, 0, moved);
        assert_eq!(fetched.run(&["list", "--json"]).ok().json(), listing);
        let everything = fetched.run(&["list", "--all", "--json"]).ok().json();
        assert_eq!(everything, listing_with_chunks(&files, PART), "{backend:?}");
        let out = dir.path().join("out-fetched");
        fetched.run(&["export", p(&out)]).ok();
        assert_exported_exactly(&out, &files);

        let out = dir.path().join("out-remote");
        let exported = run(["export", "--from", &at, p(&out)]).ok().stdout();
        assert!(exported.ends_with("5 exported, 0 failed\n"), "{exported}");
        assert_exported_exactly(&out, &files);

        let again = run(with_paths(&send, &paths)).ok().json();
        let none_new = json!({"stored": 0, "already_had": 5, "rejected": 0, "bytes_sent": 0});
        assert_eq!(
            again, none_new,
            "{backend:?}: every chunk is held, none is sent"
        );
        let summary = fetched.run(&["fetch", "--from", &at, "--json"]).ok().json();
        assert_fetched(&summary, 0, 5, 0);
        server.stop();
    }
}

/// The default part size and a file of 300 MB (287 chunks, the last one short), compared by a
/// hash streamed from disk, never held in memory whole.
#[test]
fn a_300_megabyte_file_round_trips_with_the_default_part_size() {
    const SIZE: u64 = 300 * 1000 * 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in").join("big.bin");
    let hash = write_random_file(&path, 300, SIZE);
    let chunks = SIZE.div_ceil(DEFAULT_CHUNK_SIZE);
    assert_eq!(chunks, 287);
    let listing =
        json!([{"name": "big.bin", "size": SIZE, "hash": hash.to_hex(), "parts": chunks}]);

    let local = Store::new(dir.path(), "local.db", BackendKind::Sled);
    let imported = local.run(&["import", p(&path)]).ok().stdout();
    assert_eq!(
        imported,
        "stored big.bin\n1 stored, 0 already had, 0 rejected\n"
    );
    assert_eq!(local.run(&["list", "--json"]).ok().json(), listing);
    let out = dir.path().join("out-local");
    local.run(&["export", p(&out)]).ok();
    assert_same_file(&out.join("big.bin_recebida"), SIZE, hash);

    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let at = server.at();
    let sent = run(["send", "--to", &at, "--json", p(&path)]).ok().json();
    let moved = SIZE + 94 + 32 * chunks;
    let expected = json!({"stored": 1, "already_had": 0, "rejected": 0, "bytes_sent": moved});
    assert_eq!(sent, expected);
    assert_eq!(list_from(&server), listing);

    let fetched = Store::new(dir.path(), "fetched.db", BackendKind::Fs);
    let summary = fetched.run(&["fetch", "--from", &at, "--json"]).ok().json();
    assert_fetched(&summary, 1, 0, moved as usize);
    server.stop();
    assert_eq!(fetched.run(&["list", "--json"]).ok().json(), listing);
    let out = dir.path().join("out-fetched");
    fetched.run(&["export", p(&out)]).ok();
    assert_same_file(&out.join("big.bin_recebida"), SIZE, hash);
}

// ---- Deduplication ----

/// Two files that share their first four chunks: the second stores, and sends, only its own.
#[test]
fn files_sharing_chunks_store_and_send_the_shared_chunks_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let shared = random_bytes(20, 4 * PART);
        let first = [shared.clone(), random_bytes(21, 2 * PART)].concat();
        let second = [shared, random_bytes(22, 2 * PART + 100)].concat();
        let own_of_second = 2 * PART + 100;
        let files = [("first.bin", first), ("second.bin", second)];
        let paths = write_files(&dir.path().join("in"), &files);
        let all_chunks = chunk_names_of(&files, PART);
        assert_eq!(all_chunks.len(), 4 + 2 + 3);

        let store = Store::new(dir.path(), "local.db", backend);
        for path in &paths {
            store
                .run(&["import", "--part-size", PART_SIZE, p(path)])
                .ok();
        }
        let everything = store.run(&["list", "--all", "--json"]).ok().json();
        assert_eq!(chunk_names_in(&everything), all_chunks, "{backend:?}");
        let out = dir.path().join("out");
        store.run(&["export", p(&out)]).ok();
        assert_exported_exactly(&out, &files);

        let server = start_server(&dir.path().join("served.db"), backend, &[]);
        let at = server.at();
        let send = |path: &Path| {
            let args = [
                "send",
                "--to",
                &at,
                "--part-size",
                PART_SIZE,
                "--json",
                p(path),
            ];
            run(args).ok().json()
        };
        let sent = send(&paths[0]);
        let all_of_first = files[0].1.len() + manifest_len(files[0].1.len(), PART);
        assert_eq!(sent["bytes_sent"], all_of_first, "{backend:?}");
        let sent = send(&paths[1]);
        assert_eq!(sent["stored"], 1, "{backend:?}: {sent}");
        let bytes_sent = sent["bytes_sent"].as_u64().unwrap() as usize;
        assert!(bytes_sent < files[1].1.len(), "{backend:?}: {sent}");
        let own = own_of_second + manifest_len(files[1].1.len(), PART);
        assert_eq!(bytes_sent, own, "{backend:?}: only the chunks of its own");
        let everything = run(["list", "--from", &at, "--all", "--json"]).ok().json();
        assert_eq!(chunk_names_in(&everything), all_chunks, "{backend:?}");

        // Pushed from the store instead, to a server holding nothing: each chunk goes once.
        let empty = start_server(&dir.path().join("empty.db"), backend, &[]);
        let pushed = store
            .run(&["send", "--to", &empty.at(), "--json"])
            .ok()
            .json();
        let once = all_of_first + own;
        let expected = json!({"stored": 2, "already_had": 0, "rejected": 0, "bytes_sent": once});
        assert_eq!(pushed, expected, "{backend:?}");
        let out = dir.path().join("out-remote");
        run(["export", "--from", &empty.at(), p(&out)]).ok();
        assert_exported_exactly(&out, &files);
        server.stop();
        empty.stop();
    }
}

/// A file that is one chunk five times over, and a short tail: one chunk stored and fetched
/// for all five, and the file assembled in order.
#[test]
fn a_file_repeating_one_chunk_is_stored_and_fetched_with_it_once() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let chunk = random_bytes(30, PART);
        let tail = b"the end".to_vec();
        let repeated = [chunk.repeat(5), tail.clone()].concat();
        let files = [("repeated.bin", repeated)];
        let paths = write_files(&dir.path().join("in"), &files);
        let store = Store::new(dir.path(), "local.db", backend);
        store
            .run(&with_paths(&["import", "--part-size", PART_SIZE], &paths))
            .ok();
        let everything = store.run(&["list", "--all", "--json"]).ok().json();
        let two = BTreeSet::from([chunk_name(&chunk), chunk_name(&tail)]);
        assert_eq!(chunk_names_in(&everything), two, "{backend:?}");
        let listing = expected_listing_in_parts(&files, PART as u64);
        assert_eq!(store.run(&["list", "--json"]).ok().json(), listing);
        let out = dir.path().join("out");
        store.run(&["export", p(&out)]).ok();
        assert_exported_exactly(&out, &files);

        let server = start_server(&dir.path().join("served.db"), backend, &[]);
        let at = server.at();
        let once = PART + tail.len() + manifest_len(files[0].1.len(), PART);
        let pushed = store.run(&["send", "--to", &at, "--json"]).ok().json();
        let expected = json!({"stored": 1, "already_had": 0, "rejected": 0, "bytes_sent": once});
        assert_eq!(pushed, expected, "{backend:?}: pushed from the store");
        let fetched = Store::new(dir.path(), "fetched.db", backend);
        let summary = fetched.run(&["fetch", "--from", &at, "--json"]).ok().json();
        assert_fetched(&summary, 1, 0, once);
        let out = dir.path().join("out-fetched");
        fetched.run(&["export", p(&out)]).ok();
        assert_exported_exactly(&out, &files);
        server.stop();

        // Sent from the file: whole on arrival. The bytes sent are not pinned: the send offers
        // the later copies of the chunk before the server holds the first, so they may go too.
        let other = start_server(&dir.path().join("other.db"), backend, &[]);
        let send = [
            "send",
            "--to",
            &other.at(),
            "--part-size",
            PART_SIZE,
            "--json",
        ];
        let sent = run(with_paths(&send, &paths)).ok().json();
        assert_eq!((&sent["stored"], &sent["rejected"]), (&json!(1), &json!(0)));
        let out = dir.path().join("out-sent");
        run(["export", "--from", &other.at(), p(&out)]).ok();
        assert_exported_exactly(&out, &files);
        other.stop();
    }
}

// ---- Resuming ----

/// A send killed with SIGKILL half-way leaves chunks on the server but no file; sending again
/// moves only the chunks still missing, and the file is then whole.
///
/// The send goes through a relay that passes only half of the file, so it cannot finish
/// before the kill however fast the machine is.
#[test]
fn a_send_killed_mid_way_is_resumed_with_only_the_missing_chunks() {
    const SIZE: usize = 64 * 1024 * 1024;
    const CHUNKS: usize = SIZE / PART;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in").join("resumed.bin");
    let hash = write_random_file(&path, 40, SIZE as u64);
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let at = server.at();

    let relay = Relay::start(server.addr(), SIZE as u64 / 2, u64::MAX);
    let to = relay.at();
    let mut send = spawn(&["send", "--to", &to, "--part-size", PART_SIZE, p(&path)]);
    let held = wait_for("the server to hold 64 chunks", &mut send, || {
        let held = chunk_names_in(&run(["list", "--from", &at, "--all", "--json"]).ok().json());
        (held.len() >= CHUNKS / 16).then_some(held.len())
    });
    kill_mid_way(send, "send");
    drop(relay);
    assert_eq!(list_from(&server), json!([]), "no manifest yet, so no file");

    let again = [
        "send",
        "--to",
        &at,
        "--part-size",
        PART_SIZE,
        "--json",
        p(&path),
    ];
    let resent = run(again).ok().json();
    assert_eq!(
        (&resent["stored"], &resent["rejected"]),
        (&json!(1), &json!(0))
    );
    let bytes_sent = resent["bytes_sent"].as_u64().unwrap() as usize;
    let manifest = manifest_len(SIZE, PART);
    assert!(bytes_sent < SIZE, "{bytes_sent} bytes sent again");
    assert!(
        bytes_sent <= SIZE + manifest - held * PART,
        "{bytes_sent} bytes sent again, though the server held {held} chunks"
    );
    assert_eq!(
        (bytes_sent - manifest) % PART,
        0,
        "whole chunks and a manifest"
    );

    let listing =
        json!([{"name": "resumed.bin", "size": SIZE, "hash": hash.to_hex(), "parts": CHUNKS}]);
    assert_eq!(list_from(&server), listing);
    let out = dir.path().join("out");
    run(["export", "--from", &at, p(&out)]).ok();
    assert_same_file(&out.join("resumed.bin_recebida"), SIZE as u64, hash);
    server.stop();
}

/// A fetch killed with SIGKILL after it committed a first batch of chunks (fetch commits every
/// 64 MiB) leaves no file; fetching again moves only the chunks still missing.
///
/// The fetch goes through a relay that passes 80 MiB of the 96 MiB file: past the first
/// commit, short of the end. Progress is read from the fetching store's `names/` directory
/// (fs backend), since the store itself is locked by the running fetch.
#[test]
fn a_fetch_killed_mid_way_is_resumed_with_only_the_missing_chunks() {
    const SIZE: usize = 96 * 1024 * 1024;
    const CHUNKS: usize = SIZE / PART;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in").join("resumed.bin");
    let hash = write_random_file(&path, 41, SIZE as u64);
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let at = server.at();
    run(["send", "--to", &at, "--part-size", PART_SIZE, p(&path)]).ok();

    let relay = Relay::start(server.addr(), u64::MAX, 80 * 1024 * 1024);
    let fetched = Store::new(dir.path(), "fetched.db", BackendKind::Fs);
    let mut fetch = fetched.spawn(&["fetch", "--from", &relay.at()]);
    let names = fetched.db.join("names");
    let held = wait_for("512 chunks committed by the fetch", &mut fetch, || {
        let held = std::fs::read_dir(&names)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().starts_with("b3-"))
            .count();
        (held >= 512).then_some(held)
    });
    kill_mid_way(fetch, "fetch");
    drop(relay);
    assert_eq!(fetched.run(&["list", "--json"]).ok().json(), json!([]));

    let summary = fetched.run(&["fetch", "--from", &at, "--json"]).ok().json();
    assert_eq!(
        (&summary["stored"], &summary["rejected"]),
        (&json!(1), &json!(0))
    );
    let received = summary["bytes_received"].as_u64().unwrap() as usize;
    let manifest = manifest_len(SIZE, PART);
    assert!(received < SIZE, "{received} bytes received again");
    assert!(
        received <= SIZE + manifest - held * PART,
        "{received} bytes received again, though {held} chunks were held"
    );
    assert_eq!(
        (received - manifest) % PART,
        0,
        "whole chunks and a manifest"
    );
    server.stop();

    let listing =
        json!([{"name": "resumed.bin", "size": SIZE, "hash": hash.to_hex(), "parts": CHUNKS}]);
    assert_eq!(fetched.run(&["list", "--json"]).ok().json(), listing);
    let out = dir.path().join("out");
    fetched.run(&["export", p(&out)]).ok();
    assert_same_file(&out.join("resumed.bin_recebida"), SIZE as u64, hash);
}

// ---- Damage ----

/// Three files: one of them loses a chunk (damaged or gone), the others must still come out.
fn files_with_a_victim() -> [(&'static str, Vec<u8>); 3] {
    [
        ("intact.bin", random_bytes(50, 3 * PART + 5)),
        ("small.txt", b"a part of its own".to_vec()),
        ("victim.bin", random_bytes(51, 4 * PART + 1000)),
    ]
}

#[test]
fn a_file_with_a_corrupt_chunk_is_not_exported_and_the_others_are_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files_with_a_victim();
        let paths = write_files(&dir.path().join("in"), &files);
        let store = Store::new(dir.path(), "local.db", backend);
        store
            .run(&with_paths(&["import", "--part-size", PART_SIZE], &paths))
            .ok();
        let chunk = &files[2].1[2 * PART..3 * PART];
        flip_a_byte_of_the_body(&store.db, chunk);

        let unusable = format!(
            "failed victim.bin: file \"victim.bin\": chunk 2 ({}) is unusable: ",
            PartHash::of(chunk)
        );
        assert_only_the_victim_fails(&store, &files, &unusable);

        // The same store served: the victim is not exported from it either.
        let server = start_server(&store.db, backend, &[]);
        let out = dir.path().join("out-remote");
        let exported = run(["export", "--from", &server.at(), p(&out)]).fails(1);
        let named = format!("chunk 2 ({})", PartHash::of(chunk));
        let stdout = exported.stdout();
        let failure = stdout
            .lines()
            .find(|line| line.starts_with("failed victim.bin: "));
        assert!(
            failure.is_some_and(|line| line.contains(&named)),
            "{backend:?}: {stdout}"
        );
        assert!(stdout.ends_with("2 exported, 1 failed\n"), "{stdout}");
        assert_exported_exactly(&out, &files[..2]);
        server.stop();
    }
}

#[test]
fn a_file_with_a_missing_chunk_is_not_exported_and_the_others_are() {
    let dir = tempfile::tempdir().unwrap();
    let files = files_with_a_victim();
    let paths = write_files(&dir.path().join("in"), &files);
    let store = Store::new(dir.path(), "local.db", BackendKind::Fs);
    store
        .run(&with_paths(&["import", "--part-size", PART_SIZE], &paths))
        .ok();
    let hash = PartHash::of(&files[2].1[PART..2 * PART]);
    std::fs::remove_file(store.db.join("bodies").join(hash.to_hex())).unwrap();

    let unusable =
        format!("failed victim.bin: file \"victim.bin\": chunk 1 ({hash}) is unusable: ");
    let line = assert_only_the_victim_fails(&store, &files, &unusable);
    assert!(line.contains("missing"), "{line}");
}

/// Exports `store` (whose victim.bin lost a chunk) and checks the failure line starts with
/// `unusable`, the other files are written whole and nothing else is in OUT; then that
/// `verify` reports victim.bin. Returns the failure line.
fn assert_only_the_victim_fails(
    store: &Store,
    files: &[(&str, Vec<u8>)],
    unusable: &str,
) -> String {
    let out = store.db.with_file_name("out");
    let exported = store.run(&["export", p(&out)]).fails(1).stdout();
    let line = exported
        .lines()
        .find(|line| line.starts_with(unusable))
        .unwrap_or_else(|| panic!("{:?}: no line {unusable:?} in\n{exported}", store.backend))
        .to_owned();
    assert!(exported.ends_with("2 exported, 1 failed\n"), "{exported}");
    assert_exported_exactly(&out, &files[..2]);

    let verified = store.run(&["verify", "--json"]).fails(1).json();
    assert_eq!(verified["intact"], 2, "{verified}");
    assert_eq!(verified["bytes"], files[0].1.len() + files[1].1.len());
    let corrupt = verified["corrupt"].as_array().unwrap();
    assert_eq!(corrupt.len(), 1, "{verified}");
    assert_eq!(corrupt[0]["name"], "victim.bin");
    let error = corrupt[0]["error"].as_str().unwrap();
    let cause = unusable.trim_start_matches("failed victim.bin: ");
    assert!(error.starts_with(cause), "{error}");
    line
}

// ---- Peers that lie ----

/// Manifests that do not describe a file the server can assemble are refused, each on its own;
/// the connection and the server go on, and none of them is ever listed.
#[test]
fn manifests_for_chunks_the_server_lacks_or_not_manifests_at_all_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let file = random_bytes(60, 2 * PART);
    let (held, lacking) = file.split_at(PART);
    let manifest = manifest_of(&file, PART).encode();

    let mut peer = RawPeer::greeted(server.addr());
    assert_eq!(
        push(&mut peer, 1, &chunk_name(held), held, PartKind::Plain),
        Response::Stored { id: 1 }
    );
    let refusals: [(&str, Vec<u8>); 3] = [
        ("lacks a chunk.bin", manifest.clone()),
        (
            "not a manifest.bin",
            b"plain bytes offered as a manifest".to_vec(),
        ),
        ("cut short.bin", manifest[..manifest.len() - 1].to_vec()),
    ];
    for (id, (name, bytes)) in (2..).zip(&refusals) {
        match push(&mut peer, id, name, bytes, PartKind::Manifest) {
            Response::Rejected {
                id: answered,
                code: ErrorCode::BadManifest,
                ..
            } if answered == id => {}
            other => panic!("{name}: expected Rejected with BadManifest, got {other:?}"),
        }
    }

    // The chunk that was lacking, then the same manifest: now it is a whole file.
    assert_eq!(
        push(
            &mut peer,
            10,
            &chunk_name(lacking),
            lacking,
            PartKind::Plain
        ),
        Response::Stored { id: 10 }
    );
    assert_eq!(
        push(&mut peer, 11, "whole.bin", &manifest, PartKind::Manifest),
        Response::Stored { id: 11 }
    );
    let honest = write_files(
        dir.path(),
        &[("honest.txt", b"sent after the lies".to_vec())],
    );
    run(["send", "--to", &server.at(), p(&honest[0])]).ok();
    let names: BTreeSet<String> = ["honest.txt", "whole.bin"].map(String::from).into();
    assert_eq!(names_in(&list_from(&server)), names);
    let out = dir.path().join("out");
    run(["export", "--from", &server.at(), p(&out)]).ok();
    assert_exported_exactly(
        &out,
        &[
            ("honest.txt", b"sent after the lies".to_vec()),
            ("whole.bin", file.clone()),
        ],
    );
    server.stop();
}

/// A manifest whose chunks are all held but whose file hash is not theirs describes no file.
/// The server may keep it (it checks only that the chunks are there), but no client may write
/// it out, nor store it as a file: that store would hold a file it cannot assemble, and the
/// name would be taken from the genuine file.
#[test]
fn a_manifest_that_lies_about_the_file_hash_is_neither_exported_nor_fetched() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let at = server.at();
    let file = random_bytes(61, 2 * PART);
    let chunks: Vec<PartHash> = file.chunks(PART).map(PartHash::of).collect();
    let another = PartHash::of(b"another file");
    let lie = Manifest::new(file.len() as u64, PART as u64, another, chunks)
        .unwrap()
        .encode();
    let mut peer = RawPeer::greeted(server.addr());
    for (id, chunk) in (1..).zip(file.chunks(PART)) {
        let answer = push(&mut peer, id, &chunk_name(chunk), chunk, PartKind::Plain);
        assert_eq!(answer, Response::Stored { id });
    }
    let kept = match push(&mut peer, 9, "liar.bin", &lie, PartKind::Manifest) {
        Response::Stored { id: 9 } => true,
        Response::Rejected {
            id: 9,
            code: ErrorCode::BadManifest,
            ..
        } => false,
        other => panic!("expected Stored or Rejected with BadManifest, got {other:?}"),
    };

    let out = dir.path().join("out");
    let exported = run(["export", "--from", &at, p(&out)]);
    assert_exported_exactly(&out, &[]);
    if !kept {
        exported.ok();
    } else {
        let stdout = exported.fails(1).stdout();
        assert!(stdout.contains("failed liar.bin: "), "{stdout}");

        let fetched = Store::new(dir.path(), "fetched.db", BackendKind::Sled);
        let summary = fetched.run(&["fetch", "--from", &at, "--json"]);
        let listing = fetched.run(&["list", "--json"]).ok().json();
        let stored = summary.stdout();
        assert_eq!(
            listing,
            json!([]),
            "fetch stored a file it cannot assemble: {stored}"
        );
        assert_eq!(summary.fails(1).json()["rejected"], 1);
    }
    server.stop();
}

/// A chunk's name is the hash of its bytes. A peer that offers other bytes under the name of
/// a chunk must be refused: once they are stored, every later file holding that chunk is
/// refused as a conflict.
#[test]
fn a_chunk_name_that_is_not_the_hash_of_its_bytes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let genuine = random_bytes(70, 2 * PART + 1);
    let squatted = chunk_name(&genuine[..PART]);
    let mut peer = RawPeer::greeted(server.addr());
    let answer = push(
        &mut peer,
        1,
        &squatted,
        b"other bytes under its name",
        PartKind::Plain,
    );
    assert!(
        matches!(answer, Response::Rejected { id: 1, .. }),
        "{squatted} was offered with bytes of another hash and answered {answer:?}"
    );

    let path = write_files(dir.path(), &[("genuine.bin", genuine.clone())]).remove(0);
    let send = [
        "send",
        "--to",
        &server.at(),
        "--part-size",
        PART_SIZE,
        p(&path),
    ];
    let sent = run(send);
    assert_eq!(sent.code(), 0, "{}", sent.stdout());
    let out = dir.path().join("out");
    run(["export", "--from", &server.at(), p(&out)]).ok();
    assert_exported_exactly(&out, &[("genuine.bin", genuine)]);
    server.stop();
}

// ---- Names ----

#[test]
fn names_of_the_form_of_a_chunk_are_refused_for_user_files() {
    let dir = tempfile::tempdir().unwrap();
    let reserved = chunk_name(b"anything at all");
    let files = [
        (reserved.as_str(), b"a user's file".to_vec()),
        ("b3-but-not-a-hash", b"an ordinary name".to_vec()),
    ];
    let paths = write_files(&dir.path().join("in"), &files);
    let refusal = format!("rejected {reserved}: ");
    let refused = |stdout: &str| {
        let line = stdout.lines().find(|line| line.starts_with(&refusal));
        assert!(
            line.is_some_and(|line| line.contains("reserved")),
            "{stdout}"
        );
    };
    let only_the_ordinary: BTreeSet<String> = ["b3-but-not-a-hash".to_owned()].into();

    let store = Store::new(dir.path(), "local.db", BackendKind::Sled);
    let imported = store
        .run(&with_paths(&["import"], &paths))
        .fails(1)
        .stdout();
    refused(&imported);
    assert!(
        imported.ends_with("1 stored, 0 already had, 1 rejected\n"),
        "{imported}"
    );
    let renamed = ["import", "--name", &reserved, p(&paths[1])];
    refused(&store.run(&renamed).fails(1).stdout());
    let everything = store.run(&["list", "--all", "--json"]).ok().json();
    assert_eq!(names_in(&everything), only_the_ordinary);

    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let at = server.at();
    let sent = run(with_paths(&["send", "--to", &at], &paths))
        .fails(1)
        .stdout();
    refused(&sent);
    assert!(
        sent.contains("1 stored, 0 already had, 1 rejected"),
        "{sent}"
    );
    let renamed = ["send", "--to", &at, "--name", &reserved, p(&paths[1])];
    refused(&run(renamed).fails(1).stdout());
    let everything = run(["list", "--from", &at, "--all", "--json"]).ok().json();
    assert_eq!(names_in(&everything), only_the_ordinary);
    server.stop();
}

// ---- Helpers ----

/// A store in a temp dir with its backend, and the CLI run on it.
struct Store {
    db: PathBuf,
    backend: BackendKind,
}

impl Store {
    fn new(dir: &Path, name: &str, backend: BackendKind) -> Self {
        Self {
            db: dir.join(name),
            backend,
        }
    }

    fn global(&self) -> [&str; 4] {
        ["--db", p(&self.db), "--backend", self.backend.name()]
    }

    /// `p2p-store --db DB --backend BACKEND ARGS`, to completion.
    fn run(&self, args: &[&str]) -> Run {
        run(self.global().iter().chain(args))
    }

    /// The same, left running.
    fn spawn(&self, args: &[&str]) -> Child {
        spawn(&[&self.global()[..], args].concat())
    }
}

/// `p2p-store ARGS`, left running, its output dropped.
fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Polls `probe` until it finds what it looks for, at most [`PATIENCE`], while `child` runs.
fn wait_for<T>(what: &str, child: &mut Child, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the transfer ended ({status}) before {what}; \
                 if it succeeded, give it a larger file"
            );
        }
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The signal number POSIX fixes for SIGKILL.
const SIGKILL: i32 = 9;

/// Kills `child` with SIGKILL, which must find it still running: a transfer that finished on
/// its own proves nothing about resuming one.
fn kill_mid_way(mut child: Child, what: &str) {
    signal(child.id(), "-KILL");
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{what} was not interrupted: it ended with {status} before the kill; give it a larger file"
    );
}

/// `args` followed by `paths`, as the CLI takes them.
fn with_paths<'a>(args: &[&'a str], paths: &'a [PathBuf]) -> Vec<&'a str> {
    args.iter()
        .copied()
        .chain(paths.iter().map(|path| p(path)))
        .collect()
}

/// Offers `bytes` as `name` of `kind` and sends them if wanted; returns the final answer.
fn push(peer: &mut RawPeer, id: u64, name: &str, bytes: &[u8], kind: PartKind) -> Response {
    let request = Request::Offer {
        id,
        name: name.into(),
        hash: *PartHash::of(bytes).as_bytes(),
        size: bytes.len() as u64,
        kind,
    };
    peer.send(&request, &[]);
    match peer.expect() {
        Response::Want { id: wanted } if wanted == id => {
            peer.send(&body(id, bytes), bytes);
            peer.expect()
        }
        other => other,
    }
}

/// The name a chunk of these bytes is stored under.
fn chunk_name(bytes: &[u8]) -> String {
    format!("b3-{}", PartHash::of(bytes))
}

/// The manifest a file of `bytes` gets with `part` byte chunks.
fn manifest_of(bytes: &[u8], part: usize) -> Manifest {
    let chunks = bytes.chunks(part).map(PartHash::of).collect();
    Manifest::new(bytes.len() as u64, part as u64, PartHash::of(bytes), chunks).unwrap()
}

/// Bytes of the manifest of a file of `size` bytes: 94 of header, 32 per chunk.
fn manifest_len(size: usize, part: usize) -> usize {
    94 + 32 * size.div_ceil(part)
}

/// Bytes a first send or fetch of `files` moves: every file, and the manifests of the chunked.
fn bytes_moved(files: &[(&str, Vec<u8>)], part: usize) -> usize {
    files
        .iter()
        .map(|(_, bytes)| match bytes.len() {
            len if len > part => len + manifest_len(len, part),
            len => len,
        })
        .sum()
}

/// The chunk names of the chunked `files`.
fn chunk_names_of(files: &[(&str, Vec<u8>)], part: usize) -> BTreeSet<String> {
    files
        .iter()
        .filter(|(_, bytes)| bytes.len() > part)
        .flat_map(|(_, bytes)| bytes.chunks(part).map(chunk_name))
        .collect()
}

/// The chunk names in a `list --all --json` output.
fn chunk_names_in(listing: &Value) -> BTreeSet<String> {
    names_in(listing)
        .into_iter()
        .filter(|name| name.starts_with("b3-"))
        .collect()
}

/// The `list --all --json` of `files` stored with `part` byte chunks: the files, and each
/// chunk once as a plain part.
fn listing_with_chunks(files: &[(&str, Vec<u8>)], part: usize) -> Value {
    let listing = expected_listing_in_parts(files, part as u64);
    let mut entries: BTreeMap<String, Value> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["name"].as_str().unwrap().to_owned(), entry.clone()))
        .collect();
    for (_, bytes) in files.iter().filter(|(_, bytes)| bytes.len() > part) {
        for chunk in bytes.chunks(part) {
            let name = chunk_name(chunk);
            let entry =
                json!({"name": name, "size": chunk.len(), "hash": PartHash::of(chunk).to_hex()});
            entries.insert(name, entry);
        }
    }
    Value::Array(entries.into_values().collect())
}

/// `list` as text: name, size and hash, tab-separated, and a file's number of parts.
fn listing_as_text(listing: &Value) -> String {
    let mut text = String::new();
    for entry in listing.as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let hash = entry["hash"].as_str().unwrap();
        text.push_str(&format!("{name}\t{}\t{hash}", entry["size"]));
        if let Some(parts) = entry.get("parts") {
            text.push_str(&format!("\t{parts} parts"));
        }
        text.push('\n');
    }
    text
}

/// Checks a `fetch --json` summary.
fn assert_fetched(summary: &Value, stored: usize, already_had: usize, bytes: usize) {
    let expected = [
        ("stored", stored),
        ("already_had", already_had),
        ("rejected", 0),
        ("bytes_received", bytes),
    ];
    for (key, value) in expected {
        assert_eq!(summary[key], value, "{key}: {summary}");
    }
}

/// OUT holds `files` as `<name>_recebida`, with their bytes, and nothing else: no partial file,
/// no temp file, no scratch store.
fn assert_exported_exactly(out: &Path, files: &[(&str, Vec<u8>)]) {
    let found: BTreeSet<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    let expected: BTreeSet<String> = files
        .iter()
        .map(|(name, _)| format!("{name}_recebida"))
        .collect();
    assert_eq!(found, expected, "in {}", out.display());
    for (name, bytes) in files {
        let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
        assert!(written == *bytes, "{name} was exported with other bytes");
    }
}

/// Writes `size` pseudo-random bytes to `path` a MiB at a time; returns their hash.
fn write_random_file(path: &Path, seed: u64, size: u64) -> PartHash {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(File::create(path).unwrap());
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut hasher = blake3::Hasher::new();
    let mut block = vec![0; 1024 * 1024];
    let mut left = size;
    while left > 0 {
        let len = block.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        rng.fill(&mut block[..len]);
        hasher.update(&block[..len]);
        file.write_all(&block[..len]).unwrap();
        left -= len as u64;
    }
    file.flush().unwrap();
    PartHash::from_bytes(*hasher.finalize().as_bytes())
}

/// `path` is `size` bytes hashing to `hash`, read as a stream.
fn assert_same_file(path: &Path, size: u64, hash: PartHash) {
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, size, "{}", path.display());
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(File::open(path).unwrap()).unwrap();
    let read = PartHash::from_bytes(*hasher.finalize().as_bytes());
    assert_eq!(read, hash, "{} holds other bytes", path.display());
}

/// Flips a byte in the middle of the stored copy of `bytes` (a body longer than 64 bytes and
/// unique in the store), found by content in the fs backend's body files or the sled
/// backend's pack files.
fn flip_a_byte_of_the_body(db: &Path, bytes: &[u8]) {
    let probe = &bytes[..64];
    for dir in ["bodies", "packs"] {
        for entry in std::fs::read_dir(db.join(dir)).into_iter().flatten() {
            let path = entry.unwrap().path();
            let mut stored = std::fs::read(&path).unwrap();
            if let Some(at) = stored.windows(probe.len()).position(|w| w == probe) {
                stored[at + bytes.len() / 2] ^= 0x04;
                std::fs::write(&path, stored).unwrap();
                return;
            }
        }
    }
    panic!("no body file holds the bytes");
}
