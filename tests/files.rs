//! Files larger than one part, end to end: stored as content-addressed chunks plus a manifest,
//! listed and exported whole, sent and fetched, deduplicated, and refused under a name reserved
//! for chunks. Real processes, real stores in temp dirs, servers on 127.0.0.1:0; most files use
//! `--part-size 65536` so that many chunks stay small. Resuming is in `resume.rs`, damaged
//! stores and lying peers in `file_damage.rs`.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::json;
use storage::{BackendKind, DEFAULT_CHUNK_SIZE};

use support::files::{
    PART, PART_SIZE, Store, assert_exported_exactly, assert_fetched, assert_same_file, bytes_moved,
    chunk_name, chunk_names_in, chunk_names_of, listing_as_text, listing_with_chunks, manifest_len,
    with_paths, write_random_file,
};
use support::{
    BACKENDS, expected_listing_in_parts, list_from, names_in, p, random_bytes, run, start_server,
    without_peer_ids, write_files,
};

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

        let sent = run(with_paths(&send, &paths)).ok().tally();
        let all_new = json!({"stored": 5, "already_had": 0, "rejected": 0, "bytes_sent": moved});
        assert_eq!(
            sent, all_new,
            "{backend:?}: chunks and manifests, all counted"
        );

        let listing = expected_listing_in_parts(&files, PART as u64);
        assert_eq!(list_from(&server), listing, "{backend:?}");
        let everything =
            without_peer_ids(run(["list", "--from", &at, "--all", "--json"]).ok().json());
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

        let again = run(with_paths(&send, &paths)).ok().tally();
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
    let sent = run(["send", "--to", &at, "--json", p(&path)]).ok().tally();
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
        let everything =
            without_peer_ids(run(["list", "--from", &at, "--all", "--json"]).ok().json());
        assert_eq!(chunk_names_in(&everything), all_chunks, "{backend:?}");

        // Pushed from the store instead, to a server holding nothing: each chunk goes once.
        let empty = start_server(&dir.path().join("empty.db"), backend, &[]);
        let pushed = store
            .run(&["send", "--to", &empty.at(), "--json"])
            .ok()
            .tally();
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
        let pushed = store.run(&["send", "--to", &at, "--json"]).ok().tally();
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
        let sent = run(with_paths(&send, &paths)).ok().tally();
        assert_eq!((&sent["stored"], &sent["rejected"]), (&json!(1), &json!(0)));
        let out = dir.path().join("out-sent");
        run(["export", "--from", &other.at(), p(&out)]).ok();
        assert_exported_exactly(&out, &files);
        other.stop();
    }
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
    let everything = without_peer_ids(run(["list", "--from", &at, "--all", "--json"]).ok().json());
    assert_eq!(names_in(&everything), only_the_ordinary);
    server.stop();
}
