//! Files larger than one part that must not come out: a store whose chunk is damaged or gone
//! still exports and verifies the other files, and peers that push forged manifests or chunks
//! under another's name are refused. Real processes, real stores in temp dirs, servers on
//! 127.0.0.1:0; the lying peers are driven frame by frame.

mod support;

use std::collections::BTreeSet;

use net::message::{ErrorCode, Response};
use serde_json::json;
use storage::{BackendKind, Manifest, PartHash, PartKind};

use support::files::{
    PART, PART_SIZE, Store, assert_exported_exactly, chunk_name, flip_a_byte_of_the_body,
    manifest_of, push, with_paths,
};
use support::{
    BACKENDS, RawPeer, list_from, names_in, p, random_bytes, run, start_server, write_files,
};

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
    // The server checks that the chunks are held, not the whole file's hash (that would read
    // every chunk back), so it keeps the manifest; export and fetch must refuse the file.
    let kept = push(&mut peer, 9, "liar.bin", &lie, PartKind::Manifest);
    assert_eq!(kept, Response::Stored { id: 9 });

    let out = dir.path().join("out");
    let exported = run(["export", "--from", &at, p(&out)]);
    assert_exported_exactly(&out, &[]);
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
