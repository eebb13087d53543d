//! `serve --http`: the web view, driven the way people and tools use it: a headless Chromium
//! for the page, curl for ranges, metrics and the API, `wget -c` for a resumed download, and
//! hand-written sockets for clients that misbehave.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use storage::{BackendKind, PartHash};
use support::files::{PART, PART_SIZE, Store, flip_a_byte_of_the_body, write_random_file};
use support::{BACKENDS, PATIENCE, Server, p, send, skip, start_server};

/// `serve --http 127.0.0.1:0` on `db`, and the base URL it printed.
fn web_server(db: &Path, backend: BackendKind) -> (Server, String) {
    let mut server = start_server(db, backend, &["--http", "127.0.0.1:0"]);
    let url = server.http_url();
    (server, url)
}

/// Whether `tool` can be run here; when not, the test is skipped (or fails under CI).
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        skip(&format!("{tool} is not installed"));
    }
    found
}

/// `curl -sS ARGS`, its output as it came.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .arg("--max-time")
        .arg(PATIENCE.as_secs().to_string())
        .args(args)
        .output()
        .unwrap()
}

/// The status and the body of `curl -r RANGE URL` (no range when `None`), the headers in
/// `headers`.
fn get(url: &str, range: Option<&str>, dir: &Path) -> (u16, String, Vec<u8>) {
    let (headers, body) = (dir.join("headers"), dir.join("body"));
    let _ = std::fs::remove_file(&body);
    let mut args = vec!["-D", p(&headers), "-o", p(&body), "-w", "%{http_code}"];
    if let Some(range) = range {
        args.extend(["-r", range]);
    }
    args.push(url);
    let output = curl(&args);
    let status = String::from_utf8(output.stdout).unwrap().parse().unwrap();
    let headers = std::fs::read_to_string(&headers).unwrap_or_default();
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

/// A file of four chunks and a bit, and a plain part, imported into a store of `backend`.
fn store_with_files(dir: &Path, backend: BackendKind) -> (Store, Vec<u8>) {
    let big = dir.join("in/big.bin");
    write_random_file(&big, 7, 4 * PART as u64 + 1000);
    std::fs::write(dir.join("in/naïve name.txt"), b"hello, web").unwrap();
    let store = Store::new(dir, "db", backend);
    let small = dir.join("in/naïve name.txt");
    store
        .run(&["import", "--part-size", PART_SIZE, p(&big), p(&small)])
        .ok();
    (store, std::fs::read(&big).unwrap())
}

#[test]
fn ranges_and_etags_work_with_curl_on_both_backends() {
    if !have("curl") {
        return;
    }
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (store, big) = store_with_files(dir.path(), backend);
        let (server, url) = web_server(&store.db, backend);
        let file = format!("{url}/files/big.bin");
        let size = big.len();

        let (status, headers, body) = get(&file, None, dir.path());
        assert_eq!(status, 200, "{headers}");
        assert!(body == big, "the whole file differs");
        let etag = format!("etag: \"{}\"", PartHash::of(&big));
        assert!(headers.to_lowercase().contains(&etag), "{headers}");
        assert!(headers.contains("Accept-Ranges: bytes"), "{headers}");

        let cases = [
            ("0-99", 0..100),
            ("65530-65545", PART - 6..PART + 10),
            ("100000-", 100_000..size),
            ("-7", size - 7..size),
            ("1-9999999", 1..size),
        ];
        for (range, expected) in cases {
            let (status, headers, body) = get(&file, Some(range), dir.path());
            assert_eq!(status, 206, "{range}: {headers}");
            let content_range = format!(
                "Content-Range: bytes {}-{}/{size}",
                expected.start,
                expected.end - 1
            );
            assert!(headers.contains(&content_range), "{range}: {headers}");
            assert!(body == big[expected], "{range}: other bytes");
        }

        let (status, headers, _) = get(&file, Some(&format!("{size}-")), dir.path());
        assert_eq!(status, 416, "{headers}");
        assert!(headers.contains(&format!("Content-Range: bytes */{size}")));

        // A plain part, its name percent-encoded.
        let small = format!("{url}/files/na%C3%AFve%20name.txt");
        let (status, _, body) = get(&small, Some("7-"), dir.path());
        assert_eq!((status, body.as_slice()), (206, &b"web"[..]));
        server.stop();
    }
}

#[test]
fn wget_resumes_a_download() {
    if !have("wget") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, big) = store_with_files(dir.path(), BackendKind::Sled);
    let (server, url) = web_server(&store.db, BackendKind::Sled);
    let out = dir.path().join("big.bin");
    std::fs::write(&out, &big[..PART + 123]).unwrap();
    let wget = |out: &Path| {
        Command::new("wget")
            .args(["-q", "-c", "-O", p(out), &format!("{url}/files/big.bin")])
            .status()
            .unwrap()
    };
    assert!(wget(&out).success());
    assert!(
        std::fs::read(&out).unwrap() == big,
        "the resumed file differs"
    );
    // Once whole, asking again changes nothing (the server answers 416).
    assert!(wget(&out).success());
    assert!(std::fs::read(&out).unwrap() == big);
    server.stop();
}

#[test]
fn a_damaged_chunk_is_never_served_on_both_backends() {
    if !have("curl") {
        return;
    }
    for backend in BACKENDS {
        let dir = tempfile::tempdir().unwrap();
        let (store, big) = store_with_files(dir.path(), backend);
        flip_a_byte_of_the_body(&store.db, &big[2 * PART..3 * PART]);
        let (server, url) = web_server(&store.db, backend);
        let file = format!("{url}/files/big.bin");

        // The download stops where the damage starts: everything sent is the file's.
        let (status, _, body) = get(&file, None, dir.path());
        assert_eq!(status, 200);
        assert_eq!(body.len(), 2 * PART, "{backend:?}");
        assert!(body == big[..2 * PART]);
        // A range that starts in the damaged chunk is refused outright; one before it is whole.
        let (status, _, _) = get(&file, Some(&format!("{}-", 2 * PART + 5)), dir.path());
        assert_eq!(status, 500);
        let (status, _, body) = get(&file, Some("0-65535"), dir.path());
        assert_eq!(status, 206);
        assert!(body == big[..PART]);
        let log = server.log_with(|line| line.contains("cut short"));
        assert!(log.contains("cut short"), "{log}");
        server.stop();
    }
}

#[test]
fn metrics_and_the_json_api_count_what_peers_do() {
    if !have("curl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (server, url) = web_server(&db, BackendKind::Sled);
    let file = dir.path().join("notes.txt");
    std::fs::write(&file, b"pushed over the wire").unwrap();
    send(&server, &[&file], false).ok();

    let metrics = String::from_utf8(curl(&[&format!("{url}/metrics")]).stdout).unwrap();
    let value = |name: &str| -> u64 {
        let line = metrics
            .lines()
            .find(|line| line.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"));
        assert!(metrics.contains(&format!("# HELP {name} ")), "{metrics}");
        assert!(metrics.contains(&format!("# TYPE {name} ")), "{metrics}");
        line.split(' ').nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(value("p2p_store_connections_total"), 1);
    assert_eq!(value("p2p_store_parts_stored_total"), 1);
    assert_eq!(value("p2p_store_stored_bytes_total"), 20);
    assert!(value("p2p_store_received_bytes_total") > 20);
    assert!(value("p2p_store_sent_bytes_total") > 0);
    assert!(value("p2p_store_connections_open") <= 1);
    // Exposed with its HELP and TYPE; tests/hostile.rs watches it rise under an attack.
    value("p2p_store_peer_memory_bytes");

    let json = |path: &str| -> serde_json::Value {
        serde_json::from_slice(&curl(&[&format!("{url}{path}")]).stdout).unwrap()
    };
    let stats = json("/api/stats");
    assert_eq!(stats["parts_stored"], 1, "{stats}");
    assert_eq!(stats["throughput"]["interval_secs"], 1, "{stats}");
    let files = json("/api/files");
    assert_eq!(files["truncated"], false);
    assert_eq!(files["files"][0]["name"], "notes.txt", "{files}");
    assert_eq!(files["files"][0]["size"], 20);
    let hash = PartHash::of(b"pushed over the wire").to_string();
    assert_eq!(files["files"][0]["hash"], hash.as_str());
    let after = json("/api/files?after=notes.txt");
    assert_eq!(after["files"], serde_json::json!([]), "{after}");
    let odd = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("{url}/api/files?after=%FF"),
    ]);
    assert_eq!(String::from_utf8_lossy(&odd.stdout), "400");
    let before = json("/api/files?after=notes%2Etx");
    assert_eq!(before["files"][0]["name"], "notes.txt", "{before}");
    server.stop();
}

#[test]
fn the_page_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|name| Command::new(name).arg("--version").output().is_ok())
    else {
        return skip("chromium is not installed");
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, big) = store_with_files(dir.path(), BackendKind::Sled);
    let (server, url) = web_server(&store.db, BackendKind::Sled);
    let pushed = dir.path().join("pushed.txt");
    std::fs::write(&pushed, b"sent by a peer").unwrap();
    send(&server, &[&pushed], false).ok();
    // The chart draws samples: wait for the first (a second after the start) to be taken.
    let deadline = std::time::Instant::now() + PATIENCE;
    while exchange(&url, b"GET /api/stats HTTP/1.1\r\n\r\n").contains("\"bytes_in\":[]") {
        assert!(std::time::Instant::now() < deadline, "no throughput sample");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Virtual time lets the page's script fetch the API and draw before the DOM is taken.
    let browse = |what: &[&str]| {
        let profile = tempfile::tempdir().unwrap();
        let output = Command::new("timeout")
            .arg(PATIENCE.as_secs().to_string())
            .arg(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
                "--window-size=1100,800",
            ])
            .arg(format!("--user-data-dir={}", p(profile.path())))
            .args(what)
            .arg(format!("{url}/"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let dom = browse(&["--dump-dom"]);
    let text_of = |id: &str| -> &str {
        let start = dom
            .find(&format!("id=\"{id}\">"))
            .unwrap_or_else(|| panic!("no #{id}:\n{dom}"));
        let text = &dom[start + id.len() + 6..];
        &text[..text.find('<').unwrap()]
    };
    assert_eq!(text_of("parts-stored"), "1", "{dom}");
    assert_eq!(text_of("connections-total"), "1", "{dom}");
    assert_ne!(text_of("bytes-in"), "-", "{dom}");
    assert!(text_of("status").starts_with("3 files"), "{dom}");
    for row in [
        format!(
            "<a href=\"/files/big.bin\">big.bin</a></td><td class=\"size\">257.0 KiB</td><td class=\"hash\">{}</td>",
            PartHash::of(&big)
        ),
        "<a href=\"/files/na%C3%AFve%20name.txt\">naïve name.txt</a>".to_owned(),
        format!(
            "<a href=\"/files/pushed.txt\">pushed.txt</a></td><td class=\"size\">14 B</td><td class=\"hash\">{}</td>",
            PartHash::of(b"sent by a peer")
        ),
    ] {
        assert!(dom.contains(&row), "no {row}:\n{dom}");
    }
    let drawn = dom.split("class=\"in\" points=\"").nth(1).unwrap();
    assert!(drawn.starts_with(|c: char| c.is_ascii_digit()), "{dom}");

    // The screenshot is kept as the test's artifact, for a person to look at.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../web-view.png");
    let _ = std::fs::remove_file(&shot);
    browse(&[&format!("--screenshot={}", p(&shot))]);
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    server.stop();
}

/// Sends `bytes` on a new connection to the view and reads what comes back until it closes.
fn exchange(url: &str, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (server, url) = web_server(&db, BackendKind::Sled);
    let cases: [(&[u8], &str); 7] = [
        (b"DELETE /files/x HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "),
        (b"POST /api/files HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "),
        (b"GET /files/..%2Fetc HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /files/%2E%2E HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /files/%FF HTTP/1.1\r\n\r\n", "HTTP/1.1 400 "),
        (b"GET /files/nothing HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "),
        (b"\x16\x03\x01 not http\r\n\r\n", "HTTP/1.1 400 "),
    ];
    for (request, status) in cases {
        let answer = exchange(&url, request);
        assert!(answer.starts_with(status), "{request:?}: {answer}");
    }
    server.stop();
    assert!(support::names_in(&support::list_local(&db)).is_empty());
}

#[test]
fn hostile_web_clients_hold_the_view_at_most_and_never_the_p2p_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let (server, url) = web_server(&db, BackendKind::Sled);

    // A head that never ends is cut at its limit.
    let mut huge = b"GET / HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.resize(64 * 1024, b'a');
    let answer = exchange(&url, &huge);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431 "),
        "{answer}"
    );

    // More silent clients than the view has workers: they hold every worker...
    let addr = url.trim_start_matches("http://");
    let silent: Vec<TcpStream> = (0..6).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // ...while the p2p server serves on.
    let file = dir.path().join("during.txt");
    std::fs::write(&file, b"pushed while the view is held").unwrap();
    send(&server, &[&file], false).ok();
    let listed = support::list_from(&server);
    assert!(support::names_in(&listed).contains("during.txt"));

    // Each silent client is told it was too slow, and the view answers again.
    for mut stream in silent {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    }
    let stats = exchange(&url, b"GET /api/stats HTTP/1.1\r\n\r\n");
    assert!(stats.starts_with("HTTP/1.1 200 "), "{stats}");
    assert!(stats.contains("\"parts_stored\":1"), "{stats}");
    server.stop();
}

#[test]
fn the_view_binds_loopback_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_p2p-store"))
        .args(["--db", p(&db), "serve", "--listen", "127.0.0.1:0", "--http"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = String::new();
    for _ in 0..2 {
        std::io::BufRead::read_line(&mut stdout, &mut lines).unwrap();
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    // Another program may hold the default port on this machine: then serve says so.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        lines.ends_with("\nhttp on http://127.0.0.1:6880\n")
            || stderr.contains("cannot start the web view"),
        "{lines}{stderr}"
    );
}
