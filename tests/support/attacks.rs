//! Hostile peers written from PROTOCOL.md, each against a served store: what `tests/hostile.rs`
//! checks and `benches/hostile.rs` measures. An attacker never reads, so whatever the server
//! answers piles up on its side; the attack holds its connections until they are dropped.

use std::net::SocketAddr;
use std::time::Duration;

use net::frame::encode_request;
use net::message::{PROTOCOL_VERSION, Request};
use storage::{PartHash, PartKind};

use super::{RawPeer, Server, hello, p, random_bytes, run};

/// The largest part a default server accepts.
pub const MAX_PART: usize = 16 * 1024 * 1024;

/// One way to make a server hold memory.
pub struct Attack {
    pub name: &'static str,
    /// Puts in place what the attack needs (run once, before it).
    pub prepare: fn(&Server, &std::path::Path),
    /// Opens the attacker's connections and sends what it sends.
    pub start: fn(SocketAddr) -> Vec<RawPeer>,
}

/// Every attack, in the order they are reported.
pub const ALL: [Attack; 4] = [
    Attack {
        name: "40 connections stall 16 MiB bodies 64 KiB short",
        prepare: |_, _| {},
        start: stalled_bodies,
    },
    Attack {
        name: "24 connections pipeline 16 Gets of a 16 MiB part, never read",
        prepare: store_big_part,
        start: unread_gets,
    },
    Attack {
        name: "4 connections pipeline 4,096 full-page Lists, never read",
        prepare: store_many_parts,
        start: unread_lists,
    },
    Attack {
        name: "1,000 connections send 4,095 offers each, never their bodies",
        prepare: |_, _| {},
        start: held_offers,
    },
];

/// Opens `count` connections, each sending a `Hello` and then what `frames` gives it, on its
/// own thread.
fn attackers(
    addr: SocketAddr,
    count: usize,
    frames: impl Fn(usize) -> Vec<u8> + Sync,
) -> Vec<RawPeer> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|index| {
                let frames = &frames;
                scope.spawn(move || {
                    let mut peer = RawPeer::connect(addr);
                    peer.set_write_timeout(Duration::from_secs(2));
                    let mut bytes = encode_request(&hello(PROTOCOL_VERSION)).unwrap();
                    bytes.extend(frames(index));
                    peer.send_until_blocked(&bytes);
                    peer
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Each connection sends all but the last 64 KiB of a body the server wants, then stalls.
fn stalled_bodies(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 40, |index| {
        let hash = *PartHash::of(&index.to_le_bytes()).as_bytes();
        let (name, size, kind) = (format!("stalled-{index}"), MAX_PART as u64, PartKind::Plain);
        let mut frames = encode_request(&Request::Offer {
            id: 1,
            name,
            hash,
            size,
            kind,
        })
        .unwrap();
        frames.extend(encode_request(&Request::Body { id: 1, size }).unwrap());
        frames.resize(frames.len() + MAX_PART - 64 * 1024, 7);
        frames
    })
}

fn store_big_part(server: &Server, dir: &std::path::Path) {
    let big = dir.join("big.bin");
    std::fs::write(&big, random_bytes(3, MAX_PART)).unwrap();
    let part_size = MAX_PART.to_string();
    run([
        "send",
        "--to",
        &server.at(),
        "--part-size",
        &part_size,
        p(&big),
    ])
    .ok();
}

fn unread_gets(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 24, |_| {
        (1..=16)
            .flat_map(|id| {
                encode_request(&Request::Get {
                    id,
                    name: "big.bin".into(),
                })
                .unwrap()
            })
            .collect()
    })
}

fn store_many_parts(server: &Server, dir: &std::path::Path) {
    let many = dir.join("many");
    std::fs::create_dir_all(&many).unwrap();
    let mut send = vec!["send".to_owned(), "--to".to_owned(), server.at()];
    for i in 0..2100u32 {
        let path = many.join(format!("part-with-a-longish-name-{i:05}"));
        std::fs::write(&path, i.to_le_bytes()).unwrap();
        send.push(p(&path).to_owned());
    }
    run(send).ok();
}

fn unread_lists(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 4, |_| {
        (1..=4096)
            .flat_map(|id| {
                encode_request(&Request::List {
                    id,
                    after: None,
                    limit: 2048,
                })
                .unwrap()
            })
            .collect()
    })
}

fn held_offers(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 1000, |index| {
        (1..=4095u64)
            .flat_map(|id| {
                let key = [index.to_le_bytes(), id.to_le_bytes()].concat();
                let offer = Request::Offer {
                    id,
                    name: format!("offer-{index}-{id}"),
                    hash: *PartHash::of(&key).as_bytes(),
                    size: 1024,
                    kind: PartKind::Plain,
                };
                encode_request(&offer).unwrap()
            })
            .collect()
    })
}

/// A resident-memory figure of process `pid`, in bytes (`VmHWM` is the peak, `VmRSS` now).
pub fn memory_of(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .unwrap();
    kib * 1024
}

/// An honest push of a small file and a chunked one to `server`; both must be stored.
pub fn honest_push(server: &Server, dir: &std::path::Path, tag: &str) {
    let small = dir.join(format!("{tag}-small.txt"));
    std::fs::write(&small, random_bytes(1, 4096)).unwrap();
    let chunked = dir.join(format!("{tag}-chunked.bin"));
    std::fs::write(&chunked, random_bytes(2, 3 << 20)).unwrap();
    let sent = run([
        "send",
        "--to",
        &server.at(),
        p(&small),
        p(&chunked),
        "--json",
    ]);
    let summary = sent.ok().json();
    assert_eq!(summary["stored"], 2, "{summary}");
}
