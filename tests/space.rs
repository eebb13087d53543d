//! Removed files give their space back: `remove` releases the chunks no other file lists, and
//! `gc` removes the chunks an interrupted transfer left behind. Real stores in temp dirs, the
//! real binary, disk usage as the blocks the store's files take.

mod support;

use std::path::Path;

use net::message::Response;
use storage::{BackendKind, PartKind, disk_usage};
use support::files::{Store, chunk_name, manifest_of, push};
use support::{RawPeer, p, random_bytes, start_server};

const MIB: usize = 1 << 20;

/// What the store takes on disk, leaving out the space the sled backend keeps free so that it
/// opens on a full disk.
fn usage_mib(db: &Path, backend: BackendKind) -> f64 {
    let kept = if backend == BackendKind::Sled {
        storage::RESERVE
    } else {
        0
    };
    (disk_usage(db).unwrap() - kept) as f64 / MIB as f64
}

/// A 60 MiB file and a 15 MiB one sharing its first 10 MiB: after removing the large one and
/// collecting garbage, the store takes about the 15 MiB.
fn removing_a_file_frees_what_only_it_used(backend: BackendKind) {
    let dir = tempfile::tempdir().unwrap();
    let big = random_bytes(1, 60 * MIB);
    let mut small = big[..10 * MIB].to_vec();
    small.extend(random_bytes(2, 5 * MIB));
    let (big_path, small_path) = (dir.path().join("big.bin"), dir.path().join("small.bin"));
    std::fs::write(&big_path, &big).unwrap();
    std::fs::write(&small_path, &small).unwrap();
    let store = Store::new(dir.path(), "db", backend);
    store.run(&["import", p(&big_path), p(&small_path)]).ok();
    let full = usage_mib(&store.db, backend);

    // Chunks of a transfer that never sent its manifest.
    let server = start_server(&store.db, backend, &[]);
    let mut peer = RawPeer::connect(server.addr());
    peer.send(&support::hello(net::message::PROTOCOL_VERSION), &[]);
    peer.expect();
    for i in 0..3 {
        let chunk = random_bytes(10 + i, MIB);
        let name = chunk_name(&chunk);
        let answer = push(&mut peer, i, &name, &chunk, PartKind::Plain);
        assert!(matches!(answer, Response::Stored { .. }), "{answer:?}");
    }
    drop(peer);
    server.stop();
    let dry = store.run(&["gc", "--dry-run"]).ok().stdout();
    assert!(
        dry.contains("would remove 3 chunks (3145728 bytes)"),
        "{dry}"
    );
    let removed = store.run(&["remove", "big.bin"]).ok().stdout();
    assert_eq!(
        removed,
        "removed big.bin and 50 chunks no other file uses\n"
    );
    let collected = store.run(&["gc"]).ok().stdout();
    assert!(
        collected.contains("removed 3 chunks (3145728 bytes)"),
        "{collected}"
    );
    assert!(
        store
            .run(&["gc", "--dry-run"])
            .ok()
            .stdout()
            .contains("would remove 0 chunks")
    );

    let left = usage_mib(&store.db, backend);
    eprintln!("{backend}: {full:.1} MiB with both files, {left:.1} MiB after remove and gc");
    assert!(full >= 65.0, "{full:.1} MiB for 65 MiB of distinct chunks");
    assert!(
        (15.0..17.0).contains(&left),
        "{left:.1} MiB left for the 15 MiB file"
    );
    let out = dir.path().join("out");
    store.run(&["export", p(&out)]).ok();
    assert!(std::fs::read(out.join("small.bin_recebida")).unwrap() == small);
    store.run(&["verify"]).ok();
}

#[test]
fn sled_removing_a_file_frees_what_only_it_used() {
    removing_a_file_frees_what_only_it_used(BackendKind::Sled);
}

#[test]
fn fs_removing_a_file_frees_what_only_it_used() {
    removing_a_file_frees_what_only_it_used(BackendKind::Fs);
}

/// gc never guesses: with a damaged manifest, the chunks it lists are unknown, so nothing is
/// removed.
#[test]
fn gc_refuses_while_a_manifest_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = random_bytes(5, 3 * MIB);
    std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
    let store = Store::new(dir.path(), "db", BackendKind::Fs);
    store.run(&["import", p(&dir.path().join("f.bin"))]).ok();
    let manifest = manifest_of(&bytes, MIB).encode();
    support::files::flip_a_byte_of_the_body(&store.db, &manifest);
    let refused = store.run(&["gc"]).fails(1).stderr();
    assert!(refused.contains("f.bin"), "{refused}");
    let listing = store.run(&["list", "--all", "--json"]).ok().json();
    assert_eq!(listing.as_array().unwrap().len(), 4, "{listing}");
}

/// A file's chunks are released only when every other file's manifest can be read: one that
/// cannot may list them, so removing the file keeps them (and gc refuses) until it is repaired.
#[test]
fn removing_a_file_keeps_chunks_a_damaged_manifest_may_list() {
    let dir = tempfile::tempdir().unwrap();
    let shared = random_bytes(6, MIB);
    let first = [shared.clone(), random_bytes(7, MIB)].concat();
    let second = [shared.clone(), random_bytes(8, MIB)].concat();
    let (first_path, second_path) = (dir.path().join("first.bin"), dir.path().join("second.bin"));
    std::fs::write(&first_path, &first).unwrap();
    std::fs::write(&second_path, &second).unwrap();
    for backend in support::BACKENDS {
        let store = Store::new(dir.path(), &format!("{backend}.db"), backend);
        store.run(&["import", p(&first_path), p(&second_path)]).ok();
        let manifest = manifest_of(&second, MIB).encode();
        support::files::flip_a_byte_of_the_body(&store.db, &manifest);

        let removed = store.run(&["remove", "first.bin"]).ok().stdout();
        assert!(
            removed.contains("keeping its chunks"),
            "{backend}: {removed}"
        );
        let chunk = chunk_name(&shared);
        let kept = store.run(&["remove", &chunk]).fails(1).stdout();
        assert!(kept.contains("second.bin"), "{backend}: {kept}");
        let listing = store.run(&["list", "--all", "--json"]).ok().json();
        assert_eq!(listing.as_array().unwrap().len(), 4, "{backend}: {listing}");
    }
}
