//! Damaged parts can be repaired: a byte flipped in a stored chunk or part body (a pack of the
//! sled backend, a body file of the fs backend) is healed by a re-import, by a push from a
//! healthy peer (the server asks for what it cannot read), and by `verify --repair --from`;
//! what no peer holds is reported unhealed. Real processes, real stores in temp dirs, servers
//! on 127.0.0.1:0.

mod support;

use std::path::{Path, PathBuf};

use net::message::Response;
use serde_json::json;
use storage::{BackendKind, PartKind};

use support::files::{
    PART, PART_SIZE, Store, chunk_name, flip_a_byte_of_the_body, push, with_paths,
};
use support::{BACKENDS, RawPeer, p, random_bytes, run, start_server, write_files};

/// The files of every test: two chunked files and a part whose body sled shares (past
/// `INLINE_MAX`).
fn files() -> [(&'static str, Vec<u8>); 3] {
    [
        ("intact.bin", random_bytes(80, 3 * PART + 5)),
        ("plain.bin", random_bytes(81, 40_000)),
        ("victim.bin", random_bytes(82, 4 * PART + 1000)),
    ]
}

/// A store of `backend` holding `files`, imported from `dir/in`; returns it and the paths.
fn store_of(
    dir: &Path,
    name: &str,
    backend: BackendKind,
    files: &[(&str, Vec<u8>)],
) -> (Store, Vec<PathBuf>) {
    let paths = write_files(&dir.join("in").join(name), files);
    let store = Store::new(dir, name, backend);
    store
        .run(&with_paths(&["import", "--part-size", PART_SIZE], &paths))
        .ok();
    (store, paths)
}

/// Flips a byte in chunks 1 and 3 of victim.bin and in plain.bin.
fn damage(store: &Store, files: &[(&str, Vec<u8>)]) {
    let victim = &files[2].1;
    flip_a_byte_of_the_body(&store.db, &victim[PART..2 * PART]);
    flip_a_byte_of_the_body(&store.db, &victim[3 * PART..4 * PART]);
    flip_a_byte_of_the_body(&store.db, &files[1].1);
}

/// `verify --json` of `store` finds `corrupt` (names) and the rest intact.
fn assert_verified(store: &Store, corrupt: &[&str]) {
    let verified = store.run(&["verify", "--json"]);
    let code = i32::from(!corrupt.is_empty());
    let verified = verified.fails(code).json();
    let names: Vec<&str> = verified["corrupt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, corrupt, "{:?}: {verified}", store.backend);
    assert_eq!(verified["intact"], 3 - corrupt.len(), "{verified}");
}

#[test]
fn a_re_import_heals_damage_a_verify_found_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files();
        let (store, paths) = store_of(dir.path(), "local.db", backend, &files);
        damage(&store, &files);
        assert_verified(&store, &["plain.bin", "victim.bin"]);

        let imported = store.run(&with_paths(&["import", "--part-size", PART_SIZE], &paths));
        let stdout = imported.ok().stdout();
        let expected = "already had intact.bin\nrepaired plain.bin\nrepaired victim.bin\n";
        assert!(stdout.starts_with(expected), "{backend:?}: {stdout}");
        assert_verified(&store, &[]);
    }
}

/// A fetch from a healthy peer does not take a damaged part or file for one it has: it moves
/// exactly the damaged chunks and part, and says what it repaired.
#[test]
fn a_fetch_from_a_healthy_peer_heals_damage_a_verify_found_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files();
        let (store, _) = store_of(dir.path(), "local.db", backend, &files);
        let (healthy, _) = store_of(dir.path(), "healthy.db", backend, &files);
        damage(&store, &files);
        assert_verified(&store, &["plain.bin", "victim.bin"]);
        let server = start_server(&healthy.db, backend, &[]);

        let fetched = store.run(&["fetch", "--from", &server.at()]).ok().stdout();
        let expected = "already had intact.bin\nrepaired plain.bin\nrepaired victim.bin\n";
        assert!(fetched.starts_with(expected), "{backend:?}: {fetched}");
        let again = store.run(&["fetch", "--from", &server.at(), "--json"]);
        let again = again.ok().json();
        assert_eq!(again["already_had"], 3, "{backend:?}: {again}");
        assert_eq!(again["bytes_received"], 0, "{again}");
        server.stop();
        assert_verified(&store, &[]);
    }
}

/// The server learns of the damage when a peer's export reads it; a healthy peer's send then
/// moves exactly the damaged chunks and part (the server answered `Want` for them, `Have` for
/// the rest) and the store verifies clean.
#[test]
fn a_push_from_a_healthy_peer_heals_damage_the_server_read_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files();
        let (store, paths) = store_of(dir.path(), "served.db", backend, &files);
        damage(&store, &files);
        let server = start_server(&store.db, backend, &[]);
        let out = dir.path().join("out");
        run(["export", "--from", &server.at(), p(&out)]).fails(1);

        let send = [
            "send",
            "--to",
            &server.at(),
            "--part-size",
            PART_SIZE,
            "--json",
        ];
        let sent = run(with_paths(&send, &paths)).ok().json();
        assert_eq!(
            sent["bytes_sent"],
            2 * PART + files[1].1.len(),
            "{backend:?}: {sent}"
        );
        assert_eq!(sent["rejected"], 0, "{sent}");
        server.stop();
        assert_verified(&store, &[]);
    }
}

/// A chunk whose body file is gone is not held: the server answers its offer `Want` without
/// any read having found it missing, and the bytes pushed make the file whole again.
#[test]
fn an_offer_of_a_chunk_whose_body_is_gone_is_wanted() {
    let dir = tempfile::tempdir().unwrap();
    let files = files();
    let (store, _) = store_of(dir.path(), "served.db", BackendKind::Fs, &files);
    let chunk = &files[2].1[2 * PART..3 * PART];
    let hash = storage::PartHash::of(chunk);
    std::fs::remove_file(store.db.join("bodies").join(hash.to_hex())).unwrap();
    let server = start_server(&store.db, BackendKind::Fs, &[]);

    let mut peer = RawPeer::greeted(server.addr());
    let intact = &files[2].1[..PART];
    let held = push(&mut peer, 1, &chunk_name(intact), intact, PartKind::Plain);
    assert_eq!(held, Response::Have { id: 1 });
    let healed = push(&mut peer, 2, &chunk_name(chunk), chunk, PartKind::Plain);
    assert_eq!(healed, Response::Stored { id: 2 });
    server.stop();
    assert_verified(&store, &[]);
}

#[test]
fn verify_repair_heals_from_a_healthy_peer_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files();
        let (store, _) = store_of(dir.path(), "local.db", backend, &files);
        let (healthy, _) = store_of(dir.path(), "healthy.db", backend, &files);
        damage(&store, &files);
        let server = start_server(&healthy.db, backend, &[]);

        let repair = ["verify", "--repair", "--from", &server.at(), "--json"];
        let repaired = store.run(&repair).ok().json();
        assert_eq!(
            repaired["repaired"],
            json!(["plain.bin", "victim.bin"]),
            "{backend:?}: {repaired}"
        );
        assert_eq!(repaired["unhealed"], json!([]), "{repaired}");
        assert_eq!(
            repaired["corrupt"].as_array().unwrap().len(),
            2,
            "{repaired}"
        );
        assert_verified(&store, &[]);
        let again = store
            .run(&["verify", "--repair", "--from", &server.at()])
            .ok();
        let bytes: usize = files.iter().map(|(_, bytes)| bytes.len()).sum();
        let clean = format!("3 intact ({bytes} bytes), 0 corrupt\n0 repaired, 0 unhealed\n");
        assert_eq!(again.stdout(), clean);
        server.stop();
    }
}

/// A file no peer holds stays damaged and is reported unhealed with why (exit 1), while what a
/// peer holds is healed in the same run; with no peer reachable, everything is left unhealed.
#[test]
fn damage_no_peer_can_heal_is_reported_unhealed_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = files();
        let mut local = files.to_vec();
        local.push(("only-here.bin", random_bytes(83, 2 * PART + 7)));
        let (store, _) = store_of(dir.path(), "local.db", backend, &local);
        let (healthy, _) = store_of(dir.path(), "healthy.db", backend, &files);
        damage(&store, &files);
        flip_a_byte_of_the_body(&store.db, &local[3].1[..PART]);
        let server = start_server(&healthy.db, backend, &[]);

        let nobody = store.run(&["verify", "--repair", "--from", "127.0.0.1:1"]);
        let stdout = nobody.fails(1).stdout();
        assert!(stdout.contains("unhealed victim.bin: "), "{stdout}");
        assert!(stdout.contains("no peer could be reached"), "{stdout}");
        assert!(
            stdout.contains(", 3 corrupt\n") && stdout.ends_with("\n0 repaired, 3 unhealed\n"),
            "{stdout}"
        );

        let at = server.at();
        let repaired = store
            .run(&["verify", "--repair", "--from", &at])
            .fails(1)
            .stdout();
        let unhealed = repaired
            .lines()
            .find(|line| line.starts_with("unhealed only-here.bin: "))
            .unwrap_or_else(|| panic!("{backend:?}: {repaired}"));
        let chunk = chunk_name(&local[3].1[..PART]);
        assert!(
            unhealed.ends_with(&format!("no good copy of {chunk}: no peer holds it")),
            "{unhealed}"
        );
        assert!(repaired.contains("repaired victim.bin\n"), "{repaired}");
        assert!(
            repaired.contains(", 3 corrupt\n") && repaired.ends_with("\n2 repaired, 1 unhealed\n"),
            "{repaired}"
        );
        let verified = store.run(&["verify", "--json"]).fails(1).json();
        assert_eq!(
            verified["corrupt"][0]["name"], "only-here.bin",
            "{verified}"
        );
        server.stop();
    }
}

#[test]
fn repair_needs_a_peer_and_a_peer_needs_repair() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("any.db");
    run(["--db", p(&db), "verify", "--repair"]).fails(2);
    run(["--db", p(&db), "verify", "--from", "127.0.0.1:1"]).fails(2);
}
