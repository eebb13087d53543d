//! Hostile peers against one memory budget: each attack runs against the real `serve` with
//! default flags while an honest client pushes, and serve's peak resident memory (VmHWM in
//! /proc, a memory figure, not a timing) must stay under 512 MiB. Once the attacker leaves,
//! the memory goes back.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use net::message::Request;
use storage::{BackendKind, PartHash, PartKind};
use support::{RawPeer, Server, p, random_bytes, run, start_server};

/// What serve may reach at its peak, whatever the attack.
const PEAK_LIMIT: u64 = 512 * 1024 * 1024;

/// What serve must come back under once the attacker has gone.
const SETTLED_LIMIT: u64 = 256 * 1024 * 1024;

/// The largest part a default server accepts.
const MAX_PART: usize = 16 * 1024 * 1024;

/// A resident-memory figure of process `pid`, in bytes (`VmHWM` is the peak, `VmRSS` now).
fn memory_of(pid: u32, field: &str) -> u64 {
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

/// A served store and a scratch directory for the honest client's files.
struct Scene {
    dir: tempfile::TempDir,
    server: Server,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
        Self { dir, server }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// An honest push of a small file and of a chunked one, which must be stored.
    fn honest_push(&self, tag: &str) {
        let small = self.write(&format!("{tag}-small.txt"), &random_bytes(1, 4096));
        let chunked = self.write(&format!("{tag}-chunked.bin"), &random_bytes(2, 3 << 20));
        let sent = run([
            "send",
            "--to",
            &self.server.at(),
            p(&small),
            p(&chunked),
            "--json",
        ]);
        let summary = sent.ok().json();
        assert_eq!(summary["stored"], 2, "{summary}");
    }

    fn write(&self, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Asserts the peak so far, then drops the attacker's connections and waits (bounded) for
    /// serve's resident memory to come back down.
    fn finish(self, attackers: Vec<RawPeer>) {
        let peak = memory_of(self.server.pid(), "VmHWM");
        assert!(peak < PEAK_LIMIT, "serve peaked at {peak} bytes");
        drop(attackers);
        let deadline = Instant::now() + Duration::from_secs(30);
        let settled = loop {
            let now = memory_of(self.server.pid(), "VmRSS");
            if now < SETTLED_LIMIT || Instant::now() > deadline {
                break now;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert!(settled < SETTLED_LIMIT, "serve still holds {settled} bytes");
        self.honest_push("after");
        self.server.stop();
    }
}

/// Opens `count` connections, each sending a `Hello` and then whatever `attack` sends, on its
/// own thread; an attacker never reads, so the server's answers pile up on its side.
fn attackers(
    addr: SocketAddr,
    count: usize,
    attack: impl Fn(usize, &mut RawPeer) + Sync,
) -> Vec<RawPeer> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .map(|index| {
                let attack = &attack;
                scope.spawn(move || {
                    let mut peer = RawPeer::connect(addr);
                    peer.set_write_timeout(Duration::from_secs(2));
                    let hello = support::hello(net::message::PROTOCOL_VERSION);
                    peer.send_until_blocked(&net::frame::encode_request(&hello).unwrap());
                    attack(index, &mut peer);
                    peer
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Many connections each send all but the last 64 KiB of a body the server wanted, then
/// stall: the bytes are held only as they arrive, and the stalled holders are closed first.
#[test]
fn stalled_bodies_are_bounded() {
    let scene = Scene::new();
    let held = attackers(scene.addr(), 40, |index, peer| {
        let hash = *PartHash::of(&index.to_le_bytes()).as_bytes();
        let name = format!("stalled-{index}");
        let size = MAX_PART as u64;
        let kind = PartKind::Plain;
        let offer = Request::Offer {
            id: 1,
            name,
            hash,
            size,
            kind,
        };
        let mut frames = net::frame::encode_request(&offer).unwrap();
        frames.extend(net::frame::encode_request(&Request::Body { id: 1, size }).unwrap());
        frames.resize(frames.len() + MAX_PART - 64 * 1024, 7);
        peer.send_until_blocked(&frames);
    });
    scene.honest_push("during");
    scene.finish(held);
}

/// Connections pipeline `Get`s of the largest part and never read the answers.
#[test]
fn unread_gets_are_bounded() {
    let scene = Scene::new();
    let big = scene.write("big.bin", &random_bytes(3, MAX_PART));
    let part_size = MAX_PART.to_string();
    run([
        "send",
        "--to",
        &scene.server.at(),
        "--part-size",
        &part_size,
        p(&big),
    ])
    .ok();
    let held = attackers(scene.addr(), 24, |_, peer| {
        for id in 1..=16 {
            let get = Request::Get {
                id,
                name: "big.bin".into(),
            };
            peer.send_until_blocked(&net::frame::encode_request(&get).unwrap());
        }
    });
    scene.honest_push("during");
    scene.finish(held);
}

/// A connection pipelines thousands of full-page `List`s and never reads the pages.
#[test]
fn unread_lists_are_bounded() {
    let scene = Scene::new();
    let store = scene.dir.path().join("many");
    std::fs::create_dir(&store).unwrap();
    let files: Vec<String> = (0..2100u32)
        .map(|i| {
            let path = store.join(format!("part-with-a-longish-name-{i:05}"));
            std::fs::write(&path, i.to_le_bytes()).unwrap();
            p(&path).to_owned()
        })
        .collect();
    let mut send = vec!["send".to_owned(), "--to".to_owned(), scene.server.at()];
    send.extend(files);
    run(send).ok();
    let held = attackers(scene.addr(), 4, |_, peer| {
        for id in 1..=4096 {
            let list = Request::List {
                id,
                after: None,
                limit: 2048,
            };
            peer.send_until_blocked(&net::frame::encode_request(&list).unwrap());
        }
    });
    scene.honest_push("during");
    scene.finish(held);
}

/// Connections hold thousands of offers answered `Want` and never send their bodies.
#[test]
fn held_offers_are_bounded() {
    support::raise_fd_limit();
    let scene = Scene::new();
    let held = attackers(scene.addr(), 1000, |index, peer| {
        let mut frames = Vec::new();
        for id in 1..=4095u64 {
            let hash = *PartHash::of(&[index.to_le_bytes(), id.to_le_bytes()].concat()).as_bytes();
            let offer = Request::Offer {
                id,
                name: format!("offer-{index}-{id}"),
                hash,
                size: 1024,
                kind: PartKind::Plain,
            };
            frames.extend(net::frame::encode_request(&offer).unwrap());
        }
        peer.send_until_blocked(&frames);
    });
    scene.honest_push("during");
    scene.finish(held);
}
