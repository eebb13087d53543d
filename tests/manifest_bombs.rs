//! Manifest bombs: manifests whose claimed file is not justified by the chunks they list. The
//! real `serve` (default flags, plus an export directory that would write any stored file out)
//! must refuse them with `Rejected ManifestTooLarge`, store and export nothing of them, and
//! serve an honest push on the same connection right after.

mod support;

use std::time::{Duration, Instant};

use net::message::{ErrorCode, Response};
use storage::{BackendKind, MAX_CHUNK_REPEATS, MAX_MANIFEST_CHUNKS, PartHash, PartKind};

use support::files::{chunk_name, forged_manifest, manifest_of, push};
use support::{
    PATIENCE, RawPeer, list_from, names_in, p, random_bytes, run, start_server, write_files,
};

const MIB: usize = 1024 * 1024;

fn assert_too_large(answer: Response, id: u64, what: &str) -> String {
    match answer {
        Response::Rejected {
            id: answered,
            code: ErrorCode::ManifestTooLarge,
            message,
        } if answered == id => message,
        other => panic!("{what}: expected Rejected ManifestTooLarge, got {other:?}"),
    }
}

#[test]
fn manifest_bombs_are_refused_and_an_honest_push_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().join("exports");
    let server = start_server(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &["--export-dir", p(&exports)],
    );
    let mut peer = RawPeer::greeted(server.addr());

    // One chunk of 1 MiB, then a manifest of just under the default 16 MiB part limit listing
    // it 500,000 times: a file of 488 GiB from 1 MiB of distinct bytes.
    let zeros = vec![0u8; MIB];
    assert_eq!(
        push(&mut peer, 1, &chunk_name(&zeros), &zeros, PartKind::Plain),
        Response::Stored { id: 1 }
    );
    let times = 500_000;
    let bomb = forged_manifest(
        MIB as u64,
        times,
        &vec![PartHash::of(&zeros); times as usize],
    );
    let message = assert_too_large(
        push(&mut peer, 2, "terabyte.bin", &bomb, PartKind::Manifest),
        2,
        "one chunk listed 500,000 times",
    );
    assert!(
        message.contains(&format!("the limit is {MAX_CHUNK_REPEATS}")),
        "{message}"
    );

    // A 94-byte manifest whose header claims more chunks than the bound: refused on the
    // header alone.
    let header_only = forged_manifest(1, MAX_MANIFEST_CHUNKS + 1, &[]);
    assert_too_large(
        push(&mut peer, 3, "many.bin", &header_only, PartKind::Manifest),
        3,
        "a header claiming too many chunks",
    );

    // Honest pushes right after, on the same connection and from the command line.
    let file = random_bytes(70, 2 * MIB + 5);
    for (id, chunk) in (4..).zip(file.chunks(MIB)) {
        assert_eq!(
            push(&mut peer, id, &chunk_name(chunk), chunk, PartKind::Plain),
            Response::Stored { id }
        );
    }
    let manifest = manifest_of(&file, MIB).encode();
    assert_eq!(
        push(&mut peer, 10, "honest.bin", &manifest, PartKind::Manifest),
        Response::Stored { id: 10 }
    );
    let small = write_files(
        &dir.path().join("in"),
        &[("small.txt", b"sent after the bombs".to_vec())],
    );
    run(["send", "--to", &server.at(), p(&small[0])]).ok();

    let listed = names_in(&list_from(&server));
    let expected = ["honest.bin", "small.txt"].map(String::from).into();
    assert_eq!(listed, expected);
    // Exports follow `Stored` events; the file appears whole, renamed into place.
    let exported = exports.join("honest.bin_recebida");
    let deadline = Instant::now() + PATIENCE;
    while !exported.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    assert_eq!(std::fs::read(&exported).unwrap(), file);
    assert!(!exports.join("terabyte.bin_recebida").exists());
    assert!(!exports.join("many.bin_recebida").exists());
}
