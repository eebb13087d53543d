//! Peers talking over real sockets: `serve` runs as a real process on 127.0.0.1:0 with a real
//! store in a temp dir, and is driven by the CLI or, for what no honest client sends, by hand,
//! frame by frame.

mod support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use net::frame::{LEN_PREFIX, MAX_REQUEST_HEADER, encode_request, encode_response};
use net::message::{ErrorCode, PROTOCOL_VERSION, Request, Response, WireEntry};
use storage::{BackendKind, PartHash, PartKind};

use support::{
    BACKENDS, RawPeer, Server, body, expected_listing, expected_listing_in_parts, hello, list_from,
    list_local, names_in, offer, p, random_bytes, run, send, start_server, total_len, write_files,
};

// ---- The CLI, end to end ----

#[test]
fn the_demo_runs_end_to_end_and_keeps_earlier_output_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("recebidas");
    let stdout = run(["demo", p(&out)]).ok().stdout();
    for (name, size) in [("part2.txt", 3420), ("part3.txt", 5120)] {
        let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
        assert_eq!(written.len(), size, "{name}");
        let stored = format!("(push): stored {name}\n");
        assert!(stdout.contains(&stored), "{stdout}");
        let already = format!("(push again): already had {name}");
        assert!(stdout.contains(&already), "{stdout}");
    }
    let second_push = "(push again): 0 stored, 2 already had, 0 bytes sent";
    assert!(stdout.contains(second_push), "{stdout}");

    let part2 = out.join("part2.txt_recebida");
    std::fs::write(&part2, b"edited by hand").unwrap();
    let refused = run(["demo", p(&out)]).fails(1);
    assert!(refused.stderr().contains("--force"), "{}", refused.stderr());
    assert_eq!(std::fs::read(&part2).unwrap(), b"edited by hand");

    run(["demo", p(&out), "--force"]).ok();
    assert_eq!(std::fs::read(&part2).unwrap().len(), 3420);
}

#[test]
fn send_list_fetch_and_export_round_trip_binary_parts_on_both_backends() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("empty", Vec::new()),
            ("one byte", vec![0x00]),
            ("relatório de março – ünïcødé.bin", random_bytes(1, 4_000)),
            ("sixteen-mebibytes.bin", random_bytes(2, 16 * 1024 * 1024)),
        ];
        let paths = write_files(&dir.path().join("in"), &files);
        let served_db = dir.path().join("served.db");
        let server = start_server(&served_db, backend, &[]);

        let sent = send(&server, &paths, false).ok().stdout();
        for (name, _) in &files {
            assert!(sent.contains(&format!("stored {name}\n")), "{sent}");
        }
        // The 16 MiB file is past the default 1 MiB part size: it travels as 16 chunks and a
        // manifest of 94 bytes plus 32 per chunk hash, and those 606 bytes move too.
        let manifest = 94 + 16 * 32;
        let bytes = total_len(&files) + manifest;
        let summary = format!("4 stored, 0 already had, 0 rejected, {bytes} bytes sent\n");
        assert!(sent.ends_with(&summary), "{sent}");

        let remote = list_from(&server);
        assert_eq!(remote, expected_listing(&files), "{backend:?}");

        let fetched_db = dir.path().join("fetched.db");
        let at = server.at();
        let fetch = ["--db", p(&fetched_db), "--backend", backend.name()];
        let fetched = run(fetch.iter().chain(&["fetch", "--from", &at, "--json"]))
            .ok()
            .json();
        let expected = [
            ("stored", 4),
            ("already_had", 0),
            ("rejected", 0),
            ("bytes_received", bytes),
        ];
        for (key, value) in expected {
            assert_eq!(fetched[key], value, "{backend:?}: {fetched}");
        }

        let out = dir.path().join("out");
        let exported = run(["export", "--from", &at, p(&out)]).ok();
        assert!(exported.stdout().ends_with("4 exported, 0 failed\n"));
        for (name, bytes) in &files {
            let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
            assert!(
                written == *bytes,
                "{backend:?}: {name} exported other bytes"
            );
        }
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), files.len());

        server.stop();
        assert_eq!(list_local(&served_db), remote, "{backend:?}");
        assert_eq!(list_local(&fetched_db), remote, "{backend:?}");
    }
}

#[test]
fn sending_again_moves_no_bytes() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            ("a.bin", random_bytes(3, 10)),
            ("b.bin", random_bytes(4, 100_000)),
            ("c.bin", Vec::new()),
        ];
        let paths = write_files(&dir.path().join("in"), &files);
        let server = start_server(&dir.path().join("served.db"), backend, &[]);
        let first = send(&server, &paths, true).ok().json();
        assert_eq!(first["stored"], 3);
        assert_eq!(first["bytes_sent"], total_len(&files));

        let mut again = send(&server, &paths, true).ok().json();
        let peer_id = again.as_object_mut().unwrap().remove("peer_id").unwrap();
        assert_eq!(peer_id.as_str().map(str::len), Some(35));
        let nothing_moved = serde_json::json!({
            "stored": 0, "already_had": 3, "rejected": 0, "bytes_sent": 0,
        });
        assert_eq!(again, nothing_moved, "{backend:?}");

        // The same parts pushed from a store, whose bytes are read only if wanted.
        let local = dir.path().join("local.db");
        let import = ["--db", p(&local), "import"];
        run(import.into_iter().chain(paths.iter().map(|path| p(path)))).ok();
        let from_store = run(["--db", p(&local), "send", "--to", &server.at(), "--json"]);
        let mut from_store = from_store.ok().json();
        assert_eq!(
            from_store.as_object_mut().unwrap().remove("peer_id"),
            Some(peer_id)
        );
        assert_eq!(from_store, nothing_moved, "{backend:?}");
        server.stop();
    }
}

/// More parts than one `Page` holds (2048), and than `send --db` lists at once (4096), with a
/// file's manifest listed first and its chunks after it: every listing, push and fetch must
/// see them all, and the push must offer the manifest only after the chunks.
#[test]
fn a_store_longer_than_one_page_is_listed_pushed_and_fetched_whole() {
    const PARTS: usize = 4200;
    const PART_SIZE: u64 = 16;
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..PARTS).map(|i| format!("p-{i:04}")).collect();
    let mut files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|name| (name.as_str(), name.clone().into_bytes()))
        .collect();
    files.push(("a-file.bin", (0..100).collect()));
    let paths = write_files(&dir.path().join("in"), &files);
    let local = dir.path().join("local.db");
    let import = ["--db", p(&local), "import", "--part-size", "16"];
    run(import.into_iter().chain(paths.iter().map(|path| p(path)))).ok();

    let server = start_server(&dir.path().join("served.db"), BackendKind::Fs, &[]);
    let at = server.at();
    let pushed = run(["--db", p(&local), "send", "--to", &at, "--json"]);
    assert_eq!(pushed.ok().json()["stored"], PARTS + 1);
    assert_eq!(
        list_from(&server),
        expected_listing_in_parts(&files, PART_SIZE)
    );
    let fetched_db = dir.path().join("fetched.db");
    let fetched = run(["--db", p(&fetched_db), "fetch", "--from", &at, "--json"])
        .ok()
        .json();
    assert_eq!(fetched["stored"], PARTS + 1);
    assert_eq!(fetched["rejected"], 0);
    server.stop();
}

#[test]
fn an_unreachable_peer_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_files(dir.path(), &[("f", b"f".to_vec())]).remove(0);
    let closed_port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let failed = run(["send", "--to", &closed_port, p(&path)]).fails(1);
    assert!(
        failed.stderr().contains(&closed_port),
        "{}",
        failed.stderr()
    );
    run(["list", "--from", &closed_port]).fails(1);
}

#[test]
fn serve_export_dir_writes_each_received_part() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("part2.txt", b"texto recebido\n".repeat(100)),
        ("part3.bin", random_bytes(5, 50_000)),
        ("chunked.bin", random_bytes(6, 3 * 1024 * 1024 + 1)),
    ];
    let paths = write_files(&dir.path().join("in"), &files);
    let out = dir.path().join("recebidas");
    let served_db = dir.path().join("served.db");
    let server = start_server(&served_db, BackendKind::Sled, &["--export-dir", p(&out)]);
    send(&server, &paths, false).ok();
    server.stop();
    for (name, bytes) in &files {
        let written = std::fs::read(out.join(format!("{name}_recebida"))).unwrap();
        assert!(written == *bytes, "{name} was exported with other bytes");
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), files.len());
}

#[test]
fn a_served_store_is_refused_to_local_commands_with_a_pointer_to_from() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let file = write_files(&dir.path().join("in"), &[("f", b"f".to_vec())]).remove(0);
    let out = dir.path().join("out");
    let server = start_server(&db, BackendKind::Sled, &[]);
    let holder = format!("in use by process {}", server.pid());
    for command in [
        vec!["list"],
        vec!["verify"],
        vec!["export", p(&out)],
        vec!["import", p(&file)],
    ] {
        let refused = run(["--db", p(&db)].into_iter().chain(command.clone())).fails(1);
        let stderr = refused.stderr();
        assert!(stderr.contains(&holder), "{command:?}: {stderr}");
        assert!(stderr.contains("--from"), "{command:?}: {stderr}");
    }
    server.stop();
    run(["--db", p(&db), "list"]).ok();
}

/// Each side names the other by the ID that other's `p2p-store id` prints: `send`, `list` and
/// `fetch` in their JSON, and `serve` in its log of every connection, its pushes included.
#[test]
fn every_command_names_the_peer_by_the_id_it_prints() {
    let dir = tempfile::tempdir().unwrap();
    let id_of = |db: &std::path::Path| run(["--db", p(db), "id"]).ok().stdout().trim().to_owned();
    let served = dir.path().join("served.db");
    let (sender, fetcher) = (dir.path().join("sender.db"), dir.path().join("fetcher.db"));
    let (server_id, sender_id, fetcher_id) = (id_of(&served), id_of(&sender), id_of(&fetcher));
    let server = start_server(&served, BackendKind::Sled, &["-vv"]);
    let at = server.at();
    let paths = write_files(
        &dir.path().join("in"),
        &[("a.bin", random_bytes(5, 70_000))],
    );

    let sent = run([
        "--db",
        p(&sender),
        "send",
        "--to",
        &at,
        "--json",
        p(&paths[0]),
    ]);
    assert_eq!(sent.ok().json()["peer_id"], server_id.as_str());
    let listed = run(["list", "--from", &at, "--json"]).ok().json();
    let entries = listed.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["peer_id"], server_id.as_str(), "{listed}");
    let local = run(["--db", p(&sender), "list", "--json"]).ok().json();
    assert!(
        local[0].get("peer_id").is_none(),
        "a local listing has no peer: {local}"
    );
    let fetched = run(["--db", p(&fetcher), "fetch", "--from", &at, "--json"]);
    let fetched = fetched.ok().json();
    assert_eq!(
        fetched["peer_ids"],
        serde_json::json!({ &at: server_id }),
        "{fetched}"
    );
    assert_eq!(
        fetched["peers"],
        serde_json::json!({ &at: 70_000 }),
        "{fetched}"
    );

    let closed_by_fetcher = |line: &str| line.contains("closed") && line.contains(&fetcher_id);
    let log = server.log_with(closed_by_fetcher);
    assert!(
        log.lines()
            .any(|line| line.contains("handshake") && line.contains(&sender_id)),
        "{log}"
    );
    let stored = log
        .lines()
        .find(|line| line.contains("stored") && line.contains("a.bin"));
    assert!(
        stored.is_some_and(|line| line.contains(&sender_id)),
        "{log}"
    );
    assert!(log.lines().any(closed_by_fetcher), "{log}");
    server.stop();
}

// ---- Durability ----

/// Every `Stored` is a promise: a server killed right after keeping it still has the parts.
#[test]
fn parts_acknowledged_before_a_kill_9_survive_it() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..50).map(|i| format!("part-{i:02}")).collect();
        let files: Vec<(&str, Vec<u8>)> = (0..50)
            .map(|i| {
                // Every fifth part is past sled's INLINE_MAX, so both ways of keeping a body
                // (after its own record, shared) are covered.
                let len = if i % 5 == 0 { 40_000 + i } else { i * 37 };
                (names[i].as_str(), random_bytes(100 + i as u64, len))
            })
            .collect();
        let paths = write_files(&dir.path().join("in"), &files);
        let db = dir.path().join("served.db");

        let server = start_server(&db, backend, &[]);
        let sent = send(&server, &paths, true).ok().json();
        assert_eq!(sent["stored"], 50, "{backend:?}");
        server.kill();

        let server = start_server(&db, backend, &[]);
        assert_eq!(list_from(&server), expected_listing(&files), "{backend:?}");
        let fetched_db = dir.path().join("fetched.db");
        let at = server.at();
        let fetched = run(["--db", p(&fetched_db), "fetch", "--from", &at, "--json"])
            .ok()
            .json();
        assert_eq!(fetched["stored"], 50, "{backend:?}");
        assert_eq!(fetched["rejected"], 0, "{backend:?}");
        assert_eq!(fetched["bytes_received"], total_len(&files));
        server.stop();
    }
}

// ---- Many peers ----

/// Every phase is done on all 500 connections before the next starts, so all 500 are open
/// and mid-conversation at once.
#[test]
fn five_hundred_clients_at_once_each_store_a_part() {
    const CLIENTS: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    // All 500, and the listing at the end, come from 127.0.0.1: the per-address cap is raised
    // to let them in.
    let cap = (CLIENTS + 1).to_string();
    let server = start_server(
        &db,
        BackendKind::Sled,
        &["--max-connections-per-address", &cap],
    );
    let names: Vec<String> = (0..CLIENTS).map(|i| format!("client-{i:03}")).collect();
    let files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .map(|name| (name.as_str(), format!("the part of {name}").into_bytes()))
        .collect();

    let mut peers: Vec<RawPeer> = files
        .iter()
        .map(|_| RawPeer::connect(server.addr()))
        .collect();
    for peer in &mut peers {
        peer.send(&hello(PROTOCOL_VERSION), &[]);
    }
    for peer in &mut peers {
        let welcome = peer.expect();
        assert!(matches!(welcome, Response::Welcome { .. }), "{welcome:?}");
    }
    for (peer, (name, bytes)) in peers.iter_mut().zip(&files) {
        peer.send(&offer(7, name, bytes), &[]);
    }
    for peer in &mut peers {
        assert_eq!(peer.expect(), Response::Want { id: 7 });
    }
    for (peer, (_, bytes)) in peers.iter_mut().zip(&files) {
        peer.send(&body(7, bytes), bytes);
    }
    for peer in &mut peers {
        assert_eq!(peer.expect(), Response::Stored { id: 7 });
    }

    let expected = expected_listing(&files);
    assert_eq!(list_from(&server), expected);
    server.stop();
    for peer in &mut peers {
        peer.expect_error_then_close(ErrorCode::ShuttingDown);
    }
    assert_eq!(list_local(&db), expected);
}

#[test]
fn a_full_server_says_busy_and_keeps_serving_the_peers_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let served_db = dir.path().join("served.db");
    let server = start_server(&served_db, BackendKind::Sled, &["--max-connections", "2"]);
    let mut held = [
        RawPeer::greeted(server.addr()),
        RawPeer::greeted(server.addr()),
    ];
    RawPeer::connect(server.addr()).expect_error_then_close(ErrorCode::Busy);
    for (id, peer) in (1..).zip(&mut held) {
        peer.send(&offer(id, &format!("held-{id}"), b"still served"), &[]);
        assert_eq!(peer.expect(), Response::Want { id });
        peer.send(&body(id, b"still served"), b"still served");
        assert_eq!(peer.expect(), Response::Stored { id });
    }
    drop(held);
    wait_for_a_free_slot(&server);
    let path = write_files(dir.path(), &[("after", b"after".to_vec())]).remove(0);
    send(&server, &[&path], false).ok();
    let expected: BTreeSet<String> = ["after", "held-1", "held-2"].map(String::from).into();
    assert_eq!(names_in(&list_from(&server)), expected);
    server.stop();
}

/// A peer that hangs up while the server waits for its body, or halfway through sending it,
/// can never finish: its slot must not stay taken until the idle timeout.
#[test]
fn a_peer_that_hangs_up_mid_offer_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let served_db = dir.path().join("served.db");
    let server = start_server(&served_db, BackendKind::Sled, &["--max-connections", "1"]);
    let bytes = random_bytes(8, 10_000);
    for sent_before_hanging_up in [0, bytes.len() / 2] {
        let mut quitter = RawPeer::greeted(server.addr());
        quitter.send(&offer(1, "never-stored", &bytes), &[]);
        assert_eq!(quitter.expect(), Response::Want { id: 1 });
        if sent_before_hanging_up > 0 {
            quitter.send(&body(1, &bytes), &bytes[..sent_before_hanging_up]);
        }
        drop(quitter);
        wait_for_a_free_slot(&server);
    }
    assert_eq!(list_from(&server), serde_json::json!([]));
    server.stop();
}

/// Connects until the server says Welcome rather than Busy. The server sees a close only
/// some time after it happens, so this polls, boundedly.
fn wait_for_a_free_slot(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut peer = RawPeer::connect(server.addr());
        peer.send(&hello(PROTOCOL_VERSION), &[]);
        match peer.receive() {
            Some(Response::Welcome { .. }) => return,
            Some(Response::Error {
                code: ErrorCode::Busy,
                ..
            })
            | None => {}
            Some(other) => panic!("expected Welcome or Busy, got {other:?}"),
        }
        let waited = Instant::now() < deadline;
        assert!(waited, "no connection slot freed up within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_peer_that_stops_sending_still_gets_its_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let mut peer = RawPeer::connect(server.addr());
    peer.send(&hello(PROTOCOL_VERSION), &[]);
    peer.send(&list(1), &[]);
    peer.finish_sending();
    assert!(matches!(peer.expect(), Response::Welcome { .. }));
    let empty = Response::Page {
        id: 1,
        parts: Vec::new(),
        next: None,
    };
    assert_eq!(peer.expect(), empty);
    peer.expect_closed();
    server.stop();
}

/// The idle timeout is for a silent peer; a large body on a slow link, arriving in 64 KiB
/// steps (what the server counts as a sign of life), is not silent however long it takes.
/// The pauses are the scenario, not synchronization.
#[test]
fn a_body_still_arriving_is_not_idle() {
    const STEP: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let served_db = dir.path().join("served.db");
    let server = start_server(&served_db, BackendKind::Sled, &["--idle-timeout", "2"]);
    let bytes = random_bytes(7, 8 * STEP);
    let mut peer = RawPeer::greeted(server.addr());
    peer.send(&offer(1, "slow.bin", &bytes), &[]);
    assert_eq!(peer.expect(), Response::Want { id: 1 });
    peer.send(&body(1, &bytes), &[]);
    for step in bytes.chunks(STEP) {
        std::thread::sleep(Duration::from_millis(500));
        peer.send_raw(step);
    }
    let answer = peer.expect();
    assert_eq!(answer, Response::Stored { id: 1 }, "{}", server.log());
    server.stop();
}

// ---- Bad peers ----

/// One way of breaking the protocol, played on connections of its own, with the answers it
/// must get.
type BadPeer = fn(SocketAddr);

const BAD_PEERS: [(&str, BadPeer); 16] = [
    ("random garbage", random_garbage),
    ("a 0xFFFFFFFF length prefix", length_prefix_past_every_limit),
    (
        "a string declared 1 TiB long",
        string_declared_one_tebibyte_long,
    ),
    ("a byte after a frame's message", byte_after_the_message),
    (
        "a body that does not match its hash",
        body_not_matching_its_hash,
    ),
    ("offers with bad names", offers_with_bad_names),
    ("a Hello for version 99", unsupported_version),
    ("a Hello with another magic", another_magic),
    ("a request before Hello", request_before_hello),
    ("a second Hello", second_hello),
    ("a Body for an id never offered", body_never_offered),
    ("a Body of another size than offered", body_of_another_size),
    ("an offer of u64::MAX bytes", offer_past_the_size_limit),
    ("a request id reused in flight", request_id_reused_in_flight),
    ("more requests in flight than allowed", too_many_requests),
    ("silence until the handshake timeout", silence),
];

/// One server faces every bad peer in turn; after each, an honest `send` still works and the
/// store holds exactly the honest parts.
#[test]
fn bad_peers_cost_only_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &["--handshake-timeout", "1"]);
    let mut honest = BTreeSet::new();
    let mut still_served = |after: &str| {
        let name = format!("honest-{:02}", honest.len());
        let path = dir.path().join(&name);
        std::fs::write(&path, format!("sent after {after}")).unwrap();
        let sent = send(&server, &[&path], false);
        let log = server.log();
        assert_eq!(sent.code(), 0, "after {after}: {}\n{log}", sent.stdout());
        honest.insert(name);
        assert_eq!(names_in(&list_from(&server)), honest, "after {after}");
    };
    still_served("nothing");
    for (what, bad_peer) in BAD_PEERS {
        bad_peer(server.addr());
        still_served(what);
    }
    server.stop();
    assert_eq!(names_in(&list_local(&db)), honest);
    let verified = run(["--db", p(&db), "verify", "--json"]).ok().json();
    assert_eq!(verified["intact"], honest.len(), "{verified}");
}

/// A manifest under a chunk's name would be stored and then hidden by listings and skipped by
/// exports, so it is refused at the offer; the connection goes on.
#[test]
fn a_manifest_offered_under_a_chunk_name_is_refused_at_the_offer() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Fs, &[]);
    let mut peer = RawPeer::greeted(server.addr());
    let bytes = b"the bytes of some manifest";
    let hash = PartHash::of(bytes);
    let as_manifest = |id| Request::Offer {
        id,
        name: format!("b3-{hash}"),
        hash: *hash.as_bytes(),
        size: bytes.len() as u64,
        kind: PartKind::Manifest,
    };
    peer.send(&as_manifest(1), &[]);
    match peer.expect() {
        Response::Rejected {
            id: 1,
            code: ErrorCode::InvalidName,
            message,
        } => assert!(message.contains("chunk's name"), "{message}"),
        other => panic!("expected Rejected InvalidName, got {other:?}"),
    }
    peer.send(&offer(2, &format!("b3-{hash}"), bytes), &[]);
    assert_eq!(peer.expect(), Response::Want { id: 2 });
    server.stop();
}

/// An offer and its body in one write: the body waits for the offer's lookup, so it is taken
/// every time the answer is `Want`, and refused every time it is `Have`, however fast the
/// store answers.
#[test]
fn a_body_sent_with_its_offer_has_the_same_outcome_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Fs, &[]);
    let offer_and_body = |id: u64, name: &str, bytes: &[u8]| {
        let mut frames = encode_request(&offer(id, name, bytes)).unwrap();
        frames.extend(encode_request(&body(id, bytes)).unwrap());
        frames.extend_from_slice(bytes);
        frames
    };
    let mut peer = RawPeer::greeted(server.addr());
    for id in 1..=200 {
        let bytes = format!("part {id}").into_bytes();
        peer.send_raw(&offer_and_body(id, &format!("p{id}"), &bytes));
        assert_eq!(peer.expect(), Response::Want { id }, "round {id}");
        assert_eq!(peer.expect(), Response::Stored { id }, "round {id}");
    }
    for round in 0..20 {
        let mut peer = RawPeer::greeted(server.addr());
        peer.send_raw(&offer_and_body(1, "p1", b"part 1"));
        assert_eq!(peer.expect(), Response::Have { id: 1 }, "round {round}");
        peer.expect_error_then_close(ErrorCode::UnexpectedBody);
    }
    server.stop();
}

/// A name pushed again with other content is a conflict: the push is refused and the content
/// first stored under that name stays.
#[test]
fn a_name_pushed_with_other_content_keeps_the_old_content() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Fs, &[]);
    let first = write_files(
        &dir.path().join("first"),
        &[("a.bin", random_bytes(1, 3000))],
    );
    let second = write_files(
        &dir.path().join("second"),
        &[("a.bin", random_bytes(2, 3000))],
    );
    send(&server, &first, false).ok();
    let refused = send(&server, &second, false).fails(1).stdout();
    assert!(
        refused.contains("rejected a.bin: the peer holds other content"),
        "{refused}"
    );
    let out = dir.path().join("out");
    run(["export", "--from", &server.at(), p(&out)]).ok();
    assert_eq!(
        std::fs::read(out.join("a.bin_recebida")).unwrap(),
        std::fs::read(&first[0]).unwrap()
    );
    server.stop();
    let verified = run(["--db", p(&db), "verify", "--json"]).ok().json();
    assert_eq!(verified["intact"], 1, "{verified}");
}

fn random_garbage(addr: SocketAddr) {
    for seed in 0..3 {
        let mut peer = RawPeer::connect(addr);
        peer.send_raw(&random_bytes(seed, 64 * 1024));
        match peer.receive() {
            None => {}
            Some(Response::Error { .. }) => peer.expect_closed(),
            Some(other) => panic!("garbage (seed {seed}) got {other:?}"),
        }
    }
}

fn length_prefix_past_every_limit(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    peer.send_raw(&u32::MAX.to_le_bytes());
    peer.expect_error_then_close(ErrorCode::FrameTooLarge);
}

/// A `Get` whose name is declared 1 TiB long, in a 20-byte header with nothing after it.
fn string_declared_one_tebibyte_long(addr: SocketAddr) {
    let mut frame = encode_request(&Request::Get {
        id: 1,
        name: String::new(),
    })
    .unwrap();
    let len_at = frame.len() - size_of::<u64>();
    frame[len_at..].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert_eq!(frame.len(), LEN_PREFIX + 20);
    let mut peer = RawPeer::greeted(addr);
    peer.send_raw(&frame);
    peer.expect_error_then_close(ErrorCode::Malformed);
}

fn byte_after_the_message(addr: SocketAddr) {
    let mut frame = encode_request(&list(1)).unwrap();
    frame.push(0);
    let len = u32::try_from(frame.len() - LEN_PREFIX).unwrap();
    frame[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());
    let mut peer = RawPeer::greeted(addr);
    peer.send_raw(&frame);
    peer.expect_error_then_close(ErrorCode::Malformed);
}

/// The bytes are refused, nothing is stored (the name is still wanted), the connection goes on:
/// for a small body, which the server verifies as it arrives, and for one past 64 KiB, which
/// its verifier thread hashes.
fn body_not_matching_its_hash(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    for (round, len) in [(0, 28), (1, 65 * 1024)] {
        let genuine = vec![b'g'; len];
        let mut forged = genuine.clone();
        forged[len / 2] ^= 1;
        let (first, second) = (2 * round + 1, 2 * round + 2);
        peer.send(&offer(first, "forged.bin", &genuine), &[]);
        assert_eq!(peer.expect(), Response::Want { id: first });
        peer.send(&body(first, &forged), &forged);
        peer.expect_rejected(first, ErrorCode::HashMismatch);
        peer.send(&offer(second, "forged.bin", &genuine), &[]);
        assert_eq!(
            peer.expect(),
            Response::Want { id: second },
            "nothing was stored ({len} bytes)"
        );
        peer.send(&Request::Cancel { id: second }, &[]);
        peer.expect_rejected(second, ErrorCode::Cancelled);
    }
}

/// Each is refused with a reason; the connection goes on.
fn offers_with_bad_names(addr: SocketAddr) {
    let long = "x".repeat(300);
    let bad_names = ["../x", "a/b", ".", "nul\0inside", long.as_str()];
    let mut peer = RawPeer::greeted(addr);
    for (id, name) in (1..).zip(bad_names) {
        peer.send(&offer(id, name, b"x"), &[]);
        peer.expect_rejected(id, ErrorCode::InvalidName);
    }
    peer.send(&list(99), &[]);
    match peer.expect() {
        Response::Page { id: 99, parts, .. } => {
            let odd: Vec<WireEntry> = parts
                .into_iter()
                .filter(|part| !part.name.starts_with("honest-"))
                .collect();
            assert!(odd.is_empty(), "{odd:?}");
        }
        other => panic!("expected a Page, got {other:?}"),
    }
}

fn unsupported_version(addr: SocketAddr) {
    let mut peer = RawPeer::connect(addr);
    peer.send(&hello(99), &[]);
    let message = peer.expect_error_then_close(ErrorCode::UnsupportedVersion);
    let supported = PROTOCOL_VERSION.to_string();
    assert!(
        message.replace("99", "").contains(&supported),
        "the refusal names the version spoken: {message}"
    );
}

fn another_magic(addr: SocketAddr) {
    let mut peer = RawPeer::connect(addr);
    let mut other_protocol = hello(PROTOCOL_VERSION);
    if let Request::Hello { magic, .. } = &mut other_protocol {
        *magic = *b"HTTP";
    }
    peer.send(&other_protocol, &[]);
    peer.expect_error_then_close(ErrorCode::BadMagic);
}

fn request_before_hello(addr: SocketAddr) {
    let mut peer = RawPeer::connect(addr);
    peer.send(&list(1), &[]);
    peer.expect_error_then_close(ErrorCode::HandshakeRequired);
}

fn second_hello(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    peer.send(&hello(PROTOCOL_VERSION), &[]);
    peer.expect_error_then_close(ErrorCode::HandshakeRequired);
}

fn body_never_offered(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    peer.send(&body(42, b"abc"), b"abc");
    peer.expect_error_then_close(ErrorCode::UnexpectedBody);
}

fn body_of_another_size(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    peer.send(&offer(1, "sized.bin", b"five!"), &[]);
    assert_eq!(peer.expect(), Response::Want { id: 1 });
    peer.send(&body(1, b"six!!!"), b"six!!!");
    peer.expect_error_then_close(ErrorCode::UnexpectedBody);
}

/// Refused from the offer alone, before any byte moves; the connection goes on.
fn offer_past_the_size_limit(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    let huge = Request::Offer {
        id: 1,
        name: "huge.bin".into(),
        hash: [0; 32],
        size: u64::MAX,
        kind: storage::PartKind::Plain,
    };
    peer.send(&huge, &[]);
    peer.expect_rejected(1, ErrorCode::PartTooLarge);
    let get = Request::Get {
        id: 2,
        name: "huge.bin".into(),
    };
    peer.send(&get, &[]);
    peer.expect_rejected(2, ErrorCode::NotFound);
}

fn request_id_reused_in_flight(addr: SocketAddr) {
    let mut peer = RawPeer::greeted(addr);
    peer.send(&offer(1, "twice.bin", b"twice"), &[]);
    assert_eq!(peer.expect(), Response::Want { id: 1 });
    peer.send(&offer(1, "twice.bin", b"twice"), &[]);
    peer.expect_error_then_close(ErrorCode::DuplicateId);
}

/// One request past the `max_in_flight` the handshake announced; the offers before it are all
/// answered `Want` and stay in flight, waiting for bodies that never come.
fn too_many_requests(addr: SocketAddr) {
    let mut peer = RawPeer::connect(addr);
    peer.send(&hello(PROTOCOL_VERSION), &[]);
    let Response::Welcome { max_in_flight, .. } = peer.expect() else {
        panic!("no Welcome");
    };
    for id in 0..=u64::from(max_in_flight) {
        peer.send(&offer(id, &format!("crowd-{id}"), b"crowd"), &[]);
    }
    loop {
        match peer.expect() {
            Response::Want { .. } => {}
            Response::Error { code, .. } => {
                assert_eq!(code, ErrorCode::TooManyRequests);
                break;
            }
            other => panic!("expected Want or Error, got {other:?}"),
        }
    }
    peer.expect_closed();
}

/// Needs the server's `--handshake-timeout 1`; the wait is bounded by the socket's read
/// timeout, and its length is not what is checked.
fn silence(addr: SocketAddr) {
    RawPeer::connect(addr).expect_error_then_close(ErrorCode::Timeout);
}

fn list(id: u64) -> Request {
    Request::List {
        id,
        after: None,
        limit: 100,
    }
}

// ---- The client checks its peer too ----

/// A peer that lists a part and then sends other bytes under the listed hash gets nothing
/// stored and nothing exported.
#[test]
fn fetch_and_export_refuse_bytes_that_do_not_match_the_listing() {
    let dir = tempfile::tempdir().unwrap();
    let liar = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = liar.local_addr().unwrap().to_string();
    let serving = std::thread::spawn(move || {
        let identity = net::tls::Identity::generate().unwrap();
        for _ in 0..2 {
            let socket = liar.accept().unwrap().0;
            serve_a_lie(net::tls::accept(socket, &identity).unwrap().0);
        }
    });

    let db = dir.path().join("fetched.db");
    let fetched = run(["--db", p(&db), "fetch", "--from", &at, "--json"]).fails(1);
    assert_eq!(fetched.json()["rejected"], 1);
    assert_eq!(fetched.json()["stored"], 0);
    assert_eq!(list_local(&db), serde_json::json!([]));

    let out = dir.path().join("out");
    let exported = run(["export", "--from", &at, p(&out)]).fails(1).stdout();
    assert!(exported.ends_with("0 exported, 1 failed\n"), "{exported}");
    assert!(!out.join("lie.bin_recebida").exists());
    serving.join().unwrap();
}

/// Plays a server that lists `lie.bin` with the hash of some bytes and sends others of the
/// same length when asked for it.
fn serve_a_lie(mut stream: net::tls::TlsServerStream) {
    use std::io::Write;

    let genuine = b"the bytes the listing promises";
    let forged = b"the bytes the liar really send";
    assert_eq!(genuine.len(), forged.len());
    let hash = *PartHash::of(genuine).as_bytes();
    let size = genuine.len() as u64;
    // The client leaves without a TLS close_notify: any end of the stream ends the lie.
    while let Ok(Some(request)) = net::frame::read::<Request, MAX_REQUEST_HEADER>(&mut stream) {
        let (response, body): (Response, &[u8]) = match request {
            Request::Hello { .. } => {
                let welcome = Response::Welcome {
                    version: PROTOCOL_VERSION,
                    peer: "liar".into(),
                    max_part_size: 1024,
                    max_in_flight: 4,
                };
                (welcome, &[])
            }
            Request::List { id, .. } => {
                let name = "lie.bin".into();
                let kind = storage::PartKind::Plain;
                let parts = vec![WireEntry {
                    name,
                    hash,
                    size,
                    kind,
                }];
                let next = None;
                (Response::Page { id, parts, next }, &[])
            }
            Request::Get { id, .. } => (Response::Part { id, hash, size }, forged),
            other => panic!("the client sent {other:?}"),
        };
        stream
            .write_all(&encode_response(&response).unwrap())
            .unwrap();
        stream.write_all(body).unwrap();
        stream.flush().unwrap();
    }
}
