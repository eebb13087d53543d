//! Peers across network namespaces made for the test, each a real process behind a veth link
//! shaped by `tc tbf`: a link cut in the middle of a push, and one file fetched from three
//! peers. For the fetch:
//!
//! Fetching one file from three peers, each a real process in its own network namespace,
//! each link shaped by `tc tbf` to the same rate: the peers share the work, so the fetch takes
//! well under the time the same fetch from one peer takes. The links, not the machine, set the
//! pace, which is what makes the comparison meaningful here.
//!
//! Needs root and iproute2; without them the test says so and passes without running, except
//! in CI, where it fails.

mod support;

use support::netns::{Namespaces, Served, in_namespace, ip, serve, unavailable};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use storage::PartHash;

/// Each peer's link to the fetching host.
const RATE: &str = "24mbit";
const FILE_SIZE: usize = 12 * 1024 * 1024;
const PEERS: usize = 3;

/// Links the client namespace to peer `index`'s over a veth pair, shaping both directions.
fn link(client: &str, peer: &str, index: usize) -> String {
    let (near, far) = (format!("p2pc{index}"), format!("p2pp{index}"));
    ip(&[
        "link", "add", &near, "netns", client, "type", "veth", "peer", "name", &far, "netns", peer,
    ]);
    let client_addr = format!("10.201.{index}.1/24");
    let peer_addr = format!("10.201.{index}.2");
    ip(&["-n", client, "addr", "add", &client_addr, "dev", &near]);
    ip(&[
        "-n",
        peer,
        "addr",
        "add",
        &format!("{peer_addr}/24"),
        "dev",
        &far,
    ]);
    for (namespace, dev) in [(client, &near), (peer, &far)] {
        ip(&["-n", namespace, "link", "set", dev, "up"]);
        let status = Command::new("ip")
            .args([
                "netns", "exec", namespace, "tc", "qdisc", "add", "dev", dev, "root",
            ])
            .args(["tbf", "rate", RATE, "burst", "32kbit", "latency", "400ms"])
            .status()
            .unwrap();
        assert!(status.success(), "tc on {dev} failed");
    }
    peer_addr
}

/// Fetches everything from `peers` into `db` inside `namespace`; returns the JSON summary and
/// how long it took.
fn fetch(namespace: &str, db: &Path, peers: &[&Served]) -> (serde_json::Value, Duration) {
    let mut command = in_namespace(namespace);
    command.arg("--db").arg(db).args(["fetch", "--json"]);
    for peer in peers {
        command.args(["--from", &peer.addr]);
    }
    let started = Instant::now();
    let output = command.output().unwrap();
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "fetch failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (serde_json::from_slice(&output.stdout).unwrap(), took)
}

/// Three peers in namespaces of their own, each holding the same file, behind shaped links.
struct Testbed {
    dir: tempfile::TempDir,
    bytes: Vec<u8>,
    client: String,
    served: Vec<Served>,
    _namespaces: Namespaces,
}

impl Testbed {
    fn new(tag: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0; FILE_SIZE];
        fastrand::Rng::with_seed(11).fill(&mut bytes);
        let file = dir.path().join("image.bin");
        std::fs::write(&file, &bytes).unwrap();

        let tag = format!("p2p-{}-{tag}", std::process::id());
        let client = format!("{tag}-c");
        let peers: Vec<String> = (1..=PEERS).map(|i| format!("{tag}-{i}")).collect();
        let mut all = vec![client.clone()];
        all.extend(peers.iter().cloned());
        let namespaces = Namespaces::create(&all);

        let mut served = Vec::new();
        for (index, namespace) in peers.iter().enumerate() {
            let host = link(&client, namespace, index + 1);
            let db = dir.path().join(format!("peer{index}.db"));
            let imported = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
                .arg("--db")
                .arg(&db)
                .arg("import")
                .arg(&file)
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(imported.success());
            served.push(serve(namespace, &db, &host, &[]));
        }
        Self {
            dir,
            bytes,
            client,
            served,
            _namespaces: namespaces,
        }
    }

    /// Exports the file from `db` and checks it is the one the peers hold.
    fn check_exported(&self, db: &str) {
        let out = self.dir.path().join(format!("{db}.out"));
        let exported = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .arg("--db")
            .arg(self.dir.path().join(db))
            .arg("export")
            .arg(&out)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(exported.success());
        let written = std::fs::read(out.join("image.bin_recebida")).unwrap();
        assert_eq!(PartHash::of(&written), PartHash::of(&self.bytes));
    }
}

#[test]
fn three_shaped_peers_share_one_fetch() {
    if let Some(why) = unavailable("share") {
        support::skip(&why);
        return;
    }
    let bed = Testbed::new("share");
    let (one, alone) = fetch(
        &bed.client,
        &bed.dir.path().join("one.db"),
        &[&bed.served[0]],
    );
    let all_peers: Vec<&Served> = bed.served.iter().collect();
    let (three, shared) = fetch(&bed.client, &bed.dir.path().join("three.db"), &all_peers);

    assert_eq!(one["stored"], 1);
    assert_eq!(three["stored"], 1);
    for peer in &bed.served {
        let from_peer = three["peers"][&peer.addr].as_u64().unwrap();
        assert!(from_peer > 0, "{} sent nothing: {three}", peer.addr);
    }
    bed.check_exported("three.db");
    eprintln!("one peer: {alone:?}; three peers: {shared:?} (links shaped to {RATE} each)");
}

/// One of three peers is killed while the fetch runs: the others deliver its parts.
#[test]
fn a_peer_killed_mid_fetch_is_dropped_and_the_others_finish() {
    if let Some(why) = unavailable("kill") {
        support::skip(&why);
        return;
    }
    let mut bed = Testbed::new("kill");
    let mut command = in_namespace(&bed.client);
    command
        .arg("--db")
        .arg(bed.dir.path().join("three.db"))
        .args(["fetch", "--json"]);
    for peer in &bed.served {
        command.args(["--from", &peer.addr]);
    }
    let fetching = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each peer's share takes about a second and a half over its link; this is well inside it.
    std::thread::sleep(Duration::from_millis(400));
    let victim = bed.served[1].addr.clone();
    bed.served[1].child.kill().unwrap();
    let output = fetching.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "fetch failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["stored"], 1, "{summary}");
    assert!(
        stderr.contains(&victim) && stderr.contains("dropped"),
        "the killed peer is not named: {stderr}"
    );
    bed.check_exported("three.db");
}

/// The link is cut in the middle of a push and restored later: the sender reports the failure
/// (never a success), and the same push run again completes, moving only what was missing.
#[test]
fn a_link_cut_mid_push_fails_the_send_and_a_rerun_completes() {
    if let Some(why) = unavailable("cut") {
        support::skip(&why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = vec![0; FILE_SIZE];
    fastrand::Rng::with_seed(12).fill(&mut bytes);
    let file = dir.path().join("image.bin");
    std::fs::write(&file, &bytes).unwrap();
    let tag = format!("p2p-{}-cut", std::process::id());
    let (client, peer) = (format!("{tag}-c"), format!("{tag}-1"));
    let _namespaces = Namespaces::create(&[client.clone(), peer.clone()]);
    let host = link(&client, &peer, 1);
    let served = serve(&peer, &dir.path().join("peer.db"), &host, &[]);

    let push = || {
        let mut command = in_namespace(&client);
        command
            .args(["send", "--timeout", "3", "--json", "--to", &served.addr])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let pushing = push().spawn().unwrap();
    // The whole file takes about four seconds over the link; cut it part way.
    std::thread::sleep(Duration::from_millis(1500));
    ip(&["-n", &client, "link", "set", "p2pc1", "down"]);
    let cut = pushing.wait_with_output().unwrap();
    assert!(
        !cut.status.success(),
        "a push over a cut link reported success"
    );
    assert!(
        cut.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&cut.stdout)
    );

    ip(&["-n", &client, "link", "set", "p2pc1", "up"]);
    let rerun = push().output().unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert!(rerun.status.success(), "the rerun failed: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&rerun.stdout).unwrap();
    assert_eq!(summary["stored"], 1, "{summary}");
    let sent = summary["bytes_sent"].as_u64().unwrap();
    assert!(
        sent < FILE_SIZE as u64,
        "the rerun sent {sent} bytes: the chunks stored before the cut moved again"
    );

    let out = dir.path().join("out");
    let exported = in_namespace(&client)
        .args(["export", "--from", &served.addr])
        .arg(&out)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(exported.success());
    let written = std::fs::read(out.join("image.bin_recebida")).unwrap();
    assert_eq!(PartHash::of(&written), PartHash::of(&bytes));
}
