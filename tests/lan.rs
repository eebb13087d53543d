//! LAN discovery across network namespaces on one bridge, as hosts on a switch (multicast does
//! not run on loopback): `serve --announce` in two, `peers` and `fetch --from ID` in a third.
//!
//! Needs root and iproute2; without them the namespace test says so and passes without
//! running, except in CI, where it fails.

mod support;

use std::process::Stdio;

use support::netns::{Namespaces, in_namespace, ip, serve, unavailable};
use support::{p, run};

/// Puts each of `peers` on one LAN: a veth link from each (address 10.202.0.N, N from 1) to a
/// bridge in the namespace `hub`, as hosts on a switch.
fn lan(hub: &str, peers: &[&str]) {
    ip(&["-n", hub, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", hub, "link", "set", "br0", "up"]);
    for (index, peer) in peers.iter().enumerate() {
        let (near, far) = (format!("p2pl{index}"), format!("p2plh{index}"));
        ip(&[
            "link", "add", &near, "netns", peer, "type", "veth", "peer", "name", &far, "netns", hub,
        ]);
        let addr = format!("10.202.0.{}/24", index + 1);
        ip(&["-n", peer, "addr", "add", &addr, "dev", &near]);
        ip(&["-n", peer, "link", "set", &near, "up"]);
        ip(&["-n", hub, "link", "set", &far, "master", "br0"]);
        ip(&["-n", hub, "link", "set", &far, "up"]);
    }
}

/// Runs the binary inside `namespace` and returns its stdout; it must succeed.
fn run_in(namespace: &str, args: &[&str]) -> String {
    let output = in_namespace(namespace)
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Finds every peer `client_ns` sees within a few rounds of `peers --json`, until `ids` are all
/// there; mDNS answers come within a second or two, and the rounds bound a slow start.
fn find_all(client_ns: &str, ids: &[&str]) -> serde_json::Value {
    let seen_all = |found: &serde_json::Value| {
        let found = found.as_array().unwrap();
        ids.iter()
            .all(|id| found.iter().any(|peer| peer["id"] == *id))
    };
    (0..5)
        .map(|_| run_in(client_ns, &["peers", "--wait", "3", "--json"]))
        .map(|out| serde_json::from_str::<serde_json::Value>(&out).unwrap())
        .find(seen_all)
        .unwrap_or_else(|| panic!("{ids:?} were never all found"))
}

#[test]
fn peers_announced_on_a_lan_are_found_and_fetched_from_by_id() {
    if let Some(why) = unavailable("lan") {
        return support::skip(&why);
    }
    let tag = format!("p2p-{}-lan", std::process::id());
    let names: Vec<String> = ["1", "2", "c", "hub"]
        .iter()
        .map(|n| format!("{tag}-{n}"))
        .collect();
    let _namespaces = Namespaces::create(&names);
    let [one_ns, two_ns, client_ns, hub] = [&names[0], &names[1], &names[2], &names[3]];
    lan(hub, &[one_ns, two_ns, client_ns]);

    let dir = tempfile::tempdir().unwrap();
    let client_db = dir.path().join("client.db");
    let mut peers = Vec::new();
    for (index, namespace) in [one_ns, two_ns].into_iter().enumerate() {
        let db = dir.path().join(format!("peer{index}.db"));
        let notes = dir.path().join(format!("notes{index}.txt"));
        std::fs::write(&notes, format!("held by peer {index}\n")).unwrap();
        run(["--db", p(&db), "import", p(&notes)]).ok();
        let id = run(["--db", p(&db), "id"]).ok().stdout().trim().to_owned();
        let host = format!("10.202.0.{}", index + 1);
        peers.push((id, serve(namespace, &db, &host, &["--announce"])));
    }
    let ids: Vec<&str> = peers.iter().map(|(id, _)| id.as_str()).collect();
    let found = find_all(client_ns, &ids);
    for (id, served) in &peers {
        let peer = found
            .as_array()
            .unwrap()
            .iter()
            .find(|peer| peer["id"] == id.as_str());
        assert_eq!(
            peer.unwrap()["addrs"],
            serde_json::json!([served.addr]),
            "{found}"
        );
    }
    let text = run_in(client_ns, &["peers", "--wait", "3"]);
    for (id, served) in &peers {
        assert!(text.contains(&format!("{id}\t{}", served.addr)), "{text}");
    }

    // Each by its ID alone, dialled pinned to it.
    for (id, _) in &peers {
        let fetched = run_in(
            client_ns,
            &["--db", p(&client_db), "fetch", "--from", id, "--json"],
        );
        let fetched: serde_json::Value = serde_json::from_str(&fetched).unwrap();
        assert_eq!(fetched["stored"], 1, "{fetched}");
    }
    let out = dir.path().join("out");
    run(["--db", p(&client_db), "export", p(&out)]).ok();
    for index in 0..2 {
        let exported = std::fs::read(out.join(format!("notes{index}.txt_recebida"))).unwrap();
        assert_eq!(exported, format!("held by peer {index}\n").as_bytes());
    }

    // An ID nobody announces is not found, and says so.
    let stranger = run(["--db", p(&dir.path().join("stranger.db")), "id"])
        .ok()
        .stdout();
    let missing = in_namespace(client_ns)
        .args(["--db", p(&client_db), "fetch", "--from", stranger.trim()])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let said = String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("no peer with this ID answered on the local network"),
        "{said}"
    );
}

/// A loopback address cannot be reached from another host: announcing it is refused.
#[test]
fn announcing_a_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peer.db");
    let refused = run([
        "--db",
        p(&db),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--announce",
    ])
    .fails(1);
    assert!(
        refused.stderr().contains("loopback"),
        "{}",
        refused.stderr()
    );
}

/// The same loopback written as an IPv4-mapped IPv6 address, or as IPv6's own, is refused
/// too. Found by `serve --listen [::ffff:127.0.0.1]:0 --announce`, which announced.
#[test]
fn announcing_a_loopback_address_in_ipv6_forms_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peer.db");
    for listen in ["[::ffff:127.0.0.1]:0", "[::1]:0"] {
        let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_p2p-store"))
            .args(["--db", p(&db), "serve", "--listen", listen, "--announce"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let status = loop {
            if let Some(status) = serve.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                serve.kill().unwrap();
                serve.wait().unwrap();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(serve.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{listen}: {stderr}");
        assert!(stderr.contains("loopback"), "{listen}: {stderr}");
    }
}

/// An ID with a mistyped character is caught by its check character, and said so, not as an
/// "invalid socket address" nor looked for on the network. Found by `list --from` an ID
/// with its last character changed.
#[test]
fn a_mistyped_peer_id_is_reported_as_one_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("peer.db");
    let failed = run([
        "--db",
        p(&db),
        "list",
        "--from",
        "SQEEK6XP2BY-45QJHYH4YKO-MTBBQ22G5J3",
    ])
    .fails(1);
    assert!(
        failed.stderr().contains("check character"),
        "{}",
        failed.stderr()
    );
}
