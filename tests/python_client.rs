//! An independent client, in Python's standard library alone (`tests/python/client.py`),
//! written from PROTOCOL.md: its certificate comes from `openssl`, it computes IDs by §1.2,
//! and it pushes nothing but talks version 2 through OpenSSL's TLS 1.3 to the real `serve`,
//! which admits it only by the ID Python computed for it.

mod support;

use std::path::Path;
use std::process::Command;

use storage::BackendKind;
use support::{p, random_bytes, run, start_server, write_files};

fn python(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/client.py");
    let output = Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "client.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// An Ed25519 key and its self-signed certificate, as §1.4 makes them.
fn openssl_identity(dir: &Path) -> (String, String) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "36500",
        ])
        .args(["-subj", "/CN=python", "-keyout", p(&key), "-out", p(&cert)])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (p(&cert).to_owned(), p(&key).to_owned())
}

#[test]
fn a_python_client_computes_ids_and_talks_to_a_server_that_trusts_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_identity(dir.path());
    let python_id = python(&["id", &cert]);

    let db = dir.path().join("served.db");
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 100))]);
    run(["--db", p(&db), "import", p(&files[0])]).ok();
    let server_id = run(["--db", p(&db), "id"]).ok().stdout().trim().to_owned();
    let server = start_server(&db, BackendKind::Sled, &["--trust", &python_id]);
    let port = server.addr().port().to_string();
    let said = python(&["talk", "127.0.0.1", &port, &cert, &key, &server_id]);
    assert_eq!(said, "version 2, 1 parts");
    // A Rust client with another key is refused by the same server.
    run(["send", "--to", &server.at(), p(&files[0])]).fails(1);
    server.stop();
}
