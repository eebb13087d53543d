//! Access control as a user meets it: a served store behind a pre-shared key, a read-only
//! server, and a server that lets in only some addresses. Real processes on 127.0.0.1.

mod support;

use std::path::{Path, PathBuf};

use net::message::{ErrorCode, Request, Response};
use storage::BackendKind;
use support::{RawPeer, list_local, names_in, p, random_bytes, run, start_server, write_files};

fn key_file(dir: &Path, name: &str, seed: u64) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, random_bytes(seed, 32)).unwrap();
    path
}

#[test]
fn a_keyed_server_serves_only_peers_that_prove_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key", 1);
    let wrong = key_file(dir.path(), "wrong", 2);
    let files = write_files(
        &dir.path().join("in"),
        &[("secret.bin", random_bytes(3, 5000))],
    );
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &["--key-file", p(&key)]);
    let at = server.at();

    let without = run(["send", "--to", &at, p(&files[0])]).fails(1);
    assert!(
        without.stderr().contains("requires a key"),
        "{}",
        without.stderr()
    );
    let wrong_key = run(["--key-file", p(&wrong), "send", "--to", &at, p(&files[0])]).fails(1);
    assert!(
        wrong_key.stderr().contains("wrong key"),
        "{}",
        wrong_key.stderr()
    );
    let listed = run(["--key-file", p(&wrong), "list", "--from", &at]).fails(1);
    assert!(listed.stdout().is_empty());

    let sent = run(["--key-file", p(&key), "send", "--to", &at, p(&files[0])]).ok();
    assert!(
        sent.stdout().contains("stored secret.bin"),
        "{}",
        sent.stdout()
    );
    let listed = run(["--key-file", p(&key), "list", "--from", &at, "--json"]).ok();
    assert_eq!(names_in(&listed.json()), ["secret.bin".to_owned()].into());
    server.stop();
    assert_eq!(names_in(&list_local(&db)), ["secret.bin".to_owned()].into());
}

/// Before the proof, nothing but the proof is taken: a request is refused and the
/// connection closed, and nothing is read or written.
#[test]
fn a_keyed_server_answers_nothing_before_the_proof() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key", 4);
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Fs, &["--key-file", p(&key)]);

    let mut peer = RawPeer::connect(server.addr());
    peer.send(&support::hello(net::message::PROTOCOL_VERSION), &[]);
    let Response::Challenge { .. } = peer.expect() else {
        panic!("a keyed server challenges first");
    };
    let list = Request::List {
        id: 1,
        after: None,
        limit: 10,
    };
    peer.send(&list, &[]);
    let message = peer.expect_error_then_close(ErrorCode::AuthFailed);
    assert!(message.contains("--key-file"), "{message}");

    let mut forger = RawPeer::connect(server.addr());
    forger.send(&support::hello(net::message::PROTOCOL_VERSION), &[]);
    forger.expect();
    let forged = Request::Prove {
        nonce: [7; 32],
        proof: [9; 32],
    };
    forger.send(&forged, &[]);
    forger.expect_error_then_close(ErrorCode::AuthFailed);
    server.stop();
    assert_eq!(list_local(&db), serde_json::json!([]));
}

/// A client with a key refuses a server that does not prove the same key.
#[test]
fn a_keyed_client_refuses_a_server_without_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "key", 5);
    let other = key_file(dir.path(), "other", 6);
    let open = start_server(&dir.path().join("open.db"), BackendKind::Sled, &[]);
    let refused = run(["--key-file", p(&key), "list", "--from", &open.at()]).fails(1);
    assert!(
        refused.stderr().contains("cannot prove it holds it"),
        "{}",
        refused.stderr()
    );
    let keyed = start_server(
        &dir.path().join("keyed.db"),
        BackendKind::Sled,
        &["--key-file", p(&other)],
    );
    run(["--key-file", p(&key), "list", "--from", &keyed.at()]).fails(1);
}

#[test]
fn a_read_only_server_serves_fetches_and_refuses_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(
        &dir.path().join("in"),
        &[("kept.bin", random_bytes(7, 3000))],
    );
    let db = dir.path().join("served.db");
    run(["--db", p(&db), "import", p(&files[0])]).ok();
    let server = start_server(&db, BackendKind::Sled, &["--read-only"]);
    let at = server.at();

    let pushed_files = write_files(
        &dir.path().join("new"),
        &[("new.bin", random_bytes(8, 100))],
    );
    let pushed = run(["send", "--to", &at, p(&pushed_files[0])]).fails(1);
    assert!(pushed.stdout().contains("read-only"), "{}", pushed.stdout());

    let fetched_db = dir.path().join("fetched.db");
    let fetched = run(["--db", p(&fetched_db), "fetch", "--from", &at, "--json"]).ok();
    assert_eq!(fetched.json()["stored"], 1);
    server.stop();
    assert_eq!(names_in(&list_local(&db)), ["kept.bin".to_owned()].into());
}

#[test]
fn only_allowed_networks_may_connect() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = start_server(
        &dir.path().join("a.db"),
        BackendKind::Sled,
        &["--allow", "10.0.0.0/8", "--allow", "192.168.0.0/16"],
    );
    let refused = run(["list", "--from", &elsewhere.at()]).fails(1);
    assert!(
        refused.stderr().contains("Forbidden"),
        "{}",
        refused.stderr()
    );

    let loopback = start_server(
        &dir.path().join("b.db"),
        BackendKind::Sled,
        &["--allow", "127.0.0.0/8"],
    );
    run(["list", "--from", &loopback.at()]).ok();
}
