//! LAN discovery across two network namespaces joined by a veth link (multicast does not run
//! on loopback): `serve --announce` in one, `peers` and `fetch --from ID` in the other.
//!
//! Needs root and iproute2; without them the namespace test says so and passes without
//! running, except in CI, where it fails.

mod support;

use std::process::Stdio;

use support::netns::{Namespaces, in_namespace, ip, serve, unavailable};
use support::{p, run};

/// Joins `a` (10.202.0.1) and `b` (10.202.0.2) with a veth pair.
fn join(a: &str, b: &str) {
    ip(&[
        "link", "add", "p2plana", "netns", a, "type", "veth", "peer", "name", "p2planb", "netns", b,
    ]);
    for (namespace, dev, addr) in [
        (a, "p2plana", "10.202.0.1/24"),
        (b, "p2planb", "10.202.0.2/24"),
    ] {
        ip(&["-n", namespace, "addr", "add", addr, "dev", dev]);
        ip(&["-n", namespace, "link", "set", dev, "up"]);
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

#[test]
fn a_peer_announced_in_one_namespace_is_found_and_fetched_from_by_id_in_another() {
    if let Some(why) = unavailable("lan") {
        return support::skip(&why);
    }
    let tag = format!("p2p-{}-lan", std::process::id());
    let (server_ns, client_ns) = (format!("{tag}-s"), format!("{tag}-c"));
    let _namespaces = Namespaces::create(&[server_ns.clone(), client_ns.clone()]);
    join(&server_ns, &client_ns);

    let dir = tempfile::tempdir().unwrap();
    let (server_db, client_db) = (dir.path().join("server.db"), dir.path().join("client.db"));
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, b"found on the local network\n").unwrap();
    run(["--db", p(&server_db), "import", p(&notes)]).ok();
    let id = run(["--db", p(&server_db), "id"])
        .ok()
        .stdout()
        .trim()
        .to_owned();
    let served = serve(&server_ns, &server_db, "10.202.0.1", &["--announce"]);

    // mDNS answers come within a second or two; a few rounds bound a slow start.
    let found = (0..5)
        .map(|_| run_in(&client_ns, &["peers", "--wait", "3", "--json"]))
        .map(|out| serde_json::from_str::<serde_json::Value>(&out).unwrap())
        .find(|found| {
            found
                .as_array()
                .unwrap()
                .iter()
                .any(|peer| peer["id"] == id.as_str())
        })
        .unwrap_or_else(|| panic!("{id} was never found"));
    let peer = found
        .as_array()
        .unwrap()
        .iter()
        .find(|peer| peer["id"] == id.as_str())
        .unwrap();
    assert_eq!(peer["addrs"], serde_json::json!([served.addr]), "{found}");

    let text = run_in(&client_ns, &["peers", "--wait", "3"]);
    assert!(text.contains(&format!("{id}\t{}", served.addr)), "{text}");

    let fetched = run_in(
        &client_ns,
        &["--db", p(&client_db), "fetch", "--from", &id, "--json"],
    );
    let fetched: serde_json::Value = serde_json::from_str(&fetched).unwrap();
    assert_eq!(fetched["stored"], 1, "{fetched}");
    let out = dir.path().join("out");
    run(["--db", p(&client_db), "export", p(&out)]).ok();
    assert_eq!(
        std::fs::read(out.join("notes.txt_recebida")).unwrap(),
        b"found on the local network\n"
    );

    // An ID nobody announces is not found, and says so.
    let stranger = run(["--db", p(&dir.path().join("stranger.db")), "id"])
        .ok()
        .stdout();
    let missing = in_namespace(&client_ns)
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
