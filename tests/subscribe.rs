//! The subscription of PROTOCOL.md §8.4, frame by frame against a real `serve`: what is
//! stored is announced, a cursor resumes without a gap, a cursor the server cannot honour is
//! told to catch up, and a subscriber waiting for news is not cut as idle.

mod support;

use std::path::Path;
use std::time::Duration;

use net::message::{Request, Response, WireEntry};
use storage::BackendKind;
use support::{RawPeer, Server, p, run, start_server};

/// Pushes a part named `name` holding `bytes` to `server` with the real client.
fn push(server: &Server, dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    run(["send", "--to", &server.at(), p(&path)]).ok();
}

fn subscribe(server: &Server, epoch: u64, after: u64) -> (RawPeer, (u64, u64, bool)) {
    let mut peer = RawPeer::greeted(server.addr());
    peer.send(
        &Request::Subscribe {
            id: 1,
            epoch,
            after,
        },
        &[],
    );
    match peer.expect() {
        Response::Subscribed {
            id: 1,
            epoch,
            seq,
            resumed,
        } => (peer, (epoch, seq, resumed)),
        other => panic!("expected Subscribed, got {other:?}"),
    }
}

/// The next announcement's number and entry.
fn announced(peer: &mut RawPeer) -> (u64, Option<WireEntry>) {
    match peer.expect() {
        Response::Announced { id: 1, seq, entry } => (seq, entry),
        other => panic!("expected Announced, got {other:?}"),
    }
}

#[test]
fn stored_parts_are_announced_and_a_cursor_resumes_where_it_left_off() {
    let dir = tempfile::tempdir().unwrap();
    // An idle timeout far shorter than the waits below: a subscriber is not idle.
    let server = start_server(
        &dir.path().join("s.db"),
        BackendKind::Sled,
        &["--idle-timeout", "1"],
    );
    push(
        &server,
        dir.path(),
        "before.txt",
        b"stored before anyone subscribed",
    );

    let (mut peer, (epoch, start, resumed)) = subscribe(&server, 0, 0);
    assert!(!resumed, "no cursor: catch up by listing first");
    assert_eq!(start, 1, "before.txt was the feed's first entry");
    std::thread::sleep(Duration::from_secs(3));
    push(&server, dir.path(), "a.txt", b"first");
    push(&server, dir.path(), "b.txt", b"second");
    let (seq_a, entry_a) = announced(&mut peer);
    let (seq_b, entry_b) = announced(&mut peer);
    assert_eq!((seq_a, seq_b), (2, 3));
    let entry_a = entry_a.expect("an entry");
    assert_eq!(entry_a.name, "a.txt");
    assert_eq!(entry_a.hash, *blake3::hash(b"first").as_bytes());
    assert_eq!(entry_b.expect("an entry").name, "b.txt");
    drop(peer);

    // Resuming after a.txt gives b.txt again, and then what came while away.
    push(&server, dir.path(), "c.txt", b"third");
    let (mut peer, (_, seq, resumed)) = subscribe(&server, epoch, seq_a);
    assert!(resumed);
    assert_eq!(seq, seq_a);
    let names: Vec<String> = (0..2)
        .map(|_| announced(&mut peer).1.unwrap().name)
        .collect();
    assert_eq!(names, ["b.txt", "c.txt"]);

    // A cursor of another epoch (a restarted server) or from the future must catch up.
    for (epoch, after) in [(epoch + 1, 1), (epoch, 99)] {
        let (_, (now_epoch, seq, resumed)) = subscribe(&server, epoch, after);
        assert!(!resumed);
        assert_eq!((now_epoch, seq), (epoch_of(&server), 4));
    }
    server.stop();
}

/// The server's current epoch, from a subscription without a cursor.
fn epoch_of(server: &Server) -> u64 {
    subscribe(server, 0, 0).1.0
}

#[test]
fn a_second_subscription_on_one_connection_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("s.db"), BackendKind::Sled, &[]);
    let (mut peer, _) = subscribe(&server, 0, 0);
    peer.send(
        &Request::Subscribe {
            id: 2,
            epoch: 0,
            after: 0,
        },
        &[],
    );
    match peer.expect() {
        Response::Rejected { id: 2, .. } => {}
        other => panic!("expected a rejection, got {other:?}"),
    }
    server.stop();
}

/// Subscribers that never read while many parts are stored: what the server queues for them
/// counts against `--max-memory` like any unread answer, so the server stays near it (they
/// are cut, or stop being fed) instead of holding every announcement for each of them. Found
/// by holding 2000 such subscriptions while 5000 parts were pushed: `serve` grew to 1.8 GB
/// against a 256 MiB limit.
#[test]
fn subscribers_that_never_read_stay_within_the_memory_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("s.db"),
        BackendKind::Sled,
        &["--max-memory", &(4u64 << 20).to_string()],
    );
    let subscribers: Vec<RawPeer> = (0..100)
        .map(|_| {
            let mut peer = RawPeer::greeted_reading_little(server.addr());
            let subscribe = Request::Subscribe {
                id: 1,
                epoch: 0,
                after: 0,
            };
            peer.send(&subscribe, &[]);
            assert!(matches!(peer.expect(), Response::Subscribed { .. }));
            peer
        })
        .collect();
    // 3000 parts with long names: some 800 KiB of announcements for each subscriber, 80 MiB
    // for all of them, against a limit of 4 MiB.
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    let long = "n".repeat(190);
    let paths: Vec<String> = (0..3000)
        .map(|i| {
            let path = files.join(format!("{i:05}-{long}"));
            std::fs::write(&path, i.to_string()).unwrap();
            p(&path).to_owned()
        })
        .collect();
    let client = dir.path().join("c.db");
    let mut import = vec!["--db", p(&client), "import"];
    import.extend(paths.iter().map(String::as_str));
    run(import).ok();
    let before = support::attacks::memory_of(server.pid(), "VmRSS");
    run(["--db", p(&client), "send", "--to", &server.at()]).ok();
    std::thread::sleep(Duration::from_secs(3));
    let grown = support::attacks::memory_of(server.pid(), "VmHWM").saturating_sub(before);
    assert!(
        grown < 24 << 20,
        "serve grew by {} MiB for subscribers that read nothing, past its 4 MiB limit",
        grown >> 20
    );
    drop(subscribers);
}
