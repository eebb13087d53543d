//! Hostile peers against one memory budget: each attack in `support/attacks.rs` runs against
//! the real `serve` with default flags while an honest client pushes, and serve's peak resident
//! memory (VmHWM in /proc: a memory figure, not a timing) must stay under 512 MiB. Once the
//! attacker leaves, the memory goes back and an honest push works again.

mod support;

use std::time::{Duration, Instant};

use support::RawPeer;
use support::attacks::{self, Attack, honest_push, memory_of};

/// What serve may reach at its peak, whatever the attack.
const PEAK_LIMIT: u64 = 512 * 1024 * 1024;

/// What serve must come back under once the attacker has gone.
const SETTLED_LIMIT: u64 = 256 * 1024 * 1024;

/// Half serve's default memory budget for peers: past it, a host over its share is read no
/// further.
const HALF_THE_BUDGET: u64 = 128 * 1024 * 1024;

fn withstands(attack: &Attack) {
    support::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let server = attacks::serve_prepared(attack, &dir.path().join("served.db"));
    let held = (attack.start)(server.addr());
    honest_push(&server, dir.path(), "during");
    let peak = memory_of(server.pid(), "VmHWM");
    assert!(
        peak < PEAK_LIMIT,
        "{}: serve peaked at {peak} bytes",
        attack.name
    );
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let now = memory_of(server.pid(), "VmRSS");
        if now < SETTLED_LIMIT || Instant::now() > deadline {
            break now;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        settled < SETTLED_LIMIT,
        "{}: serve still holds {settled} bytes",
        attack.name
    );
    honest_push(&server, dir.path(), "after");
    server.stop();
}

#[test]
fn stalled_bodies_are_bounded() {
    withstands(&attacks::ALL[0]);
}

#[test]
fn unread_gets_are_bounded() {
    withstands(&attacks::ALL[1]);
}

#[test]
fn unread_lists_are_bounded() {
    withstands(&attacks::ALL[2]);
}

#[test]
fn held_offers_are_bounded() {
    withstands(&attacks::ALL[3]);
}

#[test]
fn lists_on_a_big_store_do_not_hold_up_a_push() {
    withstands(&attacks::ALL[4]);
}

#[test]
fn manifest_bombs_are_bounded() {
    withstands(&attacks::ALL[5]);
}

#[test]
fn one_host_cannot_keep_others_out() {
    withstands(&attacks::ALL[6]);
}

#[test]
fn answers_read_at_a_trickle_are_bounded() {
    withstands(&attacks::ALL[7]);
}

/// A host whose connections hold more than half the server's memory, and read their answers at
/// a trickle so that none is closed for it, opens one more: its handshake is read at once, not
/// left to time out while the memory stays full.
#[test]
fn a_host_over_its_memory_share_still_completes_a_handshake() {
    support::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let attack = &attacks::ALL[7];
    let mut server = attacks::serve_prepared_with(
        attack,
        &dir.path().join("served.db"),
        &["--http", "127.0.0.1:0"],
    );
    let url = server.http_url();
    let held = (attack.start)(server.addr());
    let deadline = Instant::now() + Duration::from_secs(30);
    while support::metric(&url, "p2p_store_peer_memory_bytes") < HALF_THE_BUDGET {
        assert!(
            Instant::now() < deadline,
            "the attack never filled the memory"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut newcomer = RawPeer::connect_from(attacks::ATTACKER.into(), server.addr());
    newcomer.hello();
    drop(held);
    server.stop();
}
