//! Transfers of files larger than one part killed with SIGKILL mid-way, then resumed: a send
//! and a fetch, each cut by a relay at a byte count, leave no file behind, and the next one
//! moves only the chunks still missing. Real processes, real stores in temp dirs, servers on
//! 127.0.0.1:0.

mod support;

use serde_json::json;
use storage::BackendKind;

use support::files::{
    PART, PART_SIZE, Store, assert_same_file, chunk_names_in, kill_mid_way, manifest_len, spawn,
    wait_for, write_random_file,
};
use support::relay::Relay;
use support::{list_from, p, run, start_server};

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
