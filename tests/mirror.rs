//! `serve --mirror ADDR`: a store kept a superset of a peer's, through the subscription of
//! PROTOCOL.md §8.4. Chains carry a push along, cycles converge and stop, a name holding other
//! bytes is kept and reported, and a mirror whose peer went away catches up once it is back.
//! Real processes on 127.0.0.1, real stores in temp dirs.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use net::client::News;
use storage::BackendKind;
use support::files::write_random_file;
use support::{PATIENCE, Server, free_port, list_from, p, run, start_server, start_server_at};

/// Polls `server`'s listing until it holds `name` with `hash`, at most [`PATIENCE`].
fn wait_for(server: &Server, name: &str, hash: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let listing = list_from(server);
        let entries = listing.as_array().unwrap();
        if entries
            .iter()
            .any(|e| e["name"] == name && e["hash"] == hash)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never held {name} as {hash}: {listing}\nits log:\n{}",
            server.at(),
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a file of `size` random bytes and pushes it to `server`; returns its hash.
fn push_new(server: &Server, dir: &Path, name: &str, seed: u64, size: u64) -> String {
    let path = dir.join(name);
    let hash = write_random_file(&path, seed, size).to_string();
    run(["send", "--to", &server.at(), p(&path)]).ok();
    hash
}

/// How many entries `server`'s feed has numbered, from a subscription of its own.
fn feed_position(server: &Server) -> u64 {
    let client = net::Client::connect(&server.at(), "test", PATIENCE).unwrap();
    match client.subscribe(storage::Cursor::default()).unwrap().1 {
        News::CatchUp { cursor } => cursor.seq,
        other => panic!("a subscription without a cursor must catch up first: {other:?}"),
    }
}

/// Lines of `server`'s log saying its mirror stored something.
fn mirrored(server: &Server) -> usize {
    let log = server.log();
    log.lines()
        .filter(|line| line.contains("mirror: stored"))
        .count()
}

#[test]
fn a_push_travels_down_a_chain_of_mirrors() {
    let dir = tempfile::tempdir().unwrap();
    let a = start_server(&dir.path().join("a.db"), BackendKind::Sled, &[]);
    let b = start_server(
        &dir.path().join("b.db"),
        BackendKind::Fs,
        &["--mirror", &a.at(), "-v"],
    );
    let c = start_server(
        &dir.path().join("c.db"),
        BackendKind::Sled,
        &["--mirror", &b.at(), "-v"],
    );
    let early = push_new(&a, dir.path(), "early.txt", 1, 10_000);
    wait_for(&c, "early.txt", &early);
    // A file of chunks, and a part, pushed while the chain is following.
    let big = push_new(&a, dir.path(), "big.bin", 2, 3 * 1024 * 1024 + 5);
    let small = push_new(&a, dir.path(), "small.txt", 3, 100);
    wait_for(&c, "big.bin", &big);
    wait_for(&c, "small.txt", &small);
    let out = dir.path().join("out");
    run(["export", "--from", &c.at(), p(&out), "big.bin"]).ok();
    let exported = std::fs::read(out.join("big.bin_recebida")).unwrap();
    assert_eq!(blake3::hash(&exported).to_hex().as_str(), big);
    for server in [c, b, a] {
        server.stop();
    }
}

#[test]
fn a_cycle_of_mirrors_converges_and_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let at = |i: usize| format!("127.0.0.1:{}", ports[i]);
    // A <- B <- C <- A: each mirrors the one before it, A the last.
    let servers: Vec<Server> = (0..3)
        .map(|i| {
            let db = dir.path().join(format!("{i}.db"));
            let upstream = at((i + 2) % 3);
            start_server_at(
                &db,
                BackendKind::Sled,
                &at(i),
                &["--mirror", &upstream, "-v"],
            )
        })
        .collect();
    let hashes: Vec<(String, String)> = (0..3)
        .map(|i| {
            let name = format!("from-{i}.bin");
            let hash = push_new(&servers[i], dir.path(), &name, 10 + i as u64, 2_000_000);
            (name, hash)
        })
        .collect();
    for server in &servers {
        for (name, hash) in &hashes {
            wait_for(server, name, hash);
        }
    }
    // Each part went around once: each store newly holds its own and the two it lacked, so
    // its feed numbers exactly three entries, however long the cycle runs. (A cycle that did
    // not stop would keep numbering the parts coming around again.)
    std::thread::sleep(Duration::from_secs(2));
    for server in &servers {
        assert_eq!(feed_position(server), 3, "{}", server.log());
        assert_eq!(mirrored(server), 2, "{}", server.log());
    }
    for server in servers {
        server.stop();
    }
}

#[test]
fn a_name_holding_other_bytes_here_is_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (a_db, b_db) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let theirs = dir.path().join("theirs/notes.txt");
    let ours = dir.path().join("ours/notes.txt");
    let their_hash = write_random_file(&theirs, 20, 5_000).to_string();
    let our_hash = write_random_file(&ours, 21, 6_000).to_string();
    run(["--db", p(&a_db), "import", p(&theirs)]).ok();
    run(["--db", p(&b_db), "import", p(&ours)]).ok();
    let a = start_server(&a_db, BackendKind::Sled, &[]);
    let b = start_server(&b_db, BackendKind::Sled, &["--mirror", &a.at(), "-v"]);
    let other = push_new(&a, dir.path(), "other.txt", 22, 700);
    wait_for(&b, "other.txt", &other);
    wait_for(&b, "notes.txt", &our_hash);
    let refused = |line: &str| {
        line.contains("mirror: not stored")
            && line.contains("notes.txt")
            && line.contains("holds other content")
    };
    let log = b.log_with(refused);
    assert!(log.lines().any(refused), "{log}");
    wait_for(&a, "notes.txt", &their_hash);
    b.stop();
    a.stop();
}

#[test]
fn a_mirror_catches_up_after_its_peer_or_itself_was_away() {
    let dir = tempfile::tempdir().unwrap();
    let (a_db, b_db) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let a_at = format!("127.0.0.1:{}", free_port());
    let b_at = format!("127.0.0.1:{}", free_port());
    let mirror = ["--mirror", a_at.as_str(), "-v"];
    let a = start_server_at(&a_db, BackendKind::Sled, &a_at, &[]);
    let b = start_server_at(&b_db, BackendKind::Sled, &b_at, &mirror);
    let first = push_new(&a, dir.path(), "first.txt", 30, 1_000);
    wait_for(&b, "first.txt", &first);

    // The peer dies, and comes back with a new feed: the mirror reconnects and catches up.
    a.kill();
    let a = start_server_at(&a_db, BackendKind::Sled, &a_at, &[]);
    let second = push_new(&a, dir.path(), "second.txt", 31, 1_000);
    wait_for(&b, "second.txt", &second);

    // The mirror stops while the peer takes more, and catches up when it starts again.
    b.stop();
    let third = push_new(&a, dir.path(), "third.bin", 32, 2 * 1024 * 1024);
    let b = start_server_at(&b_db, BackendKind::Sled, &b_at, &mirror);
    wait_for(&b, "third.bin", &third);
    b.stop();
    a.stop();
}

/// An upstream that accepts the subscription and then announces a name the rules refuse (here
/// on every connection): the mirror waits longer each time, as for a peer that is away,
/// instead of reconnecting every half second for as long as it runs. Found with a fake
/// upstream announcing `.hidden`: `serve --mirror` dialled it twice a second, forever.
#[test]
fn an_upstream_that_breaks_the_protocol_after_subscribing_is_retried_with_growing_waits() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use net::frame::{self, MAX_REQUEST_HEADER};
    use net::message::{PROTOCOL_VERSION, Request, Response, WireEntry};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = listener.local_addr().unwrap().to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    std::thread::spawn(move || {
        let identity = Arc::new(net::tls::Identity::generate().unwrap());
        for socket in listener.incoming() {
            let Ok(socket) = socket else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            socket.set_read_timeout(Some(PATIENCE)).unwrap();
            let identity = Arc::clone(&identity);
            std::thread::spawn(move || {
                let Ok((mut stream, _)) = net::tls::accept(socket, &identity) else {
                    return;
                };
                while let Ok(Some(request)) =
                    frame::read::<Request, MAX_REQUEST_HEADER>(&mut stream)
                {
                    let answers = match request {
                        Request::Hello { .. } => vec![Response::Welcome {
                            version: PROTOCOL_VERSION,
                            peer: "fake".into(),
                            max_part_size: 1024,
                            max_in_flight: 8,
                        }],
                        Request::Subscribe { id, epoch, after } => vec![
                            Response::Subscribed {
                                id,
                                epoch,
                                seq: after,
                                resumed: true,
                            },
                            Response::Announced {
                                id,
                                seq: after + 1,
                                entry: Some(WireEntry {
                                    name: ".hidden".into(),
                                    hash: [7; 32],
                                    size: 1,
                                    kind: storage::PartKind::Plain,
                                }),
                            },
                        ],
                        _ => break,
                    };
                    for answer in answers {
                        let bytes = frame::encode_response(&answer).unwrap();
                        let _ = std::io::Write::write_all(&mut stream, &bytes);
                    }
                    let _ = std::io::Write::flush(&mut stream);
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mirror = start_server(
        &dir.path().join("m.db"),
        BackendKind::Sled,
        &["--mirror", &upstream],
    );
    // Each failure says how long the mirror waits before the next try: the waits must grow
    // (a backoff reset on every Subscribed would say 500ms each time).
    let deadline = Instant::now() + PATIENCE;
    let waits = loop {
        let log = mirror.log();
        let waits: Vec<String> = (log.lines())
            .filter(|line| line.contains("mirror: lost the peer"))
            .filter_map(|line| line.split("backoff=").nth(1))
            .map(|rest| {
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        if waits.len() >= 3 {
            break waits;
        }
        assert!(
            Instant::now() < deadline,
            "fewer than three retries; log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(waits[..3], ["500ms", "1s", "2s"], "{}", mirror.log());
    assert!(connections.load(Ordering::SeqCst) >= 3);
    mirror.stop();
}
