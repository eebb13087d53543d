//! `serve --export-dir`: the exported file is written and synced before the sender hears
//! `Stored`, so it is there the moment `send` returns; a file that cannot be exported is
//! still stored, and its sender is told so. Real `serve` and `send` processes, a real sled
//! store in a temp dir, sockets on 127.0.0.1.

mod support;

use storage::BackendKind;

use support::{names_in, p, random_bytes, send, start_server, write_files};

/// Every fifth file is larger than one part, so it travels as chunks and a manifest, and its
/// export is assembled from the store when the manifest arrives.
fn file_of(index: u64) -> Vec<u8> {
    let len = if index.is_multiple_of(5) {
        2 * 1024 * 1024 + index as usize
    } else {
        1000 + 37 * index as usize
    };
    random_bytes(index, len)
}

#[test]
fn each_file_is_exported_before_send_returns() {
    const SENDS: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recebidas");
    let server = start_server(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &["--export-dir", p(&out)],
    );
    for index in 0..SENDS {
        let name = format!("part-{index:02}.bin");
        let bytes = file_of(index);
        let path = write_files(&dir.path().join("in"), &[(name.as_str(), bytes.clone())]);
        send(&server, &path, false).ok();
        let exported = out.join(format!("{name}_recebida"));
        let written = std::fs::read(&exported)
            .unwrap_or_else(|err| panic!("{} missing right after send: {err}", exported.display()));
        assert!(written == bytes, "{name} was exported with other bytes");
    }
    let exported = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(
        exported, SENDS as usize,
        "one file per send, no temp files left"
    );
    server.stop();
}

#[test]
fn a_file_that_cannot_be_exported_is_stored_and_its_sender_told() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recebidas");
    std::fs::create_dir_all(&out).unwrap();
    let kept = out.join("notes.txt_recebida");
    std::fs::write(&kept, b"written by someone else").unwrap();
    let path = write_files(
        &dir.path().join("in"),
        &[("notes.txt", b"new notes".to_vec())],
    );
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &["--export-dir", p(&out)]);

    let refused = send(&server, &path, false).fails(1).stdout();
    assert!(refused.contains("rejected notes.txt"), "{refused}");
    assert!(
        refused.contains("is stored, but cannot be exported"),
        "{refused}"
    );
    assert_eq!(std::fs::read(&kept).unwrap(), b"written by someone else");
    let held = support::list_from(&server);
    assert!(names_in(&held).contains("notes.txt"), "{held}");
    let again = send(&server, &path, false).ok().stdout();
    assert!(again.contains("already had notes.txt"), "{again}");
    server.stop();

    // With --force the file someone else wrote is replaced, as with `export --force`.
    std::fs::remove_dir_all(&db).unwrap();
    let server = start_server(
        &db,
        BackendKind::Sled,
        &["--export-dir", p(&out), "--force"],
    );
    send(&server, &path, false).ok();
    assert_eq!(std::fs::read(&kept).unwrap(), b"new notes");
    server.stop();
}
