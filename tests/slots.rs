//! No single host can keep the others out: hosts that take every connection they can get, from
//! one loopback address, from many, or from the many addresses of one IPv6 /64, against the
//! real `serve` with default flags. Each test then needs an honest `send` from another host to
//! get in and complete, and serve's peak memory to stay in bounds.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use net::Limits;
use net::message::{ErrorCode, PROTOCOL_VERSION, Request, Response};
use storage::BackendKind;
use support::netns::{self, Namespaces};
use support::{
    RawPeer, Server, hello, p, plain_from, raise_fd_limit, random_bytes, start_server,
    start_server_in_namespace, write_files,
};

/// Serve's peak resident memory must stay under this during an attack.
const MAX_PEAK_RSS_KIB: u64 = 512 * 1024;

/// How a connection from an attacking host fared.
enum Greeting {
    Welcomed(RawPeer),
    Refused(ErrorCode),
}

/// Connects to `server` from the local address `from` (any of 127.0.0.0/8 is this machine)
/// and says `Hello`: the server answers `Welcome`, or an `Error` (before TLS, at the door) and
/// closes.
fn greet_from(from: IpAddr, server: SocketAddr) -> Greeting {
    let mut peer = RawPeer::connect_from(from, server);
    peer.send(&hello(PROTOCOL_VERSION), &[]);
    match peer.receive() {
        Some(Response::Welcome { .. }) => Greeting::Welcomed(peer),
        Some(Response::Error { code, .. }) => Greeting::Refused(code),
        other => panic!("expected Welcome or an Error, got {other:?}"),
    }
}

/// The peak resident memory of a process so far, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `p2p-store send` of one small file from 127.0.0.1, which must be stored.
fn honest_send(server: &Server, dir: &std::path::Path, seed: u64) {
    honest_send_by(
        Command::new(env!("CARGO_BIN_EXE_p2p-store")),
        server,
        dir,
        seed,
    );
}

/// [`honest_send`] by `client`, a command that runs the binary where the client is.
fn honest_send_by(mut client: Command, server: &Server, dir: &std::path::Path, seed: u64) {
    let name = format!("honest-{seed}.bin");
    let files = write_files(dir, &[(&name, random_bytes(seed, 5000))]);
    let sent = client
        .args(["send", "--to", &server.at(), p(&files[0])])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && stdout.contains(&format!("stored {name}")),
        "{stdout}{}\nserve's log:\n{}",
        String::from_utf8_lossy(&sent.stderr),
        server.log()
    );
}

/// Greets `server` again and again, from the address `source` gives for each attempt, and
/// holds every connection it is given, until the server has refused 20 with
/// `TooManyConnections`.
fn hold_every_connection_given(
    server: SocketAddr,
    source: impl Fn(usize) -> IpAddr,
) -> Vec<RawPeer> {
    let defaults = Limits::default();
    let mut held = Vec::new();
    let mut refusals = 0;
    for attempt in 0..defaults.max_connections + 100 {
        match greet_from(source(attempt), server) {
            Greeting::Welcomed(stream) => held.push(stream),
            Greeting::Refused(code) => {
                assert_eq!(code, ErrorCode::TooManyConnections);
                refusals += 1;
                if refusals == 20 {
                    break;
                }
            }
        }
    }
    held
}

fn assert_peak_rss_in_bounds(server: &Server) {
    let peak = peak_rss_kib(server.pid());
    eprintln!("serve peak RSS: {peak} KiB");
    assert!(
        peak < MAX_PEAK_RSS_KIB,
        "serve peaked at {peak} KiB of resident memory"
    );
}

/// 127.0.0.2 opens connection after connection and holds each with a handshake until the
/// server refuses it: it gets its share and no more, and 127.0.0.1 is served meanwhile.
#[test]
fn one_host_holding_every_connection_it_can_get_cannot_keep_another_out() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    let held = hold_every_connection_given(server.addr(), |_| attacker.into());
    assert_eq!(held.len(), Limits::default().max_connections_per_address);

    honest_send(&server, &dir.path().join("in"), 1);
    assert_peak_rss_in_bounds(&server);
    drop(held);
    server.stop();
}

/// An IPv6 host has a whole /64 to connect from. 2001:db8:1::/64 opens connection after
/// connection, each from an address of its own, and holds each: between them they get one
/// host's share and no more, and a newcomer from ::1 is served meanwhile.
#[test]
fn an_ipv6_host_gets_one_share_whichever_addresses_of_its_64_it_uses() {
    if let Some(why) = netns::unavailable("slots6") {
        support::skip(&why);
        return;
    }
    raise_fd_limit();
    let namespace = format!("p2p-{}-slots6", std::process::id());
    let _namespaces = Namespaces::create(std::slice::from_ref(&namespace));
    netns::route_to_lo(&namespace, "2001:db8:1::/64");
    let dir = tempfile::tempdir().unwrap();
    let server = start_server_in_namespace(&namespace, &dir.path().join("served.db"), "[::1]:0");

    let held = std::thread::scope(|scope| {
        let attacker = scope.spawn(|| {
            netns::enter(&namespace);
            hold_every_connection_given(server.addr(), |attempt| {
                let low = u16::try_from(attempt + 1).expect("under 65,536 attempts");
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, low).into()
            })
        });
        attacker.join().unwrap()
    });
    assert_eq!(held.len(), Limits::default().max_connections_per_address);

    honest_send_by(
        netns::in_namespace(&namespace),
        &server,
        &dir.path().join("in"),
        3,
    );
    assert_peak_rss_in_bounds(&server);
    drop(held);
    server.stop();
}

/// Threads a flood of connections is spread over.
const FLOOD_THREADS: usize = 9;

/// The sources of a flood of `hosts` hosts of 127.0.1.x each connecting as many times as one
/// host may: from eight such hosts on, they fill the server.
fn hosts_at_their_cap(hosts: usize) -> Vec<IpAddr> {
    let per_host = Limits::default().max_connections_per_address;
    (1..=hosts)
        .flat_map(|host| {
            std::iter::repeat_n(
                IpAddr::from([127, 0, 1, u8::try_from(host).unwrap()]),
                per_host,
            )
        })
        .collect()
}

/// The sources of a flood filling the server from one connection per host, 127.0.1.1,
/// 127.0.1.2, ... on into 127.0.2.x: no host holds more than its fair share, so a newcomer
/// gets in only by the eviction of an idle connection.
fn one_host_per_slot() -> Vec<IpAddr> {
    (0..Limits::default().max_connections)
        .map(|index| {
            let [third, fourth] =
                [1 + index / 250, 1 + index % 250].map(|byte| u8::try_from(byte).unwrap());
            IpAddr::from([127, 0, third, fourth])
        })
        .collect()
}

/// Greets `server` once from each of `sources`, spread over [`FLOOD_THREADS`] threads, and
/// does `then` with each connection welcomed. Returns every connection welcomed, which must be
/// at least as many as the server holds.
fn flood_of_greeted(
    server: SocketAddr,
    sources: &[IpAddr],
    then: fn(&mut RawPeer),
) -> Vec<RawPeer> {
    let greetings: Vec<Greeting> = std::thread::scope(|scope| {
        let floods: Vec<_> = sources
            .chunks(sources.len().div_ceil(FLOOD_THREADS))
            .map(|sources| {
                scope.spawn(move || {
                    let mut greetings = Vec::with_capacity(sources.len());
                    for &from in sources {
                        let mut greeting = greet_from(from, server);
                        if let Greeting::Welcomed(peer) = &mut greeting {
                            then(peer);
                        }
                        greetings.push(greeting);
                    }
                    greetings
                })
            })
            .collect();
        floods
            .into_iter()
            .flat_map(|flood| flood.join().unwrap())
            .collect()
    });
    let mut held = Vec::new();
    let mut busy = 0;
    for greeting in greetings {
        match greeting {
            Greeting::Welcomed(peer) => held.push(peer),
            Greeting::Refused(ErrorCode::Busy) => busy += 1,
            Greeting::Refused(code) => panic!("a flood connection was refused with {code:?}"),
        }
    }
    let max_connections = Limits::default().max_connections;
    assert!(
        held.len() >= max_connections,
        "the flood got only {} connections ({busy} told Busy)",
        held.len()
    );
    held
}

/// 1,024 hosts take a connection each, every slot of the server between them, and then
/// sit idle: none holds more than its share, yet a newcomer from 127.0.0.1 gets in by the
/// eviction of one of them, which is told so.
#[test]
fn a_full_server_evicts_an_idle_connection_to_let_a_newcomer_in() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let mut held = flood_of_greeted(server.addr(), &one_host_per_slot(), |_| {});

    // Past the time a connection must have been idle to be evicted.
    std::thread::sleep(Duration::from_millis(1500));
    honest_send(&server, &dir.path().join("in"), 2);
    assert_peak_rss_in_bounds(&server);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut evicted = 0;
    for peer in &mut held {
        if peer.has_waiting_bytes() {
            match peer.receive() {
                Some(Response::Error {
                    code: ErrorCode::Evicted,
                    ..
                }) => evicted += 1,
                None => {}
                other => panic!("a held connection got {other:?}"),
            }
        }
        assert!(Instant::now() < deadline, "looking at the held connections");
    }
    assert!(evicted >= 1, "no held connection was told it was evicted");
    drop(held);
    server.stop();
}

/// 1,024 hosts open a connection each, every slot of the server between them, and never
/// begin a handshake (serve waits a minute for one here, so none ends on its own during the
/// test). The server is full and no host is over its share: a newcomer is told `Busy` at once.
/// A second later, a newcomer from 127.0.0.1 gets in by the eviction of one of them, and is
/// served.
#[test]
fn a_full_server_evicts_a_stalled_handshake_to_let_a_newcomer_in() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("served.db"),
        BackendKind::Sled,
        &["--handshake-timeout", "60"],
    );
    let held: Vec<_> = one_host_per_slot()
        .into_iter()
        .map(|from| plain_from(from, server.addr()))
        .collect();
    // Accepted after every one of them (the kernel queues connections in order).
    match greet_from(IpAddr::from([127, 0, 9, 1]), server.addr()) {
        Greeting::Refused(ErrorCode::Busy) => {}
        Greeting::Refused(code) => panic!("the probe was refused with {code:?}"),
        Greeting::Welcomed(_) => panic!("the server was not full"),
    }

    // Past the time a handshake must have stalled to be evicted.
    std::thread::sleep(Duration::from_millis(1500));
    honest_send(&server, &dir.path().join("in"), 4);
    assert_peak_rss_in_bounds(&server);
    drop(held);
    server.stop();
}

/// As with idle connections, one per host, but each one, once welcomed, sends the first two
/// bytes of a frame's length and nothing more: it is not idle, since a frame has begun, yet
/// its peer has stopped while serve would read on. A second later, a newcomer from 127.0.0.1
/// gets in by the eviction of one of them, and is served.
#[test]
fn a_full_server_evicts_a_connection_stopped_mid_frame_to_let_a_newcomer_in() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let held = flood_of_greeted(server.addr(), &one_host_per_slot(), |peer| {
        peer.send_raw(&[0x10, 0])
    });

    // Past the time a peer must have stopped to be evicted.
    std::thread::sleep(Duration::from_millis(1500));
    honest_send(&server, &dir.path().join("in"), 5);
    assert_peak_rss_in_bounds(&server);
    drop(held);
    server.stop();
}

/// Every connection of a full server, nine hosts' worth, asks for a page of the list at once.
/// The pages charged for fill half the server's memory within one turn and stop the hosts
/// over their share; the workers' answers bring it down before the next. Each connection is
/// still answered (or was told it was evicted while the flood came in), none left waiting.
#[test]
fn every_connection_of_a_full_server_is_answered() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &[]);
    let mut held = flood_of_greeted(server.addr(), &hosts_at_their_cap(9), |_| {});
    let list = Request::List {
        id: 1,
        after: None,
        limit: 10,
    };
    for peer in &mut held {
        peer.send(&list, &[]);
    }
    let mut answered = 0;
    for peer in &mut held {
        match peer.receive() {
            Some(Response::Page { id: 1, .. }) => answered += 1,
            Some(Response::Error {
                code: ErrorCode::Evicted,
                ..
            }) => {}
            other => panic!("after {answered} pages, a connection got {other:?}"),
        }
    }
    drop(held);
    server.stop();
}

/// Eight hosts of 127.0.1.x take their share each, every slot of the server between them, and
/// keep every connection busy: each asks for a page of the list, all at once, round after
/// round, so none is idle for a second. A newcomer from 127.0.0.1 still gets in, by taking a
/// slot from a host over its share, and is served; the connection it took is told so.
#[test]
fn hosts_keeping_every_slot_busy_give_one_up_to_a_newcomer() {
    raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("served.db"), BackendKind::Sled, &["-v"]);
    let held = flood_of_greeted(server.addr(), &hosts_at_their_cap(8), |_| {});
    let busy = KeptBusy::start(held);
    busy.wait_for_rounds(3);

    honest_send(&server, &dir.path().join("in"), 6);
    let evicted = busy.stop();
    assert!(evicted >= 1, "no busy connection was told it was evicted");
    // Not one idle for a second, which a slow round would have left.
    let over_share = "evicting a connection of a host over its share";
    let log = server.log_with(|line| line.contains(over_share));
    assert!(log.contains(over_share), "no eviction for a share:\n{log}");
    assert_peak_rss_in_bounds(&server);
    server.stop();
}

/// Connections asking for a page of the list, all at once and then reading every answer,
/// round after round on a thread of their own, until stopped.
struct KeptBusy {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl KeptBusy {
    fn start(mut peers: Vec<RawPeer>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicUsize::new(0));
        let (stop_seen, rounds_done) = (stop.clone(), rounds.clone());
        let thread = std::thread::spawn(move || {
            let list = Request::List {
                id: 1,
                after: None,
                limit: 10,
            };
            let mut evicted = 0;
            let mut slowest = Duration::ZERO;
            while !stop_seen.load(Ordering::Relaxed) {
                let started = Instant::now();
                for peer in &mut peers {
                    peer.send(&list, &[]);
                }
                peers.retain_mut(|peer| match peer.receive() {
                    Some(Response::Page { id: 1, .. }) => true,
                    Some(Response::Error {
                        code: ErrorCode::Evicted,
                        ..
                    }) => {
                        evicted += 1;
                        false
                    }
                    other => panic!("a busy connection got {other:?}"),
                });
                rounds_done.fetch_add(1, Ordering::Relaxed);
                slowest = slowest.max(started.elapsed());
            }
            eprintln!("the slowest round of requests took {slowest:?}");
            evicted
        });
        Self {
            stop,
            rounds,
            thread: Some(thread),
        }
    }

    /// Waits until `count` rounds are done, at most a minute.
    fn wait_for_rounds(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.rounds.load(Ordering::Relaxed) < count {
            assert!(
                Instant::now() < deadline,
                "the busy connections made no progress"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the rounds; returns how many connections were told they were evicted.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for KeptBusy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
