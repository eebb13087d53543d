//! Hostile peers written from PROTOCOL.md, each against a served store: what `tests/hostile.rs`
//! checks and `benches/hostile.rs` measures. An attacker reads nothing, or just enough to look
//! busy, so whatever the server answers piles up on its side; the attack holds its connections
//! until they are dropped.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::path::Path;

use net::frame::encode_request;
use net::message::{PROTOCOL_VERSION, Request};
use storage::{BackendKind, OnConflict, PartHash, PartKind, PartName, VerifiedPart};

use super::files::forged_manifest;
use super::{RawPeer, Server, hello, p, random_bytes, run};

/// The largest part a default server accepts.
pub const MAX_PART: usize = 16 * 1024 * 1024;

/// One way to make a server hold memory.
pub struct Attack {
    pub name: &'static str,
    /// Fills the store at this path with what the attack needs, before it is served.
    pub prepare: fn(&Path),
    /// Opens the attacker's connections and sends what it sends.
    pub start: fn(SocketAddr) -> Held,
}

/// What an attack holds until it is dropped: its connections, and for one that reads its
/// answers slowly, the thread reading them.
pub struct Held {
    _peers: Vec<RawPeer>,
    trickle: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Held {
    fn idle(peers: Vec<RawPeer>) -> Self {
        Self {
            _peers: peers,
            trickle: None,
        }
    }

    /// Reads [`TRICKLE_BYTES`] of each connection every [`TRICKLE_EVERY`], raw off the socket
    /// (the attacker has no use for what the answers say): the server sees its peer take its
    /// answers, so the connection never looks idle and is never closed for what it holds,
    /// which drains slowly.
    fn trickling(peers: Vec<RawPeer>) -> Self {
        let sockets: Vec<TcpStream> = peers.iter().map(RawPeer::socket).collect();
        for socket in &sockets {
            socket.set_nonblocking(true).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || trickle(&sockets, &stop))
        };
        Self {
            _peers: peers,
            trickle: Some((stop, reader)),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((stop, reader)) = self.trickle.take() {
            stop.store(true, Ordering::Relaxed);
            reader.join().unwrap();
        }
    }
}

/// How much a trickling attacker reads of each connection at a time, and how often. The server
/// sees a write make progress only once its socket has room again, so a peer that reads less
/// (64 or 256 KiB at a time, measured) still goes a second without the server seeing progress,
/// and some of the 24 connections are closed for what they hold; at 1 MiB none is.
const TRICKLE_BYTES: usize = 1024 * 1024;
const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// The longest a trickle goes on if nobody stops it.
const TRICKLE_AT_MOST: Duration = Duration::from_secs(600);

fn trickle(sockets: &[TcpStream], stop: &AtomicBool) {
    let mut bytes = vec![0; TRICKLE_BYTES];
    let deadline = Instant::now() + TRICKLE_AT_MOST;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        for mut socket in sockets {
            // Nothing waiting, or the server closed it: either way, on to the next.
            let _ = socket.read(&mut bytes);
        }
        std::thread::sleep(TRICKLE_EVERY);
    }
}

/// Every attack, in the order they are reported.
pub const ALL: [Attack; 8] = [
    Attack {
        name: "40 connections stall 16 MiB bodies 64 KiB short",
        prepare: |_| {},
        start: |addr| Held::idle(stalled_bodies(addr)),
    },
    Attack {
        name: "24 connections pipeline 16 Gets of a 16 MiB part, never read",
        prepare: store_big_part,
        start: |addr| Held::idle(unread_gets(addr)),
    },
    Attack {
        name: "4 connections pipeline 4,096 full-page Lists, never read",
        prepare: store_many_parts,
        start: |addr| Held::idle(unread_lists(addr)),
    },
    Attack {
        name: "1,000 connections send 4,095 offers each, never their bodies",
        prepare: |_| {},
        start: |addr| Held::idle(held_offers(addr)),
    },
    Attack {
        name: "1 connection pipelines 300 Lists of 1 on a store of 200,000 parts, never reads",
        prepare: store_200k_parts,
        start: |addr| Held::idle(small_lists_on_a_big_store(addr)),
    },
    Attack {
        name: "a manifest listing one 1 MiB chunk 500,000 times",
        prepare: |_| {},
        start: |addr| Held::idle(manifest_bomb(addr)),
    },
    Attack {
        name: "one host opens 1,024 connections, each sending a List",
        prepare: |_| {},
        start: |addr| Held::idle(one_host_takes_every_slot(addr)),
    },
    Attack {
        name: "24 connections pipeline 16 Gets of a 16 MiB part, read 1 MiB every 200 ms",
        prepare: store_big_part,
        start: |addr| Held::trickling(unread_gets(addr)),
    },
];

/// Serves the store at `db` once `attack` has prepared it, as `serve` with default flags.
pub fn serve_prepared(attack: &Attack, db: &Path) -> Server {
    serve_prepared_with(attack, db, &[])
}

/// Serves the store at `db` once `attack` has prepared it, as `serve` with default flags and
/// `extra`, which set no limit.
pub fn serve_prepared_with(attack: &Attack, db: &Path, extra: &[&str]) -> Server {
    (attack.prepare)(db);
    super::start_server(db, BackendKind::Sled, extra)
}

/// Puts `parts` into a new sled store at `db`, one sync per ten thousand.
fn fill(db: &Path, parts: impl Iterator<Item = (String, Vec<u8>)>) {
    let store = storage::open_store(db, Some(BackendKind::Sled)).unwrap();
    let parts: Vec<VerifiedPart> = parts
        .map(|(name, bytes)| VerifiedPart::hashing(PartName::new(name).unwrap(), bytes).unwrap())
        .collect();
    for batch in parts.chunks(10_000) {
        store.put_batch(batch, OnConflict::Refuse).unwrap();
    }
    drop(store);
    wait_for_sled_to_let_go(&db.join("index/db"));
}

/// sled's background threads hold its index's lock for a moment after the store is dropped;
/// `serve` could not open the store until they let go.
fn wait_for_sled_to_let_go(index: &Path) {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(index).unwrap();
    for _ in 0..500 {
        // SAFETY: flock only takes and drops a lock on the open descriptor.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            // SAFETY: as above.
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("sled still holds {} after 10 s", index.display());
}

/// Connections an attacking host opens, under the server's default cap per address.
const PER_HOST: usize = 100;

/// The first attacking host; the next ones follow it.
pub const ATTACKER: [u8; 4] = [127, 0, 1, 1];

/// Opens `count` connections from hosts of their own (127.0.1.1, 127.0.1.2, ...: the
/// honest client on 127.0.0.1 shares no per-address cap with them), each sending a `Hello`
/// and then what `frames` gives it, on its own thread. Every connection has its TLS session
/// before any sends: what the first ones ask for can fill the server's memory, and a host
/// over its share waits for memory to come back before its next connections are read, so
/// under load their handshakes would time out.
fn attackers(
    addr: SocketAddr,
    count: usize,
    frames: impl Fn(usize) -> Vec<u8> + Sync,
) -> Vec<RawPeer> {
    let peers = on_threads((0..count).collect(), |index| {
        let [a, b, c, first] = ATTACKER;
        let host = first + u8::try_from(index / PER_HOST).expect("under 25,500");
        (index, RawPeer::connect_from([a, b, c, host].into(), addr))
    });
    on_threads(peers, |(index, mut peer)| {
        peer.set_write_timeout(Duration::from_secs(2));
        let mut bytes = encode_request(&hello(PROTOCOL_VERSION)).unwrap();
        bytes.extend(frames(index));
        peer.send_until_blocked(&bytes);
        peer
    })
}

/// `work` done on each of `items`, each on a thread of its own; the results in order.
fn on_threads<T: Send, R: Send>(items: Vec<T>, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let work = &work;
                scope.spawn(move || work(item))
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

fn store_big_part(db: &Path) {
    fill(
        db,
        std::iter::once(("big.bin".into(), random_bytes(3, MAX_PART))),
    );
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

fn store_many_parts(db: &Path) {
    let name = |i: u32| format!("part-with-a-longish-name-{i:05}");
    fill(
        db,
        (0..2100u32).map(|i| (name(i), i.to_le_bytes().to_vec())),
    );
}

fn store_200k_parts(db: &Path) {
    fill(
        db,
        (0..200_000u32).map(|i| (format!("p{i:06}"), i.to_le_bytes().to_vec())),
    );
}

/// Every page costs what one page costs, whatever the store holds, and readers take turns.
fn small_lists_on_a_big_store(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 1, |_| {
        (1..=300)
            .flat_map(|id| {
                encode_request(&Request::List {
                    id,
                    after: None,
                    limit: 1,
                })
                .unwrap()
            })
            .collect()
    })
}

/// One chunk, then a manifest just under the default part limit listing it 500,000 times.
fn manifest_bomb(addr: SocketAddr) -> Vec<RawPeer> {
    attackers(addr, 1, |_| {
        let zeros = vec![0u8; 1 << 20];
        let chunk = PartHash::of(&zeros);
        let bomb = forged_manifest(1 << 20, 500_000, &vec![chunk; 500_000]);
        let mut frames = Vec::new();
        for (id, name, bytes, kind) in [
            (
                1,
                PartName::chunk(&chunk).to_string(),
                zeros.as_slice(),
                PartKind::Plain,
            ),
            (
                2,
                "bomb.bin".to_owned(),
                bomb.as_slice(),
                PartKind::Manifest,
            ),
        ] {
            let (hash, size) = (*PartHash::of(bytes).as_bytes(), bytes.len() as u64);
            frames.extend(
                encode_request(&Request::Offer {
                    id,
                    name,
                    hash,
                    size,
                    kind,
                })
                .unwrap(),
            );
            frames.extend(encode_request(&Request::Body { id, size }).unwrap());
            frames.extend_from_slice(bytes);
        }
        frames
    })
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
    // Content of the tag's own: a push must not find its chunks stored by an earlier one.
    let seed = tag
        .bytes()
        .fold(0u64, |seed, byte| seed.wrapping_mul(257) ^ u64::from(byte));
    let small = dir.join(format!("{tag}-small.txt"));
    std::fs::write(&small, random_bytes(seed, 4096)).unwrap();
    let chunked = dir.join(format!("{tag}-chunked.bin"));
    std::fs::write(&chunked, random_bytes(seed ^ (1 << 63), 3 << 20)).unwrap();
    let sent = run([
        "send",
        "--to",
        &server.at(),
        p(&small),
        p(&chunked),
        "--json",
    ]);
    assert_eq!(
        sent.code(),
        0,
        "the honest push failed: {}\nserve's log:\n{}",
        sent.stderr(),
        server.log()
    );
    let summary = sent.json();
    assert_eq!(summary["stored"], 2, "{summary}");
}

/// One host asks for every connection the server holds and keeps those it gets busy enough
/// not to look idle.
fn one_host_takes_every_slot(addr: SocketAddr) -> Vec<RawPeer> {
    (1..=1024)
        .map(|id| {
            let mut peer = RawPeer::connect_from([127, 0, 2, 1].into(), addr);
            peer.set_write_timeout(Duration::from_secs(2));
            let mut bytes = encode_request(&hello(PROTOCOL_VERSION)).unwrap();
            let list = Request::List {
                id,
                after: None,
                limit: 1,
            };
            bytes.extend(encode_request(&list).unwrap());
            peer.send_until_blocked(&bytes);
            peer
        })
        .collect()
}
