//! The transport against an attacker on the path (issue 12): a relay the test controls sits
//! between real `send`/`fetch` processes and a real `serve`, records every byte, flips bytes,
//! replays a recorded handshake, stalls a handshake, or plays a man in the middle; and peers
//! that speak plaintext version 1, or that no one trusts, knock at the door.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use net::client::ClientError;
use net::frame::{self, MAX_RESPONSE_HEADER};
use net::message::{ErrorCode, PROTOCOL_VERSION, Response};
use net::tls::Identity;
use storage::{BackendKind, PartHash};
use support::relay::Relay;
use support::wiretap::{Tamper, Wiretap};
use support::{
    PATIENCE, RawPeer, hello, list_local, offer, p, random_bytes, run, start_server, write_files,
};

/// The ID `p2p-store id` prints for the store at `db` (made on first use).
fn id_of(db: &Path) -> String {
    run(["--db", p(db), "id"]).ok().stdout().trim().to_owned()
}

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Every part the store at `db` lists is one of `sent` (name, bytes), with its exact hash.
fn holds_nothing_wrong(db: &Path, sent: &[(String, Vec<u8>)]) {
    for entry in list_local(db).as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let (_, bytes) = sent
            .iter()
            .find(|(sent_name, _)| sent_name == name)
            .unwrap_or_else(|| panic!("{name} was never sent"));
        assert_eq!(entry["hash"], PartHash::of(bytes).to_hex(), "{name}");
    }
    run(["--db", p(db), "verify"]).ok();
}

/// Whether the byte at `at` of a recorded direction went by and means something to TLS: not
/// past the end, and not among the first three bytes of a record, its outer type and legacy
/// version. TLS 1.3 gives those no meaning (RFC 8446 5.1: the version "MUST be ignored for all
/// purposes"; a protected record's real type is inside it) and rustls builds the additional
/// data it authenticates from constants, not from them, so a flip there may go unnoticed with
/// nothing read changed. Seen: a flipped low version byte, and an outer type 23 made 22. The
/// length and everything after it are authenticated.
fn carries_meaning(stream: &[u8], at: usize) -> bool {
    if at >= stream.len() {
        return false;
    }
    let mut start = 0;
    while start + 5 <= stream.len() {
        let len = usize::from(u16::from_be_bytes([stream[start + 3], stream[start + 4]]));
        let end = start + 5 + len;
        if at < end {
            return at >= start + 3;
        }
        start = end;
    }
    true
}

#[test]
fn a_byte_flipped_anywhere_in_either_direction_ends_the_connection_and_stores_nothing_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &[]);
    let mut sent = Vec::new();
    let mut send_through = |tamper: Tamper, case: usize| {
        let name = format!("flip-{case:03}.bin");
        let bytes = random_bytes(case as u64, 300_000);
        let path = write_files(&dir.path().join("in"), &[(&name, bytes.clone())]);
        let tap = Wiretap::start(server.addr(), tamper);
        let result = run([
            "send",
            "--to",
            &tap.at(),
            "--part-size",
            "65536",
            p(&path[0]),
        ]);
        sent.push((name, bytes));
        (result, (tap.up(), tap.down()))
    };
    // A clean run tells how long each direction is.
    let (clean, (up, down)) = send_through(Tamper::default(), 0);
    clean.ok();
    let (up, down) = (up.len(), down.len());
    let mut case = 1;
    let mut landed = 0;
    for fraction in [0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99] {
        for tamper in [
            Tamper {
                up: Some((up as f64 * fraction) as usize),
                down: None,
            },
            Tamper {
                up: None,
                down: Some((down as f64 * fraction) as usize),
            },
        ] {
            let (result, (went_up, went_down)) = send_through(tamper, case);
            case += 1;
            // The records of a run need not be as long as the clean run's: a position past
            // the end of what went by flipped nothing, and one in a record's type or version
            // may change nothing the peers read.
            let flipped = tamper.up.is_some_and(|at| carries_meaning(&went_up, at))
                || tamper
                    .down
                    .is_some_and(|at| carries_meaning(&went_down, at));
            let (went_up, went_down) = (went_up.len(), went_down.len());
            if !flipped {
                continue;
            }
            landed += 1;
            assert_ne!(
                result.code(),
                0,
                "{tamper:?} (clean run: {up} bytes up, {down} down; this run: {went_up} up, \
                 {went_down} down): the send succeeded\nstderr:\n{}",
                result.stderr()
            );
            let failed = result.fails(1);
            assert!(
                !failed.stderr().is_empty(),
                "{tamper:?}: the send failed without a word"
            );
        }
    }
    assert!(landed >= 12, "only {landed} flips landed");
    // The server goes on serving the honest.
    send_through(Tamper::default(), case).0.ok();
    server.stop();
    holds_nothing_wrong(&db, &sent);
}

/// A server that trusts only one ID refuses every other key before reading a request, and a
/// client that pins a server's ID refuses any other server the relay sends it to.
#[test]
fn a_relay_cannot_make_peers_with_other_keys_or_untrusted_ids_talk() {
    let dir = tempfile::tempdir().unwrap();
    let (trusted, stranger) = (
        dir.path().join("trusted.db"),
        dir.path().join("stranger.db"),
    );
    let trusted_id = id_of(&trusted);
    id_of(&stranger);
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 5000))]);

    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &["--trust", &trusted_id]);
    let tap = Wiretap::start(server.addr(), Tamper::default());
    let refused = run([
        "--db",
        p(&stranger),
        "send",
        "--to",
        &tap.at(),
        p(&files[0]),
    ])
    .fails(1);
    assert!(
        refused.stderr().contains("refused this side's ID"),
        "{}",
        refused.stderr()
    );
    let other = write_files(&dir.path().join("in"), &[("b.bin", random_bytes(2, 5000))]);
    run(["--db", p(&trusted), "send", "--to", &tap.at(), p(&other[0])]).ok();

    // The relay leads a client that pinned `server` to another server.
    let impostor = start_server(&dir.path().join("impostor.db"), BackendKind::Sled, &[]);
    let server_id = id_of(&db);
    let elsewhere = Wiretap::start(impostor.addr(), Tamper::default());
    let pinned = format!("{}#{server_id}", elsewhere.at());
    let misled = run(["--db", p(&trusted), "send", "--to", &pinned, p(&files[0])]).fails(1);
    assert!(misled.stderr().contains("as pinned"), "{}", misled.stderr());
    impostor.stop();
    assert_eq!(
        list_local(&dir.path().join("impostor.db")),
        serde_json::json!([])
    );
    server.stop();
    assert_eq!(
        support::names_in(&list_local(&db)),
        ["b.bin".to_owned()].into()
    );
}

/// A man in the middle that ends TLS on both sides (it shows each side a key of its own) and
/// passes the frames between, without the group key: the key proofs, bound to both ends' IDs,
/// do not survive the splice, and nothing is stored.
#[test]
fn a_man_in_the_middle_cannot_splice_two_keyed_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("group.key");
    std::fs::write(&key, random_bytes(9, 32)).unwrap();
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Sled, &["--key-file", p(&key)]);
    let mitm = man_in_the_middle(server.addr());
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 5000))]);
    let spliced = run(["--key-file", p(&key), "send", "--to", &mitm.0, p(&files[0])]).fails(1);
    assert!(
        spliced.stderr().contains("AuthFailed") || spliced.stderr().contains("proof"),
        "{}",
        spliced.stderr()
    );
    mitm.1.join().unwrap();
    // With the same key and no one in the middle, the same send works.
    run([
        "--key-file",
        p(&key),
        "send",
        "--to",
        &server.at(),
        p(&files[0]),
    ])
    .ok();
    server.stop();
    assert_eq!(list_local(&db).as_array().unwrap().len(), 1);
}

/// Accepts one client as a TLS server of its own and relays its plaintext to `server` over a
/// TLS client connection of its own, both ways, until either side ends.
fn man_in_the_middle(server: SocketAddr) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = listener.local_addr().unwrap().to_string();
    let thread = std::thread::spawn(move || {
        let identity = Identity::generate().unwrap();
        let (socket, _) = listener.accept().unwrap();
        let (mut client, _) = net::tls::accept(socket, &identity).unwrap();
        let upstream = TcpStream::connect(server).unwrap();
        let (mut server, _) = net::client::secure(upstream, &identity, None, PATIENCE).unwrap();
        for stream in [&client.sock, &server.sock] {
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
        }
        let give_up = Instant::now() + PATIENCE;
        let mut buffer = vec![0; 64 * 1024];
        while Instant::now() < give_up {
            if !pass(&mut client, &mut server, &mut buffer)
                || !pass(&mut server, &mut client, &mut buffer)
            {
                return;
            }
        }
    });
    (at, thread)
}

/// Passes what `from` has to `to`; false once either has ended.
fn pass(from: &mut impl Read, to: &mut impl Write, buffer: &mut [u8]) -> bool {
    match from.read(buffer) {
        Ok(0) => false,
        Ok(read) => to
            .write_all(&buffer[..read])
            .and_then(|()| to.flush())
            .is_ok(),
        Err(err) => matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The client's half of a whole recorded conversation, sent again to a server with the same
/// key pair and an empty store, gets nothing stored: TLS makes each handshake's keys afresh.
#[test]
fn a_recorded_handshake_replayed_fails() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.db");
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 5000))]);
    let server = start_server(&db, BackendKind::Sled, &[]);
    let tap = Wiretap::start(server.addr(), Tamper::default());
    run(["send", "--to", &tap.at(), p(&files[0])]).ok();
    let recorded = tap.up();
    drop(tap);
    server.stop();

    let twin = dir.path().join("twin.db");
    id_of(&twin);
    std::fs::copy(db.join("identity.key"), twin.join("identity.key")).unwrap();
    let replayed = start_server(&twin, BackendKind::Sled, &[]);
    let mut socket = TcpStream::connect(replayed.addr()).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = socket.write_all(&recorded);
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    replayed.stop();
    assert_eq!(list_local(&twin), serde_json::json!([]));
}

/// What goes over the wire, both ways, for a push, a listing and a fetch: neither the part's
/// name nor any stretch of its bytes.
#[test]
fn part_bytes_and_names_never_appear_in_the_captured_stream() {
    let dir = tempfile::tempdir().unwrap();
    let name = "quarterly-secret-report.pdf";
    let bytes = random_bytes(5, 300_000);
    let files = write_files(&dir.path().join("in"), &[(name, bytes.clone())]);
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let tap = Wiretap::start(server.addr(), Tamper::default());
    run(["send", "--to", &tap.at(), p(&files[0])]).ok();
    run(["list", "--from", &tap.at()]).ok();
    let fetched = dir.path().join("fetched.db");
    run(["--db", p(&fetched), "fetch", "--from", &tap.at()]).ok();
    let (up, down) = (tap.up(), tap.down());
    assert!(up.len() > bytes.len() && down.len() > bytes.len());
    for stream in [&up, &down] {
        assert!(!contains(stream, name.as_bytes()));
        assert!(!contains(stream, b"quarterly"));
        for at in [0, 1000, 65_536, 150_000, bytes.len() - 16] {
            assert!(!contains(stream, &bytes[at..at + 16]), "bytes at {at}");
        }
    }
    server.stop();
}

/// A client whose ClientHello is cut mid-way by the relay, and a raw peer that sends half a
/// TLS record and waits: the server closes both at its handshake timeout, without a word.
#[test]
fn a_peer_that_stops_mid_handshake_is_cut_at_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &["--handshake-timeout", "1"],
    );
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 5000))]);
    let relay = Relay::start(server.addr(), 100, u64::MAX);
    let cut = run([
        "send",
        "--to",
        &relay.at(),
        "--timeout",
        "600",
        p(&files[0]),
    ])
    .fails(1);
    assert!(
        !cut.stderr().contains("did not answer"),
        "the client waited for its own timeout: {}",
        cut.stderr()
    );

    let mut stalled = TcpStream::connect(server.addr()).unwrap();
    stalled.set_read_timeout(Some(PATIENCE)).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let mut rest = Vec::new();
    match stalled.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "the server said {rest:02x?} mid-handshake"),
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    server.stop();
}

/// A peer whose ID is not trusted, pipelining a push right behind its side of the handshake,
/// is refused in the handshake: nothing it sent is read, and the store is untouched.
#[test]
fn an_untrusted_id_is_refused_before_the_store_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("trusted.db");
    let db = dir.path().join("served.db");
    let server = start_server(&db, BackendKind::Fs, &["--trust", &id_of(&trusted)]);
    let stranger = Identity::generate().unwrap();
    let socket = TcpStream::connect(server.addr()).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let (mut tls, _) = net::client::secure(socket, &stranger, None, PATIENCE).unwrap();
    let bytes = b"never stored";
    let mut pushed = frame::encode_request(&hello(PROTOCOL_VERSION)).unwrap();
    pushed.extend(frame::encode_request(&offer(1, "x.bin", bytes)).unwrap());
    let _ = tls.write_all(&pushed).and_then(|()| tls.flush());
    let answer = frame::read::<Response, MAX_RESPONSE_HEADER>(&mut tls);
    let Err(net::frame::FrameError::Io(err)) = answer else {
        panic!("an untrusted peer was answered: {answer:?}");
    };
    let refusal = net::client::ClientError::Io(err);
    assert!(refusal.to_string().contains("AccessDenied"), "{refusal}");
    // The log is written by a thread of its own: wait for the refusal to reach it.
    let give_up = Instant::now() + PATIENCE;
    while !server.log().contains("not trusted") {
        assert!(
            Instant::now() < give_up,
            "no refusal logged: {}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!server.log().contains("client="), "{}", server.log());
    server.stop();
    assert_eq!(list_local(&db), serde_json::json!([]));
}

/// Plaintext cannot be forced on either side: the server answers a plaintext version-1 Hello
/// with a version-1 `Error` telling it to upgrade, and a client facing a peer that answers its
/// ClientHello in plaintext (as a version-1 server or a stripping relay would) gives up
/// without sending a frame in the clear.
#[test]
fn downgrade_to_plaintext_is_impossible() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let mut old = TcpStream::connect(server.addr()).unwrap();
    old.set_read_timeout(Some(PATIENCE)).unwrap();
    old.write_all(&frame::encode_request(&hello(1)).unwrap())
        .unwrap();
    match frame::read::<Response, MAX_RESPONSE_HEADER>(&mut old) {
        Ok(Some(Response::Error {
            code: ErrorCode::UnsupportedVersion,
            message,
        })) => assert!(message.contains("upgrade"), "{message}"),
        other => panic!("a version-1 Hello got {other:?}"),
    }
    assert!(matches!(
        frame::read::<Response, MAX_RESPONSE_HEADER>(&mut old),
        Ok(None) | Err(_)
    ));
    server.stop();

    let stripper = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = stripper.local_addr().unwrap().to_string();
    let stripping = std::thread::spawn(move || {
        let (mut socket, _) = stripper.accept().unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut first = [0; 3];
        socket.read_exact(&mut first).unwrap();
        let welcome = Response::Welcome {
            version: 1,
            peer: "plaintext".into(),
            max_part_size: 1 << 20,
            max_in_flight: 8,
        };
        let _ = socket.write_all(&frame::encode_response(&welcome).unwrap());
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
        (first, rest)
    });
    let files = write_files(&dir.path().join("in"), &[("a.bin", random_bytes(1, 5000))]);
    let refused = run(["send", "--to", &at, p(&files[0])]).fails(1);
    assert!(
        refused
            .stderr()
            .contains("does not speak protocol version 2"),
        "{}",
        refused.stderr()
    );
    let (first, rest) = stripping.join().unwrap();
    assert_eq!(first[..2], [0x16, 0x03], "the client began with TLS");
    assert!(
        !contains(&rest, b"a.bin"),
        "the client sent a frame in the clear"
    );

    let off_loopback = run(["--plaintext-on-loopback", "serve", "--listen", "0.0.0.0:0"]).fails(1);
    assert!(
        off_loopback.stderr().contains("loopback"),
        "{}",
        off_loopback.stderr()
    );
}

/// A raw peer that speaks TLS still gets the refusals sent at the door in plaintext.
#[test]
fn a_refusal_at_the_door_reaches_a_tls_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &["--allow", "10.0.0.0/8"],
    );
    let err = net::Client::connect(&server.at(), "test", PATIENCE)
        .err()
        .expect("a forbidden address is refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{err}"
    );
    let mut peer = RawPeer::connect(server.addr());
    peer.expect_error_then_close(ErrorCode::Forbidden);
    server.stop();
}
